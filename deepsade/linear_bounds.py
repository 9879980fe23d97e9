"""Per-unit linear bounds of the last hidden layer (CROWN / DeepPoly style) and the last layers they admit.

The latent box (interval bounds, ``deepsade.bounds``) asks a rule to hold for every ``z = [h; s]`` in a box
that is often ~30x wider than what the data reaches. Back-substitution through the hidden layers, with the
ReLU relaxations fixed by the pre-activation bounds (upper chord through ``(l, 0)`` and ``(u, u)``; lower
slope 0 or 1), gives instead, for every unit ``k`` of the last hidden layer and every ``x`` in an input box,

    L_k . x + l0_k  <=  h_k(x)  <=  U_k . x + u0_k.

For a conclusion row ``out . (W z + b) + lat . z + const <= 0`` write ``a = out W + lat`` and
``a_h = a[:H] = P + Q - M - N`` with ``P, Q, M, N >= 0``. Then, for every ``x`` in the box,

    a_h . h(x) <= P . (U x + u0) + Q . hi - M . (L x + l0) - N . lo,

with ``[lo, hi]`` the interval bounds of ``h`` (the IBP box: ``P = M = 0`` is the box bound itself, so the
better of both is always available). Adding the skip part ``a[H:] . x[mapped]``, the worst case over the box
is a maximum of a linear function of ``x``: ``sum_j max(c_j lo_j, c_j hi_j)`` plus constants, where ``c`` is
linear in ``(P, M, W)``. With an auxiliary ``t_j`` above both products this is a set of linear inequalities
in ``(W, b, P, Q, M, t)``: a polyhedron of last layers, as ``deepsade.last_layer_solve`` and the LP
projection already use, strictly larger than the box's.

Two computations of the bounds: float64 with outward padding (for solvers and quick checks) and exact rational
on the float32 weights as stored (for the check that may certify). The exact one keeps every number dyadic:
pre-activation bounds are rounded outward to float64, the ReLU slopes are float64, and each upper intercept is
computed exactly so that its line stays above the ReLU on the rounded interval.

Everything takes plain arrays, a ``SkipMLP`` and ``DualAssert`` rows so that the trainer and the certificate
can be wired to it; nothing here edits the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix

from deepsade.last_layer_solve import NotPolyhedral
from deepsade.network import SkipMLP

# Outward padding of the float64 bounds (relative to the magnitude of the terms summed, plus absolute):
# float64 rounding of these sums is below 1e-13 relative at these sizes.
PAD_RELATIVE = 1e-9
PAD_ABSOLUTE = 1e-12


# ---- per-unit linear bounds ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitLinearBounds:
    """``lower_coef x + lower_const <= h(x) <= upper_coef x + upper_const`` and ``box_low <= h(x) <= box_high``
    for every ``x`` in ``[input_low, input_high]``, per unit of the last hidden layer. Float64 arrays, or object
    arrays of Fractions (exact)."""

    lower_coef: np.ndarray  # (H, n_inputs)
    lower_const: np.ndarray  # (H,)
    upper_coef: np.ndarray  # (H, n_inputs)
    upper_const: np.ndarray  # (H,)
    box_low: np.ndarray  # (H,) interval bounds of h over the same input box
    box_high: np.ndarray  # (H,)
    input_low: np.ndarray  # (n_inputs,)
    input_high: np.ndarray  # (n_inputs,)

    @property
    def exact(self) -> bool:
        return self.lower_coef.dtype == object

    def concretised(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of each unit from its linear functions alone over the input box (lower, upper)."""
        low = _min_box(self.lower_coef, self.input_low, self.input_high) + self.lower_const
        high = _max_box(self.upper_coef, self.input_low, self.input_high) + self.upper_const
        return low, high


def _max_box(coef: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.maximum(coef * low, coef * high).sum(axis=-1)


def _min_box(coef: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.minimum(coef * low, coef * high).sum(axis=-1)


def _hidden_float64(model: SkipMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """The hidden layers as stored (float32), as float64 arrays (exact conversion)."""
    return [(layer.weight.detach().to(torch.float32).numpy().astype(np.float64),
             layer.bias.detach().to(torch.float32).numpy().astype(np.float64)) for layer in model.hidden]


def _relaxation_float(pre_low: np.ndarray, pre_high: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReLU relaxation ``lower_slope z <= relu(z) <= upper_slope z + intercept`` on ``[pre_low, pre_high]``."""
    unstable = (pre_low < 0) & (pre_high > 0)
    width = np.where(unstable, pre_high - pre_low, 1.0)
    upper_slope = np.where(pre_high <= 0, 0.0, np.where(pre_low >= 0, 1.0, pre_high / width))
    intercept = np.where(unstable, -upper_slope * pre_low, 0.0)
    lower_slope = np.where(pre_high <= 0, 0.0, np.where(pre_low >= 0, 1.0, (pre_high > -pre_low) * 1.0))
    return lower_slope, upper_slope, intercept


def linear_bounds(model: SkipMLP, input_low: np.ndarray, input_high: np.ndarray) -> UnitLinearBounds:
    """Float64 per-unit linear bounds of the last hidden layer over the input box, padded outwards.

    Each layer's pre-activation bounds are the better of back-substitution and interval propagation."""
    layers = _hidden_float64(model)
    x_low, x_high = np.asarray(input_low, dtype=np.float64), np.asarray(input_high, dtype=np.float64)
    x_mag = np.maximum(np.abs(x_low), np.abs(x_high))
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    box_low, box_high = x_low, x_high
    result = None
    for k, (weight, bias) in enumerate(layers):
        # interval bounds
        center, radius = (box_high + box_low) / 2, (box_high - box_low) / 2
        mid, spread = weight @ center + bias, np.abs(weight) @ radius
        pad = PAD_RELATIVE * (np.abs(weight) @ np.abs(center) + np.abs(bias) + spread) + PAD_ABSOLUTE
        ibp_low, ibp_high = mid - spread - pad, mid + spread + pad
        # linear bounds of the pre-activation by back-substitution, concretised over the input box
        lo_coef, lo_const, lo_mag = _back_substitute(layers, relax, weight, bias, k, lower=True)
        up_coef, up_const, up_mag = _back_substitute(layers, relax, weight, bias, k, lower=False)
        lo_pad = PAD_RELATIVE * (lo_mag[0] @ x_mag + lo_mag[1]) + PAD_ABSOLUTE
        up_pad = PAD_RELATIVE * (up_mag[0] @ x_mag + up_mag[1]) + PAD_ABSOLUTE
        lo_const, up_const = lo_const - lo_pad, up_const + up_pad
        pre_low = np.maximum(ibp_low, _min_box(lo_coef, x_low, x_high) + lo_const - lo_pad)
        pre_high = np.minimum(ibp_high, _max_box(up_coef, x_low, x_high) + up_const + up_pad)
        slopes = _relaxation_float(pre_low, pre_high)
        relax.append(slopes)
        box_low, box_high = np.maximum(pre_low, 0.0), np.maximum(pre_high, 0.0)
        if k == len(layers) - 1:
            lower_slope, upper_slope, intercept = slopes
            # relu(z) >= lower_slope z >= lower_slope (L x + l0); relu(z) <= s z + t <= s (U x + u0) + t
            upper_const_h = upper_slope * up_const + intercept
            result = UnitLinearBounds(
                lower_slope[:, None] * lo_coef, lower_slope * lo_const,
                upper_slope[:, None] * up_coef, upper_const_h + PAD_RELATIVE * np.abs(upper_const_h) + PAD_ABSOLUTE,
                box_low, box_high, x_low, x_high)
    assert result is not None
    return result


def _back_substitute(layers, relax, weight: np.ndarray, bias: np.ndarray, layer: int, lower: bool):
    """Linear bound (coefficients on the inputs, constant) of ``weight a + bias`` where ``a`` is the input of
    hidden layer ``layer``, through the relaxations of the layers below; also the magnitudes of the terms
    summed (for the padding)."""
    sign = 1.0 if lower else -1.0  # an upper bound of f is minus the lower bound of -f
    coef, const = sign * weight, sign * bias
    abs_coef, abs_const = np.abs(weight), np.abs(bias)
    for j in range(layer - 1, -1, -1):
        lower_slope, upper_slope, intercept = relax[j]
        positive, negative = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
        const = const + negative @ intercept
        abs_const = abs_const + np.abs(negative) @ intercept
        coef = positive * lower_slope + negative * upper_slope
        abs_coef = abs_coef * np.maximum(lower_slope, upper_slope)
        w, b = layers[j]
        const, abs_const = const + coef @ b, abs_const + abs_coef @ np.abs(b)
        coef, abs_coef = coef @ w, abs_coef @ np.abs(w)
    return sign * coef, sign * const, (abs_coef, abs_const)


# ---- the exact version ------------------------------------------------------------------------------------

def _fractions(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.vectorize(Fraction, otypes=[object])(values) if values.size else values.astype(object)


def _round_down(value: Fraction) -> float:
    f = float(value)
    return f if Fraction(f) <= value else math.nextafter(f, -math.inf)


def _round_up(value: Fraction) -> float:
    f = float(value)
    return f if Fraction(f) >= value else math.nextafter(f, math.inf)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Object-array matrix product (exact with Fractions)."""
    return np.dot(a, b) if a.size and b.size else np.zeros((a.shape[0],) + b.shape[1:], dtype=object) + Fraction(0)


def exact_linear_bounds(model: SkipMLP, input_low: Sequence, input_high: Sequence) -> UnitLinearBounds:
    """Per-unit linear bounds of the last hidden layer over the input box, exact on the stored float32 weights.

    Sound by construction: pre-activation bounds are exact bounds rounded outward to float64, the ReLU's lower
    slope is 0 or 1, its upper line has a float64 slope and an exact intercept above the ReLU at both ends of
    the rounded interval (enough, the ReLU being convex)."""
    zero = Fraction(0)
    layers = [(_fractions(w), _fractions(b)) for w, b in _hidden_float64(model)]
    x_low = np.array([Fraction(v) for v in input_low], dtype=object)
    x_high = np.array([Fraction(v) for v in input_high], dtype=object)
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    box_low, box_high = x_low, x_high
    result = None
    for k, (weight, bias) in enumerate(layers):
        positive = np.where(weight > 0, weight, zero)
        negative = np.where(weight < 0, weight, zero)
        ibp_low = _dot(positive, box_low) + _dot(negative, box_high) + bias
        ibp_high = _dot(positive, box_high) + _dot(negative, box_low) + bias
        lo_coef, lo_const = _back_substitute_exact(layers, relax, weight, bias, k, lower=True)
        up_coef, up_const = _back_substitute_exact(layers, relax, weight, bias, k, lower=False)
        lin_low = _min_box(lo_coef, x_low, x_high) + lo_const
        lin_high = _max_box(up_coef, x_low, x_high) + up_const
        pre_low = np.array([_round_down(max(a, b)) for a, b in zip(ibp_low, lin_low)], dtype=np.float64)
        pre_high = np.array([_round_up(min(a, b)) for a, b in zip(ibp_high, lin_high)], dtype=np.float64)
        lower_slope, upper_slope, _ = _relaxation_float(pre_low, pre_high)
        # an exact intercept with upper_slope * z + t >= relu(z) at z = pre_low and z = pre_high
        intercept = np.array([max(zero, -Fraction(s) * Fraction(lo), Fraction(hi) - Fraction(s) * Fraction(hi))
                              if lo < 0 < hi else zero for s, lo, hi in zip(upper_slope, pre_low, pre_high)],
                             dtype=object)
        slopes = (_fractions(lower_slope), _fractions(upper_slope), intercept)
        relax.append(slopes)
        box_low = _fractions(np.maximum(pre_low, 0.0))
        box_high = _fractions(np.maximum(pre_high, 0.0))
        if k == len(layers) - 1:
            low_s, up_s = slopes[0], slopes[1]
            result = UnitLinearBounds(low_s[:, None] * lo_coef, low_s * lo_const, up_s[:, None] * up_coef,
                                      up_s * up_const + intercept, box_low, box_high, x_low, x_high)
    assert result is not None
    return result


def _back_substitute_exact(layers, relax, weight: np.ndarray, bias: np.ndarray, layer: int, lower: bool):
    zero = Fraction(0)
    sign = 1 if lower else -1
    coef, const = sign * weight, sign * bias
    for j in range(layer - 1, -1, -1):
        lower_slope, upper_slope, intercept = relax[j]
        positive = np.where(coef > 0, coef, zero)
        negative = np.where(coef < 0, coef, zero)
        const = const + _dot(negative, intercept)
        coef = positive * lower_slope + negative * upper_slope
        w, b = layers[j]
        const = const + _dot(coef, b)
        coef = _dot(coef, w)
    return sign * coef, sign * const


# ---- dual rows over linear bounds -------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearBoundRows:
    """Conclusion rows ``out_r . (W z + b) + lat_r . z + const_r <= 0`` checked through per-unit linear bounds.

    Row ``r`` must hold for every input in ``region_low[r], region_high[r]`` (the domain cut by its premise);
    its hidden units are bounded by the linear bounds ``unit[r]`` (computed over a box containing the region).
    ``bound`` is ``-const - slack`` (the caller's margin subtracted). Same interface as
    ``last_layer_solve.WorstCaseRows`` (``n_out``, ``n_latent``, ``slack``, ``tightened``, ``linear_system``,
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
        worst = _max_box(c, self.region_low, self.region_high) + const + biases @ self.out.T
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
    weights = _fractions(model.last.weight.detach().to(torch.float32).numpy())
    biases = _fractions(model.last.bias.detach().to(torch.float32).numpy())
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
            a = _dot(out, weights)
            for coord, value in row.lat.items():
                a[coord] = a[coord] + value
            candidates = [(Fraction(1), Fraction(1)), (Fraction(0), Fraction(0))]
            if shares is not None:
                candidates.append((_fractions(np.clip(shares[0][r_global], 0, 1)),
                                   _fractions(np.clip(shares[1][r_global], 0, 1))))
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
    c = _dot(p, unit.upper_coef) - _dot(m, unit.lower_coef)
    for s, j in enumerate(mapped):
        c[j] = c[j] + a[h + s]
    constant = (_dot(p, unit.upper_const) + _dot(q, unit.box_high) - _dot(m, unit.lower_const)
                - _dot(n, unit.box_low))
    return Fraction(_max_box(c, x_low, x_high)) + constant + _dot(out, biases) + Fraction(const)
