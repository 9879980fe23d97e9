"""Cross-validation of a use case: every method on the same seeded folds, one result file per fold x method.

Protocol (DeepSaDe paper, shared/data/README.md): rows with a missing value dropped; a seeded 5-fold
split (each fold's test part is 20% of the rows); inside the remaining 80%, a seeded eighth (10% of
all rows) is the validation split, the rest (70%) the training part: 70/20/10 train/test/validation.
UC2 and UC3 get up to 40 labels flipped against the rule in the training part only (the paper's
injection). The encoding (min-max scaling, one-hot levels) and therefore the domain box are fitted on
the whole data set, as the paper scales every feature to [0, 1] before splitting.

Each finished fold x method is written at once to ``OUT/folds/fold<k>_<method>.json`` (atomically), and
``OUT/runs.csv`` is rebuilt from all of them; a rerun with the same settings skips what exists, so a
stopped run loses nothing finished. The tasks go through ``deepsade.parallel`` (joblib): ``jobs``
local processes (loky), or the workers of a Dask or Ray cluster. A sweep (``deepsade.usecases.sweep``)
runs one such experiment per seed x hyper-parameter combination, each in its own folder, as one pool of
tasks (``run_experiments``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsade.atomic import write_text_atomically
from deepsade.errors import UserInputError
from deepsade.methods import DEEPSADE, get_method, method_names
from deepsade.parallel import Backend, run_tasks
from deepsade.usecases import get as get_usecase
from deepsade.usecases.config import ExperimentConfig, reads_deepsade_epochs
from deepsade.usecases.report import write_report as make_report
from deepsade.usecases.report import write_runs_csv
from deepsade.usecases.results import (
    N_SPLITS,
    json_default,
    load_results,
    result_path,
    write_json,
)
from deepsade.usecases.sweep import combination_name

VALIDATION_SHARE_OF_REST = 1 / 8  # 10% of all rows out of the 80% left by the test fold
_NOT_COUNTERS = {"epoch", "train_loss", "val_loss", "val_violations", "seconds"}
@dataclass
class Folds:
    """Row positions of every fold's train / validation / test parts in the cleaned frame."""

    train: list[np.ndarray] = field(default_factory=list)
    val: list[np.ndarray] = field(default_factory=list)
    test: list[np.ndarray] = field(default_factory=list)


def make_folds(n_rows: int, n_splits: int = N_SPLITS, seed: int = 0) -> Folds:
    """Seeded K-fold test parts; in the rest, a seeded eighth for validation (70/20/10 for K = 5)."""
    if n_rows < 2 * n_splits:
        raise UserInputError(f"{n_rows} rows are too few for {n_splits}-fold cross-validation")
    order = np.random.default_rng(seed).permutation(n_rows)
    parts = np.array_split(order, n_splits)
    folds = Folds()
    for k in range(n_splits):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        rest = np.random.default_rng([seed, k]).permutation(rest)
        n_val = max(1, int(round(VALIDATION_SHARE_OF_REST * len(rest))))
        folds.train.append(np.sort(rest[n_val:]))
        folds.val.append(np.sort(rest[:n_val]))
        folds.test.append(np.sort(parts[k]))
    return folds


def load_frame(config: ExperimentConfig) -> tuple[pd.DataFrame, str]:
    """The use case's rows (real file when present, else its generator), complete rows only; and a
    sentence saying where they came from."""
    case = get_usecase(config.usecase)
    real = case.load_real(config.data_dir)
    if real is not None:
        frame, source = real, f"real data ({case.real_file}, {len(real)} rows)"
        if config.rows is not None and config.rows < len(frame):
            frame = frame.sample(n=config.rows, random_state=config.seed).reset_index(drop=True)
            source += f", seeded subset of {config.rows}"
    else:
        frame = case.load(config.data_dir, config.rows, config.seed)
        if case.bundled_data_source is not None:
            origin = case.bundled_data_source
        elif case.real_file is None:
            origin = f"generated ({case.name}: no public copy of the paper's data)"
        else:
            origin = f"generated stand-in (real {case.real_file} absent)"
        source = f"{origin}, {len(frame)} rows"
    complete = frame.dropna().reset_index(drop=True)
    if len(complete) < len(frame):
        source += f"; {len(frame) - len(complete)} rows with a missing value dropped"
    return complete, source


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# ---- one fold x method ---------------------------------------------------------------------------------


def run_task(config_dict: dict[str, Any], fold: int, method: str) -> dict[str, Any]:
    """Train ``method`` on fold ``fold`` (1-based), measure it, write its JSON; returns the result."""
    import torch

    from deepsade.artifact import save as save_artifact
    from deepsade.certify import certify_model
    from deepsade.estimator import DeepSaDe
    from deepsade.ingest import prepare
    from deepsade.losses import data_loss
    from deepsade.metrics import evaluate_model
    from deepsade.spec import parse_spec_text

    torch.set_num_threads(1)  # tiny networks; the other core belongs to the solver or another job
    config = ExperimentConfig(**config_dict)
    case = get_usecase(config.usecase)
    method_info = get_method(method)
    targets = list(case.targets)
    settings = config.settings()
    frame, source = load_frame(config)
    folds = make_folds(len(frame), config.n_splits, config.seed)
    k = fold - 1
    constraint = case.constraint_path
    full = prepare(frame, targets, task=case.task, positive=case.positive)
    encoding, domain = full.encoding, full.domain
    features = list(encoding.feature_columns)

    train_frame = frame.iloc[folds.train[k]].reset_index(drop=True)
    injected = 0
    if config.inject and case.inject_violations is not None:
        before = train_frame[targets].copy()
        train_frame = case.inject_violations(train_frame, n=config.inject, seed=config.seed * 1000 + fold)
        injected = int((before != train_frame[targets]).any(axis=1).sum())

    def part(rows: pd.DataFrame):
        data = prepare(rows, targets, features, case.task, encoding=encoding, domain=domain)
        data.targets = np.array(data.targets)  # a writable copy: pandas may hand out a read-only view
        return data

    train, val = part(train_frame), part(frame.iloc[folds.val[k]].reset_index(drop=True))
    test = part(frame.iloc[folds.test[k]].reset_index(drop=True))
    spec = parse_spec_text(constraint.read_text(encoding="utf-8"), encoding)
    model_seed = config.seed + k

    result: dict[str, Any] = {
        "usecase": case.name, "fold": fold, "method": method, "status": "ok",
        "result_key": config.result_key(method),
        "config": config.to_dict(), "settings": settings, "data_source": source,
        "n_rows": len(frame), "n_train": train.n_rows, "n_val": val.n_rows, "n_test": test.n_rows,
        "injected_label_violations": injected, "model_seed": model_seed,
        "mapped_features": [encoding.input_names[j] for j in spec.mapped_features],
    }
    grid_curve: list[dict[str, Any]] = []
    test_x = torch.as_tensor(test.inputs, dtype=torch.float32)
    test_y = torch.as_tensor(test.targets)

    def on_grid(lambdas: list[float], models: list) -> None:
        for lam, grid_model in zip(lambdas, models, strict=True):
            with torch.no_grad():
                outputs = grid_model(test_x)
                loss = float(data_loss(case.task, outputs, test_y))
            metrics = _test_metrics(spec, test, outputs.double().numpy())
            grid_curve.append({"lambda": lam, "test_loss": loss, **metrics})

    hidden = settings["hidden"]
    deepsade_family = method_info.family == DEEPSADE
    epochs = settings["epochs"] if reads_deepsade_epochs(method) else settings["baseline_epochs"]
    options: dict[str, Any] = {}
    if config.solver_timeout is not None:
        options["solver_timeout"] = config.solver_timeout
    if config.paper and deepsade_family:
        options["paper"] = True
    estimator = DeepSaDe(constraint, targets, task=case.task, positive=case.positive, method=method,
                         hidden=hidden, epochs=epochs, batch_size=settings["batch_size"], lr=settings["lr"],
                         max_step=settings["max_step"], margins=settings["margins"], seed=model_seed,
                         baseline_options=None if deepsade_family else {"on_grid": on_grid}, **options)
    started = time.perf_counter()
    try:
        estimator.fit_splits(train, val)
    except UserInputError as exc:  # the method does not apply to this constraint or task
        result.update(status="not applicable", reason=str(exc), train_seconds=None)
        write_json(result_path(config.out, fold, method), result)
        return result
    wall = time.perf_counter() - started
    art = estimator.artifact_
    assert art is not None
    result["train_seconds"] = round(float(art.training.get("seconds", wall)), 3)
    result["train_wall_seconds"] = round(wall, 3)
    result["epochs"] = epochs
    result["best_epoch"] = art.training.get("best_epoch")
    if not deepsade_family:
        result["lambda"] = art.training.get("lambda")
        result["lambda_curve"] = grid_curve

    test_eval = evaluate_model(art, test)
    train_eval = evaluate_model(art, train)
    result["test"] = {k2: v for k2, v in test_eval.items() if k2 not in ("method", "certificate", "task")}
    result["train_violating_rows"] = train_eval["violating_rows"]
    result["train_label_violating_rows"] = train_eval["label_violating_rows"]
    with torch.no_grad():
        result["test_loss"] = float(data_loss(case.task, art.model(test_x), test_y))

    # Certificate: DeepSaDe's own; every model also gets the same exact re-check, which says whether a
    # baseline happens to satisfy the rule over the whole domain.
    t0 = time.perf_counter()
    check = certify_model(art.model, spec, encoding, domain, float(art.training.get("output_margin", 1e-4)))
    result["certificate"] = art.certificate.get("verdict", "none")
    result["exact_check"] = check["verdict"]
    result["exact_check_seconds"] = round(time.perf_counter() - t0, 3)

    if deepsade_family:
        history = art.history
        # every counter the trainer keeps per epoch (iterations, line-search hits, MaxSMT calls, ...), summed
        counters = [key for key, value in history[0].items() if key not in _NOT_COUNTERS
                    and isinstance(value, (int, float)) and not isinstance(value, bool)] if history else []
        sums = {key: sum(h.get(key, 0) for h in history) for key in counters}
        result["solver"] = {**{k: round(v, 3) if isinstance(v, float) else v for k, v in sums.items()},
                            "init_seconds": art.training.get("init_seconds")}
        result["val_loss_curve"] = [_finite(h.get("val_loss")) for h in history]
    else:
        result["val_loss_curve"] = [_finite(h.get("val_data_loss", h.get("val_loss"))) for h in art.history]

    result["adi"] = _adi(config, art, test, fold) if config.adi_sample else None

    if case.premise is not None:  # last hidden layer of the test rows, for the t-SNE plot (paper Fig. 5)
        with torch.no_grad():
            latent = art.model.latent(test_x)[:, : hidden[-1]].numpy()
        result["test_hidden"] = np.round(latent, 5).tolist()
        result["test_premise"] = case.premise(test.frame).astype(int).tolist()

    if config.save_models:
        save_artifact(art, Path(config.out) / "models" / f"fold{fold}_{method}")
    write_json(result_path(config.out, fold, method), result)
    return result


def _test_metrics(spec, test, outputs: np.ndarray) -> dict[str, Any]:
    from deepsade.metrics import compute_metrics

    metrics = compute_metrics(spec, test, outputs)
    keep = ("mse_corrected", "accuracy_corrected", "coherent_accuracy_corrected", "flattened_accuracy_corrected",
            "jaccard_corrected", "violating_rows")
    return {key: metrics[key] for key in keep if key in metrics}


def _adi(config: ExperimentConfig, art, test, fold: int) -> dict[str, Any]:
    """AdI on a fixed seeded sample of test rows (the same rows for every method of the fold)."""
    from deepsade.verification.adi import adversity_index

    n = min(config.adi_sample, test.n_rows)
    rows = np.sort(np.random.default_rng([config.seed, fold, 7]).choice(test.n_rows, size=n, replace=False))
    report = adversity_index(art, test.inputs[rows], config.adi_epsilons, engine=config.adi_engine,
                             timeout=config.adi_timeout, jobs=1, seed=config.seed, progress=False,
                             row_ids=rows.tolist())
    summary = report.summary
    return {
        "sample": n, "engine": config.adi_engine, "timeout_s": config.adi_timeout,
        "wall_seconds": summary["wall_seconds"],
        "per_epsilon": [{key: e[key] for key in ("epsilon", "adi", "counterexample", "verified", "unknown",
                                                  "outside", "adi_if_unknown_unsafe")} for e in summary["epsilons"]],
    }


# ---- the runner ------------------------------------------------------------------------------------------


def planned_tasks(config: ExperimentConfig) -> list[tuple[int, str]]:
    n_folds = config.folds if config.folds is not None else config.n_splits
    return [(fold, method) for fold in range(1, n_folds + 1) for method in config.methods]


def finished(config: ExperimentConfig, fold: int, method: str) -> dict[str, Any] | None:
    """The stored result of this fold x method when it was made with the same settings, else None."""
    path = result_path(config.out, fold, method)
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return stored if stored.get("result_key") == config.result_key(method) else None


def refuse_other_settings(config: ExperimentConfig) -> None:
    """Refuse to run into a folder whose stored fold results were made with other settings: they would be
    overwritten, or averaged with this run's under one header."""
    clashes = []
    for fold, method in planned_tasks(config):
        path = result_path(config.out, fold, method)
        if not path.is_file():
            continue
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file is simply redone
        if stored.get("result_key") != config.result_key(method):
            clashes.append(f"fold {fold} {method}")
    if clashes:
        shown = ", ".join(clashes[:4]) + (f" and {len(clashes) - 4} more" if len(clashes) > 4 else "")
        raise UserInputError(
            f"{config.out} holds results made with other settings ({shown}); this run would overwrite them or "
            "mix two settings in one report: choose another --out (or --paper, if they came from the paper's "
            "trainer)")


def run_experiment(config: ExperimentConfig, log: Callable[[str], None] | None = print,
                   write_report: bool = True, backend: Backend | None = None) -> list[dict[str, Any]]:
    """Run every planned fold x method not already finished; rebuild runs.csv after each; then the report.

    ``backend`` says where the tasks run (default: ``config.jobs`` local processes)."""
    return run_experiments([config], log, write_report, backend)[0]


def run_experiments(configs: Sequence[ExperimentConfig], log: Callable[[str], None] | None = print,
                    write_report: bool = True, backend: Backend | None = None) -> list[list[dict[str, Any]]]:
    """Run several experiments (a sweep's combinations) as one pool of fold x method tasks.

    Each task's result is stored as soon as it reaches this process (by the worker itself too, when it
    shares the file system), and the experiment's runs.csv is rebuilt, so a lost worker or a stopped
    run costs only the unfinished tasks. Returns each experiment's planned results."""
    if not configs:
        return []
    backend = backend if backend is not None else Backend("loky", max(c.jobs for c in configs))
    quiet = all(c.quiet for c in configs)
    say = log if (log is not None and not quiet) else (lambda _line: None)
    tasks = []
    by_out: dict[str, ExperimentConfig] = {}
    for config in configs:
        refuse_other_settings(config)
    for config in configs:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out / "experiment.json",
                              json.dumps(config.to_dict(), indent=1, default=json_default) + "\n")
        by_out[config.out] = config
        payload = config.to_dict()
        for fold, method in planned_tasks(config):
            if finished(config, fold, method) is not None:
                say(f"{_label(config)} fold {fold} {method}: already finished, skipped")
            else:
                tasks.append((payload, fold, method))
    if tasks and not backend.in_process:
        say(f"{len(tasks)} fold x method tasks on {backend.describe()}")
    for result in run_tasks(run_task, tasks, backend):
        config = by_out[result["config"]["out"]]
        if finished(config, result["fold"], result["method"]) is None:  # a worker without this file system
            write_json(result_path(config.out, result["fold"], result["method"]), result)
        write_runs_csv(config.out)
        say(describe(result))
    planned = []
    for config in configs:
        write_runs_csv(config.out)
        if write_report:
            make_report(config.out)
        keep = set(planned_tasks(config))
        planned.append([r for r in load_results(config.out) if (r["fold"], r["method"]) in keep])
    return planned


def _label(config: ExperimentConfig) -> str:
    """The use case, and the sweep combination when there is one."""
    return config.usecase + (f" [{combination_name(config.seed, config.params)}]" if config.params else "")


def describe(result: dict[str, Any]) -> str:
    """One line per finished fold x method, for the log."""
    head = f"{result['usecase']} fold {result['fold']} {result['method']}"
    if result["status"] != "ok":
        return f"{head}: not applicable ({result.get('reason', '')[:90]})"
    case = get_usecase(result["usecase"])
    test = result["test"]
    quality = ", ".join(f"{m} {test.get(m + '_corrected') or 0:.4g}" for m in case.metrics)
    adi = result.get("adi")
    adi_text = "" if not adi else " AdI " + "/".join(
        "?" if e["adi"] is None else f"{e['adi']:.3g}" for e in adi["per_epsilon"])
    return (f"{head}: {result['train_seconds']:.1f} s, {quality} (corrected), test violations "
            f"{test['violating_rows']},{adi_text} certificate {result['certificate']} (exact check "
            f"{result['exact_check']})")


def parse_methods(text: str | Sequence[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    methods = tuple(m.strip().lower() for m in items if m.strip())
    unknown = [m for m in methods if m not in method_names()]
    if unknown or not methods:
        raise UserInputError(f"unknown method(s) {', '.join(unknown) or '(none)'}; "
                             f"choose among {', '.join(method_names())}")
    return methods
