"""Sound bounds of the network over a box of inputs: interval and linear (CROWN / DeepPoly-style) bounds.

Everything is float64 with outward padding (1e-9 relative to the magnitude of the terms summed, plus
1e-12 absolute), far above float64 rounding at these sizes, so the bounds stay sound for fixing
stable neurons and for ruling out violations before a solver runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class NetworkWeights(Protocol):
    """What the bounds read of a network (``deepsade.verification.network.NetworkWeights`` has it)."""

    hidden: list[tuple[np.ndarray, np.ndarray]]
    last_weight: np.ndarray
    last_bias: np.ndarray
    mapped: np.ndarray

# Outward padding of float64 bounds (relative + absolute): float64 rounding of these sums
# is below 1e-13 relative at these sizes.
PAD_RELATIVE = 1e-9
PAD_ABSOLUTE = 1e-12


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


def propagate(weights: NetworkWeights, lower: np.ndarray, upper: np.ndarray) -> Relaxation:
    """Bounds of every hidden pre-activation over the input box and the ReLU relaxations they give.

    Linear bounds are propagated backwards through the relaxations of the earlier layers
    (CROWN / DeepPoly style: upper line through (l, 0) and (u, u), lower slope 0 or 1), intersected
    with plain interval bounds."""
    relaxation = Relaxation(np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
    interval_low, interval_high = relaxation.low, relaxation.high
    for k, (weight, bias) in enumerate(weights.hidden):
        center, radius = (interval_high + interval_low) / 2, (interval_high - interval_low) / 2
        mid, spread = weight @ center + bias, np.abs(weight) @ radius
        pad = PAD_RELATIVE * (np.abs(weight) @ np.abs(center) + np.abs(bias) + spread) + PAD_ABSOLUTE
        linear_low = lower_bound(weights, relaxation, weight, bias, k)
        linear_high = -lower_bound(weights, relaxation, -weight, -bias, k)
        pre_low = np.maximum(mid - spread - pad, linear_low)
        pre_high = np.minimum(mid + spread + pad, linear_high)
        relaxation.add_layer(pre_low, pre_high)
        interval_low, interval_high = np.maximum(pre_low, 0.0), np.maximum(pre_high, 0.0)
    return relaxation


def lower_bound(weights: NetworkWeights, relaxation: Relaxation, coefficients: np.ndarray, constant: np.ndarray,
                layer: int, direct: np.ndarray | None = None) -> np.ndarray:
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
        weight, bias = weights.hidden[j]
        constant, abs_constant = constant + coefficients @ bias, abs_constant + abs_coefficients @ np.abs(bias)
        coefficients, abs_coefficients = coefficients @ weight, abs_coefficients @ np.abs(weight)
    if direct is not None:
        coefficients, abs_coefficients = coefficients + direct, abs_coefficients + np.abs(direct)
    # the box minimum as two matrix products (BLAS): boxes.min_over_box sums in another order
    value = np.maximum(coefficients, 0.0) @ relaxation.low + np.minimum(coefficients, 0.0) @ relaxation.high
    magnitude = np.maximum(np.abs(relaxation.low), np.abs(relaxation.high))
    pad = PAD_RELATIVE * (abs_coefficients @ magnitude + abs_constant) + PAD_ABSOLUTE
    return value + constant - pad


def output_lower_bound(weights: NetworkWeights, relaxation: Relaxation, output_coefficients: np.ndarray,
                       input_coefficients: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """Sound lower bounds over the box of ``output_coefficients . y + input_coefficients . x + constant``
    (one per row): the better of the backward linear bound and the interval bound on ``[h; s]``."""
    out, inp = np.atleast_2d(output_coefficients), np.atleast_2d(input_coefficients)
    n_hidden = weights.hidden[-1][1].shape[0]
    on_hidden = out @ weights.last_weight[:, :n_hidden]
    direct = inp.copy()
    np.add.at(direct.T, weights.mapped, (out @ weights.last_weight[:, n_hidden:]).T)
    constant = np.atleast_1d(constant).astype(np.float64) + out @ weights.last_bias
    linear = lower_bound(weights, relaxation, on_hidden, constant, len(weights.hidden), direct)
    pre_low, pre_high = relaxation.preactivation[-1]
    latent_low = np.concatenate([np.maximum(pre_low, 0.0), relaxation.low])
    latent_high = np.concatenate([np.maximum(pre_high, 0.0), relaxation.high])
    full = np.concatenate([on_hidden, direct], axis=1)
    magnitude = np.maximum(np.abs(latent_low), np.abs(latent_high))
    interval = (np.maximum(full, 0.0) @ latent_low + np.minimum(full, 0.0) @ latent_high + constant
                - PAD_RELATIVE * (np.abs(full) @ magnitude + np.abs(constant)) - PAD_ABSOLUTE)
    return np.maximum(linear, interval)
