"""UC2: loan approval (binary classification).

Rule: an applicant with income below 5000 and no credit history must be denied. The real file is
the public loan-prediction table (614 applications, categorical columns, missing values as found);
``generate`` builds a stand-in with the same columns for runs without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ._common import categorical_from_uniforms, check_n_rows, real_file, subsample, with_missing
from .case import Published, UseCase

NAME = "UC2"
CONSTRAINT = "constraints/uc2_loan.smt2"
TARGET = "Loan_Status"
TARGETS: list[str] = [TARGET]
TASK = "binary"
# What this use case reports (test split, "corrected" rows as in the paper): keys of deepsade.metrics.
METRICS: tuple[str, ...] = ("accuracy",)
POSITIVE: str | None = "Y"
REAL_FILE: str | None = "uc2_loan.csv"
SETTINGS: dict = {
    "hidden": (50, 30, 10),
    "epochs": 50,
    "batch_size": 5,
    "lr": 0.1,
    "max_step": 0.1,
    "margins": (0.0, 1.0, 2.0),
    "baseline_epochs": 400,
    "skip_features": ("ApplicantIncome", "Credit_History"),
}

COLUMNS: list[str] = [
    "Gender",
    "Married",
    "Dependents",
    "Education",
    "Self_Employed",
    "ApplicantIncome",
    "CoapplicantIncome",
    "LoanAmount",
    "Loan_Amount_Term",
    "Credit_History",
    "Property_Area",
    TARGET,
]
# Read as text so that "0", "1", "2", "3+" stay strings and never turn into numbers.
_STRING_COLUMNS = ["Gender", "Married", "Dependents", "Education", "Self_Employed", "Property_Area", TARGET]
_INCOME_LIMIT = 5000

# ---------------------------------------------------------------------------------------------
# Constants measured once on the real uc2_loan.csv (614 rows) and hard-coded here: value shares,
# missing-value rates, log-normal fits of the money columns and approval rates by credit history.
# ---------------------------------------------------------------------------------------------
_MISSING = {
    "Gender": 13 / 614,
    "Married": 3 / 614,
    "Dependents": 15 / 614,
    "Self_Employed": 32 / 614,
    "LoanAmount": 22 / 614,
    "Loan_Amount_Term": 14 / 614,
    "Credit_History": 50 / 614,
}
_TERMS = np.array([360.0, 180.0, 480.0, 300.0, 240.0, 84.0, 120.0, 60.0, 36.0, 12.0])
_TERM_SHARES = np.array([512, 44, 15, 13, 4, 4, 3, 2, 2, 1], dtype=float)
_DEPENDENTS = np.array(["0", "1", "2", "3+"])
_DEPENDENT_SHARES = {  # by marital status, from the real cross-table
    "No": np.array([171, 23, 8, 7], dtype=float),
    "Yes": np.array([174, 79, 93, 44], dtype=float),
}
_AREAS = np.array(["Semiurban", "Urban", "Rural"])
_AREA_SHARES = np.array([0.3795, 0.3290, 0.2915])
_APPLICANT_LOG = (8.25, 0.645, 150, 81000)  # median-matching log mean, sd of log income; observed range
_COAPPLICANT_ZERO, _COAPPLICANT_LOG = 0.445, (7.724, 0.691)
# log(LoanAmount) = mean + slope * (log total income - its mean) + N(0, sd): correlation 0.65 in the file.
_LOAN_LOG = (4.857, 0.55, 0.38, 8.669, 9, 700)  # mean, slope, sd, mean log total income, range
_CREDIT_SHARE = 475 / 564  # share of 1.0 among known credit histories
# Approval log-odds by credit history (1, 0, unknown): 80%, 8% and 74% approved in the file.
_APPROVAL_LOGIT = {1.0: 1.386, 0.0: -2.442, None: 1.046}


def _logit_shift(area: np.ndarray, education: np.ndarray) -> np.ndarray:
    """Small effects of area and education on approval, as in the real cross-tables."""
    return 0.5 * (area == "Semiurban") - 0.3 * (area == "Rural") - 0.4 * (education == "Not Graduate")


def generate(n_rows: int = 614, seed: int = 0) -> pd.DataFrame:
    """Synthetic applications with the real file's columns, codes, marginals and missing values.

    Approval mostly follows credit history, as in the real data.
    """
    n = check_n_rows(n_rows)
    rng = np.random.default_rng(seed)
    u = rng.random((n, 6))
    gender = categorical_from_uniforms(u[:, 0], np.array(["Male", "Female"]), np.array([0.8137, 0.1863]))
    married = categorical_from_uniforms(u[:, 1], np.array(["Yes", "No"]), np.array([0.6514, 0.3486]))
    dependents = np.where(
        married == "Yes",
        categorical_from_uniforms(u[:, 2], _DEPENDENTS, _DEPENDENT_SHARES["Yes"]),
        categorical_from_uniforms(u[:, 2], _DEPENDENTS, _DEPENDENT_SHARES["No"]),
    )
    education = np.where(u[:, 3] < 0.7818, "Graduate", "Not Graduate")
    self_employed = np.where(u[:, 4] < 0.1410, "Yes", "No")
    area = categorical_from_uniforms(u[:, 5], _AREAS, _AREA_SHARES)

    mu, sd, lo, hi = _APPLICANT_LOG
    # Graduates earn a little more (-0.12 re-centres the 0.15 bonus given to 78% of applicants),
    # which also ties the label weakly to income through education.
    graduate_bonus = 0.15 * (education == "Graduate") - 0.12
    applicant = np.clip(np.rint(np.exp(mu + graduate_bonus + sd * rng.standard_normal(n))), lo, hi)
    co_mu, co_sd = _COAPPLICANT_LOG
    coapplicant = np.where(
        rng.random(n) < _COAPPLICANT_ZERO, 0.0, np.rint(np.exp(co_mu + co_sd * rng.standard_normal(n)))
    )
    l_mu, slope, l_sd, inc_mu, l_lo, l_hi = _LOAN_LOG
    log_total = np.log(applicant + coapplicant)
    loan = np.clip(
        np.rint(np.exp(l_mu + slope * (log_total - inc_mu) + l_sd * rng.standard_normal(n))), l_lo, l_hi
    )
    term = categorical_from_uniforms(rng.random(n), _TERMS, _TERM_SHARES)

    credit = np.where(rng.random(n) < _CREDIT_SHARE, 1.0, 0.0)
    credit_known = rng.random(n) >= _MISSING["Credit_History"]
    logit = np.where(credit == 1.0, _APPROVAL_LOGIT[1.0], _APPROVAL_LOGIT[0.0])
    logit = np.where(credit_known, logit, _APPROVAL_LOGIT[None]) + _logit_shift(area, education)
    status = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(-logit)), "Y", "N")

    return pd.DataFrame(
        {
            "Gender": with_missing(gender, _MISSING["Gender"], rng),
            "Married": with_missing(married, _MISSING["Married"], rng),
            "Dependents": with_missing(dependents, _MISSING["Dependents"], rng),
            "Education": education,
            "Self_Employed": with_missing(self_employed, _MISSING["Self_Employed"], rng),
            "ApplicantIncome": applicant.astype(np.int64),
            "CoapplicantIncome": coapplicant,
            "LoanAmount": with_missing(loan, _MISSING["LoanAmount"], rng),
            "Loan_Amount_Term": with_missing(term, _MISSING["Loan_Amount_Term"], rng),
            "Credit_History": np.where(credit_known, credit, np.nan),
            "Property_Area": area,
            TARGET: status,
        }
    )


def load_real(data_dir: str | Path | None = None) -> pd.DataFrame | None:
    """The real loan table with missing values kept, or None when the file is absent."""
    path = real_file(REAL_FILE, data_dir)
    if path is None:
        return None
    frame = pd.read_csv(path, dtype={c: "str" for c in _STRING_COLUMNS})
    return frame.astype(
        {"CoapplicantIncome": float, "LoanAmount": float, "Loan_Amount_Term": float, "Credit_History": float}
    )


def load(data_dir: str | Path | None = None, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Real data when present (a seeded subset when ``n_rows`` is smaller), else ``generate``."""
    real = load_real(data_dir)
    if real is not None:
        return subsample(real, n_rows, seed)
    return generate(n_rows if n_rows is not None else 614, seed)


def premise(df: pd.DataFrame) -> pd.Series:
    """Rows whose inputs fall under the rule: income below 5000 and no credit history."""
    return (df["ApplicantIncome"] < _INCOME_LIMIT) & (df["Credit_History"] == 0)


def inject_violations(df: pd.DataFrame, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Approve up to ``n`` denied applicants that the rule says must be denied (the paper's protocol).

    Only complete rows are eligible: the protocol drops incomplete rows first, so this is the same
    as injecting after the drop, and every injected violation survives the tool's own dropping.
    """
    out = df.copy()
    eligible = np.flatnonzero((premise(out) & (out[TARGET] == "N") & out.notna().all(axis=1)).to_numpy())
    chosen = np.random.default_rng(seed).choice(eligible, size=min(n, eligible.size), replace=False)
    out.iloc[chosen, out.columns.get_loc(TARGET)] = "Y"
    return out


CASE = UseCase(
    name=NAME, constraint=CONSTRAINT, targets=tuple(TARGETS), task=TASK, positive=POSITIVE, metrics=METRICS,
    settings=SETTINGS, generate=generate, load=load, load_real=load_real, real_file=REAL_FILE,
    inject_violations=inject_violations, premise=premise,
    published={
        "deepsade": Published({"accuracy": 0.8005}, "0", (0.0, 0.0), 448),
        "sl": Published({"accuracy": 0.8018}, "0", (0.002, 0.0), 45.5),
        "sbr": Published({"accuracy": 0.8005}, "0", (0.003, 0.001), 45.5),
    },
    published_ratio=("sl", 10),
)
