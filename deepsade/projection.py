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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from deepsade.encode import DualAssert, LatentLayout


def projectable(duals: Sequence[DualAssert], n_asserts: int) -> bool:
    """Whether every assert is a closed-form dual (then the feasible set is one polyhedron)."""
    return len(duals) == n_asserts and all(d.closed_form for d in duals)


class _Rows:
    """Sparse rows ``A v <= b`` collected one at a time."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.rhs: list[float] = []

    def add(self, entries: dict[int, float], bound: float) -> None:
        r = len(self.rhs)
        for col, val in entries.items():
            if val != 0.0:
                self.rows.append(r)
                self.cols.append(col)
                self.vals.append(val)
        self.rhs.append(bound)

    def matrix(self, n_cols: int):
        return coo_matrix((self.vals, (self.rows, self.cols)), shape=(len(self.rhs), n_cols)).tocsr()


def project_last_layer(duals: Sequence[DualAssert], layout: LatentLayout, target_w: np.ndarray,
                       target_b: np.ndarray, low: np.ndarray, high: np.ndarray, margin: float
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Weights closest in L1 to ``(target_w, target_b)`` whose worst case over the box satisfies every
    dual with ``margin`` to spare on each output; None when the LP has no solution."""
    n_out, n_lat = layout.n_out, layout.n_latent
    n_theta = n_out * n_lat + n_out
    w_index = lambda k, l: k * n_lat + l  # noqa: E731
    b_index = lambda k: n_out * n_lat + k  # noqa: E731
    target = np.concatenate([np.asarray(target_w, dtype=np.float64).ravel(), np.asarray(target_b, dtype=np.float64)])
    rows = _Rows()
    # |theta - target| <= u
    for i in range(n_theta):
        rows.add({i: 1.0, n_theta + i: -1.0}, float(target[i]))
        rows.add({i: -1.0, n_theta + i: -1.0}, -float(target[i]))
    n_vars = 2 * n_theta
    for dual in duals:
        box = dual.premise.restrict(low, high)
        if box is None:
            continue  # the premise never holds on the box
        box_low = [float(v) for v in box[0]]
        box_high = [float(v) for v in box[1]]
        for row in dual.rows:
            out = [float(v) for v in row.out]
            final: dict[int, float] = {}
            bound = -float(row.const)
            if row.with_margin:
                bound -= margin * float(row.margin_scale())
            for l in range(n_lat):
                lat = float(row.lat.get(l, 0))
                if box_low[l] == box_high[l]:
                    for k, c in enumerate(out):
                        if c:
                            final[w_index(k, l)] = final.get(w_index(k, l), 0.0) + c * box_low[l]
                    bound -= lat * box_low[l]
                    continue
                t = n_vars
                n_vars += 1
                for corner in (box_low[l], box_high[l]):  # a_l * corner <= t
                    entries = {w_index(k, l): c * corner for k, c in enumerate(out) if c}
                    entries[t] = -1.0
                    rows.add(entries, -lat * corner)
                final[t] = 1.0
            for k, c in enumerate(out):
                if c:
                    final[b_index(k)] = final.get(b_index(k), 0.0) + c
            rows.add(final, bound)
    cost = np.zeros(n_vars)
    cost[n_theta:2 * n_theta] = 1.0
    bounds = [(None, None)] * n_theta + [(0, None)] * n_theta + [(None, None)] * (n_vars - 2 * n_theta)
    result = linprog(cost, A_ub=rows.matrix(n_vars), b_ub=np.array(rows.rhs), bounds=bounds, method="highs")
    if result.status != 0 or result.x is None:
        return None
    theta = result.x[:n_theta]
    return theta[:n_out * n_lat].reshape(n_out, n_lat), theta[n_out * n_lat:]
