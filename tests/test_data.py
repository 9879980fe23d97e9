from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepsade.errors import UserInputError
from deepsade.ingest import infer_task, prepare, read_csv


def test_encoding_roles_scaling_and_missing(loan_frame):
    data = prepare(loan_frame, ["Loan_Status"], positive="Y")
    enc = data.encoding
    assert enc.task == "binary" and enc.classes == ["N", "Y"]
    assert data.rows_dropped == 1 and data.n_rows == len(loan_frame) - 1
    assert "Property_Area=Urban" in enc.input_names and "Property_Area" not in enc.input_names
    assert data.inputs.min() == 0.0 and data.inputs.max() == 1.0
    assert set(np.unique(data.targets)) == {0.0, 1.0}
    assert np.allclose(data.domain.lower, data.raw_inputs.min(axis=0))


def test_impute_keeps_rows(loan_frame):
    data = prepare(loan_frame, ["Loan_Status"], positive="Y", impute="mode")
    assert data.n_rows == len(loan_frame) and data.rows_imputed == 1


def test_regression_targets_scaled_and_invertible():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "y": rng.normal(5, 2, 50)})
    data = prepare(frame, ["y"])
    assert data.encoding.task == "regression"
    assert np.allclose(data.encoding.outputs_to_raw(data.targets)[:, 0], frame["y"])


def test_task_inference():
    frame = pd.DataFrame({"x": [1, 2, 3, 4], "c": ["a", "b", "c", "a"], "l1": [0, 1, 0, 1], "l2": [1, 1, 0, 0]})
    assert infer_task(frame, ["c"]) == "multiclass"
    assert infer_task(frame, ["l1", "l2"]) == "multilabel"
    assert infer_task(frame, ["l1"]) == "binary"


def test_unnamed_index_column_dropped(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, 0.1, 0.2]}).to_csv(path)
    assert list(read_csv(path).columns) == ["x", "y"]


def test_domain_override(tmp_path, loan_frame):
    data = prepare(loan_frame, ["Loan_Status"], positive="Y")
    path = tmp_path / "domain.json"
    path.write_text(json.dumps({"ApplicantIncome": [0, 30000]}))
    wide = prepare(loan_frame, ["Loan_Status"], positive="Y", domain_file=path)
    j = data.encoding.input_names.index("ApplicantIncome")
    assert wide.domain.lower[j] == 0 and wide.domain.upper[j] == 30000
    low, high = wide.domain.scaled_exact(wide.encoding)
    assert low[j] < 0 and high[j] > 1


@pytest.mark.parametrize("frame, targets, message", [
    (pd.DataFrame({"x": [1, 2], "y": [1.0, 2.0]}), ["nope"], "unknown column"),
    (pd.DataFrame({"x": [1, 1, 1], "z": [2, 2, 2], "y": [1.0, 2.0, 3.0]}), ["y"], "every input column is constant"),
    (pd.DataFrame({"x": [1.0, np.nan], "y": [np.nan, 2.0]}), ["y"], "no rows left"),
    (pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}), ["y"], "not numeric"),
])
def test_clear_errors(frame, targets, message):
    task = "regression" if message == "not numeric" else None
    with pytest.raises(UserInputError, match=message):
        prepare(frame, targets, task=task)


def test_impute_says_what_filled_each_column_and_that_text_has_no_median():
    frame = pd.DataFrame({"income": [1.0, 2.0, np.nan, 10.0, 4.0], "city": ["a", "b", "b", None, "a"],
                          "y": [0.0, 1.0, 0.0, 1.0, 1.0]})
    frame.loc[4, "city"] = "b"
    median = prepare(frame, ["y"], impute="median")
    assert median.imputed_values == {"income": "median 3 (1 row)",
                                     "city": "most frequent value 'b' (1 row; a text column has no median)"}
    assert median.imputation_note() == ("missing values filled: income with its median 3 (1 row); city with its "
                                        "most frequent value 'b' (1 row; a text column has no median)")
    assert prepare(frame, ["y"], impute="mode").imputed_values["city"] == "most frequent value 'b' (1 row)"
    assert prepare(frame, ["y"]).imputation_note() is None  # dropped, not filled
    with pytest.raises(UserInputError, match="every row is missing"):
        prepare(frame.assign(income=np.nan), ["y"], impute="median")


def test_a_regression_label_on_a_rules_boundary_is_read_as_written_not_after_scaling():
    from deepsade.spec import parse_spec_text

    rng = np.random.default_rng(0)
    paid = rng.uniform(50, 2000, 400).round(2)
    refund = np.where(rng.random(400) < 0.3, paid, (paid * rng.uniform(0, 0.9, 400)).round(2))
    frame = pd.DataFrame({"nights": rng.integers(1, 9, 400), "paid": paid, "refund": refund})
    data = prepare(frame, ["paid", "refund"])
    spec = parse_spec_text("(declare-const paid Real)(declare-const refund Real)(assert (<= refund paid))",
                           data.encoding)
    # scaled and unscaled again, some refunds equal to what was paid come back a rounding above it
    round_trip = spec.evaluate_raw(data.raw_inputs, data.encoding.targets_as_scores(data.targets))
    assert (~round_trip).sum() > 0
    assert spec.evaluate_raw(data.raw_inputs, data.label_scores()).all()
