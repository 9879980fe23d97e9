"""verify, adi and export on an HCR model: they report what is proven exactly and what rests on the construction,
never "certified" or "verified" for the part nothing checked; export writes an ONNX graph of the whole network."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from deepsade.artifact import load, save
from deepsade.constructions.constructed_verify import (
    BY_CONSTRUCTION,
    COUNTEREXAMPLE,
    NOT_PROVEN,
    verify_constructed,
)
from deepsade.prediction import forward_float64
from deepsade.verification.adi import adversity_index
from tests.conftest import run_cli
from tests.test_hcr import RULES, _frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hcr_tools")
    (folder / "r.smt2").write_text(RULES)
    _frame(200, 1).to_csv(folder / "d.csv", index=False)
    result = run_cli("train", str(folder / "d.csv"), "--constraint", str(folder / "r.smt2"), "--target",
                     "output,losses", "--method", "hcr", "--epochs", "2", "--out", str(folder / "m"), "--quiet")
    assert result.returncode == 0, result.stderr
    return folder


def _claims_nothing_unchecked(text: str) -> None:
    lowered = text.lower().replace("not certified", "").replace("not verified", "")
    assert "certified" not in lowered
    assert "verified" not in lowered


def test_verify_reports_per_assert_what_is_proven_and_what_is_by_construction(trained):
    result = run_cli("verify", str(trained / "m"), "--presample", "256")
    assert result.returncode == 4, result.stdout + result.stderr
    out = result.stdout
    for index in (1, 2, 3):
        assert f"assert {index}:" in out
    assert out.count("proven exactly (z3 QF_LRA") == 3
    assert out.count("by construction (gauge identity + hand-derived rounding analysis), not machine-checked") == 3
    assert "by construction, not verified" in out
    _claims_nothing_unchecked(out)


def test_verify_says_not_proven_when_the_region_leaves_the_rule(trained, tmp_path):
    art = load(trained / "m")
    with torch.no_grad():
        art.model.region_bound.add_(0.5)  # the stored region no longer fits inside the rule
    report = verify_constructed(art, presample=256)
    assert report.status in (NOT_PROVEN, COUNTEREXAMPLE)
    assert any(a.region_proven is False for a in report.asserts)
    # and a region far outside the rule gives sampled outputs that break it exactly: a counterexample
    with torch.no_grad():
        art.model.region_bound.add_(50.0)
        art.model.last.bias.add_(20.0)  # push the radius logit up: outputs go to the (widened) region's edge
    report = verify_constructed(art, presample=512)
    assert report.status == COUNTEREXAMPLE
    assert verify_constructed(load(trained / "m"), presample=64).status == BY_CONSTRUCTION


def test_adi_is_zero_by_construction_and_counts_sampled_counterexamples(trained):
    result = run_cli("adi", str(trained / "m"), str(trained / "d.csv"), "--sample", "15", "--out",
                     str(trained / "adi.csv"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "eps=0.1: AdI 0.000 by construction, not verified" in result.stdout
    _claims_nothing_unchecked(result.stdout)
    summary = json.loads((trained / "adi.json").read_text())
    assert all(e["adi"] == 0 and e["by_construction"] == 15 and e["verified"] == 0 for e in summary["epsilons"])
    assert summary["region_proven"] == [True, True, True]
    # a layer that does break the rule: AdI counts the balls whose samples break it
    art = load(trained / "m")
    broken = copy.deepcopy(art)
    with torch.no_grad():
        broken.model.region_bound.add_(50.0)
        broken.model.last.bias.add_(20.0)
    inputs = broken.encoding.scale_inputs(_frame(10, 2)[["x1", "x2", "x3"]].to_numpy())
    report = adversity_index(broken, inputs, [0.1], presample=32, progress=False)
    assert report.summary["epsilons"][0]["counterexample"] > 0
    assert report.summary["epsilons"][0]["adi"] > 0


def test_export_writes_the_hcr_graph_and_says_no_vnnlib_proof_applies(trained):
    out = trained / "export"
    result = run_cli("export", str(trained / "m"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not list(out.glob("*.vnnlib"))
    manifest = json.loads((out / "export.json").read_text())
    assert {"Sigmoid", "Div", "ReduceMax"} <= set(manifest["onnx"]["operators"])
    assert manifest["properties"] == [] and len(manifest["skipped"]) == 3
    assert all("not piecewise linear" in s["reason"] for s in manifest["skipped"])
    assert manifest["guarantee"]["piecewise_linear"] is False and manifest["certificate"] == "by construction"
    art = load(trained / "m")
    raw = np.vstack([_frame(300, 5)[["x1", "x2", "x3"]].to_numpy(),
                     np.random.default_rng(0).uniform(-50, 50, (200, 3))])  # far outside the data as well
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    onnx_out = session.run(None, {"X": raw.astype(np.float32)})[0]
    predicted = art.encoding.outputs_to_raw(forward_float64(art.model, art.encoding.scale_inputs(raw)))
    assert np.allclose(onnx_out, predicted, rtol=1e-4, atol=1e-3 * np.abs(predicted).max())
    # float64 graph: the same function, closer still
    result = run_cli("export", str(trained / "m"), "--out", str(out / "f64"), "--precision", "float64")
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(out / "f64" / "model.onnx"))
    assert np.allclose(session.run(None, {"X": raw})[0], predicted, rtol=1e-5, atol=1e-6 * np.abs(predicted).max())


def test_saved_and_reloaded_hcr_model_keeps_the_same_report(trained, tmp_path):
    art = load(trained / "m")
    save(art, tmp_path / "copy")
    assert verify_constructed(load(tmp_path / "copy"), presample=64).status == BY_CONSTRUCTION


def test_a_centre_outside_its_region_is_not_proven_and_does_not_crash(trained):
    art = load(trained / "m")
    with torch.no_grad():
        art.model.region_bound.sub_(1e4)  # every bound below the centre: no interior point, no rounding bound
    report = verify_constructed(art, presample=32)
    assert report.status in (NOT_PROVEN, COUNTEREXAMPLE)
    assert all(a.region_proven is False for a in report.asserts)
