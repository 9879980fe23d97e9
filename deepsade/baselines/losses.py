"""Data losses per task, per row, for outputs of shape ``(..., n, k)`` (leading dims: side-by-side models).

- regression: mean squared error over the targets (scaled units);
- binary, multilabel: binary cross-entropy with logits, averaged over the labels;
- multiclass: cross-entropy of the softmax over the class scores.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepsade.data import TASKS


def target_tensor(task: str, targets: np.ndarray) -> torch.Tensor:
    """Targets in network units as a tensor: float (n, k) for most tasks, long (n,) for multiclass."""
    if task == "multiclass":
        return torch.tensor(np.asarray(targets), dtype=torch.long)
    return torch.tensor(np.asarray(targets, dtype=np.float32).reshape(len(targets), -1))


def data_loss(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss per row, shape ``outputs.shape[:-1]``."""
    if task == "regression":
        return ((outputs - targets) ** 2).mean(-1)
    if task in ("binary", "multilabel"):
        return F.binary_cross_entropy_with_logits(outputs, targets.expand_as(outputs), reduction="none").mean(-1)
    if task == "multiclass":
        log_p = F.log_softmax(outputs, dim=-1)
        return -torch.gather(log_p, -1, targets.expand(outputs.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
