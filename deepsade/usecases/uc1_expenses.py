"""UC1: household expenses (multi-target regression).

Five expense targets must sum to at most the household income, and going-out spending must stay
within 5% of it. The real file is the Family Income and Expenditure survey table the DeepSaDe
paper used; ``generate`` builds a stand-in with the same columns for runs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import (
    categorical_from_uniforms,
    check_n_rows,
    copula_normals,
    copula_uniforms,
    drop_index_columns,
    real_file,
    subsample,
)
from .case import Published, UseCase

NAME = "UC1"
CONSTRAINT = "constraints/uc1_expenses.smt2"
INCOME = "Total Household Income"
TARGETS: list[str] = [
    "All_Food_Expenses",
    "Going_Out_Expenses",
    "Shopping_Expenses",
    "Necessary_Expenses",
    "Miscellaneous_Expenses",
]
TASK = "regression"
# What this use case reports (test split, "corrected" rows as in the paper): keys of deepsade.metrics.
METRICS: tuple[str, ...] = ("mse",)
POSITIVE: str | None = None
REAL_FILE: str | None = "uc1_expenses.csv"
SETTINGS: dict = {
    "hidden": (50, 50, 14),
    "epochs": 5,
    "batch_size": 5,
    "lr": 0.1,
    "max_step": 0.1,
    # The paper's margin is 0.1 x max(label), so it is relative rather than absolute.
    "margins": (0.1,),
    "margin_relative_to_max_label": True,
    "baseline_epochs": 10,
    "skip_features": (INCOME,),
}

INPUTS: list[str] = [
    "Number of Television",
    "Number of Car, Jeep, Van",
    "Number of Stove with Oven/Gas Range",
    "House Floor Area",
    "House Age",
    "Number of bedrooms",
    "Electricity",
    "Total Number of Family members",
    "Total number of family members employed",
    "Household Head Sex",
    "Household Head Age",
    "Agricultural Household indicator",
    INCOME,
]
COLUMNS: list[str] = INPUTS + TARGETS

# ---------------------------------------------------------------------------------------------
# Constants measured once on the real uc1_expenses.csv (41,417 rows) and hard-coded here so the
# generator needs no data: value shares of the small-count columns, log1p mean/std and range of the
# wider integer columns, and least-squares fits of log income and log expenses.
# Each column also loads on one latent "wealth" factor, reproducing the survey's rank correlations.
# ---------------------------------------------------------------------------------------------
_DISCRETE: dict[str, tuple[list[float], float]] = {
    # column: (share of value 0, 1, 2, ...; loading on wealth)
    "Number of Television": ([0.2588, 0.6533, 0.0704, 0.0137, 0.0028, 0.0008, 0.0002], 0.6),
    "Number of Car, Jeep, Van": ([0.9383, 0.0504, 0.0092, 0.0016, 0.0004, 0.0002], 0.45),
    "Number of Stove with Oven/Gas Range": ([0.8709, 0.1256, 0.0032, 0.0003], 0.45),
    "Number of bedrooms": (
        [0.0949, 0.3243, 0.3727, 0.1466, 0.0446, 0.0112, 0.0038, 0.0010, 0.0007, 0.0003],
        0.5,
    ),
    "Electricity": ([0.1095, 0.8905], 0.5),
    "Total number of family members employed": (
        [0.2767, 0.3691, 0.2239, 0.0860, 0.0307, 0.0099, 0.0028, 0.0008, 0.0003],
        0.2,
    ),
    "Agricultural Household indicator": ([0.6768, 0.2176, 0.1055], -0.3),
}
_LOG1P: dict[str, tuple[float, float, int, int, float]] = {
    # column: (mean of log1p, std of log1p, min, max, loading on wealth)
    "House Floor Area": (3.7452, 0.7264, 5, 998, 0.5),
    "House Age": (2.7904, 0.7965, 0, 200, 0.15),
    "Total Number of Family members": (1.6447, 0.4207, 1, 26, 0.1),
    "Household Head Age": (3.9194, 0.2844, 9, 99, 0.05),
}
_MALE_SHARE = 32376 / 41417
# log(income) = intercept + sum(coef * feature) + N(0, sd); log1p for the four wide columns, sex as male=1.
_INCOME_FIT: dict[str, float] = {
    "Number of Television": 0.325,
    "Number of Car, Jeep, Van": 0.382,
    "Number of Stove with Oven/Gas Range": 0.340,
    "House Floor Area": 0.171,
    "House Age": 0.050,
    "Number of bedrooms": 0.083,
    "Electricity": 0.215,
    "Total Number of Family members": 0.327,
    "Total number of family members employed": 0.111,
    "Household Head Sex": -0.059,
    "Household Head Age": -0.090,
    "Agricultural Household indicator": 0.062,
}
_INCOME_INTERCEPT, _INCOME_SD, _INCOME_RANGE = 1.092, 0.512, (1.1285, 198.4838)
# log(expense + 0.05) = a + b * log(income) + c * log(family members) + residual (sd, correlation below).
_EXPENSE_FIT = np.array(
    [  # a, b, c, residual sd
        [0.7994, 0.4370, 0.4074, 0.2640],
        [-3.4611, 1.0823, 0.0895, 1.0354],
        [-2.8650, 0.6767, 0.1810, 0.7229],
        [-1.4338, 1.0849, -0.1545, 0.4482],
        [-3.0440, 1.0477, 0.0785, 0.5614],
    ]
)
_EXPENSE_RESID_CORR = np.array(
    [
        [1.00, 0.20, 0.16, 0.07, 0.13],
        [0.20, 1.00, 0.12, 0.17, 0.10],
        [0.16, 0.12, 1.00, -0.02, 0.16],
        [0.07, 0.17, -0.02, 1.00, 0.12],
        [0.13, 0.10, 0.16, 0.12, 1.00],
    ]
)
_EXPENSE_MAX = np.array([238.3719, 72.5566, 19.1756, 110.5419, 54.2444])


def generate(n_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Synthetic households with the real file's columns, units and rough marginals.

    Expenses follow income with a slope below one for food, so poor households overspend their
    income as in the survey (where 85% of rows break at least one rule).
    """
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    wealth = rng.standard_normal(n)
    data: dict[str, np.ndarray] = {}
    for col, (probs, loading) in _DISCRETE.items():
        u = copula_uniforms(wealth, loading, rng)
        data[col] = categorical_from_uniforms(u, np.arange(len(probs)), np.array(probs)).astype(np.int64)
    for col, (mu, sd, lo, hi, loading) in _LOG1P.items():
        z = copula_normals(wealth, loading, rng)
        data[col] = np.clip(np.rint(np.expm1(mu + sd * z)), lo, hi).astype(np.int64)
    # Nobody employed beyond the household's size.
    employed = "Total number of family members employed"
    data[employed] = np.minimum(data[employed], data["Total Number of Family members"])
    male = copula_uniforms(wealth, 0.1, rng) < _MALE_SHARE
    data["Household Head Sex"] = np.where(male, "Male", "Female")

    log_income = _INCOME_INTERCEPT + _INCOME_SD * rng.standard_normal(n)
    for col, coef in _INCOME_FIT.items():
        if col == "Household Head Sex":
            feature = male.astype(float)
        elif col in _LOG1P:
            feature = np.log1p(data[col])
        else:
            feature = data[col].astype(float)
        log_income += coef * feature
    income = np.clip(np.exp(log_income), *_INCOME_RANGE)
    data[INCOME] = np.round(income, 4)

    a, b, c, sd = _EXPENSE_FIT.T
    resid = rng.standard_normal((n, len(TARGETS))) @ np.linalg.cholesky(_EXPENSE_RESID_CORR).T
    log_fam = np.log(data["Total Number of Family members"])[:, None]
    log_exp = a + b * np.log(income)[:, None] + c * log_fam + sd * resid
    expenses = np.clip(np.exp(log_exp) - 0.05, 0.0, _EXPENSE_MAX)
    for j, col in enumerate(TARGETS):
        data[col] = np.round(expenses[:, j], 4)
    return pd.DataFrame({col: data[col] for col in COLUMNS})


def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """The real survey table without its row-index column, or None when the file is absent."""
    path = real_file(REAL_FILE, data_dir)
    if path is None:
        return None
    return drop_index_columns(pd.read_csv(path))


def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Real data when present (a seeded subset when ``n_rows`` is smaller), else ``generate``."""
    real = load_real(data_dir)
    if real is not None:
        return subsample(real, n_rows, seed)
    return generate(n_rows if n_rows is not None else 2000, seed)


CASE = UseCase(
    name=NAME, constraint=CONSTRAINT, targets=tuple(TARGETS), task=TASK, positive=POSITIVE, metrics=METRICS,
    settings=SETTINGS, generate=generate, load=load, load_real=load_real, real_file=REAL_FILE,
    published={
        "deepsade": Published({"mse": 38.36}, "0", (0.0, 0.0), 102_342),
        "reg": Published({"mse": 30.51}, "538 rows", (0.978, 0.678), 227),
    },
    published_ratio=("reg", 450),
)
