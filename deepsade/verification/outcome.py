"""What a search answers: the verdict for one box (``Outcome``, its inputs in raw units) and one engine's raw
reply (``Answer``)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deepsade.data import Encoding


class Status(enum.StrEnum):
    """The verdict for one box. The values are the strings written to CSV / JSON reports."""

    VERIFIED = "verified"  # no input in the box breaks an assert
    COUNTEREXAMPLE = "counterexample"  # one does, re-checked in exact arithmetic
    UNKNOWN = "unknown"  # timeout, or the engines gave up: never counted as safe
    OUTSIDE = "outside"  # the box is empty (an eps-ball that misses the domain box)


STATUSES = tuple(status.value for status in Status)


@dataclass
class Outcome:
    """The answer for one box: verified, counterexample, unknown (timeout / solver gave up) or outside.

    ``outside``: the box is empty (an eps-ball that does not reach the domain box). For a
    counterexample, ``point`` holds the scaled inputs, ``outputs`` the network's float64 outputs there,
    ``broken`` the 0-based indices of the asserts it breaks in exact arithmetic, and
    ``float_confirmed`` whether float64 evaluation (what prediction computes) shows the break too, and
    ``exact_point`` the scaled inputs as the exact rationals that were re-checked (``point`` is their
    float64 rounding)."""

    status: Status
    decided_by: str = ""  # marabou, z3, sampling, bounds, or engines joined with '+'
    seconds: float = 0.0
    point: np.ndarray | None = None
    outputs: np.ndarray | None = None
    broken: tuple[int, ...] = ()
    float_confirmed: bool = False
    note: str = ""
    exact_point: tuple[Fraction, ...] | None = None

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a plain string from older callers becomes the enum


class Verdict(enum.Enum):
    """What one engine says about one query (internal; ``Outcome`` is what callers see)."""

    NO_VIOLATION = enum.auto()  # proved: nothing in the box breaks the asserts
    VIOLATION = enum.auto()  # a witness, not yet re-checked exactly
    UNKNOWN = enum.auto()  # timeout or gave up


@dataclass(frozen=True)
class Answer:
    """One engine's reply: a verdict, the witness for a violation, the reason for unknown."""

    verdict: Verdict
    point: Sequence[Fraction | float] | None = None  # scaled inputs of the witness
    reason: str = ""  # why unknown, e.g. 'z3 timeout'

    @classmethod
    def no_violation(cls) -> Answer:
        """The engine proved that no input in the box breaks the asserts."""
        return cls(Verdict.NO_VIOLATION)

    @classmethod
    def violation(cls, point: Sequence[Fraction | float]) -> Answer:
        """The engine claims ``point`` breaks an assert (the verifier re-checks it exactly)."""
        return cls(Verdict.VIOLATION, point=list(point))

    @classmethod
    def unknown(cls, reason: str) -> Answer:
        """The engine could not decide (``reason`` names the engine and why, e.g. 'marabou timeout')."""
        return cls(Verdict.UNKNOWN, reason=reason)


def join_notes(*parts: str) -> str:
    """Non-empty notes joined with '; '."""
    return "; ".join(p for p in parts if p)


def raw_inputs(encoding: Encoding, scaled: np.ndarray) -> np.ndarray:
    """Scaled inputs -> raw units (``raw = min + (max - min) * scaled``)."""
    low, high = np.asarray(encoding.input_min, dtype=np.float64), np.asarray(encoding.input_max, dtype=np.float64)
    return low + np.asarray(scaled, dtype=np.float64) * (high - low)


def counterexample_raw_inputs(encoding: Encoding, outcome: Outcome) -> np.ndarray:
    """A counterexample's inputs in raw units, from the exact point that was re-checked when there is
    one (so a whole number prints as one), else from its float64 point; NaN where there is none."""
    if outcome.exact_point is not None:
        affine = encoding.input_affine()
        return np.array([float(off + scale * v) for v, (off, scale) in zip(outcome.exact_point, affine, strict=True)])
    if outcome.point is None:
        return np.full(len(encoding.input_names), np.nan)
    return raw_inputs(encoding, np.asarray(outcome.point)[None, :])[0]
