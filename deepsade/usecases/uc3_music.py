"""UC3: music genre (multiclass classification).

Rule: a song by the Beatles must be classified as rock or pop. The paper's 793-song table has no
public copy, so this use case is a generator only: 13 audio attributes with genre-dependent means
(learnable, not trivially: a small MLP reaches roughly 0.8 accuracy) and a 0/1 ``Beatles`` flag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import categorical_from_uniforms, check_n_rows
from .case import Published, UseCase

NAME = "UC3"
CONSTRAINT = "constraints/uc3_music.smt2"
TARGET = "genre"
TARGETS: list[str] = [TARGET]
TASK = "multiclass"
# What this use case reports (test split, "corrected" rows as in the paper): keys of deepsade.metrics.
METRICS: tuple[str, ...] = ("accuracy",)
POSITIVE: str | None = None
REAL_FILE: str | None = None
SETTINGS: dict = {
    "hidden": (50, 30, 10),
    "epochs": 50,
    "batch_size": 5,
    "lr": 0.1,
    "max_step": 0.1,
    "margins": (0.0, 1.0, 2.0),
    "baseline_epochs": 300,
    "skip_features": ("Beatles",),
}

CLASSES: list[str] = ["rock", "pop", "jazz", "classical", "hiphop"]
ALLOWED_FOR_BEATLES: list[str] = ["rock", "pop"]
INPUTS: list[str] = [
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "duration",
    "key",
    "mode",
    "Beatles",
]
COLUMNS: list[str] = INPUTS + [TARGET]
N_SONGS = 793

_CLASS_SHARES = np.array([0.30, 0.25, 0.15, 0.15, 0.15])
_BEATLES_SHARE = 0.10  # of all songs; they are drawn among rock and pop songs only
# Genre means (columns follow CLASSES), the within-genre spread and the valid range of each attribute,
# chosen by hand from typical streaming-service audio features so that genres overlap as in real music.
_CONTINUOUS: dict[str, tuple[list[float], float, float, float, int]] = {
    # attribute: (means per genre, sd, min, max, decimals)
    "danceability": ([0.50, 0.66, 0.55, 0.30, 0.76], 0.13, 0.0, 1.0, 3),
    "energy": ([0.76, 0.66, 0.42, 0.18, 0.68], 0.16, 0.0, 1.0, 3),
    "loudness": ([-6.5, -6.0, -11.0, -19.0, -6.5], 3.5, -40.0, 0.0, 2),
    "speechiness": ([0.05, 0.07, 0.05, 0.04, 0.22], 0.05, 0.0, 1.0, 3),
    "acousticness": ([0.18, 0.27, 0.62, 0.88, 0.17], 0.20, 0.0, 1.0, 3),
    "instrumentalness": ([0.10, 0.03, 0.42, 0.78, 0.03], 0.22, 0.0, 1.0, 3),
    "liveness": ([0.21, 0.17, 0.22, 0.14, 0.20], 0.10, 0.0, 1.0, 3),
    "valence": ([0.52, 0.60, 0.50, 0.26, 0.55], 0.20, 0.0, 1.0, 3),
    "tempo": ([126.0, 118.0, 110.0, 100.0, 96.0], 24.0, 40.0, 220.0, 1),
    "duration": ([235.0, 212.0, 320.0, 410.0, 228.0], 60.0, 60.0, 900.0, 0),
}
_MAJOR_SHARE = np.array([0.70, 0.65, 0.50, 0.70, 0.45])
# Beatles recordings: shorter, quieter and more acoustic than today's rock and pop.
_BEATLES_SHIFT = {"duration": -70.0, "loudness": -3.0, "acousticness": 0.15, "valence": 0.08}
_NOISE_SCALE = 1.15  # widens every spread: a 50-30-10 MLP then scores 0.79-0.81 (5-fold, seeds 0-2)


def generate(n_rows: int = N_SONGS, seed: int = 0) -> pd.DataFrame:
    """Synthetic songs: attributes drawn around genre means; about 10% are Beatles songs (rock or pop)."""
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    genre_idx = categorical_from_uniforms(rng.random(n), np.arange(len(CLASSES)), _CLASS_SHARES)
    rock_or_pop = genre_idx < 2
    beatles = rock_or_pop & (rng.random(n) < _BEATLES_SHARE / _CLASS_SHARES[:2].sum())
    data: dict[str, np.ndarray] = {}
    for col, (means, sd, lo, hi, decimals) in _CONTINUOUS.items():
        values = np.asarray(means)[genre_idx] + _NOISE_SCALE * sd * rng.standard_normal(n)
        values = values + _BEATLES_SHIFT.get(col, 0.0) * beatles
        data[col] = np.round(np.clip(values, lo, hi), decimals)
    data["duration"] = data["duration"].astype(np.int64)
    data["key"] = rng.integers(0, 12, n)
    data["mode"] = (rng.random(n) < _MAJOR_SHARE[genre_idx]).astype(np.int64)
    data["Beatles"] = beatles.astype(np.int64)
    data[TARGET] = np.asarray(CLASSES)[genre_idx]
    return pd.DataFrame({col: data[col] for col in COLUMNS})


def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """There is no public copy of the paper's song table: always None."""
    return None


def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The generated songs (793 by default, as in the paper)."""
    return generate(n_rows if n_rows is not None else N_SONGS, seed)


def premise(df: pd.DataFrame) -> pd.Series:
    """Songs the rule speaks about: the Beatles' (they must be classified as rock or pop)."""
    return df["Beatles"] == 1


def inject_violations(df: pd.DataFrame, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Give up to ``n`` Beatles songs a random genre that is neither rock nor pop (the paper's protocol)."""
    out = df.copy()
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(
        (out["Beatles"] == 1).to_numpy() & out[TARGET].isin(ALLOWED_FOR_BEATLES).to_numpy()
    )
    chosen = rng.choice(eligible, size=min(n, eligible.size), replace=False)
    forbidden = [c for c in CLASSES if c not in ALLOWED_FOR_BEATLES]
    out.iloc[chosen, out.columns.get_loc(TARGET)] = rng.choice(forbidden, size=chosen.size)
    return out


CASE = UseCase(
    name=NAME, constraint=CONSTRAINT, targets=tuple(TARGETS), task=TASK, positive=POSITIVE, metrics=METRICS,
    settings=SETTINGS, generate=generate, load=load, load_real=load_real, real_file=REAL_FILE,
    inject_violations=inject_violations, premise=premise,
    published={
        "deepsade": Published({"accuracy": 0.8011}, "0", (0.0, 0.0), 6_581),
        "sl": Published({"accuracy": 0.8254}, "0.16 rows", (0.401, 0.283), 101),
        "sbr": Published({"accuracy": 0.7652}, "0.16 rows", (0.293, 0.217), 196),
    },
    published_ratio=("sl", 65),
    paper_figures={"tsne_hidden": "Figure 5"},
)
