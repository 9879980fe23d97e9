"""Inputs a real row could have: one category per one-hot group, whole numbers in integer columns.

The network sees a box of scaled inputs, but a row of data has more structure than a box: the inputs
``|col=value|`` of one categorical column hold exactly one 1 (the others 0), and a column whose
training values were all whole numbers (``Encoding.integer_inputs``) holds a whole number. A point of
the box without that structure (``Gender=Female = 0.32, Gender=Male = 0.27``) is no input anyone can
give, so it is never reported as a counterexample, never counted by the Adversity Index, never
called *violated* by ``certify``.

The DeepSaDe guarantee itself is over the relaxed box (every one-hot input in [0, 1], every integer
column real): that box holds every realisable input, so a certificate over it is sound for them.

``RealisableInputs`` holds the structure in scaled units (the affine ``raw = offset + scale * scaled``
per input, exactly): the realisable hull of a box, snapping a point onto a realisable one (float
screening and exact), and the exact membership test the verifier applies before reporting a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from deepsade.data import Encoding

NAMES_LISTED = 8  # integer columns named in a note; the rest are counted

def one_hot_groups(encoding: Encoding) -> list[list[int]]:
    """Input indices of each categorical column's one-hot group, in feature order."""
    groups, position = [], 0
    for column in encoding.feature_columns:
        if column in encoding.categorical_levels:
            size = len(encoding.categorical_levels[column])
            groups.append(list(range(position, position + size)))
            position += size
        else:
            position += 1
    return groups


def integer_indices(encoding: Encoding) -> list[int]:
    """Input indices of the numeric columns the encoding records as integer-valued (none for an
    encoding stored before that was recorded: those columns are treated as real)."""
    integers = set(getattr(encoding, "integer_inputs", None) or [])
    return [j for j, name in enumerate(encoding.input_names) if name in integers]


@dataclass(frozen=True)
class RealisableInputs:
    """Which points of a box of scaled inputs a real row could be (picklable plain data)."""

    offsets: tuple[Fraction, ...]  # raw = offset + scale * scaled, per input
    scales: tuple[Fraction, ...]
    groups: tuple[tuple[int, ...], ...] = ()  # one-hot groups: exactly one input of each is 1, the rest 0
    integers: tuple[int, ...] = ()  # inputs whose raw value is a whole number

    def __post_init__(self) -> None:
        if any(not scale > 0 for scale in self.scales):
            raise ValueError("every input scale must be positive")

    @classmethod
    def from_encoding(cls, encoding: Encoding) -> RealisableInputs:
        """The structure the encoding records: its one-hot groups and integer-valued columns."""
        affine = encoding.input_affine()
        return cls(tuple(off for off, _ in affine), tuple(scale for _, scale in affine),
                   tuple(tuple(g) for g in one_hot_groups(encoding)), tuple(integer_indices(encoding)))

    @property
    def constrained(self) -> bool:
        """Whether any input is restricted beyond its interval (else every point of a box is realisable)."""
        return bool(self.groups or self.integers)

    def scaled(self, j: int, raw: Fraction | int) -> Fraction:
        """The scaled value of input ``j`` at the raw value ``raw`` (exact)."""
        return (Fraction(raw) - self.offsets[j]) / self.scales[j]

    def raw(self, j: int, scaled: Fraction) -> Fraction:
        """The raw value of input ``j`` at the scaled value ``scaled`` (exact)."""
        return self.offsets[j] + self.scales[j] * Fraction(scaled)

    # ---- boxes ----
    def integer_range(self, j: int, lower: Fraction, upper: Fraction) -> tuple[int, int]:
        """The whole raw values of input ``j`` inside [lower, upper] (scaled) as (first, last); empty if first > last."""
        return math.ceil(self.raw(j, lower)), math.floor(self.raw(j, upper))

    def categories(self, group: Sequence[int], lower: Sequence[Fraction], upper: Sequence[Fraction]) -> list[int]:
        """The inputs of a one-hot group that can be the active one in the box (1 there, 0 for the others)."""
        holds_one = [self.raw(k, lower[k]) <= 1 <= self.raw(k, upper[k]) for k in group]
        holds_zero = [self.raw(k, lower[k]) <= 0 <= self.raw(k, upper[k]) for k in group]
        return [k for i, k in enumerate(group) if holds_one[i] and all(holds_zero[:i] + holds_zero[i + 1:])]

    def hull(self, lower: Sequence[Fraction], upper: Sequence[Fraction]) -> tuple[list[Fraction], list[Fraction]] | None:
        """The smallest box inside [lower, upper] that holds every realisable point of it (exact), or
        None when it holds none: integer inputs narrowed to whole raw values, one-hot inputs fixed to 0
        or 1 where only one of them is possible."""
        low, high = [Fraction(v) for v in lower], [Fraction(v) for v in upper]
        for j in self.integers:
            first, last = self.integer_range(j, low[j], high[j])
            if first > last:
                return None
            low[j], high[j] = self.scaled(j, first), self.scaled(j, last)
        for group in self.groups:
            active = self.categories(group, low, high)
            if not active:
                return None
            for k in group:
                can_be_one, can_be_zero = k in active, any(c != k for c in active)
                low[k] = self.scaled(k, 0 if can_be_zero else 1)
                high[k] = self.scaled(k, 1 if can_be_one else 0)
        return low, high

    # ---- points ----
    def snap(self, points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Points (scaled, float64, shape (n, d)) moved onto realisable ones of the box [low, high]:
        each one-hot group to its largest entry among the categories the box allows, integer inputs
        to the nearest whole raw value inside the box. Float64: a screen; ``snap_exact`` decides."""
        points = np.array(points, dtype=np.float64)
        if not self.constrained or len(points) == 0:
            return np.clip(points, low, high)
        offsets, scales = np.array([float(v) for v in self.offsets]), np.array([float(v) for v in self.scales])
        raw = offsets + scales * points
        raw_low, raw_high = offsets + scales * low, offsets + scales * high
        if self.integers:
            j = list(self.integers)
            raw[:, j] = np.clip(np.round(raw[:, j]), np.ceil(raw_low[j]), np.floor(raw_high[j]))
        exact_low = [Fraction(v) for v in low.tolist()]
        exact_high = [Fraction(v) for v in high.tolist()]
        for group in self.groups:
            active = self.categories(group, exact_low, exact_high)
            if not active:
                continue
            block = raw[:, active]
            chosen = np.zeros_like(block)
            chosen[np.arange(len(block)), block.argmax(axis=1)] = 1.0
            raw[:, list(group)] = 0.0
            raw[:, active] = chosen
        return np.clip((raw - offsets) / scales, low, high)

    def snap_exact(self, point: Sequence[Fraction], lower: Sequence[Fraction],
                   upper: Sequence[Fraction]) -> list[Fraction] | None:
        """The realisable point of the box [lower, upper] next to ``point`` (exact; ``point`` is first
        clipped to the box): integer inputs rounded to the nearest whole raw value in the box, each
        one-hot group set to its largest allowed entry. None when the box holds no realisable point."""
        snapped = [min(max(Fraction(v), lo), hi) for v, lo, hi in zip(point, lower, upper, strict=True)]
        for j in self.integers:
            first, last = self.integer_range(j, Fraction(lower[j]), Fraction(upper[j]))
            if first > last:
                return None
            snapped[j] = self.scaled(j, min(max(round(self.raw(j, snapped[j])), first), last))
        for group in self.groups:
            active = self.categories(group, lower, upper)
            if not active:
                return None
            chosen = max(active, key=lambda k: self.raw(k, snapped[k]))  # first of the largest on ties
            for k in group:
                snapped[k] = self.scaled(k, 1 if k == chosen else 0)
        return snapped

    def contains(self, point: Sequence[Fraction]) -> bool:
        """Whether a real row could have this input (scaled, exact): every one-hot group holds one 1 and
        0 elsewhere, every integer input a whole raw value. The box is not checked here."""
        for j in self.integers:
            if self.raw(j, point[j]).denominator != 1:
                return False
        for group in self.groups:
            values = [self.raw(k, point[k]) for k in group]
            if sorted(values) != [0] * (len(values) - 1) + [1]:
                return False
        return True

    def describe(self, names: Sequence[str]) -> str:
        """One line on what is constrained (for notes), e.g. '2 one-hot groups, integer: age, children'."""
        parts = []
        if self.groups:
            parts.append(f"{len(self.groups)} one-hot group{'s' if len(self.groups) != 1 else ''} (one category each)")
        if self.integers:
            listed = [names[j] for j in self.integers[:NAMES_LISTED]]
            more = len(self.integers) - len(listed)  # a probe's 64-pixel data printed 58 names on one line
            parts.append("whole numbers in " + ", ".join(listed) + (f" and {more} more columns" if more else ""))
        return "; ".join(parts)
