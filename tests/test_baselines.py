"""Baselines (ffn, reg, sbr, sl): they train, their constraint losses mean what the constraint says,
and they refuse clearly where they do not apply."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.artifact import load, save
from deepsade.baselines import select_lambda, train_baseline
from deepsade.baselines.constraint import ViolationCounter, base_facts
from deepsade.baselines.fuzzy import FuzzyLoss
from deepsade.baselines.penalty import PenaltyLoss
from deepsade.baselines.semantic import SemanticLoss
from deepsade.baselines.stacked import StackedSkipMLP
from deepsade.errors import UserInputError
from deepsade.ingest import prepare
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text
from tests.conftest import run_cli

FAST = {"hidden": (8, 8), "epochs": 12, "batch_size": 16, "lr": 0.1, "quiet": True}


# ---- tiny problems, one per task -------------------------------------------------------------------

def _regression():
    rng = np.random.default_rng(0)
    n = 160
    a, b = rng.uniform(0, 10, n), rng.uniform(5, 15, n)
    frame = pd.DataFrame({"a": a, "b": b, "y1": 0.3 * a + rng.normal(0, 0.2, n),
                          "y2": 0.2 * b + rng.normal(0, 0.2, n)})
    text = ("(declare-const a Real)(declare-const b Real)(declare-const y1 Real)(declare-const y2 Real)\n"
            "(assert (<= (+ y1 y2) b))\n(assert (=> (< a 5) (and (>= y1 0) (<= y1 (* 0.5 a)))))")
    return frame, ["y1", "y2"], text


def _binary():
    rng = np.random.default_rng(1)
    n = 160
    income, credit = rng.uniform(1000, 10000, n).round(), rng.integers(0, 2, n).astype(float)
    status = np.where((credit == 1) | (income > 7000), "Y", "N")
    frame = pd.DataFrame({"income": income, "credit": credit, "noise": rng.normal(size=n), "status": status})
    text = ("(declare-const income Real)(declare-const credit Real)(declare-const status Real)\n"
            "(assert (=> (and (< income 5000) (= credit 0)) (< status 0)))")
    return frame, ["status"], text


def _multiclass():
    rng = np.random.default_rng(2)
    n = 180
    x1, flag = rng.uniform(0, 1, n), rng.integers(0, 2, n).astype(float)
    label = np.where(x1 < 0.33, "A", np.where(x1 < 0.66, "B", "C"))
    frame = pd.DataFrame({"x1": x1, "flag": flag, "cls": label})
    text = ("(declare-const flag Real)(declare-const |cls=A| Real)(declare-const |cls=B| Real)"
            "(declare-const |cls=C| Real)\n"
            "(assert (=> (= flag 1) (or (> |cls=A| |cls=C|) (> |cls=B| |cls=C|))))")
    return frame, ["cls"], text


def _multilabel():
    rng = np.random.default_rng(3)
    n = 160
    x1, x2 = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "l1": (x1 > 0.5).astype(int), "l2": (x2 > 0.5).astype(int),
                          "l3": ((x1 + x2) > 1).astype(int)})
    text = ("(declare-const x1 Real)(declare-const l1 Real)(declare-const l2 Real)(declare-const l3 Real)\n"
            "(define-fun on ((s Real)) Real (ite (> s 0.0) 1.0 0.0))\n"
            "(assert (=> (> x1 0.8) (>= (+ (on l1) (on l2) (on l3)) 1.0)))")
    return frame, ["l1", "l2", "l3"], text


PROBLEMS = {"regression": _regression, "binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel}


def _problem(task: str):
    frame, targets, text = PROBLEMS[task]()
    train = prepare(frame.iloc[:120], targets, task=task, positive="Y" if task == "binary" else None)
    val = prepare(frame.iloc[120:], targets, encoding=train.encoding, domain=train.domain)
    return train, val, parse_spec_text(text, train.encoding)


CASES = [("ffn", t) for t in PROBLEMS] + [("reg", "regression"), ("reg", "binary")] + \
        [("sbr", t) for t in PROBLEMS] + [("sl", "binary"), ("sl", "multiclass"), ("sl", "multilabel")]


@pytest.mark.parametrize("method, task", CASES)
def test_each_method_trains_and_lowers_its_loss(method, task):
    train, val, spec = _problem(task)
    artifact = train_baseline(method, train, val, spec, lambdas=(0.3, 0.6), seed=0, **FAST)
    losses = [h["train_loss"] for h in artifact.history]
    assert len(losses) == FAST["epochs"]
    assert min(losses[-3:]) < losses[0]
    assert artifact.method == method
    assert artifact.certificate == {"verdict": "none", "note": f"no certificate: trained with {method}"}
    assert {"train_loss", "val_loss", "val_violations", "seconds"} <= set(artifact.history[0])
    if method == "ffn":
        assert "lambda" not in artifact.training
    else:
        selection = artifact.training["lambda_selection"]
        assert [r["lambda"] for r in selection["results"]] == [0.3, 0.6]
        assert artifact.training["lambda"] == selection["chosen"]
    assert artifact.model.mapped_features.tolist() == spec.mapped_features


def test_constraint_losses_push_predictions_into_the_constraint():
    """With lambda 0.9 the penalty methods end with fewer violating validation rows than ffn."""
    train, val, spec = _problem("binary")
    train.targets[(train.raw_inputs[:, 0] < 5000) & (train.raw_inputs[:, 1] == 0)] = 1.0  # labels break the rule
    settings = dict(FAST, epochs=30)
    plain = train_baseline("ffn", train, val, spec, seed=0, **settings)
    for method in ("reg", "sbr", "sl"):
        constrained = train_baseline(method, train, val, spec, lambdas=0.9, seed=0, **settings)
        counter = ViolationCounter(spec)
        facts = base_facts(spec, val)
        outputs = {name: art.model(torch.as_tensor(val.inputs, dtype=torch.float32)) for name, art in
                   (("ffn", plain), (method, constrained))}
        assert int(counter(outputs[method], facts).sum()) < int(counter(outputs["ffn"], facts).sum())


def test_artifact_round_trip_and_evaluate_cli(tmp_path):
    frame, targets, text = _binary()
    train, val, spec = _problem("binary")
    artifact = train_baseline("sbr", train, val, spec, lambdas=0.5, seed=0, **FAST)
    save(artifact, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.method == "sbr" and loaded.certificate["verdict"] == "none"
    assert loaded.training["lambda"] == 0.5 and loaded.training["tnorm"] == "product"
    x = torch.as_tensor(val.inputs, dtype=torch.float32)
    assert torch.equal(loaded.model(x), artifact.model(x))
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = run_cli("evaluate", str(tmp_path / "model"), str(tmp_path / "data.csv"), "--out",
                     str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert "certificate: none" in result.stdout and "rows outside the domain box" in result.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["method"] == "sbr" and metrics["n_rows"] == len(frame)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_evaluate_cli_bad_model_dir_is_one_line(tmp_path):
    frame, _, _ = _binary()
    frame.to_csv(tmp_path / "data.csv", index=False)
    result = run_cli("evaluate", str(tmp_path / "nothing"), str(tmp_path / "data.csv"))
    assert result.returncode == 2
    assert "not a deepsade model directory" in result.stderr and "Traceback" not in result.stderr


# ---- the penalty and the fuzzy truth ---------------------------------------------------------------

def _regression_batch(train, spec, outputs_raw: np.ndarray):
    enc = train.encoding
    scaled = (outputs_raw - np.asarray(enc.target_min)) / (np.asarray(enc.target_max) - np.asarray(enc.target_min))
    outputs = torch.tensor(scaled, dtype=torch.float32, requires_grad=True)
    return outputs, base_facts(spec, train)


def _satisfying_and_violating(train):
    """Raw outputs that satisfy both asserts on every row, and ones that break the first on every row."""
    a, b = train.raw_inputs[:, 0], train.raw_inputs[:, 1]
    good = np.column_stack([np.where(a < 5, 0.25 * a, 0.5), 0.25 * b])
    bad = np.column_stack([np.where(a < 5, 0.25 * a, 0.5), b + 1.0])
    return good, bad


@pytest.mark.parametrize("make_loss", [PenaltyLoss, lambda s: FuzzyLoss(s, "product"),
                                       lambda s: FuzzyLoss(s, "lukasiewicz")])
def test_penalty_and_fuzzy_are_zero_exactly_where_the_constraint_holds(make_loss):
    train, _, spec = _problem("regression")
    loss = make_loss(spec)
    good, bad = _satisfying_and_violating(train)
    outputs, facts = _regression_batch(train, spec, good)
    assert not ViolationCounter(spec)(outputs, facts).any()
    assert torch.equal(loss(outputs, facts), torch.zeros(train.n_rows))
    outputs, facts = _regression_batch(train, spec, bad)
    values = loss(outputs, facts)
    assert ViolationCounter(spec)(outputs, facts).all()
    assert (values > 0).all()
    (gradient,) = torch.autograd.grad(values.sum(), outputs)
    assert (gradient.abs().sum(dim=1) > 0).all()


def test_fuzzy_truth_is_one_exactly_where_it_holds_and_below_one_elsewhere():
    train, _, spec = _problem("binary")
    loss = FuzzyLoss(spec)
    facts = base_facts(spec, train)
    premise = facts["premises"][:, 0]
    assert 0 < int(premise.sum()) < train.n_rows
    scores = torch.where(premise, -1.0, 3.0).reshape(-1, 1).requires_grad_(True)
    assert torch.equal(loss.truth(scores, facts), torch.ones(train.n_rows))
    flipped = torch.where(premise, 0.5, 3.0).reshape(-1, 1).requires_grad_(True)
    truth = loss.truth(flipped, facts)
    assert torch.all(truth[premise] < 1) and torch.all(truth[~premise] == 1)
    (gradient,) = torch.autograd.grad(truth.sum(), flipped)
    assert torch.all(gradient[premise] < 0) and torch.all(gradient[~premise] == 0)


def test_premise_masks_the_penalty_exactly():
    """A row outside the premise never pays, however wrong its prediction."""
    train, _, spec = _problem("binary")
    facts = base_facts(spec, train)
    premise = facts["premises"][:, 0]
    scores = torch.full((train.n_rows, 1), 5.0, requires_grad=True)
    values = PenaltyLoss(spec)(scores, facts)
    assert torch.equal(values[~premise], torch.zeros(int((~premise).sum())))
    assert torch.allclose(values[premise], torch.full((int(premise.sum()),), 5.0))


def test_penalty_and_fuzzy_are_vectorised_over_side_by_side_models():
    train, _, spec = _problem("regression")
    good, bad = _satisfying_and_violating(train)
    one, facts = _regression_batch(train, spec, good)
    two, _ = _regression_batch(train, spec, bad)
    stacked = torch.stack([one, two])
    for loss in (PenaltyLoss(spec), FuzzyLoss(spec)):
        values = loss(stacked, facts)
        assert values.shape == (2, train.n_rows)
        assert torch.allclose(values[0], loss(one, facts)) and torch.allclose(values[1], loss(two, facts))


# ---- the semantic loss -----------------------------------------------------------------------------

def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_semantic_loss_equals_brute_force_multilabel():
    train, _, spec = _problem("multilabel")
    loss = SemanticLoss(spec, "multilabel")
    facts = loss.row_facts(train)
    rows = torch.arange(12)
    scores = torch.tensor(np.random.default_rng(5).normal(0, 2, (12, 3)), dtype=torch.float64)
    values = loss(scores, {k: v[rows] for k, v in facts.items()})
    for i in range(12):
        premise = train.raw_inputs[i, 0] > 0.8
        p = [_sigmoid(float(s)) for s in scores[i]]
        satisfied = 0.0
        for labels in itertools.product((0, 1), repeat=3):
            if not premise or sum(labels) >= 1:
                satisfied += math.prod(pk if lk else 1 - pk for pk, lk in zip(p, labels, strict=True))
        assert float(values[i]) == pytest.approx(-math.log(satisfied), abs=1e-9)


def test_semantic_loss_equals_brute_force_multiclass():
    train, _, spec = _problem("multiclass")
    loss = SemanticLoss(spec, "multiclass")
    facts = loss.row_facts(train)
    scores = torch.tensor(np.random.default_rng(6).normal(0, 2, (train.n_rows, 3)), dtype=torch.float64)
    values = loss(scores, facts)
    flag = train.raw_inputs[:, train.encoding.input_names.index("flag")] == 1
    probabilities = torch.softmax(scores, dim=1).numpy()
    expected = np.where(flag, -np.log(probabilities[:, 0] + probabilities[:, 1]), 0.0)  # A or B, never C
    assert np.allclose(values.numpy(), expected, atol=1e-12)


def test_semantic_loss_binary_is_softplus_under_the_premise():
    train, _, spec = _problem("binary")
    loss = SemanticLoss(spec, "binary")
    facts = loss.row_facts(train)
    scores = torch.linspace(-3, 3, train.n_rows, dtype=torch.float64).reshape(-1, 1)
    expected = torch.where(facts["premises"][:, 0], torch.nn.functional.softplus(scores[:, 0]), 0.0)
    assert torch.allclose(loss(scores, facts), expected)


def test_semantic_loss_refuses_regression_clearly():
    train, val, spec = _problem("regression")
    with pytest.raises(UserInputError, match="regression.*use --method reg or --method sbr"):
        train_baseline("sl", train, val, spec, **FAST)


def test_semantic_loss_refuses_a_score_compared_with_a_threshold():
    train, val, _ = _problem("binary")
    spec = parse_spec_text("(declare-const income Real)(declare-const status Real)\n"
                           "(assert (=> (< income 5000) (< status 0.5)))", train.encoding)
    with pytest.raises(UserInputError, match="sign of one score.*sbr"):
        train_baseline("sl", train, val, spec, **FAST)


def test_penalty_refuses_non_linear_asserts_and_suggests_sbr():
    train, val, _ = _problem("multilabel")
    spec = parse_spec_text(_multilabel()[2], train.encoding)
    with pytest.raises(UserInputError, match="non-linear: use --method sbr"):
        train_baseline("reg", train, val, spec, **FAST)
    disjunction = parse_spec_text("(declare-const l1 Real)(declare-const l2 Real)(assert (or (> l1 0) (> l2 0)))",
                                  train.encoding)
    with pytest.raises(UserInputError, match="conjunction of comparisons.*sbr"):
        train_baseline("reg", train, val, disjunction, **FAST)


# ---- lambda selection, inner folds, side-by-side models ----------------------------------------------

def test_select_lambda_takes_the_smallest_with_fewest_violations():
    assert select_lambda([0.1, 0.2, 0.3, 0.4], [5, 2, 2, 3]) == 1
    assert select_lambda([0.5, 0.1, 0.3], [0, 0, 1]) == 1
    assert select_lambda([0.7], [4]) == 0


def test_inner_folds_choose_lambda_then_train_once_more():
    train, val, spec = _problem("binary")
    artifact = train_baseline("sbr", train, val, spec, lambdas=(0.2, 0.8), inner_folds=2, seed=0,
                              **dict(FAST, epochs=4))
    selection = artifact.training["lambda_selection"]
    assert selection["inner_folds"] == 2 and "cross-validation" in selection["rule"]
    assert artifact.training["lambda"] in (0.2, 0.8)
    assert len(artifact.history) == 4


def test_training_is_reproducible_for_a_seed():
    train, val, spec = _problem("binary")
    first = train_baseline("sl", train, val, spec, lambdas=0.5, seed=3, **dict(FAST, epochs=3))
    second = train_baseline("sl", train, val, spec, lambdas=0.5, seed=3, **dict(FAST, epochs=3))
    x = torch.as_tensor(val.inputs, dtype=torch.float32)
    assert torch.equal(first.model(x), second.model(x))


def test_stacked_copies_compute_what_each_skip_mlp_computes():
    torch.manual_seed(0)
    template = SkipMLP(4, (6, 5), 2, [1, 3])
    stack = StackedSkipMLP(template, 3)
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(torch.randn_like(p))
    x = torch.rand(7, 4)
    out = stack(x)
    for copy in range(3):
        assert torch.allclose(out[copy], stack.export(copy)(x), atol=1e-5)


def test_bad_settings_are_user_errors():
    train, val, spec = _problem("binary")
    with pytest.raises(UserInputError, match="unknown baseline method"):
        train_baseline("magic", train, val, spec, **FAST)
    with pytest.raises(UserInputError, match=r"\[0, 1\]"):
        train_baseline("reg", train, val, spec, lambdas=(1.5,), **FAST)
    with pytest.raises(UserInputError, match="t-norm"):
        train_baseline("sbr", train, val, spec, tnorm="goedel", **FAST)
