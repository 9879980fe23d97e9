"""The scikit-learn estimators: the estimator contract (``check_estimator``), clone / GridSearchCV /
cross_val_score, arrays and DataFrames, and a certificate that holds on the fitted model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_regressors_train,
    parametrize_with_checks,
)

from deepsade import artifact as artifact_io
from deepsade import checkpoint
from deepsade.cli.train import train as train_command
from deepsade.errors import UserInputError
from deepsade.estimator import DeepSaDe
from deepsade.sklearn_api import DeepSaDeClassifier, DeepSaDeRegressor
from deepsade.usecases.toy import generate_binary, generate_regression

PACKAGE = Path(__file__).resolve().parents[1] / "deepsade"
BOUNDS_RULE = PACKAGE / "constraints" / "example_bounds.smt2"  # 0 <= y <= x1
IMPLICATION_RULE = PACKAGE / "constraints" / "example_implication.smt2"  # a > 0.7 and b > 0.7 -> label "yes"

# Tiny settings: every check fits in well under a second.
TINY = {"hidden": (8,), "epochs": 3, "batch_size": 16, "val_fraction": 0.0, "solver_timeout": 2.0}
# Enough training to reach scikit-learn's quality bars (R^2 > 0.5, accuracy > 0.83) on its check data.
SMALL = {"hidden": (16,), "epochs": 10, "batch_size": 4, "lr": 0.3, "val_fraction": 0.0, "solver_timeout": 2.0}

# The check suite feeds data whose columns are x0, x1, ... and whose target is y. A rule names outputs,
# and which outputs exist depends on the target: a binary y is one score `y`, a multiclass y one score per
# class `|y=0|`, ..., a multi-label y one score per column `y0`, ... So each estimator is checked under a
# rule that binds for one kind of target, and a check that only feeds another kind is an expected failure.
REGRESSION_RULE = "(declare-const y Real) (assert (<= y 1000000.0))"
BINARY_RULE = "(declare-const y Real) (assert (<= y 1000.0))"  # a bound on the score
MULTICLASS_RULE = "(declare-const |y=0| Real) (assert (<= |y=0| 1000.0))"  # any multiclass y with a class 0

NAMES_NOT_IN_RULE = "the check's y gives outputs the rule does not name, so fit refuses the data (clear ValueError)"
MULTICLASS_DATA = f"feeds a multiclass y (scores |y=0|, |y=1|, ...): {NAMES_NOT_IN_RULE}"
BINARY_DATA = f"feeds a binary y (one score y): {NAMES_NOT_IN_RULE}"
MULTILABEL_DATA = f"feeds a multi-label y (scores y0, y1, ...): {NAMES_NOT_IN_RULE}"
STRING_CLASSES = f"feeds classes 'one', 'two', 'three' (no class 0): {NAMES_NOT_IN_RULE}"
QUALITY = ("asserts R^2 > 0.5 / accuracy > 0.83 after training with the tiny settings used for speed here; "
           "test_quality_bars runs it with enough epochs")

_FEED_MULTICLASS = ["check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
                "check_estimators_fit_returns_self", "check_readonly_memmap_input",
                "check_n_features_in_after_fitting", "check_dtype_object", "check_f_contiguous_array_estimator",
                "check_supervised_y_2d", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
                "check_dict_unchanged", "check_fit2d_predict1d", "check_positive_only_tag_during_fit"]
_MULTILABEL = ["check_classifiers_multilabel_representation_invariance",
               "check_classifiers_multilabel_output_format_predict",
               "check_classifiers_multilabel_output_format_predict_proba",
               "check_classifiers_multilabel_output_format_decision_function"]


def _expected_failures(estimator) -> dict[str, str]:
    """Each check this estimator's rule cannot take, with the reason (see the comment above)."""
    if isinstance(estimator, DeepSaDeRegressor):
        return {"check_regressors_train": QUALITY,
                "check_regressor_multioutput": "feeds a 5-column y (outputs y0..y4): " + NAMES_NOT_IN_RULE}
    failures = {name: MULTILABEL_DATA for name in _MULTILABEL}
    failures["check_classifiers_train"] = "runs a binary and a multiclass y in one check; test_quality_bars " \
                                          "runs both, each under its own rule"
    failures["check_classifiers_classes"] = STRING_CLASSES
    if estimator.constraint == BINARY_RULE:
        failures.update({name: MULTICLASS_DATA for name in _FEED_MULTICLASS})
    else:
        failures.update({name: BINARY_DATA for name in _FEED_BINARY})
    return failures


_FEED_BINARY = ["check_estimators_dtypes", "check_pipeline_consistency", "check_estimators_nan_inf",
                    "check_estimators_pickle", "check_classifier_data_not_an_array",
                    "check_decision_proba_consistency", "check_fit2d_1feature", "check_fit_idempotent",
                    "check_fit_check_is_fitted", "check_n_features_in"]


@parametrize_with_checks(
    [DeepSaDeRegressor(REGRESSION_RULE, **TINY), DeepSaDeClassifier(BINARY_RULE, **TINY),
     DeepSaDeClassifier(MULTICLASS_RULE, **TINY)],
    expected_failed_checks=_expected_failures, xfail_strict=True)
def test_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


def test_quality_bars():
    """scikit-learn's own quality checks (R^2 > 0.5; accuracy > 0.83 on binary and on multiclass blobs)."""
    check_regressors_train("DeepSaDeRegressor", DeepSaDeRegressor(REGRESSION_RULE, **SMALL))
    X, y = make_blobs(n_samples=200, centers=3, random_state=0, cluster_std=0.5)
    for rule, labels in ((BINARY_RULE, (y > 0).astype(int)), (MULTICLASS_RULE, y)):
        model = DeepSaDeClassifier(rule, **SMALL).fit(X, labels)
        assert model.certificate_["verdict"] == "certified"
        assert model.score(X, labels) > 0.83


def test_regressor_on_arrays_keeps_its_rule_on_the_whole_box():
    frame = generate_regression(200, seed=0)
    X, y = frame[["x1", "x2", "x3"]].to_numpy(), frame["y"].to_numpy()
    model = DeepSaDeRegressor(BOUNDS_RULE, features=["x1", "x2", "x3"], **SMALL).fit(X, y)
    assert model.certificate_["verdict"] == "certified"
    assert model.input_columns_ == ["x1", "x2", "x3"] and model.target_names_ == ["y"]
    box = np.random.default_rng(1).uniform(X.min(axis=0), X.max(axis=0), size=(2000, 3))  # not the data
    predicted = model.predict(box)
    assert predicted.shape == (2000,) and model.in_domain(box).all()
    assert (predicted >= -1e-3).all() and (predicted <= box[:, 0] + 1e-3).all()  # 0 <= y <= x1 (raw units)
    outside = box[:3] + [100.0, 0.0, 0.0]
    assert not model.in_domain(outside).any()  # no guarantee there, and the flag says so
    assert -1.0 <= model.score(X, y) <= 1.0  # R^2


def test_classifier_on_frames_in_a_pipeline_with_grid_search_and_cross_validation():
    frame = generate_binary(240, seed=0)
    X, y = frame[["a", "b", "c"]], frame["label"]  # the Series' name binds the rule's output `label`
    X = X.mask(np.random.default_rng(0).random(X.shape) < 0.02)  # a few holes for the imputer
    pipeline = make_pipeline(SimpleImputer(strategy="median").set_output(transform="pandas"),
                             DeepSaDeClassifier(IMPLICATION_RULE, **TINY))
    search = GridSearchCV(pipeline, {"deepsadeclassifier__hidden": [(4,), (8,)],
                                     "deepsadeclassifier__lr": [0.1, 0.3]}, cv=2)
    search.fit(X, y)
    best = search.best_estimator_[-1]
    assert best.certificate_["verdict"] == "certified"
    assert list(best.classes_) == ["no", "yes"] and best.input_columns_ == ["a", "b", "c"]
    assert set(search.best_params_) == {"deepsadeclassifier__hidden", "deepsadeclassifier__lr"}
    proba = search.predict_proba(X)
    assert proba.shape == (240, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert ((search.decision_function(X) > 0) == (search.predict(X) == "yes")).all()
    # the rule on points of the box that are not data: a, b > 0.7 -> "yes"
    grid = pd.DataFrame(np.random.default_rng(2).uniform([0.7, 0.7, 0.0], [1.0, 1.0, 1.0], (500, 3)),
                        columns=["a", "b", "c"]) + [1e-3, 1e-3, 0.0]
    grid = grid[best.in_domain(grid)]
    assert len(grid) > 100 and (best.predict(grid) == "yes").all()

    scores = cross_val_score(DeepSaDeClassifier(IMPLICATION_RULE, **TINY), X.fillna(0.5), y, cv=3)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    fresh = clone(best)
    assert fresh.get_params() == best.get_params() and not hasattr(fresh, "certificate_")


def test_classifier_labels_and_positive_class():
    frame = generate_binary(200, seed=3)
    X, y = frame[["a", "b", "c"]].to_numpy(), frame["label"].map({"no": 0, "yes": 1}).to_numpy()
    rule = IMPLICATION_RULE.read_text().replace("label", "approved")
    model = DeepSaDeClassifier(rule, features=["a", "b", "c"], targets="approved", **TINY).fit(X, y)
    assert list(model.classes_) == [0, 1] and model.predict(X).dtype == y.dtype
    # positive=0: the rule's score speaks for class 0, while decision_function > 0 still means classes_[1]
    flipped = DeepSaDeClassifier(rule, features=["a", "b", "c"], targets="approved", positive=0, **TINY).fit(X, y)
    assert ((flipped.decision_function(X) > 0) == (flipped.predict(X) == 1)).all()
    with pytest.raises(ValueError, match="positive=2 is not one of the classes"):
        DeepSaDeClassifier(rule, features=["a", "b", "c"], targets="approved", positive=2, **TINY).fit(X, y)
    with pytest.raises(ValueError, match="neither inputs nor outputs: 'label'"):  # the rule's names must bind
        DeepSaDeClassifier(IMPLICATION_RULE, features=["a", "b", "c"], **TINY).fit(X, y)


def test_fit_with_out_runs_the_checkpoint_lifecycle_of_deepsade_train(tmp_path, monkeypatch):
    """The DeepSaDe trainer's checkpoints (its bounds rule would otherwise be taken by sequential clamps)."""
    frame = generate_regression(80, seed=0)
    X, y = frame[["x1", "x2", "x3"]], frame["y"]
    out = tmp_path / "model"
    model = DeepSaDeRegressor(BOUNDS_RULE, method="deepsade", out=out, **TINY).fit(X, y)
    assert artifact_io.load(out).certificate["verdict"] == "certified" == model.certificate_["verdict"]
    assert not checkpoint.exists(checkpoint.default_directory(out)) and model.checkpoint_kept_ is None

    def cannot_write(art, directory):
        raise UserInputError(f"cannot write the model directory {directory}: disk full")

    monkeypatch.setattr(artifact_io, "save", cannot_write)
    other = tmp_path / "other"
    with pytest.raises(UserInputError, match="resume"):
        DeepSaDeRegressor(BOUNDS_RULE, method="deepsade", out=other, **TINY).fit(X, y)
    assert checkpoint.exists(checkpoint.default_directory(other))  # the trained state is kept
    with pytest.raises(UserInputError, match="interrupted run"):  # a fresh fit refuses to throw it away
        DeepSaDeRegressor(BOUNDS_RULE, method="deepsade", out=other, **TINY).fit(X, y)
    monkeypatch.undo()
    resumed = DeepSaDeRegressor(BOUNDS_RULE, method="deepsade", out=other, resume=True, **TINY).fit(X, y)
    assert resumed.certificate_["verdict"] == "certified" and artifact_io.load(other).certificate == \
        resumed.certificate_
    assert not checkpoint.exists(checkpoint.default_directory(other))


def test_parameter_names_are_the_cli_flags():
    flags = {name.lstrip("-").replace("-", "_") for param in train_command.params
             for name in getattr(param, "opts", []) if name.startswith("--")}
    python_only = {"baseline_options", "progress"}  # a dict and a callback have no flag
    for estimator in (DeepSaDeRegressor(REGRESSION_RULE), DeepSaDeClassifier(BINARY_RULE),
                      DeepSaDe(REGRESSION_RULE, "y")):
        names = set(estimator.get_params()) - python_only
        names = {"target" if name == "targets" else name for name in names}  # --target, repeated
        assert names <= flags, names - flags
    assert "margin" in flags and "domain" in flags and "output_margin" not in flags
