"""Probe: is solving the last layer as a convex program worth wiring into training? (issue 13, mode 1)

For a few problems built from scikit-learn data, on one 75/25 split (seed 1):
- ffn: the unconstrained network (same hidden sizes, epochs, batch size, learning rate);
- deepsade: the trainer with its defaults;
- deepsade + refit: the same trained model, its last layer re-solved on the training rows with the SAME
  hidden layers and latent box (``deepsade.last_layer_solve``), re-checked by the trainer's check and the
  exact certificate; the original last layer is kept when either says no;
- refit-init / refit-epoch: a trainer subclass (this script only) that refits at initialisation, or at
  initialisation and after every epoch (then SGD on the hidden layers continues from the refit).
Every DeepSaDe model is certified with ``deepsade.certify.certify_model``.

With ``--solvers`` it also times every solver on the latent rows of the trained models and on synthetic
instances of the sizes that occur (up to 30k rows, 60 latent features, 16 outputs).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/probe_refit.py --solvers --out results/refit_probe
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn import datasets

from deepsade.bounds import latent_box
from deepsade.certify import certify_model
from deepsade.data import TabularData
from deepsade.estimator import DeepSaDe, split_validation
from deepsade.ingest import prepare
from deepsade.last_layer_polyhedron import NotPolyhedral, WorstCaseRows, candidate_polyhedra
from deepsade.last_layer_solve import QP_ONLY_SOLVERS, SOLVERS, solve_best_choice, solve_last_layer
from deepsade.metrics import compute_metrics, predict_outputs
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings

REFITTABLE_KINDS = {"dual", "dual-or", "sign-pattern"}


@dataclass
class Problem:
    name: str
    frame: pd.DataFrame
    targets: list[str]
    constraint: str
    rule: str  # in words, for the report
    task: str | None = None  # None: inferred from the targets


def _declare(*names: str) -> str:
    return "".join(f"(declare-const |{n}| Real)" for n in names)


def problems() -> list[Problem]:
    cancer = datasets.load_breast_cancer(as_frame=True).frame
    cancer["malignant"] = 1 - cancer.pop("target")  # sklearn's 0 is malignant; positive = malignant
    wine = datasets.load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    diabetes = datasets.load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    rng = np.random.default_rng(3)
    x = rng.random((1200, 4))
    share = 1 / (1 + np.exp(-(3 * np.sin(3 * x[:, 1]) + 2 * x[:, 2] - 1)))
    toy = pd.DataFrame(x, columns=["x1", "x2", "x3", "x4"])
    toy["y1"] = x[:, 0] * share * (0.6 + 0.4 * x[:, 3])
    toy["y2"] = x[:, 0] * (1 - share) * (0.6 + 0.4 * x[:, 3])
    return [
        Problem("breast-cancer", cancer, ["malignant"],
                _declare("worst area", "malignant") + "(assert (=> (>= |worst area| 1500) (> malignant 0)))",
                "binary: worst area >= 1500 -> malignant"),
        Problem("wine", wine, ["cultivar"],
                _declare("proline", "cultivar=0", "cultivar=1", "cultivar=2")
                + "(assert (=> (>= proline 1000) (or (< |cultivar=1| |cultivar=0|) (< |cultivar=1| |cultivar=2|))))",
                "multiclass: proline >= 1000 -> cultivar 1 never the top score (dual-or)", "multiclass"),
        Problem("diabetes", diabetes, ["progression"],
                _declare("bmi", "progression") + "(assert (and (>= progression 25) (<= progression 346)))"
                "(assert (=> (>= bmi 35) (>= progression 150)))",
                "regression: output range [25, 346] everywhere; bmi >= 35 -> progression >= 150"),
        Problem("toy-sum", toy, ["y1", "y2"],
                _declare("x1", "y1", "y2") + "(assert (<= (+ y1 y2) x1))(assert (>= y1 0))",
                "regression, 2 outputs: y1 + y2 <= x1 and y1 >= 0"),
    ]


# ---- the refit glue (what a trainer would do) --------------------------------------------------------

def refit(trainer: DeepSaDeTrainer, model: torch.nn.Module, solver: str = "slsqp") -> dict:
    """Re-solve ``model``'s last layer on the trainer's training rows, same hidden layers and box; keep it only
    when the trainer's check accepts it. Returns what happened."""
    kinds = set(trainer.encoder.kinds.values())
    if not kinds <= REFITTABLE_KINDS:
        return {"status": f"not applicable ({', '.join(sorted(kinds - REFITTABLE_KINDS))} asserts)", "seconds": 0.0}
    t0 = time.perf_counter()
    box = latent_box(model, trainer.domain_low, trainer.domain_high)
    enc = trainer.encoder
    try:
        polyhedra = candidate_polyhedra(list(enc.duals.values()), list(enc.disjunctive.values()), enc.sign_pattern,
                                        trainer.layout.n_out, trainer.layout.n_latent, box[0], box[1],
                                        float(trainer.solve_margin))
    except NotPolyhedral as exc:
        return {"status": f"not applicable ({exc})", "seconds": time.perf_counter() - t0}
    with torch.no_grad():
        latent = model.latent(torch.as_tensor(trainer.data.inputs, dtype=torch.float32)).double().numpy()
    start = (model.last.weight.detach().double().numpy(), model.last.bias.detach().double().numpy())
    fit = solve_best_choice(latent, np.asarray(trainer.data.targets), trainer.task, polyhedra, start=start,
                            solver=solver)
    if fit is None:
        return {"status": "solver found nothing inside", "seconds": time.perf_counter() - t0}
    accepted = trainer.satisfied(fit.weights, fit.biases, box)
    if accepted:
        with torch.no_grad():
            model.last.weight.copy_(torch.as_tensor(fit.weights, dtype=torch.float32))
            model.last.bias.copy_(torch.as_tensor(fit.biases, dtype=torch.float32))
    return {"status": fit.status if accepted else "rejected by the trainer's check", "loss": fit.loss,
            "start_loss": fit.start_loss, "programs": len(polyhedra), "seconds": time.perf_counter() - t0}


class RefitTrainer(DeepSaDeTrainer):
    """The trainer with a last-layer refit at initialisation and (``every_epoch``) after each epoch's last
    step, before validation selection; the rest of the loop is untouched."""

    every_epoch = True

    def initialise(self) -> None:
        super().initialise()
        self.refit_log = [refit(self, self.model)]

    def _step(self, loop, x, y, stats) -> None:
        super()._step(loop, x, y, stats)
        if self.every_epoch and loop.position + self.settings.batch_size >= len(loop.order):
            outcome = refit(self, self.model)  # the hidden layers have just moved: a new box
            self.refit_log.append(outcome)
            if outcome["status"] in ("solved", "pulled-back", "start"):
                loop.valid_state = {name: t.detach().clone() for name, t in self.model.state_dict().items()}


class RefitInitTrainer(RefitTrainer):
    every_epoch = False


# ---- the measurements ---------------------------------------------------------------------------------

def quality(spec, model, data: TabularData) -> tuple[float, int]:
    metrics = compute_metrics(spec, data, predict_outputs(model, data.inputs))
    key = "mse" if data.encoding.task == "regression" else "accuracy"
    return float(metrics[key]), int(metrics["violating_rows"])


def splits(problem: Problem, seed: int) -> tuple[TabularData, TabularData | None, TabularData]:
    data = prepare(problem.frame, problem.targets, task=problem.task)
    order = np.random.default_rng(seed).permutation(data.n_rows)
    n_test = int(round(0.25 * data.n_rows))
    test, rest = data.subset(order[:n_test]), data.subset(order[n_test:])
    train, val = split_validation(rest, TrainSettings().val_fraction, 0)
    return train, val, test


def run_problem(problem: Problem, settings: TrainSettings, seed: int, log) -> tuple[list[dict], list]:
    train, val, test = splits(problem, seed)
    spec = parse_spec_text(problem.constraint, train.encoding)
    rows: list[dict] = []
    trained = []

    def record(variant: str, model, seconds: float, certificate: str, extra: dict | None = None) -> None:
        train_q, _ = quality(spec, model, train)
        test_q, test_violations = quality(spec, model, test)
        row = {"problem": problem.name, "task": train.encoding.task, "variant": variant,
               "metric": "mse" if train.encoding.task == "regression" else "accuracy",
               "train": round(train_q, 4), "test": round(test_q, 4), "test_violations": test_violations,
               "certificate": certificate, "train_seconds": round(seconds, 1)}
        row.update(extra or {})
        rows.append(row)
        log(f"  {variant:24s} train {row['train']:<10} test {row['test']:<10} viol {test_violations} "
            f"{certificate} {row['train_seconds']} s {extra or ''}")

    t0 = time.perf_counter()
    ffn = DeepSaDe(problem.constraint, problem.targets, method="ffn", hidden=settings.hidden, epochs=settings.epochs,
                   batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed).fit_splits(train, val)
    record("ffn", ffn.artifact_.model, time.perf_counter() - t0, "-")

    def certified(model) -> str:
        return certify_model(model, spec, train.encoding, train.domain, settings.output_margin)["verdict"]

    for variant, trainer_class in (("deepsade", DeepSaDeTrainer), ("refit-init", RefitInitTrainer),
                                   ("refit-init+epoch", RefitTrainer)):
        t0 = time.perf_counter()
        trainer = trainer_class(spec, train, settings)
        result = trainer.fit(val)
        seconds = time.perf_counter() - t0
        log_entries = getattr(trainer, "refit_log", [])
        extra = {}
        if log_entries:
            extra = {"refits": len(log_entries),
                     "refit_accepted": sum(e["status"] in ("solved", "pulled-back") for e in log_entries),
                     "refit_seconds": round(sum(e["seconds"] for e in log_entries), 2),
                     "refit_status": log_entries[0]["status"]}
        record(variant, result.model, seconds, certified(result.model), extra)
        trained.append((variant, trainer, result.model))
        refitted = copy.deepcopy(result.model)
        outcome = refit(trainer, refitted)
        record(variant + " +final refit", refitted, seconds + outcome["seconds"], certified(refitted),
               {"refit_status": outcome["status"], "refit_seconds": round(outcome["seconds"], 2)})
    return rows, [(problem.name, variant, trainer, model) for variant, trainer, model in trained]


# ---- solver timings -----------------------------------------------------------------------------------

def _time_solvers(label: str, latent: np.ndarray, targets: np.ndarray, task: str, polyhedron: WorstCaseRows,
                  start, log) -> list[dict]:
    rows = []
    for solver in SOLVERS[1:]:  # every solver but "auto"
        if solver in QP_ONLY_SOLVERS and task != "regression":
            continue
        t0 = time.perf_counter()
        try:
            fit = solve_last_layer(latent, targets, task, polyhedron, start=start, solver=solver)
        except Exception as exc:  # a solver failing is a measurement, not a crash of the probe
            fit, status = None, f"error {type(exc).__name__}"
        else:
            status = fit.status if fit is not None else "none"
        seconds = time.perf_counter() - t0
        rows.append({"instance": label, "task": task, "rows": latent.shape[0], "latent": latent.shape[1],
                     "outputs": polyhedron.n_out, "constraint_rows": polyhedron.n_rows, "solver": solver,
                     "seconds": round(seconds, 3), "status": status,
                     "loss": round(fit.loss, 6) if fit is not None else None})
        log(f"  {label:34s} {solver:13s} {seconds:8.3f} s  {status:12s} loss {rows[-1]['loss']}")
    return rows


def synthetic_instance(task: str, n: int, n_latent: int, n_out: int, seed: int):
    """Latent rows in a box, targets from a noisy linear-logistic model, and a random polyhedron with a known
    inside point (W = 0, b = b0): a sum-bound row, one upper bound per output, one lower bound on output 0."""
    rng = np.random.default_rng(seed)
    high = rng.uniform(0.5, 3.0, n_latent)
    low = np.zeros(n_latent)
    latent = rng.random((n, n_latent)) * high
    w_true = rng.normal(size=(n_out, n_latent))
    scores = latent @ w_true.T / np.sqrt(n_latent) + 0.3 * rng.normal(size=(n, n_out))
    if task == "regression":
        targets = scores
    elif task == "multiclass":
        targets = scores.argmax(axis=1)
    else:
        targets = (scores > np.median(scores, axis=0)).astype(float)
    outs = [np.ones(n_out)] + [np.eye(n_out)[k] for k in range(n_out)] + [-np.eye(n_out)[0]]
    lat = np.zeros((len(outs), n_latent))
    lat[0, -1] = -1.0  # sum of outputs <= the last latent coordinate (a skip feature)
    b0 = np.zeros(n_out)
    bound = np.array([np.maximum(l_ * low, l_ * high).sum() + o @ b0 for o, l_ in zip(outs, lat)]) + 0.5
    polyhedron = WorstCaseRows(np.array(outs), lat, np.tile(low, (len(outs), 1)), np.tile(high, (len(outs), 1)),
                               bound)
    return latent, targets, polyhedron, (np.zeros((n_out, n_latent)), b0)


def solver_timings(trained: list, log) -> list[dict]:
    rows = []
    for name, variant, trainer, model in trained:
        if variant != "deepsade":
            continue
        box = latent_box(model, trainer.domain_low, trainer.domain_high)
        enc = trainer.encoder
        try:
            polyhedra = candidate_polyhedra(list(enc.duals.values()), list(enc.disjunctive.values()),
                                            enc.sign_pattern, trainer.layout.n_out, trainer.layout.n_latent,
                                            box[0], box[1], float(trainer.solve_margin))
        except NotPolyhedral:
            continue
        with torch.no_grad():
            latent = model.latent(torch.as_tensor(trainer.data.inputs, dtype=torch.float32)).double().numpy()
        start = (model.last.weight.detach().double().numpy(), model.last.bias.detach().double().numpy())
        rows += _time_solvers(f"{name} (trained, choice 1/{len(polyhedra)})", latent,
                              np.asarray(trainer.data.targets), trainer.task, polyhedra[0], start, log)
    for task, n, n_latent, n_out in (("binary", 30_000, 11, 1), ("regression", 30_000, 15, 5),
                                     ("multiclass", 5_000, 11, 10), ("multilabel", 1_000, 31, 8)):
        latent, targets, polyhedron, start = synthetic_instance(task, n, n_latent, n_out, seed=n_latent)
        rows += _time_solvers(f"synthetic {task} {n}x{n_latent}x{n_out}", latent, targets, task, polyhedron, start,
                              log)
    return rows


# ---- report -------------------------------------------------------------------------------------------

def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out: Path, quality_rows: list[dict], timing_rows: list[dict], command: str,
                 problem_list: list[Problem], settings: TrainSettings) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, rows in (("", quality_rows), ("_solvers", timing_rows)):
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            with open(out.with_name(out.name + suffix + ".csv"), "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)
    text = [f"# Last-layer refit probe (issue 13, failure mode 1)\n\nCommand: `{command}`\n",
            f"Settings: DeepSaDe defaults (hidden {settings.hidden}, {settings.epochs} epochs, batch "
            f"{settings.batch_size}, lr {settings.lr}); ffn with the same hidden sizes, epochs, batch and lr. "
            "One 75/25 split (seed 1); 10% of the training part is the validation split. train/test: accuracy "
            "(classification) or MSE in raw units (regression). 'certificate' is the exact re-check "
            "(`certify_model`) of the stored float32 weights. '+final refit' re-solves the trained model's last "
            "layer on the training rows with the same hidden layers and latent box (SLSQP).\n",
            "Problems:\n", *[f"- {p.name}: {p.rule}" for p in problem_list], ""]
    if quality_rows:
        text += ["## Quality before / after\n", _table(quality_rows, [
            "problem", "variant", "metric", "train", "test", "test_violations", "certificate", "train_seconds",
            "refits", "refit_accepted", "refit_seconds", "refit_status"]), ""]
    if timing_rows:
        text += ["## Solver timings (one program, warm start from the current last layer)\n",
                 _table(timing_rows, ["instance", "solver", "seconds", "status", "loss", "rows", "latent", "outputs",
                                      "constraint_rows"]), ""]
    out.with_name(out.name + ".md").write_text("\n".join(text) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/refit_probe", help="report path without suffix")
    parser.add_argument("--problems", default="", help="comma-separated subset of problem names")
    parser.add_argument("--epochs", type=int, default=None, help="override the default epochs (all methods)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the 75/25 split")
    parser.add_argument("--solvers", action="store_true", help="also time every solver")
    parser.add_argument("--solvers-only", action="store_true",
                        help="time the solvers only (models for the trained instances: default DeepSaDe)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = TrainSettings() if args.epochs is None else replace(TrainSettings(), epochs=args.epochs)
    wanted = [p for p in args.problems.split(",") if p]
    chosen = [p for p in problems() if not wanted or p.name in wanted]
    quality_rows, trained = [], []
    for problem in chosen:
        print(f"{problem.name}: {problem.rule}", flush=True)
        if args.solvers_only:
            train, val, _ = splits(problem, args.seed)
            trainer = DeepSaDeTrainer(parse_spec_text(problem.constraint, train.encoding), train, settings)
            trained.append((problem.name, "deepsade", trainer, trainer.fit(val).model))
            continue
        rows, models = run_problem(problem, settings, args.seed, lambda line: print(line, flush=True))
        quality_rows += rows
        trained += models
        write_report(Path(args.out), quality_rows, [], " ".join(["python", *sys.argv]), chosen, settings)
    timing_rows = solver_timings(trained, lambda line: print(line, flush=True)) \
        if args.solvers or args.solvers_only else []
    write_report(Path(args.out), quality_rows, timing_rows, " ".join(["python", *sys.argv]), chosen, settings)


if __name__ == "__main__":
    main()
