"""Probe: do bound-aware hidden layers make room for rules that bound the output everywhere? (issue 13, mode 2)

For problems whose rules bound the outputs over large regions, on 75/25 splits (one per seed):
- ffn: the unconstrained network (same hidden sizes, epochs, batch size, learning rate);
- deepsade: the trainer with its defaults;
- refit: the trainer with the convex last-layer solve at initialisation (``scripts/probe_refit.py``);
- refit + <penalty>@<weight>: the same, plus a penalty from ``deepsade.bound_aware`` on the IBP box of the
  domain added to the hidden layers' loss (a trainer subclass in this script only):
  width (plain IBP width), spread (output interval width under the current last layer), rule (each rule
  row's excess over the box under the unconstrained least-squares / logistic last layer, recomputed every
  epoch on the training rows), ratio (mean box width / data latent range per unit, both differentiable, on
  64 fixed training rows). Weights are relative (``bound_aware.RelativeWeight``): the term starts at
  weight x the data loss.
Every DeepSaDe model is re-checked with ``deepsade.certify.certify_model``. Each run has a wall-clock limit;
after it, the remaining iterations are skipped (the best valid model so far is kept) and the row says so.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/probe_bound_aware.py --seeds 1 --out results/bound_aware_probe
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from probe_refit import Problem, RefitInitTrainer, quality, splits  # noqa: E402
from probe_refit import problems as refit_problems  # noqa: E402

from deepsade.bound_aware import (  # noqa: E402
    RelativeWeight,
    RuleRows,
    desired_last_layer,
    interval_latent_box,
    latent_summary,
    penalty_value,
)
from deepsade.certify import certify_model  # noqa: E402
from deepsade.estimator import DeepSaDe  # noqa: E402
from deepsade.last_layer_polyhedron import NotPolyhedral  # noqa: E402
from deepsade.losses import data_loss  # noqa: E402
from deepsade.spec import parse_spec_text  # noqa: E402
from deepsade.training import DeepSaDeTrainer, TrainSettings  # noqa: E402

# the benchmark's problem definitions (scripts/price_problems.py + constraints/price/), in this checkout once
# merged, else in the bench engineer's worktree
BENCH_ROOTS = [SCRIPTS.parent, Path("/work/wt/bench")]


def bench_problem(name: str, rule_in_words: str) -> Problem:
    for root in BENCH_ROOTS:
        if (root / "scripts" / "price_problems.py").exists() and (root / "constraints" / "price").exists():
            sys.path.insert(0, str(root / "scripts"))
            import price_problems

            problem = price_problems.PROBLEMS[name]
            text = (root / "constraints" / "price" / f"{name}.smt2").read_text(encoding="utf-8")
            return Problem(name, problem.build(), list(problem.targets), text, rule_in_words, problem.task)
    raise FileNotFoundError("scripts/price_problems.py not found (the bench branch)")


def problems() -> list[Problem]:
    by_name = {p.name: p for p in refit_problems()}
    return [
        by_name["diabetes"],
        bench_problem("friedman", "regression: y in [0, 30] everywhere; x4 >= 0.9 -> y >= 8"),
        bench_problem("household_budget", "regression, 3 outputs: housing + food + leisure <= income; "
                                          "food >= 0.3 leisure; all >= 0"),
        by_name["breast-cancer"],
    ]


class BoundAwareTrainer(RefitInitTrainer):
    """Refit at initialisation, then each step adds ``weight x penalty`` (relative) to the hidden layers'
    loss. ``penalty=None``: the plain refit-init trainer. Stops working after ``time_limit`` seconds."""

    penalty: str | None = None
    weight: float = 0.0
    time_limit: float = float("inf")

    def initialise(self) -> None:
        self.started = time.perf_counter()
        self.cut_short = False
        super().initialise()
        self.weighting = RelativeWeight(self.weight)
        self.rules = None
        self.desired = None
        self.penalty_seconds = 0.0
        if self.penalty == "rule":
            self.rules = RuleRows.from_encoder(self.encoder, self.layout.n_out, self.layout.n_latent,
                                               float(self.solve_margin))

    def _step(self, loop, x, y, stats) -> None:
        if time.perf_counter() - self.started > self.time_limit:
            self.cut_short = True
            stats.iterations += 1
            loop.losses.append(loop.losses[-1] if loop.losses else float("nan"))
            return
        if self.penalty is None:
            super()._step(loop, x, y, stats)
            return
        stats.iterations += 1
        self.optimizer.zero_grad()
        self.model.last.zero_grad()
        loss = data_loss(self.task, self.model(x), y)
        t0 = time.perf_counter()
        if self.penalty == "rule" and (self.desired is None or loop.position == 0):
            with torch.no_grad():
                latent = self.model.latent(torch.as_tensor(self.data.inputs, dtype=torch.float32)).double().numpy()
            self.desired = desired_last_layer(latent, np.asarray(self.data.targets), self.task)
        low, high = interval_latent_box(self.model, self.domain_low, self.domain_high)
        reference = None
        if self.penalty == "ratio":  # 64 training rows, fixed, whose latent range the box is measured against
            if getattr(self, "reference_rows", None) is None:
                picked = np.random.default_rng(0).choice(self.data.n_rows, min(64, self.data.n_rows), replace=False)
                self.reference_rows = torch.as_tensor(self.data.inputs[picked], dtype=torch.float32)
            reference = self.model.latent(self.reference_rows)
        penalty = penalty_value(self.penalty, low, high, self.layout.n_hidden,
                                weights=self.model.last.weight.detach().double().numpy(), rules=self.rules,
                                desired=self.desired, latent=reference)
        scale = float(np.mean(loop.losses[-100:])) if loop.losses else float(loss.detach())
        (loss + self.weighting(penalty, scale)).backward()
        self.penalty_seconds += time.perf_counter() - t0
        loop.losses.append(float(loss.detach()))
        if self.update_last_layer(x, y, stats):
            loop.valid_state = {name: t.detach().clone() for name, t in self.model.state_dict().items()}
        self.optimizer.step()


class LimitedTrainer(BoundAwareTrainer):
    """The default trainer (no refit, no penalty) with the same time limit."""

    def initialise(self) -> None:
        self.started = time.perf_counter()
        self.cut_short = False
        DeepSaDeTrainer.initialise(self)
        self.penalty = None


def trainer_class(penalty: str | None, weight: float, limit: float, refit: bool = True):
    base = BoundAwareTrainer if refit else LimitedTrainer
    return type("Configured", (base,), {"penalty": penalty, "weight": weight, "time_limit": limit})


def run_problem(problem: Problem, settings: TrainSettings, seed: int, variants, limit: float, log) -> list[dict]:
    train, val, test = splits(problem, seed)
    spec = parse_spec_text(problem.constraint, train.encoding)
    rows: list[dict] = []
    low, high = train.domain.scaled(train.encoding)

    def record(variant: str, model, seconds: float, certificate: str, extra: dict) -> None:
        train_q, _ = quality(spec, model, train)
        test_q, test_violations = quality(spec, model, test)
        row = {"problem": problem.name, "seed": seed, "variant": variant,
               "metric": "mse" if train.encoding.task == "regression" else "accuracy",
               "train": round(train_q, 4), "test": round(test_q, 4), "test_violations": test_violations,
               "certificate": certificate, "train_seconds": round(seconds, 1)}
        row.update({k: round(v, 3) for k, v in latent_summary(model, low, high, train.inputs).items()})
        row.update(extra)
        rows.append(row)
        log(f"  {variant:18s} train {row['train']:<10} test {row['test']:<10} viol {test_violations} {certificate} "
            f"{row['train_seconds']} s box/data {row['width_ratio']} {extra}")

    t0 = time.perf_counter()
    ffn = DeepSaDe(problem.constraint, problem.targets, method="ffn", hidden=settings.hidden, epochs=settings.epochs,
                   batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed).fit_splits(train, val)
    record("ffn", ffn.artifact_.model, time.perf_counter() - t0, "-", {})
    for variant, penalty, weight, refit in variants:
        t0 = time.perf_counter()
        trainer = trainer_class(penalty, weight, limit, refit)(spec, train, settings)
        try:
            result = trainer.fit(val)
        except NotPolyhedral as exc:
            log(f"  {variant}: not applicable ({exc})")
            continue
        seconds = time.perf_counter() - t0
        verdict = certify_model(result.model, spec, train.encoding, train.domain, settings.output_margin)["verdict"]
        extra = {"cut_at_limit": trainer.cut_short, "best_epoch": result.best_epoch,
                 "penalty_seconds": round(getattr(trainer, "penalty_seconds", 0.0), 1)}
        record(variant, result.model, seconds, verdict, extra)
    return rows


def variant_list(weights: list[float], kinds: list[str]) -> list[tuple[str, str | None, float, bool]]:
    variants = [("deepsade", None, 0.0, False), ("refit", None, 0.0, True)]
    variants += [(f"refit+{kind}@{w:g}", kind, w, True) for kind in kinds for w in weights]
    return variants


def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |"
              for row in rows]
    return "\n".join(lines)


def write_report(out: Path, rows: list[dict], command: str, settings: TrainSettings, limit: float,
                 chosen: list[Problem]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    text = [f"# Bound-aware hidden layers probe (issue 13, failure mode 2)\n\nCommand: `{command}`\n",
            f"Settings: hidden {settings.hidden}, {settings.epochs} epochs, batch {settings.batch_size}, lr "
            f"{settings.lr}, for every method; each DeepSaDe run stops working after {limit:g} s "
            "(cut_at_limit: the rest of the epochs were skipped, the best valid model so far is kept). 75/25 split "
            "per seed, 10% of the training part for validation. train/test: MSE in raw units or accuracy. "
            "certificate: the exact re-check of the stored float32 weights. box_upper_mean / data_max_mean: mean "
            "over the last hidden layer's units of the IBP box's upper bound and the training rows' maximum; "
            "width_ratio: summed box widths / summed data ranges over those units.\n",
            "Problems:\n", *[f"- {p.name}: {p.rule}" for p in chosen], "",
            _table(rows, ["problem", "seed", "variant", "metric", "train", "test", "test_violations", "certificate",
                          "train_seconds", "cut_at_limit", "best_epoch", "box_upper_mean", "data_max_mean",
                          "width_ratio", "penalty_seconds"]), ""]
    out.with_suffix(".md").write_text("\n".join(text) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/bound_aware_probe", help="report path without suffix")
    parser.add_argument("--problems", default="", help="comma-separated subset of problem names")
    parser.add_argument("--seeds", default="1,2", help="comma-separated split seeds")
    parser.add_argument("--epochs", type=int, default=None, help="override the default epochs (all methods)")
    parser.add_argument("--weights", default="0.3,1", help="relative penalty weights to try")
    parser.add_argument("--penalties", default="spread,rule,width", help="penalties to try")
    parser.add_argument("--time-limit", type=float, default=90.0, help="seconds per DeepSaDe run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = TrainSettings() if args.epochs is None else replace(TrainSettings(), epochs=args.epochs)
    wanted = [p for p in args.problems.split(",") if p]
    chosen = [p for p in problems() if not wanted or p.name in wanted]
    variants = variant_list([float(w) for w in args.weights.split(",")], args.penalties.split(","))
    rows: list[dict] = []
    command = " ".join(["python", *sys.argv])
    for seed in (int(s) for s in args.seeds.split(",")):
        for problem in chosen:
            print(f"{problem.name} seed {seed}: {problem.rule}", flush=True)
            rows += run_problem(problem, settings, seed, variants, args.time_limit, lambda m: print(m, flush=True))
            write_report(Path(args.out), rows, command, settings, args.time_limit, chosen)


if __name__ == "__main__":
    main()
