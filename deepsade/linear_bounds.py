"""Per-unit linear bounds of the last hidden layer (CROWN / DeepPoly style), float and exact.

The latent box (interval bounds, ``deepsade.bounds``) asks a rule to hold for every ``z = [h; s]`` in a box
that is often ~30x wider than what the data reaches. Back-substitution through the hidden layers, with the
ReLU relaxations fixed by the pre-activation bounds (upper chord through ``(l, 0)`` and ``(u, u)``; lower
slope 0 or 1), gives instead, for every unit ``k`` of the last hidden layer and every ``x`` in an input box,

    L_k . x + l0_k  <=  h_k(x)  <=  U_k . x + u0_k.

What these bounds admit for the last layer is in ``deepsade.linear_bound_rows``.

Two computations of the bounds: float64 with outward padding (for solvers and quick checks) and exact rational
on the float32 weights as stored (for the check that may certify). The exact one keeps every number dyadic:
pre-activation bounds are rounded outward to float64, the ReLU slopes are float64, and each upper intercept is
computed exactly so that its line stays above the ReLU on the rounded interval. Nothing here edits the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from deepsade.boxes import max_over_box, min_over_box
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
        low = min_over_box(self.lower_coef, self.input_low, self.input_high) + self.lower_const
        high = max_over_box(self.upper_coef, self.input_low, self.input_high) + self.upper_const
        return low, high


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
        pre_low = np.maximum(ibp_low, min_over_box(lo_coef, x_low, x_high) + lo_const - lo_pad)
        pre_high = np.minimum(ibp_high, max_over_box(up_coef, x_low, x_high) + up_const + up_pad)
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

def as_fractions(values: np.ndarray) -> np.ndarray:
    """A float array as an object array of the exactly equal Fractions."""
    values = np.asarray(values, dtype=np.float64)
    return np.vectorize(Fraction, otypes=[object])(values) if values.size else values.astype(object)


def _round_down(value: Fraction) -> float:
    f = float(value)
    return f if Fraction(f) <= value else math.nextafter(f, -math.inf)


def _round_up(value: Fraction) -> float:
    f = float(value)
    return f if Fraction(f) >= value else math.nextafter(f, math.inf)


def exact_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Object-array matrix product (exact with Fractions)."""
    return np.dot(a, b) if a.size and b.size else np.zeros((a.shape[0],) + b.shape[1:], dtype=object) + Fraction(0)


def exact_linear_bounds(model: SkipMLP, input_low: Sequence, input_high: Sequence) -> UnitLinearBounds:
    """Per-unit linear bounds of the last hidden layer over the input box, exact on the stored float32 weights.

    Sound by construction: pre-activation bounds are exact bounds rounded outward to float64, the ReLU's lower
    slope is 0 or 1, its upper line has a float64 slope and an exact intercept above the ReLU at both ends of
    the rounded interval (enough, the ReLU being convex)."""
    zero = Fraction(0)
    layers = [(as_fractions(w), as_fractions(b)) for w, b in _hidden_float64(model)]
    x_low = np.array([Fraction(v) for v in input_low], dtype=object)
    x_high = np.array([Fraction(v) for v in input_high], dtype=object)
    relax: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    box_low, box_high = x_low, x_high
    result = None
    for k, (weight, bias) in enumerate(layers):
        positive = np.where(weight > 0, weight, zero)
        negative = np.where(weight < 0, weight, zero)
        ibp_low = exact_dot(positive, box_low) + exact_dot(negative, box_high) + bias
        ibp_high = exact_dot(positive, box_high) + exact_dot(negative, box_low) + bias
        lo_coef, lo_const = _back_substitute_exact(layers, relax, weight, bias, k, lower=True)
        up_coef, up_const = _back_substitute_exact(layers, relax, weight, bias, k, lower=False)
        lin_low = min_over_box(lo_coef, x_low, x_high) + lo_const
        lin_high = max_over_box(up_coef, x_low, x_high) + up_const
        pre_low = np.array([_round_down(max(a, b)) for a, b in zip(ibp_low, lin_low)], dtype=np.float64)
        pre_high = np.array([_round_up(min(a, b)) for a, b in zip(ibp_high, lin_high)], dtype=np.float64)
        lower_slope, upper_slope, _ = _relaxation_float(pre_low, pre_high)
        # an exact intercept with upper_slope * z + t >= relu(z) at z = pre_low and z = pre_high
        intercept = np.array([max(zero, -Fraction(s) * Fraction(lo), Fraction(hi) - Fraction(s) * Fraction(hi))
                              if lo < 0 < hi else zero for s, lo, hi in zip(upper_slope, pre_low, pre_high)],
                             dtype=object)
        slopes = (as_fractions(lower_slope), as_fractions(upper_slope), intercept)
        relax.append(slopes)
        box_low = as_fractions(np.maximum(pre_low, 0.0))
        box_high = as_fractions(np.maximum(pre_high, 0.0))
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
        const = const + exact_dot(negative, intercept)
        coef = positive * lower_slope + negative * upper_slope
        w, b = layers[j]
        const = const + exact_dot(coef, b)
        coef = exact_dot(coef, w)
    return sign * coef, sign * const
