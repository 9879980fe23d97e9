"""Guarantees by construction: HardNet-Aff / output gadgets compiled from the rule, saved, seen, certified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepsade.artifact import load, save
from deepsade.constructions.enforced import EnforcedMLP
from deepsade.constructions.recognise import NotApplicable, compile_affine_rule, compile_polytope
from deepsade.estimator import DeepSaDe
from deepsade.recheck import recheck_artifact
from deepsade.spec import parse_spec_text
from deepsade.usecases import toy, uc1_expenses
from deepsade.verification.network import NetworkWeights
from tests.conftest import REPO, run_cli

UC1_RULES = REPO / "deepsade" / "constraints" / "uc1_expenses.smt2"
BOUNDS_RULES = REPO / "deepsade" / "constraints" / "example_bounds.smt2"


@pytest.fixture(scope="module")
def uc1_model():
    frame = uc1_expenses.generate(300, 0)
    est = DeepSaDe(UC1_RULES, list(uc1_expenses.CASE.targets), method="hardnet", hidden=(12, 6), epochs=2, lr=0.05)
    est.fit(frame)
    return est


@pytest.fixture(scope="module")
def clamp_model():
    frame = toy.generate_regression()
    est = DeepSaDe(BOUNDS_RULES, ["y"], features=["x1", "x2", "x3"], method="hardnet", hidden=(8,), epochs=2,
                   margin=1e-5)
    est.fit(frame)
    return est


def _raw_outputs(est: DeepSaDe, raw_inputs: np.ndarray) -> np.ndarray:
    art = est.artifact_
    with torch.no_grad():
        out = art.model(torch.as_tensor(art.encoding.scale_inputs(raw_inputs), dtype=torch.float32)).double().numpy()
    return art.encoding.outputs_to_raw(out)


def test_uc1_is_certified_and_holds_far_outside_the_data(uc1_model):
    art = uc1_model.artifact_
    assert art.certificate["verdict"] == "certified"
    assert [a["result"] for a in art.certificate["asserts"]] == ["holds", "holds"]
    assert art.certificate["construction"]["by_construction"] == []
    enc = art.encoding
    spec = parse_spec_text(art.constraint_text, enc)
    rng = np.random.default_rng(3)
    span = np.asarray(enc.input_max) - np.asarray(enc.input_min)
    raw = np.asarray(enc.input_min) + span * rng.uniform(-5, 6, (4000, len(enc.input_names)))
    truth = spec.evaluate_raw(raw, _raw_outputs(uc1_model, raw))
    assert truth.all()
    # the same inputs without the enforcement layer do break the rule: the layer is what makes it hold
    with torch.no_grad():
        base = art.model.base(torch.as_tensor(enc.scale_inputs(raw), dtype=torch.float32)).double().numpy()
    assert not spec.evaluate_raw(raw, enc.outputs_to_raw(base)).all()


def test_clamp_gadget_holds_wherever_the_rule_can_hold(clamp_model):
    art = clamp_model.artifact_
    assert art.certificate["verdict"] == "certified"
    assert "clamp" in art.training["construction"]
    rng = np.random.default_rng(4)
    raw = np.column_stack([rng.uniform(0.01, 500, 3000), rng.uniform(-500, 500, 3000), rng.uniform(-500, 500, 3000)])
    outputs = _raw_outputs(clamp_model, raw)[:, 0]
    assert np.all(outputs >= 0) and np.all(outputs <= raw[:, 0])


def test_plain_relu_form_computes_the_same_function(uc1_model):
    model = uc1_model.artifact_.model
    plain = NetworkWeights.from_model(model)
    x = np.random.default_rng(5).uniform(-3, 4, (500, model.n_inputs))
    with torch.no_grad():
        torch_out = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    assert np.abs(plain.forward(x) - torch_out).max() < 1e-4
    exact = plain.forward_exact([float(v) for v in x[0].astype(np.float32)])
    assert np.allclose([float(v) for v in exact], plain.forward(x[:1].astype(np.float32).astype(np.float64))[0])


def test_saved_model_is_reloaded_with_its_layer_and_rechecked(uc1_model, tmp_path: Path):
    save(uc1_model.artifact_, tmp_path / "m")
    art = load(tmp_path / "m")
    assert isinstance(art.model, EnforcedMLP)
    torch.testing.assert_close(art.model.upper_lift, uc1_model.artifact_.model.upper_lift)
    check = recheck_artifact(art)
    assert check.ok, check.problems


def test_a_loosened_layer_is_not_certified(uc1_model, tmp_path: Path):
    save(uc1_model.artifact_, tmp_path / "m")
    art = load(tmp_path / "m")
    with torch.no_grad():  # move the income bound far up: the layer no longer enforces the rule
        art.model.upper_const += 5.0
    check = recheck_artifact(art)
    assert not check.ok
    assert check.certificate["verdict"] in ("violated", "not certified")


def test_z3_engine_proves_the_whole_domain_of_the_plain_network(clamp_model, tmp_path: Path):
    save(clamp_model.artifact_, tmp_path / "m")
    result = run_cli("verify", str(tmp_path / "m"), "--engine", "z3", "--presample", "64", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    certify = run_cli("certify", str(tmp_path / "m"))
    assert certify.returncode == 0, certify.stdout + certify.stderr


def test_inapplicable_rule_exits_2_with_the_reason(tmp_path: Path):
    csv = tmp_path / "bin.csv"
    toy.generate_binary().to_csv(csv, index=False)
    result = run_cli("train", str(csv), "--constraint", str(REPO / "deepsade" / "constraints" / "example_implication.smt2"),
                     "--target", "label", "--positive", "yes", "--method", "hardnet", "--out", str(tmp_path / "m"),
                     "--quiet")
    assert result.returncode == 2
    assert "HardNet-Aff needs every assert affine in the outputs without a premise; assert 1 has a premise" \
        in result.stderr
    assert "not supported" in result.stderr  # mixed rule sets: said plainly


def _spec(text: str, frame, targets):
    from deepsade.ingest import prepare

    data = prepare(frame, targets)
    return parse_spec_text(text, data.encoding), data.domain.scaled_exact(data.encoding)


def test_recogniser_reasons():
    frame = toy.generate_regression()
    head = "(declare-const x1 Real)(declare-const y Real)"
    spec, box = _spec(head + "(assert (or (>= y 0.0) (<= y x1)))", frame, ["y"])
    with pytest.raises(NotApplicable, match="assert 1 uses or"):
        compile_affine_rule(spec, *box)
    spec, box = _spec(head + "(assert (<= y x1))(assert (<= y 5.0))", frame, ["y"])
    with pytest.raises(NotApplicable, match="asserts 1 and 2 both bound the same one from above"):
        compile_affine_rule(spec, *box)
    spec, box = _spec(head + "(assert (= y x1))", frame, ["y"])
    with pytest.raises(NotApplicable, match="equality"):
        compile_affine_rule(spec, *box)


def test_polytope_recognised_for_hcr():
    frame = uc1_expenses.generate(50, 0)
    names = uc1_expenses.CASE.targets
    decl = "".join(f"(declare-const {n} Real)" for n in names)
    text = decl + "".join(f"(assert (>= {n} 0.0))" for n in names) + f"(assert (<= (+ {' '.join(names)}) 900.0))"
    spec, box = _spec(text, frame, list(names))
    polytope = compile_polytope(spec, *box)
    point = np.array([float(v) for v in polytope.interior])
    assert spec.evaluate_scaled(np.zeros((1, len(spec.input_names))), point[None, :]).all()
    spec, box = _spec(decl + f"(assert (>= {names[0]} 0.0))", frame, list(names))
    with pytest.raises(NotApplicable, match="bounded"):
        compile_polytope(spec, *box)
