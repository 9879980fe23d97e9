"""Shared fixtures: small frames and constraint files built in the test itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPSADE_DATA", REPO.parent / "shared" / "data"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "deepsade.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=timeout)


@pytest.fixture(scope="module")
def encoding():
    """Inputs x1..x3 and regression targets y1, y2, each spanning exactly [0, 1]: scaled units equal raw
    units, so hand-written constraints read the same on both sides."""
    from deepsade.ingest import prepare

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.random(20), "x2": rng.random(20), "x3": rng.random(20),
                          "y1": rng.random(20), "y2": rng.random(20)})
    frame.loc[0, ["x1", "x2", "y1", "y2"]] = 0.0
    frame.loc[1, ["x1", "x2", "y1", "y2"]] = 1.0
    return prepare(frame, ["y1", "y2"]).encoding


@pytest.fixture
def loan_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    income = rng.uniform(1000, 20000, n).round()
    credit = rng.integers(0, 2, n).astype(float)
    area = rng.choice(["Urban", "Rural", "Semiurban"], n)
    status = np.where((credit == 1) | (income > 9000), "Y", "N")
    frame = pd.DataFrame({"ApplicantIncome": income, "Credit_History": credit, "Property_Area": area,
                          "Loan_Status": status})
    frame.loc[3, "Credit_History"] = np.nan
    return frame


@pytest.fixture
def loan_constraint(tmp_path: Path) -> Path:
    path = tmp_path / "loan.smt2"
    path.write_text(
        "; deny low income without credit history\n"
        "(declare-const ApplicantIncome Real)\n(declare-const Credit_History Real)\n(declare-const Loan_Status Real)\n"
        "(assert (=> (and (< ApplicantIncome 5000) (= Credit_History 0)) (< Loan_Status 0)))\n"
    )
    return path
