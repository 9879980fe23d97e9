"""UC4: which digits appear in a strip of four handwritten digits (multi-label classification).

Rule: the digits predicted present must sum to more than 10 (sum over j of j * [score_j > 0] > 10).
The paper used MNIST, which cannot be downloaded here; this uses the 8x8 digits that scikit-learn
ships (``sklearn.datasets.load_digits``, no download), four images side by side per instance.

Pixel columns that are constant over the generated frame are dropped, because the tool rejects
constant columns (they cannot be min-max scaled); which ones go therefore depends on ``n_rows`` and
``seed`` (typically corner and edge pixels that are blank in every image drawn).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from ._common import check_n_rows
from .case import Published, UseCase

NAME = "UC4"
CONSTRAINT = "constraints/uc4_digits.smt2"
TARGETS: list[str] = [f"digit_{d}" for d in range(10)]
TASK = "multilabel"
# What this use case reports (test split, "corrected" rows as in the paper): keys of deepsade.metrics.
METRICS: tuple[str, ...] = ("coherent_accuracy", "flattened_accuracy", "jaccard")
POSITIVE: str | None = None
REAL_FILE: str | None = None
SETTINGS: dict = {
    "hidden": (50, 50, 10),
    "epochs": 60,
    "batch_size": 10,
    "lr": 0.1,
    "max_step": 0.1,
    "margins": (0.0, 1.0, 2.0),
    "baseline_epochs": 40,
    "skip_features": (),
}

N_PER_INSTANCE = 4
HEIGHT, WIDTH = 8, 8 * N_PER_INSTANCE
# Every pixel column before constant ones are dropped, row-major over the 8x32 strip.
PIXELS: list[str] = [f"px_r{r}_c{c}" for r in range(HEIGHT) for c in range(WIDTH)]
DEFAULT_LOAD_ROWS = 5000


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digit images (values 0..16) and their labels, read once."""
    bunch = load_digits()
    return bunch.images.astype(np.int64), bunch.target.astype(np.int64)


def generate(n_rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Strips of four random digit images (8x32 pixels) with ten "digit d appears" 0/1 targets."""
    n = check_n_rows(n_rows)
    images, labels = _digits()
    picks = np.random.default_rng(seed).integers(0, len(labels), size=(n, N_PER_INSTANCE))
    # (n, 4, 8, 8) -> (n, 8, 4, 8): image k's column j lands at strip column 8k + j.
    strips = images[picks].transpose(0, 2, 1, 3).reshape(n, HEIGHT * WIDTH)
    present = np.zeros((n, 10), dtype=np.int64)
    present[np.arange(n)[:, None], labels[picks]] = 1
    frame = pd.DataFrame(np.hstack([strips, present]), columns=PIXELS + TARGETS)
    constant = [c for c in PIXELS if frame[c].nunique() <= 1]
    return frame.drop(columns=constant)


def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """No real file: the digits ship with scikit-learn and ``load`` builds the data from them."""
    return None


def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The digit strips (5,000 by default)."""
    return generate(n_rows if n_rows is not None else DEFAULT_LOAD_ROWS, seed)


CASE = UseCase(
    name=NAME, constraint=CONSTRAINT, targets=tuple(TARGETS), task=TASK, positive=POSITIVE, metrics=METRICS,
    settings=SETTINGS, generate=generate, load=load, load_real=load_real, real_file=REAL_FILE,
    bundled_data="scikit-learn digits",
    bundled_data_source="scikit-learn 8x8 digits, four per strip (usecases.uc4_digits)",
    published={
        "deepsade": Published({"coherent_accuracy": 0.069, "flattened_accuracy": 0.785, "jaccard": 0.628}, "0", None,
                              227_928),
        "ffn": Published({"coherent_accuracy": 0.239, "flattened_accuracy": 0.858, "jaccard": 0.716},
                         "constraint accuracy 0.88", None, 3_216),
    },
    published_ratio=("ffn", 71),
)
