"""Probe: why UC2's score clamps (what ``auto`` trains) trail DeepSaDe, and whether a training variant helps.

Trains the score-clamp construction on UC2 (real data, the paper's settings and DeepSaDe's 50 epochs, as
``deepsade usecase run UC2 --methods scoreclamp`` does) over split seeds x 5 folds, with one *variant* of its
training switched on by patching the package in this process only (nothing is changed on disk):

- ``base``: the code as it is;
- ``zero_start``: the base's last layer starts at the best constant (weights 0, bias the training log-odds);
- ``select_by_accuracy``: the epoch (and the refit) are chosen by validation accuracy, loss breaking ties;
- ``decay_1e-2``: weight decay 1e-2 instead of ``hardnet.CONSTRUCTION_WEIGHT_DECAY``;
- ``rule_only``: no training at all (weights 0, a positive bias): the clamps alone decide, "approve unless the
  rule denies";
- ``base_loss_where_clamp_helps`` (weight 1 or 0.1): the base scores' own loss on the rows where the clamps moved
  the output towards the label, so the base learns the rule's region instead of leaving it to the clamps;
- ``refit_skip_unpenalised``: the closing convex refit of the base's last layer leaves the skip weights (the
  rule's inputs) out of its l2 penalty;
- ``weight_average``: ``--weight-average`` (each epoch judged by, and the kept network, a moving average of SGD's
  weights, ``hardnet._WeightAverage``).

Writes ``<out>/<variant>.csv`` (one row per fold) and prints the mean corrected test accuracy per seed.

    OMP_NUM_THREADS=1 python scripts/probe_uc2_construction.py --variant base --seeds 0,1,2,3,4 \\
        --data ../shared/data --out results/defaults_s10/UC2_variants
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch


def _patch(variant: str) -> None:
    """Switch ``variant`` on in this process."""
    from deepsade.constructions import hardnet
    from deepsade.losses import data_loss

    original_fit = hardnet.fit_constructed

    def fit(job, model, start, details, **options):
        if variant == "weight_average":
            import dataclasses
            job.settings = dataclasses.replace(job.settings, weight_average=True)
        if variant in ("zero_start", "rule_only"):
            with torch.no_grad():
                y = np.asarray(job.train.targets, dtype=float)
                share = min(max(float(y.mean()), 1e-3), 1 - 1e-3)
                model.last.weight.zero_()
                model.last.bias.fill_(float(np.log(share / (1 - share))) if variant == "zero_start" else 1.0)
        if variant == "rule_only":
            import dataclasses
            job.settings = dataclasses.replace(job.settings, epochs=0)
            options["refit_base"] = False
        return original_fit(job, model, start, details, **options)

    hardnet.fit_constructed = fit
    if variant == "decay_1e-2":
        hardnet.CONSTRUCTION_WEIGHT_DECAY = 1e-2
    if variant == "select_by_accuracy":
        def selection_loss(task, model, inputs, targets):
            with torch.no_grad():
                outputs = model(inputs)
                loss = float(data_loss(task, outputs, targets))
                hits = ((outputs.reshape(-1) > 0).long() == targets.reshape(-1).long()).float().mean()
                return (1 - float(hits)) + 1e-3 * loss
        hardnet._loss = selection_loss
    if variant.startswith("base_loss_where_clamp_helps"):
        weight = 0.1 if variant.endswith("0.1") else 1.0

        def constructed_loss(task, model, x, y, base_loss_weight):
            base = model.base(x)
            output = model.clamp(base, x)
            loss = data_loss(task, output, y)
            moved = (output.detach() != base.detach()).reshape(len(x), -1).any(dim=1).nonzero().reshape(-1)
            with torch.no_grad():
                helped = [int(i) for i in moved
                          if data_loss(task, output[i:i + 1], y[i:i + 1]) < data_loss(task, base[i:i + 1], y[i:i + 1])]
            if helped:
                loss = loss + weight * len(helped) / len(x) * data_loss(task, base[helped], y[helped])
            return loss
        hardnet.constructed_loss = constructed_loss
    if variant == "refit_skip_unpenalised":
        import deepsade.last_layer_solve as solve
        original_solve = solve.solve_free_last_layer

        def solve_free(latent, targets, task, start, l2=1e-4, **options):
            skips, stretch = 2, 100.0  # UC2 maps two inputs; a column stretched 100x pays 1e-4 of the penalty
            latent = np.array(latent, dtype=np.float64)
            latent[:, -skips:] *= stretch
            weight, bias = (np.array(v, dtype=np.float64) for v in start)
            weight[:, -skips:] /= stretch
            fit = original_solve(latent, targets, task, (weight, bias), l2=l2, **options)
            if fit is None:
                return None
            weight = np.array(fit[0])
            weight[:, -skips:] *= stretch
            return weight.astype(np.float32).astype(np.float64), fit[1]
        solve.solve_free_last_layer = solve_free


VARIANTS = ("base", "zero_start", "select_by_accuracy", "decay_1e-2", "rule_only", "base_loss_where_clamp_helps",
            "base_loss_where_clamp_helps_0.1", "refit_skip_unpenalised", "weight_average")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not (Path(args.data) / "uc2_loan.csv").exists():
        raise SystemExit(f"{args.data}/uc2_loan.csv not found: this probe needs UC2's real data (--data)")
    _patch(args.variant)
    from deepsade.usecases import experiment
    from deepsade.usecases.config import ExperimentConfig

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in [int(s) for s in args.seeds.split(",")]:
            config = ExperimentConfig(usecase="UC2", out=f"{work}/s{seed}", methods=("scoreclamp",),
                                      data_dir=args.data, adi_sample=0, seed=seed, save_models=False, quiet=True)
            for fold in range(1, 6):
                result = experiment.run_task(config.to_dict(), fold, "scoreclamp")
                assert result["data_source"].startswith("real data"), result["data_source"]
                rows.append({"variant": args.variant, "seed": seed, "fold": fold,
                             "accuracy_corrected": result["test"]["accuracy_corrected"],
                             "best_epoch": result["best_epoch"], "train_seconds": result["train_seconds"],
                             "certificate": result["certificate"]})
                print(seed, fold, round(rows[-1]["accuracy_corrected"], 4), rows[-1]["best_epoch"],
                      rows[-1]["certificate"], flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / f"{args.variant}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    by_seed = {s: statistics.mean(r["accuracy_corrected"] for r in rows if r["seed"] == s)
               for s in dict.fromkeys(r["seed"] for r in rows)}
    print(args.variant, "mean", round(statistics.mean(r["accuracy_corrected"] for r in rows), 4),
          "by seed", {s: round(v, 4) for s, v in by_seed.items()})


if __name__ == "__main__":
    main()
