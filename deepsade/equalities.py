"""Equalities on outputs in a rule: what they cost, and the band that takes their place.

An ``=`` between numbers that mentions an output is checked on the exact network without the certificate's
margin (no margin can hold an equality). DeepSaDe must then satisfy it for every latent vector in the box:
on an equality's region that ties the last layer's hidden-unit weights to zero (a constant there), and an
equality coupling outputs or inputs of different scales asks float32 weights for exact ratios of the scaling
factors, which they rarely have, so no last layer is found at all. The sequential clamps take only
inequalities, which carry the margin. A band ``-tol <= lhs - rhs <= tol`` with ``tol`` above the margin in the
equation's own units is an inequality pair they take at no latent-box cost; ``equality_hint`` says so, with
that floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.spec import Spec, free_constants, is_linear, split_implication

# the sequential clamps tighten each row by this many margins times its output coefficients (hardnet.SLACK_FACTOR)
CLAMP_SLACK_FACTOR = 2


@dataclass(frozen=True)
class OutputEquality:
    """One ``=`` on outputs: its assert (0-based), its text, and the smallest band half-width (the equation's
    own units) the sequential clamps could take at the certificate's margin; None when it is not linear."""

    assert_index: int
    text: str
    least_half_width: float | None


def output_equalities(spec: Spec, margin: float, output_scales: Sequence[Fraction]) -> list[OutputEquality]:
    """Every equality between numbers that mentions an output, in assert order; ``output_scales`` the raw units
    of one network output unit (the encoding's scale per output)."""
    found = []
    outputs = set(spec.output_names)
    for a in spec.asserts:
        for node in _asserted_equalities(split_implication(a.raw, outputs)[1]):
            names = free_constants(node)
            if not names & outputs:
                continue
            coefficients = _coefficients(node.arg(0) - node.arg(1), names) if is_linear(node) else None
            floor = None if coefficients is None else float(
                CLAMP_SLACK_FACTOR * Fraction(margin)
                * sum(abs(coefficients[name]) * Fraction(output_scales[k])
                      for k, name in enumerate(spec.output_names) if name in coefficients))
            found.append(OutputEquality(a.index, " ".join(str(node).split()), floor))
    return found


def _asserted_equalities(formula: z3.BoolRef) -> list[z3.BoolRef]:
    """The equalities between numbers the formula asserts (positive positions: not under an odd number of
    ``not``s or in an implication's antecedent, where an equality only selects a case and needs no margin)."""
    found, seen = [], set()

    def walk(node: z3.ExprRef, positive: bool) -> None:
        if (node.get_id(), positive) in seen:
            return
        seen.add((node.get_id(), positive))
        if z3.is_eq(node) and z3.is_arith(node.arg(0)):
            if positive:
                found.append(node)
        elif z3.is_not(node):
            walk(node.arg(0), not positive)
        elif z3.is_implies(node):
            walk(node.arg(0), not positive)
            walk(node.arg(1), positive)
        elif z3.is_and(node) or z3.is_or(node):
            for child in node.children():
                walk(child, positive)

    walk(formula, True)
    return found


def _coefficients(difference: z3.ArithRef, names: set[str]) -> dict[str, Fraction] | None:
    """The coefficient of each constant in an affine expression (raw units); None when it is not affine."""
    constants = {name: z3.Real(name) for name in names}

    def value_at(ones: set[str]) -> Fraction | None:
        at = z3.simplify(z3.substitute(difference, *[(c, z3.RealVal(1 if n in ones else 0))
                                                     for n, c in constants.items()]))
        return Fraction(at.as_fraction()) if z3.is_rational_value(at) else None

    origin = value_at(set())
    if origin is None:
        return None
    coefficients = {}
    for name in names:
        one = value_at({name})
        if one is None:
            return None
        coefficients[name] = one - origin
    every = value_at(set(names))  # affine: the sum of the parts (catches products of constants)
    if every is None or every - origin != sum(coefficients.values()):
        return None
    return coefficients


def equality_hint(spec: Spec, margin: float, output_scales: Sequence[Fraction],
                  clamps_reason: str | None = None) -> str | None:
    """One paragraph for the user when the rule states equalities on outputs; None when it states none.
    ``clamps_reason``: why the sequential clamps do not hold them exactly (``polytope.equality_blocker``)."""
    equalities = output_equalities(spec, margin, output_scales)
    if not equalities:
        return None
    which = ", ".join(str(i + 1) for i in sorted({e.assert_index for e in equalities}))
    floors = [e.least_half_width for e in equalities if e.least_half_width is not None]
    band = (f"; the band's half-width must exceed {_round_up(max(floors))} (the margin in the equation's own "
            "units), and a few times that leaves the clamps room") if floors else ""
    return (f"assert(s) {which} state an equality on the outputs, which no certificate margin can hold: DeepSaDe "
            "must meet it for every latent vector in its box, which pins the last layer (to a constant where it "
            "applies) or, when it ties values of different scales, leaves no float32 weights at all. If a "
            "tolerance is acceptable, state it as a band, e.g. (<= (- lhs rhs) tol) and (>= (- lhs rhs) (- tol)): "
            f"the sequential clamps (auto's choice for regression) take such inequalities at no latent-box cost{band}"
            + (f". The clamps hold an equality exactly when no other assert needs DeepSaDe and its outputs can be "
               f"rescaled to make its coefficients exact; not here: {clamps_reason}" if clamps_reason else ""))


def _round_up(value: float) -> str:
    """``value`` rounded up to two significant digits, as text."""
    if value <= 0:
        return "0"
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return f"{math.ceil(value / step - 1e-9) * step:.6g}"
