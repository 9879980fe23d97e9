"""Linear atoms: a z3 comparison ``lhs op rhs`` as exact coefficients ``c_y . y + c_x . x + const op 0``."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3


class NotLinear(ValueError):
    """The term is not a linear combination of inputs and outputs."""


def _value(expr: z3.ExprRef) -> Fraction | None:
    if z3.is_rational_value(expr):
        return Fraction(expr.numerator_as_long(), expr.denominator_as_long())
    if z3.is_int_value(expr):
        return Fraction(expr.as_long())
    return None


def linear_form(expr: z3.ExprRef) -> tuple[dict[str, Fraction], Fraction]:
    """Coefficients per variable name and a constant, exactly; NotLinear otherwise."""
    value = _value(expr)
    if value is not None:
        return {}, value
    if z3.is_const(expr) and expr.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return {expr.decl().name(): Fraction(1)}, Fraction(0)
    if not z3.is_app(expr):
        raise NotLinear(str(expr))
    kind = expr.decl().kind()
    parts = [linear_form(c) for c in expr.children()]
    if kind in (z3.Z3_OP_TO_REAL, z3.Z3_OP_ADD):
        return _combine(parts, [1] * len(parts))
    if kind == z3.Z3_OP_SUB:
        return _combine(parts, [1] + [-1] * (len(parts) - 1))
    if kind == z3.Z3_OP_UMINUS:
        return _combine(parts, [-1])
    if kind == z3.Z3_OP_MUL:
        factor, variable = Fraction(1), None
        for coefs, const in parts:
            if coefs:
                if variable is not None:
                    raise NotLinear(str(expr))
                variable = (coefs, const)
            else:
                factor *= const
        if variable is None:
            return {}, factor
        return {k: v * factor for k, v in variable[0].items()}, variable[1] * factor
    if kind == z3.Z3_OP_DIV:
        (coefs, const), (den_coefs, den) = parts
        if den_coefs or den == 0:
            raise NotLinear(str(expr))
        return {k: v / den for k, v in coefs.items()}, const / den
    raise NotLinear(str(expr))


def _combine(parts, signs) -> tuple[dict[str, Fraction], Fraction]:
    coefs: dict[str, Fraction] = {}
    const = Fraction(0)
    for (part_coefs, part_const), sign in zip(parts, signs):
        for name, value in part_coefs.items():
            coefs[name] = coefs.get(name, Fraction(0)) + sign * value
        const += sign * part_const
    return {k: v for k, v in coefs.items() if v != 0}, const


@dataclass(frozen=True)
class LinearAtom:
    """``sum(coefs[name] * name) + const  op  0`` with op one of '<=', '<', '=='."""

    coefs: dict[str, Fraction]
    const: Fraction
    op: str

    def inputs(self) -> dict[int, Fraction]:
        return {int(n[2:]): v for n, v in self.coefs.items() if n.startswith("x!")}

    def outputs(self) -> dict[int, Fraction]:
        return {int(n[2:]): v for n, v in self.coefs.items() if n.startswith("y!")}


def atom_from_comparison(expr: z3.BoolRef) -> LinearAtom:
    """Normalise a comparison into a LinearAtom (``a >= b`` becomes ``b - a <= 0``)."""
    left, right = (linear_form(c) for c in expr.children())
    if z3.is_le(expr) or z3.is_lt(expr) or z3.is_eq(expr):
        coefs, const = _combine([left, right], [1, -1])
    elif z3.is_ge(expr) or z3.is_gt(expr):
        coefs, const = _combine([right, left], [1, -1])
    else:
        raise NotLinear(str(expr))
    op = "<=" if (z3.is_le(expr) or z3.is_ge(expr)) else "<" if (z3.is_lt(expr) or z3.is_gt(expr)) else "=="
    return LinearAtom(coefs, const, op)
