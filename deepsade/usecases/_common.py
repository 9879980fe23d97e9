"""Helpers shared by the use-case modules: where the real data lives, and small sampling tools."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

DATA_ENV = "DEEPSADE_DATA"
REPO = Path(__file__).resolve().parents[2]  # the checkout (from a wheel: the folder above site-packages)


def default_data_dir() -> Path | None:
    """The folder holding the real data sets, or None when there is none.

    ``$DEEPSADE_DATA`` wins when set; otherwise ``../shared/data`` beside the repository.
    """
    env = os.environ.get(DATA_ENV)
    # An explicit setting is honoured even when it points nowhere: a user who set it wants no fallback.
    candidate = (
        Path(env).expanduser() if env else REPO.parent / "shared" / "data"
    )
    return candidate if candidate.is_dir() else None


def real_file(name: str | None, data_dir: str | Path | None) -> Path | None:
    """Path of the real file ``name`` inside ``data_dir`` (default: ``default_data_dir()``), or None."""
    if name is None:
        return None
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if folder is None:
        return None
    path = folder / name
    return path if path.is_file() else None


def drop_index_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the unnamed row-index column(s) that pandas reads as ``Unnamed: 0``."""
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed:") or str(c).strip() == ""]
    return df.drop(columns=unnamed)


def subsample(df: pd.DataFrame, n_rows: int | None, seed: int) -> pd.DataFrame:
    """A seeded subset of ``n_rows`` rows (all rows when ``n_rows`` is None or not smaller)."""
    if n_rows is None or n_rows >= len(df):
        return df
    return df.sample(n=n_rows, random_state=seed).reset_index(drop=True)


def check_n_rows(n_rows: int) -> int:
    """Reject sizes a generator cannot honour, with a message a user understands."""
    if int(n_rows) != n_rows or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
    return int(n_rows)


def copula_normals(latent: np.ndarray, loading: float, rng: np.random.Generator) -> np.ndarray:
    """Standard normals whose correlation with the standard-normal ``latent`` is ``loading``.

    Sharing one latent factor across columns gives them the positive correlations real survey data has.
    """
    return loading * latent + np.sqrt(1.0 - loading**2) * rng.standard_normal(latent.shape)


def copula_uniforms(latent: np.ndarray, loading: float, rng: np.random.Generator) -> np.ndarray:
    """Uniforms in (0, 1) correlated with ``latent`` (Gaussian copula), for inverse-CDF draws."""
    return ndtr(copula_normals(latent, loading, rng))


def categorical_from_uniforms(u: np.ndarray, values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: map uniforms to ``values`` with probabilities ``probs`` (normalised here)."""
    cdf = np.cumsum(np.asarray(probs, dtype=float))
    cdf /= cdf[-1]
    # Clip guards against u == 1.0 exactly, which searchsorted would map past the last value.
    return np.asarray(values)[np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)]


def with_missing(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``values`` with a seeded ``rate`` share replaced by NaN, as real CSVs have.

    Numbers become float (NaN needs it); anything else becomes object so that pandas infers strings.
    """
    out = values.astype(float) if np.issubdtype(values.dtype, np.number) else values.astype(object)
    out[rng.random(len(out)) < rate] = np.nan
    return out
