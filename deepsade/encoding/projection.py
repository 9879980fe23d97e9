"""Projected gradient step for the last layer: the closest weights (L1) to a target that satisfy the
translated constraint, by one linear program.

For asserts in the closed-form dual fragment (linear conclusions, premises that only bound single
coordinates) the set of last layers ``(W, b)`` that satisfy the constraint over the latent box is a
polyhedron: each conclusion row is ``sum_l max(a_l lo_l, a_l hi_l) + out . b + const <= -slack`` with
``a_l = sum_k out_k W_kl + lat_l``, and each ``max`` becomes an auxiliary ``t_l`` above both terms.
Projecting the gradient step onto it is a small LP (HiGHS through scipy). The LP is solved in floats
with a larger margin than the exact check uses; the trainer rounds the answer to float32 and accepts it
only if the exact check passes, so the projection never weakens the guarantee. It is the step the
trainer tries when the line search finds no feasible fraction of the gradient step, before MaxSMT.
Rows over pairwise disjoint outputs (one per output, as a sign-pattern cube gives) need no LP: each is
its own closed form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

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
    n_w = n_out * n_lat
    n_theta = n_w + n_out
    target = np.concatenate([np.asarray(target_w, dtype=np.float64).ravel(), np.asarray(target_b, dtype=np.float64)])
    eye = np.arange(n_theta)
    # |theta - target| <= u, as theta - u <= target and -theta - u <= -target
    rows = [np.concatenate([eye, eye, n_theta + eye, n_theta + eye])]
    cols = [np.concatenate([eye, n_theta + eye, eye, n_theta + eye])]
    vals = [np.concatenate([np.ones(n_theta), -np.ones(n_theta), -np.ones(n_theta), -np.ones(n_theta)])]
    rhs = [target, -target]
    n_rows, n_vars = 2 * n_theta, 2 * n_theta
    for dual, box in restricted:
        if box is None:
            continue  # the premise never holds on the box
        box_low, box_high = box
        moving = np.nonzero(box_low != box_high)[0]
        fixed = np.nonzero(box_low == box_high)[0]
        for row in dual.rows:
            out = row.out_float
            outs = np.nonzero(out)[0]
            lat = np.zeros(n_lat)
            for l, v in row.lat.items():
                lat[l] = float(v)
            t = n_vars + np.arange(len(moving))
            n_vars += len(moving)
            # a_l * corner <= t_l for both corners of every moving coordinate: 2 * len(moving) rows
            for corner in (box_low, box_high):
                r = n_rows + np.arange(len(moving))
                rows += [np.repeat(r, len(outs)), r]
                cols += [(outs[None, :] * n_lat + moving[:, None]).ravel(), t]
                vals += [(corner[moving][:, None] * out[outs][None, :]).ravel(), -np.ones(len(moving))]
                rhs.append(-lat[moving] * corner[moving])
                n_rows += len(moving)
            # sum t + sum over fixed coordinates of a_l * value + out . b <= -const (- slack)
            bound = -float(row.const) - float(lat[fixed] @ box_low[fixed])
            if row.with_margin:
                bound -= margin * float(row.margin_scale())
            rows += [np.full(len(moving) + len(outs) * (len(fixed) + 1), n_rows)]
            cols += [np.concatenate([t, (outs[None, :] * n_lat + fixed[:, None]).ravel(), n_w + outs])]
            vals += [np.concatenate([np.ones(len(moving)), (box_low[fixed][:, None] * out[outs][None, :]).ravel(),
                                     out[outs]])]
            rhs.append(np.array([bound]))
            n_rows += 1
    matrix = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n_rows, n_vars)).tocsr()
    cost = np.zeros(n_vars)
    cost[n_theta:2 * n_theta] = 1.0
    bounds = np.array([(-np.inf, np.inf)] * n_theta + [(0, np.inf)] * n_theta
                      + [(-np.inf, np.inf)] * (n_vars - 2 * n_theta))
    result = linprog(cost, A_ub=matrix, b_ub=np.concatenate(rhs), bounds=bounds, method="highs")
    if result.status != 0 or result.x is None:
        return None
    theta = result.x[:n_theta]
    return theta[:n_w].reshape(n_out, n_lat), theta[n_w:]


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
