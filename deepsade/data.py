"""The data model: the encoding of raw columns, [0,1] scaling, the domain box D, and a prepared table.

Everything the network sees is in *scaled units*: each encoded input is min-max scaled with the
training rows' min and max; regression targets likewise. The encoding is fitted once
(``deepsade.ingest.fit_encoding``) and stored in the model directory (``Encoding.to_dict``) so that new
data is transformed identically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsade.errors import UserInputError

TASKS = ("regression", "binary", "multiclass", "multilabel")
WIDE_CATEGORICAL = 100  # a categorical column with more values than this gets a note (one input per value)


def format_level(value: Any) -> str:
    """Category names as users write them: 1.0 -> '1', 'Male' -> 'Male'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Encoding:
    """How raw columns become the network's inputs and outputs (fitted on training rows, JSON-serialisable)."""

    feature_columns: list[str]
    categorical_levels: dict[str, list[str]]
    input_names: list[str]
    target_columns: list[str]
    task: str
    output_names: list[str]
    input_min: list[float]
    input_max: list[float]
    classes: list[str] | None = None  # binary: [negative, positive]; multiclass: class names
    target_min: list[float] | None = None  # regression only
    target_max: list[float] | None = None
    # numeric input columns whose training values were all whole numbers: a real row holds a whole
    # number there (``deepsade.realisable``). None in encodings stored before this was recorded: every
    # numeric column is then treated as real.
    integer_inputs: list[str] | None = None
    # feature columns left out because they held one value in the training rows (column -> that value):
    # the network never reads them, so the certificate holds whatever they hold. None: none left out.
    constant_columns: dict[str, str] | None = None
    # text columns left out of the default inputs because every training row held its own value (an id, a
    # timestamp): one-hot, they would add one input per row and nothing a new row could match. None: none.
    identifier_columns: list[str] | None = None
    # regression only: exact (offset, scale) per output as rational strings ("p/q"), raw = offset + scale *
    # network output, when they are not the float64 target_min / target_max (kept then as their nearest
    # floats): the scaling chosen so that a rule's equalities on outputs have exact float32 coefficients
    # (``constructions.exact_equalities``). None: target_min / target_max are exact.
    output_affine_exact: list[list[str]] | None = None

    def identifier_columns_note(self) -> str | None:
        """One line naming the text columns left out as identifiers, and the wide categorical inputs kept."""
        parts = []
        if self.identifier_columns:
            parts.append(f"{len(self.identifier_columns)} text column(s) held a different value in every row "
                         f"(identifiers) and were left out: {', '.join(self.identifier_columns)} (name them with "
                         "--features to use them anyway)")
        wide = {c: len(levels) for c, levels in self.categorical_levels.items() if len(levels) > WIDE_CATEGORICAL}
        if wide:
            parts.append("categorical column(s) with many values, one input each: "
                         + ", ".join(f"{c} ({n})" for c, n in wide.items())
                         + "; a value no training row held gets no input at prediction time")
        return "; ".join(parts) or None

    def positive_class_note(self) -> str | None:
        """For a binary target, one line naming the class a positive score means (None for other tasks)."""
        if self.task != "binary" or not self.classes:
            return None
        negative, positive = self.classes
        return (f"binary target {self.target_columns[0]!r}: positive class {positive!r}, negative {negative!r} "
                f"(a rule's '> 0' on {self.output_names[0]} means {positive!r}); --positive chooses it")

    def constant_columns_note(self) -> str | None:
        """One line naming the feature columns left out for holding one value (None: none were)."""
        constant = self.constant_columns or {}
        if not constant:
            return None
        names = ", ".join(list(constant)[:8]) + (f" and {len(constant) - 8} more" if len(constant) > 8 else "")
        return (f"{len(constant)} input column(s) held one value in every row and were left out (the model does "
                f"not read them): {names}")

    # ---- inputs -------------------------------------------------------------------------------
    def encode_inputs(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw encoded inputs (numeric columns as they are, categoricals one-hot), float64, shape (n, d)."""
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise UserInputError(f"input column(s) missing from the data: {', '.join(map(repr, missing))}")
        blocks = []
        for column in self.feature_columns:
            if column in self.categorical_levels:
                values = frame[column].map(format_level).to_numpy(dtype=object)
                levels = np.array(self.categorical_levels[column], dtype=object)
                blocks.append((values[:, None] == levels[None, :]).astype(np.float64))
            else:
                try:
                    blocks.append(pd.to_numeric(frame[column]).to_numpy(dtype=np.float64)[:, None])
                except (ValueError, TypeError):
                    raise UserInputError(f"input column {column!r} must be numeric in this model") from None
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def unseen_categories(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per categorical column, the rows holding a category the encoding never saw (their one-hot block is
        all zero, which no training row had); missing values are not counted."""
        unseen = {}
        for column, levels in self.categorical_levels.items():
            if column not in frame.columns:
                continue
            present = frame[column].notna().to_numpy()
            known = frame[column].map(format_level).isin(levels).to_numpy()
            if (present & ~known).any():
                unseen[column] = present & ~known
        return unseen

    def scale_inputs(self, raw: np.ndarray) -> np.ndarray:
        """Raw encoded inputs -> scaled units ([0, 1] on the training rows)."""
        low, high = np.asarray(self.input_min), np.asarray(self.input_max)
        return (raw - low) / (high - low)

    def input_affine(self) -> list[tuple[Fraction, Fraction]]:
        """Exact (offset, scale) per input with raw = offset + scale * scaled, as rationals."""
        return [(Fraction(lo), Fraction(hi) - Fraction(lo)) for lo, hi in zip(self.input_min, self.input_max, strict=False)]

    # ---- targets / outputs --------------------------------------------------------------------
    def encode_targets(self, frame: pd.DataFrame) -> np.ndarray:
        """Targets in network units: scaled values (regression), 0/1 (binary, multilabel), class index (multiclass)."""
        missing = [c for c in self.target_columns if c not in frame.columns]
        if missing:
            raise UserInputError(f"target column(s) missing from the data: {', '.join(map(repr, missing))}")
        if self.task == "regression":
            raw = frame[self.target_columns].to_numpy(dtype=np.float64)
            offset, scale = self._output_floats()
            return (raw - offset) / scale
        if self.task == "binary":
            values = frame[self.target_columns[0]].map(format_level)
            unknown = sorted(set(values) - set(self.classes or []))
            if unknown:
                raise UserInputError(f"target {self.target_columns[0]!r} has unseen class(es): {unknown}")
            return (values == self.classes[1]).to_numpy(dtype=np.float64)[:, None]
        if self.task == "multiclass":
            values = frame[self.target_columns[0]].map(format_level)
            lookup = {name: i for i, name in enumerate(self.classes or [])}
            unknown = sorted(set(values) - set(lookup))
            if unknown:
                raise UserInputError(f"target {self.target_columns[0]!r} has unseen class(es): {unknown}")
            return values.map(lookup).to_numpy(dtype=np.int64)
        return frame[self.target_columns].to_numpy(dtype=np.float64)

    def output_affine(self) -> list[tuple[Fraction, Fraction]]:
        """Exact (offset, scale) per output with raw = offset + scale * network output."""
        if self.task == "regression":
            if self.output_affine_exact is not None:
                return [(Fraction(offset), Fraction(scale)) for offset, scale in self.output_affine_exact]
            return [
                (Fraction(lo), Fraction(hi) - Fraction(lo)) for lo, hi in zip(self.target_min, self.target_max, strict=False)
            ]
        return [(Fraction(0), Fraction(1))] * len(self.output_names)

    def _output_floats(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) per regression output as float64 arrays (the nearest floats of the exact ones)."""
        if self.output_affine_exact is not None:
            pairs = self.output_affine()
            return np.array([float(o) for o, _ in pairs]), np.array([float(s) for _, s in pairs])
        low, high = np.asarray(self.target_min), np.asarray(self.target_max)
        return low, high - low

    def outputs_to_raw(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs -> raw units (regression targets unscaled; classifier scores unchanged)."""
        if self.task != "regression":
            return np.asarray(outputs, dtype=np.float64)
        offset, scale = self._output_floats()
        return offset + np.asarray(outputs, dtype=np.float64) * scale

    def targets_as_scores(self, targets: np.ndarray) -> np.ndarray:
        """True labels as raw-unit outputs, to check them against the constraint.

        Regression: the raw target values. Classifiers: +1 for a true class / label, -1 otherwise
        (a score's sign is its decision)."""
        if self.task == "regression":
            return self.outputs_to_raw(targets)
        if self.task == "multiclass":
            scores = -np.ones((len(targets), len(self.output_names)))
            scores[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)] = 1.0
            return scores
        return np.where(np.asarray(targets) > 0.5, 1.0, -1.0).reshape(len(targets), -1)

    def to_dict(self) -> dict[str, Any]:
        """The encoding as JSON-ready data (``integer_inputs``, ``constant_columns`` and ``identifier_columns``
        left out when None, so that an encoding stored before they were recorded serialises, and hashes,
        exactly as it did)."""
        data = dict(self.__dict__)
        for optional in ("integer_inputs", "constant_columns", "identifier_columns", "output_affine_exact"):
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoding:
        return cls(**data)


# Scaled values are (v - min) / (max - min): the range must be a finite float64 with room to spare, or
# scaling overflows into inf / NaN (a column spanning +-1.7e308 has max - min = inf).
MAX_RANGE = 1e300


@dataclass
class Domain:
    """The input domain box D per encoded input, in raw units (the guarantee holds on D)."""

    lower: np.ndarray
    upper: np.ndarray
    source: str = "training rows"

    def scaled(self, encoding: Encoding) -> tuple[np.ndarray, np.ndarray]:
        """The box in scaled units, float64."""
        return encoding.scale_inputs(self.lower), encoding.scale_inputs(self.upper)

    def scaled_exact(self, encoding: Encoding) -> tuple[list[Fraction], list[Fraction]]:
        """The box in scaled units as exact rationals."""
        affine = encoding.input_affine()
        low = [(Fraction(v) - off) / scale for v, (off, scale) in zip(self.lower.tolist(), affine, strict=False)]
        high = [(Fraction(v) - off) / scale for v, (off, scale) in zip(self.upper.tolist(), affine, strict=False)]
        return low, high

    def contains(self, raw_inputs: np.ndarray) -> np.ndarray:
        """Boolean mask of rows inside the box."""
        return np.all((raw_inputs >= self.lower) & (raw_inputs <= self.upper), axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"lower": self.lower.tolist(), "upper": self.upper.tolist(), "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        return cls(np.asarray(data["lower"], dtype=np.float64), np.asarray(data["upper"], dtype=np.float64),
                   data.get("source", "stored"))


def default_domain(encoding: Encoding) -> Domain:
    return Domain(np.asarray(encoding.input_min, dtype=np.float64), np.asarray(encoding.input_max, dtype=np.float64))


def read_domain_override(path: str | Path, encoding: Encoding) -> Domain:
    """Domain from a JSON file ``{"column": [lo, hi], ...}`` or a CSV with columns feature,lower,upper.

    Unnamed features keep the training-rows bounds. One-hot inputs are always [0, 1]."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"domain file not found: {path}")
    try:
        if path.suffix.lower() == ".json":
            bounds = {str(k): tuple(v) for k, v in json.loads(path.read_text()).items()}
        else:
            table = pd.read_csv(path)
            if not {"feature", "lower", "upper"} <= set(table.columns):
                raise UserInputError(f"domain CSV {path} needs columns feature,lower,upper")
            bounds = {str(r.feature): (r.lower, r.upper) for r in table.itertuples()}
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"cannot read domain file {path}: {exc}") from None
    domain = default_domain(encoding)
    domain.source = str(path)
    for name, pair in bounds.items():
        if name not in encoding.input_names:
            raise UserInputError(f"domain file names {name!r}, which is not a numeric input; inputs: {encoding.input_names}")
        if len(pair) != 2:
            raise UserInputError(f"domain of {name!r} must be [lower, upper]")
        low, high = float(pair[0]), float(pair[1])
        if not (np.isfinite(low) and np.isfinite(high)) or low > high:
            raise UserInputError(f"domain of {name!r} must be finite with lower <= upper, got [{low}, {high}]")
        j = encoding.input_names.index(name)
        domain.lower[j], domain.upper[j] = low, high
    with np.errstate(over="ignore", invalid="ignore"):
        scaled_low, scaled_high = domain.scaled(encoding)
    too_wide = [encoding.input_names[j] for j in np.flatnonzero(~(np.isfinite(scaled_low) & np.isfinite(scaled_high)
                                                                  & (np.abs(scaled_low) < MAX_RANGE)
                                                                  & (np.abs(scaled_high) < MAX_RANGE)))]
    if too_wide:
        raise UserInputError(f"domain file {path}: the box of {too_wide} is too wide to scale (it overflows float64 "
                             "once divided by the training range); narrow it or rescale the column")
    return domain


@dataclass
class TabularData:
    """A table after encoding: raw and scaled inputs, targets in network units, and the domain."""

    encoding: Encoding
    domain: Domain
    raw_inputs: np.ndarray  # (n, d) float64, encoded, raw units
    inputs: np.ndarray  # (n, d) float64, scaled units
    targets: np.ndarray  # network units (see Encoding.encode_targets)
    frame: pd.DataFrame = field(repr=False)
    rows_dropped: int = 0
    rows_imputed: int = 0
    imputed_values: dict[str, str] = field(default_factory=dict)  # column -> what filled its missing values
    fill_values: dict[str, float | str] = field(default_factory=dict)  # --impute's value per column, for new rows

    @property
    def n_rows(self) -> int:
        return len(self.inputs)

    def domain_note(self) -> str | None:
        """A line when rows lie outside a domain box given by the user (None otherwise): the guarantee covers the
        box only, so rows outside it are rows the certificate says nothing about."""
        if self.domain.source == "training rows":
            return None
        outside = int((~self.domain.contains(self.raw_inputs)).sum())
        if not outside:
            return None
        return (f"{outside} of {self.n_rows} rows lie outside the domain box ({self.domain.source}): the guarantee "
                "covers the box only, so it says nothing about inputs like them (widen the box to cover them)")

    def imputation_note(self) -> str | None:
        """One line saying how each column's missing values were filled (None when none were)."""
        if not self.imputed_values:
            return None
        return "missing values filled: " + "; ".join(f"{column} with its {what}"
                                                     for column, what in self.imputed_values.items())

    def label_scores(self) -> np.ndarray:
        """True labels as raw-unit outputs, to check them against the constraint: a regression target as read
        from the data (scaling and unscaling it moves it by a rounding, and a label on a rule's boundary, such
        as ``refund = paid`` under ``refund <= paid``, then read as breaking it), else
        ``Encoding.targets_as_scores``."""
        if self.encoding.task == "regression":
            return self.frame[self.encoding.target_columns].to_numpy(dtype=np.float64)
        return self.encoding.targets_as_scores(self.targets)

    def subset(self, index: np.ndarray) -> TabularData:
        return TabularData(self.encoding, self.domain, self.raw_inputs[index], self.inputs[index],
                           self.targets[index], self.frame.iloc[index], 0, 0)


