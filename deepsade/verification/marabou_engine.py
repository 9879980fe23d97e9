"""The Marabou engine: the exact ReLU network as a Marabou query, the violation as a disjunction.

The query is built straight from the weights (input bounds, pre/post-activation variables tied by
ReLU constraints, outputs ``y = W [h; s] + b`` including the skip connections); the violation of the
asserts is the disjunction of their linear disjuncts. Marabou works in double precision and has no
strict inequalities: ``a.v < b`` is sent as ``a.v <= b - STRICT_MARGIN * max|a|``, so a violation
smaller than that margin can be missed, and a witness may fail the exact re-check (``exact = False``:
the verifier then asks again with margins on every inequality, and z3 settles what is left).

Inputs a real row could have (``Query.realisable``) are handled by enumeration: every combination of
one category per one-hot group (among those the box allows) and one whole value per integer column
with at most ``MAX_INTEGER_CASES`` values in the box is one Marabou query with those inputs fixed,
as long as the combinations number at most ``MAX_ENUMERATED`` (the smallest groups and columns are
enumerated first). Marabou's own disjunction constraints express the same thing, but measured on a
14-neuron network with one two-category group and a five-value integer column they took 15 s where
the ten enumerated queries took 0.02 s. What is not enumerated (more combinations, wider integer
columns) stays relaxed to its interval: Marabou then searches a superset, so its 'no violation'
still holds, and its witness is snapped onto a realisable input and re-checked exactly by the
verifier; when that fails, z3 (which expresses both natively) decides.

Marabou 2.0 quirks handled here: input variables are marked (without that its DeepPoly bounds are
off and a 2-input network took > 60 s instead of 0.2 s); a one-variable atom of a single-disjunct
violation is passed as a variable bound, because as an added equation Marabou returned witnesses
that broke it; inconsistent bounds are answered 'no violation' here, not sent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from deepsade.realisable import RealisableInputs
from deepsade.verification.deadline import GRACE_SECONDS, call_with_deadline
from deepsade.verification.engine import Engine, Query, ViolationForm
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Answer, Verdict
from deepsade.verification.violation import Atom, Disjunct

# Marabou has no strict inequalities: 'a.v < b' becomes 'a.v <= b - STRICT_MARGIN * max|a|' (scaled units).
STRICT_MARGIN = 1e-6
# Realisable inputs by enumeration (see the module docstring): an integer column is enumerated when
# its box holds at most MAX_INTEGER_CASES whole values, and at most MAX_ENUMERATED queries are made.
MAX_INTEGER_CASES = 32
MAX_ENUMERATED = 256
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
        """Marabou on the box with the disjunction of the query's violation disjuncts, once per
        enumerated realisable case of its inputs."""
        return self._search(query, strict=False)

    def retry(self, query: Query) -> Answer | None:
        """Ask for a witness that keeps a margin on every inequality: the first one mostly sits on a
        boundary (e.g. a score of exactly 0) that float rounding put on the wrong side."""
        return self._search(query, strict=True)

    def _search(self, query: Query, strict: bool) -> Answer:
        """One Marabou query per enumerated case, within the query's timeout: the first violation wins;
        unknown if a case is undecided and none has a violation."""
        lower, upper = [float(v) for v in query.lower], [float(v) for v in query.upper]
        alternatives = realisability_cases(query.realisable, query.lower, query.upper) if query.realisable else []
        deadline = time.perf_counter() + query.timeout
        reasons = []
        for low, high in enumerated_boxes(lower, upper, alternatives):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return Answer.unknown("marabou timeout (over the enumerated realisable cases)")
            answer = solve_with_deadline(self.weights, low, high, list(query.disjuncts), remaining, strict)
            if answer.verdict is Verdict.VIOLATION:
                return answer
            if answer.verdict is Verdict.UNKNOWN:
                reasons.append(answer.reason)
        return Answer.unknown(reasons[0]) if reasons else Answer.no_violation()


Cases = list[list[dict[int, float]]]  # per group / integer column: its alternatives, each fixing {variable: value}


def realisability_cases(realisable: RealisableInputs, lower: Sequence[Fraction], upper: Sequence[Fraction]) -> Cases:
    """The realisable inputs of the box as alternatives of variable fixings (scaled units): one list
    per one-hot group with more than one possible category, one per integer column with 2 to
    ``MAX_INTEGER_CASES`` whole values in the box. Groups and columns with one possibility are fixed
    by the box already (the verifier passes its realisable hull); wider integer columns stay relaxed."""
    cases: Cases = []
    for group in realisable.groups:
        active = realisable.categories(group, lower, upper)
        if len(active) > 1:
            cases.append([{k: float(realisable.scaled(k, 1 if k == c else 0)) for k in active} for c in active])
    for j in realisable.integers:
        first, last = realisable.integer_range(j, Fraction(lower[j]), Fraction(upper[j]))
        if 1 <= last - first < MAX_INTEGER_CASES:
            cases.append([{j: float(realisable.scaled(j, n))} for n in range(first, last + 1)])
    return cases


def enumerated_boxes(lower: list[float], upper: list[float], cases: Cases,
                     limit: int = MAX_ENUMERATED) -> Iterator[tuple[list[float], list[float]]]:
    """The box with every combination of the enumerated cases fixed (at most ``limit`` boxes; the
    cases with fewest alternatives are taken first, the others stay relaxed); the box itself when
    nothing is enumerated."""
    chosen, count = [], 1
    for alternatives in sorted(cases, key=len):
        if count * len(alternatives) > limit:
            break
        chosen.append(alternatives)
        count *= len(alternatives)
    for combination in itertools.product(*chosen):
        low, high = list(lower), list(upper)
        for fixings in combination:
            for var, value in fixings.items():
                low[var] = high[var] = value
        yield low, high


def solve_with_deadline(weights: NetworkWeights, lower: Sequence[float], upper: Sequence[float],
                        disjuncts: list[Disjunct], timeout: float, strict: bool = False) -> Answer:
    """``solve_disjuncts`` in a child process that is killed ``deadline.GRACE_SECONDS`` after ``timeout``:
    Marabou does not always keep its own timeout (``deepsade.verification.deadline``); unknown then."""
    import maraboupy  # noqa: F401 - a missing extra is reported here, in this process, as the CLI expects
    finished, answer = call_with_deadline(solve_disjuncts, (weights, list(lower), list(upper), disjuncts, timeout,
                                                           strict), timeout + GRACE_SECONDS)
    if not finished:
        return Answer.unknown(f"marabou ran past its timeout ({timeout:.3g} s) and was stopped")
    return answer


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
