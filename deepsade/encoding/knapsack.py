"""The fractional knapsack behind every closed-form L1 projection onto one linear row.

Raising a row's worst case over a box by ``need`` costs L1 movement of the weights. Each way of
moving (a segment) gains ``rate`` per unit moved, up to a ``capacity``; one unbounded way gains
``unbounded_rate`` per unit without limit. The cheapest movement takes the steepest segments first
(greedy is exact for a fractional knapsack) and only those steeper than the unbounded one; the rest of
the need goes to the unbounded segment. Vectorised over rows that share their segments' rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KnapsackSpend:
    """Where the need went: ``used[..., j]`` units on segment ``segments[j]`` (steepest first), and
    ``tail[...]`` *gain* (not units) left for the unbounded segment (divide by its rate for units)."""

    segments: np.ndarray
    used: np.ndarray
    tail: np.ndarray


def fractional_knapsack(need: np.ndarray, capacity: np.ndarray, rate: np.ndarray,
                        unbounded_rate: float, ties_to_bounded: bool = False) -> KnapsackSpend:
    """Spend ``need`` (shape ``R``) over segments with ``capacity`` (``R + (S,)``) and ``rate`` (``S``).

    Only segments steeper than ``unbounded_rate`` are used, steepest first (ties in index order); a segment
    exactly as steep as the unbounded one costs the same, and ``ties_to_bounded`` says whether it is used
    before it (the caller's choice among equally cheap answers)."""
    need = np.asarray(need, dtype=np.float64)
    steep = np.nonzero(rate >= unbounded_rate if ties_to_bounded else rate > unbounded_rate)[0]
    steep = steep[np.argsort(-rate[steep], kind="stable")]
    steep_capacity = capacity[..., steep]
    gain = np.cumsum(steep_capacity * rate[steep], axis=-1)
    full = (gain < need[..., None]).sum(axis=-1)  # segments used up entirely
    used = np.where(np.arange(len(steep)) < full[..., None], steep_capacity, 0.0)
    before = np.take_along_axis(np.concatenate([np.zeros_like(need)[..., None], gain], axis=-1),
                                full[..., None], axis=-1)[..., 0]
    rest = need - before
    partial = full < len(steep)
    at = np.minimum(full, max(len(steep) - 1, 0))
    if len(steep):
        np.put_along_axis(used, at[..., None], np.take_along_axis(used, at[..., None], axis=-1)
                          + np.where(partial, rest / rate[steep][at], 0.0)[..., None], axis=-1)
    return KnapsackSpend(steep, used, np.where(partial, 0.0, rest))
