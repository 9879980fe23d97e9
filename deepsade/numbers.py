"""Exact numbers between z3, Python and numpy: one conversion used everywhere."""

from __future__ import annotations

from fractions import Fraction

import z3

ALGEBRAIC_DIGITS = 30  # an irrational z3 value (non-linear arithmetic) is approximated to this many digits


def z3_fraction(value: z3.ExprRef) -> Fraction:
    """The exact value of a z3 numeral as a Fraction (irrationals: a 30-digit rational approximation).

    Raises ``ValueError`` when ``value`` is not a numeral."""
    if z3.is_rational_value(value):
        return Fraction(value.numerator_as_long(), value.denominator_as_long())
    if z3.is_int_value(value):
        return Fraction(value.as_long())
    if z3.is_algebraic_value(value):
        approx = value.approx(ALGEBRAIC_DIGITS)
        return Fraction(approx.numerator_as_long(), approx.denominator_as_long())
    raise ValueError(f"{value} is not a numeral")


def z3_numeral_or_none(value: z3.ExprRef) -> Fraction | None:
    """``z3_fraction(value)`` for a numeral, ``None`` for any other term."""
    try:
        return z3_fraction(value)
    except ValueError:
        return None


def z3_rational(value: Fraction | int | float) -> z3.RatNumRef:
    """A z3 rational equal to ``value`` (a float converts exactly, as its binary value)."""
    exact = Fraction(value)
    return z3.RealVal(f"{exact.numerator}/{exact.denominator}") if exact.denominator != 1 else z3.RealVal(exact.numerator)
