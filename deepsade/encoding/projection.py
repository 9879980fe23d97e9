"""Projected gradient step for the last layer: the closest weights (L1) to a target that satisfy the
translated constraint, by one linear program.

For asserts in the closed-form dual fragment (linear conclusions, premises that only bound single
coordinates) the set of last layers ``(W, b)`` that satisfy the constraint over the latent box is a
polyhedron: each conclusion row is ``sum_l max(a_l lo_l, a_l hi_l) + out . b + const <= -slack`` with
``a_l = sum_k out_k W_kl + lat_l``, and each ``max`` becomes an auxiliary ``t_l`` above both terms.
Projecting the gradient step onto it is a small LP, built in whole arrays and passed to HiGHS through
``highspy`` (one HiGHS instance per thread, reused: scipy's ``linprog`` wrapper cost three times the solve
itself, ``scripts/bench_projection.py``). The LP is solved in floats with a larger margin than the exact check uses; the trainer rounds the answer to float32 and accepts it
only if the exact check passes, so the projection never weakens the guarantee. It is the step the
trainer tries when the line search finds no feasible fraction of the gradient step, before MaxSMT.
Rows over pairwise disjoint outputs (one per output, as a sign-pattern cube gives) need no LP: each is
its own closed form.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
from scipy.sparse import csc_array

from deepsade.boxes import max_over_box
from deepsade.encoding.dual import ConclusionRow, DualAssert
from deepsade.encoding.knapsack import fractional_knapsack
from deepsade.encoding.latent_boxes import LatentBoxes
from deepsade.encoding.layout import LatentLayout


def projectable(duals: Sequence[DualAssert], n_asserts: int) -> bool:
    """Whether every assert is a closed-form dual (then the feasible set is one polyhedron)."""
    return len(duals) == n_asserts and all(d.closed_form for d in duals)


def project_last_layer(duals: Sequence[DualAssert], layout: LatentLayout, target_w: np.ndarray,
                       target_b: np.ndarray, low: np.ndarray | LatentBoxes, high: np.ndarray | None, margin: float
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Weights closest in L1 to ``(target_w, target_b)`` whose worst case over the box satisfies every
    dual with ``margin`` to spare on each output; None when the LP has no solution. ``low``/``high``: one
    box, or ``low`` per-assert ``LatentBoxes`` (each dual over its source assert's box) and ``high`` None."""
    n_out, n_lat = layout.n_out, layout.n_latent
    boxes = LatentBoxes.coerce(low, high)
    restricted = [(dual, _restrict(dual, *boxes.for_assert(dual.source.index))) for dual in duals]
    rows = [(row, box) for dual, box in restricted if box is not None for row in dual.rows]
    if _separable(rows):
        weights, biases = target_w, target_b
        for row, (box_low, box_high) in rows:
            found = _project_one_row(row, weights, biases, box_low, box_high, margin)
            if found is None:
                return None
            weights, biases = found
        return np.array(weights, dtype=np.float64), np.array(biases, dtype=np.float64)
    target = np.concatenate([np.asarray(target_w, dtype=np.float64).ravel(), np.asarray(target_b, dtype=np.float64)])
    lp = projection_lp(restricted, n_out, n_lat, target, margin)
    x = solve_lp(lp)
    if x is None:
        return None
    n_w = n_out * n_lat
    theta = x[:n_w + n_out]
    return theta[:n_w].reshape(n_out, n_lat), theta[n_w:]


@dataclass(frozen=True)
class ProjectionLP:
    """``min cost . x`` subject to ``A x <= row_upper`` and ``col_lower <= x <= col_upper``, with ``A`` in
    compressed sparse column form (``start``, ``index``, ``value``: HiGHS's column-wise layout, row indices
    sorted within each column, the layout ``scipy.sparse.csc_array`` has)."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray  # int32, n_cols + 1
    index: np.ndarray  # int32 row of each entry
    value: np.ndarray

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_upper)

    def matrix(self) -> csc_array:
        """``A`` as a scipy sparse matrix (for checks and for scipy's ``linprog``)."""
        return csc_array((self.value, self.index, self.start), shape=(self.n_rows, self.n_cols))

    def feasible(self, x: np.ndarray, tol: float) -> bool:
        """Whether ``x`` keeps every row and bound to within ``tol`` (no NaN)."""
        if not np.isfinite(x).all():
            return False
        columns = np.repeat(np.arange(self.n_cols), np.diff(self.start))
        activity = np.bincount(self.index, weights=self.value * x[columns], minlength=self.n_rows)
        return bool((activity <= self.row_upper + tol).all() and (x >= self.col_lower - tol).all()
                    and (x <= self.col_upper + tol).all())


def projection_lp(restricted: Sequence[tuple[DualAssert, tuple[np.ndarray, np.ndarray] | None]], n_out: int,
                  n_lat: int, target: np.ndarray, margin: float) -> ProjectionLP:
    """The L1 projection of ``target`` (``W`` row-major, then ``b``) onto the rows of the duals, each over its
    box (None: the premise never holds, no rows), as one LP over ``x = [theta, u, t]``:

    - ``theta - u <= target`` and ``-theta - u <= -target`` (so ``u >= |theta - target|``; cost ``sum u``);
    - per conclusion row and moving coordinate ``l`` (``lo_l != hi_l``), for each corner ``c`` of the box,
      ``(out . W[:, l]) c_l - t_l <= -lat_l c_l`` (the low corners' rows, then the high corners');
    - then ``sum t + sum over fixed coordinates of (out . W[:, l]) lo_l + out . b <= bound``.

    The rows come in that order, conclusion row by conclusion row, with one block of ``t`` per row, built in
    whole arrays (only the rows' rational coefficients are read one conclusion row at a time)."""
    n_w = n_out * n_lat
    n_theta = n_w + n_out
    outs, lats, lows, highs, bounds = [], [], [], [], []
    for dual, box in restricted:
        if box is None:
            continue  # the premise never holds on the box
        box_low, box_high = box
        fixed = box_low == box_high
        for row in dual.rows:
            lat = np.zeros(n_lat)
            for l, v in row.lat.items():
                lat[l] = float(v)
            bound = -float(row.const) - float(lat[fixed] @ box_low[fixed])
            if row.with_margin:
                bound -= margin * float(row.margin_scale())
            outs.append(row.out_float)
            lats.append(lat)
            lows.append(box_low)
            highs.append(box_high)
            bounds.append(bound)
    n_conclusions = len(bounds)
    out = np.array(outs, dtype=np.float64).reshape(n_conclusions, n_out)
    lat = np.array(lats, dtype=np.float64).reshape(n_conclusions, n_lat)
    low = np.array(lows, dtype=np.float64).reshape(n_conclusions, n_lat)
    high = np.array(highs, dtype=np.float64).reshape(n_conclusions, n_lat)

    moving = low != high  # (R, L)
    per_row = moving.sum(axis=1)  # moving coordinates (hence t variables) per conclusion row
    # the t variable of each (row, moving coordinate), row-major, after theta and u
    t_var = 2 * n_theta + np.cumsum(moving.ravel()).reshape(moving.shape) - 1
    # each conclusion row's block of LP rows: low corners, high corners, the sum row
    block_size = 2 * per_row + 1
    block = 2 * n_theta + np.cumsum(block_size) - block_size
    rank = np.cumsum(moving, axis=1) - 1  # position of a moving coordinate among its row's
    low_row = block[:, None] + rank
    high_row = low_row + per_row[:, None]
    sum_row = block + 2 * per_row
    n_rows = 2 * n_theta + int(block_size.sum())
    n_cols = 2 * n_theta + int(per_row.sum())

    theta = np.arange(n_theta)
    ones = np.ones(n_theta)
    r_m, l_m = np.nonzero(moving)  # moving (row, coordinate) pairs
    r_mk, l_mk, k_mk = np.nonzero(moving[:, :, None] & (out[:, None, :] != 0))  # ... times outputs used
    fixed = ~moving
    r_fk, l_fk, k_fk = np.nonzero(fixed[:, :, None] & (out[:, None, :] != 0))
    r_k, k_k = np.nonzero(out)
    entry_rows = [theta, theta, n_theta + theta, n_theta + theta,
                  low_row[r_mk, l_mk], low_row[r_m, l_m], high_row[r_mk, l_mk], high_row[r_m, l_m],
                  sum_row[r_m], sum_row[r_fk], sum_row[r_k]]
    entry_cols = [theta, n_theta + theta, theta, n_theta + theta,
                  k_mk * n_lat + l_mk, t_var[r_m, l_m], k_mk * n_lat + l_mk, t_var[r_m, l_m],
                  t_var[r_m, l_m], k_fk * n_lat + l_fk, n_w + k_k]
    entry_values = [ones, -ones, -ones, -ones,
                    low[r_mk, l_mk] * out[r_mk, k_mk], -np.ones(len(r_m)),
                    high[r_mk, l_mk] * out[r_mk, k_mk], -np.ones(len(r_m)),
                    np.ones(len(r_m)), low[r_fk, l_fk] * out[r_fk, k_fk], out[r_k, k_k]]
    rows = np.concatenate(entry_rows).astype(np.int64)
    cols = np.concatenate(entry_cols).astype(np.int64)
    values = np.concatenate(entry_values)
    order = np.lexsort((rows, cols))  # column-major, rows ascending within a column
    start = np.zeros(n_cols + 1, dtype=np.int32)
    np.cumsum(np.bincount(cols, minlength=n_cols), out=start[1:])

    upper = np.empty(n_rows)
    upper[:n_theta], upper[n_theta:2 * n_theta] = target, -target
    upper[low_row[r_m, l_m]] = -lat[r_m, l_m] * low[r_m, l_m]
    upper[high_row[r_m, l_m]] = -lat[r_m, l_m] * high[r_m, l_m]
    upper[sum_row] = bounds
    cost = np.zeros(n_cols)
    cost[n_theta:2 * n_theta] = 1.0
    col_lower = np.full(n_cols, -np.inf)
    col_lower[n_theta:2 * n_theta] = 0.0
    return ProjectionLP(cost, col_lower, np.full(n_cols, np.inf), upper, start,
                        rows[order].astype(np.int32), values[order])


# scipy's linprog rejects a HiGHS answer whose rows or bounds are off by more than this (sqrt(1e-9) * 10):
# the same test here, so that both report the same LPs as unsolved
_FEASIBILITY_TOLERANCE = float(np.sqrt(1e-9) * 10)
_solvers = threading.local()  # one HiGHS instance per thread, reused: each call passes a whole new model


def _highs() -> highspy._Highs:
    """This thread's HiGHS instance, silent. ``highspy._Highs`` is the binding itself (exported by highspy):
    ``highspy.Highs`` adds Python callbacks, and its log callback prints a banner on stdout when created."""
    highs = getattr(_solvers, "highs", None)
    if highs is None:
        highs = highspy._Highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("presolve", "on")  # what scipy's linprog(method="highs") asks for
        _solvers.highs = highs
    return highs


def solve_lp(lp: ProjectionLP) -> np.ndarray | None:
    """The optimal ``x`` of the LP from HiGHS (through ``highspy``, the model passed as arrays, as scipy's
    ``linprog`` passes it), or None when HiGHS reports no optimum or its answer is off the rows by more
    than scipy's linprog would accept."""
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = lp.n_cols, lp.n_rows
    model.col_cost_, model.col_lower_, model.col_upper_ = lp.cost, lp.col_lower, lp.col_upper
    model.row_lower_, model.row_upper_ = np.full(lp.n_rows, -np.inf), lp.row_upper
    matrix = model.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kColwise
    matrix.num_col_, matrix.num_row_ = lp.n_cols, lp.n_rows
    matrix.start_, matrix.index_, matrix.value_ = lp.start, lp.index, lp.value
    model.a_matrix_ = matrix
    highs = _highs()
    if highs.passModel(model) == highspy.HighsStatus.kError:
        return None
    highs.run()
    if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(highs.getSolution().col_value, dtype=np.float64)
    return x if len(x) == lp.n_cols and lp.feasible(x, _FEASIBILITY_TOLERANCE) else None


def _separable(rows: list[tuple[ConclusionRow, tuple[np.ndarray, np.ndarray]]]) -> bool:
    """Whether the rows touch pairwise disjoint outputs over boxes with ``low >= 0``: then the L1
    projection splits into one closed form per row (each moves only its own output's weights)."""
    if not rows:
        return False
    touched = [set(np.nonzero(row.out_float)[0]) for row, _ in rows]
    if sum(len(t) for t in touched) != len(set().union(*touched)):
        return False
    return all((box_low >= 0).all() for _, (box_low, _) in rows)


def _restrict(dual: DualAssert, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The latent box cut by the premise's single-coordinate bounds, in floats (None when empty)."""
    box_low, box_high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    for coord, (lo, hi) in dual.premise.bounds.items():
        if lo is not None:
            box_low[coord] = max(box_low[coord], float(lo))
        if hi is not None:
            box_high[coord] = min(box_high[coord], float(hi))
        if box_low[coord] > box_high[coord]:
            return None
    return box_low, box_high


def _project_one_row(row, target_w: np.ndarray, target_b: np.ndarray, box_low: np.ndarray, box_high: np.ndarray,
                     margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The same L1 projection in closed form when the polyhedron is one row over a box with ``lo >= 0``.

    The row's worst case ``sum_l max(a_l lo_l, a_l hi_l) + out . b + const`` falls at rate ``|out_k| hi_l``
    per unit of ``W_kl`` while ``a_l > 0``, then at ``|out_k| lo_l``, and at ``|out_k|`` per unit of ``b_k``:
    a fractional knapsack (``deepsade.encoding.knapsack``) on the output of largest ``|out_k|``."""
    weights = np.array(target_w, dtype=np.float64)
    biases = np.array(target_b, dtype=np.float64)
    out = row.out_float
    lat = np.zeros(weights.shape[1])
    for l, v in row.lat.items():
        lat[l] = float(v)
    a = out @ weights + lat
    worst = float(max_over_box(a, box_low, box_high) + out @ biases + float(row.const))
    limit = -margin * float(row.margin_scale()) if row.with_margin else 0.0
    excess = worst - limit
    if excess <= 0:
        return weights, biases
    k_best = int(np.argmax(np.abs(out)))
    scale = abs(out[k_best])
    if scale == 0:
        return None  # the row does not involve the outputs: nothing the last layer can do
    # unbounded: the coordinate of largest lo when it falls at least as fast as the bias (rate |out_k|), else
    # the bias; equally steep segments are taken in the order coordinates, then lo, then bias
    widest = int(np.argmax(box_low))
    by_coordinate = float(box_low[widest]) >= 1.0
    unbounded_rate = scale * float(box_low[widest]) if by_coordinate else scale
    spend = fractional_knapsack(np.array(excess), np.where(a > 0, a / scale, 0.0), scale * box_high, unbounded_rate,
                                ties_to_bounded=True)
    sign = np.sign(out[k_best])
    weights[k_best, spend.segments] -= sign * spend.used
    step = float(spend.tail) / unbounded_rate
    if step > 0 and by_coordinate:
        weights[k_best, widest] -= sign * step
    elif step > 0:
        biases[k_best] -= sign * step
    return weights, biases
