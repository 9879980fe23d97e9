"""Benchmark: `deepsade verify` on saved models, with and without the proof on the last layers alone.

For every model directory found under ``--runs`` (any folder holding ``model.json``; by default not ffn's),
searches the whole domain box as ``deepsade verify`` does (``verify_domain``: random points, the bound
pre-check, then the engines), once with each assert first tried on the last layers alone with what comes
before them free in sound bounds (``abstraction``, the default) and once without, side by side in one process. Writes ``verify.csv`` (one row per model and setting)
and ``verify.md`` (counts per answer, time) into ``--out``.

    python scripts/bench_verify.py --runs /tmp/work --out results/verify [--engine marabou] [--timeout 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepsade.artifact import load  # noqa: E402
from deepsade.verification.config import VerifierConfig  # noqa: E402

SETTINGS = {"last layers first": True, "whole network only": False}


def model_dirs(roots: list[Path], include_ffn: bool) -> list[Path]:
    found = sorted({p.parent for root in roots for p in root.rglob("model.json")})
    return [d for d in found if include_ffn or "ffn" not in d.name]


def verify_one(directory: Path, engine: str, timeout: float, abstract: bool) -> dict:
    artifact = load(directory)
    config = VerifierConfig.from_artifact(artifact, engine=engine, timeout=timeout, presample=1024,
                                          last_layers_first=abstract)
    start = time.perf_counter()
    outcome = config.build().check_domain()
    return {"model": str(directory), "method": artifact.method,
            "kind": getattr(artifact.model, "kind", None) or "deepsade",
            "certificate": artifact.certificate.get("verdict"), "asserts": artifact.constraint_text.count("(assert"),
            "answer": outcome.status.value, "decided_by": outcome.decided_by,
            "seconds": round(time.perf_counter() - start, 3), "note": outcome.note[:200]}


def report(frame: pd.DataFrame, args: argparse.Namespace, command: str) -> str:
    lines = ["# `deepsade verify` with and without the proof on the last layers alone", "",
             f"Written by `{command}`.", "",
             f"{frame['model'].nunique()} saved models under {', '.join(map(str, args.runs))}; engine "
             f"{args.engine}, {args.timeout:g} s per search, 1024 random points first (as `deepsade verify`). "
             "'last layers first': each assert is tried by z3 on the last layers alone (a construction's "
             "enforcement layer with the base output free in sound bounds, `z3-enforcement`; a plain network's last "
             "layer with the last hidden layer's output free, `z3-latent`), before the engines search the whole "
             "network; 'whole network only': the bound pre-check and the engines alone (the behaviour before).", ""]
    lines += ["| setting | models | verified | unknown | counterexample | median s | total s |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for setting, part in frame.groupby("setting", sort=False):
        counts = part["answer"].value_counts()
        lines.append(f"| {setting} | {len(part)} | {counts.get('verified', 0)} | {counts.get('unknown', 0)} | "
                     f"{counts.get('counterexample', 0)} | {part['seconds'].median():.2f} | "
                     f"{part['seconds'].sum():.0f} |")
    lines += ["", "Per kind of model (verified / models):", "",
              "| kind | " + " | ".join(SETTINGS) + " |", "| --- |" + " --- |" * len(SETTINGS)]
    for kind, part in frame.groupby("kind"):
        cells = []
        for setting in SETTINGS:
            rows = part[part["setting"] == setting]
            cells.append(f"{(rows['answer'] == 'verified').sum()} / {len(rows)}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="folders searched for model.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", default="marabou")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per search, as verify --timeout")
    parser.add_argument("--include-ffn", action="store_true", help="also unconstrained models (ffn)")
    args = parser.parse_args()
    command = "python scripts/bench_verify.py " + " ".join(sys.argv[1:])
    rows = []
    directories = model_dirs(args.runs, args.include_ffn)
    for i, directory in enumerate(directories, 1):
        for setting, abstract in SETTINGS.items():
            row = verify_one(directory, args.engine, args.timeout, abstract)
            rows.append({"setting": setting, **row})
            print(f"[{i}/{len(directories)}] {setting}: {directory} {row['answer']} ({row['decided_by']}, "
                  f"{row['seconds']} s)", flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "verify.csv", index=False)
    (args.out / "verify.md").write_text(report(frame, args, command), encoding="utf-8")
    print(f"wrote {args.out / 'verify.md'}")


if __name__ == "__main__":
    main()
