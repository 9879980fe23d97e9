"""Exact rational bounds of a constructed network's base output ``f`` over a box of scaled inputs.

Every certificate of a construction starts here: the enforcement layer sees ``f`` only through this box (``f``
and the mapped inputs then taken as independent, an over-approximation)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from deepsade.bounds import exact_latent_box
from deepsade.boxes import max_over_box, min_over_box


def stored_fractions(tensor: torch.Tensor) -> np.ndarray:
    """A stored tensor's float32 values as a Fraction object array of the same shape (exact)."""
    values = tensor.detach().to(torch.float32).numpy().astype(np.float64)
    return np.array([Fraction(v) for v in values.ravel().tolist()], dtype=object).reshape(values.shape)


def base_output_box(model, low: list[Fraction], high: list[Fraction]) -> tuple[np.ndarray, np.ndarray]:
    """Exact rational bounds of the base network's output ``f`` over the scaled domain box."""
    latent_low, latent_high = exact_latent_box(model, low, high)
    latent_low = np.array(latent_low, dtype=object)
    latent_high = np.array(latent_high, dtype=object)
    weight, bias = stored_fractions(model.last.weight), stored_fractions(model.last.bias)
    return min_over_box(weight, latent_low, latent_high) + bias, max_over_box(weight, latent_low, latent_high) + bias
