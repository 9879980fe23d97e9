"""Notes the CLI prints around training, from a new-user probe (session 14): what the data says about the rule,
which class a binary score means (only when the tool chose it), and advise's reason for a classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
from click.testing import CliRunner

from deepsade.cli import main

BUDGET = ("(declare-const income Real)(declare-const housing Real)(declare-const food Real)"
          "(declare-const other Real)(assert (= (+ housing food other) income))"
          "(assert (and (>= housing 0.0) (>= food 0.0)))")


def _budget(tmp_path, broken: int):
    rng = np.random.default_rng(0)
    income = rng.uniform(1500, 9000, 200).round(0)
    housing, food = (0.3 * income).round(2), (300 + 0.05 * income).round(2)
    frame = pd.DataFrame({"income": income, "housing": housing, "food": food, "other": income - housing - food})
    frame.loc[: broken - 1, "other"] += 50.0  # labels that break the equality
    csv, rule = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text(BUDGET)
    return csv, rule


def test_train_says_how_many_rows_hold_labels_that_break_the_rule(tmp_path):
    csv, rule = _budget(tmp_path, broken=4)
    args = ["train", str(csv), "--constraint", str(rule), "--target", "housing,food,other", "--epochs", "2",
            "--hidden", "8", "--quiet"]
    certified = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "m")])
    assert certified.exit_code == 0, certified.output
    assert "note: 4 row(s) of the data hold labels that break the rule" in certified.stderr
    ffn = CliRunner().invoke(main, [*args, "--method", "ffn", "--out", str(tmp_path / "f")])
    assert ffn.exit_code == 0 and "break the rule" not in ffn.stderr  # ffn keeps no rule: nothing to say


def test_check_names_the_positive_class_only_when_the_tool_chose_it(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.uniform(0, 10, 80)})
    frame["approved"] = np.where(frame["x"] > 5, "yes", "no")
    csv, rule = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text("(declare-const x Real)(declare-const approved Real)(assert (=> (> x 9) (> approved 0)))")
    chose = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "approved"])
    given = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "approved", "--positive", "yes"])
    assert chose.exit_code == 0 and given.exit_code == 0, (chose.output, given.output)
    assert "--positive chooses it" in chose.output and "--positive chooses it" not in given.output


def test_advise_names_what_is_in_a_premise_asserts_conclusion_not_the_premise(tmp_path):
    """A probe's 5-class rule had an `or` of class comparisons behind a box premise: advise said "assert 1 has a
    premise", after saying the clamps take premises that are boxes."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.uniform(0, 10, 90)})
    frame["kind"] = np.select([frame["x"] < 3, frame["x"] < 6], ["a", "b"], "c")
    csv, rule = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text("(declare-const x Real)(declare-const |kind=a| Real)(declare-const |kind=b| Real)"
                    "(declare-const |kind=c| Real)"
                    "(assert (=> (< x 2) (or (< |kind=c| |kind=a|) (< |kind=c| |kind=b|))))")
    result = CliRunner().invoke(main, ["advise", str(rule), str(csv), "--target", "kind"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "polytope" in line)
    assert "uses or, not, ite or => inside (in its conclusion)" in line and "has a premise" not in line, line


def test_check_says_how_missing_values_were_filled(tmp_path):
    csv, rule = _budget(tmp_path, broken=0)
    frame = pd.read_csv(csv)
    frame["region"] = np.where(np.arange(len(frame)) % 3, "north", "south")
    frame.loc[:2, "region"] = None
    frame.to_csv(csv, index=False)
    result = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "housing,food,other",
                                       "--impute", "median"])
    assert result.exit_code == 0, result.output
    assert "note: missing values filled: region with its most frequent value 'north' (3 rows; a text column has " \
           "no median)" in result.output


def test_rows_outside_a_given_domain_box_are_counted_by_check_and_train(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200)
    csv, rule, box = tmp_path / "d.csv", tmp_path / "r.smt2", tmp_path / "box.json"
    pd.DataFrame({"x": x, "y": (x < 0).astype(int)}).to_csv(csv, index=False)
    rule.write_text("(declare-const x Real)(declare-const y Real)(assert (=> (< x (- 0.5)) (> y 0.0)))")
    box.write_text('{"x": [-0.8, 0.8]}')
    outside = int(((x < -0.8) | (x > 0.8)).sum())
    expected = f"note: {outside} of 200 rows lie outside the domain box ({box})"
    checked = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y", "--domain", str(box)])
    assert checked.exit_code == 0 and expected in checked.output
    trained = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rule), "--target", "y", "--domain",
                                       str(box), "--hidden", "4", "--epochs", "1", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    assert expected in trained.output
    plain = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y"])
    assert "outside the domain box" not in plain.output  # the box from the rows holds every row


def test_rounding_advice_is_left_out_when_the_model_is_violated(capsys):
    from deepsade.cli.model import print_certificate

    warning = "a float32 runtime may differ ... train with --margin 0.01 or more"
    print_certificate({"verdict": "violated", "margin": 1e-6, "asserts": [], "warning": warning})
    assert "--margin" not in capsys.readouterr().err
    print_certificate({"verdict": "certified", "margin": 1e-6, "asserts": [], "warning": warning})
    assert "--margin" in capsys.readouterr().err


def test_predict_and_evaluate_fill_missing_inputs_with_the_training_values_of_an_imputed_model(tmp_path):
    rng = np.random.default_rng(1)
    x, z = rng.uniform(-1, 1, 200), rng.uniform(0, 10, 200)
    frame = pd.DataFrame({"x": x, "z": z, "y": (x + z / 10 > 0.3).astype(int)})
    frame.loc[:9, "z"] = np.nan
    csv, new, rule = tmp_path / "d.csv", tmp_path / "new.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text("(declare-const x Real)(declare-const z Real)(declare-const y Real)"
                    "(assert (=> (< x (- 0.5)) (< y 0.0)))")
    trained = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rule), "--target", "y", "--impute",
                                        "median", "--hidden", "4", "--epochs", "1", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    median = float(frame["z"].median())
    rows = pd.DataFrame({"x": [0.2, 0.2], "z": [np.nan, median], "y": [1, 1]})
    rows.to_csv(new, index=False)
    predicted = CliRunner().invoke(main, ["predict", str(tmp_path / "m"), str(new)])
    assert predicted.exit_code == 0, predicted.output
    assert "1 of 2 rows had missing input values, filled with the training data's values" in predicted.output
    lines = [line for line in predicted.output.splitlines() if line and line[0].isdigit() or line.startswith("-")]
    assert len(lines) == 2 and lines[0] == lines[1]  # the missing z is the training median
    rows.assign(z=[np.nan, np.nan]).to_csv(new, index=False)
    evaluated = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m"), str(new), "--impute", "median"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "2 row(s) with missing inputs filled with the training data's values" in evaluated.output


def test_check_gives_the_size_of_the_largest_miss_of_an_equality(tmp_path):
    """A probe's budget rounded to cents broke 'parts = 100' on 83 rows, by 0.01 at most: the count alone read
    like bad data."""
    csv, rule = _budget(tmp_path, broken=4)  # 4 rows whose 'other' is 50 too high
    result = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "housing,food,other"])
    assert result.exit_code == 0, result.output
    assert "rows whose true labels violate it: 4 (its equality missed by up to 50, raw units" in result.output


def test_an_equality_in_a_premise_is_not_reported_as_missed(tmp_path):
    rng = np.random.default_rng(0)
    flag = rng.integers(0, 2, 100).astype(float)
    frame = pd.DataFrame({"flag": flag, "x": rng.uniform(0, 1, 100), "y": (flag == 1).astype(int)})
    frame.loc[:2, ["flag", "y"]] = [1.0, 0]  # three rows that break 'flag = 1 -> approved'
    csv, rule = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text("(declare-const flag Real)(declare-const y Real)(assert (=> (= flag 1.0) (> y 0.0)))")
    result = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y"])
    assert result.exit_code == 0, result.output
    assert "rows whose true labels violate it: 3" in result.output and "equality missed" not in result.output


def test_without_a_progress_bar_a_slow_epoch_prints_a_line_now_and_then(monkeypatch, capsys):
    from types import SimpleNamespace

    import deepsade.cli.train as train_cli

    clock = [1000.0]
    monkeypatch.setattr(train_cli.time, "monotonic", lambda: clock[0])
    progress = train_cli._Progress(None, quiet=False)  # not a terminal here: tqdm disables the bar
    assert progress.bar.disable
    stats = SimpleNamespace(epoch=1, iterations=3, maxsmt_successes=2, maxsmt_calls=3, restarts=1,
                            solver_seconds=4.0, line_search_hits=0, projection_hits=0)
    progress(stats, {"loss": 0.5})
    clock[0] += train_cli.HEARTBEAT_SECONDS
    progress(stats, {"loss": 0.5})
    progress(stats, {"loss": 0.5})  # not again before another minute
    printed = capsys.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if "steps so far" in line]
    assert lines == ["epoch 1: 3 steps so far, loss 0.5000, MaxSMT 2/3, restarts 1, solver 4.0s"]
    progress.close()


def test_rounding_text_is_a_note_when_predicts_float64_is_covered_and_a_warning_otherwise(capsys):
    from deepsade.cli.model import print_certificate
    from deepsade.float_error import rounding_warning

    print_certificate({"verdict": "certified", "margin": 1e-4, "asserts": [], "warning": rounding_warning(0.3, 1e-4)})
    err = capsys.readouterr().err
    assert err.startswith("note: deepsade predict and deepsade export's default ONNX graph evaluate this model")
    print_certificate({"verdict": "certified", "margin": 1e-6, "asserts": [], "warning": rounding_warning(1e6, 1e-6)})
    assert capsys.readouterr().err.startswith("warning: on this domain a float32 forward pass may differ")
