"""The violation of an assert as a disjunction of conjunctions of linear atoms (DNF).

``P and not Q`` for one assert, with the network's inputs ``x!j`` and outputs ``y!k`` as variables,
becomes a list of disjuncts, each a tuple of ``Atom``s (linear comparisons). This is the form that
Marabou takes (a disjunction of equation sets) and that the bound pre-check rules out atom by atom.
Conclusions that count outputs with ``ite`` terms are split on the ite conditions, and the breaking
sign patterns are merged into a few cubes (Quine-McCluskey prime implicants, then a greedy cover).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.linear import NotLinear, linear_form
from deepsade.prime_implicants import prime_cover
from deepsade.spec import Assert, distinct_subterms

# Enumerating output sign patterns of ite-count conclusions: at most this many disjuncts per assert
# and this many distinct ite conditions per conjunct of a conclusion.
MAX_DISJUNCTS = 64
MAX_CONDITIONS = 12


@dataclass(frozen=True)
class Atom:
    """``sum(coefficient * variable) OP bound`` over variables ``x!j`` / ``y!k``; OP in <=, <, >=, >, ==.

    Coefficients are normalised so that the largest magnitude is 1."""

    terms: tuple[tuple[str, Fraction], ...]
    op: str
    bound: Fraction


class Inexpressible(Exception):
    """The formula falls outside what the linear-disjunct encoding takes (reason in the message)."""


_FLIP = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!="}


def _comparison(expr: z3.ExprRef) -> str | None:
    for test, op in ((z3.is_le, "<="), (z3.is_lt, "<"), (z3.is_ge, ">="), (z3.is_gt, ">")):
        if test(expr):
            return op
    if z3.is_eq(expr) and z3.is_arith(expr.arg(0)):
        return "=="
    if z3.is_distinct(expr) and expr.num_args() == 2 and z3.is_arith(expr.arg(0)):
        return "!="
    return None


def _atoms(expr: z3.ExprRef, op: str) -> list[Atom | bool]:
    """Alternatives (a disjunction) equivalent to ``lhs OP rhs``; a bool where no variable is left."""
    try:
        (left, left_const), (right, right_const) = (linear_form(c) for c in expr.children())
    except NotLinear:
        # no formula here: it is in scaled units over internal names (x!4), which a user cannot read
        raise Inexpressible("it multiplies or divides variables (a non-linear term)") from None
    coefficients = dict(left)
    for name, value in right.items():
        coefficients[name] = coefficients.get(name, Fraction(0)) - value
    coefficients = {k: v for k, v in coefficients.items() if v != 0}
    bound = right_const - left_const
    if op == "!=":
        return [*_atoms_of(coefficients, "<", bound), *_atoms_of(coefficients, ">", bound)]
    return _atoms_of(coefficients, op, bound)


def _atoms_of(coefficients: dict[str, Fraction], op: str, bound: Fraction) -> list[Atom | bool]:
    if not coefficients:
        holds = {"<=": 0 <= bound, "<": 0 < bound, ">=": 0 >= bound, ">": 0 > bound, "==": bound == 0}[op]
        return [holds]
    scale = max(abs(v) for v in coefficients.values())
    terms = tuple(sorted((k, v / scale) for k, v in coefficients.items()))
    return [Atom(terms, op, bound / scale)]


Disjunct = tuple[Atom, ...]


def _conjoin(parts: list[list[Disjunct]], limit: int) -> list[Disjunct]:
    result: list[Disjunct] = [()]
    for part in parts:
        if len(result) * len(part) > limit:
            raise Inexpressible(f"more than {limit} disjuncts")
        result = [tuple(dict.fromkeys(a + b)) for a in result for b in part]
    return result


def _disjoin(parts: list[list[Disjunct]], limit: int) -> list[Disjunct]:
    result = list(dict.fromkeys(d for part in parts for d in part))
    if len(result) > limit:
        raise Inexpressible(f"more than {limit} disjuncts")
    return result


def _dnf(expr: z3.ExprRef, positive: bool, limit: int) -> list[Disjunct]:
    """``expr`` (or its negation) as a disjunction of conjunctions of linear atoms (no ite terms)."""
    if z3.is_true(expr):
        return [()] if positive else []
    if z3.is_false(expr):
        return [] if positive else [()]
    if z3.is_not(expr):
        return _dnf(expr.arg(0), not positive, limit)
    if z3.is_and(expr) or z3.is_or(expr):
        parts = [_dnf(c, positive, limit) for c in expr.children()]
        return _conjoin(parts, limit) if z3.is_and(expr) == positive else _disjoin(parts, limit)
    if z3.is_implies(expr):
        return _dnf(z3.Or(z3.Not(expr.arg(0)), expr.arg(1)), positive, limit)
    if z3.is_eq(expr) and z3.is_bool(expr.arg(0)):
        a, b = expr.arg(0), expr.arg(1)
        return _dnf(z3.Or(z3.And(a, b), z3.And(z3.Not(a), z3.Not(b))), positive, limit)
    if z3.is_app_of(expr, z3.Z3_OP_ITE):
        c, a, b = expr.children()
        return _dnf(z3.Or(z3.And(c, a), z3.And(z3.Not(c), b)), positive, limit)
    op = _comparison(expr)
    if op is None:
        raise Inexpressible(f"operator '{expr.decl().name()}'")
    disjuncts: list[Disjunct] = []
    for atom in _atoms(expr, op if positive else _FLIP[op]):
        if atom is True:
            return [()]
        if atom is not False:
            disjuncts.append((atom,))
    return disjuncts


def _arith_ite_conditions(expr: z3.ExprRef) -> list[z3.BoolRef]:
    """Distinct conditions of the arithmetic ``ite`` terms in ``expr``."""
    found: dict[int, z3.BoolRef] = {}
    for node in distinct_subterms(expr):
        if z3.is_app_of(node, z3.Z3_OP_ITE) and z3.is_arith(node):
            found.setdefault(node.arg(0).get_id(), node.arg(0))
    return list(found.values())


def _violation_of(premise: z3.BoolRef, conclusion: z3.BoolRef, limit: int, max_conditions: int) -> list[Disjunct]:
    """Disjuncts of ``premise and not conclusion``; ite terms are split on their conditions."""
    if z3.is_and(conclusion):  # not (Q1 and Q2) = not Q1 or not Q2: each with its own conditions
        return _disjoin([_violation_of(premise, c, limit, max_conditions) for c in conclusion.children()], limit)
    violation = z3.And(premise, z3.Not(conclusion))
    conditions = _arith_ite_conditions(violation)
    if not conditions:
        return _dnf(z3.simplify(violation), True, limit)
    if len(conditions) > max_conditions:
        raise Inexpressible(f"{len(conditions)} ite conditions (at most {max_conditions} are enumerated)")
    groups: dict[Disjunct, set[tuple[int, ...]]] = {}
    for bits in itertools.product((0, 1), repeat=len(conditions)):
        fixed = z3.simplify(z3.substitute(violation, *[(c, z3.BoolVal(bool(b))) for c, b in
                                                       zip(conditions, bits, strict=True)]))
        if _arith_ite_conditions(fixed):
            raise Inexpressible("nested ite conditions")
        for residual in _dnf(fixed, True, 4 * limit):
            groups.setdefault(residual, set()).add(bits)
    literals = [(_dnf(c, False, limit), _dnf(c, True, limit)) for c in conditions]
    disjuncts: list[Disjunct] = []
    for residual, minterms in groups.items():
        for cube in prime_cover(minterms):
            parts = [literals[i][b] for i, b in enumerate(cube) if b != 2]
            disjuncts.extend(_conjoin([*parts, [residual]], limit))
            if len(disjuncts) > limit:
                raise Inexpressible(f"more than {limit} output sign patterns break it")
    return list(dict.fromkeys(disjuncts))


def violation_disjuncts(assert_: Assert, max_disjuncts: int = MAX_DISJUNCTS,
                        max_conditions: int = MAX_CONDITIONS) -> tuple[list[Disjunct] | None, str]:
    """``P and not Q`` for one assert as a disjunction of conjunctions of linear atoms.

    Returns (disjuncts, "") or (None, reason) when it cannot be put in that form within
    ``max_disjuncts`` (then z3 has to check the assert). An empty list means the assert cannot be
    broken at all. Conclusions counting outputs with ``ite`` are split on the conditions and the
    breaking sign patterns merged into a few cubes."""
    try:
        return _violation_of(assert_.premise, assert_.conclusion, max_disjuncts, max_conditions), ""
    except Inexpressible as exc:
        return None, str(exc)

