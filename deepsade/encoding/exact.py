"""The exact checker: a search, in rationals, for a latent point where an assert fails.

Every strategy is judged against it: no strategy may accept last-layer weights that
``find_counterexample`` rejects. It also builds the assert at one latent point, the constraint
CEGIS adds for each counterexample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

import z3

from deepsade.encoding.layout import LatentLayout, exact_term, sum_terms
from deepsade.numbers import z3_fraction
from deepsade.spec import Assert, input_var, output_var


class Undecided(str, Enum):
    """The exact check ran out of time: never take that as safe. Compares equal to the string "unknown"."""

    UNKNOWN = "unknown"


UNKNOWN = Undecided.UNKNOWN


@dataclass
class Counterexample:
    """A latent point (and output perturbation) where the premise holds and the conclusion fails."""

    assert_index: int
    latent: list[Fraction]
    perturbation: list[Fraction]


def find_counterexample(assert_: Assert, layout: LatentLayout, weights, biases, low: Sequence, high: Sequence,
                        margin: Fraction, timeout_s: float | None = 10.0) -> Counterexample | Undecided | None:
    """Exact search, in rationals, for z in the box and |e| <= margin with P(s) and not Q(s, W z + b + e).

    ``weights``/``biases`` are numbers (floats convert exactly). Returns a Counterexample, None when
    there is none, or ``UNKNOWN`` when z3 could not decide in time (never take that as safe)."""
    z = [z3.Real(f"z!{l}") for l in range(layout.n_latent)]
    e = [z3.Real(f"e!{k}") for k in range(layout.n_out)]
    solver = z3.SolverFor("QF_LRA") if assert_.linear else z3.Solver()
    if timeout_s:
        solver.set("timeout", int(timeout_s * 1000))
    for l in range(layout.n_latent):
        lo, hi = Fraction(low[l]), Fraction(high[l])
        if lo == hi:
            solver.add(z[l] == exact_term(lo))
        else:
            solver.add(z[l] >= exact_term(lo), z[l] <= exact_term(hi))
    for k in range(layout.n_out):
        solver.add(e[k] >= -exact_term(margin), e[k] <= exact_term(margin))
    inputs = [(input_var(j), z[layout.coordinate(j)]) for j in assert_.inputs]
    exact_outputs, perturbed_outputs = [], []
    for k in assert_.outputs:
        terms = [_mul(Fraction(float(weights[k][l])), z[l]) for l in range(layout.n_latent)]
        exact = sum_terms([t for t in terms if t is not None]) + exact_term(Fraction(float(biases[k])))
        exact_outputs.append((output_var(k), exact))
        perturbed_outputs.append((output_var(k), exact + e[k]))
    formula = substitute_outputs(assert_.scaled, inputs + perturbed_outputs, inputs + exact_outputs)
    solver.add(z3.Not(formula))
    verdict = solver.check()
    if verdict == z3.unsat:
        return None
    if verdict != z3.sat:
        return UNKNOWN
    model = solver.model()
    value = lambda v: z3_fraction(model.eval(v, model_completion=True))  # noqa: E731
    return Counterexample(assert_.index, [value(v) for v in z], [value(v) for v in e])


def point_constraint(assert_: Assert, layout: LatentLayout, point: Sequence, perturbation: Sequence,
                     weights, biases) -> z3.BoolRef:
    """The assert at one latent point (and output perturbation), as a constraint on the weight variables."""
    perturbed = _latent_substitution(assert_, layout, point, weights, biases, perturbation)
    exact = _latent_substitution(assert_, layout, point, weights, biases, [0] * layout.n_out)
    return substitute_outputs(assert_.scaled, perturbed, exact)


def _latent_substitution(assert_: Assert, layout: LatentLayout, point, weights, biases, perturbation):
    """Pairs replacing x!j by the point's skip coordinate and y!k by W z + b + e."""
    pairs = [(input_var(j), _as_term(point[layout.coordinate(j)])) for j in assert_.inputs]
    for k in assert_.outputs:
        terms = [_mul(weights[k][l], point[l]) for l in range(layout.n_latent)]
        terms = [t for t in terms if t is not None]
        pairs.append((output_var(k), sum_terms(terms) + _as_term(biases[k]) + _as_term(perturbation[k])))
    return pairs


def _as_term(value) -> z3.ArithRef:
    return value if isinstance(value, z3.ExprRef) else exact_term(value)


def _mul(weight, value):
    """weight * value where either may be a number; None when the product is exactly zero."""
    w_num = not isinstance(weight, z3.ExprRef)
    v_num = not isinstance(value, z3.ExprRef)
    if (w_num and weight == 0) or (v_num and value == 0):
        return None
    if w_num and v_num:
        return exact_term(Fraction(weight) * Fraction(value))
    return _as_term(weight) * _as_term(value)


def substitute_outputs(formula: z3.ExprRef, perturbed: list, exact: list) -> z3.ExprRef:
    """Substitute the network into ``formula``: equalities between numbers get the exact outputs (no
    margin can hold an equality), every other atom the outputs moved by the margin variables."""
    cache: dict = {}

    def walk(node: z3.ExprRef) -> z3.ExprRef:
        key = node.get_id()
        if key not in cache:
            if z3.is_eq(node) and not z3.is_bool(node.arg(0)):
                cache[key] = z3.substitute(node, *exact)
            elif z3.is_bool(node) and z3.is_app(node) and node.num_args() and not _is_atom(node):
                cache[key] = node.decl()(*[walk(child) for child in node.children()])
            else:
                cache[key] = z3.substitute(node, *perturbed)
        return cache[key]

    return walk(formula)


def _is_atom(node: z3.ExprRef) -> bool:
    """A Boolean node whose arguments are numbers (a comparison), as opposed to a connective."""
    return not any(z3.is_bool(child) for child in node.children())
