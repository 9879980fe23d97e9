"""A construction's base network as plain ReLU layers: the part HardNet-Aff's layer and the sequential
clamps share in their ``plain_layers`` (the form z3, Marabou, export and predict read)."""

from __future__ import annotations

import numpy as np
import torch

from deepsade.network import SkipMLP


def base_as_plain_layers(model: SkipMLP) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The base network of a construction as plain ReLU layers ending in ``[relu(f); relu(-f); relu(x_m);
    relu(-x_m)]`` (``x_m`` the mapped inputs, carried through the hidden layers as two ReLUs), so that an
    enforcement layer after it reads ``f`` and ``x_m`` exactly; returns (layers, mapped). Every weight is a
    stored float32 value, its negation, 0 or 1 (float64 arrays)."""
    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy().astype(np.float64)

    mapped = model.mapped_features.numpy().astype(np.int64)
    m = len(mapped)
    select = np.zeros((m, model.n_inputs))
    select[np.arange(m), mapped] = 1.0
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    for i, layer in enumerate(model.hidden):
        weight, bias = arr(layer.weight), arr(layer.bias)
        widened = np.vstack([weight, select, -select]) if i == 0 else _block_diagonal(weight, np.eye(2 * m))
        layers.append((widened, np.concatenate([bias, np.zeros(2 * m)])))
    n_hidden = model.hidden_sizes[-1]
    last_w, last_b = arr(model.last.weight), arr(model.last.bias)
    w_h, w_s = last_w[:, :n_hidden], last_w[:, n_hidden:]
    base = np.hstack([w_h, w_s, -w_s])  # f from [h; x+; x-]
    carry = np.hstack([np.zeros((2 * m, n_hidden)), np.eye(2 * m)])
    layers.append((np.vstack([base, -base, carry]), np.concatenate([last_b, -last_b, np.zeros(2 * m)])))
    return layers, mapped

def _block_diagonal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + b.shape[0], a.shape[1] + b.shape[1]))
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0]:, a.shape[1]:] = b
    return out

