"""The Marabou engine: the exact ReLU network as a Marabou query, the violation as a disjunction.

The query is built straight from the weights (input bounds, pre/post-activation variables tied by
ReLU constraints, outputs ``y = W [h; s] + b`` including the skip connections); the violation of the
asserts is the disjunction of their linear disjuncts. Marabou works in double precision and has no
strict inequalities: ``a.v < b`` is sent as ``a.v <= b - STRICT_MARGIN * max|a|``, so a violation
smaller than that margin can be missed, and a witness may fail the exact re-check (``exact = False``:
the verifier then asks again with margins on every inequality, and z3 settles what is left).

Marabou 2.0 quirks handled here: input variables are marked (without that its DeepPoly bounds are
off and a 2-input network took > 60 s instead of 0.2 s); a one-variable atom of a single-disjunct
violation is passed as a variable bound, because as an added equation Marabou returned witnesses
that broke it; inconsistent bounds are answered 'no violation' here, not sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepsade.verification.engine import Engine, Query, ViolationForm
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Answer
from deepsade.verification.violation import Atom, Disjunct

# Marabou has no strict inequalities: 'a.v < b' becomes 'a.v <= b - STRICT_MARGIN * max|a|' (scaled units).
STRICT_MARGIN = 1e-6
_MIRROR = {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}  # the op after multiplying by -1


class MarabouEngine(Engine):
    """Marabou on the exact ReLU network; takes asserts whose violation is a small linear disjunction."""

    name = "marabou"
    label = "Marabou"
    exact = False  # double precision

    @classmethod
    def cannot_express(cls, form: ViolationForm) -> str | None:
        """Asserts without a linear-disjunct violation (non-linear, too many sign patterns) are refused."""
        return form.reason if form.disjuncts is None else None

    def check(self, query: Query) -> Answer:
        """Marabou on the box with the disjunction of the query's violation disjuncts."""
        return solve_disjuncts(self.weights, [float(v) for v in query.lower], [float(v) for v in query.upper],
                               list(query.disjuncts), query.timeout)

    def retry(self, query: Query) -> Answer | None:
        """Ask for a witness that keeps a margin on every inequality: the first one mostly sits on a
        boundary (e.g. a score of exactly 0) that float rounding put on the wrong side."""
        return solve_disjuncts(self.weights, [float(v) for v in query.lower], [float(v) for v in query.upper],
                               list(query.disjuncts), query.timeout, strict=True)


def solve_disjuncts(weights: NetworkWeights, lower: Sequence[float], upper: Sequence[float],
                    disjuncts: list[Disjunct], timeout: float, strict: bool = False) -> Answer:
    """Run Marabou on the network over the box with the disjunction of ``disjuncts`` on inputs/outputs.

    ``strict``: every inequality must hold with the margin (as if strict), which asks for a
    counterexample that does not sit on a boundary. The witness of a violation holds the input
    values Marabou found (floats)."""
    from maraboupy import MarabouCore

    if strict:
        disjuncts = [tuple(Atom(a.terms, {"<=": "<", ">=": ">"}.get(a.op, a.op), a.bound) for a in d)
                     for d in disjuncts]
    query, outputs = _network_query(weights, lower, upper)
    index = {f"x!{j}": j for j in range(weights.n_inputs)} | {f"y!{k}": v for k, v in enumerate(outputs)}
    if not _add_violation(query, disjuncts, index, lower, upper):
        return Answer.no_violation()
    options = MarabouCore.Options()
    options._verbosity = 0
    options._snc = False
    options._numWorkers = 1
    options._timeoutInSeconds = max(1, math.ceil(timeout))  # Marabou counts whole seconds; 0 = none
    exit_code, values, _ = MarabouCore.solve(query, options, "")
    if exit_code == "sat":
        return Answer.violation([values[j] for j in range(weights.n_inputs)])
    if exit_code == "unsat":
        return Answer.no_violation()
    return Answer.unknown(f"marabou {exit_code.lower()}")


def _network_query(weights: NetworkWeights, lower: Sequence[float], upper: Sequence[float]) -> tuple[Any, list[int]]:
    """A Marabou query holding the network over the box; returns it and the output variables."""
    from maraboupy import MarabouCore

    query = MarabouCore.InputQuery()
    n_inputs = weights.n_inputs
    pre_bounds = weights.preactivation_bounds(np.asarray(lower), np.asarray(upper))
    n_vars = n_inputs + 2 * sum(len(b) for _, b in weights.hidden) + weights.n_outputs
    query.setNumberOfVariables(n_vars)
    for j in range(n_inputs):
        query.markInputVariable(j, j)  # lets Marabou rebuild the layered network for DeepPoly bounds
        query.setLowerBound(j, float(lower[j]))
        query.setUpperBound(j, float(upper[j]))
    previous = list(range(n_inputs))
    next_var = n_inputs
    for (weight, bias), (pre_low, pre_high) in zip(weights.hidden, pre_bounds, strict=True):
        size = len(bias)
        pre, post = list(range(next_var, next_var + size)), list(range(next_var + size, next_var + 2 * size))
        next_var += 2 * size
        for i in range(size):
            _affine(query, pre[i], weight[i], previous, bias[i])
            query.setLowerBound(pre[i], float(pre_low[i]))
            query.setUpperBound(pre[i], float(pre_high[i]))
            query.setLowerBound(post[i], 0.0)
            query.setUpperBound(post[i], max(float(pre_high[i]), 0.0))
            MarabouCore.addReluConstraint(query, pre[i], post[i])
        previous = post
    latent = previous + [int(j) for j in weights.mapped]
    outputs = list(range(next_var, next_var + weights.n_outputs))
    for k, var in enumerate(outputs):
        query.markOutputVariable(var, k)
        _affine(query, var, weights.last_weight[k], latent, weights.last_bias[k])
    return query, outputs


def _add_violation(query: Any, disjuncts: list[Disjunct], index: dict[str, int], lower: Sequence[float],
                   upper: Sequence[float]) -> bool:
    """Add the disjunction of ``disjuncts`` to the query; False when its bounds are inconsistent (no violation)."""
    from maraboupy import MarabouCore

    if any(not disjunct for disjunct in disjuncts):
        return True  # one disjunct holds everywhere: nothing to add
    if len(disjuncts) != 1:
        MarabouCore.addDisjunctionConstraint(
            query, [[_equation(atom, index) for atom in disjunct] for disjunct in disjuncts])
        return True
    # Marabou 2.0 (inputs marked) ignored a one-variable equation added to the query and returned
    # points breaking it: one-variable atoms become bounds, the others equations
    bounds = {j: (float(lower[j]), float(upper[j])) for j in range(len(lower))}
    for atom in disjuncts[0]:
        if len(atom.terms) > 1:
            query.addEquation(_equation(atom, index))
            continue
        var = index[atom.terms[0][0]]
        low, high = bounds.get(var, (-math.inf, math.inf))
        for side, value in _atom_bounds(atom):
            low, high = (max(low, value), high) if side == "lower" else (low, min(high, value))
        if low > high:
            return False
        bounds[var] = (low, high)
        if low > -math.inf:
            query.setLowerBound(var, low)
        if high < math.inf:
            query.setUpperBound(var, high)
    return True


def _affine(query: Any, target: int, row: np.ndarray, sources: list[int], bias: float) -> None:
    """``target = row . sources + bias`` as ``target - row . sources = bias`` (zero weights dropped)."""
    from maraboupy import MarabouCore

    equation = MarabouCore.Equation(MarabouCore.Equation.EQ)
    equation.addAddend(1.0, target)
    for coefficient, var in zip(row.tolist(), sources, strict=True):
        if coefficient != 0.0:
            equation.addAddend(-coefficient, var)
    equation.setScalar(float(bias))
    query.addEquation(equation)


def _atom_bounds(atom: Atom) -> list[tuple[str, float]]:
    """A one-variable atom as bounds on its variable: [("lower" | "upper", value), ...]."""
    (_, coefficient), = atom.terms
    value = float(atom.bound / coefficient)
    op = atom.op if coefficient > 0 else _MIRROR[atom.op]
    margin = STRICT_MARGIN / float(abs(coefficient))
    return {"<=": [("upper", value)], "<": [("upper", value - margin)], ">=": [("lower", value)],
            ">": [("lower", value + margin)], "==": [("lower", value), ("upper", value)]}[op]


def _equation(atom: Atom, index: dict[str, int]) -> Any:
    """A linear atom as a Marabou equation (strict comparisons shifted by STRICT_MARGIN)."""
    from maraboupy import MarabouCore

    terms, op, bound = atom.terms, atom.op, atom.bound
    if len(terms) == 1 and terms[0][1] < 0:
        # one-variable atoms become bound tightenings inside Marabou: hand them over in the plain form
        # 'v op c' (Marabou's issue tracker lists sign mix-ups with one-variable (in)equalities)
        terms, op, bound = ((terms[0][0], -terms[0][1]),), _MIRROR[op], -bound
    kind = {"<=": "LE", "<": "LE", ">=": "GE", ">": "GE", "==": "EQ"}[op]
    equation = MarabouCore.Equation(getattr(MarabouCore.Equation, kind))
    for name, coefficient in terms:
        equation.addAddend(float(coefficient), index[name])
    shift = {"<": -STRICT_MARGIN, ">": STRICT_MARGIN}.get(op, 0.0)
    equation.setScalar(float(bound) + shift)
    return equation
