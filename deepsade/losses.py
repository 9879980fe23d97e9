"""Data losses per task, on network outputs and targets in network units."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def data_loss(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE (regression), BCE on logits (binary, multi-label) or cross-entropy (multiclass)."""
    if task == "regression":
        return F.mse_loss(outputs, targets.to(outputs.dtype))
    if task == "multiclass":
        return F.cross_entropy(outputs, targets.long())
    return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype).reshape(outputs.shape))
