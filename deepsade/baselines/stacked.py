"""Several copies of one SkipMLP trained side by side, one per penalty weight (lambda).

Every copy starts from the same initial weights and sees the same mini-batches; the training loss
is the sum of the copies' losses, so each copy's gradient is exactly its own. Batched matrix
products make a grid of lambdas cost little more than one model.
"""

from __future__ import annotations

import torch
from torch import nn

from deepsade.network import SkipMLP


class StackedSkipMLP(nn.Module):
    """``copies`` SkipMLPs with stacked weights: ``forward(x)`` maps ``(n, d)`` to ``(copies, n, k)``."""

    def __init__(self, template: SkipMLP, copies: int):
        super().__init__()
        self.template_architecture = template.architecture()
        self.copies = int(copies)
        self.register_buffer("mapped_features", template.mapped_features.clone())
        layers = [*template.hidden, template.last]
        self.weights = nn.ParameterList(
            nn.Parameter(layer.weight.detach().clone().unsqueeze(0).repeat(copies, 1, 1)) for layer in layers
        )
        self.biases = nn.ParameterList(
            nn.Parameter(layer.bias.detach().clone().unsqueeze(0).repeat(copies, 1)) for layer in layers
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, biases = list(self.weights), list(self.biases)  # slicing a ParameterList builds a new module
        h = x
        for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
            h = torch.relu(torch.baddbmm(bias.unsqueeze(1), h.expand(self.copies, -1, -1), weight.transpose(1, 2)))
        skip = x[:, self.mapped_features].expand(self.copies, -1, -1)
        latent = torch.cat([h, skip], dim=-1)
        return torch.baddbmm(biases[-1].unsqueeze(1), latent, weights[-1].transpose(1, 2))

    def state(self) -> list[torch.Tensor]:
        """A detached copy of all stacked parameters (weights then biases)."""
        return [p.detach().clone() for p in [*self.weights, *self.biases]]

    def export(self, copy: int, state: list[torch.Tensor] | None = None) -> SkipMLP:
        """Copy ``copy`` as an ordinary SkipMLP (from ``state`` when given, else the current weights)."""
        tensors = state if state is not None else self.state()
        n_layers = len(self.weights)
        model = SkipMLP.from_architecture(self.template_architecture)
        layers = [*model.hidden, model.last]
        with torch.no_grad():
            for i, layer in enumerate(layers):
                layer.weight.copy_(tensors[i][copy])
                layer.bias.copy_(tensors[n_layers + i][copy])
        return model


def keep_where(best: list[torch.Tensor], current: list[torch.Tensor], improved: torch.Tensor) -> list[torch.Tensor]:
    """Per copy, ``current`` where ``improved`` (shape (copies,)) else ``best``."""
    return [torch.where(improved.view(-1, *([1] * (b.dim() - 1))), c, b) for b, c in zip(best, current, strict=True)]
