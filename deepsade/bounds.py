"""Interval bound propagation: the domain box D -> the latent box B that contains every ``[h; s]``.

Two versions: a fast float64 one with outward padding (used during training) and an exact one in
rational arithmetic on the float32 weights as stored (used by the certificate).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from deepsade.network import SkipMLP

# Relative + absolute outward padding per layer: covers float64 rounding of the interval arithmetic
# (about 1e-14 relative for these sizes) with a wide safety factor; the certificate is exact anyway.
_PAD_RELATIVE = 1e-9
_PAD_ABSOLUTE = 1e-12


def _layer_arrays(model: SkipMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.weight.detach().to(torch.float64).numpy(), layer.bias.detach().to(torch.float64).numpy())
            for layer in model.hidden]


def latent_box(model: SkipMLP, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 interval bounds of ``[h; s]`` over the input box, padded outwards."""
    return latent_boxes(model, [(lower, upper)])[0]


def latent_boxes(model: SkipMLP, boxes: Sequence[tuple[np.ndarray, np.ndarray]]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``latent_box`` for several input boxes, reading the hidden layers' weights once (the trainer asks for
    the whole domain's box and each premise region's at every step)."""
    layers = _layer_arrays(model)
    mapped = model.mapped_features.numpy()
    return [_propagate(layers, mapped, lower, upper) for lower, upper in boxes]


def _propagate(layers: list[tuple[np.ndarray, np.ndarray]], mapped: np.ndarray, lower: np.ndarray,
               upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    skip_low, skip_high = low[mapped], high[mapped]
    for weight, bias in layers:
        center, radius = (high + low) / 2, (high - low) / 2
        mid = weight @ center + bias
        spread = np.abs(weight) @ radius
        pad = _PAD_RELATIVE * (np.abs(mid) + spread) + _PAD_ABSOLUTE
        low, high = np.maximum(mid - spread - pad, 0.0), np.maximum(mid + spread + pad, 0.0)
    return np.concatenate([low, skip_low]), np.concatenate([high, skip_high])


def exact_latent_box(model: SkipMLP, lower: Sequence[Fraction], upper: Sequence[Fraction]
                     ) -> tuple[list[Fraction], list[Fraction]]:
    """Exact rational interval bounds of ``[h; s]`` for the float32 weights as they are stored.

    Every float32 converts to a rational exactly, so the box provably contains all reachable ``[h; s]``."""
    low = np.array([Fraction(v) for v in lower], dtype=object)
    high = np.array([Fraction(v) for v in upper], dtype=object)
    mapped = model.mapped_features.tolist()
    skip_low, skip_high = [low[j] for j in mapped], [high[j] for j in mapped]
    zero = Fraction(0)
    for layer in model.hidden:
        weight = _to_fractions(layer.weight)
        bias = _to_fractions(layer.bias)
        positive = np.where(weight > 0, weight, zero)
        negative = np.where(weight < 0, weight, zero)
        new_low = positive.dot(low) + negative.dot(high) + bias
        new_high = positive.dot(high) + negative.dot(low) + bias
        low = np.array([max(v, zero) for v in new_low], dtype=object)
        high = np.array([max(v, zero) for v in new_high], dtype=object)
    return list(low) + skip_low, list(high) + skip_high


def _to_fractions(tensor: torch.Tensor) -> np.ndarray:
    values = tensor.detach().to(torch.float32).numpy().astype(np.float64)
    return np.vectorize(Fraction, otypes=[object])(values) if values.size else values.astype(object)
