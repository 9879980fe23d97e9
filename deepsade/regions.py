"""The input region each assert needs: the domain box cut by the premise's single-input bounds.

An assert ``P(x) -> Q(x, f(x))`` only constrains the network where ``P`` holds. When ``P`` is a
conjunction that bounds single inputs (``x_j >= t``, ``x_j < t``, ``x_j = v`` for a one-hot column),
every ``x`` in the domain with ``P(x)`` lies in the smaller box ``D ∩ {those bounds}``, so interval
bounds over that box are a sound latent box for the assert, and a far tighter one than the whole
domain's. Bounds that couple several inputs are ignored (the box stays a superset of the region);
strict bounds are closed (a superset again). Everything here is exact (Fractions, scaled units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.spec import Assert, Spec, conjunction_atoms


@dataclass(frozen=True)
class InputRegion:
    """The box (scaled input units) that contains every domain point where an assert's premise holds."""

    assert_index: int
    low: tuple[Fraction, ...]
    high: tuple[Fraction, ...]
    narrowed: tuple[int, ...]  # inputs whose interval is narrower than the domain's

    @property
    def empty(self) -> bool:
        return any(lo > hi for lo, hi in zip(self.low, self.high))

    @property
    def restricts(self) -> bool:
        """Whether the region is smaller than the domain (only then does it tighten anything)."""
        return bool(self.narrowed)


def single_input_bounds(assert_: Assert) -> dict[int, tuple[Fraction | None, Fraction | None]]:
    """Per input, the (lower, upper) bound the premise's conjunction implies on it alone (closed)."""
    atoms = conjunction_atoms(assert_.premise) if assert_.has_premise else []
    bounds: dict[int, tuple[Fraction | None, Fraction | None]] = {}
    for atom_expr in atoms or []:
        try:
            atom = atom_from_comparison(atom_expr)
        except NotLinear:
            continue
        if atom.outputs():
            continue
        inputs = atom.inputs()
        if len(inputs) != 1:
            continue  # couples several inputs (or none): the box ignores it, which only makes it larger
        (j, coef), = inputs.items()
        limit = -atom.const / coef
        sides = [coef > 0] if atom.op != "==" else [True, False]
        for upper in sides:  # coef * x + const <= 0: an upper bound when coef > 0, a lower one otherwise
            lo, hi = bounds.get(j, (None, None))
            if upper:
                hi = limit if hi is None else min(hi, limit)
            else:
                lo = limit if lo is None else max(lo, limit)
            bounds[j] = (lo, hi)
    return bounds


def input_region(assert_: Assert, domain_low: Sequence, domain_high: Sequence) -> InputRegion:
    """The domain box cut by the assert's premise bounds (the domain itself when there are none)."""
    low = [Fraction(v) for v in domain_low]
    high = [Fraction(v) for v in domain_high]
    narrowed = []
    for j, (lo, hi) in sorted(single_input_bounds(assert_).items()):
        if lo is not None and lo > low[j]:
            low[j] = lo
            narrowed.append(j)
        if hi is not None and hi < high[j]:
            high[j] = hi
            narrowed.append(j)
    return InputRegion(assert_.index, tuple(low), tuple(high), tuple(sorted(set(narrowed))))


def input_regions(spec: Spec, domain_low: Sequence, domain_high: Sequence) -> dict[int, InputRegion]:
    """``input_region`` of every assert, by assert index."""
    return {a.index: input_region(a, domain_low, domain_high) for a in spec.asserts}
