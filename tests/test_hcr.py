"""HCR: a bounded polytope free of the inputs, compiled from the rule; outputs feasible by construction,
the region checked exactly, and nothing called "certified" that was not proven."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.artifact import load, save
from deepsade.certify import certify_model
from deepsade.constructions.hcr import HyperSphericalMLP
from deepsade.estimator import DeepSaDe
from deepsade.recheck import recheck_artifact
from deepsade.spec import parse_spec_text
from tests.conftest import run_cli

RULES = """
(declare-const output Real)
(declare-const losses Real)
(assert (>= losses (* 0.05 output)))
(assert (<= losses (* 0.4 output)))
(assert (and (>= output 0.0) (<= output 1500.0)))
"""


def _frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (rows, 3))
    output = 200 + 900 * x[:, 0] + 50 * x[:, 1]
    losses = output * (0.08 + 0.2 * x[:, 2])
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "output": output, "losses": losses})


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hcr") / "plant.smt2"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
def model(rules):
    est = DeepSaDe(rules, ["output", "losses"], features=["x1", "x2", "x3"], method="hcr", hidden=(16, 8), epochs=3)
    est.fit(_frame())
    return est


def _raw_outputs(art, raw_inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = art.model(torch.as_tensor(art.encoding.scale_inputs(raw_inputs), dtype=torch.float32)).double().numpy()
    return art.encoding.outputs_to_raw(out)


def test_certificate_says_by_construction_never_certified(model):
    cert = model.artifact_.certificate
    assert cert["verdict"] == "by construction"
    assert cert["construction"]["kind"] == "hcr" and cert["construction"]["by_construction"]
    assert all(a["result"].startswith("holds by construction") for a in cert["asserts"])
    assert cert["sampling"]["violations_in_domain"] == 0 and cert["sampling"]["outside_widened_region"] == 0
    assert isinstance(model.artifact_.model, HyperSphericalMLP)


def test_outputs_satisfy_the_rule_far_outside_the_data(model):
    art = model.artifact_
    spec = parse_spec_text(art.constraint_text, art.encoding)
    rng = np.random.default_rng(5)
    raw = rng.uniform(-1e4, 1e4, (5000, 3))
    assert spec.evaluate_raw(raw, _raw_outputs(art, raw)).all()
    # and whatever the base network computes: scramble its weights, the layer still lands in the region
    scrambled = copy.deepcopy(art.model)
    with torch.no_grad():
        for p in scrambled.parameters():
            if p.requires_grad:
                p.mul_(torch.randn_like(p) * 50)
    art_scrambled = copy.copy(art)
    art_scrambled.model = scrambled
    assert spec.evaluate_raw(raw, _raw_outputs(art_scrambled, raw)).all()


def test_saved_model_predicts_through_the_layer(model, tmp_path):
    art = model.artifact_
    save(art, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert isinstance(loaded.model, HyperSphericalMLP)
    raw = _frame(50, 9)[["x1", "x2", "x3"]].to_numpy()
    assert np.allclose(_raw_outputs(loaded, raw), _raw_outputs(art, raw))
    assert recheck_artifact(loaded).certificate["verdict"] == "by construction"


def test_a_region_outside_the_rule_fails_the_check(model):
    art = model.artifact_
    widened = copy.deepcopy(art.model)
    with torch.no_grad():
        widened.region_bound.add_(0.5)  # every bound moved outwards: the region leaves the rule
    spec = parse_spec_text(art.constraint_text, art.encoding)
    cert = certify_model(widened, spec, art.encoding, art.domain, 1e-4)
    assert cert["verdict"] != "by construction"
    assert any(a["result"] == "region check failed" for a in cert["asserts"])


def test_cli_certify_verify_and_inapplicable_rule(rules, tmp_path):
    csv = tmp_path / "d.csv"
    _frame(200, 1).to_csv(csv, index=False)
    out = tmp_path / "m"
    trained = run_cli("train", str(csv), "--constraint", str(rules), "--target", "output,losses", "--method", "hcr",
                      "--epochs", "2", "--out", str(out), "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert "BY CONSTRUCTION" in trained.stdout
    certified = run_cli("certify", str(out))
    assert certified.returncode == 0 and "OK, BY CONSTRUCTION" in certified.stdout
    assert "CERTIFIED" not in certified.stdout.replace("NOT CERTIFIED", "")
    verified = run_cli("verify", str(out))
    # not refused: it reports what is proven and what is by construction (tests/test_hcr_tools.py), exit 4
    assert verified.returncode == 4 and "not piecewise linear" in verified.stdout
    input_rule = tmp_path / "r.smt2"
    input_rule.write_text(RULES.replace("1500.0", "(* 2000.0 x1)").replace("(declare-const output Real)",
                                                                              "(declare-const x1 Real)(declare-const output Real)"))
    refused = run_cli("train", str(csv), "--constraint", str(input_rule), "--target", "output,losses", "--method", "hcr",
                      "--out", str(tmp_path / "m2"), "--quiet")
    assert refused.returncode == 2 and "assert 3 mentions an input" in refused.stderr


def test_a_break_only_at_relaxed_inputs_is_not_called_a_violation(tmp_path):
    from deepsade.constructions.hcr_certificate import RELAXED_BREAK, certify_hcr

    frame = _frame().assign(site=np.where(np.random.default_rng(1).random(300) < 0.5, "north", "south"))
    rules = tmp_path / "plant.smt2"
    rules.write_text(RULES)
    est = DeepSaDe(rules, ["output", "losses"], features=["x1", "site"], method="hcr", hidden=(8,), epochs=2)
    art = est.fit(frame).artifact_
    # a rule whose premise only the relaxed box meets (both sites at once), and one a real row meets
    stricter = RULES.replace("(declare-const output Real)", "(declare-const |site=north| Real)\n"
                             "(declare-const |site=south| Real)\n(declare-const output Real)")
    stricter += "(assert (=> (and (= |site=north| 1.0) (= |site=south| 1.0)) (<= output 0.0)))\n"
    spec = parse_spec_text(stricter, art.encoding)
    cert = certify_hcr(art.model, spec, art.encoding, art.domain, 1e-4, 10.0, {}, 0.0)
    last = cert["asserts"][-1]
    assert last["result"] == RELAXED_BREAK and "violating_input_raw" not in last
    assert {last["relaxed_input_raw"]["site=north"], last["relaxed_input_raw"]["site=south"]} == {1.0}
    assert cert["verdict"] == "not certified"
    reachable = stricter.replace("(= |site=south| 1.0)", "(= |site=south| 0.0)")
    cert = certify_hcr(art.model, parse_spec_text(reachable, art.encoding), art.encoding, art.domain, 1e-4, 10.0,
                       {}, 0.0)
    assert cert["verdict"] == "violated" and cert["asserts"][-1]["violating_input_raw"]["site=north"] == 1.0
