"""The general path's fast step: CEGIS with a linear program in place of MaxSMT, where the rule allows it.

A CEGIS assert (``deepsade.encoding.cegis``) may be non-linear in its inputs, e.g. ``weight * dose <= 1000``
or a premise ``weight >= 35 * height^2``. Once its inputs are fixed to numbers, many such asserts are a
conjunction of comparisons *linear in the outputs* (``dose <= 1000 / weight``, ``risk > 0``). The network's
outputs are ``y = W z + b`` with ``z = [h; s]``, where ``s`` holds the skip copies of the inputs: so with
the assert's input coordinates pinned to a counterexample's values and every other latent coordinate free
in its box, the assert is a closed-form dual (``deepsade.encoding.dual``): linear rows in ``(W, b)`` whose
worst case over the free coordinates is exact. The feasible last layers are the intersection of these
polyhedra over *every* input point of the domain; the finitely many counterexamples found so far give an
outer polyhedron, so this is a cutting-plane method:

1. project the target weights (L1) onto the dual rows of the other asserts and the pinned rows of every
   point found so far (one HiGHS LP, ``deepsade.encoding.projection``);
2. round to float32 and run the exact check on every CEGIS assert (``find_counterexample``); each
   counterexample adds its input point, and the loop goes back to 1;
3. with no counterexample left, check every other assert exactly as well; only then are the weights
   returned.

Unlike MaxSMT, the hidden coordinates never need points (their worst case is in the rows), so the loop
only has to cover the few input dimensions an assert mentions, and it converges in a handful of rounds.
The answer passes the same exact check as every other step, so nothing about the guarantee changes. Where
an assert is not linear in the outputs at a point (a disjunction remains, ``ite`` on outputs...), the
function gives up (``None``) and the trainer falls back to MaxSMT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from fractions import Fraction

import clarabel
import numpy as np
import z3
from scipy.sparse import csc_matrix

from deepsade.encoding.base import LastLayer, LatentBoxes, Margins
from deepsade.encoding.dual import DualAssert, Premise, conclusion_rows
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.exact import (
    UNKNOWN,
    Counterexample,
    Undecided,
    find_counterexample,
    substitute_outputs,
)
from deepsade.encoding.layout import LatentLayout, exact_term, sum_terms
from deepsade.last_layer_polyhedron import polyhedron_from_duals
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.numbers import z3_fraction
from deepsade.spec import Assert, conjunction_atoms, input_var, output_var

CegisPoint = tuple[int, list[Fraction], list[Fraction]]  # (assert index, latent point, output perturbation)


class NotLinearAtPoint(ValueError):
    """At some input point the assert is not a conjunction of comparisons linear in the outputs."""


_PINNED_CACHE_SIZE = 4096
_pinned_cache: dict[tuple, tuple[Assert, DualAssert | None]] = {}


def cached_pinned_dual(assert_: Assert, layout: LatentLayout, inputs: dict[int, Fraction]) -> DualAssert | None:
    """``pinned_dual``, remembered per (assert, layout, point): the rows of a point never change, and every
    cutting-plane round needs the rows of every point kept so far."""
    key = (id(assert_), layout, tuple(sorted(inputs.items())))
    hit = _pinned_cache.get(key)
    if hit is not None and hit[0] is assert_:  # the stored assert keeps its id from being reused
        return hit[1]
    if len(_pinned_cache) >= _PINNED_CACHE_SIZE:
        _pinned_cache.clear()
    dual = pinned_dual(assert_, layout, inputs)
    _pinned_cache[key] = (assert_, dual)
    return dual


def pinned_dual(assert_: Assert, layout: LatentLayout, inputs: dict[int, Fraction]) -> DualAssert | None:
    """The assert with its inputs fixed to ``inputs`` (input index -> scaled value) as a dual assert whose
    premise pins those latent coordinates; None when the assert holds vacuously there (premise false).
    Raises ``NotLinearAtPoint`` when what remains is not a conjunction of atoms linear in the outputs."""
    pairs = [(input_var(j), exact_term(inputs[j])) for j in assert_.inputs]
    remaining = z3.simplify(z3.substitute(assert_.scaled, *pairs) if pairs else assert_.scaled)
    if z3.is_true(remaining):
        return None
    atoms = conjunction_atoms(remaining)
    if atoms is None:
        raise NotLinearAtPoint(str(remaining))
    try:
        linear = [atom_from_comparison(a) for a in atoms]
    except NotLinear as exc:
        raise NotLinearAtPoint(str(remaining)) from exc
    if any(atom.inputs() for atom in linear):
        raise NotLinearAtPoint(str(remaining))
    premise = Premise({layout.coordinate(j): (inputs[j], inputs[j]) for j in assert_.inputs})
    return DualAssert(assert_, premise, conclusion_rows(linear, layout))


def point_inputs(assert_: Assert, layout: LatentLayout, latent: Sequence[Fraction], low: np.ndarray,
                 high: np.ndarray) -> dict[int, Fraction]:
    """The assert's input values at a latent point, each clipped into the box's skip coordinate (a point
    kept from an earlier box stays a valid point of the current one)."""
    values = {}
    for j in assert_.inputs:
        c = layout.coordinate(j)
        values[j] = min(max(Fraction(latent[c]), Fraction(float(low[c]))), Fraction(float(high[c])))
    return values


def pinned_rows(asserts: Sequence[Assert], layout: LatentLayout, points: Sequence[CegisPoint],
                boxes: LatentBoxes) -> list[DualAssert]:
    """One pinned dual per distinct (assert, input point) among ``points`` (vacuous ones left out)."""
    by_index = {a.index: a for a in asserts}
    seen: set[tuple] = set()
    duals = []
    for index, latent, _ in points:
        assert_ = by_index.get(index)
        if assert_ is None:
            continue
        inputs = point_inputs(assert_, layout, latent, *boxes.for_assert(index))
        key = (index, tuple(inputs[j] for j in assert_.inputs))
        if key in seen:
            continue
        seen.add(key)
        dual = cached_pinned_dual(assert_, layout, inputs)
        if dual is not None:
            duals.append(dual)
    return duals


def reduced_counterexample(assert_: Assert, layout: LatentLayout, weights: np.ndarray, biases: np.ndarray,
                           low: Sequence, high: Sequence, margin: Fraction, timeout_s: float | None
                           ) -> Counterexample | Undecided | None:
    """``find_counterexample`` for an assert on one output, with every latent coordinate but the assert's own
    inputs folded into one variable: the same verdict, from a far smaller z3 problem.

    The output is ``y = sum_pinned W_l s_l + b + v`` with ``v = sum_free W_l z_l``. Over the box, ``v`` takes
    exactly the values of ``[min_over_box, max_over_box]`` (a linear form over a box is onto that interval),
    and the assert sees the free coordinates only through ``y``: so some latent point violates the assert
    iff some ``(s, v)`` with ``v`` in that interval does. A found ``v`` is mapped back to the latent point on
    the segment between the minimising and the maximising corner. Exact in rationals throughout."""
    (k,) = assert_.outputs
    pinned = [layout.coordinate(j) for j in assert_.inputs]
    free = np.array([l for l in range(layout.n_latent) if l not in pinned], dtype=int)
    row = np.array([Fraction(float(w)) for w in weights[k]], dtype=object)
    box_low = np.array([Fraction(v) for v in low], dtype=object)
    box_high = np.array([Fraction(v) for v in high], dtype=object)
    at_min = np.where(row[free] >= 0, box_low[free], box_high[free])
    at_max = np.where(row[free] >= 0, box_high[free], box_low[free])
    v_min = Fraction(sum(row[free] * at_min, Fraction(0)))
    v_max = Fraction(sum(row[free] * at_max, Fraction(0)))
    s = {j: z3.Real(f"s!{j}") for j in assert_.inputs}
    v, e = z3.Real("v"), z3.Real("e")
    solver = z3.SolverFor("QF_LRA") if assert_.linear else z3.Solver()
    if timeout_s:
        solver.set("timeout", max(1, int(timeout_s * 1000)))
    for j, c in zip(assert_.inputs, pinned):
        solver.add(s[j] >= exact_term(box_low[c]), s[j] <= exact_term(box_high[c]))
    solver.add(v >= exact_term(v_min), v <= exact_term(v_max), e >= -exact_term(margin), e <= exact_term(margin))
    exact = sum_terms([exact_term(row[c]) * s[j] for j, c in zip(assert_.inputs, pinned) if row[c] != 0])
    exact = exact + exact_term(Fraction(float(biases[k]))) + v
    inputs = [(input_var(j), s[j]) for j in assert_.inputs]
    formula = substitute_outputs(assert_.scaled, inputs + [(output_var(k), exact + e)], inputs + [(output_var(k), exact)])
    solver.add(z3.Not(formula))
    verdict = solver.check()
    if verdict == z3.unsat:
        return None
    if verdict != z3.sat:
        return UNKNOWN
    model = solver.model()
    value = lambda term: z3_fraction(model.eval(term, model_completion=True))  # noqa: E731
    found_v = value(v)
    share = (found_v - v_min) / (v_max - v_min) if v_max != v_min else Fraction(0)
    latent = list(box_low)
    for l, lo_corner, hi_corner in zip(free, at_min, at_max):
        latent[l] = lo_corner + share * (hi_corner - lo_corner)
    for j, c in zip(assert_.inputs, pinned):
        latent[c] = value(s[j])
    perturbation = [Fraction(0)] * layout.n_out
    perturbation[k] = value(e)
    return Counterexample(assert_.index, [Fraction(x) for x in latent], perturbation)


def counterexample(assert_: Assert, layout: LatentLayout, weights: np.ndarray, biases: np.ndarray, low: Sequence,
                   high: Sequence, margin: Fraction, timeout_s: float | None) -> Counterexample | Undecided | None:
    """The exact check of one CEGIS assert: ``reduced_counterexample`` where the assert names one output,
    else ``find_counterexample``."""
    if len(assert_.outputs) == 1:
        return reduced_counterexample(assert_, layout, weights, biases, low, high, margin, timeout_s)
    return find_counterexample(assert_, layout, weights, biases, low, high, margin, timeout_s)


def project_l2(rows: Sequence[DualAssert], layout: LatentLayout, target: LastLayer, boxes: LatentBoxes,
               margin: float) -> LastLayer | None:
    """The weights closest in L2 to ``target`` whose float worst case over the box satisfies every row with
    ``margin`` to spare, by one quadratic program; None when it has no solution.

    L2 rather than the L1 of ``deepsade.encoding.projection``: an L1 projection lands on a vertex, which sets
    whole groups of hidden-unit weights to exactly 0; the hidden layers then get no gradient and never
    recover. An L2 projection shrinks them instead."""
    n_out, n_lat = layout.n_out, layout.n_latent
    n_theta = n_out * n_lat + n_out
    theta = np.concatenate([np.asarray(target[0], dtype=np.float64).ravel(), np.asarray(target[1], dtype=np.float64)])
    polyhedron = polyhedron_from_duals(rows, n_out, n_lat, boxes, None, margin)
    if polyhedron.n_rows == 0:
        return np.asarray(target[0], dtype=np.float64), np.asarray(target[1], dtype=np.float64)
    matrix, upper, n_aux = polyhedron.linear_system()
    n_vars = n_theta + n_aux
    # 1/2 |theta|^2 - target . theta, the auxiliaries free of cost; A x <= u as A x + s = u, s >= 0
    quadratic = csc_matrix((np.ones(n_theta), (np.arange(n_theta), np.arange(n_theta))), shape=(n_vars, n_vars))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(quadratic, np.concatenate([-theta, np.zeros(n_aux)]), matrix.tocsc(), upper,
                                    [clarabel.NonnegativeConeT(matrix.shape[0])], settings)
    solution = solver.solve()
    if solution.status != clarabel.SolverStatus.Solved:
        return None
    x = np.array(solution.x[:n_theta])
    return x[:n_theta - n_out].reshape(n_out, n_lat), x[n_theta - n_out:]


def applies(encoder: Encoder) -> bool:
    """Whether the encoder's CEGIS asserts can take this step: every by-points strategy is ``cegis`` and
    every other strategy describes its asserts as one polyhedron."""
    points = [s for s in encoder.strategies if s.by_points]
    return bool(points) and all(s.name == "cegis" for s in points) and all(
        s.projectable for s in encoder.strategies if not s.by_points)


def satisfied_except_points(encoder: Encoder, weights: np.ndarray, biases: np.ndarray, boxes: LatentBoxes,
                            margin: float, timeout_s: float | None) -> bool:
    """The exact check of every assert that is not a CEGIS assert (closed forms where exact, else z3)."""
    skip = {a.index for a in encoder.point_asserts}
    verdicts: dict = {}
    for strategy in encoder.strategies:
        if not strategy.by_points:
            verdicts.update(strategy.closed_form(weights[None], biases[None], boxes, margin))
    for a in encoder.spec.asserts:
        if a.index in skip:
            continue
        verdict = verdicts.get(a.index)
        if verdict is not None and verdict.exact:
            if not verdict.holds[0]:
                return False
            continue
        if find_counterexample(a, encoder.layout, weights, biases, *boxes.for_assert(a.index), Fraction(margin),
                               timeout_s) is not None:
            return False
    return True


def project_by_points(encoder: Encoder, target: LastLayer, current: LastLayer, boxes: LatentBoxes,
                      margins: Margins, points: list[CegisPoint], rounds: int, timeout_s: float,
                      on_point: Callable[[], None] | None = None) -> LastLayer | None:
    """The float32 weights closest (L1) to ``target`` that pass the exact check of every assert, by LP
    cutting planes; None when the LP is infeasible, the rounds or the time run out, or z3 cannot decide.
    Needs ``applies(encoder)``.

    ``points``: the trainer's CEGIS points; each new counterexample is appended to it (and ``on_point``
    called). Raises ``NotLinearAtPoint`` when a point leaves an assert that no LP can express."""
    layout = encoder.layout
    point_asserts = encoder.point_asserts
    other_rows = [row for s in encoder.strategies if not s.by_points
                  for row in s.polyhedron(current, boxes, target, margins)]
    deadline = time.perf_counter() + timeout_s
    for _ in range(max(1, rounds)):
        rows = other_rows + pinned_rows(point_asserts, layout, points, boxes)
        found = project_l2(rows, layout, target, boxes, float(margins.solve))
        if found is None:
            return None
        weights = np.asarray(found[0], dtype=np.float32).astype(np.float64)
        biases = np.asarray(found[1], dtype=np.float32).astype(np.float64)
        new_points = 0
        for a in point_asserts:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            cex = counterexample(a, layout, weights, biases, *boxes.for_assert(a.index), Fraction(margins.check),
                                 remaining)
            if cex is UNKNOWN:
                return None
            if cex is not None:
                points.append((a.index, cex.latent, cex.perturbation))
                new_points += 1
                if on_point is not None:
                    on_point()
        if new_points == 0:
            remaining = max(1e-3, deadline - time.perf_counter())
            ok = satisfied_except_points(encoder, weights, biases, boxes, margins.check, remaining)
            return (weights, biases) if ok else None
    return None
