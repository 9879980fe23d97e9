"""The Python API over data frames: ``DeepSaDe`` trains a certified model under an SMT-LIB rule file.

    model = DeepSaDe("rules.smt2", targets="y", epochs=20).fit(frame)   # trains, then certifies the weights
    model.certificate["verdict"]                                        # "certified"
    model.predict(new_rows)          # a frame of predictions in raw units with an ``in_domain`` column

``DeepSaDe`` is the frame-level API the CLI uses: one data frame holding inputs and targets. The
hyper-parameters, their validation and training with the checkpoint lifecycle live in the base class shared
with the scikit-learn estimators (``deepsade.sklearn_api``); every name matches ``deepsade train``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator

from deepsade import artifact as artifact_io
from deepsade.certify import MIN_MARGIN
from deepsade.checkpoint import CheckpointPolicy
from deepsade.checkpoint import default_directory as default_checkpoint_directory
from deepsade.data import TabularData
from deepsade.errors import UserInputError
from deepsade.ingest import prepare
from deepsade.methods import AUTO, TrainingJob, get_method, resolve_method
from deepsade.prediction import predictions_frame
from deepsade.smtlib import read_constraint_file, read_constraint_text
from deepsade.spec import Spec, parse_spec
from deepsade.training.lifecycle import run_with_checkpoints
from deepsade.training.settings import (
    OPTIMIZERS,
    NoModelExists,
    TrainSettings,
    default_batch_size,
    default_patience,
)


def maxsmt_choices() -> tuple[str, ...]:
    """The MaxSMT solvers a user may pick (``first-model`` only finds the first weights: not a training step)."""
    from deepsade.maxsmt import METHODS

    return tuple(name for name in METHODS if name != "first-model")


def strategy_choices() -> tuple[str, ...]:
    """The encoding strategies a user may pick: ``auto`` and every user-selectable registered strategy."""
    from deepsade.encoding.registry import user_choices

    return user_choices()


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _positive_ints(values: Any, name: str) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of positive integers, or a UserInputError naming ``name``."""
    try:
        items = tuple(values) if not isinstance(values, str) else ()
    except TypeError:
        items = ()
    if not items or not all(_is_int(v) and v >= 1 for v in items):
        raise UserInputError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return tuple(int(v) for v in items)


def _numbers(values: Any, name: str) -> tuple[float, ...]:
    """``values`` as a non-empty tuple of finite floats, or a UserInputError naming ``name``."""
    try:
        items = tuple(values) if not isinstance(values, str) else ()
    except TypeError:
        items = ()
    if not items or not all(_is_number(v) and math.isfinite(v) for v in items):
        raise UserInputError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    return tuple(float(v) for v in items)


def _target_list(targets: str | Sequence[str]) -> list[str]:
    """One column name, or a sequence of them, as a list."""
    return [targets] if isinstance(targets, str) else list(targets)


def split_validation(data: TabularData, fraction: float, seed: int) -> tuple[TabularData, TabularData | None]:
    """A seeded random validation split (None when the fraction is 0)."""
    if not 0 <= fraction < 1:
        raise UserInputError(f"--val-fraction must be in [0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(data.n_rows)
    n_val = int(round(fraction * data.n_rows))
    if n_val == 0:
        return data, None
    if data.n_rows - n_val < 1:
        raise UserInputError("too few rows to keep a validation split; lower --val-fraction")
    return data.subset(order[n_val:]), data.subset(order[:n_val])


class _ConstrainedTraining(BaseEstimator):
    """What every estimator shares: its hyper-parameters checked in ``fit``, the rule text, and training with
    the checkpoint lifecycle of ``deepsade train`` (``deepsade.training.lifecycle``)."""

    # ---- parameters ----------------------------------------------------------------------------------
    def _validated_settings(self) -> TrainSettings:
        """The training settings from the stored parameters, each checked once, with a clear error if bad."""
        if self.method != AUTO:
            get_method(self.method)
        hidden = _positive_ints(self.hidden, "hidden")
        chosen = "deepsade" if self.method == AUTO else self.method  # auto's own pick revisits this in _train
        batch_size = default_batch_size(chosen, bool(self.paper)) if self.batch_size is None else self.batch_size
        for name, value in (("epochs", self.epochs), ("batch_size", batch_size)):
            if not _is_int(value) or value < 1:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.line_search_steps) or self.line_search_steps < 0:
            raise UserInputError(f"line_search_steps must be an integer >= 0, got {self.line_search_steps!r}")
        for name in ("lr", "max_step", "solver_timeout", "margin"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value < float("inf"):
                raise UserInputError(f"{name} must be a positive number, got {value!r}")
        if self.margin < MIN_MARGIN:  # certify would refuse the model afterwards
            raise UserInputError(f"margin must be at least {MIN_MARGIN:g}, the certificate's policy minimum; "
                                 f"got {self.margin!r}")
        margins = _numbers(self.margins, "margins")
        if not _is_number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise UserInputError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        strategies = strategy_choices()
        if self.strategy not in strategies:
            raise UserInputError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(strategies)}")
        solvers = maxsmt_choices()
        if self.maxsmt not in solvers:
            raise UserInputError(f"unknown MaxSMT solver {self.maxsmt!r}; choose one of {', '.join(solvers)}")
        if not _is_int(self.seed):
            raise UserInputError(f"seed must be an integer, got {self.seed!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserInputError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        patience = default_patience(chosen, bool(self.paper)) if self.patience is None else self.patience
        if not _is_int(patience) or patience < 0:
            raise UserInputError(f"patience must be an integer >= 0, got {patience!r}")
        CheckpointPolicy.parse(self.checkpoint_every)
        if self.resume is True and self.out is None:
            raise UserInputError("resume=True continues the checkpoint beside out=: give out as well")
        return TrainSettings(
            hidden=hidden, epochs=self.epochs, batch_size=batch_size, lr=self.lr, max_step=self.max_step,
            margins=margins, line_search_steps=self.line_search_steps,
            projection=self.projection, strategy=self.strategy, maxsmt=self.maxsmt,
            solver_timeout=self.solver_timeout, output_margin=self.margin, val_fraction=self.val_fraction,
            seed=self.seed, paper=bool(self.paper), optimizer=self.optimizer, patience=patience,
            weight_average=bool(self.weight_average),
        )

    def _constraint_text(self) -> str:
        """The constraint as the user wrote it: a file path, or SMT-LIB text given directly."""
        text = str(self.constraint)
        if text.lstrip().startswith(("(", ";")):
            read_constraint_text(text)
            return text
        read_constraint_file(text)  # validates size, commands and encoding with clear errors
        return Path(text).read_text(encoding="utf-8")

    # ---- training ----------------------------------------------------------------------------------
    def _resume_directory(self) -> Path | None:
        """The checkpoint ``fit`` continues: ``resume=True`` the one beside ``out``, a path that one."""
        if self.resume is False or self.resume is None:
            return None
        if self.resume is True:
            return default_checkpoint_directory(self.out)
        return Path(self.resume)

    def _train(self, settings: TrainSettings, spec: Spec, train: TabularData, val: TabularData | None,
               constraint_text: str, rows: dict[str, int]) -> artifact_io.ModelArtifact:
        """``_train_with_method`` on one torch thread unless OMP_NUM_THREADS is set (``deepsade.threads``)."""
        from deepsade.threads import training_threads

        with training_threads():
            return self._train_with_method(settings, spec, train, val, constraint_text, rows)

    def _train_with_method(self, settings: TrainSettings, spec: Spec, train: TabularData, val: TabularData | None,
                           constraint_text: str, rows: dict[str, int]) -> artifact_io.ModelArtifact:
        """Train with the registered method; with ``out``, the run of ``deepsade train --out``: a checkpoint in
        ``OUT.checkpoint`` (a stale one is refused), the model written to ``out``, the checkpoint removed once
        the written model is certified and kept when writing fails."""
        name, choice = resolve_method(self.method, spec, train, settings)
        if name != "deepsade" and self.method == AUTO:  # the defaults of the method auto picked
            settings = replace(settings, **({} if self.batch_size is not None else
                                            {"batch_size": default_batch_size(name, bool(self.paper))}),
                               **({} if self.patience is not None else
                                  {"patience": default_patience(name, bool(self.paper))}))
        self.method_ = name  # the registered method that trained the model (``auto`` resolved)
        method = get_method(name)
        resume_dir = self._resume_directory()
        start = time.perf_counter()

        # asserts no output satisfies together: a contradiction is refused before any training, and a
        # boundary is the reason given if training finds no model (searched once, for certifying methods)
        conflicts = _refuse_contradictions(spec, train) if method.certifies else []

        def run(checkpoint_dir: Path | None) -> artifact_io.ModelArtifact:
            job = TrainingJob(method=name, spec=spec, train=train, val=val, settings=settings,
                              constraint_text=constraint_text, options=dict(self.baseline_options or {}),
                              progress=self.progress, checkpoint_dir=checkpoint_dir,
                              checkpoint_every=self.checkpoint_every, resume=resume_dir is not None)
            try:
                art = method.train(job)
            except NoModelExists as exc:  # say which method failed, and whether the rule itself is why
                raise NoModelExists(_no_model_message(str(exc), choice, conflicts)) from exc
            art.training.setdefault("seconds", round(time.perf_counter() - start, 3))
            if choice:
                art.training["method_choice"] = choice
            art.training.update(rows)
            # the rows the weights were fitted on and those kept aside for validation, the same for every method
            art.training.setdefault("train_rows", train.n_rows)
            art.training.setdefault("val_rows", 0 if val is None else val.n_rows)
            return art

        self.checkpoint_kept_: Path | None = None
        if self.out is None and resume_dir is None:
            return run(None)
        if self.out is None:
            raise UserInputError("resuming a checkpoint writes the finished model: give out= as well")
        artifact_io.check_writable(self.out)
        finished = run_with_checkpoints(
            self.out, run, lambda art: artifact_io.save(art, self.out),
            lambda art: art.certificate.get("verdict") == "certified",
            resume_dir=resume_dir, every=self.checkpoint_every, method=name)
        self.checkpoint_kept_ = finished.directory if finished.kept else None
        return finished.result

    # ---- using the model -----------------------------------------------------------------------------
    def _fitted(self) -> artifact_io.ModelArtifact:
        if getattr(self, "artifact_", None) is None:
            raise UserInputError("the model is not trained yet: call fit first")
        return self.artifact_

    @property
    def certificate(self) -> dict[str, Any]:
        """The certificate of the fitted model (``verdict``: certified / not certified / violated / none)."""
        return self._fitted().certificate

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model as a model directory (what ``deepsade train --out`` writes)."""
        return artifact_io.save(self._fitted(), directory)


_SHARED_PARAMETERS = """
    method : str, default="auto"
        ``auto`` (certified: sequential clamps, ``polytope``, when they take every assert of a regression rule,
        score clamps, ``scoreclamp``, when they take every assert of a classifier rule, otherwise ``deepsade``;
        always ``deepsade`` with ``paper``), or a method of the registry in ``deepsade.methods``: ``deepsade``,
        a construction (``hardnet``, ``hcr``, ``polytope``, ``scoreclamp``) or a baseline
        without guarantee (``ffn``, ``reg``, ``sbr``, ``sl``, ...). ``method_`` holds the one that trained.
    hidden : sequence of int, default=(50, 30, 10)
        Hidden layer sizes.
    epochs : int, default=50
        Passes over the training rows.
    batch_size : int, default=None
        Rows per mini-batch; None: 32 for ``deepsade`` (measured, issue 13), 5 (the paper's) with
        ``paper=True`` and for the baselines.
    lr : float, default=0.1
        Learning rate of the hidden layers; also the line search's longest step.
    max_step : float, default=0.1
        Side of the box around the last layer's weights that the MaxSMT step searches (network units).
    margins : sequence of float, default=(0.0, 1.0, 2.0)
        Soft-clause margins of the MaxSMT step (classification: score margin; regression: times max|label|).
    line_search_steps : int, default=5
        Candidate steps of the line search along the negative gradient.
    projection : bool, default=True
        When the line search fails, project the gradient step onto the constraint before MaxSMT
        (always re-checked exactly).
    strategy : str, default="auto"
        How a rule becomes a constraint on the last layer: ``auto`` or a strategy of
        ``deepsade.encoding.registry``.
    maxsmt : {"fu-malik", "z3-opt"}, default="fu-malik"
        The MaxSMT solver.
    solver_timeout : float, default=10.0
        Seconds per solver call.
    margin : float, default=1e-4
        Certificate slack: every output may move by this much (network units: scaled targets for
        regression, scores for classifiers).
    val_fraction : float, default=0.1
        Fraction of the rows kept aside to pick the best epoch (0: none).
    seed : int, default=0
        Seed of the validation split, the initial weights and the batch order.
    domain : str or path, default=None
        JSON ``{column: [lo, hi]}`` or CSV ``feature,lower,upper`` in raw units overriding the domain box
        (default: per input, [min, max] of the training rows).
    baseline_options : dict, default=None
        The method's own options (baselines: ``lambdas``, ``inner_folds``, ``tnorm``, ...).
    progress : callable, default=None
        Called with ``(stats, info)`` during training (None: quiet).
    out : str or path, default=None
        When given, ``fit`` is ``deepsade train --out OUT``: it keeps a checkpoint in ``OUT.checkpoint``
        (refusing to start over an interrupted run's checkpoint), writes the model to ``OUT``, and removes
        the checkpoint once the written model is certified (it stays when writing fails). Leave it None in
        a search (``GridSearchCV``), where every clone would write the same folder.
    checkpoint_every : str or int, default="epoch"
        When to write a checkpoint (with ``out``): ``"epoch"``, a number of iterations, a duration
        (``"90s"``, ``"10m"``) or ``"never"``.
    resume : bool or path, default=False
        Continue an interrupted run: ``True`` the checkpoint beside ``out``, a path that checkpoint
        directory (the same data, rule and settings; ``epochs`` may be larger).
    paper : bool, default=False
        Train as the DeepSaDe paper does: one latent box over the whole domain for every rule, no premise
        gates, no convex refit of the last layer (README, "How training works"). Reproduces the results
        committed under ``results/UC*``.
    optimizer : {"sgd", "adam"}, default="sgd"
        The optimiser of the hidden layers: plain SGD at ``lr`` (the paper's), or Adam at PyTorch's default
        step 1e-3 (``lr`` then only sets the line search). The last layer always takes DeepSaDe's own
        constraint-satisfying step.
    patience : int, default=None
        Early stopping: end training after this many epochs without a lower validation loss (the best
        epoch is kept, as always); 0 trains every epoch. None: 0 (every epoch, as the paper; measured against
        10 in issue 13, ``deepsade.training.settings``); the baselines always train every epoch.
    weight_average : bool, default=False
        The constructions (``auto``'s score clamps, sequential clamps, repair layer, HardNet) judge each epoch
        by, and keep, an exponential moving average of SGD's weights over the last fifth of the planned steps
        instead of the last step's weights; the rule's layer is not averaged. Measured: UC2 +1.2 accuracy points
        over 25 folds, but mixed on the price benchmark (README, "How training works"), so not the default.
        Ignored with ``paper=True``; DeepSaDe's own trainer does not average.
"""


class DeepSaDe(_ConstrainedTraining):
    """Certified constrained training over one data frame (inputs and targets), the API the CLI uses.

    Parameters
    ----------
    constraint : str or path
        The SMT-LIB rule file (or its text), over the frame's column names, in raw units.
    targets : str or sequence of str
        The target column(s).
    features : sequence of str, default=None
        The input columns (default: every column that is not a target).
    task : {"regression", "binary", "multiclass", "multilabel"}, default=None
        The learning task (inferred from the targets when None).
    positive : str, default=None
        The positive class of a binary target.
    impute : {"drop", "median", "mode"}, default="drop"
        Rows with missing inputs: drop them, or fill with the column median / mode.
    """ + _SHARED_PARAMETERS + """
    Attributes
    ----------
    artifact_ : ModelArtifact
        The trained model with its encoding, domain box and certificate.
    """

    def __init__(self, constraint: str | Path, targets: str | Sequence[str], *, features: Sequence[str] | None = None,
                 task: str | None = None, positive: str | None = None, impute: str = "drop",
                 method: str = AUTO, hidden: Sequence[int] = (50, 30, 10), epochs: int = 50,
                 batch_size: int | None = None, lr: float = 0.1, max_step: float = 0.1,
                 margins: Sequence[float] = (0.0, 1.0, 2.0), line_search_steps: int = 5, projection: bool = True,
                 strategy: str = "auto", maxsmt: str = "fu-malik", solver_timeout: float = 10.0,
                 margin: float = 1e-4, val_fraction: float = 0.1, seed: int = 0, domain: str | Path | None = None,
                 baseline_options: dict[str, Any] | None = None, progress: Callable | None = None,
                 out: str | Path | None = None, checkpoint_every: str | int = "epoch",
                 resume: bool | str | Path = False, paper: bool = False, optimizer: str = "sgd",
                 patience: int | None = None, weight_average: bool = False):
        self.constraint = constraint
        self.targets = targets
        self.features = features
        self.task = task
        self.positive = positive
        self.impute = impute
        self.method = method
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_step = max_step
        self.margins = margins
        self.line_search_steps = line_search_steps
        self.projection = projection
        self.strategy = strategy
        self.maxsmt = maxsmt
        self.solver_timeout = solver_timeout
        self.margin = margin
        self.val_fraction = val_fraction
        self.seed = seed
        self.domain = domain
        self.baseline_options = baseline_options
        self.progress = progress
        self.out = out
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.paper = paper
        self.optimizer = optimizer
        self.patience = patience
        self.weight_average = weight_average

    def fit(self, frame: pd.DataFrame, y: None = None) -> DeepSaDe:
        """Prepare ``frame`` (targets, features, encoding, domain box), split off validation rows, train."""
        settings = self._validated_settings()
        targets = _target_list(self.targets)
        if not targets:
            raise UserInputError(f"targets must name at least one column, got {self.targets!r}")
        constraint_text = self._constraint_text()
        features = list(self.features) if self.features is not None else None
        data = prepare(frame, targets, features, self.task, self.positive, self.impute, self.domain)
        spec = parse_spec(read_constraint_text(constraint_text), data.encoding)
        label_truth = spec.evaluate_raw(data.raw_inputs, data.label_scores())
        from deepsade.box_edges import edge_note, premise_edges

        self.data_summary_ = {"rows": data.n_rows, "rows_dropped": data.rows_dropped, "rows_imputed": data.rows_imputed,
                              "imputed_values": dict(data.imputed_values), "domain_note": data.domain_note(),
                              "edge_note": edge_note(premise_edges(spec, data.encoding, data.domain)),
                              **({"imputation": {"method": self.impute, "values": dict(data.fill_values)}}
                                 if data.fill_values else {}),
                              "label_violating_rows": int((~label_truth.all(axis=1)).sum())}
        train, val = split_validation(data, settings.val_fraction, settings.seed)
        self.artifact_ = self._train(settings, spec, train, val, constraint_text, self.data_summary_)
        return self

    def fit_splits(self, train: TabularData, val: TabularData | None) -> DeepSaDe:
        """Fit on splits prepared by the caller (one encoding and domain), e.g. the same folds for every
        method in a cross-validation; ``val`` selects the best epoch (and lambda for baselines)."""
        settings = self._validated_settings()
        constraint_text = self._constraint_text()
        spec = parse_spec(read_constraint_text(constraint_text), train.encoding)
        self.data_summary_ = {"rows": train.n_rows + (val.n_rows if val is not None else 0),
                              "rows_dropped": train.rows_dropped, "rows_imputed": train.rows_imputed}
        self.artifact_ = self._train(settings, spec, train, val, constraint_text, self.data_summary_)
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A frame of predictions in raw units (classifiers: scores and decisions) with an ``in_domain`` column."""
        return predictions_frame(self._fitted(), frame)

    def score(self, frame: pd.DataFrame, y: None = None) -> float:
        """R² over every target (regression), accuracy (binary, multiclass), per-label accuracy (multi-label)."""
        from sklearn.metrics import r2_score

        art = self._fitted()
        enc = art.encoding
        data = prepare(frame, enc.target_columns, enc.feature_columns, enc.task, encoding=enc, domain=art.domain)
        with torch.no_grad():
            out = art.model(torch.as_tensor(data.inputs, dtype=torch.float32)).double().numpy()
        if enc.task == "regression":
            return float(r2_score(enc.outputs_to_raw(data.targets), enc.outputs_to_raw(out)))
        if enc.task == "multiclass":
            return float(np.mean(out.argmax(axis=1) == data.targets))
        return float(np.mean((out > 0) == (data.targets > 0.5)))

    @classmethod
    def load(cls, directory: str | Path) -> DeepSaDe:
        """A fitted estimator from a model directory (its settings are the ones stored there)."""
        art = artifact_io.load(directory)
        enc = art.encoding
        model = cls(art.constraint_text, enc.target_columns, features=enc.feature_columns, task=enc.task,
                    method=art.method)
        model.artifact_ = art
        return model


def _refuse_contradictions(spec: Spec, train: TabularData) -> list:
    """The pairs of asserts no output satisfies together (``deepsade.conflicts``); a UserInputError when two
    contradict each other somewhere in the domain box (no model at all can keep the rule)."""
    from deepsade.conflicts import find_conflicts

    found = find_conflicts(spec, train.encoding, *train.domain.scaled_exact(train.encoding))
    overlaps = [c for c in found if not c.boundary]
    if overlaps:
        raise UserInputError("the rule cannot hold: " + "; ".join(c.describe() for c in overlaps[:3])
                             + " (deepsade check lists every such conflict)")
    return found


def _no_model_message(message: str, choice: str, conflicts: Sequence) -> str:
    """The trainer's 'no model' message with the method auto chose, and the asserts whose premises meet at a
    boundary with no output for both (no network is certified there), when there are."""
    why = "; ".join(c.describe() for c in conflicts[:3])
    if why:  # the rule is why: the solver's own advice to raise its time limit would contradict that
        message = message.replace("; raise --solver-timeout", "")
    return message + (f" [{choice}]" if choice else "") + (
        f". The rule itself is why (a longer --solver-timeout will not help): {why}" if why else "")
