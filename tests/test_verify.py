"""Counterexample search (Marabou and z3), Adversity Index and the `adi` / `verify` commands.

Small networks only: a model trained to break its constraint, models that satisfy it by construction,
random networks on which the two engines must agree instance by instance, and every counterexample
re-checked by evaluating the torch model itself."""

from __future__ import annotations

import copy
import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import deepsade.verification.marabou_engine as marabou_engine
from deepsade.artifact import ModelArtifact, save
from deepsade.cli import main
from deepsade.data import default_domain
from deepsade.ingest import fit_encoding, prepare
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text
from deepsade.verification import (
    Answer,
    NetworkWeights,
    Verifier,
    VerifierConfig,
    adversity_index,
    make_plan,
    raw_inputs,
    verify_domain,
    violation_disjuncts,
)
from tests.conftest import run_cli

TOLERANCE = 1e-6  # float64 evaluation may sit this close to a boundary

# ---- fixtures: data, encodings, models -------------------------------------------------------------------


def regression_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """x1 in [0, 10], x2 in [-5, 5] (raw units differ from scaled ones on purpose), y = 2 * x1."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(0, 10, n), rng.uniform(-5, 5, n)
    x1[:2], x2[:2] = [0, 10], [-5, 5]
    return pd.DataFrame({"x1": x1, "x2": x2, "y": 2 * x1})


Y_LEQ_X1 = "(declare-const x1 Real)\n(declare-const y Real)\n(assert (<= y x1))\n"


def trained_violator(frame: pd.DataFrame) -> ModelArtifact:
    """An unconstrained SkipMLP fitted to y = 2 x1: it breaks y <= x1 almost everywhere."""
    data = prepare(frame, ["y"])
    spec = parse_spec_text(Y_LEQ_X1, data.encoding)
    torch.manual_seed(0)
    model = SkipMLP(2, [8], 1, spec.mapped_features)
    x = torch.tensor(data.inputs, dtype=torch.float32)
    y = torch.tensor(data.targets, dtype=torch.float32)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        optimiser.step()
    assert loss.item() < 1e-3
    return ModelArtifact(model, data.encoding, data.domain, Y_LEQ_X1, method="test")


def safe_by_construction(frame: pd.DataFrame) -> ModelArtifact:
    """y = 0.5 x1 - 0.1 (raw units) through the skip connection, zero weights on h: y <= x1 for x1 >= 0."""
    data = prepare(frame, ["y"])
    torch.manual_seed(1)
    model = SkipMLP(2, [8, 8], 1, [0])
    with torch.no_grad():
        model.last.weight.zero_()
        model.last.weight[0, -1] = 0.25  # scaled: y_s = y / 20, x1_s = x1 / 10
        model.last.bias.fill_(-0.005)
    return ModelArtifact(model, data.encoding, data.domain, Y_LEQ_X1, method="test")


def verifier(artifact: ModelArtifact, **options) -> Verifier:
    return VerifierConfig.from_artifact(artifact, **options).build()


def torch_outputs(model: SkipMLP, scaled_point: np.ndarray) -> np.ndarray:
    """The torch model itself, evaluated in float64."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.tensor(np.atleast_2d(scaled_point), dtype=torch.float64)).numpy()


def assert_real_counterexample(artifact: ModelArtifact, v: Verifier, outcome) -> None:
    """The counterexample breaks the asserts it names when the torch model is evaluated there (float64),
    up to a tolerance at the boundary; and it lies in the domain box."""
    assert outcome.status == "counterexample" and outcome.broken
    lower, upper = artifact.domain.scaled(artifact.encoding)
    assert np.all(outcome.point >= lower - 1e-12) and np.all(outcome.point <= upper + 1e-12)
    outputs = torch_outputs(artifact.model, outcome.point)
    np.testing.assert_allclose(outputs[0], outcome.outputs, atol=1e-5)
    truth = v.spec.evaluate_scaled(outcome.point[None, :], outputs)[0]
    nudged = [v.spec.evaluate_scaled(outcome.point[None, :], outputs + s * TOLERANCE)[0] for s in (-1, 1)]
    for index in outcome.broken:
        assert not truth[index] or not all(n[index] for n in nudged), f"assert {index} holds at the counterexample"


# ---- the violation as linear disjuncts ------------------------------------------------------------------


def multilabel_encoding():
    # a fractional row: a and b are real-valued inputs (all-whole columns would be integer inputs)
    frame = pd.DataFrame({"a": [0.0, 1.0, 0.5], "b": [0.0, 1.0, 0.25], "l0": [0, 1, 0], "l1": [1, 0, 0],
                          "l2": [0, 1, 1], "l3": [1, 0, 1]})
    return fit_encoding(frame, ["l0", "l1", "l2", "l3"], ["a", "b"], task="multilabel")


COUNT_CONSTRAINT = """(declare-const l0 Real)(declare-const l1 Real)(declare-const l2 Real)(declare-const l3 Real)
(assert (> (+ (* 0 (ite (> l0 0) 1 0)) (* 1 (ite (> l1 0) 1 0)) (* 2 (ite (> l2 0) 1 0)) (* 3 (ite (> l3 0) 1 0))) 2))
(assert (= (+ (ite (> l0 0) 1 0) (ite (> l1 0) 1 0) (ite (> l2 0) 1 0) (ite (> l3 0) 1 0)) 1))
"""


def _holds(atom, env: dict[str, np.ndarray]) -> np.ndarray:
    value = sum(float(c) * env[name] for name, c in atom.terms)
    bound = float(atom.bound)
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound, ">": value > bound,
            "==": value == bound}[atom.op]


def test_ite_count_violation_is_exactly_the_breaking_sign_patterns():
    spec = parse_spec_text(COUNT_CONSTRAINT, multilabel_encoding())
    rng = np.random.default_rng(0)
    outputs = rng.choice([-1.0, -0.3, 0.0, 0.2, 1.5], size=(2000, 4))
    env = {f"y!{k}": outputs[:, k] for k in range(4)} | {"x!0": np.zeros(2000), "x!1": np.zeros(2000)}
    truth = spec.evaluate_scaled(np.zeros((2000, 2)), outputs)
    sizes = []
    for a in spec.asserts:
        disjuncts, reason = violation_disjuncts(a)
        assert disjuncts is not None, reason
        sizes.append(len(disjuncts))
        broken = np.zeros(2000, dtype=bool)
        for disjunct in disjuncts:
            broken |= np.logical_and.reduce([_holds(atom, env) for atom in disjunct])
        np.testing.assert_array_equal(broken, ~truth[:, a.index])
    # merged into cubes instead of one disjunct per breaking pattern (10 and 11 patterns)
    assert sizes == [2, 7]


def test_too_many_patterns_or_nonlinear_goes_to_z3_with_a_note():
    names = [f"l{k}" for k in range(14)]
    frame = pd.DataFrame({"a": [0.0, 1.0], **{n: [0, 1] for n in names}})
    encoding = fit_encoding(frame, names, ["a"], task="multilabel")
    declare = "".join(f"(declare-const {n} Real)" for n in names) + "(declare-const a Real)"
    count = " ".join(f"(ite (> {n} 0) 1 0)" for n in names)
    spec = parse_spec_text(declare + f"(assert (>= (+ {count}) 3))(assert (<= (* l0 l1) a))", encoding)
    plan = make_plan(spec, "marabou")
    assert plan.on("marabou") == [] and plan.on("z3") == [0, 1]
    assert len(plan.notes) == 2 and "ite conditions" in plan.notes[0] and "non-linear" in plan.notes[1]


# ---- sound bounds --------------------------------------------------------------------------------------


def test_bounds_contain_every_sampled_value():
    torch.manual_seed(3)
    weights = NetworkWeights.from_model(SkipMLP(3, [20, 20, 10], 2, [0, 2]))
    rng = np.random.default_rng(1)
    low, high = np.array([0.1, 0.3, 0.0]), np.array([0.4, 0.5, 1.0])
    relaxation = weights.propagate(low, high)
    points = low + rng.random((20000, 3)) * (high - low)
    h = points
    for (w, b), (pre_low, pre_high) in zip(weights.hidden, relaxation.preactivation, strict=True):
        pre = h @ w.T + b
        assert np.all(pre >= pre_low) and np.all(pre <= pre_high)
        h = np.maximum(pre, 0)
    on_outputs, on_inputs = rng.normal(size=(5, 2)), rng.normal(size=(5, 3))
    values = weights.forward(points) @ on_outputs.T + points @ on_inputs.T
    bound = weights.output_lower_bound(relaxation, on_outputs, on_inputs, np.zeros(5))
    assert np.all(values >= bound)
    assert np.all(values.min(axis=0) - bound < 2.0)  # and not vacuous


# ---- regression: a trained violator and a model safe by construction ---------------------------------------


def test_trained_violator_has_counterexamples_everywhere():
    frame = regression_frame()
    artifact = trained_violator(frame)
    data = prepare(frame, ["y"])
    report = adversity_index(artifact, data.inputs[:30], [0.1, 0.01], progress=False)
    by_eps = {part["epsilon"]: part for part in report.summary["epsilons"]}
    assert by_eps[0.1]["adi"] > 0.8 and by_eps[0.01]["adi"] > 0.5
    assert by_eps[0.1]["unknown"] == 0
    v = verifier(artifact)
    cex = report.table[report.table.status == "counterexample"]
    assert (cex["pred:y"] > cex["cex:x1"] - TOLERANCE).all()  # raw units: y > x1 there
    points = artifact.encoding.scale_inputs(cex[["cex:x1", "cex:x2"]].to_numpy())
    distance = np.abs(points - data.inputs[cex["row"].to_numpy()]).max(axis=1)
    assert np.all(distance <= cex["epsilon"].to_numpy() + 1e-9)  # inside the ball
    predicted = data.encoding.outputs_to_raw(torch_outputs(artifact.model, points))[:, 0]
    np.testing.assert_allclose(predicted, cex["pred:y"], rtol=1e-6, atol=1e-6)
    outcome, _ = verify_domain(artifact, presample=0, bound_check=False)
    assert outcome.decided_by == "marabou"
    assert_real_counterexample(artifact, v, outcome)


def test_model_safe_by_construction_is_verified_by_both_engines():
    frame = regression_frame()
    artifact = safe_by_construction(frame)
    data = prepare(frame, ["y"])
    for engine in ("marabou", "z3"):
        report = adversity_index(artifact, data.inputs[:20], [0.1, 0.01], engine=engine, presample=0,
                                 bound_check=False, progress=False)
        for part in report.summary["epsilons"]:
            assert part["adi"] == 0 and part["verified"] == 20 and part["unknown"] == 0
        assert set(report.table.decided_by) == {engine}
        outcome, _ = verify_domain(artifact, engine=engine, presample=0, bound_check=False)
        assert (outcome.status, outcome.decided_by) == ("verified", engine)
    outcome, _ = verify_domain(artifact)  # the bound pre-check alone proves it
    assert (outcome.status, outcome.decided_by) == ("verified", "bounds")


# ---- the engines agree on random networks ------------------------------------------------------------------


def agreement(artifact: ModelArtifact, centers: np.ndarray, eps: float, rechecks_allowed: int = 0) -> list[str]:
    """Both engines on every instance (no sampling, no bound pre-check): the same verdicts, and every
    counterexample real. Returns the verdicts.

    A Marabou point that fails the exact re-check is settled by z3 ('marabou+z3'); that is legitimate
    for a violation that sits exactly on a non-strict boundary (float rounding moves it off), and
    ``rechecks_allowed`` says how often it may happen."""
    verdicts = {}
    for engine in ("marabou", "z3"):
        v = verifier(artifact, engine=engine, presample=0, bound_check=False, timeout=20)
        outcomes = [v.check_ball(c, eps) for c in centers]
        deciders = [o.decided_by for o in outcomes]
        assert all(d.startswith(engine) for d in deciders), deciders
        assert deciders.count("marabou+z3") <= rechecks_allowed, deciders
        for o in outcomes:
            if o.status == "counterexample":
                assert_real_counterexample(artifact, v, o)
        verdicts[engine] = [o.status for o in outcomes]
    assert verdicts["marabou"] == verdicts["z3"]
    return verdicts["z3"]


def test_engines_agree_on_a_random_regression_network():
    frame = regression_frame(seed=1)
    frame["y2"] = frame["x2"] ** 2
    data = prepare(frame, ["y", "y2"])
    torch.manual_seed(5)
    model = SkipMLP(2, [10, 10], 2, [0, 1])
    weights = NetworkWeights.from_model(model)
    centers = data.inputs[:24]
    margin = weights.forward(centers)
    # thresholds from the network's own outputs so that some balls are safe and some are not
    t1, t2 = np.quantile(margin[:, 0] - centers[:, 0], 0.5), np.quantile(margin[:, 1], 0.6)
    raw_t1 = 20 * t1  # y = 20 y_s, x1 = 10 x1_s
    y2_low, y2_high = data.encoding.target_min[1], data.encoding.target_max[1]
    raw_t2 = y2_low + t2 * (y2_high - y2_low)
    text = (f"(declare-const x1 Real)(declare-const y Real)(declare-const y2 Real)"
            f"(assert (<= y (+ (* 2 x1) {raw_t1:.6f})))(assert (< y2 {raw_t2:.6f}))")
    artifact = ModelArtifact(model, data.encoding, data.domain, text, method="test")
    verdicts = agreement(artifact, centers, 0.05, rechecks_allowed=2)  # 'y2 < t' broken at y2 = t
    assert verdicts.count("counterexample") >= 3 and verdicts.count("verified") >= 3


def loan_frame_for(seed: int = 0, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.uniform(1000, 20000, n).round()
    income[:2] = [1000, 20000]
    credit = rng.integers(0, 2, n).astype(float)
    area = rng.choice(["Urban", "Rural"], n)
    status = np.where((credit == 1) | (income > 9000), "Y", "N")
    return pd.DataFrame({"ApplicantIncome": income, "Credit_History": credit, "Property_Area": area,
                         "Loan_Status": status})


LOAN = ("(declare-const ApplicantIncome Real)(declare-const Credit_History Real)(declare-const Loan_Status Real)"
        "(assert (=> (and (< ApplicantIncome 5000) (= Credit_History 0)) (< Loan_Status 0)))")


def test_binary_classifier_with_an_implication_premise():
    frame = loan_frame_for()
    data = prepare(frame, ["Loan_Status"], positive="Y")
    spec = parse_spec_text(LOAN, data.encoding)
    torch.manual_seed(2)
    model = SkipMLP(len(data.encoding.input_names), [12, 8], 1, spec.mapped_features)
    with torch.no_grad():
        model.last.bias.fill_(0.3)  # lean towards approving, so the rule breaks in places
    artifact = ModelArtifact(model, data.encoding, data.domain, LOAN, method="test")
    # instances that satisfy the premise, and some that are near it
    low_income = np.flatnonzero(frame["ApplicantIncome"].to_numpy() < 7000)[:20]
    verdicts = agreement(artifact, data.inputs[low_income], 0.1)
    assert "counterexample" in verdicts and "verified" in verdicts

    # safe by construction: score = income_s + credit_s - 0.3 < 0 when income < 5000 and no credit history
    with torch.no_grad():
        model.last.weight.zero_()
        model.last.weight[0, -2:] = 1.0
        model.last.bias.fill_(-0.3)
    safe = ModelArtifact(model, data.encoding, data.domain, LOAN, method="test")
    report = adversity_index(safe, data.inputs, [0.1], presample=0, bound_check=False, progress=False)
    assert report.summary["epsilons"][0]["adi"] == 0
    assert report.summary["epsilons"][0]["verified"] == len(data.inputs)
    for engine in ("marabou", "z3"):
        outcome, _ = verify_domain(safe, engine=engine, presample=0, bound_check=False)
        assert outcome.status == "verified"


def test_multilabel_count_constraint_both_engines():
    encoding = multilabel_encoding()
    spec = parse_spec_text(COUNT_CONSTRAINT, encoding)
    torch.manual_seed(4)
    model = SkipMLP(2, [10, 10], 4, spec.mapped_features)
    domain = default_domain(encoding)
    artifact = ModelArtifact(model, encoding, domain, COUNT_CONSTRAINT, method="test")
    plan = make_plan(spec, "marabou")
    assert plan.on("marabou") == [0, 1] and not plan.notes  # Marabou takes both, as sign-pattern disjunctions
    centers = np.random.default_rng(0).random((12, 2))
    verdicts = agreement(artifact, centers, 0.05)
    assert "counterexample" in verdicts


# ---- unknown is never safe -------------------------------------------------------------------------------


def test_timeouts_are_unknown_not_safe(monkeypatch):
    frame = regression_frame()
    artifact = safe_by_construction(frame)
    data = prepare(frame, ["y"])
    # z3 with a 1 ms budget on a network it cannot finish in that time
    torch.manual_seed(0)
    big = SkipMLP(2, [40, 40], 1, [0])
    hard = ModelArtifact(big, data.encoding, data.domain, Y_LEQ_X1.replace("x1)", "(+ x1 100))"), method="test")
    outcome, _ = verify_domain(hard, engine="z3", timeout=0.001, presample=0, bound_check=False)
    assert outcome.status == "unknown" and "timeout" in outcome.note
    # Marabou reporting a timeout
    monkeypatch.setattr(marabou_engine, "solve_with_deadline", lambda *a, **k: Answer.unknown("marabou timeout"))
    report = adversity_index(artifact, data.inputs[:5], [0.1], presample=0, bound_check=False, progress=False)
    part = report.summary["epsilons"][0]
    assert (part["unknown"], part["verified"], part["counterexample"]) == (5, 0, 0)
    assert part["adi"] is None and part["adi_if_unknown_unsafe"] == 1.0
    assert set(report.table.status) == {"unknown"}


def test_spurious_marabou_answer_is_rechecked_exactly(monkeypatch):
    frame = regression_frame()
    artifact = safe_by_construction(frame)
    # Marabou claims a counterexample at a point where the model is fine: z3 must overrule it
    monkeypatch.setattr(marabou_engine, "solve_with_deadline", lambda weights, lower, upper, *a, **k: Answer.violation(lower))
    outcome, _ = verify_domain(artifact, presample=0, bound_check=False)
    assert outcome.status == "verified" and outcome.decided_by == "marabou+z3"
    assert "did not hold in exact arithmetic" in outcome.note


# ---- the commands, as a user runs them ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    csv = folder / "data.csv"
    regression_frame(n=40).to_csv(csv, index=False)
    return csv, save(trained_violator(regression_frame()), folder / "violator"), \
        save(safe_by_construction(regression_frame()), folder / "safe")


def test_cli_adi_and_verify(tmp_path, model_dirs):
    csv, violator, safe = model_dirs
    out = tmp_path / "res" / "adi.csv"
    result = run_cli("adi", str(violator), str(csv), "--epsilon", "0.1", "--epsilon", "0.01", "--jobs", "2",
                     "--sample", "12", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "eps=0.1: AdI 1.000" in result.stdout and "12 with a counterexample" in result.stdout
    table = pd.read_csv(out)
    assert len(table) == 24 and {"cex:x1", "cex:x2", "pred:y", "broken_asserts"} <= set(table.columns)
    cex = table[table.status == "counterexample"]
    assert (cex["pred:y"] > cex["cex:x1"] - TOLERANCE).all() and (cex["broken_asserts"].astype(str) == "1").all()
    summary = json.loads(out.with_suffix(".json").read_text())
    assert [p["epsilon"] for p in summary["epsilons"]] == [0.1, 0.01] and summary["jobs"] == 2

    result = run_cli("verify", str(violator))
    assert result.returncode == 1, result.stderr
    assert "counterexample" in result.stdout and "breaks assert 1" in result.stdout
    raw = {line.split("=")[0].strip(" *"): float(line.split("=")[1]) for line in result.stdout.splitlines()
           if "=" in line and "assert" not in line}
    assert raw["y"] > raw["x1"]
    result = run_cli("verify", str(safe), "--engine", "z3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verified")


@pytest.mark.parametrize("args, message", [
    (["verify", "{tmp}/nothing"], "not a deepsade model directory"),
    (["adi", "{safe}", "{csv}", "--epsilon", "-1"], "epsilon must be a positive number"),
    (["adi", "{safe}", "{tmp}/missing.csv"], "data file not found"),
    (["verify", "{safe}", "--timeout", "0"], "timeout must be positive"),
    (["adi", "{safe}", "{csv}", "--engine", "cplex"], "Invalid value for '--engine'"),
])
def test_cli_bad_input_exit_2(tmp_path, model_dirs, args, message):
    """In-process (the subprocess path is covered above): one clear line, exit code 2."""
    csv, _, safe = model_dirs
    args = [a.format(tmp=tmp_path, safe=safe, csv=csv) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output, (result.exit_code, result.output)
    assert "Traceback" not in result.output


def test_raw_inputs_invert_the_scaling():
    encoding = prepare(regression_frame(), ["y"]).encoding
    raw = np.array([[3.0, -2.0], [10.0, 5.0]])
    np.testing.assert_allclose(raw_inputs(encoding, encoding.scale_inputs(raw)), raw)
    assert Fraction(0) == Fraction(float(encoding.scale_inputs(np.array([0.0, -5.0]))[0]))


def test_boundary_witness_is_retried_with_a_margin(monkeypatch):
    """Marabou's first witness fails the exact check (as one sitting on a boundary does); the retry that
    asks for a margin finds a real counterexample, still decided by Marabou."""
    frame = regression_frame()
    base = safe_by_construction(frame)
    text = Y_LEQ_X1.replace("(<= y x1)", "(<= y (* 0.4 x1))")  # y = 0.5 x1 - 0.1 breaks it for x1 > 1
    artifact = ModelArtifact(base.model, base.encoding, base.domain, text, method="test")
    real, calls = marabou_engine.solve_disjuncts, []

    def first_answer_off(weights, lower, upper, disjuncts, timeout, strict=False, **options):
        calls.append(strict)
        return (real(weights, lower, upper, disjuncts, timeout, strict=True, **options) if strict
                else Answer.violation([0.0, 0.0]))

    monkeypatch.setattr(marabou_engine, "solve_with_deadline", first_answer_off)
    v = verifier(artifact, presample=0, bound_check=False)
    outcome = v.check_domain()
    assert calls == [False, True] and outcome.decided_by == "marabou"
    assert_real_counterexample(artifact, v, outcome)
    assert raw_inputs(artifact.encoding, outcome.point[None, :])[0, 0] > 1.0


@pytest.mark.parametrize("case", ["regression", "binary"])
def test_certified_deepsade_model_has_no_counterexample(case):
    """The guarantee, checked from the outside: a model the trainer certified has AdI 0 and no
    counterexample anywhere in its domain, for both engines on their own (no sampling, no bounds)."""
    from deepsade.estimator import DeepSaDe

    if case == "regression":
        frame, text, targets, positive = regression_frame(n=150), Y_LEQ_X1, ["y"], None
    else:
        frame, text, targets, positive = loan_frame_for(n=150), LOAN, ["Loan_Status"], "Y"
    estimator = DeepSaDe(text, targets, positive=positive, hidden=(8, 8), epochs=2, batch_size=16, seed=0)
    artifact = estimator.fit(frame).artifact_
    assert artifact.certificate["verdict"] == "certified"
    inputs = prepare(frame, targets, positive=positive).inputs[:20]
    for engine in ("marabou", "z3"):
        report = adversity_index(artifact, inputs, [0.1], engine=engine, presample=0, bound_check=False,
                                 progress=False)
        part = report.summary["epsilons"][0]
        assert (part["adi"], part["verified"]) == (0.0, 20)
        outcome, _ = verify_domain(artifact, engine=engine, presample=0, bound_check=False)
        assert outcome.status == "verified"
