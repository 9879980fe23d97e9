"""The price-of-the-guarantee levers (issue 13): per-assert latent boxes, premise gates and the last-layer
refit. Each test fails when its mechanism is removed; the gated model goes end to end through the CLI."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from deepsade.bounds import exact_latent_box
from deepsade.certify import CERTIFIED, certify_model
from deepsade.data import Domain
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.gates import plan_gates, with_gates
from deepsade.ingest import prepare
from deepsade.losses import data_loss
from deepsade.network import SkipMLP
from deepsade.regions import input_regions
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings
from tests.conftest import run_cli

RULE = "(declare-const x0 Real)(declare-const label Real)(assert (=> (> x0 9.0) (> label 0.0)))"


def _premise_problem(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Binary labels set by x1, x2, except that x0 > 9 is always positive (the rule): outside the premise the
    rule says nothing, so a good certified model must not tie its weights to it there."""
    rng = np.random.default_rng(seed)
    x0, x1, x2 = rng.uniform(0, 10, n), rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    label = np.where((x1 + 0.3 * x2 > 0.6) | (x0 > 9), "yes", "no")
    return pd.DataFrame({"x0": x0, "x1": x1, "x2": x2, "label": label})


def _train(**options):
    data = prepare(_premise_problem(), ["label"], positive="yes")
    spec = parse_spec_text(RULE, data.encoding)
    settings = TrainSettings(hidden=(8, 6), epochs=2, batch_size=10, solver_timeout=3.0, **options)
    trainer = DeepSaDeTrainer(spec, data, settings)
    result = trainer.fit()
    x, y = torch.as_tensor(data.inputs, dtype=torch.float32), torch.as_tensor(data.targets)
    with torch.no_grad():
        out = result.model(x)
    accuracy = float(((out.reshape(-1) > 0).double() == y.reshape(-1).double()).double().mean())
    return trainer, result, float(data_loss("binary", out, y)), accuracy


# ---- per-assert latent boxes -------------------------------------------------------------------------

def test_certificate_uses_the_premise_region_box():
    """A unit that is 0 on the premise region but up to 5 elsewhere: the rule holds, yet only the region's
    latent box shows it (the whole-domain box lets the output reach 5)."""
    frame = pd.DataFrame({"a": [0.0, 1.0], "b": [0.0, 1.0], "y": [0.0, 1.0]})
    data = prepare(frame, ["y"])
    spec = parse_spec_text("(declare-const a Real)(declare-const y Real)(assert (=> (>= a 0.8) (<= y 1.0)))",
                           data.encoding)
    model = SkipMLP(2, [1], 1, spec.mapped_features)
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor([[-10.0, 0.0]]))  # h = relu(5 - 10 a): 0 where a >= 0.5
        model.hidden[0].bias.copy_(torch.tensor([5.0]))
        model.last.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.last.bias.zero_()
    domain = Domain(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    certificate = certify_model(model, spec, data.encoding, domain, 1e-4)
    assert certificate["verdict"] == CERTIFIED
    region = certificate["asserts"][0]["input_region"]
    assert region["kind"] == "premise region" and region["narrowed_inputs"] == {"a": [0.8, 1.0]}
    # the mechanism removed: over the whole domain's latent box the same weights are not provably safe
    low, high = exact_latent_box(model, [F(0), F(0)], [F(1), F(1)])
    layout = LatentLayout(1, tuple(spec.mapped_features), 1)
    found = find_counterexample(spec.asserts[0], layout, model.last.weight.detach().double().numpy(),
                                model.last.bias.detach().double().numpy(), low, high, F(1, 10**4))
    assert found is not None and found != "unknown"


def test_trainer_boxes_are_per_assert_and_never_wider():
    trainer, _, _, _ = _train(premise_gates=False, refit=False)
    boxes = trainer.box()
    assert set(boxes.per_assert) == {0}
    (low, high), (whole_low, whole_high) = boxes.for_assert(0), boxes.whole
    assert (low >= whole_low - 1e-9).all() and (high <= whole_high + 1e-9).all()
    assert (high < whole_high - 1e-6).any()  # tighter somewhere
    assert not _train(paper=True)[0].box().per_assert  # the paper's trainer: one box


# ---- the refit -------------------------------------------------------------------------------------

def test_refit_lifts_the_stalled_binary_case():
    """Projected steps alone stall near 'always positive'; the convex refit finds the good certified layer."""
    _, _, paper_loss, paper_accuracy = _train(paper=True)
    _, result, loss, accuracy = _train(region_boxes=False, premise_gates=False)
    assert any("refit at initialisation: accepted" in line for line in result.mechanisms)
    assert accuracy >= 0.95 and accuracy > paper_accuracy + 0.2
    assert loss < paper_loss / 2


def test_refit_is_skipped_with_a_note_for_cegis_rules():
    frame = _premise_problem(80)
    frame["y"] = frame["x1"] * 3
    data = prepare(frame.drop(columns="label"), ["y"])
    spec = parse_spec_text("(declare-const x1 Real)(declare-const y Real)(assert (<= (* x1 y) 3.5))", data.encoding)
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(4, 4), epochs=1, batch_size=40, solver_timeout=3.0,
                                                        margins=(0.0,)))
    assert "not applicable" in trainer.refit_last_layer().reason


# ---- premise gates ---------------------------------------------------------------------------------

def test_gates_are_used_and_lower_the_loss():
    gated_trainer, gated, gated_loss, _ = _train()
    _, plain, plain_loss, _ = _train(premise_gates=False)
    assert gated.model.hidden_sizes == [9, 7] and plain.model.hidden_sizes == [8, 6]
    gate = gated_trainer.gate_layout.gate_coordinate(0)
    assert abs(float(gated.model.last.weight.detach()[0, gate])) > 0.1  # the last layer reads the gate
    assert gated_loss < plain_loss


@pytest.mark.slow
def test_gated_model_end_to_end(tmp_path):
    """Train with the defaults (gates on) through the CLI; predict, certify, verify and export take the
    widened network unchanged; the gate units are exactly as built; 100k domain points break nothing."""
    frame = _premise_problem(200)
    csv, rule, out = tmp_path / "d.csv", tmp_path / "rule.smt2", tmp_path / "model"
    frame.to_csv(csv, index=False)
    rule.write_text(RULE)
    trained = run_cli("train", str(csv), "--constraint", str(rule), "--target", "label", "--positive", "yes",
                      "--hidden", "8,6", "--epochs", "2", "--batch-size", "10", "--out", str(out), "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert "CERTIFIED" in trained.stdout
    stored_hidden = [v.shape[0] for k, v in load_file(str(out / "weights.safetensors")).items()
                     if k.startswith("hidden.") and k.endswith(".weight")]
    assert stored_hidden == [9, 7]  # one gate: one side unit in the first layer, the gate in the second
    assert run_cli("predict", str(out), str(csv), "--out", str(tmp_path / "p.csv")).returncode == 0
    assert run_cli("certify", str(out)).returncode == 0
    verified = run_cli("verify", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = run_cli("export", str(out), "--out", str(tmp_path / "onnx"))
    assert exported.returncode == 0, exported.stderr

    # the gate rows are exactly what with_gates writes for this spec and domain
    data = prepare(frame, ["label"], positive="yes")
    spec = parse_spec_text(RULE, data.encoding)
    low, high = data.domain.scaled(data.encoding)
    gates = plan_gates(input_regions(spec, low, high).values(), low, high)
    torch.manual_seed(0)
    built, layout = with_gates(SkipMLP(3, [8, 6], 1, spec.mapped_features), gates)
    stored = load_file(str(out / "weights.safetensors"))
    free = layout.free_sizes
    for index, size in enumerate(free):
        assert torch.equal(stored[f"hidden.{index}.weight"][size:], built.hidden[index].weight[size:])
        assert torch.equal(stored[f"hidden.{index}.bias"][size:], built.hidden[index].bias[size:])
        previous = 3 if index == 0 else free[index - 1]
        assert (stored[f"hidden.{index}.weight"][:size, previous:] == 0).all()  # free units never read gates

    # try to break it: 100k points of the domain box, evaluated as predict does
    wide = SkipMLP(3, layout.hidden_sizes, 1, spec.mapped_features)
    wide.load_state_dict(stored, strict=False)  # mapped_features is set by the constructor
    rng = np.random.default_rng(1)
    points = low + (high - low) * rng.random((100_000, 3))
    with torch.no_grad():
        outputs = wide(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    assert spec.evaluate_scaled(points, outputs).all()
