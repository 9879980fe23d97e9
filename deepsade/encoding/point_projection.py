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
from dataclasses import dataclass
from fractions import Fraction

import clarabel
import numpy as np
import z3
from scipy.sparse import coo_matrix, csc_matrix, csr_matrix

from deepsade.encoding.base import LastLayer, LatentBoxes, Margins
from deepsade.encoding.dual import DualAssert, Premise, conclusion_rows
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.exact import UNKNOWN, Counterexample, Undecided, find_counterexample
from deepsade.encoding.layout import LatentLayout, exact_term
from deepsade.encoding.reduced_check import reduced_counterexample
from deepsade.last_layer_polyhedron import NotPolyhedral, WorstCaseRows, polyhedron_from_duals
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.spec import Assert, conjunction_atoms, input_var

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
    """One pinned dual per distinct (assert, input point) among ``points`` (vacuous ones left out).

    Remembered for the last call: a step usually sees the same points over the same input boxes as the one
    before (only the hidden coordinates' box moves, and pinned rows do not depend on it)."""
    input_boxes = tuple((a.index, tuple(float(bound[layout.coordinate(j)]) for bound in boxes.for_assert(a.index)
                                        for j in a.inputs)) for a in asserts)
    remembered = _last_pinned_rows.get("key")
    if remembered is not None:
        kept_asserts, kept_layout, kept_boxes, kept_points = remembered
        if (kept_layout == layout and kept_boxes == input_boxes and len(kept_asserts) == len(asserts)
                and all(x is y for x, y in zip(kept_asserts, asserts)) and len(kept_points) == len(points)
                and all(x is y for x, y in zip(kept_points, points))):
            return list(_last_pinned_rows["duals"])
    duals = _pinned_rows(asserts, layout, points, boxes)
    _last_pinned_rows["key"] = (tuple(asserts), layout, input_boxes, tuple(points))
    _last_pinned_rows["duals"] = duals
    _last_pinned_rows["arrays"] = None
    return list(duals)


def pinned_polyhedron(asserts: Sequence[Assert], layout: LatentLayout, points: Sequence[CegisPoint],
                      boxes: LatentBoxes, margin: float) -> WorstCaseRows:
    """``polyhedron_from_duals`` of ``pinned_rows``, from arrays kept while the pinned rows are remembered:
    each step only puts the rows over the current box."""
    duals = pinned_rows(asserts, layout, points, boxes)
    arrays = _last_pinned_rows.get("arrays")
    if arrays is None:
        arrays = _last_pinned_rows["arrays"] = PinnedRowArrays.of(duals, layout.n_out, layout.n_latent)
    return arrays.over(boxes, margin)


@dataclass(frozen=True)
class PinnedRowArrays:
    """The conclusion rows of closed-form duals whose premises bound single coordinates, as arrays: row ``r``
    reads ``out_r . y + lat_r . z + const_r <= 0`` over its assert's box cut by ``[premise_low_r,
    premise_high_r]``."""

    index: np.ndarray  # (R,) source assert
    out: np.ndarray  # (R, n_out)
    lat: np.ndarray  # (R, n_latent)
    const: np.ndarray  # (R,)
    margin_scale: np.ndarray  # (R,) 0 where the row takes no margin
    strict: np.ndarray  # (R,) bool
    premise_low: np.ndarray  # (R, n_latent), -inf where the premise leaves the coordinate free
    premise_high: np.ndarray  # (R, n_latent), +inf likewise

    @classmethod
    def of(cls, duals: Sequence[DualAssert], n_out: int, n_latent: int) -> PinnedRowArrays:
        """The arrays of ``duals``' rows (``NotPolyhedral`` for a premise that couples several inputs)."""
        fields: dict[str, list] = {name: [] for name in ("index", "out", "lat", "const", "margin_scale", "strict",
                                                         "premise_low", "premise_high")}
        for dual in duals:
            if dual.premise.rows:
                raise NotPolyhedral("a premise couples several inputs (Farkas form): not supported by the refit")
            premise_low, premise_high = np.full(n_latent, -np.inf), np.full(n_latent, np.inf)
            for coord, (lo, hi) in dual.premise.bounds.items():
                if lo is not None:
                    premise_low[coord] = float(lo)
                if hi is not None:
                    premise_high[coord] = float(hi)
            for row in dual.rows:
                lat = np.zeros(n_latent)
                for coord, value in row.lat.items():
                    lat[coord] = float(value)
                for name, value in (("index", dual.source.index), ("out", row.out_float), ("lat", lat),
                                    ("const", float(row.const)), ("strict", row.strict),
                                    ("margin_scale", float(row.margin_scale()) if row.with_margin else 0.0),
                                    ("premise_low", premise_low), ("premise_high", premise_high)):
                    fields[name].append(value)
        if not fields["index"]:
            return cls(np.zeros(0, int), np.zeros((0, n_out)), np.zeros((0, n_latent)), np.zeros(0), np.zeros(0),
                       np.zeros(0, bool), np.zeros((0, n_latent)), np.zeros((0, n_latent)))
        return cls(*(np.array(fields[name]) for name in ("index", "out", "lat", "const", "margin_scale", "strict",
                                                         "premise_low", "premise_high")))

    def over(self, boxes: LatentBoxes, margin: float) -> WorstCaseRows:
        """The rows over each one's box, bounds lowered by the margin, as ``polyhedron_from_duals`` makes them
        (rows whose premise misses the box left out)."""
        n_latent = self.lat.shape[1]
        low, high = np.empty((len(self.index), n_latent)), np.empty((len(self.index), n_latent))
        for index in np.unique(self.index):
            own_low, own_high = boxes.for_assert(int(index))
            low[self.index == index] = np.asarray(own_low, dtype=np.float64)
            high[self.index == index] = np.asarray(own_high, dtype=np.float64)
        low, high = np.maximum(low, self.premise_low), np.minimum(high, self.premise_high)
        keep = ~(low > high).any(axis=1)
        slack = margin * self.margin_scale
        slack = np.where(self.strict & (slack <= 0), 1e-12, slack)  # a strict row needs some room
        return WorstCaseRows(self.out[keep], self.lat[keep], low[keep], high[keep], (-self.const - slack)[keep])


_last_pinned_rows: dict = {}


def _pinned_rows(asserts: Sequence[Assert], layout: LatentLayout, points: Sequence[CegisPoint],
                 boxes: LatentBoxes) -> list[DualAssert]:
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


def shared_linear_system(rows: WorstCaseRows) -> tuple[csr_matrix, np.ndarray, int]:
    """``rows.linear_system()`` with one auxiliary per distinct worst-case term instead of one per row and
    moving coordinate: the same feasible ``(W, b)``, from a far smaller program.

    A term ``max(a_l lo_l, a_l hi_l)`` with ``a = out W + lat`` depends on ``(out, l, lat_l, lo_l, hi_l)``
    only. The pinned rows of the CEGIS points differ in their pinned coordinates but share every other one
    (same output coefficients, same box), so they share those terms: where one auxiliary stands for several
    rows' copies, its tightest value is each copy's tightest value, so a ``(W, b)`` is feasible with shared
    auxiliaries iff it is feasible with one auxiliary per copy."""
    n_out, n_lat = rows.n_out, rows.n_latent
    n_w = n_out * n_lat
    n_theta = n_w + n_out
    moving = rows.low != rows.high
    row_of, coord_of = np.nonzero(moving)
    keys = np.column_stack([rows.out[row_of], coord_of, rows.lat[row_of, coord_of], rows.low[row_of, coord_of],
                            rows.high[row_of, coord_of]])
    if len(keys):
        unique, term_of = np.unique(keys, axis=0, return_inverse=True)
        term_of = term_of.ravel()
    else:
        unique, term_of = np.zeros((0, n_out + 4)), np.zeros(0, dtype=int)
    n_aux = len(unique)
    term_out, term_coord = unique[:, :n_out], unique[:, n_out].astype(int)
    term_lat, term_low, term_high = unique[:, n_out + 1], unique[:, n_out + 2], unique[:, n_out + 3]
    entries_rows, entries_cols, entries_vals, upper = [], [], [], []
    # a_l * corner - t <= -lat_l * corner, for both corners of every shared term
    term_idx, out_idx = np.nonzero(term_out)
    for block, corner in enumerate((term_low, term_high)):
        offset = block * n_aux
        entries_rows += [offset + term_idx, offset + np.arange(n_aux)]
        entries_cols += [out_idx * n_lat + term_coord[term_idx], n_theta + np.arange(n_aux)]
        entries_vals += [term_out[term_idx, out_idx] * corner[term_idx], -np.ones(n_aux)]
        upper.append(-term_lat * corner)
    # per row: its terms' auxiliaries + the fixed coordinates' a_l lo_l + out . b <= bound
    first = 2 * n_aux
    entries_rows.append(first + row_of)
    entries_cols.append(n_theta + term_of)
    entries_vals.append(np.ones(len(row_of)))
    fixed_row, fixed_coord = np.nonzero(~moving)
    fixed_term, fixed_out = np.nonzero(rows.out[fixed_row])
    entries_rows.append(first + fixed_row[fixed_term])
    entries_cols.append(fixed_out * n_lat + fixed_coord[fixed_term])
    entries_vals.append(rows.out[fixed_row[fixed_term], fixed_out] * rows.low[fixed_row[fixed_term],
                                                                                 fixed_coord[fixed_term]])
    bias_row, bias_out = np.nonzero(rows.out)
    entries_rows.append(first + bias_row)
    entries_cols.append(n_w + bias_out)
    entries_vals.append(rows.out[bias_row, bias_out])
    fixed_constant = np.where(moving, 0.0, rows.lat * rows.low).sum(axis=1)
    upper.append(rows.bound - fixed_constant)
    matrix = coo_matrix((np.concatenate(entries_vals), (np.concatenate(entries_rows), np.concatenate(entries_cols))),
                        shape=(first + rows.n_rows, n_theta + n_aux)).tocsr()
    return matrix, np.concatenate(upper), n_aux


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
    return project_onto(polyhedron_from_duals(rows, layout.n_out, layout.n_latent, boxes, None, margin), layout,
                        target)


def project_onto(polyhedron: WorstCaseRows, layout: LatentLayout, target: LastLayer) -> LastLayer | None:
    """``project_l2`` onto rows already put over their boxes (margins subtracted)."""
    n_out, n_lat = layout.n_out, layout.n_latent
    n_theta = n_out * n_lat + n_out
    theta = np.concatenate([np.asarray(target[0], dtype=np.float64).ravel(), np.asarray(target[1], dtype=np.float64)])
    if polyhedron.n_rows == 0:
        return np.asarray(target[0], dtype=np.float64), np.asarray(target[1], dtype=np.float64)
    matrix, upper, n_aux = shared_linear_system(polyhedron)
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


def _stacked(first: WorstCaseRows, second: WorstCaseRows) -> WorstCaseRows:
    return WorstCaseRows(*(np.concatenate([getattr(first, name), getattr(second, name)])
                           for name in ("out", "lat", "low", "high", "bound")))


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
        polyhedron = _stacked(polyhedron_from_duals(other_rows, layout.n_out, layout.n_latent, boxes, None,
                                                    float(margins.solve)),
                              pinned_polyhedron(point_asserts, layout, points, boxes, float(margins.solve)))
        found = project_onto(polyhedron, layout, target)
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
