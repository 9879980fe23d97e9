"""UC5: sushi preferences (multi-label classification of a partial ranking).

Each row is one person's full ranking of 10 sushi. The relative order of items 1, 2, 3, 5, 7, 8 is
the input (a 6x6 permutation matrix, 36 binary columns ``in_{item}_{pos}``); the relative order of
items 4, 6, 9, 10 is the target (a 4x4 permutation matrix, 16 binary columns ``out_{item}_{pos}``).
Rule: the predicted 4x4 matrix is a coherent ordering, exactly one positive score per row and column.
The real file is Kamishima's sushi data in PrefLib's SOC format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import check_n_rows, real_file, subsample
from .case import Published, UseCase

NAME = "UC5"
CONSTRAINT = "constraints/uc5_sushi.smt2"
TASK = "multilabel"
# What this use case reports (test split, "corrected" rows as in the paper): keys of deepsade.metrics.
METRICS: tuple[str, ...] = ("coherent_accuracy", "flattened_accuracy", "jaccard")
POSITIVE: str | None = None
REAL_FILE: str | None = "uc5_sushi.soc"
SETTINGS: dict = {
    "hidden": (25, 25, 10),
    "epochs": 40,
    "batch_size": 10,
    "lr": 0.1,
    "max_step": 0.1,
    "margins": (0.0, 1.0, 2.0),
    "baseline_epochs": 40,
    "skip_features": (),
}

N_ITEMS = 10
INPUT_ITEMS: tuple[int, ...] = (1, 2, 3, 5, 7, 8)
OUTPUT_ITEMS: tuple[int, ...] = (4, 6, 9, 10)
INPUTS: list[str] = [f"in_{i}_{p}" for i in INPUT_ITEMS for p in range(1, len(INPUT_ITEMS) + 1)]
TARGETS: list[str] = [f"out_{i}_{p}" for i in OUTPUT_ITEMS for p in range(1, len(OUTPUT_ITEMS) + 1)]
COLUMNS: list[str] = INPUTS + TARGETS
N_ORDERINGS = 5000

# A mixture of three Plackett-Luce models fitted once (EM with MM steps) on the real uc5_sushi.soc and
# hard-coded here: log-utilities of items 1..10 per kind of eater (best item at 0) and their shares.
# A mixture rather than one model because the kind of eater links the input order to the output order,
# which is what a model can learn (one Plackett-Luce model makes the two blocks nearly independent).
_LOG_UTILITY = np.array(
    [  # items: 1     2      3      4      5      6      7      8      9     10
        [-2.38, -0.91, -2.38, -3.30, -2.61, -2.63, 0.00, -1.84, -3.06, -2.01],
        [-0.66, -0.73, -0.51, -1.57, -1.15, -0.81, -0.91, -0.89, -1.30, 0.00],
        [-1.72, -1.49, -2.28, -0.15, -0.82, -3.04, 0.00, -2.17, -3.51, -1.82],
    ]
)
_SHARES = np.array([0.351, 0.254, 0.395])


def rankings_to_frame(rankings: np.ndarray) -> pd.DataFrame:
    """Turn full rankings (rows of item numbers 1..10, best first) into the 36 + 16 binary columns."""
    rankings = np.asarray(rankings, dtype=np.int64)
    if rankings.ndim != 2 or rankings.shape[1] != N_ITEMS:
        raise ValueError(f"expected rankings of shape (n, {N_ITEMS}), got {rankings.shape}")
    if not (np.sort(rankings, axis=1) == np.arange(1, N_ITEMS + 1)).all():
        raise ValueError(f"every ranking must order the items 1..{N_ITEMS} exactly once")
    position = np.argsort(rankings, axis=1)  # position[r, item - 1] = place of item in ranking r
    blocks = []
    for items in (INPUT_ITEMS, OUTPUT_ITEMS):
        places = position[:, np.asarray(items) - 1]
        relative = np.argsort(np.argsort(places, axis=1), axis=1)  # 0 = best among this block
        # one_hot[r, i, p] = 1 when item i is p-th among the block; flattened item-major like the names.
        blocks.append((relative[:, :, None] == np.arange(len(items))).reshape(len(rankings), -1))
    return pd.DataFrame(np.hstack(blocks).astype(np.int64), columns=COLUMNS)


def read_soc(path: str | Path) -> np.ndarray:
    """Read a PrefLib SOC file into one ranking per voter (lines with count k are repeated k times)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    n_items = int(lines[0])
    # Skip the item names and the "voters,sum,distinct" line.
    rows = np.array([[int(v) for v in line.split(",")] for line in lines[n_items + 2 :]], dtype=np.int64)
    return np.repeat(rows[:, 1:], rows[:, 0], axis=0)


def generate(n_rows: int = N_ORDERINGS, seed: int = 0) -> pd.DataFrame:
    """Rankings drawn from a mixture of three Plackett-Luce models fitted to the sushi data."""
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    utility = _LOG_UTILITY[rng.choice(len(_SHARES), size=n, p=_SHARES)]
    # Gumbel trick: sorting log-utility plus Gumbel noise draws an exact Plackett-Luce ranking.
    rankings = np.argsort(-(utility + rng.gumbel(size=(n, N_ITEMS))), axis=1) + 1
    return rankings_to_frame(rankings)


def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """The 5,000 real orderings as binary columns, or None when the file is absent."""
    path = real_file(REAL_FILE, data_dir)
    if path is None:
        return None
    return rankings_to_frame(read_soc(path))


def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Real data when present (a seeded subset when ``n_rows`` is smaller), else ``generate``."""
    real = load_real(data_dir)
    if real is not None:
        return subsample(real, n_rows, seed)
    return generate(n_rows if n_rows is not None else N_ORDERINGS, seed)


CASE = UseCase(
    name=NAME, constraint=CONSTRAINT, targets=tuple(TARGETS), task=TASK, positive=POSITIVE, metrics=METRICS,
    settings=SETTINGS, generate=generate, load=load, load_real=load_real, real_file=REAL_FILE,
    published={
        "deepsade": Published({"coherent_accuracy": 0.111, "flattened_accuracy": 0.672, "jaccard": 0.259}, "0", None,
                              17_587),
        "sl": Published({"coherent_accuracy": 0.041, "flattened_accuracy": 0.632, "jaccard": 0.181}, "0", None, 298),
    },
    published_ratio=("sl", 59),
    paper_figures={"lambda_test_loss": "Figure 2"},
)
