"""The network under verification as plain arrays: float64 copies of the stored float32 weights.

Picklable and torch-free, so worker processes that only verify never import torch. Evaluation is
either float64 (``forward``, what prediction computes) or exact rational (``forward_exact``, the
semantics the guarantee uses)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from deepsade.verification.relaxation import Relaxation, lower_bound, output_lower_bound, propagate

if TYPE_CHECKING:  # torch stays out of worker processes that only verify
    from deepsade.network import SkipMLP


@dataclass
class NetworkWeights:
    """A SkipMLP's weights as float64 copies of the stored float32 values (picklable, torch-free)."""

    hidden: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per hidden layer
    last_weight: np.ndarray  # (n_outputs, last hidden size + len(mapped))
    last_bias: np.ndarray
    mapped: np.ndarray  # input indices copied into the last layer (skip connections)
    # a construction: how many hidden layers its base network has; the next hidden layer outputs
    # [relu(f); relu(-f); relu(x_m); relu(-x_m)] (``deepsade.verification.abstraction``). None otherwise
    base_layers: int | None = None
    _exact: list[tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_model(cls, model: SkipMLP) -> NetworkWeights:
        """Copy the weights of ``model`` (float32 values, held exactly in float64)."""
        def arr(t: Any) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float64)
        # --- constructions: an enforcement layer is verified as the plain ReLU network it equals ---
        if hasattr(model, "plain_layers"):
            hidden, last_weight, last_bias, mapped = model.plain_layers()
            return cls(hidden=hidden, last_weight=last_weight, last_bias=last_bias, mapped=mapped,
                       base_layers=len(model.hidden))
        # --- end constructions ---
        return cls(hidden=[(arr(layer.weight), arr(layer.bias)) for layer in model.hidden],
                   last_weight=arr(model.last.weight), last_bias=arr(model.last.bias),
                   mapped=model.mapped_features.detach().cpu().numpy().astype(np.int64))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the exact-rational cache: every Marabou query sends the weights to its child process
        (``deadline``), and the Fractions cost more to pickle than the arrays (rebuilt on demand)."""
        return {**self.__dict__, "_exact": None}

    @property
    def n_inputs(self) -> int:
        """Number of (scaled) input features."""
        return int(self.hidden[0][0].shape[1])

    @property
    def n_outputs(self) -> int:
        """Number of outputs (scaled regression targets or classifier scores)."""
        return int(self.last_weight.shape[0])

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for scaled inputs of shape (n, d), computed in float64."""
        x = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
        h = x
        for weight, bias in self.hidden:
            h = np.maximum(h @ weight.T + bias, 0.0)
        return np.concatenate([h, x[:, self.mapped]], axis=1) @ self.last_weight.T + self.last_bias

    def exact_layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) per layer, hidden layers then the last one, as Fraction object arrays (cached)."""
        if self._exact is None:
            def frac(a: np.ndarray) -> np.ndarray:
                return np.array([Fraction(v) for v in a.ravel().tolist()], dtype=object).reshape(a.shape)
            self._exact = [(frac(w), frac(b)) for w, b in [*self.hidden, (self.last_weight, self.last_bias)]]
        return self._exact

    def forward_exact(self, point: Sequence[Fraction]) -> list[Fraction]:
        """Outputs at one input point in exact rational arithmetic (the semantics the guarantee uses)."""
        x = np.array([Fraction(v) for v in point], dtype=object)
        layers = self.exact_layers()
        h = x
        zero = Fraction(0)
        for weight, bias in layers[:-1]:
            h = np.array([max(v, zero) for v in weight.dot(h) + bias], dtype=object)
        weight, bias = layers[-1]
        latent = np.concatenate([h, x[self.mapped]])
        return list(weight.dot(latent) + bias)

    # ---- sound bounds (deepsade.verification.relaxation) ----
    def preactivation_bounds(self, lower: np.ndarray, upper: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Sound bounds of every hidden pre-activation over the box, per hidden layer (float64, padded outwards)."""
        return self.propagate(lower, upper).preactivation

    def propagate(self, lower: np.ndarray, upper: np.ndarray) -> Relaxation:
        """Bounds of every hidden pre-activation over the input box and the ReLU relaxations they give
        (see ``relaxation.propagate``)."""
        return propagate(self, lower, upper)

    def lower_bound(self, relaxation: Relaxation, coefficients: np.ndarray, constant: np.ndarray, layer: int,
                    direct: np.ndarray | None = None) -> np.ndarray:
        """Sound lower bounds of linear forms of a hidden layer's input (see ``relaxation.lower_bound``)."""
        return lower_bound(self, relaxation, coefficients, constant, layer, direct)

    def output_lower_bound(self, relaxation: Relaxation, output_coefficients: np.ndarray,
                           input_coefficients: np.ndarray, constant: np.ndarray) -> np.ndarray:
        """Sound lower bounds of linear forms of outputs and inputs (see ``relaxation.output_lower_bound``)."""
        return output_lower_bound(self, relaxation, output_coefficients, input_coefficients, constant)
