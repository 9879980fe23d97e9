"""Benchmark the baselines (ffn, reg, sbr, sl) on UC2 (loan approval) with the paper's protocol.

Protocol (DeepSaDe paper, data README): rows with a missing value dropped (480 remain from the real
file); per seed a shuffled 70/20/10 train/test/validation split; in the TRAINING part the labels of
up to 40 rows whose inputs satisfy the premise (income < 5000, no credit history) are set to "Y", so
the training data breaks the rule on purpose; encoding and domain fitted on the training part.
Settings: hidden 50-30-10, SGD lr 0.1, batch size 5, 400 epochs (the paper's SL/SBR settings),
lambda grid 0.1..0.9 chosen on the validation split. Test metrics come from deepsade.metrics, the
same code ``deepsade evaluate`` runs.

Writes ``results/bench_baselines.csv`` (one row per seed and method) and ``results/bench_baselines.md``.

    python scripts/bench_baselines.py [--data ../shared/data] [--seeds 0 1 2] [--epochs 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepsade.baselines import CONSTRAINT_LOSSES, train_baseline  # noqa: E402
from deepsade.ingest import prepare  # noqa: E402
from deepsade.metrics import evaluate_model  # noqa: E402
from deepsade.spec import parse_spec_text  # noqa: E402
from deepsade.usecases import uc2_loan  # noqa: E402

INLINE_CONSTRAINT = """(declare-const ApplicantIncome Real)
(declare-const Credit_History Real)
(declare-const Loan_Status Real)
(assert (=> (and (< ApplicantIncome 5000) (= Credit_History 0)) (< Loan_Status 0)))
"""
# The paper's UC2 accuracy per method (the UseCase description holds the published figures).
PUBLISHED = {method: f"{figures.metrics['accuracy']:g}" for method, figures in uc2_loan.CASE.published.items()}


def constraint_text() -> str:
    path = uc2_loan.CASE.constraint_path
    return path.read_text(encoding="utf-8") if path.exists() else INLINE_CONSTRAINT


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seeded 70/20/10 train/test/validation split; violations injected into the training part only."""
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train, n_test = int(round(0.7 * len(frame))), int(round(0.2 * len(frame)))
    parts = [frame.iloc[order[a:b]].reset_index(drop=True)
             for a, b in ((0, n_train), (n_train, n_train + n_test), (n_train + n_test, len(frame)))]
    parts[0] = uc2_loan.inject_violations(parts[0], n=40, seed=seed)
    return parts[0], parts[1], parts[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding uc2_loan.csv (default ../shared/data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(CONSTRAINT_LOSSES), choices=list(CONSTRAINT_LOSSES))
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=0,
                        help="choose lambda by K-fold cross-validation inside the training part (0: validation split)")
    parser.add_argument("--out", default=str(REPO / "results"))
    args = parser.parse_args()

    real = uc2_loan.load_real(args.data)
    source = "real uc2_loan.csv"
    if real is None:
        real, source = uc2_loan.generate(614, seed=0), "synthetic stand-in (uc2_loan.generate): real file absent"
    frame = real.dropna().reset_index(drop=True)
    text = constraint_text()
    rows = []
    for seed in args.seeds:
        train_frame, test_frame, val_frame = split(frame, seed)
        train = prepare(train_frame, [uc2_loan.TARGET], task="binary", positive="Y")
        test = prepare(test_frame, [uc2_loan.TARGET], encoding=train.encoding, domain=train.domain)
        val = prepare(val_frame, [uc2_loan.TARGET], encoding=train.encoding, domain=train.domain)
        spec = parse_spec_text(text, train.encoding)
        label_violations = int((~spec.evaluate_raw(train.raw_inputs, train.encoding.targets_as_scores(
            train.targets)).all(axis=1)).sum())
        for method in args.methods:
            started = time.perf_counter()
            artifact = train_baseline(method, train, val, spec, hidden=(50, 30, 10), epochs=args.epochs,
                                      batch_size=args.batch_size, lr=0.1, seed=seed, inner_folds=args.inner_folds,
                                      quiet=True)
            seconds = time.perf_counter() - started
            metrics = evaluate_model(artifact, test)
            rows.append({
                "seed": seed, "split": "70/20/10 train/test/val", "method": method, "inner_folds": args.inner_folds,
                "n_train": train.n_rows, "n_test": test.n_rows, "n_val": val.n_rows,
                "train_label_violations": label_violations,
                "epochs": args.epochs, "batch_size": args.batch_size,
                "lambda": artifact.training.get("lambda"), "best_epoch": artifact.training["best_epoch"],
                "val_violations": artifact.training["val_violations"],
                "train_seconds": round(seconds, 2),
                "test_accuracy": metrics["accuracy"], "test_accuracy_corrected": metrics["accuracy_corrected"],
                "test_violating_rows": metrics["violating_rows"],
                "test_constraint_accuracy": metrics["constraint_accuracy"],
            })
            print(f"seed {seed} {method:>4}: {seconds:6.1f} s, lambda {rows[-1]['lambda']}, test accuracy "
                  f"{metrics['accuracy']:.4f} (corrected {metrics['accuracy_corrected']:.4f}), "
                  f"test violations {metrics['violating_rows']}", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    name = "bench_baselines" + (f"_inner{args.inner_folds}" if args.inner_folds else "")
    table.to_csv(out / f"{name}.csv", index=False)
    summary = table.groupby("method", sort=False).agg(
        seeds=("seed", "count"), accuracy=("test_accuracy", "mean"),
        accuracy_corrected=("test_accuracy_corrected", "mean"),
        test_violations=("test_violating_rows", "mean"), seconds=("train_seconds", "mean"),
    ).reset_index()
    lines = [
        "# Baselines on UC2 (loan approval)",
        "",
        f"Data: {source}, {len(frame)} complete rows; per seed a shuffled 70/20/10 train/test/validation split, "
        f"40 premise rows of the training part relabelled 'Y' (rule broken on purpose).",
        f"Settings: hidden 50-30-10 with skip connections from the mapped features, SGD lr 0.1, batch size "
        f"{args.batch_size}, {args.epochs} epochs, lambda grid 0.1..0.9 (smallest lambda with the fewest "
        + (f"violations summed over a {args.inner_folds}-fold cross-validation inside the training part, then "
           "retrained on the whole training part" if args.inner_folds else "validation violations")
        + "), best epoch on validation.",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, one torch thread. "
        "Times are wall-clock training time of the whole lambda grid (9 models side by side; ffn: 1 model); "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other jobs share the machine).",
        "",
        "| method | seeds | test accuracy | corrected | test violating rows | training s | published (corrected) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary.itertuples():
        lines.append(f"| {r.method} | {r.seeds} | {r.accuracy:.4f} | {r.accuracy_corrected:.4f} | "
                     f"{r.test_violations:.2f} | {r.seconds:.1f} | {PUBLISHED.get(r.method, '-')} |")
    lines += ["", "Per seed:", "", "| seed | method | lambda | best epoch | val violations | accuracy | corrected | "
              "test violations | s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lam = "-" if r["lambda"] is None else f"{r['lambda']:g}"
        lines.append(f"| {r['seed']} | {r['method']} | {lam} | {r['best_epoch']} | {r['val_violations']} | "
                     f"{r['test_accuracy']:.4f} | {r['test_accuracy_corrected']:.4f} | {r['test_violating_rows']} | "
                     f"{r['train_seconds']:.1f} |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out / name}.md and {out / name}.csv")


if __name__ == "__main__":
    main()
