"""Premise gates on half-spaces: sides for a premise that couples several inputs linearly.

A premise that is a conjunction of linear inequalities over the inputs, ``a_i . x <= c_i`` (e.g. "debt plus
the new instalment above 60% of income", "more than 8 degrees warmer outside than the setpoint"), is not a box,
so the single-input sides of ``deepsade.gates`` cannot gate it. Each inequality gets one side

    s_i(x) = relu(W_i . x + B_i),   W_i = a_i / width_i (float32),   width_i = band x (range of a_i . x on the box)

with ``B_i`` the largest float32 value at most ``-max W_i . x`` over the closed premise inside the domain box
(exact, z3). So every side is exactly 0 wherever the premise holds, whatever the rounding of ``W_i``, and the
gate ``g = relu(1 - sum_i s_i)`` is exactly 1 there; ``g`` is 0 once one inequality is broken by about a band
width. The sides are fixed weights of the saved network; the exact certificate re-checks the whole layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.constructions.recognise import NotApplicable
from deepsade.gates import DEFAULT_BAND
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.numbers import z3_numeral_or_none, z3_rational
from deepsade.spec import input_var


@dataclass(frozen=True)
class LinearSide:
    """``relu(sum_j weight_j x_j + bias)`` over the scaled inputs; every number a float32 value (exact)."""

    terms: tuple[tuple[int, Fraction], ...]  # (input index, weight)
    bias: Fraction

    @property
    def inputs(self) -> tuple[int, ...]:
        return tuple(j for j, _ in self.terms)

    @classmethod
    def single(cls, j: int, weight: Fraction, bias: Fraction) -> LinearSide:
        """The side ``relu(weight * x_j + bias)`` of a single-input bound."""
        return cls(((int(j), Fraction(weight)),), Fraction(bias))

    def to_json(self) -> list | dict:
        """``[j, weight, bias]`` for a single-input side (the form stored before sides could couple inputs, so
        such models serialise, and hash, as they did), else ``{"terms": [[j, weight], ...], "bias": bias}``."""
        if len(self.terms) == 1:
            (j, w), = self.terms
            return [j, str(w), str(self.bias)]
        return {"terms": [[j, str(w)] for j, w in self.terms], "bias": str(self.bias)}

    @classmethod
    def from_json(cls, data: list | dict) -> LinearSide:
        if isinstance(data, dict):
            return cls(tuple((int(j), Fraction(w)) for j, w in data["terms"]), Fraction(data["bias"]))
        j, w, b = data
        return cls.single(int(j), Fraction(w), Fraction(b))


def _float32_nearest(value: Fraction) -> Fraction:
    return Fraction(float(np.float32(float(value))))


def _float32_down(value: Fraction) -> Fraction:
    rounded = np.float32(float(value))
    if Fraction(float(rounded)) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf), dtype=np.float32)
    return Fraction(float(rounded))


def _literals(premise: z3.BoolRef) -> list[z3.BoolRef]:
    if z3.is_and(premise):
        return [c for child in premise.children() for c in _literals(child)]
    return [premise]


def _closed_literals(literal: z3.BoolRef, where: str) -> list[z3.BoolRef]:
    """The literal as non-strict comparisons (its closure; an equality as two); NotApplicable for anything but
    an inequality or an equality."""
    negated = z3.is_not(literal)
    atom = literal.arg(0) if negated else literal
    if z3.is_eq(atom) and not negated and not z3.is_bool(atom.arg(0)):
        return [atom.arg(0) <= atom.arg(1), atom.arg(0) >= atom.arg(1)]
    if not (z3.is_le(atom) or z3.is_lt(atom) or z3.is_ge(atom) or z3.is_gt(atom)):
        raise NotApplicable(f"{where}: a premise gate on half-spaces takes inequalities over the inputs, not "
                            f"{' '.join(literal.sexpr().split())}")
    left, right = atom.arg(0), atom.arg(1)
    upward = z3.is_ge(atom) or z3.is_gt(atom)
    return [(left <= right) if upward == negated else (left >= right)]


def linear_premise_sides(premise: z3.BoolRef, low: Sequence[Fraction], high: Sequence[Fraction], where: str,
                         band: float = DEFAULT_BAND) -> tuple[LinearSide, ...]:
    """The gate sides of a premise that is a conjunction of linear inequalities over the inputs (scaled units),
    each exactly 0 on the closed premise inside the domain box; NotApplicable (one line) otherwise."""
    box = [c for j in range(len(low)) for c in (input_var(j) >= z3_rational(Fraction(low[j])),
                                                input_var(j) <= z3_rational(Fraction(high[j])))]
    closed = [c for literal in _literals(premise) for c in _closed_literals(literal, where)]
    sides = []
    for literal in closed:
        try:
            atom = atom_from_comparison(literal)  # coefs . x + const <= 0
        except NotLinear:
            raise NotApplicable(f"{where}: a premise gate needs a premise linear in the inputs") from None
        if atom.outputs():
            raise NotApplicable(f"{where}: a premise gate reads inputs only")
        coefs = {j: v for j, v in atom.inputs().items() if v != 0}
        if not coefs:
            continue  # a constant comparison: true on the whole premise (else the premise would be empty)
        spread = sum((abs(v) * (Fraction(high[j]) - Fraction(low[j])) for j, v in coefs.items()), Fraction(0))
        width = max(Fraction(band) * spread, Fraction(1, 10**6))
        terms = tuple((j, _float32_nearest(v / width)) for j, v in sorted(coefs.items()))
        form = z3.Sum([z3_rational(w) * input_var(j) for j, w in terms])
        optimum = z3.Optimize()
        optimum.add(*box, *closed)
        handle = optimum.maximize(form)
        if optimum.check() != z3.sat:
            raise NotApplicable(f"{where}: its premise holds nowhere in the domain box")
        top = z3_numeral_or_none(optimum.upper(handle))
        if top is None:
            raise NotApplicable(f"{where}: could not bound its premise's half-space exactly")
        sides.append(LinearSide(terms, _float32_down(-top)))
    if not sides:
        raise NotApplicable(f"{where}: its premise narrows nothing")
    return tuple(sides)


def side_term(side: LinearSide) -> z3.ArithRef:
    """``sum_j weight_j x_j + bias`` as an exact z3 term over ``input_var``."""
    return z3.Sum([z3_rational(w) * input_var(j) for j, w in side.terms]) + z3_rational(side.bias)
