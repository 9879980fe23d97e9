"""Reproduce the DeepSaDe paper's use cases: every method on the same folds, reports beside the published figures.

    python scripts/reproduce.py --all --folds 1                 # every use case, every method, one fold
    python scripts/reproduce.py --usecases UC2,UC5 --folds 5 --jobs 2
    python scripts/reproduce.py --all --quick --out /tmp/quick   # tiny generated sizes, one fold, about a minute

Writes ``OUT/<UC>/`` (runs.csv, report.md, plots, folds/*.json, models/) per use case and ``OUT/README.md``,
one table over all use cases. Real data is read from ``--data`` (default ``$DEEPSADE_DATA`` or
``../shared/data``) where present, else the generators are used. Finished fold x method results are
kept, so the same command resumes an interrupted run.

Size overrides take one value for every use case or per use case, e.g. ``--epochs UC1=1,UC3=10``; every
override is recorded in the reports.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepsade import usecases  # noqa: E402
from deepsade.errors import UserInputError  # noqa: E402
from deepsade.methods import method_names  # noqa: E402
from deepsade.usecases.experiment import ExperimentConfig, parse_methods, run_experiment  # noqa: E402
from deepsade.usecases.report import write_summary  # noqa: E402

# --quick: tiny generated data, few epochs, one fold and short AdI searches: the whole pipeline in about a minute.
QUICK = {"rows": 120, "epochs": 2, "baseline_epochs": 3, "adi_sample": 10, "folds": 1, "adi_timeout": 2.0}
QUICK_ROWS = {"UC4": 60, "UC5": 150}


def per_usecase(text: str | None, names: list[str], name: str, kind: type = int) -> dict[str, float]:
    """'5' -> {every use case: 5}; 'UC1=1,UC3=10' -> {'UC1': 1, 'UC3': 10}."""
    if text is None:
        return {}
    values: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if "=" in item:
                key, value = item.split("=", 1)
                values[usecases.get(key).name] = kind(value)
            else:
                values.update(dict.fromkeys(names, kind(item)))
        except ValueError as exc:
            raise SystemExit(f"--{name}: expected N or UC=N[,UC=N...], got {text!r} ({exc})") from None
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every use case, UC1..UC5 (UC1 last: it is the slowest)")
    which.add_argument("--usecases", help="comma-separated use cases, e.g. UC2,UC5")
    parser.add_argument("--folds", default=None,
                        help="run the first N of the 5 folds: N or N,UC=N,... (default 5)")
    parser.add_argument("--methods", default=",".join(method_names()), help="comma-separated methods (default: all)")
    parser.add_argument("--data", default=None, help="folder with the real data (default ../shared/data)")
    parser.add_argument("--out", default=str(REPO / "results"), help="output folder (default results/)")
    parser.add_argument("--jobs", type=int, default=1, help="fold x method tasks in parallel processes")
    parser.add_argument("--rows", default=None, help="seeded subset of rows: N or UC=N,... (default: all)")
    parser.add_argument("--epochs", default=None, help="DeepSaDe epochs: N or UC=N,... (default: the paper's)")
    parser.add_argument("--baseline-epochs", default=None, help="baseline epochs: N or UC=N,...")
    parser.add_argument("--adi-sample", default="100", help="test rows per fold for AdI: N or UC=N,... (default 100)")
    parser.add_argument("--adi-timeout", type=float, default=None,
                        help="seconds per AdI search (default 10; --quick: 2)")
    parser.add_argument("--solver-timeout", default=None,
                        help="DeepSaDe's seconds per solver call: S or UC=S,... (default: the trainer's, 10 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny generated sizes ({QUICK}) and no real data: a smoke run of everything")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    names = ["UC2", "UC3", "UC5", "UC4", "UC1"] if args.all else [
        usecases.get(n).name for n in args.usecases.split(",") if n.strip()]
    rows = per_usecase(args.rows, names, "rows")
    folds = per_usecase(args.folds, names, "folds")
    epochs = per_usecase(args.epochs, names, "epochs")
    baseline_epochs = per_usecase(args.baseline_epochs, names, "baseline-epochs")
    adi_sample = per_usecase(args.adi_sample, names, "adi-sample")
    solver_timeout = per_usecase(args.solver_timeout, names, "solver-timeout", float)
    data_dir = args.data
    if args.quick:
        data_dir = str(Path(args.out) / ".no-real-data")  # a folder without the real files: generators
        for name in names:
            rows.setdefault(name, QUICK_ROWS.get(name, QUICK["rows"]))
            epochs.setdefault(name, QUICK["epochs"])
            baseline_epochs.setdefault(name, QUICK["baseline_epochs"])
            adi_sample[name] = min(adi_sample.get(name, QUICK["adi_sample"]), QUICK["adi_sample"])
            folds.setdefault(name, QUICK["folds"])
    adi_timeout = args.adi_timeout if args.adi_timeout is not None else (QUICK["adi_timeout"] if args.quick else 10.0)
    started = time.perf_counter()
    try:
        for name in names:
            config = ExperimentConfig(
                usecase=name, out=str(Path(args.out) / name), folds=folds.get(name), methods=parse_methods(args.methods),
                data_dir=data_dir, rows=rows.get(name), epochs=epochs.get(name),
                baseline_epochs=baseline_epochs.get(name), adi_sample=adi_sample.get(name, 100),
                adi_timeout=adi_timeout, solver_timeout=solver_timeout.get(name), seed=args.seed,
                jobs=args.jobs, quiet=args.quiet)
            t0 = time.perf_counter()
            run_experiment(config, log=lambda line: print(line, flush=True))
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s -> {config.out}/report.md", flush=True)
    except UserInputError as exc:
        raise SystemExit(f"error: {exc}") from None
    command = "python scripts/reproduce.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    summary = write_summary(args.out, command=command)
    print(f"all done in {time.perf_counter() - started:.0f} s; summary: {summary}")


if __name__ == "__main__":
    main()
