"""The Python API: a scikit-learn-like estimator over a data frame and a constraint file.

    model = DeepSaDe("constraints/uc2_loan.smt2", targets=["Loan_Status"], positive="Y", epochs=20)
    model.fit(frame)            # trains, then certifies the stored float32 weights exactly
    model.certificate["verdict"]
    model.predict(new_frame)    # a frame of predictions, with an in_domain column
    model.save("runs/uc2"); DeepSaDe.load("runs/uc2")
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepsade import artifact as artifact_io
from deepsade.data import TabularData, prepare
from deepsade.errors import UserInputError
from deepsade.methods import TrainingJob, get_method
from deepsade.smtlib import read_constraint_file, read_constraint_text
from deepsade.spec import Spec, parse_spec
from deepsade.trainer import TrainSettings


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


def predictions_frame(art: artifact_io.ModelArtifact, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions in raw units for every row; rows with missing inputs get NaN; ``in_domain`` flags D."""
    enc = art.encoding
    missing_cols = [c for c in enc.feature_columns if c not in frame.columns]
    if missing_cols:
        raise UserInputError(f"input column(s) missing from the data: {', '.join(map(repr, missing_cols))}")
    usable = ~frame[enc.feature_columns].isna().any(axis=1).to_numpy()
    raw = np.full((len(frame), len(enc.input_names)), np.nan)
    if usable.any():
        raw[usable] = enc.encode_inputs(frame.loc[usable])
    scores = np.full((len(frame), len(enc.output_names)), np.nan)
    if usable.any():
        with torch.no_grad():
            out = art.model(torch.as_tensor(enc.scale_inputs(raw[usable]), dtype=torch.float32)).double().numpy()
        scores[usable] = enc.outputs_to_raw(out)
    result = pd.DataFrame(index=frame.index)
    if enc.task == "regression":
        for k, name in enumerate(enc.output_names):
            result[f"predicted_{name}"] = scores[:, k]
    else:
        for k, name in enumerate(enc.output_names):
            result[f"score_{name}"] = scores[:, k]
        if enc.task == "binary":
            decision = np.where(scores[:, 0] > 0, enc.classes[1], enc.classes[0])
            result[f"predicted_{enc.target_columns[0]}"] = np.where(usable, decision, None)
        elif enc.task == "multiclass":
            best = np.nanargmax(np.where(usable[:, None], scores, 0.0), axis=1)
            result[f"predicted_{enc.target_columns[0]}"] = np.where(usable, np.asarray(enc.classes)[best], None)
        else:
            for k, name in enumerate(enc.output_names):
                result[f"predicted_{name}"] = np.where(usable, (scores[:, k] > 0).astype(int), -1)
    inside = np.zeros(len(frame), dtype=bool)
    inside[usable] = art.domain.contains(raw[usable])
    result["in_domain"] = inside
    return result


class DeepSaDe:
    """Certified constrained training (method='deepsade') or another registered method, scikit-learn style.

    The constructor only stores its parameters; ``fit`` validates them (clear errors for bad values).
    ``method`` is a name of the registry in ``deepsade.methods``; ``baseline_options`` go to that
    method's trainer (baselines: ``lambdas``, ``inner_folds``, ``tnorm``, ``on_grid``, ...).
    """

    def __init__(self, constraint: str | Path, targets: Sequence[str], *, features: Sequence[str] | None = None,
                 task: str | None = None, positive: str | None = None, impute: str = "drop",
                 domain_file: str | Path | None = None, method: str = "deepsade",
                 hidden: Sequence[int] = (50, 30, 10), epochs: int = 50, batch_size: int = 5, lr: float = 0.1,
                 max_step: float = 0.1, margins: Sequence[float] = (0.0, 1.0, 2.0), line_search_steps: int = 5,
                 projection: bool = True,
                 strategy: str = "auto", maxsmt: str = "fu-malik", solver_timeout: float = 10.0,
                 output_margin: float = 1e-4, val_fraction: float = 0.1, seed: int = 0,
                 baseline_options: dict[str, Any] | None = None,
                 progress: Callable | None = None, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: str | int = "epoch", resume: bool = False):
        self.constraint = constraint
        self.targets = targets
        self.features = features
        self.task, self.positive, self.impute, self.domain_file = task, positive, impute, domain_file
        self.method = method
        self.hidden, self.epochs, self.batch_size, self.lr, self.max_step = hidden, epochs, batch_size, lr, max_step
        self.margins, self.line_search_steps, self.projection = margins, line_search_steps, projection
        self.strategy, self.maxsmt, self.solver_timeout = strategy, maxsmt, solver_timeout
        self.output_margin, self.val_fraction, self.seed = output_margin, val_fraction, seed
        self.baseline_options = baseline_options
        self.progress = progress
        # checkpoints (method deepsade): where, how often, and whether fit continues the run found there
        self.checkpoint_dir, self.checkpoint_every, self.resume = checkpoint_dir, checkpoint_every, resume
        self.artifact_: artifact_io.ModelArtifact | None = None

    # ---- parameters ----------------------------------------------------------------------------------
    def _validated_settings(self) -> TrainSettings:
        """The training settings from the stored parameters, each checked once, with a clear error if bad."""
        from deepsade.checkpoint import CheckpointPolicy
        from deepsade.encode import STRATEGIES
        from deepsade.maxsmt import METHODS as MAXSMT_SOLVERS

        get_method(self.method)
        hidden = _positive_ints(self.hidden, "hidden")
        for name in ("epochs", "batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise UserInputError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not _is_int(self.line_search_steps) or self.line_search_steps < 0:
            raise UserInputError(f"line_search_steps must be an integer >= 0, got {self.line_search_steps!r}")
        for name in ("lr", "max_step", "solver_timeout", "output_margin"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value < float("inf"):
                raise UserInputError(f"{name} must be a positive number, got {value!r}")
        margins = _numbers(self.margins, "margins")
        if not _is_number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise UserInputError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.strategy not in STRATEGIES:
            raise UserInputError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.maxsmt not in MAXSMT_SOLVERS:
            raise UserInputError(f"unknown MaxSMT solver {self.maxsmt!r}; choose one of {', '.join(MAXSMT_SOLVERS)}")
        if not _is_int(self.seed):
            raise UserInputError(f"seed must be an integer, got {self.seed!r}")
        if not _target_list(self.targets):
            raise UserInputError(f"targets must name at least one column, got {self.targets!r}")
        CheckpointPolicy.parse(self.checkpoint_every)
        return TrainSettings(
            hidden=hidden, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, max_step=self.max_step,
            margins=margins, line_search_steps=self.line_search_steps,
            projection=self.projection, strategy=self.strategy, maxsmt=self.maxsmt,
            solver_timeout=self.solver_timeout, output_margin=self.output_margin, val_fraction=self.val_fraction,
            seed=self.seed,
        )

    # ---- training ----------------------------------------------------------------------------------
    def _constraint_text(self) -> str:
        """The constraint as the user wrote it: a file path, or SMT-LIB text given directly."""
        text = str(self.constraint)
        if text.lstrip().startswith(("(", ";")):
            read_constraint_text(text)
            return text
        read_constraint_file(text)  # validates size, commands and encoding with clear errors
        return Path(text).read_text(encoding="utf-8")

    def fit(self, frame: pd.DataFrame) -> DeepSaDe:
        """Prepare ``frame`` (targets, features, encoding, domain box), split off validation rows, train."""
        settings = self._validated_settings()
        constraint_text = self._constraint_text()
        features = list(self.features) if self.features is not None else None
        data = prepare(frame, _target_list(self.targets), features, self.task, self.positive, self.impute, self.domain_file)
        spec = parse_spec(read_constraint_text(constraint_text), data.encoding)
        self.data_summary_ = {"rows": data.n_rows, "rows_dropped": data.rows_dropped, "rows_imputed": data.rows_imputed}
        train, val = split_validation(data, settings.val_fraction, settings.seed)
        return self._fit_splits(settings, spec, train, val, constraint_text)

    def fit_splits(self, train: TabularData, val: TabularData | None) -> DeepSaDe:
        """Fit on splits prepared by the caller (one encoding and domain), e.g. the same folds for every
        method in a cross-validation; ``val`` selects the best epoch (and lambda for baselines)."""
        settings = self._validated_settings()
        constraint_text = self._constraint_text()
        spec = parse_spec(read_constraint_text(constraint_text), train.encoding)
        self.data_summary_ = {"rows": train.n_rows + (val.n_rows if val is not None else 0),
                              "rows_dropped": train.rows_dropped, "rows_imputed": train.rows_imputed}
        return self._fit_splits(settings, spec, train, val, constraint_text)

    def _fit_splits(self, settings: TrainSettings, spec: Spec, train: TabularData, val: TabularData | None,
                    constraint_text: str) -> DeepSaDe:
        start = time.perf_counter()
        job = TrainingJob(method=self.method, spec=spec, train=train, val=val, settings=settings,
                          constraint_text=constraint_text, options=dict(self.baseline_options or {}),
                          progress=self.progress, checkpoint_dir=self.checkpoint_dir,
                          checkpoint_every=self.checkpoint_every, resume=self.resume)
        art = get_method(self.method).train(job)
        art.training.setdefault("seconds", round(time.perf_counter() - start, 3))
        art.training.update(self.data_summary_)
        self.artifact_ = art
        return self

    # ---- using the model -----------------------------------------------------------------------------
    @property
    def certificate(self) -> dict[str, Any]:
        return self._fitted().certificate

    def _fitted(self) -> artifact_io.ModelArtifact:
        if self.artifact_ is None:
            raise UserInputError("the model is not trained yet: call fit first")
        return self.artifact_

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return predictions_frame(self._fitted(), frame)

    def score(self, frame: pd.DataFrame) -> float:
        """Accuracy (classifiers, multi-label: per label) or minus the MSE in raw units (regression)."""
        art = self._fitted()
        data = prepare(frame, art.encoding.target_columns, art.encoding.feature_columns, art.encoding.task,
                       encoding=art.encoding, domain=art.domain)
        with torch.no_grad():
            out = art.model(torch.as_tensor(data.inputs, dtype=torch.float32)).double().numpy()
        enc = art.encoding
        if enc.task == "regression":
            return -float(np.mean((enc.outputs_to_raw(out) - enc.outputs_to_raw(data.targets)) ** 2))
        if enc.task == "multiclass":
            return float(np.mean(out.argmax(axis=1) == data.targets))
        return float(np.mean((out > 0) == (data.targets > 0.5)))

    def save(self, directory: str | Path) -> Path:
        return artifact_io.save(self._fitted(), directory)

    @classmethod
    def load(cls, directory: str | Path) -> DeepSaDe:
        art = artifact_io.load(directory)
        enc = art.encoding
        model = cls(art.constraint_text, enc.target_columns, features=enc.feature_columns, task=enc.task,
                    method=art.method)
        model.artifact_ = art
        return model
