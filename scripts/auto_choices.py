"""Which method ``--method auto`` trains for each price-benchmark problem, and why: no training.

Writes ``choices.json`` (problem -> "method | reason") into ``--out``; with ``--before`` (another commit's
``choices.json``), ``choices.md`` lists the problems whose choice changed. Used to tell whether a change of
the recognisers (premise gates, score clamps, rule rewrites) moves any committed benchmark problem.

    python scripts/auto_choices.py --out DIR [--before OTHER/choices.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from price_problems import PROBLEMS  # noqa: E402

from deepsade.ingest import prepare  # noqa: E402
from deepsade.methods import AUTO, resolve_method  # noqa: E402
from deepsade.spec import parse_spec  # noqa: E402
from deepsade.training.settings import TrainSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--before", type=Path, help="choices.json of another commit")
    args = parser.parse_args()
    problems = PROBLEMS.values() if isinstance(PROBLEMS, dict) else PROBLEMS
    choices = {}
    for problem in problems:
        data = prepare(problem.build(), list(problem.targets), None, problem.task, problem.positive)
        spec = parse_spec(problem.rule_file, data.encoding)
        chosen, why = resolve_method(AUTO, spec, data, TrainSettings())
        choices[problem.name] = f"{chosen} | {why}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "choices.json").write_text(json.dumps(choices, indent=1), encoding="utf-8")
    if args.before:
        before = json.loads(args.before.read_text(encoding="utf-8"))
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        changed = [name for name in choices if before.get(name) != choices[name]]
        lines = [f"# auto's choice per price problem, against {args.before}", "",
                 f"Written by `python scripts/auto_choices.py {' '.join(sys.argv[1:])}` at {commit}. "
                 f"{len(choices)} problems; {len(changed)} changed.", ""]
        lines += [f"- {name}: before `{before.get(name)}`, now `{choices[name]}`" for name in changed]
        (args.out / "choices.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
