"""Exact numbers between z3, Python and numpy: one conversion used everywhere."""

from __future__ import annotations

import re
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


# z3 prints a formula deeper than pp.max_depth (default 5) with let-bound names, (let ((a!1 ...)) ...), which
# reads as nothing the user wrote; printing it whole keeps every echoed assert in the user's own form
z3.set_param("pp.max_depth", 1_000_000)

_Z3_QUOTIENT = re.compile(r"\(/ (\d+)\.0 (\d+)\.0\)")


def decimal_text(sexpr: str) -> str:
    """z3's text of a formula with each ``(/ a.0 b.0)`` that is a finite decimal written as that decimal, as the
    user wrote it: z3 prints ``0.5`` as ``(/ 1.0 2.0)`` and ``(- 0.5)`` as ``(- (/ 1.0 2.0))``. A quotient with
    no finite decimal form (``(/ 1.0 3.0)``) is left as it is."""

    def decimal(match: re.Match) -> str:
        value = Fraction(int(match.group(1)), int(match.group(2)))
        places = next((p for p in range(61) if 10 ** p % value.denominator == 0), None)
        if places is None:  # only 2s and 5s in the denominator make a finite decimal
            return match.group(0)
        digits = str(value.numerator * 10 ** places // value.denominator).rjust(places + 1, "0")
        return f"{digits[:-places]}.{digits[-places:]}" if places else f"{digits}.0"

    return _Z3_QUOTIENT.sub(decimal, sexpr)
