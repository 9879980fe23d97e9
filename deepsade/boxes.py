"""The extreme values of linear forms over a box: the closed form behind every interval check.

For ``a . z`` with ``z`` in ``[low, high]``, the maximum takes ``high`` where ``a > 0`` and ``low``
elsewhere. Vectorised over any leading dimensions of ``coefficients``; exact when the arrays hold
Fractions (object dtype)."""

from __future__ import annotations

import numpy as np


def max_over_box(coefficients: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``max a . z`` over ``low <= z <= high`` for each row ``a`` in the last axis of ``coefficients``."""
    coefficients = np.asarray(coefficients)
    return np.maximum(coefficients * low, coefficients * high).sum(axis=-1)


def min_over_box(coefficients: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``min a . z`` over ``low <= z <= high`` for each row ``a`` in the last axis of ``coefficients``."""
    coefficients = np.asarray(coefficients)
    return np.minimum(coefficients * low, coefficients * high).sum(axis=-1)
