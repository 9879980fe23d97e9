"""HardNet-Aff with A(x): asserts that multiply an output by an input, compiled from the rule, enforced by the
per-input projection, checked exactly where it can be and labelled "by construction" (never "certified")."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import z3

from deepsade.artifact import load, save
from deepsade.certify import certify_model
from deepsade.constructions.input_enforced import InputEnforcedMLP
from deepsade.constructions.recognise import InputDependent, NotApplicable, compile_affine_rule
from deepsade.estimator import DeepSaDe
from deepsade.numbers import z3_rational
from deepsade.recheck import recheck_artifact
from deepsade.spec import input_var, output_var, parse_spec_text
from tests.conftest import run_cli

PRODUCT = "(declare-const x1 Real)(declare-const y Real)(assert (and (>= (* x1 y) 1.0) (<= (* x1 y) 10.0)))"
TWO_OUTPUTS = ("(declare-const x1 Real)(declare-const y1 Real)(declare-const y2 Real)"
               "(assert (>= y2 (* x1 y1)))(assert (<= y1 3.0))")
VANISHING = "(declare-const x2 Real)(declare-const y Real)(assert (<= (* (- x2 0.5) y) 1.0))"


def _frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(1, 10, rows), rng.uniform(0, 1, rows)
    y1 = rng.uniform(0, 2, rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": np.clip(3 * x2 + 0.5, 1.2 / x1, 9 / x1), "y1": y1,
                         "y2": x1 * y1 + x2})


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ax")
    paths = {}
    for name, text in (("product", PRODUCT), ("two", TWO_OUTPUTS), ("vanishing", VANISHING)):
        paths[name] = folder / f"{name}.smt2"
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def product_model(rules) -> DeepSaDe:
    return DeepSaDe(rules["product"], ["y"], features=["x1", "x2"], method="hardnet", hidden=(8,), epochs=3).fit(_frame())


def _exactly_broken(spec, inputs: np.ndarray, outputs: np.ndarray) -> int:
    count = 0
    for row in range(len(inputs)):
        for a in spec.asserts:
            pairs = [(input_var(j), z3_rational(Fraction(float(inputs[row, j])))) for j in a.inputs]
            pairs += [(output_var(k), z3_rational(Fraction(float(outputs[row, k])))) for k in a.outputs]
            count += z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))
    return count


def _box(art) -> tuple[np.ndarray, np.ndarray]:
    low, high = art.domain.scaled_exact(art.encoding)
    return np.array([float(v) for v in low]), np.array([float(v) for v in high])


def test_constant_a_recogniser_names_the_product_in_one_line(rules):
    from deepsade.ingest import prepare

    data = prepare(_frame(), ["y"], ["x1", "x2"])
    spec = parse_spec_text(PRODUCT, data.encoding)
    with pytest.raises(InputDependent, match="HardNet-Aff here needs A constant: assert 1 multiplies output 'y' by "
                                             "input 'x1'"):
        compile_affine_rule(spec, *data.domain.scaled_exact(data.encoding))


def test_certificate_says_by_construction_and_what_was_checked(product_model):
    art = product_model.artifact_
    assert isinstance(art.model, InputEnforcedMLP)
    cert = art.certificate
    assert cert["verdict"] == "by construction"
    assert cert["construction"]["kind"] == "hardnet-aff-x" and cert["construction"]["by_construction"]
    assert all(a["result"] == "holds by construction (exact layer checked)" for a in cert["asserts"])
    assert cert["sampling"]["violations_in_domain"] == 0
    assert "A depending on the inputs" in art.training["construction"]


def test_outputs_keep_the_rule_on_the_whole_box_whatever_the_base_computes(product_model):
    art = product_model.artifact_
    spec = parse_spec_text(art.constraint_text, art.encoding)
    low, high = _box(art)
    rng = np.random.default_rng(1)
    points = np.vstack([np.where(rng.random((16, 2)) < 0.5, low, high), low + (high - low) * rng.random((300, 2))])
    points[16:40, 0] = low[0]  # the face where x1 is smallest: the widest allowed y
    reached = []
    for factor in (1.0, 1e3, 1e6):
        big = copy.deepcopy(art.model)
        with torch.no_grad():
            big.last.weight.mul_(factor)
            big.last.bias.mul_(factor)
            tensor = torch.as_tensor(points, dtype=torch.float32)
            outputs, base = big(tensor).double().numpy(), big.base(tensor).double().numpy()
        reached.append(float(np.abs(base).max()))
        assert _exactly_broken(spec, points, outputs) == 0, factor
        assert _exactly_broken(spec, points, base) > 0  # without the layer the rule breaks on the same points
    assert reached[-1] >= 1e5


def test_two_outputs_with_a_product_are_enforced(rules):
    est = DeepSaDe(rules["two"], ["y1", "y2"], features=["x1", "x2"], method="hardnet", hidden=(8,), epochs=2)
    est.fit(_frame())
    art = est.artifact_
    assert art.certificate["verdict"] == "by construction", art.certificate
    spec = parse_spec_text(art.constraint_text, art.encoding)
    low, high = _box(art)
    points = low + (high - low) * np.random.default_rng(2).random((300, 2))
    with torch.no_grad():
        outputs = art.model(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    assert _exactly_broken(spec, points, outputs) == 0


def test_a_vanishing_coefficient_is_refused_with_the_reason(rules, tmp_path):
    csv = tmp_path / "d.csv"
    _frame().to_csv(csv, index=False)
    result = run_cli("train", str(csv), "--constraint", str(rules["vanishing"]), "--target", "y", "--features", "x1,x2",
                     "--method", "hardnet", "--out", str(tmp_path / "m"), "--quiet")
    assert result.returncode == 2
    assert "HardNet-Aff needs A(x) of full row rank over the whole domain box" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_loosened_layer_is_caught_and_saved_models_recheck(product_model, tmp_path):
    art = product_model.artifact_
    save(art, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert isinstance(loaded.model, InputEnforcedMLP)
    assert recheck_artifact(loaded).certificate["verdict"] == "by construction"
    spec = parse_spec_text(art.constraint_text, art.encoding)
    with torch.no_grad():
        loaded.model.upper_const += 5.0  # the upper bound moved far out: the layer no longer enforces the rule
    cert = certify_model(loaded.model, spec, art.encoding, art.domain, art.certificate["margin"])
    assert cert["verdict"] != "by construction"
    assert any(a["result"] in ("layer check failed", "violated") for a in cert["asserts"])


def test_cli_certify_advise_and_verify_say_what_they_can(rules, tmp_path):
    csv = tmp_path / "d.csv"
    _frame().to_csv(csv, index=False)
    out = tmp_path / "m"
    trained = run_cli("train", str(csv), "--constraint", str(rules["product"]), "--target", "y", "--features", "x1,x2",
                      "--method", "hardnet", "--epochs", "2", "--out", str(out), "--quiet")
    assert trained.returncode == 0, trained.stderr
    certified = run_cli("certify", str(out))
    assert certified.returncode == 0 and "OK, BY CONSTRUCTION" in certified.stdout
    assert "CERTIFIED" not in certified.stdout.replace("NOT CERTIFIED", "")
    verified = run_cli("verify", str(out), "--presample", "128")
    assert verified.returncode == 4, verified.stdout + verified.stderr
    assert "proven exactly (z3 nonlinear real arithmetic" in verified.stdout
    assert "by construction, not machine-checked" in verified.stdout and "by construction, not verified" in verified.stdout
    lowered = verified.stdout.lower().replace("not verified", "").replace("not certified", "")
    assert "verified" not in lowered and "certified" not in lowered
    adi = run_cli("adi", str(out), str(csv), "--sample", "10", "--epsilon", "0.05", "--out", str(tmp_path / "adi.csv"),
                  "--quiet")
    assert adi.returncode == 0 and "AdI 0.000 by construction, not verified" in adi.stdout, adi.stdout + adi.stderr
    exported = run_cli("export", str(out), "--out", str(tmp_path / "ex"))
    assert exported.returncode == 2 and "not piecewise linear" in exported.stderr
    advice = run_cli("advise", str(rules["product"]), str(csv), "--target", "y")
    line = next(x for x in advice.stdout.splitlines() if "hardnet" in x)
    assert "by construction, not certified" in line, advice.stdout


def test_a_product_of_two_outputs_is_refused(rules):
    from deepsade.constructions.input_rule import compile_input_dependent_rule
    from deepsade.ingest import prepare

    data = prepare(_frame(), ["y1", "y2"], ["x1", "x2"])
    spec = parse_spec_text("(declare-const y1 Real)(declare-const y2 Real)(assert (<= (* y1 y2) 1.0))",
                           data.encoding)
    with pytest.raises(NotApplicable, match="a product of two outputs"):
        compile_input_dependent_rule(spec, *data.domain.scaled_exact(data.encoding))


def test_inputs_where_a_vanishes_outside_the_box_still_predict(product_model):
    art = product_model.artifact_
    raw = np.array([[0.0, 0.5], [5.0, 0.5]])  # x1 = 0: A(x) = 0, outside the box (the data has x1 >= 1)
    with torch.no_grad():
        outputs = art.model(torch.as_tensor(art.encoding.scale_inputs(raw), dtype=torch.float32)).numpy()
    assert np.all(np.isfinite(outputs))
    assert product_model.predict(pd.DataFrame({"x1": raw[:, 0], "x2": raw[:, 1]}))["in_domain"].tolist() == [False,
                                                                                                              True]
