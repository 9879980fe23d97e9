"""The last layers that per-unit linear bounds admit: conclusion rows checked through them, float and exact.

With per-unit bounds ``L_k . x + l0_k <= h_k(x) <= U_k . x + u0_k`` over an input box
(``deepsade.linear_bounds``), a conclusion row ``out . (W z + b) + lat . z + const <= 0`` with
``a = out W + lat`` and ``a_h = a[:H] = P + Q - M - N`` (``P, Q, M, N >= 0``) holds for every ``x`` of the
box when

    P . (U x + u0) + Q . hi - M . (L x + l0) - N . lo + a[H:] . x[mapped] + out . b + const <= 0

for all ``x``, with ``[lo, hi]`` the interval bounds of ``h`` (``P = M = 0`` is the box bound itself).
The worst case over ``x`` is ``sum_j max(c_j lo_j, c_j hi_j)`` plus constants, with ``c`` linear in
``(P, M, W)``; with an auxiliary ``t_j`` above both products this is a polyhedron in
``(W, b, P, Q, M, t)`` that ``deepsade.last_layer_solve`` minimises over, strictly larger than the box's.
``exact_check`` decides each row in exact rationals on the stored float32 weights.

Everything takes plain arrays, a ``SkipMLP`` and ``DualAssert`` rows so that the trainer and the certificate
can be wired to it; nothing here edits the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix

from deepsade.boxes import max_over_box
from deepsade.last_layer_polyhedron import NotPolyhedral
from deepsade.linear_bounds import (
    UnitLinearBounds,
    as_fractions,
    exact_dot,
    exact_linear_bounds,
    linear_bounds,
)
from deepsade.network import SkipMLP

# ---- dual rows over linear bounds -------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearBoundRows:
    """Conclusion rows ``out_r . (W z + b) + lat_r . z + const_r <= 0`` checked through per-unit linear bounds.

    Row ``r`` must hold for every input in ``region_low[r], region_high[r]`` (the domain cut by its premise);
    its hidden units are bounded by the linear bounds ``unit[r]`` (computed over a box containing the region).
    ``bound`` is ``-const - slack`` (the caller's margin subtracted). Same interface as
    ``last_layer_polyhedron.WorstCaseRows`` (``n_out``, ``n_latent``, ``slack``, ``tightened``, ``linear_system``,
    ``auxiliaries_at``), so ``solve_last_layer`` accepts it."""

    out: np.ndarray  # (R, n_out)
    lat: np.ndarray  # (R, n_latent)
    bound: np.ndarray  # (R,)
    region_low: np.ndarray  # (R, n_inputs)
    region_high: np.ndarray  # (R, n_inputs)
    units: tuple[UnitLinearBounds, ...]  # one per row (rows of one assert share theirs)
    mapped: np.ndarray  # (S,) input index of each skip coordinate
    strict: np.ndarray  # (R,) bool

    @property
    def n_rows(self) -> int:
        return len(self.bound)

    @property
    def n_out(self) -> int:
        return self.out.shape[1]

    @property
    def n_latent(self) -> int:
        return self.lat.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.n_latent - len(self.mapped)

    @property
    def n_inputs(self) -> int:
        return self.region_low.shape[1]

    def _stacked(self, name: str) -> np.ndarray:
        return np.stack([getattr(u, name) for u in self.units]).astype(np.float64)

    def coefficients(self, weights: np.ndarray) -> np.ndarray:
        """``a = out W + lat`` per candidate and row: weights (C, n_out, L) -> (C, R, L)."""
        return np.einsum("rk,ckl->crl", self.out, np.asarray(weights, dtype=np.float64)) + self.lat

    def worst_case(self, weights: np.ndarray, biases: np.ndarray, upper_share=1.0, lower_share=1.0) -> np.ndarray:
        """Each row's left-hand side (without ``const``) at its worst input, bounded through the mix
        ``upper_share`` of the linear upper bound (the rest on the box's upper bound) and ``lower_share`` of
        the linear lower bound, per unit (scalars or arrays broadcasting to (C, R, H)). Weights (C, n_out, L)
        or (n_out, L); returns (C, R) or (R,)."""
        single = np.asarray(weights).ndim == 2
        weights = np.asarray(weights, dtype=np.float64).reshape((-1, self.n_out, self.n_latent))
        biases = np.asarray(biases, dtype=np.float64).reshape((-1, self.n_out))
        a = self.coefficients(weights)
        h = self.n_hidden
        positive, negative = np.maximum(a[..., :h], 0.0), np.maximum(-a[..., :h], 0.0)
        p, q = positive * upper_share, positive * (1.0 - np.asarray(upper_share, dtype=np.float64))
        m, n = negative * lower_share, negative * (1.0 - np.asarray(lower_share, dtype=np.float64))
        c = np.einsum("crh,rhj->crj", p, self._stacked("upper_coef")) \
            - np.einsum("crh,rhj->crj", m, self._stacked("lower_coef"))
        np.add.at(c, (slice(None), slice(None), self.mapped), a[..., h:])
        const = (p * self._stacked("upper_const") + q * self._stacked("box_high")
                 - m * self._stacked("lower_const") - n * self._stacked("box_low")).sum(axis=-1)
        worst = max_over_box(c, self.region_low, self.region_high) + const + biases @ self.out.T
        return worst[0] if single else worst

    def box_worst_case(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """The interval (IBP box) bound alone: ``worst_case`` with no share on the linear bounds."""
        return self.worst_case(weights, biases, 0.0, 0.0)

    def best_split(self, weights: np.ndarray, biases: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For one last layer, per row the shares (R, H), (R, H) that minimise the bound (a small LP per row,
        HiGHS), and the bound (R,). Never worse than the better of the box and the pure linear bound."""
        weights = np.asarray(weights, dtype=np.float64)
        a = self.coefficients(weights[None])[0]
        h = self.n_hidden
        upper_share = np.ones((self.n_rows, h))
        lower_share = np.ones((self.n_rows, h))
        for r in range(self.n_rows):
            found = self._split_lp(r, a[r])
            if found is not None:
                upper_share[r], lower_share[r] = found
        worst = self.worst_case(weights[None], biases, upper_share[None], lower_share[None])[0]
        # never worse than either extreme, whatever the LP's accuracy
        for share in (0.0, 1.0):
            other = self.worst_case(weights, biases, share, share)
            better = other < worst
            upper_share[better], lower_share[better], worst = share, share, np.minimum(worst, other)
        return upper_share, lower_share, worst

    def _split_lp(self, r: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        h, n_in = self.n_hidden, self.n_inputs
        u = self.units[r]
        pos, neg = np.maximum(a[:h], 0.0), np.maximum(-a[:h], 0.0)
        up_c, lo_c = u.upper_coef.astype(np.float64), u.lower_coef.astype(np.float64)
        skip = np.zeros(n_in)
        np.add.at(skip, self.mapped, a[h:])
        # variables: theta (H), phi (H), t (n_in); c = (theta*pos) U - (phi*neg) L + skip
        cost = np.concatenate([pos * (u.upper_const.astype(float) - u.box_high.astype(float)),
                               -neg * (u.lower_const.astype(float) - u.box_low.astype(float)), np.ones(n_in)])
        blocks = []
        rhs = []
        for corner in (self.region_low[r], self.region_high[r]):
            # c_j corner_j <= t_j
            blocks.append(np.hstack([(pos[:, None] * up_c * corner[None, :]).T, -(neg[:, None] * lo_c * corner[None, :]).T,
                                     -np.eye(n_in)]))
            rhs.append(-skip * corner)
        bounds = [(0.0, 1.0)] * (2 * h) + [(None, None)] * n_in
        res = linprog(cost, A_ub=np.vstack(blocks), b_ub=np.concatenate(rhs), bounds=bounds, method="highs")
        if res.status != 0:
            return None
        return np.clip(res.x[:h], 0.0, 1.0), np.clip(res.x[h:2 * h], 0.0, 1.0)

    def slack(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """``bound - worst case`` per row for one last layer, with the best split (>= 0: inside, in floats)."""
        return self.bound - self.best_split(weights, biases)[2]

    def tightened(self, amount: float) -> LinearBoundRows:
        return replace(self, bound=self.bound - amount)

    # ---- the polyhedron ---------------------------------------------------------------------------------
    def linear_system(self) -> tuple[csr_matrix, np.ndarray, int]:
        """``A x <= u`` over ``x = [W (row-major), b, aux]``; per row the auxiliaries are ``P, Q, M`` (H each:
        the positive part of ``a_h`` on the linear upper / box upper bound, the negative part on the linear
        lower bound; the box lower bound takes ``N = P + Q - M - a_h >= 0``) and ``t`` (one per input).
        Returns (A, u, number of auxiliaries)."""
        n_out, n_lat, h, n_in = self.n_out, self.n_latent, self.n_hidden, self.n_inputs
        n_w = n_out * n_lat
        n_theta = n_w + n_out
        per_row = 3 * h + n_in
        rows, cols, vals, upper = [], [], [], []
        n_rows = 0

        def add(row_ids, col_ids, values):
            rows.append(np.asarray(row_ids).ravel())
            cols.append(np.asarray(col_ids).ravel())
            vals.append(np.asarray(values, dtype=np.float64).ravel())

        w_index = np.arange(n_w).reshape(n_out, n_lat)
        for r in range(self.n_rows):
            u = self.units[r]
            base = n_theta + r * per_row
            p, q, m, t = (base + np.arange(h), base + h + np.arange(h), base + 2 * h + np.arange(h),
                          base + 3 * h + np.arange(n_in))
            outs = np.nonzero(self.out[r])[0]
            up_c, lo_c = u.upper_coef.astype(np.float64), u.lower_coef.astype(np.float64)
            # P, Q, M >= 0
            for block in (p, q, m):
                add(n_rows + np.arange(h), block, -np.ones(h))
                upper.append(np.zeros(h))
                n_rows += h
            # N = P + Q - M - a_h >= 0, a_h = out W[:, :h] + lat[:h]:  -P - Q + M + out W_h <= -lat_h
            at = n_rows + np.arange(h)
            add(at, p, -np.ones(h))
            add(at, q, -np.ones(h))
            add(at, m, np.ones(h))
            add(np.repeat(at, len(outs)), w_index[outs][:, :h].T, np.tile(self.out[r, outs], h))
            upper.append(-self.lat[r, :h])
            n_rows += h
            # c_j corner_j <= t_j with c = P U - M L + skip(out W_s + lat_s)
            skip_lat = np.zeros(n_in)
            np.add.at(skip_lat, self.mapped, self.lat[r, h:])
            for corner in (self.region_low[r], self.region_high[r]):
                at = n_rows + np.arange(n_in)
                add(np.repeat(at, h), np.tile(p, n_in), (up_c * corner[None, :]).T)
                add(np.repeat(at, h), np.tile(m, n_in), -(lo_c * corner[None, :]).T)
                for s, j in enumerate(self.mapped):
                    add(np.full(len(outs), n_rows + j), w_index[outs, h + s], self.out[r, outs] * corner[j])
                add(at, t, -np.ones(n_in))
                upper.append(-skip_lat * corner)
                n_rows += n_in
            # sum t + P u0 + Q hi - M l0 - N lo + out b <= bound, with N = P + Q - M - a_h
            lo_box = u.box_low.astype(np.float64)
            add(np.full(n_in, n_rows), t, np.ones(n_in))
            add(np.full(h, n_rows), p, u.upper_const.astype(np.float64) - lo_box)
            add(np.full(h, n_rows), q, u.box_high.astype(np.float64) - lo_box)
            add(np.full(h, n_rows), m, -u.lower_const.astype(np.float64) + lo_box)
            add(np.full(len(outs) * h, n_rows), w_index[outs][:, :h].ravel(),
                (self.out[r, outs][:, None] * lo_box[None, :]).ravel())
            add(np.full(len(outs), n_rows), n_w + outs, self.out[r, outs])
            upper.append(np.array([self.bound[r] - float(self.lat[r, :h] @ lo_box)]))
            n_rows += 1
        n_aux = self.n_rows * per_row
        matrix = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n_rows, n_theta + n_aux)).tocsr()
        return matrix, np.concatenate(upper), n_aux

    def auxiliaries_at(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """Auxiliaries of ``linear_system`` at a last layer, with the best split (a warm start)."""
        upper_share, lower_share, _ = self.best_split(weights, biases)
        a = self.coefficients(np.asarray(weights, dtype=np.float64)[None])[0]
        h = self.n_hidden
        parts = []
        for r in range(self.n_rows):
            pos, neg = np.maximum(a[r, :h], 0.0), np.maximum(-a[r, :h], 0.0)
            p, q, m = pos * upper_share[r], pos * (1 - upper_share[r]), neg * lower_share[r]
            c = p @ self.units[r].upper_coef.astype(np.float64) - m @ self.units[r].lower_coef.astype(np.float64)
            np.add.at(c, self.mapped, a[r, h:])
            t = np.maximum(c * self.region_low[r], c * self.region_high[r])
            parts += [p, q, m, t]
        return np.concatenate(parts) if parts else np.zeros(0)


# ---- from the translated rule ------------------------------------------------------------------------------

def premise_region(dual, n_hidden: int, mapped: Sequence[int], domain_low: Sequence, domain_high: Sequence
                   ) -> tuple[list[Fraction], list[Fraction]] | None:
    """The input box of a ``DualAssert``'s premise (bounds on skip coordinates are bounds on their inputs;
    strict ones closed): exact Fractions, or None when it is empty. Raises ``NotPolyhedral`` for a premise
    coupling several inputs."""
    if dual.premise.rows:
        raise NotPolyhedral("a premise couples several inputs: not supported by the linear bounds")
    low = [Fraction(v) for v in domain_low]
    high = [Fraction(v) for v in domain_high]
    for coord, (lo, hi) in dual.premise.bounds.items():
        j = mapped[coord - n_hidden]
        if lo is not None:
            low[j] = max(low[j], Fraction(lo))
        if hi is not None:
            high[j] = min(high[j], Fraction(hi))
        if low[j] > high[j]:
            return None
    return low, high


def rows_from_duals(model: SkipMLP, duals: Sequence, domain_low: Sequence, domain_high: Sequence, margin: float,
                    per_region: bool = True, exact: bool = False) -> LinearBoundRows:
    """``LinearBoundRows`` of closed-form duals (``deepsade.encoding.dual.DualAssert``) for this model.

    ``per_region``: the unit bounds of each assert are computed over its premise's box (else over the whole
    domain, then concretised over the premise's box). Each bound is lowered by ``margin`` times its output
    coefficients' L1 norm. ``exact``: exact bounds (object arrays) in ``units``, for ``exact_check``."""
    h = model.hidden_sizes[-1]
    mapped = model.mapped_features.tolist()
    compute = exact_linear_bounds if exact else linear_bounds
    whole = None
    outs, lats, bounds, lows, highs, units, strict = [], [], [], [], [], [], []
    for dual in duals:
        region = premise_region(dual, h, mapped, domain_low, domain_high)
        if region is None:
            continue  # the premise never holds on the domain
        if per_region:
            unit = compute(model, *(region if exact else [np.array([float(v) for v in side]) for side in region]))
        else:
            if whole is None:
                whole = compute(model, *(([Fraction(v) for v in domain_low], [Fraction(v) for v in domain_high])
                                         if exact else (np.asarray(domain_low, dtype=np.float64),
                                                        np.asarray(domain_high, dtype=np.float64))))
            unit = whole
        for row in dual.rows:
            lat = np.zeros(h + len(mapped))
            for coord, value in row.lat.items():
                lat[coord] = float(value)
            slack = margin * float(row.margin_scale()) if row.with_margin else 0.0
            outs.append(row.out_float)
            lats.append(lat)
            bounds.append(-float(row.const) - slack)
            lows.append([float(v) for v in region[0]])
            highs.append([float(v) for v in region[1]])
            units.append(unit)
            strict.append(row.strict)
    n_in = model.n_inputs
    return LinearBoundRows(np.array(outs).reshape(-1, model.n_outputs), np.array(lats).reshape(-1, h + len(mapped)),
                           np.array(bounds), np.array(lows).reshape(-1, n_in), np.array(highs).reshape(-1, n_in),
                           tuple(units), np.array(mapped, dtype=np.int64), np.array(strict, dtype=bool))


@dataclass(frozen=True)
class ExactRowResult:
    """The exact worst case of one conclusion row over its region, with the split that proved it."""

    assert_index: int
    row: int
    worst: Fraction  # left-hand side incl. const, at the worst input (an upper bound)
    box_worst: Fraction  # the same through the interval box alone
    holds: bool


def exact_check(model: SkipMLP, duals: Sequence, domain_low: Sequence, domain_high: Sequence, margin: float,
                shares: tuple[np.ndarray, np.ndarray] | None = None, per_region: bool = True
                ) -> list[ExactRowResult]:
    """Exact rational check of every conclusion row of closed-form duals on the stored float32 weights.

    The row holds when ``worst + margin * |out|_1 <= 0`` (``< 0`` when strict), with ``worst`` the least of
    the exact bounds through the linear bounds (shares 1), the box (shares 0) and ``shares`` (per row (R, H)
    each, as ``LinearBoundRows.best_split`` gives; any value in [0, 1] is sound). Every number is a Fraction:
    the float32 weights and float shares convert exactly."""
    h = model.hidden_sizes[-1]
    mapped = model.mapped_features.tolist()
    weights = as_fractions(model.last.weight.detach().to(torch.float32).numpy())
    biases = as_fractions(model.last.bias.detach().to(torch.float32).numpy())
    whole = None if per_region else exact_linear_bounds(model, domain_low, domain_high)
    results = []
    r_global = 0
    for dual in duals:
        region = premise_region(dual, h, mapped, domain_low, domain_high)
        if region is None:
            continue
        unit = exact_linear_bounds(model, *region) if per_region else whole
        x_low = np.array(region[0], dtype=object)
        x_high = np.array(region[1], dtype=object)
        for r, row in enumerate(dual.rows):
            out = np.array(row.out, dtype=object)
            a = exact_dot(out, weights)
            for coord, value in row.lat.items():
                a[coord] = a[coord] + value
            candidates = [(Fraction(1), Fraction(1)), (Fraction(0), Fraction(0))]
            if shares is not None:
                candidates.append((as_fractions(np.clip(shares[0][r_global], 0, 1)),
                                   as_fractions(np.clip(shares[1][r_global], 0, 1))))
            worst_values = [_exact_row_worst(a, out, biases, row.const, unit, x_low, x_high, mapped, h, us, ls)
                            for us, ls in candidates]
            worst = min(worst_values)
            slack = Fraction(margin) * row.margin_scale() if row.with_margin else Fraction(0)
            holds = worst + slack < 0 if row.strict else worst + slack <= 0
            results.append(ExactRowResult(dual.source.index, r, worst, worst_values[1], bool(holds)))
            r_global += 1
    return results


def _exact_row_worst(a, out, biases, const, unit: UnitLinearBounds, x_low, x_high, mapped, h, upper_share,
                     lower_share) -> Fraction:
    zero = Fraction(0)
    a_h = a[:h]
    positive = np.where(a_h > 0, a_h, zero)
    negative = np.where(a_h < 0, -a_h, zero)
    p, q = positive * upper_share, positive * (1 - upper_share)
    m, n = negative * lower_share, negative * (1 - lower_share)
    c = exact_dot(p, unit.upper_coef) - exact_dot(m, unit.lower_coef)
    for s, j in enumerate(mapped):
        c[j] = c[j] + a[h + s]
    constant = (exact_dot(p, unit.upper_const) + exact_dot(q, unit.box_high) - exact_dot(m, unit.lower_const)
                - exact_dot(n, unit.box_low))
    return Fraction(max_over_box(c, x_low, x_high)) + constant + exact_dot(out, biases) + Fraction(const)
