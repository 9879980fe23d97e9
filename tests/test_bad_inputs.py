"""Bad input to `deepsade train`: each gives one clear line on stderr and exit code 2, and leaves nothing
behind that looks like a finished model directory. Also: the model directory and the constraint file
are read as data (nothing executed), and the solver's `unknown` is never taken as success."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from deepsade import artifact, smtlib
from deepsade.cli import main
from deepsade.errors import UserInputError
from deepsade.maxsmt import MaxSMTResult

RULE = "(declare-const x1 Real)(declare-const y Real)(assert (<= y x1))\n"
TRAIN = ["--target", "y", "--method", "deepsade", "--hidden", "4", "--epochs", "1", "--batch-size", "20", "--quiet"]


def _frame(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(0, 10, n), rng.uniform(-5, 5, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": 0.5 * x1 + 0.1 * x2, "label": np.where(x2 > 0, "yes", "no")})


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _assert_clean_failure(result, message: str, out: Path | None = None) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no other exception escaped
    assert message in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    if lines[0].startswith("Usage:"):  # click's own check of an argument: usage, then one 'Error:' line
        assert lines[-1].startswith("Error:") and sum(line.startswith("Error:") for line in lines) == 1
    else:
        assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    if out is not None:
        assert not out.exists(), "a model directory was left behind"
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")
                     or p.name == f"{out.name}.checkpoint"]
        assert not leftovers, leftovers


def _files(tmp_path: Path, frame: pd.DataFrame | None = None, rule: str = RULE) -> tuple[Path, Path, Path]:
    csv, constraint = tmp_path / "d.csv", tmp_path / "c.smt2"
    (frame if frame is not None else _frame()).to_csv(csv, index=False)
    constraint.write_text(rule)
    return csv, constraint, tmp_path / "model"


CONSTRAINT_CASES = {
    # name: (constraint text, expected message)
    "unbalanced": ("(declare-const y Real)(assert (<= y 1)", "unbalanced parentheses"),
    "stray_text": ("(declare-const y Real) y (assert (<= y 1))", "text outside a command"),
    "z3_rejects": ("(declare-const y Real)\n(assert (<= y (foo 2)))", "rejected by z3: line 2 column"),
    "quoted_parenthesis": ("(declare-const y Real)(assert (<= y |)|))", "rejected by z3: line 1 column"),
    "not_boolean": ("(declare-const y Real)(assert (+ y 1))", "rejected by z3: line 1 column"),
    "unknown_name": ("(declare-const salary Real)(declare-const y Real)(assert (<= y salary))",
                     "neither inputs nor outputs"),
    "int_sort": ("(declare-const x1 Int)(declare-const y Real)(assert (<= y x1))", "declare these as Real"),
    "bool_sort": ("(declare-const x1 Bool)(declare-const y Real)(assert (=> x1 (<= y 1)))", "declare these as Real"),
    "push": ("(declare-const y Real)(push 1)(assert (<= y 1))", "command 'push' is not allowed"),
    "eval": ("(declare-const y Real)(assert (<= y 1))(eval y)", "command 'eval' is not allowed"),
    "declare_fun_args": ("(declare-fun f (Real) Real)(declare-const y Real)(assert (<= y (f 1)))",
                         "declare-fun with arguments"),
    "no_assert": ("(declare-const y Real)", "no (assert ...) found"),
    "no_output": ("(declare-const x1 Real)(declare-const y Real)(assert (<= x1 5))", "mentions no output"),
    "deep_nesting": ("(declare-const y Real)(assert " + "(not " * 300 + "(<= y 1)" + ")" * 301,
                     "nesting deeper than 200"),
    "macro_blowup": ("(declare-const x1 Real)(declare-const y Real)(define-fun f0 () Real x1)"
                     + "".join(f"(define-fun f{i} () Real (+ f{i - 1} f{i - 1}))" for i in range(1, 40))
                     + "(assert (<= y f39))", "define-fun macros are expanded"),
    "let_chain": ("(declare-const x1 Real)(declare-const y Real)(assert (<= y "
                  + "".join(f"(let ((v{k} " + "(+ 1 " * 100 + (f"v{k - 1}" if k else "x1") + ")" * 100 + ")) "
                            for k in range(30)) + "v29" + ")" * 30 + "))", "let bindings are expanded"),
    "contradiction_on_domain": ("(declare-const x1 Real)(declare-const y Real)(assert (> y 0))"
                                "(assert (< y (- x1 5)))", "the rule cannot hold: asserts 1 and 2 contradict each other at x1 = "),
    "premise_outside_domain": ("(declare-const x1 Real)(declare-const y Real)(assert (=> (> x1 100) (<= y 0)))",
                               "premise holds anywhere in the domain box"),
}


@pytest.mark.parametrize("case", list(CONSTRAINT_CASES))
def test_bad_constraint_files(tmp_path, case):
    text, message = CONSTRAINT_CASES[case]
    csv, constraint, out = _files(tmp_path, rule=text)
    _assert_clean_failure(_invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out)),
                          message, out)


def test_constraint_file_size_and_encoding(tmp_path):
    csv, constraint, out = _files(tmp_path)
    constraint.write_text(RULE + "; padding\n" * (smtlib.MAX_FILE_BYTES // 10))
    _assert_clean_failure(_invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out)),
                          "larger than", out)
    constraint.write_bytes(b"(declare-const y Real)(assert (<= y \xff\xfe 1))")
    _assert_clean_failure(_invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out)),
                          "not UTF-8", out)


def test_assert_vacuous_on_the_domain_is_reported(tmp_path):
    rule = RULE + "(assert (=> (> x1 100) (<= y 0)))"
    csv, constraint, out = _files(tmp_path, rule=rule)
    checked = _invoke("check", str(constraint), str(csv), "--target", "y")
    assert checked.exit_code == 0 and checked.output.count("premise never holds in the domain box") == 1
    trained = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out))
    assert trained.exit_code == 0, trained.output
    assert "note: assert 2: its premise never holds in the domain box" in trained.stderr


def test_solver_commands_are_ignored_with_a_note(tmp_path):
    csv, constraint, _ = _files(tmp_path, rule="(set-logic QF_LRA)(set-option :produce-models true)\n" + RULE
                                + "(check-sat)(get-model)(exit)")
    result = _invoke("check", str(constraint), str(csv), "--target", "y")
    assert result.exit_code == 0, result.output
    assert result.output.count("ignored (") == 5


def _data_case(tmp_path: Path, case: str) -> tuple[Path, list[str]]:
    """A CSV file for one bad-data case and the extra flags it needs."""
    csv = tmp_path / "d.csv"
    frame = _frame()
    if case == "empty_file":
        csv.write_text("")
    elif case == "header_only":
        csv.write_text("x1,x2,y\n")
    elif case == "one_row":
        frame.head(1).to_csv(csv, index=False)
    elif case == "all_nan_input":
        frame.assign(x1=np.nan).to_csv(csv, index=False)
    elif case == "inf_everywhere":
        frame.assign(y=np.inf).to_csv(csv, index=False)
    elif case == "constant_column":  # the rule mentions it: it cannot be left out
        frame.assign(x1=3.0).to_csv(csv, index=False)
    elif case == "constant_target":
        frame.assign(y=1.0).to_csv(csv, index=False)
    elif case == "one_class":
        frame.assign(label="yes").to_csv(csv, index=False)
        return csv, ["--target", "label"]
    elif case == "text_in_regression_target":
        frame.assign(y=frame["label"]).to_csv(csv, index=False)
        return csv, ["--target", "y", "--task", "regression"]
    elif case == "non_utf8":
        csv.write_bytes(b"x1,x2,y\n1,2,3\n4,5,6\n" + b"7,8,\xe9\xff\n")
    elif case == "ragged_rows":
        csv.write_text("x1,x2,y\n1,2,3\n4,5,6,7,8\n")
    elif case == "unknown_target":
        frame.to_csv(csv, index=False)
        return csv, ["--target", "yy"]
    elif case == "unknown_feature":
        frame.to_csv(csv, index=False)
        return csv, ["--target", "y", "--features", "x1,x9"]
    elif case == "folder":
        return tmp_path, ["--target", "y"]
    elif case == "missing":
        return tmp_path / "nope.csv", ["--target", "y"]
    return csv, ["--target", "y"]


DATA_CASES = {
    "empty_file": "data file is empty",
    "header_only": "no rows",
    "one_row": "only 1 usable row",
    "all_nan_input": "no rows left",
    "inf_everywhere": "no rows left",
    "constant_column": "holds one value (3) in every row",
    "constant_target": "are constant",
    "one_class": "has a single class",
    "text_in_regression_target": "not numeric",
    "non_utf8": "not UTF-8",
    "ragged_rows": "cannot parse",
    "unknown_target": "unknown column",
    "unknown_feature": "unknown column",
    "folder": "is a directory",
    "missing": "data file not found",
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_files(tmp_path, case):
    csv, target = _data_case(tmp_path, case)
    constraint, out = tmp_path / "c.smt2", tmp_path / "model"
    constraint.write_text(RULE.replace("(declare-const y Real)", "(declare-const y Real)(declare-const label Real)")
                          if case == "one_class" else RULE)
    args = ["train", str(csv), "--constraint", str(constraint), *target, "--hidden", "4", "--epochs", "1",
            "--quiet", "--out", str(out)]
    _assert_clean_failure(_invoke(*args), DATA_CASES[case], out)


def test_nan_and_inf_rows_are_dropped_and_counted(tmp_path):
    frame = _frame()
    frame.loc[[3, 5], "x2"] = np.nan
    frame.loc[7, "x1"] = np.inf
    frame.loc[9, "y"] = -np.inf
    csv, constraint, out = _files(tmp_path, frame)
    result = _invoke("check", str(constraint), str(csv), "--target", "y")
    assert result.exit_code == 0, result.output
    assert "76 rows used, 4 dropped for missing values" in result.output
    trained = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out))
    assert trained.exit_code == 0, trained.output
    assert "(8 more held out for validation, 4 dropped for missing values)" in trained.output and (out / artifact.MODEL_FILE).exists()


def test_unwritable_output_folder_fails_before_training(tmp_path, monkeypatch):
    csv, constraint, _ = _files(tmp_path)
    # a path below a regular file can never be created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_clean_failure(_invoke("train", str(csv), "--constraint", str(constraint), *TRAIN,
                                  "--out", str(blocker / "model")), "cannot write the model directory")
    # a folder without write permission (root ignores permissions: simulate the refusal there)
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(artifact.tempfile, "mkdtemp", refuse)
    else:
        locked.chmod(0o500)
    try:
        result = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(locked / "model"))
        _assert_clean_failure(result, "Permission denied", locked / "model")
    finally:
        locked.chmod(0o700)


def test_write_failure_after_training_leaves_no_model_directory(tmp_path, monkeypatch):
    csv, constraint, out = _files(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifact, "_fsync_write", disk_full)
    result = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out))
    _assert_clean_failure(result, "No space left on device")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    # nothing lost: the finished training waits in the checkpoint, and the message says how to use it
    assert f"--resume {out}.checkpoint" in result.stderr
    monkeypatch.undo()
    resumed = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out),
                      "--resume", f"{out}.checkpoint")
    assert resumed.exit_code == 0 and "CERTIFIED" in resumed.output, resumed.output


# ---- model directories are data ---------------------------------------------------------------------

class _Bomb:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def model_dir(tmp_path):
    csv, constraint, out = _files(tmp_path)
    result = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, csv


def test_pickled_weights_are_never_executed(model_dir, tmp_path):
    out, csv = model_dir
    marker = tmp_path / "code-ran"
    (out / artifact.WEIGHTS_FILE).write_bytes(pickle.dumps(_Bomb(str(marker))))
    for command in (["predict", str(out), str(csv)], ["evaluate", str(out), str(csv)]):
        result = _invoke(*command)
        _assert_clean_failure(result, "cannot be read")
    certified = _invoke("certify", str(out))  # a damaged model directory is a failed re-check: exit 1
    assert certified.exit_code == 1 and "FAILED:" in certified.stderr and "cannot be read" in certified.stderr
    assert not marker.exists()


def test_no_pickle_and_no_unsafe_torch_load_in_the_package():
    source = Path(__file__).resolve().parents[1] / "deepsade"
    for path in source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import pickle" not in text and "pickle.load" not in text, path
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"


def test_altered_weights_reported_by_every_command(model_dir):
    out, csv = model_dir
    tensors = load_file(str(out / artifact.WEIGHTS_FILE))
    tensors["last.bias"] = tensors["last.bias"] - 1.0
    save_file(tensors, str(out / artifact.WEIGHTS_FILE))
    for command in (["predict", str(out), str(csv)], ["evaluate", str(out), str(csv)],
                    ["verify", str(out), "--engine", "z3", "--timeout", "5"],
                    ["adi", str(out), str(csv), "--engine", "z3", "--sample", "3", "--epsilon", "0.01", "--quiet",
                     "--out", str(out.parent / "adi.csv")]):
        result = _invoke(*command)
        assert result.exit_code in (0, 1), (command, result.output, result.exception)  # 1: verify found a violation
        assert "do NOT match its certificate" in result.stderr, (command, result.stderr)
    certified = _invoke("certify", str(out))
    assert certified.exit_code == 1 and "altered" in certified.stderr


def test_damaged_model_directory(model_dir):
    out, csv = model_dir
    (out / artifact.MODEL_FILE).write_text('{"format": "deepsade-model/1", "architecture": ')
    _assert_clean_failure(_invoke("predict", str(out), str(csv)), "is corrupted")
    (out / artifact.MODEL_FILE).unlink()
    _assert_clean_failure(_invoke("certify", str(out)), "not a deepsade model directory")


# ---- the solver's "unknown" is never success ---------------------------------------------------------

def test_unknown_from_the_solver_is_a_failed_step_and_an_unknown_certificate(tmp_path, monkeypatch):
    import deepsade.certify
    import deepsade.encoding.encoder
    import deepsade.training.last_layer

    csv, constraint, out = _files(tmp_path)
    check = deepsade.encoding.encoder.Encoder.check_candidates

    def line_search_unknown(self, weights, biases, *args, **kwargs):
        # the line search's candidates come back "not proven" (as after a timeout); single checks stay real
        return check(self, weights, biases, *args, **kwargs) if len(weights) == 1 else np.zeros(len(weights), bool)

    solve = deepsade.training.last_layer.solve_maxsmt

    def maxsmt_unknown(hard, soft, method, **kwargs):  # the initial model is found; every training step times out
        return solve(hard, soft, method=method, **kwargs) if method == "first-model" else MaxSMTResult("unknown", None)

    monkeypatch.setattr(deepsade.training.last_layer, "solve_maxsmt", maxsmt_unknown)
    monkeypatch.setattr(deepsade.encoding.encoder.Encoder, "check_candidates", line_search_unknown)
    monkeypatch.setattr(deepsade.certify, "find_counterexample", lambda *a, **k: "unknown")
    extra = ["--no-projection"] if "--no-projection" in _invoke("train", "--help").output else []
    result = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, *extra, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "certificate: NOT CERTIFIED" in result.output
    assert "did not confirm" in result.stderr
    history = json.loads((out / artifact.MODEL_FILE).read_text())["history"]
    assert history[0]["restarts"] == history[0]["maxsmt_calls"] == history[0]["iterations"] > 0
    assert json.loads((out / artifact.CERTIFICATE_FILE).read_text())["verdict"] == "not certified"


def test_unknown_when_initialising_is_not_taken_for_a_model(tmp_path, monkeypatch):
    import deepsade.encoding.encoder
    import deepsade.training.last_layer

    csv, constraint, out = _files(tmp_path)
    monkeypatch.setattr(deepsade.training.last_layer, "solve_maxsmt", lambda *a, **k: MaxSMTResult("unknown", None))
    monkeypatch.setattr(deepsade.encoding.encoder.Encoder, "check_candidates",
                        lambda self, weights, *a, **k: np.zeros(len(weights), bool))
    _assert_clean_failure(_invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out)),
                          "within the time limit", out)


# --------------------------------------------------------------------------------------------------------------
# The estimator's parameters: stored by the constructor, validated by fit with one clear error each.

@pytest.mark.parametrize("params, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"hidden": ()}, "hidden must be a non-empty sequence of positive integers"),
    ({"hidden": (8, 0)}, "hidden must be a non-empty sequence of positive integers, got \\(8, 0\\)"),
    ({"lr": -0.1}, "lr must be a positive number, got -0.1"),
    ({"max_step": float("nan")}, "max_step must be a positive number"),
    ({"solver_timeout": 0}, "solver_timeout must be a positive number"),
    ({"margin": "1e-4"}, "margin must be a positive number"),
    ({"margins": ()}, "margins must be a non-empty sequence of numbers"),
    ({"margins": "0,1"}, "margins must be a non-empty sequence of numbers"),
    ({"line_search_steps": -1}, "line_search_steps must be an integer >= 0, got -1"),
    ({"val_fraction": 1.0}, "--val-fraction must be in \\[0, 1\\), got 1.0"),
    ({"maxsmt": "maxres"}, "unknown MaxSMT solver 'maxres'; choose one of fu-malik, z3-opt"),
    ({"strategy": "magic"}, "unknown strategy 'magic'; choose one of auto, dual"),
    ({"method": "svm"}, "unknown method 'svm'; choose one of deepsade, ffn, reg, sbr, sl"),
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"checkpoint_every": "sometimes"}, "--checkpoint-every takes"),
])
def test_estimator_parameters_are_checked_in_fit(params, message):
    from deepsade.estimator import DeepSaDe

    frame = pd.DataFrame({"x1": np.linspace(1, 10, 40), "x2": np.linspace(0, 1, 40), "y": np.linspace(0, 1, 40)})
    model = DeepSaDe(RULE, ["y"], **params)  # the constructor only stores: never raises
    for name, value in params.items():
        assert getattr(model, name) == value or value != value
    with pytest.raises(UserInputError, match=message):
        model.fit(frame)


def test_estimator_targets_may_be_one_column_name():
    from deepsade.estimator import DeepSaDe

    frame = pd.DataFrame({"x1": np.linspace(1, 10, 40), "x2": np.linspace(0, 1, 40), "y": np.linspace(0, 1, 40)})
    model = DeepSaDe(RULE, "y", method="ffn", hidden=(4,), epochs=1).fit(frame)
    assert model.artifact_.encoding.target_columns == ["y"]
    with pytest.raises(UserInputError, match="targets must name at least one column"):
        DeepSaDe(RULE, [], method="ffn").fit(frame)


def test_a_constant_column_the_rule_does_not_mention_is_left_out_with_a_note(tmp_path):
    """load_digits has pixels that are 0 in every image: training leaves them out and says so; the model does
    not read them, so predictions (and the certificate) do not depend on what they hold."""
    csv, constraint, out = _files(tmp_path)
    frame = _frame().assign(blank=0.0, site="north")
    frame.to_csv(csv, index=False)
    trained = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--features", "x1,x2,blank,site",
                      "--out", str(out))
    assert trained.exit_code == 0, trained.output
    assert "2 input column(s) held one value in every row and were left out" in trained.stderr
    from deepsade.artifact import load
    from deepsade.prediction import predictions_frame

    art = load(out)
    assert art.encoding.feature_columns == ["x1", "x2"] and art.encoding.constant_columns == {"blank": "0",
                                                                                                "site": "north"}
    assert art.certificate["verdict"] == "certified"
    same = predictions_frame(art, frame.head(5))
    moved = predictions_frame(art, frame.head(5).assign(blank=99.0, site="south"))
    assert np.array_equal(same["predicted_y"].to_numpy(), moved["predicted_y"].to_numpy())
    assert same["in_domain"].all() and moved["in_domain"].all()


def test_a_text_column_unique_per_row_is_left_out_of_the_default_inputs_with_a_note(tmp_path):
    """An id or a timestamp column, one-hot, was one input per row (2305 inputs on 1200 rows of a probe): the
    default inputs leave it out and say so; --features keeps it; a rule naming it says why it is missing."""
    frame = _frame().drop(columns="label")
    frame.insert(0, "customer_id", [f"C{100000 + i}" for i in range(len(frame))])
    csv, constraint, out = _files(tmp_path, frame)
    trained = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out))
    assert trained.exit_code == 0, trained.output
    assert "text column(s) held a different value in every row (identifiers) and were left out: customer_id" \
        in trained.stderr
    art = artifact.load(out)
    assert art.encoding.feature_columns == ["x1", "x2"] and art.encoding.identifier_columns == ["customer_id"]
    assert art.certificate["verdict"] == "certified"
    kept = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--features", "customer_id,x1,x2",
                   "--out", str(tmp_path / "kept"))
    assert kept.exit_code == 0, kept.output
    assert len(artifact.load(tmp_path / "kept").encoding.input_names) == len(frame) + 2
    rule = "(declare-const |customer_id=C100000| Real)(declare-const y Real)(assert (<= y |customer_id=C100000|))\n"
    csv, constraint, out = _files(tmp_path, frame, rule)
    named = _invoke("train", str(csv), "--constraint", str(constraint), *TRAIN, "--out", str(out) + "2")
    _assert_clean_failure(named, "left out of the inputs as an identifier")


def test_a_categorical_column_with_many_values_gets_a_note():
    from deepsade.ingest import prepare

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"shop": [f"s{i}" for i in rng.integers(0, 150, 600)], "x1": rng.uniform(0, 1, 600)})
    frame["y"] = frame["x1"]
    encoding = prepare(frame, ["y"]).encoding
    assert encoding.identifier_columns is None and len(encoding.categorical_levels["shop"]) > 100
    assert "categorical column(s) with many values, one input each: shop (" in encoding.identifier_columns_note()


def test_an_identifier_is_judged_before_missing_values_and_named_when_nothing_else_is_left():
    from deepsade.ingest import prepare

    frame = _frame(60).drop(columns="label")
    frame.insert(0, "cid", [f"C{i}" for i in range(60)])
    frame.loc[3, "cid"] = None  # a missing id costs no row and does not make the column categorical
    for impute in ("drop", "mode"):
        data = prepare(frame, ["y"], impute=impute)
        assert data.encoding.identifier_columns == ["cid"] and data.rows_dropped == 0 and data.n_rows == 60
    with pytest.raises(UserInputError, match="identifier column.*'cid'.*--features"):
        prepare(frame[["cid", "y"]], ["y"])


def test_train_names_the_positive_class_it_chose_when_none_was_given(tmp_path):
    """A new user left out --positive on 'cancer'/'healthy' labels: the tool took 'healthy' as positive, so the
    rule's '> 0' forced the opposite of what was meant, and nothing said so."""
    frame = _frame().assign(label=lambda f: np.where(f["x2"] > 0, "cancer", "healthy"))
    rule = "(declare-const x1 Real)(declare-const label Real)(assert (=> (> x1 9.0) (> label 0.0)))\n"
    csv, constraint, out = _files(tmp_path, frame.drop(columns="y"), rule)
    args = ["train", str(csv), "--constraint", str(constraint), "--target", "label", "--hidden", "4", "--epochs", "1",
            "--quiet"]
    chosen = _invoke(*args, "--out", str(out))
    assert chosen.exit_code == 0, chosen.output
    assert "binary target 'label': positive class 'healthy', negative 'cancer'" in chosen.stderr
    given = _invoke(*args, "--positive", "cancer", "--out", str(tmp_path / "given"))
    assert given.exit_code == 0, given.output
    assert "positive class" not in given.stderr


def test_swapped_rule_and_data_files_are_named_as_such(tmp_path):
    csv, rules = tmp_path / "d.csv", tmp_path / "r.smt2"
    pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0, 1, 1]}).to_csv(csv, index=False)
    rules.write_text("(declare-const x Real)\n(declare-const y Real)\n(assert (=> (> x 1.0) (> y 0.0)))\n")
    checked = _invoke("check", str(csv), str(rules), "--target", "y")
    assert checked.exit_code == 2 and "reads like an SMT-LIB rule file" in checked.output
    assert "swapped" in checked.output
    with pytest.raises(UserInputError, match="reads like a CSV header; is it the data file"):
        smtlib.read_constraint_file(csv)
