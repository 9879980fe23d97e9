"""Two tiny data sets that go with the example constraint files, for trying the tool in seconds.

- ``TOY_REG`` (``constraints/example_bounds.smt2``): inputs ``x1, x2, x3``, target ``y``; the rule
  is ``0 <= y <= x1``, and about 5% of the rows break it on purpose.
- ``TOY_BIN`` (``constraints/example_implication.smt2``): inputs ``a, b, c``, target ``label`` with
  classes "yes"/"no"; the rule is ``a > 0.7 and b > 0.7 => label is "yes"``, and some rows break it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import check_n_rows
from .case import UseCase

_SMALL_SETTINGS: dict = {
    "hidden": (16, 16),
    "epochs": 10,
    "batch_size": 10,
    "lr": 0.1,
    "max_step": 0.1,
    "margins": (0.0,),
    "baseline_epochs": 10,
    "skip_features": (),
}
VIOLATION_SHARE = 0.05


def generate_regression(n_rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """``y`` is a share of ``x1`` that grows with ``x2`` and shrinks with ``x3``; 5% of rows exceed ``x1``."""
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    # x1 from 0.5: near x1 = 0 the rule 0 <= y <= x1 leaves y less room than the certificate's margin
    x = rng.uniform(np.array([0.5, 0.0, 0.0]), 10.0, size=(n, 3))
    share = 0.2 + 0.06 * x[:, 1] - 0.02 * x[:, 2] + 0.03 * rng.standard_normal(n)
    y = x[:, 0] * np.clip(share, 0.0, 0.95)
    # A few rows over the bound, so the training data itself breaks the rule as real data does.
    over = rng.random(n) < VIOLATION_SHARE
    y = np.where(over, x[:, 0] * rng.uniform(1.05, 1.3, n) + 0.1, y)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y}).round(4)


def generate_binary(n_rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """``label`` is "yes" with a probability rising in ``a + b - c/2``; some rows with a, b > 0.7 say "no"."""
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 3))
    p_yes = 1.0 / (1.0 + np.exp(-6.0 * (x[:, 0] + x[:, 1] - 0.5 * x[:, 2] - 0.75)))
    # Some rows under the rule's premise say "no" anyway, so the training data breaks the rule.
    flipped = (x[:, 0] > 0.7) & (x[:, 1] > 0.7) & (rng.random(n) < 0.15)
    label = np.where((rng.random(n) < p_yes) & ~flipped, "yes", "no")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}).round(4).assign(label=label)


def _toy(name: str, constraint: str, target: str, task: str, positive: str | None,
         generate: Callable[[int, int], pd.DataFrame]) -> UseCase:
    """A toy use case: generated data only (500 rows by default), small settings, no published figures."""

    def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
        return generate(n_rows if n_rows is not None else 500, seed)

    def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
        """Toys have no real file."""
        return None

    metrics = ("mse",) if task == "regression" else ("accuracy",)
    return UseCase(name=name, constraint=constraint, targets=(target,), task=task, positive=positive, metrics=metrics,
                   settings=dict(_SMALL_SETTINGS), generate=generate, load=load, load_real=load_real)


TOY_REG = _toy("TOY_REG", "constraints/example_bounds.smt2", "y", "regression", None, generate_regression)
TOY_BIN = _toy("TOY_BIN", "constraints/example_implication.smt2", "label", "binary", "yes", generate_binary)
CASES: dict[str, UseCase] = {"TOY_REG": TOY_REG, "TOY_BIN": TOY_BIN}
