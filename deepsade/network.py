"""The network: an MLP with ReLU hidden layers whose last layer reads ``[h; s]``.

``h`` is the last hidden layer's activation and ``s`` the mapped (skip) input features, the ones
the constraint mentions. Output ``y = W [h; s] + b``; only ``W, b`` are constrained by the solver.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SkipMLP(nn.Module):
    """ReLU MLP with identity skip connections from ``mapped_features`` into the last layer."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int]):
        super().__init__()
        if not hidden:
            raise ValueError("at least one hidden layer is needed")
        self.n_inputs = int(n_inputs)
        self.hidden_sizes = [int(h) for h in hidden]
        self.n_outputs = int(n_outputs)
        self.register_buffer("mapped_features", torch.as_tensor(list(mapped_features), dtype=torch.long))
        sizes = [self.n_inputs, *self.hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        self.last = nn.Linear(self.hidden_sizes[-1] + len(self.mapped_features), self.n_outputs)
        for layer in self.hidden:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")

    @property
    def n_latent(self) -> int:
        return self.last.in_features

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """``[h; s]``: what the last layer reads."""
        h = x
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return torch.cat([h, x[:, self.mapped_features]], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.latent(x))

    def architecture(self) -> dict:
        return {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden_sizes,
            "n_outputs": self.n_outputs,
            "mapped_features": self.mapped_features.tolist(),
        }

    @classmethod
    def from_architecture(cls, arch: dict) -> SkipMLP:
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"])

    def hidden_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.hidden for p in layer.parameters()]
