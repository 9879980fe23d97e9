"""The Python API: a scikit-learn-like estimator over a data frame and a constraint file.

    model = DeepSaDe("constraints/uc2_loan.smt2", targets=["Loan_Status"], positive="Y", epochs=20)
    model.fit(frame)            # trains, then certifies the stored float32 weights exactly
    model.certificate["verdict"]
    model.predict(new_frame)    # a frame of predictions, with an in_domain column
    model.save("runs/uc2"); DeepSaDe.load("runs/uc2")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepsade import artifact as artifact_io
from deepsade.certify import certify_model
from deepsade.checkpoint import CheckpointPolicy
from deepsade.data import TabularData, prepare
from deepsade.errors import UserInputError
from deepsade.smtlib import read_constraint_file, read_constraint_text
from deepsade.spec import Spec, parse_spec, vacuous_asserts
from deepsade.trainer import DeepSaDeTrainer, TrainSettings

METHODS = ("deepsade", "ffn", "reg", "sbr", "sl")


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
    """Certified constrained training (method='deepsade') or a baseline, scikit-learn style."""

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
        self.targets = list(targets)
        self.features = list(features) if features is not None else None
        self.task, self.positive, self.impute, self.domain_file = task, positive, impute, domain_file
        self.method = method
        self.settings = TrainSettings(
            hidden=tuple(int(h) for h in hidden), epochs=epochs, batch_size=batch_size, lr=lr, max_step=max_step,
            margins=tuple(float(m) for m in margins), line_search_steps=line_search_steps, projection=projection,
            strategy=strategy,
            maxsmt=maxsmt, solver_timeout=solver_timeout, output_margin=output_margin, val_fraction=val_fraction,
            seed=seed,
        )
        self.baseline_options = dict(baseline_options or {})
        self.progress = progress
        # checkpoints (method deepsade): where, how often, and whether fit continues the run found there
        self.checkpoint_dir, self.checkpoint_every, self.resume = checkpoint_dir, checkpoint_every, resume
        self.artifact_: artifact_io.ModelArtifact | None = None

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
        if self.method not in METHODS:
            raise UserInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        constraint_text = self._constraint_text()
        data = prepare(frame, self.targets, self.features, self.task, self.positive, self.impute, self.domain_file)
        spec = parse_spec(read_constraint_text(constraint_text), data.encoding)
        self.data_summary_ = {"rows": data.n_rows, "rows_dropped": data.rows_dropped, "rows_imputed": data.rows_imputed}
        train, val = split_validation(data, self.settings.val_fraction, self.settings.seed)
        return self._fit_splits(spec, train, val, constraint_text)

    def fit_splits(self, train: TabularData, val: TabularData | None) -> DeepSaDe:
        """Fit on splits prepared by the caller (one encoding and domain), e.g. the same folds for every
        method in a cross-validation; ``val`` selects the best epoch (and lambda for baselines)."""
        if self.method not in METHODS:
            raise UserInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        constraint_text = self._constraint_text()
        spec = parse_spec(read_constraint_text(constraint_text), train.encoding)
        self.data_summary_ = {"rows": train.n_rows + (val.n_rows if val is not None else 0),
                              "rows_dropped": train.rows_dropped, "rows_imputed": train.rows_imputed}
        return self._fit_splits(spec, train, val, constraint_text)

    def _fit_splits(self, spec: Spec, train: TabularData, val: TabularData | None,
                    constraint_text: str) -> DeepSaDe:
        start = time.perf_counter()
        if self.method == "deepsade":
            art = self._fit_deepsade(spec, train, val, constraint_text)
        else:
            art = self._fit_baseline(spec, train, val)
            art.constraint_text = constraint_text
        art.training.setdefault("seconds", round(time.perf_counter() - start, 3))
        art.training.update(self.data_summary_)
        self.artifact_ = art
        return self

    def _fit_deepsade(self, spec: Spec, train: TabularData, val: TabularData | None,
                      constraint_text: str) -> artifact_io.ModelArtifact:
        vacuous = vacuous_asserts(spec, *train.domain.scaled_exact(train.encoding))
        if len(vacuous) == len(spec.asserts):
            raise UserInputError(
                "no assert's premise holds anywhere in the domain box, so the constraint would enforce nothing "
                "(values are raw units: check them, or widen the box with --domain)")
        trainer = DeepSaDeTrainer(spec, train, self.settings, progress=self.progress,
                                  checkpoint_dir=self.checkpoint_dir,
                                  checkpoint_policy=CheckpointPolicy.parse(self.checkpoint_every))
        result = trainer.fit(val, resume=self.resume)
        certificate = certify_model(result.model, spec, train.encoding, train.domain, self.settings.output_margin)
        certificate["strategy"] = {str(i + 1): k for i, k in trainer.encoder.kinds.items()}
        certificate["constraint_sha256"] = artifact_io.text_sha256(constraint_text)
        training = asdict(self.settings)
        training.update({"method": "deepsade", "seconds": round(result.seconds, 3),
                         "init_seconds": round(result.init_seconds, 3), "best_epoch": result.best_epoch,
                         "train_rows": train.n_rows, "val_rows": 0 if val is None else val.n_rows})
        notes = list(spec.notes) + [f"assert {i + 1}: its premise never holds in the domain box, so it constrains "
                                    "nothing there" for i in vacuous] + list(result.notes)
        if notes:
            training["notes"] = notes
        return artifact_io.ModelArtifact(
            model=result.model, encoding=train.encoding, domain=train.domain, constraint_text=constraint_text,
            method="deepsade", training=training, history=[asdict(h) for h in result.history],
            certificate=certificate,
        )

    def _fit_baseline(self, spec: Spec, train: TabularData, val: TabularData | None) -> artifact_io.ModelArtifact:
        try:
            from deepsade.baselines import train_baseline
        except ImportError as exc:  # pragma: no cover - the baselines ship with the package
            raise UserInputError(f"baseline methods are unavailable: {exc}") from None
        s = self.settings
        return train_baseline(self.method, train, val if val is not None else train, spec, hidden=s.hidden,
                              epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed,
                              quiet=self.progress is None, **self.baseline_options)

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
