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
    # advise names no method that can guarantee it, and says why (it once listed deepsade and the score clamps)
    advised = CliRunner().invoke(main, ["advise", str(rules), str(csv), "--target", "kind"])
    assert advised.exit_code == 0 and "warning: asserts 1 and 2 contradict each other" in advised.output
    guaranteed = advised.output.split("can guarantee the rule:")[1].split("cannot guarantee it:")[0]
    assert guaranteed.strip() == "(none)"
    assert "train's default: none, train refuses a rule no model can keep" in advised.output
    assert "--domain" in advised.output  # how to fix a conflict at values no row combines


def test_a_failed_training_names_the_boundary_and_the_method(tmp_path, frame):
    csv, rules = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rules.write_text(DECLARE + A_WHEN_HIGH + "(assert (=> (< proline 1100.0) (not is_a)))")
    trained = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rules), "--target", "kind",
                                        "--epochs", "1", "--solver-timeout", "5", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 2
    assert "[auto: deepsade" in trained.output and "The rule itself is why" in trained.output
    assert "cannot switch at a point" in trained.output
    assert "raise --solver-timeout" not in trained.output  # the rule is why: no contradicting advice


def test_no_boundary_is_reported_where_a_continuous_output_exists(frame):
    # y = max(proline, 1100) as one equality chosen with ite: continuous, so no jump is asked for
    data = prepare(frame.assign(y=np.maximum(frame["proline"], 1100.0)).drop(columns="kind"), ["y"])
    spec = parse_spec_text("(declare-const proline Real)(declare-const y Real)"
                           "(assert (= y (ite (> proline 1100.0) proline 1100.0)))", data.encoding)
    assert len(spec.asserts) == 2
    assert find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding)) == []
    # a division by an input is not searched (z3 leaves y / 0 free, the tool's evaluator does not)
    shifted = frame.assign(od=frame["od"] - 1.0, y=frame["proline"] / 1000.0).drop(columns="kind")
    data = prepare(shifted, ["y"])
    spec = parse_spec_text("(declare-const od Real)(declare-const y Real)(assert (< (/ y od) 1000.0))", data.encoding)
    assert find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding)) == []


def test_a_conflict_only_between_one_hot_values_of_one_column_says_so(frame):
    rng = np.random.default_rng(1)
    data = prepare(frame.assign(colour=rng.choice(["r", "g", "b"], len(frame)), y=rng.uniform(0, 100, len(frame)))
                   .drop(columns="kind"), ["y"])
    head = "(declare-const |colour=r| Real)(declare-const |colour=g| Real)(declare-const y Real)"
    box = data.domain.scaled_exact(data.encoding)
    spec = parse_spec_text(head + "(assert (=> (= |colour=r| 1.0) (>= y 60.0)))"
                           "(assert (=> (= |colour=g| 1.0) (<= y 40.0)))", data.encoding)
    (conflict,) = find_conflicts(spec, data.encoding, *box)
    assert not conflict.realisable and "an input no row can have" in conflict.describe()
    fixed = parse_spec_text(head + "(assert (=> (and (= |colour=r| 1.0) (= |colour=g| 0.0)) (>= y 60.0)))"
                            "(assert (=> (and (= |colour=g| 1.0) (= |colour=r| 0.0)) (<= y 40.0)))", data.encoding)
    assert find_conflicts(fixed, data.encoding, *box) == []


def test_a_spent_budget_stops_the_search_at_once(frame):
    import time

    data = prepare(frame, ["kind"])
    spec = parse_spec_text(DECLARE + A_WHEN_HIGH + "(assert (=> (<= od 2.0) (not is_a)))", data.encoding)
    start = time.perf_counter()
    assert find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding), budget_s=0.01) == []
    assert time.perf_counter() - start < 1.0


SHARES = ("(declare-const x Real)(declare-const w Real)(declare-const y Real)(declare-const z Real)"
          "(assert (=> (>= x 0.5) (>= y 1.0)))(assert (=> (>= x 0.7) (>= z 1.0)))(assert (<= y 10.0))")


def _shares(rules: str):
    rng = np.random.default_rng(0)
    x, w = rng.uniform(0, 1, 200), rng.uniform(0, 3, 200)
    data = prepare(pd.DataFrame({"x": x, "w": w, "y": x, "z": 0.5 * x}), ["y", "z"])
    spec = parse_spec_text(SHARES + rules, data.encoding)
    return find_conflicts(spec, data.encoding, *data.domain.scaled_exact(data.encoding))


def test_a_conflict_of_three_asserts_no_two_of_which_conflict_is_found_and_named_without_bystanders():
    (conflict,) = _shares("(assert (=> (>= w 2.0) (<= (+ y z) 1.0)))")
    members = (conflict.first, conflict.second, *(index for index, _ in conflict.more))
    assert sorted(members) == [0, 1, 3] and not conflict.boundary  # assert 3 (y <= 10) holds there too
    assert conflict.point["x"] >= 0.7 and conflict.point["w"] >= 2.0
    assert conflict.describe().startswith("asserts 1, 2 and 4 contradict each other at ")
    # the same three with room for both answers: nothing
    assert _shares("(assert (=> (>= w 2.0) (<= (+ y z) 2.0)))") == []


def test_asserts_without_a_premise_are_not_said_to_have_premises_that_hold():
    (conflict,) = _shares("(assert (<= y 0.5))")  # y <= 10, y <= 0.5 and x >= 0.5 -> y >= 1
    assert conflict.describe().startswith("asserts 1 and 4 contradict each other at ")
    assert "assert 1's premise holds there and no output satisfies both" in conflict.describe()
    (both_free,) = _shares("(assert (>= y 11.0))")
    assert "premise" not in both_free.describe() and "no output satisfies both" in both_free.describe()


def test_a_boundary_that_only_three_asserts_make_is_found_and_named():
    rng = np.random.default_rng(0)
    x, w = rng.uniform(0, 1, 200), rng.uniform(0, 3, 200)
    data = prepare(pd.DataFrame({"x": x, "w": w, "y": x, "z": 1 - x}), ["y", "z"])
    head = ("(declare-const x Real)(declare-const w Real)(declare-const y Real)(declare-const z Real)"
            "(assert (=> (>= x 0.5) (>= y 1.0)))(assert (=> (< x 0.5) (>= z 1.0)))(assert (<= y 10.0))")
    box = data.domain.scaled_exact(data.encoding)
    # no two conflict and no input has both premises; at x = 0.5 a continuous y and z both reach 1
    (conflict,) = find_conflicts(parse_spec_text(head + "(assert (<= (+ y z) 1.5))", data.encoding),
                                 data.encoding, *box)
    assert conflict.boundary and sorted((conflict.first, conflict.second, *(i for i, _ in conflict.more))) == [0, 1, 3]
    assert conflict.point == {"x": pytest.approx(0.5, abs=1e-5)}
    assert conflict.describe().startswith("asserts 1, 2 and 4 ask for answers no output gives together where")
    # room for both answers at the boundary: nothing
    assert find_conflicts(parse_spec_text(head + "(assert (<= (+ y z) 2.0))", data.encoding),
                          data.encoding, *box) == []
