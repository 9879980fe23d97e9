"""Asserts no output satisfies together: found where premises overlap (train refuses, check warns) and where
they meet at a boundary (check warns, and a failed training says so instead of only blaming the solver)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deepsade.cli import main
from deepsade.conflicts import find_conflicts
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text

DECLARE = ("(declare-const proline Real)(declare-const od Real)(declare-const |kind=a| Real)"
           "(declare-const |kind=b| Real)(declare-const |kind=c| Real)"
           "(define-fun is_a () Bool (and (> |kind=a| |kind=b|) (> |kind=a| |kind=c|)))")
A_WHEN_HIGH = "(assert (=> (>= proline 1100.0) is_a))"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 150
    proline = rng.uniform(300, 1700, n).round(0)
    od = rng.uniform(1.0, 4.0, n).round(2)
    kind = np.where(proline >= 1150, "a", np.where(od <= 2.0, "b", "c"))
    return pd.DataFrame({"proline": proline, "od": od, "kind": kind})


def _conflicts(frame, rules: str):
    data = prepare(frame, ["kind"])
    spec = parse_spec_text(DECLARE + rules, data.encoding)
    return find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding))


def test_overlapping_premises_with_opposite_answers_are_found_with_a_raw_input(frame):
    (conflict,) = _conflicts(frame, A_WHEN_HIGH + "(assert (=> (<= od 2.0) (not is_a)))")
    assert (conflict.first, conflict.second, conflict.boundary) == (0, 1, False)
    assert conflict.point["proline"] >= 1100.0 and conflict.point["od"] <= 2.0  # raw units, a real witness
    assert conflict.describe().startswith("asserts 1 and 2 contradict each other at ")


def test_premises_that_meet_at_a_boundary_are_found_and_a_gap_clears_them(frame):
    (conflict,) = _conflicts(frame, A_WHEN_HIGH + "(assert (=> (< proline 1100.0) (not is_a)))")
    assert conflict.boundary and conflict.point["proline"] == pytest.approx(1100.0, abs=0.01)
    assert "cannot switch at a point" in conflict.describe()
    assert _conflicts(frame, A_WHEN_HIGH + "(assert (=> (< proline 1000.0) (not is_a)))") == []
    # answers some output gives on both sides are no conflict, however close the premises
    assert _conflicts(frame, A_WHEN_HIGH + "(assert (=> (< proline 1100.0) (> |kind=a| |kind=b|)))") == []


def test_an_assert_that_cannot_hold_alone_is_named(frame):
    (conflict,) = _conflicts(frame, "(assert (=> (<= od 2.0) (and is_a (> |kind=b| |kind=a|))))")
    assert (conflict.first, conflict.second) == (0, 0) and "assert 1 cannot hold" in conflict.describe()


def test_check_warns_and_train_refuses_a_contradiction_before_training(tmp_path, frame):
    csv, rules = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rules.write_text(DECLARE + A_WHEN_HIGH + "(assert (=> (<= od 2.0) (not is_a)))")
    checked = CliRunner().invoke(main, ["check", str(rules), str(csv), "--target", "kind"])
    assert checked.exit_code == 0 and "warning: asserts 1 and 2 contradict each other" in checked.output
    trained = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rules), "--target", "kind",
                                        "--epochs", "1", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 2 and "the rule cannot hold: asserts 1 and 2 contradict" in trained.output
    assert not (tmp_path / "m").exists()
    # an uncertified method still trains (it promises nothing)
    ffn = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rules), "--target", "kind",
                                    "--method", "ffn", "--epochs", "1", "--out", str(tmp_path / "f")])
    assert ffn.exit_code == 0, ffn.output


def test_a_failed_training_names_the_boundary_and_the_method(tmp_path, frame):
    csv, rules = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rules.write_text(DECLARE + A_WHEN_HIGH + "(assert (=> (< proline 1100.0) (not is_a)))")
    trained = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rules), "--target", "kind",
                                        "--epochs", "1", "--solver-timeout", "5", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 2
    assert "[auto: deepsade" in trained.output and "The rule itself is why" in trained.output
    assert "cannot switch at a point" in trained.output
