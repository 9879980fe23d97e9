"""Searching for counterexamples: does the network break an assert somewhere in a box of inputs?

The question, for a box ``R`` of scaled inputs (an L-inf ball around an instance intersected with the
domain box D, or D itself): is there ``x in R`` with ``P(x) and not Q(x, f(x))`` for some assert, where
``f`` is the stored network evaluated exactly (float32 weights read as rationals, no approximation)?

Two engines answer it on the exact ReLU network:

- **Marabou** (``engine="marabou"``): the query is built straight from the weights (input bounds,
  pre/post-activation variables tied by ReLU constraints, outputs ``y = W [h; s] + b`` including the
  skip connections). The violation of every assert is turned into a disjunction of conjunctions of
  linear atoms (``violation_disjuncts``). Marabou works in double precision and has no strict
  inequalities: ``a.v < b`` is sent as ``a.v <= b - STRICT_MARGIN * max|a|``, so a violation smaller than
  that margin can be missed. Asserts Marabou cannot express (non-linear, or too many output sign
  patterns) are checked by z3 in the same call, with a note.
- **z3** (``engine="z3"``): an exact encoding in linear real arithmetic (``post = max(pre, 0)`` as
  ``post >= 0, post >= pre, post = pre or post = 0``; neurons that the bounds below prove stable are
  fixed; a triangle cut on the others), with the spec's formulas used as they are.

Nothing is claimed without proof: every counterexample is re-evaluated on the network in exact
rational arithmetic and must break an assert there (``Outcome.broken``); one from Marabou that does
not (float rounding, or a wrong witness from Marabou) is re-checked with z3. A timeout is
``unknown``, never ``verified``.

Two cheap steps run before a solver (both can be switched off): a few random points of the box are
tried (``presample``; a break there is a counterexample like any other, confirmed the same way), and
sound linear bounds (CROWN / DeepPoly-style back-substitution, float64 padded outwards by 1e-9
relative) are computed for every atom of every violation disjunct: an assert whose every disjunct
contains an atom the bounds rule out cannot break in the box (``decided_by="bounds"``).

Marabou 2.0 quirks handled here: input variables are marked (without that its DeepPoly bounds are
off and a 2-input network took > 60 s instead of 0.2 s); a one-variable atom of a single-disjunct
violation is passed as a variable bound, because as an added equation Marabou returned witnesses
that broke it; inconsistent bounds are answered 'unsat' here, not sent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import z3

from deepsade.data import Encoding
from deepsade.errors import UserInputError
from deepsade.linear import NotLinear, linear_form
from deepsade.spec import Assert, Spec, distinct_subterms, input_var, output_var, parse_spec_text, rational

if TYPE_CHECKING:  # torch stays out of worker processes that only verify
    from deepsade.artifact import ModelArtifact
    from deepsade.network import SkipMLP

ENGINES = ("marabou", "z3")
STATUSES = ("verified", "counterexample", "unknown", "outside")
# Marabou has no strict inequalities: 'a.v < b' becomes 'a.v <= b - STRICT_MARGIN * max|a|' (scaled units).
STRICT_MARGIN = 1e-6
# Enumerating output sign patterns of ite-count conclusions for Marabou: at most this many
# disjuncts per assert and this many distinct ite conditions per conjunct of a conclusion.
MAX_DISJUNCTS = 64
MAX_CONDITIONS = 12
# Outward padding of float64 interval bounds (relative + absolute): float64 rounding of these sums
# is below 1e-13 relative at these sizes, so the bounds stay sound for fixing stable neurons.
_PAD_RELATIVE = 1e-9
_PAD_ABSOLUTE = 1e-12

Box = tuple[list[Fraction], list[Fraction]]


# ---- the network as plain arrays -------------------------------------------------------------------

@dataclass
class NetworkWeights:
    """A SkipMLP's weights as float64 copies of the stored float32 values (picklable, torch-free)."""

    hidden: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per hidden layer
    last_weight: np.ndarray  # (n_outputs, last hidden size + len(mapped))
    last_bias: np.ndarray
    mapped: np.ndarray  # input indices copied into the last layer (skip connections)
    _exact: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_model(cls, model: SkipMLP) -> NetworkWeights:
        """Copy the weights of ``model`` (float32 values, held exactly in float64)."""
        def arr(t: Any) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float64)
        return cls(hidden=[(arr(layer.weight), arr(layer.bias)) for layer in model.hidden],
                   last_weight=arr(model.last.weight), last_bias=arr(model.last.bias),
                   mapped=model.mapped_features.detach().cpu().numpy().astype(np.int64))

    @property
    def n_inputs(self) -> int:
        return int(self.hidden[0][0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.last_weight.shape[0])

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for scaled inputs of shape (n, d), computed in float64."""
        x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        h = x
        for weight, bias in self.hidden:
            h = np.maximum(h @ weight.T + bias, 0.0)
        return np.concatenate([h, x[:, self.mapped]], axis=1) @ self.last_weight.T + self.last_bias

    def _exact_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._exact is None:
            def frac(a: np.ndarray) -> np.ndarray:
                return np.array([Fraction(v) for v in a.ravel().tolist()], dtype=object).reshape(a.shape)
            self._exact = [(frac(w), frac(b)) for w, b in [*self.hidden, (self.last_weight, self.last_bias)]]
        return self._exact

    def forward_exact(self, point: Sequence[Fraction]) -> list[Fraction]:
        """Outputs at one input point in exact rational arithmetic (the semantics the guarantee uses)."""
        x = np.array([Fraction(v) for v in point], dtype=object)
        layers = self._exact_layers()
        h = x
        zero = Fraction(0)
        for weight, bias in layers[:-1]:
            h = np.array([max(v, zero) for v in weight.dot(h) + bias], dtype=object)
        weight, bias = layers[-1]
        latent = np.concatenate([h, x[self.mapped]])
        return list(weight.dot(latent) + bias)

    def preactivation_bounds(self, lower: np.ndarray, upper: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sound bounds of every hidden pre-activation over the box, per hidden layer (float64, padded outwards)."""
        return self.propagate(lower, upper).preactivation

    def propagate(self, lower: np.ndarray, upper: np.ndarray) -> Relaxation:
        """Bounds of every hidden pre-activation over the input box and the ReLU relaxations they give.

        Linear bounds are propagated backwards through the relaxations of the earlier layers
        (CROWN / DeepPoly style: upper line through (l, 0) and (u, u), lower slope 0 or 1), intersected
        with plain interval bounds. Padding: 1e-9 times the magnitude of the terms summed (computed
        alongside on absolute values) plus 1e-12, far above float64 rounding at these sizes."""
        relaxation = Relaxation(np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
        interval_low, interval_high = relaxation.low, relaxation.high
        for k, (weight, bias) in enumerate(self.hidden):
            center, radius = (interval_high + interval_low) / 2, (interval_high - interval_low) / 2
            mid, spread = weight @ center + bias, np.abs(weight) @ radius
            pad = _PAD_RELATIVE * (np.abs(weight) @ np.abs(center) + np.abs(bias) + spread) + _PAD_ABSOLUTE
            linear_low = self.lower_bound(relaxation, weight, bias, k)
            linear_high = -self.lower_bound(relaxation, -weight, -bias, k)
            pre_low = np.maximum(mid - spread - pad, linear_low)
            pre_high = np.minimum(mid + spread + pad, linear_high)
            relaxation.add_layer(pre_low, pre_high)
            interval_low, interval_high = np.maximum(pre_low, 0.0), np.maximum(pre_high, 0.0)
        return relaxation

    def lower_bound(self, relaxation: Relaxation, coefficients: np.ndarray, constant: np.ndarray, layer: int,
                    direct: np.ndarray | None = None) -> np.ndarray:
        """Sound lower bounds over the box of ``coefficients . a + constant + direct . x`` (one per row), where
        ``a`` is the input of hidden layer ``layer`` (the inputs for 0, the last hidden activations for
        ``len(hidden)``); the relaxations of layers below ``layer`` must be in ``relaxation``."""
        coefficients, constant = np.atleast_2d(coefficients), np.atleast_1d(constant).astype(np.float64)
        abs_coefficients, abs_constant = np.abs(coefficients), np.abs(constant)
        for j in range(layer - 1, -1, -1):
            lower_slope, upper_slope, intercept = relaxation.relu[j]
            positive, negative = np.maximum(coefficients, 0.0), np.minimum(coefficients, 0.0)
            constant = constant + negative @ intercept
            abs_constant = abs_constant + np.abs(negative) @ intercept
            coefficients = positive * lower_slope + negative * upper_slope
            abs_coefficients = abs_coefficients * np.maximum(lower_slope, upper_slope)
            weight, bias = self.hidden[j]
            constant, abs_constant = constant + coefficients @ bias, abs_constant + abs_coefficients @ np.abs(bias)
            coefficients, abs_coefficients = coefficients @ weight, abs_coefficients @ np.abs(weight)
        if direct is not None:
            coefficients, abs_coefficients = coefficients + direct, abs_coefficients + np.abs(direct)
        value = np.maximum(coefficients, 0.0) @ relaxation.low + np.minimum(coefficients, 0.0) @ relaxation.high
        magnitude = np.maximum(np.abs(relaxation.low), np.abs(relaxation.high))
        pad = _PAD_RELATIVE * (abs_coefficients @ magnitude + abs_constant) + _PAD_ABSOLUTE
        return value + constant - pad

    def output_lower_bound(self, relaxation: Relaxation, output_coefficients: np.ndarray,
                           input_coefficients: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """Sound lower bounds over the box of ``output_coefficients . y + input_coefficients . x + constant``
        (one per row): the better of the backward linear bound and the interval bound on ``[h; s]``."""
        out, inp = np.atleast_2d(output_coefficients), np.atleast_2d(input_coefficients)
        n_hidden = self.hidden[-1][1].shape[0]
        on_hidden = out @ self.last_weight[:, :n_hidden]
        direct = inp.copy()
        np.add.at(direct.T, self.mapped, (out @ self.last_weight[:, n_hidden:]).T)
        constant = np.atleast_1d(constant).astype(np.float64) + out @ self.last_bias
        linear = self.lower_bound(relaxation, on_hidden, constant, len(self.hidden), direct)
        pre_low, pre_high = relaxation.preactivation[-1]
        latent_low = np.concatenate([np.maximum(pre_low, 0.0), relaxation.low])
        latent_high = np.concatenate([np.maximum(pre_high, 0.0), relaxation.high])
        full = np.concatenate([on_hidden, direct], axis=1)
        magnitude = np.maximum(np.abs(latent_low), np.abs(latent_high))
        interval = (np.maximum(full, 0.0) @ latent_low + np.minimum(full, 0.0) @ latent_high + constant
                    - _PAD_RELATIVE * (np.abs(full) @ magnitude + np.abs(constant)) - _PAD_ABSOLUTE)
        return np.maximum(linear, interval)


@dataclass
class Relaxation:
    """Input box, pre-activation bounds per hidden layer and the ReLU relaxations built from them."""

    low: np.ndarray
    high: np.ndarray
    preactivation: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    relu: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # lower slope, upper slope, intercept

    def add_layer(self, pre_low: np.ndarray, pre_high: np.ndarray) -> None:
        """Record a layer's bounds and its relaxation ``lower_slope * z <= relu(z) <= upper_slope * z + intercept``."""
        self.preactivation.append((pre_low, pre_high))
        unstable = (pre_low < 0) & (pre_high > 0)
        width = np.where(unstable, pre_high - pre_low, 1.0)
        upper_slope = np.where(pre_high <= 0, 0.0, np.where(pre_low >= 0, 1.0, pre_high / width))
        intercept = np.where(unstable, -upper_slope * pre_low, 0.0)
        lower_slope = np.where(pre_high <= 0, 0.0, np.where(pre_low >= 0, 1.0, (pre_high > -pre_low) * 1.0))
        self.relu.append((lower_slope, upper_slope, intercept))


# ---- the violation of an assert as linear disjuncts (what Marabou can take) --------------------------

@dataclass(frozen=True)
class Atom:
    """``sum(coefficient * variable) OP bound`` over variables ``x!j`` / ``y!k``; OP in <=, <, >=, >, ==.

    Coefficients are normalised so that the largest magnitude is 1."""

    terms: tuple[tuple[str, Fraction], ...]
    op: str
    bound: Fraction


class _Inexpressible(Exception):
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
        raise _Inexpressible(f"non-linear term in {' '.join(expr.sexpr().split())[:80]}") from None
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
            raise _Inexpressible(f"more than {limit} disjuncts")
        result = [tuple(dict.fromkeys(a + b)) for a in result for b in part]
    return result


def _disjoin(parts: list[list[Disjunct]], limit: int) -> list[Disjunct]:
    result = list(dict.fromkeys(d for part in parts for d in part))
    if len(result) > limit:
        raise _Inexpressible(f"more than {limit} disjuncts")
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
        raise _Inexpressible(f"operator '{expr.decl().name()}'")
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


def _prime_cover(minterms: set[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """A small set of cubes (0/1 fixed, 2 free) whose union is exactly ``minterms`` (Quine-McCluskey,
    then a greedy cover)."""
    if not minterms:
        return []
    current, primes = set(minterms), set()
    while current:
        merged, used = set(), set()
        for cube in current:
            for i, bit in enumerate(cube):
                if bit == 2:
                    continue
                partner = cube[:i] + (1 - bit,) + cube[i + 1:]
                if partner in current:
                    merged.add(cube[:i] + (2,) + cube[i + 1:])
                    used.update((cube, partner))
        primes |= current - used
        current = merged

    def covered(cube: tuple[int, ...]) -> set[tuple[int, ...]]:
        free = [i for i, b in enumerate(cube) if b == 2]
        out = set()
        for bits in itertools.product((0, 1), repeat=len(free)):
            point = list(cube)
            for i, b in zip(free, bits, strict=True):
                point[i] = b
            out.add(tuple(point))
        return out

    coverage = {cube: covered(cube) for cube in primes}
    uncovered, chosen = set(minterms), []
    while uncovered:
        best = max(sorted(coverage), key=lambda c: len(coverage[c] & uncovered))
        chosen.append(best)
        uncovered -= coverage[best]
    return chosen


def _violation_of(premise: z3.BoolRef, conclusion: z3.BoolRef, limit: int, max_conditions: int) -> list[Disjunct]:
    """Disjuncts of ``premise and not conclusion``; ite terms are split on their conditions."""
    if z3.is_and(conclusion):  # not (Q1 and Q2) = not Q1 or not Q2: each with its own conditions
        return _disjoin([_violation_of(premise, c, limit, max_conditions) for c in conclusion.children()], limit)
    violation = z3.And(premise, z3.Not(conclusion))
    conditions = _arith_ite_conditions(violation)
    if not conditions:
        return _dnf(z3.simplify(violation), True, limit)
    if len(conditions) > max_conditions:
        raise _Inexpressible(f"{len(conditions)} ite conditions (at most {max_conditions} are enumerated)")
    groups: dict[Disjunct, set[tuple[int, ...]]] = {}
    for bits in itertools.product((0, 1), repeat=len(conditions)):
        fixed = z3.simplify(z3.substitute(violation, *[(c, z3.BoolVal(bool(b))) for c, b in
                                                       zip(conditions, bits, strict=True)]))
        if _arith_ite_conditions(fixed):
            raise _Inexpressible("nested ite conditions")
        for residual in _dnf(fixed, True, 4 * limit):
            groups.setdefault(residual, set()).add(bits)
    literals = [(_dnf(c, False, limit), _dnf(c, True, limit)) for c in conditions]
    disjuncts: list[Disjunct] = []
    for residual, minterms in groups.items():
        for cube in _prime_cover(minterms):
            parts = [literals[i][b] for i, b in enumerate(cube) if b != 2]
            disjuncts.extend(_conjoin([*parts, [residual]], limit))
            if len(disjuncts) > limit:
                raise _Inexpressible(f"more than {limit} output sign patterns break it")
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
    except _Inexpressible as exc:
        return None, str(exc)


# ---- outcomes --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """The answer for one box: verified, counterexample, unknown (timeout / solver gave up) or outside.

    ``outside``: the box is empty (an eps-ball that does not reach the domain box). For a
    counterexample, ``point`` holds the scaled inputs, ``outputs`` the network's float64 outputs there,
    ``broken`` the 0-based indices of the asserts it breaks in exact arithmetic, and
    ``float_confirmed`` whether float64 evaluation (what prediction computes) shows the break too."""

    status: str
    decided_by: str = ""  # marabou, z3, sampling, or an earlier answer it follows from
    seconds: float = 0.0
    point: np.ndarray | None = None
    outputs: np.ndarray | None = None
    broken: tuple[int, ...] = ()
    float_confirmed: bool = False
    note: str = ""


# ---- the engines --------------------------------------------------------------------------------------

def _marabou_solve(weights: NetworkWeights, lower: Sequence[float], upper: Sequence[float],
                   disjuncts: list[Disjunct], timeout: float, strict: bool = False) -> tuple[str, list[float] | None]:
    """Run Marabou on the network over the box with the disjunction of ``disjuncts`` on inputs/outputs.

    ``strict``: every inequality must hold with the margin (as if strict), which asks for a
    counterexample that does not sit on a boundary. Returns ("sat", input values) / ("unsat", None) /
    ("unknown: REASON", None)."""
    from maraboupy import MarabouCore

    if strict:
        disjuncts = [tuple(Atom(a.terms, {"<=": "<", ">=": ">"}.get(a.op, a.op), a.bound) for a in d)
                     for d in disjuncts]

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
            _marabou_affine(query, pre[i], weight[i], previous, bias[i])
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
        _marabou_affine(query, var, weights.last_weight[k], latent, weights.last_bias[k])
    index = {f"x!{j}": j for j in range(n_inputs)} | {f"y!{k}": v for k, v in enumerate(outputs)}
    if any(not disjunct for disjunct in disjuncts):
        pass  # one disjunct holds everywhere: nothing to add
    elif len(disjuncts) == 1:
        # Marabou 2.0 (inputs marked) ignored a one-variable equation added to the query and returned
        # points breaking it: one-variable atoms become bounds, the others equations
        bounds = {j: (float(lower[j]), float(upper[j])) for j in range(n_inputs)}
        for atom in disjuncts[0]:
            if len(atom.terms) > 1:
                query.addEquation(_marabou_equation(atom, index))
                continue
            var = index[atom.terms[0][0]]
            low, high = bounds.get(var, (-math.inf, math.inf))
            for side, value in _atom_bounds(atom):
                low, high = (max(low, value), high) if side == "lower" else (low, min(high, value))
            if low > high:
                return "unsat", None
            bounds[var] = (low, high)
            if low > -math.inf:
                query.setLowerBound(var, low)
            if high < math.inf:
                query.setUpperBound(var, high)
    else:
        MarabouCore.addDisjunctionConstraint(
            query, [[_marabou_equation(atom, index) for atom in disjunct] for disjunct in disjuncts])
    options = MarabouCore.Options()
    options._verbosity = 0
    options._snc = False
    options._numWorkers = 1
    options._timeoutInSeconds = max(1, math.ceil(timeout))  # Marabou counts whole seconds; 0 = none
    exit_code, values, _ = MarabouCore.solve(query, options, "")
    if exit_code == "sat":
        return "sat", [values[j] for j in range(n_inputs)]
    if exit_code == "unsat":
        return "unsat", None
    return f"unknown: marabou {exit_code.lower()}", None


def _marabou_affine(query: Any, target: int, row: np.ndarray, sources: list[int], bias: float) -> None:
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
    op = atom.op if coefficient > 0 else {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}[atom.op]
    margin = STRICT_MARGIN / float(abs(coefficient))
    return {"<=": [("upper", value)], "<": [("upper", value - margin)], ">=": [("lower", value)],
            ">": [("lower", value + margin)], "==": [("lower", value), ("upper", value)]}[op]


def _marabou_equation(atom: Atom, index: dict[str, int]) -> Any:
    from maraboupy import MarabouCore

    terms, op, bound = atom.terms, atom.op, atom.bound
    if len(terms) == 1 and terms[0][1] < 0:
        # one-variable atoms become bound tightenings inside Marabou: hand them over in the plain form
        # 'v op c' (Marabou's issue tracker lists sign mix-ups with one-variable (in)equalities)
        terms, op, bound = ((terms[0][0], -terms[0][1]),), {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}[op], -bound
    kind = {"<=": "LE", "<": "LE", ">=": "GE", ">": "GE", "==": "EQ"}[op]
    equation = MarabouCore.Equation(getattr(MarabouCore.Equation, kind))
    for name, coefficient in terms:
        equation.addAddend(float(coefficient), index[name])
    shift = {"<": -STRICT_MARGIN, ">": STRICT_MARGIN}.get(op, 0.0)
    equation.setScalar(float(bound) + shift)
    return equation


class Z3Network:
    """The exact ReLU network as z3 constraints over ``x!j`` (inputs) and ``y!k`` (outputs)."""

    def __init__(self, weights: NetworkWeights):
        self.weights = weights
        layers = weights._exact_layers()
        previous: list[z3.ArithRef] = [input_var(j) for j in range(weights.n_inputs)]
        self.base: list[z3.BoolRef] = []
        self.neurons: list[list[tuple[z3.ArithRef, z3.ArithRef]]] = []
        for layer, (weight, bias) in enumerate(layers[:-1]):
            neurons = []
            for i in range(len(bias)):
                pre, post = z3.Real(f"p!{layer}!{i}"), z3.Real(f"h!{layer}!{i}")
                self.base.append(pre == _affine(weight[i], previous, bias[i]))
                self.base += [post >= 0, post >= pre, z3.Or(post == pre, post == 0)]
                neurons.append((pre, post))
            self.neurons.append(neurons)
            previous = [post for _, post in neurons]
        weight, bias = layers[-1]
        latent = previous + [input_var(int(j)) for j in weights.mapped]
        self.base += [output_var(k) == _affine(weight[k], latent, bias[k]) for k in range(weights.n_outputs)]

    def region_facts(self, lower: Sequence[Fraction], upper: Sequence[Fraction]) -> list[z3.BoolRef]:
        """Input bounds, plus what interval bounds prove about each neuron over the box (all implied)."""
        facts = []
        for j, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
            facts += [input_var(j) >= rational(lo), input_var(j) <= rational(hi)]
        bounds = self.weights.preactivation_bounds(np.array([float(v) for v in lower]),
                                                   np.array([float(v) for v in upper]))
        for neurons, (pre_low, pre_high) in zip(self.neurons, bounds, strict=True):
            for (pre, post), lo, hi in zip(neurons, pre_low.tolist(), pre_high.tolist(), strict=True):
                if hi <= 0:
                    facts.append(post == 0)
                elif lo >= 0:
                    facts.append(post == pre)
                else:
                    lo_q, hi_q = Fraction(lo), Fraction(hi)
                    facts += [pre >= rational(lo_q), pre <= rational(hi_q),
                              post <= rational(hi_q / (hi_q - lo_q)) * (pre - rational(lo_q))]
        return facts

    def solve(self, lower: Sequence[Fraction], upper: Sequence[Fraction], violation: z3.BoolRef,
              timeout: float, linear: bool = True) -> tuple[str, list[Fraction] | None]:
        """Is there an input in the box where ``violation`` holds? ("sat", exact point) / ("unsat", None) /
        ("unknown: REASON", None)."""
        solver = z3.SolverFor("QF_LRA") if linear else z3.Solver()
        solver.set("timeout", max(1, int(timeout * 1000)))
        solver.add(*self.base, *self.region_facts(lower, upper), violation)
        answer = solver.check()
        if answer == z3.unsat:
            return "unsat", None
        if answer == z3.unknown:
            return f"unknown: z3 {solver.reason_unknown()}", None
        model = solver.model()
        return "sat", [_to_fraction(model.eval(input_var(j), model_completion=True))
                       for j in range(self.weights.n_inputs)]


def _affine(row: np.ndarray, variables: list[z3.ArithRef], bias: Fraction) -> z3.ArithRef:
    terms = [rational(w) * v for w, v in zip(row.tolist(), variables, strict=True) if w != 0]
    return z3.Sum(*terms, rational(bias)) if terms else rational(bias)


def _to_fraction(value: z3.ExprRef) -> Fraction:
    if z3.is_rational_value(value):
        return Fraction(value.numerator_as_long(), value.denominator_as_long())
    if z3.is_int_value(value):
        return Fraction(value.as_long())
    if z3.is_algebraic_value(value):
        return Fraction(value.approx(30).as_fraction())
    raise ValueError(f"z3 gave a non-numeric value {value}")


# ---- the verifier ----------------------------------------------------------------------------------------

@dataclass
class Plan:
    """How each assert is checked (computed once per spec, picklable).

    ``disjuncts[i]``: the violation of assert i as linear disjuncts, or None when it has no such form
    (then only z3 can check it and the bound pre-check skips it)."""

    disjuncts: dict[int, list[Disjunct] | None]
    marabou: list[int]  # asserts Marabou checks
    z3: list[int]  # asserts z3 checks
    notes: list[str]


def make_plan(spec: Spec, engine: str, max_disjuncts: int = MAX_DISJUNCTS) -> Plan:
    """Assign every assert to an engine: Marabou where its violation is a small linear disjunction."""
    if engine not in ENGINES:
        raise UserInputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    disjuncts: dict[int, list[Disjunct] | None] = {}
    marabou, z3_asserts, notes = [], [], []
    for a in spec.asserts:
        disjuncts[a.index], reason = violation_disjuncts(a, max_disjuncts)
        if engine == "z3":
            z3_asserts.append(a.index)
        elif disjuncts[a.index] is None:
            z3_asserts.append(a.index)
            notes.append(f"assert {a.index + 1} is checked with z3 (Marabou cannot express it: {reason})")
        else:
            marabou.append(a.index)
    return Plan(disjuncts, marabou, z3_asserts, notes)


@dataclass
class VerifierConfig:
    """Everything a worker process needs to build a Verifier (plain data: picklable)."""

    weights: NetworkWeights
    constraint_text: str
    encoding: dict[str, Any]
    domain_lower: list[Fraction]
    domain_upper: list[Fraction]
    engine: str = "marabou"
    timeout: float = 10.0
    presample: int = 64
    bound_check: bool = True
    seed: int = 0
    plan: Plan | None = None

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, **options: Any) -> VerifierConfig:
        """Config for a model directory's network, constraint and domain box (scaled units)."""
        lower, upper = artifact.domain.scaled_exact(artifact.encoding)
        return cls(NetworkWeights.from_model(artifact.model), artifact.constraint_text, artifact.encoding.to_dict(),
                   lower, upper, **options)

    def build_spec(self) -> Spec:
        """The constraint parsed against the stored encoding."""
        return parse_spec_text(self.constraint_text, Encoding.from_dict(self.encoding))

    def build(self) -> Verifier:
        """The Verifier this config describes (parses the constraint; cheap)."""
        return Verifier(self.weights, self.build_spec(), self.domain_lower, self.domain_upper, engine=self.engine,
                        timeout=self.timeout, presample=self.presample, bound_check=self.bound_check,
                        seed=self.seed, plan=self.plan)


class Verifier:
    """Counterexample search for one network and spec: over a box, an eps-ball or the whole domain.

    Per box, in this order: ``presample`` random points (a break there is a counterexample, confirmed
    exactly); sound linear bounds on every atom of each assert's violation (``bound_check``: an assert
    whose every disjunct has an atom the bounds rule out cannot break in the box); then the engine on
    the asserts left (Marabou, with z3 for what Marabou cannot express; or z3 for all)."""

    def __init__(self, weights: NetworkWeights, spec: Spec, domain_lower: Sequence[Fraction],
                 domain_upper: Sequence[Fraction], engine: str = "marabou", timeout: float = 10.0,
                 presample: int = 64, bound_check: bool = True, seed: int = 0, plan: Plan | None = None):
        if not timeout > 0:
            raise UserInputError(f"timeout must be positive, got {timeout}")
        if presample < 0:
            raise UserInputError(f"presample must be >= 0, got {presample}")
        if len(domain_lower) != weights.n_inputs or len(spec.input_names) != weights.n_inputs:
            raise UserInputError(f"the network has {weights.n_inputs} inputs but the encoding/domain has "
                                 f"{len(spec.input_names)}/{len(domain_lower)}")
        if len(spec.output_names) != weights.n_outputs:
            raise UserInputError(f"the network has {weights.n_outputs} outputs but the encoding names "
                                 f"{len(spec.output_names)}")
        self.weights, self.spec = weights, spec
        self.domain_lower = [Fraction(v) for v in domain_lower]
        self.domain_upper = [Fraction(v) for v in domain_upper]
        self.engine, self.timeout, self.presample = engine, float(timeout), int(presample)
        self.bound_check, self.seed = bool(bound_check), int(seed)
        self.plan = plan if plan is not None else make_plan(spec, engine)
        self._z3: Z3Network | None = None
        self._atom_rows = self._atom_matrix()

    @property
    def notes(self) -> list[str]:
        return list(self.plan.notes)

    @property
    def z3_network(self) -> Z3Network:
        if self._z3 is None:
            self._z3 = Z3Network(self.weights)
        return self._z3

    # ---- boxes ----
    def ball(self, center: np.ndarray, epsilon: float) -> Box:
        """The L-inf ball of radius ``epsilon`` (scaled units) around ``center``, cut to the domain box, exactly."""
        radius = Fraction(repr(float(epsilon)))
        centre = [Fraction(float(v)) for v in np.asarray(center, dtype=np.float64)]
        lower = [max(c - radius, lo) for c, lo in zip(centre, self.domain_lower, strict=True)]
        upper = [min(c + radius, hi) for c, hi in zip(centre, self.domain_upper, strict=True)]
        return lower, upper

    def check_domain(self) -> Outcome:
        """Search the whole domain box for a counterexample."""
        return self.check_box(self.domain_lower, self.domain_upper)

    def check_ball(self, center: np.ndarray, epsilon: float, key: int = 0) -> Outcome:
        """Search the eps-ball around ``center`` (cut to the domain box) for a counterexample."""
        lower, upper = self.ball(center, epsilon)
        return self.check_box(lower, upper, center=np.asarray(center, dtype=np.float64), key=key)

    def check_balls(self, center: np.ndarray, epsilons: Sequence[float], key: int = 0) -> list[Outcome]:
        """One outcome per epsilon (in the given order), using that balls are nested: a counterexample in a
        smaller ball is one in every larger ball, and a verified larger ball verifies the smaller ones.
        The largest ball is checked first, then the others from small to large."""
        order = sorted(range(len(epsilons)), key=lambda i: epsilons[i])
        outcomes: dict[int, Outcome] = {}
        for i in order[-1:] + order[:-1]:
            lower, upper = self.ball(center, epsilons[i])
            known = self._implied(outcomes, epsilons, i, lower, upper)
            outcomes[i] = known if known is not None else self.check_box(
                lower, upper, center=np.asarray(center, dtype=np.float64), key=key)
        return [outcomes[i] for i in range(len(epsilons))]

    @staticmethod
    def _implied(outcomes: dict[int, Outcome], epsilons: Sequence[float], i: int,
                 lower: list[Fraction], upper: list[Fraction]) -> Outcome | None:
        for j, done in outcomes.items():
            if done.status in ("verified", "outside") and epsilons[j] >= epsilons[i]:
                return Outcome(done.status, done.decided_by, 0.0, note=f"follows from eps={epsilons[j]:g}")
            if done.status == "counterexample" and done.point is not None:
                point = [Fraction(float(v)) for v in done.point]
                if all(lo <= v <= hi for v, lo, hi in zip(point, lower, upper, strict=True)):
                    return Outcome("counterexample", done.decided_by, 0.0, done.point, done.outputs, done.broken,
                                   done.float_confirmed, note=f"same point as eps={epsilons[j]:g}")
        return None

    def check_box(self, lower: Sequence[Fraction], upper: Sequence[Fraction], center: np.ndarray | None = None,
                  key: int = 0) -> Outcome:
        """Search the box [lower, upper] (scaled units, exact) for an input that breaks an assert."""
        start = time.perf_counter()
        lower, upper = [Fraction(v) for v in lower], [Fraction(v) for v in upper]
        if any(lo > hi for lo, hi in zip(lower, upper, strict=True)):
            return Outcome("outside", "", time.perf_counter() - start, note="the box misses the domain box")
        outcome = self._sample(lower, upper, center, key) if self.presample else None
        if outcome is None:
            remaining = [a.index for a in self.spec.asserts]
            if self.bound_check:
                remaining = self._not_ruled_out(lower, upper, remaining)
            outcome = self._solve(lower, upper, remaining) if remaining else Outcome("verified", "bounds")
        outcome.seconds = time.perf_counter() - start
        return outcome

    # ---- steps ----
    def _sample(self, lower: list[Fraction], upper: list[Fraction], center: np.ndarray | None,
                key: int) -> Outcome | None:
        """Try random points of the box (coordinates uniform, or at a bound, or at the centre)."""
        rng = np.random.default_rng([self.seed, key])
        low, high = np.array([float(v) for v in lower]), np.array([float(v) for v in upper])
        middle = np.clip(center, low, high) if center is not None else (low + high) / 2
        n, d = self.presample, len(low)
        choice = rng.integers(0, 4, size=(n, d))
        uniform = low + rng.random((n, d)) * (high - low)
        points = np.where(choice == 0, uniform, np.where(choice == 1, low, np.where(choice == 2, high, middle)))
        points[0] = middle
        truth = self.spec.evaluate_scaled(points, self.weights.forward(points))
        for row in np.flatnonzero(~truth.all(axis=1))[:3]:
            exact = self._clip([Fraction(v) for v in points[row].tolist()], lower, upper)
            outcome = self._counterexample(exact, "sampling")
            if outcome is not None:
                return outcome
        return None

    def _atom_matrix(self) -> tuple[dict[Atom, int], np.ndarray, np.ndarray, np.ndarray]:
        """Every atom of the violations as a row: coefficients on outputs, on inputs, and its bound."""
        atoms = {atom for ds in self.plan.disjuncts.values() if ds for d in ds for atom in d}
        rows = {atom: row for row, atom in enumerate(sorted(atoms, key=repr))}
        n = len(rows)
        on_outputs, on_inputs = np.zeros((n, self.weights.n_outputs)), np.zeros((n, self.weights.n_inputs))
        bound = np.zeros(n)
        for atom, row in rows.items():
            for name, value in atom.terms:
                (on_outputs if name[0] == "y" else on_inputs)[row, int(name[2:])] = float(value)
            bound[row] = float(atom.bound)
        return rows, on_outputs, on_inputs, bound

    def _not_ruled_out(self, lower: list[Fraction], upper: list[Fraction], indices: list[int]) -> list[int]:
        """Asserts whose violation the bounds over the box do not rule out."""
        rows, on_outputs, on_inputs, bound = self._atom_rows
        if not rows:
            return [i for i in indices if self.plan.disjuncts.get(i) is None or () in self.plan.disjuncts[i]]
        relaxation = self.weights.propagate(np.array([float(v) for v in lower]), np.array([float(v) for v in upper]))
        # lhs - bound lies in [at_least, at_most] everywhere in the box
        at_least = self.weights.output_lower_bound(relaxation, on_outputs, on_inputs, -bound)
        at_most = -self.weights.output_lower_bound(relaxation, -on_outputs, -on_inputs, bound)
        impossible = {atom: bool({"<=": at_least[r] > 0, "<": at_least[r] >= 0, ">=": at_most[r] < 0,
                                  ">": at_most[r] <= 0, "==": at_least[r] > 0 or at_most[r] < 0}[atom.op])
                      for atom, r in rows.items()}
        remaining = []
        for i in indices:
            disjuncts = self.plan.disjuncts.get(i)
            if disjuncts is None or not all(any(impossible[a] for a in d) for d in disjuncts):
                remaining.append(i)
        return remaining

    def _solve(self, lower: list[Fraction], upper: list[Fraction], indices: list[int]) -> Outcome:
        """Run the engines on the asserts ``indices`` over the box."""
        notes, unknown, used = [], False, []
        on_marabou = [i for i in indices if i in self.plan.marabou]
        on_z3 = [i for i in indices if i in self.plan.z3]
        if on_marabou:
            used.append("marabou")
            disjuncts = list(dict.fromkeys(d for i in on_marabou for d in self.plan.disjuncts[i] or []))
            answer, values = _marabou_solve(self.weights, [float(v) for v in lower], [float(v) for v in upper],
                                            disjuncts, self.timeout)
            if answer == "sat":
                point = self._clip([Fraction(v) for v in values], lower, upper)
                outcome = self._counterexample(point, "marabou")
                if outcome is not None:
                    return outcome
                # Marabou's double-precision witness does not hold exactly (mostly one that sits on the
                # boundary, e.g. a score of exactly 0): ask again for one with a margin
                answer, values = _marabou_solve(self.weights, [float(v) for v in lower], [float(v) for v in upper],
                                                disjuncts, self.timeout, strict=True)
                if answer == "sat":
                    outcome = self._counterexample(self._clip([Fraction(v) for v in values], lower, upper),
                                                   "marabou")
                    if outcome is not None:
                        return outcome
                # none with a margin (or again not exact): z3 decides these asserts exactly
                used.append("z3")
                outcome = self._z3_check(lower, upper, on_marabou)
                outcome.note = _join("marabou's counterexample did not hold in exact arithmetic; z3 re-checked",
                                     outcome.note)
                outcome.decided_by = "marabou+z3"
                if outcome.status == "counterexample":
                    return outcome
                unknown |= outcome.status == "unknown"
                notes.append(outcome.note)
            elif answer != "unsat":
                unknown = True
                notes.append(answer)
        if on_z3:
            if "z3" not in used:
                used.append("z3")
            outcome = self._z3_check(lower, upper, on_z3)
            if outcome.status == "counterexample":
                return outcome
            unknown |= outcome.status == "unknown"
            notes.append(outcome.note)
        return Outcome("unknown" if unknown else "verified", "+".join(used), note=_join(*notes))

    def _z3_check(self, lower: list[Fraction], upper: list[Fraction], indices: list[int]) -> Outcome:
        asserts = [self.spec.asserts[i] for i in indices]
        violation = z3.Or(*[z3.Not(a.scaled) for a in asserts])
        answer, point = self.z3_network.solve(lower, upper, violation, self.timeout,
                                              linear=all(a.linear for a in asserts))
        if answer == "unsat":
            return Outcome("verified", "z3")
        if answer != "sat":
            return Outcome("unknown", "z3", note=answer)
        outcome = self._counterexample(self._clip(point, lower, upper), "z3")
        if outcome is None:  # would be a bug in the encoding: never claim it
            return Outcome("unknown", "z3", note="z3's counterexample did not hold on exact re-evaluation")
        return outcome

    @staticmethod
    def _clip(point: list[Fraction], lower: list[Fraction], upper: list[Fraction]) -> list[Fraction]:
        return [min(max(v, lo), hi) for v, lo, hi in zip(point, lower, upper, strict=True)]

    def broken_exact(self, point: Sequence[Fraction]) -> tuple[int, ...]:
        """Indices of the asserts the network breaks at ``point`` (scaled inputs), in exact arithmetic."""
        outputs = self.weights.forward_exact(point)
        pairs = [(input_var(j), rational(v)) for j, v in enumerate(point)]
        pairs += [(output_var(k), rational(v)) for k, v in enumerate(outputs)]
        return tuple(a.index for a in self.spec.asserts if z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs))))

    def _counterexample(self, point: list[Fraction], decided_by: str) -> Outcome | None:
        """An Outcome for ``point`` if the network breaks an assert there in exact arithmetic, else None."""
        broken = self.broken_exact(point)
        if not broken:
            return None
        as_float = np.array([float(v) for v in point])[None, :]
        outputs = self.weights.forward(as_float)
        float_ok = bool(~self.spec.evaluate_scaled(as_float, outputs).all())
        note = "" if float_ok else "the violation is below float64 resolution: it shows in exact arithmetic only"
        return Outcome("counterexample", decided_by, point=as_float[0], outputs=outputs[0], broken=broken,
                       float_confirmed=float_ok, note=note)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def verifier_for(artifact: ModelArtifact, engine: str = "marabou", timeout: float = 10.0, presample: int = 64,
                 bound_check: bool = True, seed: int = 0) -> Verifier:
    """A Verifier for a loaded model directory (network, constraint and domain box as stored)."""
    return VerifierConfig.from_artifact(artifact, engine=engine, timeout=timeout, presample=presample,
                                        bound_check=bound_check, seed=seed).build()


def verify_domain(artifact: ModelArtifact, engine: str = "marabou", timeout: float = 60.0,
                  presample: int = 1024, bound_check: bool = True, seed: int = 0) -> tuple[Outcome, Verifier]:
    """Search the model's whole domain box for a counterexample; the verifier is returned for its notes."""
    verifier = verifier_for(artifact, engine, timeout, presample, bound_check, seed)
    return verifier.check_domain(), verifier


def raw_inputs(encoding: Encoding, scaled: np.ndarray) -> np.ndarray:
    """Scaled inputs -> raw units (``raw = min + (max - min) * scaled``)."""
    low, high = np.asarray(encoding.input_min, dtype=np.float64), np.asarray(encoding.input_max, dtype=np.float64)
    return low + np.asarray(scaled, dtype=np.float64) * (high - low)
