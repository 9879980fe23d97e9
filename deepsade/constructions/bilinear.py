"""Comparisons whose output coefficients depend on the inputs: ``sum_k a_k(x) y_k + b(x) <= 0`` with ``a_k``
and ``b`` affine in the inputs (``(<= (* x1 y) 10.0)``, ``(>= y2 (* x1 y1))``), exactly (rationals).

A polynomial here is a dict from a monomial (a sorted tuple of variable names, ``x!j`` / ``y!k``) to its
coefficient. Only degree up to 2 is taken, and a product of two outputs or of two inputs is refused:
HardNet-Aff's ``A(x) y`` is linear in the outputs, and its bounds here are affine in the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3

Polynomial = dict[tuple[str, ...], Fraction]


class NotBilinear(ValueError):
    """The term is not of the form ``a(x) . y + b(x)`` with ``a``, ``b`` affine; the message says what is in the way."""


def _value(expr: z3.ExprRef) -> Fraction | None:
    if z3.is_rational_value(expr):
        return Fraction(expr.numerator_as_long(), expr.denominator_as_long())
    if z3.is_int_value(expr):
        return Fraction(expr.as_long())
    return None


def _add(parts: list[Polynomial], signs: list[int]) -> Polynomial:
    out: Polynomial = {}
    for part, sign in zip(parts, signs, strict=True):
        for mono, value in part.items():
            out[mono] = out.get(mono, Fraction(0)) + sign * value
    return {m: v for m, v in out.items() if v != 0}


def _multiply(left: Polynomial, right: Polynomial) -> Polynomial:
    out: Polynomial = {}
    for m1, v1 in left.items():
        for m2, v2 in right.items():
            mono = tuple(sorted(m1 + m2))
            if len(mono) > 2:
                raise NotBilinear("a product of more than two variables")
            out[mono] = out.get(mono, Fraction(0)) + v1 * v2
    return {m: v for m, v in out.items() if v != 0}


def polynomial(expr: z3.ExprRef) -> Polynomial:
    """The term as a polynomial of degree at most 2 over ``x!j`` / ``y!k``; NotBilinear otherwise."""
    value = _value(expr)
    if value is not None:
        return {(): value} if value != 0 else {}
    if z3.is_const(expr) and expr.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return {(expr.decl().name(),): Fraction(1)}
    if not z3.is_app(expr):
        raise NotBilinear(str(expr))
    kind = expr.decl().kind()
    parts = [polynomial(c) for c in expr.children()]
    if kind in (z3.Z3_OP_TO_REAL, z3.Z3_OP_ADD):
        return _add(parts, [1] * len(parts))
    if kind == z3.Z3_OP_SUB:
        return _add(parts, [1] + [-1] * (len(parts) - 1))
    if kind == z3.Z3_OP_UMINUS:
        return _add(parts, [-1])
    if kind == z3.Z3_OP_MUL:
        product: Polynomial = {(): Fraction(1)}
        for part in parts:
            product = _multiply(product, part)
        return product
    if kind == z3.Z3_OP_DIV:
        numerator, denominator = parts
        if set(denominator) - {()} or not denominator.get((), 0):
            raise NotBilinear("a division by a variable")
        return {m: v / denominator[()] for m, v in numerator.items()}
    raise NotBilinear(f"the operator {expr.decl().name()}")


@dataclass(frozen=True)
class BilinearAtom:
    """``sum_k (a0[k] + sum_j a1[k][j] x_j) y_k + sum_j b1[j] x_j + b0  op  0`` (op '<=', '<' or '==')."""

    output_const: dict[int, Fraction]  # a0[k]
    output_inputs: dict[int, dict[int, Fraction]]  # a1[k][j]
    input_coefs: dict[int, Fraction]  # b1[j]
    const: Fraction
    op: str

    @property
    def outputs(self) -> set[int]:
        return set(self.output_const) | set(self.output_inputs)

    @property
    def input_dependent(self) -> bool:
        return bool(self.output_inputs)

    def first_product(self) -> tuple[int, int] | None:
        """(output, input) of the first output multiplied by an input, or None."""
        for k in sorted(self.output_inputs):
            return k, min(self.output_inputs[k])
        return None


def _index(name: str) -> int:
    return int(name[2:])


def bilinear_atom(expr: z3.BoolRef) -> BilinearAtom:
    """A comparison as a BilinearAtom (``a >= b`` becomes ``b - a <= 0``); NotBilinear naming what is in the way."""
    left, right = (polynomial(c) for c in expr.children())
    if z3.is_le(expr) or z3.is_lt(expr) or z3.is_eq(expr):
        poly = _add([left, right], [1, -1])
    elif z3.is_ge(expr) or z3.is_gt(expr):
        poly = _add([right, left], [1, -1])
    else:
        raise NotBilinear(str(expr))
    op = "<=" if (z3.is_le(expr) or z3.is_ge(expr)) else "<" if (z3.is_lt(expr) or z3.is_gt(expr)) else "=="
    output_const: dict[int, Fraction] = {}
    output_inputs: dict[int, dict[int, Fraction]] = {}
    input_coefs: dict[int, Fraction] = {}
    const = Fraction(0)
    for mono, value in poly.items():
        kinds = [name[0] for name in mono]
        if not mono:
            const = value
        elif kinds == ["x"]:
            input_coefs[_index(mono[0])] = value
        elif kinds == ["y"]:
            output_const[_index(mono[0])] = value
        elif sorted(kinds) == ["x", "y"]:
            x_name, y_name = sorted(mono)
            output_inputs.setdefault(_index(y_name), {})[_index(x_name)] = value
        elif kinds == ["y", "y"]:
            raise NotBilinear("a product of two outputs")
        else:
            raise NotBilinear("a product of two inputs")
    return BilinearAtom(output_const, output_inputs, input_coefs, const, op)
