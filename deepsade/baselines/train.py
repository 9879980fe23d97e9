"""The shared training loop of the baselines and the choice of the penalty weight lambda.

Every method trains the same SkipMLP as DeepSaDe (same hidden sizes, same skip connections from the
mapped features) with plain mini-batch SGD on

    (1 - lambda) * data_loss + lambda * constraint_loss        (ffn: data_loss alone)

and keeps, per model, the weights of the epoch with the lowest validation value of that objective.

Lambda (as in the DeepSaDe paper): every lambda of the grid (default 0.1, 0.2, ..., 0.9) is trained,
side by side from the same initial weights on the same mini-batches; the chosen lambda is the
*smallest* one whose kept model reaches the minimum number of validation rows that violate the
constraint. With ``inner_folds = K >= 2`` the violations are summed over a K-fold cross-validation
inside the training part instead, and the final model is then trained on the whole training part
with the chosen lambda (validation split for the best epoch). The chosen lambda and the
per-lambda results are recorded in ``artifact.training``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold
from tqdm import tqdm

from deepsade.artifact import ModelArtifact
from deepsade.baselines.constraint import ConstraintLoss, Facts, ViolationCounter, base_facts, take
from deepsade.baselines.formula import DEFAULT_STEEPNESS
from deepsade.baselines.fuzzy import FuzzyLoss
from deepsade.baselines.losses import data_loss, target_tensor
from deepsade.baselines.penalty import PenaltyLoss
from deepsade.baselines.semantic import SemanticLoss
from deepsade.baselines.stacked import StackedSkipMLP, keep_where
from deepsade.data import TabularData
from deepsade.errors import UserInputError
from deepsade.network import SkipMLP
from deepsade.spec import Spec

DEFAULT_LAMBDAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Progress = Callable[[dict[str, Any]], None]

# The constraint loss each baseline adds to the data loss (ffn: none). The methods themselves are
# registered in ``deepsade.methods``; this table says what training one of them means.
CONSTRAINT_LOSSES: dict[str, Callable[..., ConstraintLoss] | None] = {
    "ffn": None,
    "reg": lambda spec, task, tnorm, steepness: PenaltyLoss(spec),
    "sbr": lambda spec, task, tnorm, steepness: FuzzyLoss(spec, tnorm, steepness),
    "sl": lambda spec, task, tnorm, steepness: SemanticLoss(spec, task),
}


def make_constraint_loss(method: str, spec: Spec, task: str, tnorm: str = "product",
                         steepness: float = DEFAULT_STEEPNESS) -> ConstraintLoss | None:
    """The constraint loss of ``method`` compiled from ``spec`` (None for ffn); clear refusals where it does not apply."""
    if method not in CONSTRAINT_LOSSES:
        raise UserInputError(f"unknown method {method!r}; choose one of deepsade, {', '.join(CONSTRAINT_LOSSES)}")
    factory = CONSTRAINT_LOSSES[method]
    return None if factory is None else factory(spec, task, tnorm, steepness)


@dataclass
class Split:
    """One data split as tensors: network inputs, targets and the per-row facts the losses read."""

    inputs: torch.Tensor
    targets: torch.Tensor
    facts: Facts

    @property
    def n_rows(self) -> int:
        return len(self.inputs)

    def subset(self, index: np.ndarray) -> Split:
        rows = torch.as_tensor(index, dtype=torch.long)
        return Split(self.inputs[rows], self.targets[rows], take(self.facts, rows))


def make_split(data: TabularData, spec: Spec, loss: ConstraintLoss | None) -> Split:
    facts = loss.row_facts(data) if loss is not None else base_facts(spec, data)
    return Split(torch.as_tensor(data.inputs, dtype=torch.float32), target_tensor(data.encoding.task, data.targets),
                 facts)


@dataclass
class GridResult:
    """Per lambda: the kept weights, the epoch they come from, their validation results and the history."""

    lambdas: list[float]
    state: list[torch.Tensor]
    best_epoch: list[int]
    val_loss: list[float]
    val_violations: list[int]
    histories: list[list[dict[str, Any]]] = field(default_factory=list)
    seconds: float = 0.0


def fit_grid(stack: StackedSkipMLP, lambdas: Sequence[float], task: str, train: Split, val: Split,
             loss: ConstraintLoss | None, counter: ViolationCounter, *, epochs: int, batch_size: int, lr: float,
             seed: int, quiet: bool = False, progress: Progress | None = None, stage: str = "train") -> GridResult:
    """Train every copy of ``stack`` with its own lambda; keep each copy's best-validation weights."""
    weight = torch.tensor(list(lambdas), dtype=torch.float32)
    copies = len(weight)
    optimizer = torch.optim.SGD(stack.parameters(), lr=lr, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    best_state = stack.state()
    best_val = torch.full((copies,), float("inf"), dtype=torch.float64)
    best_epoch = [0] * copies
    best_violations = [val.n_rows] * copies
    histories: list[list[dict[str, Any]]] = [[] for _ in range(copies)]
    started = time.perf_counter()
    bar = tqdm(total=epochs, desc=stage, unit="epoch", disable=True if quiet or progress is not None else None, leave=False)
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(train.n_rows, generator=generator)
        summed = torch.zeros(copies, dtype=torch.float64)
        for start in range(0, train.n_rows, batch_size):
            rows = order[start:start + batch_size]
            outputs = stack(train.inputs[rows])
            objective = (1.0 - weight) * data_loss(task, outputs, train.targets[rows]).mean(-1)
            if loss is not None:
                objective = objective + weight * loss(outputs, take(train.facts, rows)).mean(-1)
            optimizer.zero_grad(set_to_none=True)
            objective.sum().backward()
            optimizer.step()
            summed += objective.detach().to(torch.float64) * len(rows)
        with torch.no_grad():
            outputs = stack(val.inputs)
            val_data = data_loss(task, outputs, val.targets).mean(-1)
            val_constraint = loss(outputs, val.facts).mean(-1) if loss is not None else torch.zeros(copies)
            val_objective = ((1.0 - weight) * val_data + weight * val_constraint).to(torch.float64)
            violations = counter(outputs, val.facts).sum(-1)
        improved = val_objective < best_val  # NaN never improves: a diverged model is never kept
        if bool(improved.any()):
            best_state = keep_where(best_state, stack.state(), improved)
            best_val = torch.where(improved, val_objective, best_val)
            for i in torch.nonzero(improved).reshape(-1).tolist():
                best_epoch[i], best_violations[i] = epoch, int(violations[i])
        seconds = time.perf_counter() - epoch_start
        train_loss = (summed / train.n_rows).tolist()
        for i in range(copies):
            histories[i].append({
                "epoch": epoch, "train_loss": train_loss[i], "val_loss": float(val_objective[i]),
                "val_data_loss": float(val_data[i]), "val_constraint_loss": float(val_constraint[i]),
                "val_violations": int(violations[i]), "seconds": seconds,
            })
        if progress is not None:
            progress({"stage": stage, "epoch": epoch, "epochs": epochs, "lambdas": list(lambdas),
                      "train_loss": train_loss, "val_loss": val_objective.tolist(),
                      "val_violations": violations.tolist(), "seconds": seconds})
        bar.set_postfix(loss=f"{min(train_loss):.4g}", val_violations=int(violations.min()))
        bar.update(1)
    bar.close()
    return GridResult([float(v) for v in lambdas], best_state, best_epoch,
                      [float(v) for v in best_val.tolist()], best_violations, histories,
                      time.perf_counter() - started)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: these networks are tiny, and waiting for a second thread on a busy
    machine costs far more than it saves (measured: 50x slower steps on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def select_lambda(lambdas: Sequence[float], violations: Sequence[float]) -> int:
    """Index of the smallest lambda among those with the fewest validation violations."""
    fewest = min(violations)
    return min((lam, i) for i, (lam, v) in enumerate(zip(lambdas, violations, strict=True)) if v == fewest)[1]


def _check_lambdas(lambdas: float | Sequence[float] | None) -> list[float]:
    if lambdas is None:
        return list(DEFAULT_LAMBDAS)
    grid = [float(lambdas)] if isinstance(lambdas, (int, float)) else [float(v) for v in lambdas]
    if not grid:
        raise UserInputError("the lambda grid is empty")
    bad = [v for v in grid if not 0.0 <= v <= 1.0]
    if bad:
        raise UserInputError(f"lambda weights the penalty against the data loss and must lie in [0, 1], got {bad}")
    return sorted(set(grid))


def _initial_model(train: TabularData, spec: Spec, hidden: Sequence[int], seed: int) -> SkipMLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SkipMLP(len(train.encoding.input_names), hidden, len(train.encoding.output_names), spec.mapped_features)


def train_baseline(method: str, train: TabularData, val: TabularData, spec: Spec, *,
                   hidden: Sequence[int] = (50, 30, 10), epochs: int = 100, batch_size: int = 5, lr: float = 0.1,
                   lambdas: float | Sequence[float] | None = DEFAULT_LAMBDAS, inner_folds: int = 0,
                   tnorm: str = "product", steepness: float = DEFAULT_STEEPNESS, seed: int = 0,
                   quiet: bool = False, progress: Progress | None = None,
                   on_grid: Callable[[list[float], list[SkipMLP]], None] | None = None) -> ModelArtifact:
    """Train ``method`` (ffn, reg, sbr or sl) on ``train``, selecting epochs (and lambda) on ``val``.

    Returns a ModelArtifact in the common model format, without guarantee: its certificate is
    ``{"verdict": "none", "note": "no certificate: trained with <method>"}``. ``lambdas=None`` means
    the default grid; a single number fixes lambda. ``progress`` (when given, instead of the
    progress bar) is called after every epoch with a summary dict. ``on_grid`` (optional) receives the
    lambdas of the final grid and one kept model per lambda, e.g. to plot test loss against lambda.
    Raises UserInputError where the method does not apply to the constraint or the task.
    """
    if method not in CONSTRAINT_LOSSES:
        raise UserInputError(f"unknown baseline method {method!r}; choose one of {', '.join(CONSTRAINT_LOSSES)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise UserInputError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise UserInputError(f"the learning rate must be positive, got {lr}")
    if train.n_rows == 0 or val.n_rows == 0:
        raise UserInputError("training and validation splits both need at least one row")
    if inner_folds not in (0, 1) and not 2 <= inner_folds <= train.n_rows:
        raise UserInputError(f"inner_folds must be 0 (use the validation split) or between 2 and {train.n_rows}")
    task = train.encoding.task
    loss = make_constraint_loss(method, spec, task, tnorm, steepness)
    grid = [0.0] if method == "ffn" else _check_lambdas(lambdas)
    counter = ViolationCounter(spec)
    train_split, val_split = make_split(train, spec, loss), make_split(val, spec, loss)
    template = _initial_model(train, spec, hidden, seed)
    settings = {"epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "seed": seed, "quiet": quiet,
                "progress": progress}
    started = time.perf_counter()
    with one_thread():
        final, kept, chosen, selection = _select_and_train(method, grid, task, train_split, val_split, loss, counter,
                                                           template, inner_folds, settings)
    seconds = time.perf_counter() - started
    if on_grid is not None:
        stack = StackedSkipMLP(template, len(final.lambdas))
        on_grid(list(final.lambdas), [stack.export(i, final.state) for i in range(len(final.lambdas))])

    training: dict[str, Any] = {
        "method": method,
        "hidden": [int(h) for h in hidden],
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "optimizer": "SGD",
        "seed": seed,
        "epoch_selection": "lowest validation value of (1 - lambda) * data loss + lambda * constraint loss",
        "best_epoch": final.best_epoch[kept],
        "val_violations": final.val_violations[kept],
        "n_train": train.n_rows,
        "n_val": val.n_rows,
        "train_seconds": seconds,
    }
    if method != "ffn":
        training["lambda"] = grid[chosen]
        training["lambda_selection"] = selection
    if method == "sbr":
        training.update(tnorm=tnorm, steepness=float(steepness))
    if isinstance(loss, SemanticLoss) and loss.unsatisfiable_patterns:
        training["note"] = (f"{loss.unsatisfiable_patterns} input pattern(s) admit no label that satisfies the "
                            "constraint; their rows carry no semantic loss")
    return ModelArtifact(
        model=StackedSkipMLP(template, len(final.lambdas)).export(kept, final.state),
        encoding=train.encoding,
        domain=train.domain,
        constraint_text=spec.source.text,
        method=method,
        training=training,
        history=final.histories[kept],
        certificate={"verdict": "none", "note": f"no certificate: trained with {method}"},
    )


def _select_and_train(method: str, grid: list[float], task: str, train: Split, val: Split,
                      loss: ConstraintLoss | None, counter: ViolationCounter, template: SkipMLP, inner_folds: int,
                      settings: dict[str, Any]) -> tuple[GridResult, int, int, dict[str, Any] | None]:
    """Train the grid, choose lambda; returns (final result, copy kept in it, chosen grid index, selection record)."""
    if len(grid) > 1 and inner_folds >= 2:
        folds = KFold(n_splits=inner_folds, shuffle=True, random_state=settings["seed"]).split(np.arange(train.n_rows))
        fold_violations = np.zeros(len(grid))
        fold_loss = np.zeros(len(grid))
        for f, (fit_rows, held_rows) in enumerate(folds):
            result = fit_grid(StackedSkipMLP(template, len(grid)), grid, task, train.subset(fit_rows),
                              train.subset(held_rows), loss, counter, stage=f"{method} inner fold {f + 1}", **settings)
            fold_violations += result.val_violations
            fold_loss += np.asarray(result.val_loss) / inner_folds
        chosen = select_lambda(grid, fold_violations.tolist())
        selection = _selection_record(grid, chosen, fold_violations.tolist(), fold_loss.tolist(), None, inner_folds)
        final = fit_grid(StackedSkipMLP(template, 1), [grid[chosen]], task, train, val, loss, counter,
                         stage=f"{method} lambda={grid[chosen]:g}", **settings)
        return final, 0, chosen, selection
    final = fit_grid(StackedSkipMLP(template, len(grid)), grid, task, train, val, loss, counter, stage=method,
                     **settings)
    chosen = select_lambda(grid, final.val_violations)
    selection = None
    if method != "ffn":
        selection = _selection_record(grid, chosen, final.val_violations, final.val_loss, final.best_epoch, 0)
    return final, chosen, chosen, selection


def _selection_record(grid: list[float], chosen: int, violations: list, losses: list, epochs: list | None,
                      inner_folds: int) -> dict[str, Any]:
    where = f"{inner_folds}-fold cross-validation inside the training part" if inner_folds else "the validation split"
    results = []
    for i, lam in enumerate(grid):
        row = {"lambda": lam, "val_violations": int(violations[i]), "val_loss": float(losses[i])}
        if epochs is not None:
            row["best_epoch"] = int(epochs[i])
        results.append(row)
    return {
        "rule": f"smallest lambda reaching the fewest violating rows on {where}",
        "inner_folds": inner_folds,
        "chosen": grid[chosen],
        "results": results,
    }
