"""Metrics on hand-made predictions give the hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.artifact import ModelArtifact
from deepsade.ingest import prepare
from deepsade.metrics import compute_metrics, evaluate_model
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text

LOAN = ("(declare-const income Real)(declare-const credit Real)(declare-const status Real)\n"
        "(assert (=> (and (< income 5000) (= credit 0)) (< status 0)))")


def _loan_data():
    frame = pd.DataFrame({
        "income": [3000, 3000, 8000, 6000, 4000],
        "credit": [0.0, 0.0, 1.0, 0.0, 1.0],
        "status": ["N", "Y", "Y", "N", "Y"],  # row 1's true label breaks the rule
    })
    data = prepare(frame, ["status"], positive="Y")
    return data, parse_spec_text(LOAN, data.encoding)


def test_binary_accuracy_corrected_and_constraint_accuracy():
    data, spec = _loan_data()
    scores = np.array([[-2.0], [1.0], [3.0], [0.5], [-1.0]])  # right, right (but violates), right, wrong, wrong
    m = compute_metrics(spec, data, scores)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["label_violating_rows"] == 1
    assert m["accuracy_corrected"] == pytest.approx(2 / 4)  # row 1 left out
    assert m["constraint_accuracy"] == pytest.approx(4 / 5)
    assert m["violating_rows"] == 1 and m["violations_per_assert"] == [1]
    assert m["rows_outside_domain"] == 0


def test_regression_mse_in_raw_units_and_corrected():
    frame = pd.DataFrame({"a": [10.0, 20.0, 30.0], "y1": [1.0, 5.0, 9.0], "y2": [2.0, 4.0, 30.0]})
    data = prepare(frame, ["y1", "y2"])
    spec = parse_spec_text("(declare-const a Real)(declare-const y1 Real)(declare-const y2 Real)"
                           "(assert (<= (+ y1 y2) a))", data.encoding)
    raw_predictions = np.array([[2.0, 9.0], [5.0, 6.0], [9.0, 10.0]])  # row 0 breaks the rule (11 > 10)
    enc = data.encoding
    scaled = (raw_predictions - np.array(enc.target_min)) / (np.array(enc.target_max) - np.array(enc.target_min))
    m = compute_metrics(spec, data, scaled)
    assert m["mse_per_target"]["y1"] == pytest.approx(1 / 3)
    assert m["mse_per_target"]["y2"] == pytest.approx((49 + 4 + 400) / 3)
    assert m["mse"] == pytest.approx((1 / 3 + 151) / 2)
    assert m["label_violating_rows"] == 1  # 9 + 30 > 30
    assert m["mse_per_target_corrected"]["y1"] == pytest.approx(0.5)
    assert m["mse_per_target_corrected"]["y2"] == pytest.approx(26.5)
    assert m["mse_corrected"] == pytest.approx(13.5)
    assert m["constraint_accuracy"] == pytest.approx(2 / 3) and m["violating_rows"] == 1
    # R^2 per target, scale-free: y1's small error is a good fit, y2's a poor one (sklearn's definition)
    from sklearn.metrics import r2_score

    truth = frame[["y1", "y2"]].to_numpy()
    expected = r2_score(truth, raw_predictions, multioutput="raw_values")
    assert [m["r2_per_target"][n] for n in ("y1", "y2")] == pytest.approx(expected.tolist())
    assert m["r2_per_target_corrected"] == {"y1": pytest.approx(1 - 0.5 / 4), "y2": pytest.approx(1 - 26.5 / 1)}


def test_multilabel_coherent_flattened_jaccard():
    frame = pd.DataFrame({"x": [1.0, 7.0, 9.0, 3.0], "l1": [1, 1, 0, 0], "l2": [0, 1, 0, 1], "l3": [1, 0, 0, 1]})
    data = prepare(frame, ["l1", "l2", "l3"])
    spec = parse_spec_text("(declare-const x Real)(declare-const l1 Real)(assert (=> (> x 5) (> l1 0)))",
                           data.encoding)
    predicted = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]])
    scores = np.where(predicted == 1, 2.0, -2.0)
    m = compute_metrics(spec, data, scores)
    assert data.encoding.task == "multilabel"
    assert m["coherent_accuracy"] == pytest.approx(2 / 4)
    assert m["flattened_accuracy"] == pytest.approx(10 / 12)
    assert m["jaccard"] == pytest.approx((1 + 0.5 + 1 + 2 / 3) / 4)  # both empty counts as 1
    assert m["label_violating_rows"] == 1  # row 2: x > 5 but l1 = 0
    assert m["coherent_accuracy_corrected"] == pytest.approx(1 / 3)
    assert m["flattened_accuracy_corrected"] == pytest.approx(7 / 9)
    assert m["jaccard_corrected"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    assert m["constraint_accuracy"] == pytest.approx(0.5) and m["violating_rows"] == 2


def test_multiclass_accuracy_by_argmax_and_label_reading():
    frame = pd.DataFrame({"x": [1.0, 7.0, 9.0, 3.0], "c": ["A", "B", "C", "A"]})
    data = prepare(frame, ["c"])
    spec = parse_spec_text("(declare-const x Real)(declare-const |c=A| Real)(declare-const |c=B| Real)"
                           "(assert (=> (> x 5) (> |c=A| |c=B|)))", data.encoding)
    scores = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, 5.0], [0.0, 4.0, 1.0]])  # A, C, C, B
    m = compute_metrics(spec, data, scores)
    assert m["accuracy"] == pytest.approx(0.5)
    # labels read as +1 / -1 scores: row 1 (B: -1 > +1) and row 2 (C: -1 > -1) break the rule
    assert m["label_violating_rows"] == 2
    assert m["accuracy_corrected"] == pytest.approx(1 / 2)  # rows 0 (right) and 3 (wrong)
    assert m["violating_rows"] == 2  # row 1: score A 0 < score B 1; row 2: A 0 = B 0, not >


def test_no_clean_row_gives_none_not_nan():
    data, spec = _loan_data()
    only_bad = data.subset(np.array([1]))
    m = compute_metrics(spec, only_bad, np.array([[1.0]]))
    assert m["accuracy_corrected"] is None and m["accuracy"] == 1.0


def test_evaluate_model_counts_rows_outside_the_domain_and_reports_the_certificate():
    data, spec = _loan_data()
    model = SkipMLP(2, (3,), 1, spec.mapped_features)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.last.bias.fill_(-1.0)  # always "N"
    artifact = ModelArtifact(model=model, encoding=data.encoding, domain=data.domain, constraint_text=LOAN,
                             method="ffn", certificate={"verdict": "none", "note": "no certificate: trained with ffn"})
    frame = pd.DataFrame({"income": [3000, 90000], "credit": [0.0, 1.0], "status": ["N", "Y"]})
    new = prepare(frame, ["status"], encoding=data.encoding, domain=data.domain)
    m = evaluate_model(artifact, new)
    assert m["method"] == "ffn" and m["certificate"] == "none"
    assert m["rows_outside_domain"] == 1
    assert m["accuracy"] == pytest.approx(0.5) and m["violating_rows"] == 0
