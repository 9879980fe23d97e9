"""scripts/probe_defaults.py: where patience would stop a run, and the per-setting summary."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from probe_defaults import ALTERNATIVES, patience_stop, summarise  # noqa: E402


def test_patience_stops_p_epochs_after_the_last_strict_improvement() -> None:
    losses = [3.0, 2.0, 1.0, 1.0, 1.5, 0.9, 1.2, 1.1, 1.0, 0.95, 0.91]
    assert patience_stop(losses, 3) == 9  # best at 6 (epochs 4, 5 wait 1 and 2), then 7, 8, 9 without
    assert patience_stop(losses, 2) == 5  # best at 3, epochs 4 and 5 do not improve (equal is not better)
    assert patience_stop(losses, 5) == 11
    assert patience_stop(losses, 6) is None
    assert patience_stop([], 5) is None


def test_every_alternative_changes_one_thing() -> None:
    assert ALTERNATIVES[0].name == "default"
    assert ALTERNATIVES[0].flags == ("--batch-size", "5", "--patience", "0")  # pinned: the defaults it was measured on
    for alternative in ALTERNATIVES[1:]:
        assert (alternative.patience is None) != (not alternative.flags)
        assert len(alternative.flags) % 2 == 0  # flags and their values
        assert len(alternative.flags) <= 2 or "+" in alternative.name  # one at a time, unless named a combination


def test_summary_compares_with_the_default_per_problem() -> None:
    runs = pd.DataFrame([
        {"problem": "a", "setting": "default", "topic": "defaults", "metric": "accuracy", "seed": 1, "quality": 0.90,
         "certificate": "certified", "violations": 0, "train_s": 10.0, "epoch_s": 8.0, "best_epoch": 7, "epochs_run": 50},
        {"problem": "a", "setting": "default", "topic": "defaults", "metric": "accuracy", "seed": 2, "quality": 0.80,
         "certificate": "certified", "violations": 0, "train_s": 14.0, "epoch_s": 8.0, "best_epoch": 9, "epochs_run": 50},
        {"problem": "a", "setting": "lr=0.03", "topic": "t", "metric": "accuracy", "seed": 1, "quality": 0.95,
         "certificate": "certified", "violations": 0, "train_s": 6.0, "epoch_s": 4.0, "best_epoch": 3, "epochs_run": 50},
        {"problem": "b", "setting": "default", "topic": "defaults", "metric": "mse", "seed": 1, "quality": 4.0,
         "certificate": "certified", "violations": 0, "train_s": 2.0, "epoch_s": 1.0, "best_epoch": 3, "epochs_run": 50},
        {"problem": "b", "setting": "lr=0.03", "topic": "t", "metric": "mse", "seed": 1, "quality": 5.0,
         "certificate": "not certified", "violations": 2, "train_s": 3.0, "epoch_s": 1.0, "best_epoch": 3,
         "epochs_run": 50},
    ])
    summary = summarise(runs).set_index(["problem", "setting"])
    assert summary.loc[("a", "default"), "quality"] == pytest.approx(0.85)
    assert summary.loc[("a", "lr=0.03"), "change"] == pytest.approx(10.0)  # points against the default's mean
    assert summary.loc[("a", "lr=0.03"), "time_vs_default"] == pytest.approx(0.5)
    assert summary.loc[("b", "lr=0.03"), "change"] == pytest.approx(1.25)  # an MSE ratio
    assert summary.loc[("b", "lr=0.03"), "certified"] == "0/1"
    assert summary.loc[("b", "lr=0.03"), "violations"] == 2
