"""One assert's violation as a VNN-LIB property: the domain box, then ``premise and not conclusion`` as
linear comparisons widened (or narrowed) by a tolerance and rounded to float64 on the safe side, written
so that Marabou 2.0's reader takes them where it can. ``deepsade.export`` explains the tolerance."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import z3

from deepsade.spec import Assert, Spec, split_implication
from deepsade.verification import Atom, violation_disjuncts


def _vnnlib_names(spec: Spec) -> dict[str, str]:
    """Column name -> VNN-LIB variable (``X_i`` in the order of the inputs, ``Y_j`` of the outputs)."""
    names = {name: f"X_{j}" for j, name in enumerate(spec.input_names)}
    names.update({name: f"Y_{k}" for k, name in enumerate(spec.output_names)})
    return names


def raw_violation(assert_: Assert, spec: Spec) -> tuple[list[tuple[Atom, ...]] | None, str]:
    """``premise and not conclusion`` of one assert, in raw units over ``X_i``/``Y_j``, as linear disjuncts.

    Built from the assert as written (raw units, exact rationals); returns (None, reason) when it is
    not linear or too large to enumerate."""
    if not assert_.linear:
        return None, "it is not linear (VNN-LIB properties are linear)"
    names = _vnnlib_names(spec)
    renaming = [(z3.Real(column), z3.Real(var)) for column, var in names.items()]
    premise, conclusion = split_implication(assert_.raw, set(spec.output_names))
    raw = replace(assert_, premise=z3.substitute(premise, *renaming), conclusion=z3.substitute(conclusion, *renaming))
    return violation_disjuncts(raw)


def _number(value: float) -> str:
    """A float as a plain decimal (no exponent), exact for float64 readers."""
    return np.format_float_positional(float(value), unique=True, trim="0")


def _rounded(value: Fraction, down: bool) -> float:
    """The float64 next to ``value`` on the requested side (down: <= value; up: >= value)."""
    result = float(value)
    if down and Fraction(result) > value:
        result = math.nextafter(result, -math.inf)
    elif not down and Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


@dataclass
class Comparison:
    """``sum(terms) op bound`` with op ``<=`` or ``>=`` (what VNN-LIB has), the bound exact; ``outward``: when
    written as floats, round so that the set grows (else so that it shrinks)."""

    terms: tuple[tuple[str, Fraction], ...]
    op: str
    bound: Fraction
    outward: bool

    def variable_bound(self) -> tuple[str, str, Fraction] | None:
        """A one-variable comparison as (variable, '<=' | '>=', value); None for several variables."""
        if len(self.terms) != 1:
            return None
        (var, coefficient), = self.terms
        op = self.op if coefficient > 0 else _FLIP_SIDE[self.op]
        return var, op, self.bound / coefficient


_FLIP_SIDE = {"<=": ">=", ">=": "<="}


def widen(atom: Atom, tolerance: Fraction) -> list[Comparison]:
    """One violation atom as non-strict comparisons whose set contains the atom's set when ``tolerance >= 0``
    (widened by ``tolerance``) and lies inside it when ``tolerance < 0`` (narrowed by ``|tolerance|``)."""
    outward = tolerance >= 0
    upper = Comparison(atom.terms, "<=", atom.bound + tolerance, outward)
    lower = Comparison(atom.terms, ">=", atom.bound - tolerance, outward)
    if atom.op in ("<=", "<"):
        return [upper]
    if atom.op in (">=", ">"):
        return [lower]
    if atom.op == "==":
        return [lower, upper]
    raise ValueError(f"unexpected atom operator {atom.op!r}")


def _float_bound(value: Fraction, op: str, outward: bool) -> str:
    """``value`` as the float64 next to it on the side that grows (outward) or shrinks the set ``. op value``."""
    return _number(_rounded(value, down=(op == ">=") == outward))


def _signed(var: str, coefficient: Fraction) -> str:
    return var if coefficient > 0 else f"(- {var})"


def comparison_text(comparison: Comparison) -> tuple[str, bool]:
    """The comparison in VNN-LIB and whether Marabou 2.0's reader takes it.

    Marabou 2.0 reads sums of variables with unit coefficients and a constant, compared with at most
    one scaled variable ``(* c v)``; it throws on ``(* c v)`` inside ``+``. The atom is divided
    (exactly, by a positive factor) by its most frequent coefficient magnitude; when more than one
    coefficient is not +-1 after that, the standard weighted sum is written. Bounds are rounded once,
    in the direction ``comparison.outward`` asks; coefficients other than +-1 are the nearest float64."""
    variable_bound = comparison.variable_bound()
    if variable_bound is not None:
        var, op, value = variable_bound
        return f"({op} {var} {_float_bound(value, op, comparison.outward)})", True
    terms, op = comparison.terms, comparison.op
    magnitudes = [abs(c) for _, c in terms]
    unit = max(set(magnitudes), key=lambda m: (magnitudes.count(m), m))
    scaled = [(var, c / unit) for var, c in terms]
    bound = _float_bound(comparison.bound / unit, op, comparison.outward)
    units = [(var, c) for var, c in scaled if abs(c) == 1]
    others = [(var, c) for var, c in scaled if abs(c) != 1]
    if not others:
        return f"({op} (+ {' '.join(_signed(v, c) for v, c in units)}) {bound})", True
    if len(others) == 1:  # sum(units) + c v op bound  as  (+ units -bound) op (* -c v)
        var, coefficient = others[0]
        negated = bound[1:] if bound.startswith("-") else f"-{bound}"
        left = " ".join([*(_signed(v, c) for v, c in units), negated])
        return f"({op} (+ {left}) (* {_number(float(-coefficient))} {var}))", True
    weighted = " ".join(f"(* {_number(float(c))} {v})" for v, c in scaled)
    return f"({op} (+ {weighted}) {bound})", False


def vnnlib_text(spec: Spec, assert_: Assert, disjuncts: list[tuple[Atom, ...]], lower: np.ndarray,
                upper: np.ndarray, tolerance: Fraction) -> tuple[str, bool]:
    """The VNN-LIB file for one assert (its violation over the domain box) and whether Marabou 2.0 reads it."""
    lines = [f"; deepsade export: the VIOLATION of assert {assert_.index + 1} (sat = counterexample, "
             "unsat = the rule holds on the whole box)",
             *(f";   {line}" for line in " ".join(assert_.text.split()).splitlines()),
             "; inputs X_i: raw encoded inputs in model.json order; outputs Y_j: raw outputs (regression units, "
             "classifier scores); names in export.json",
             f"; strict and non-strict atoms are widened by tolerance {_number(float(tolerance))} (normalised atom, "
             "raw units), bounds rounded outwards:" if tolerance >= 0 else
             f"; atoms are narrowed by {_number(float(-tolerance))} (normalised atom, raw units), bounds rounded "
             "inwards:",
             "; " + ("the region contains every violation, so unsat is a proof; a sat witness must be re-checked"
                     if tolerance >= 0 else "witnesses break the rule by at least that much; unsat proves nothing "
                     "about smaller violations"),
             ""]
    lines += [f"(declare-const X_{j} Real)" for j in range(len(spec.input_names))]
    lines += [f"(declare-const Y_{k} Real)" for k in range(len(spec.output_names))]
    lines += ["", "; the domain box (raw units)"]
    for j in range(len(spec.input_names)):
        lines.append(f"(assert (>= X_{j} {_number(lower[j])}))")
        lines.append(f"(assert (<= X_{j} {_number(upper[j])}))")
    readable = True
    conjuncts = [[c for atom in d for c in widen(atom, tolerance)] for d in disjuncts]
    if len(conjuncts) == 1:
        lines.append("; premise and negated conclusion")
        for comparison in _tighter_than_box(conjuncts[0], lower, upper):
            text, ok = comparison_text(comparison)
            readable &= ok
            lines.append(f"(assert {text})")
    elif conjuncts:
        lines.append("; the violation: one conjunction per way of breaking the rule")
        lines.append("(assert (or")
        for conjunct in conjuncts:
            parts = []
            for comparison in conjunct:
                text, ok = comparison_text(comparison)
                readable &= ok
                parts.append(text)
            lines.append(f"  (and {' '.join(parts)})")
        lines.append("))")
    return "\n".join(lines) + "\n", readable


def _tighter_than_box(conjunct: list[Comparison], lower: np.ndarray, upper: np.ndarray) -> list[Comparison]:
    """One bound per variable and side, the tightest, and none that the box already implies.

    Marabou's reader *sets* (does not tighten) a variable's bound from a one-variable assert, so a
    looser bound written after the box, or after a tighter premise bound, would widen the region."""
    box = {f"X_{j}": (Fraction(float(lower[j])), Fraction(float(upper[j]))) for j in range(len(lower))}
    tightest: dict[tuple[str, str], tuple[Fraction, Comparison]] = {}
    others = []
    for comparison in conjunct:
        variable_bound = comparison.variable_bound()
        if variable_bound is None:
            others.append(comparison)
            continue
        var, op, value = variable_bound
        low, high = box.get(var, (None, None))
        if (op == ">=" and low is not None and value <= low) or (op == "<=" and high is not None and value >= high):
            continue
        previous = tightest.get((var, op))
        if previous is None or (value > previous[0] if op == ">=" else value < previous[0]):
            tightest[(var, op)] = (value, comparison)
    return [comparison for _, comparison in tightest.values()] + others
