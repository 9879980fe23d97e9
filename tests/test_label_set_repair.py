"""Label-set repair (``deepsade.constructions.repair_layer``): which rules it takes, that its layer makes the
rule hold for any base scores (huge, tied, float32), that it leaves the base's predictions alone where they
already satisfy the rule, that its plain ReLU form is the same function, and that the certificate proves
the stored layer and refuses a wrong one."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.certify import certify_model
from deepsade.constructions.monotone_rule import recognise_monotone
from deepsade.constructions.recognise import NotApplicable
from deepsade.constructions.repair_certificate import certify_repaired
from deepsade.constructions.repair_layer import LabelSetRepairMLP
from deepsade.ingest import prepare
from deepsade.spec import parse_spec, parse_spec_text
from deepsade.usecases import uc4_digits, uc5_sushi

DIGIT_WEIGHTS = np.arange(10)


def _uc4():
    frame = uc4_digits.generate(80, seed=0)
    data = prepare(frame, targets=uc4_digits.TARGETS, task=uc4_digits.TASK)
    return parse_spec(str(uc4_digits.CASE.constraint_path), data.encoding), data


def _labels_spec(rule: str, n_labels: int = 3, task: str = "multilabel"):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(40), "b": rng.random(40)})
    names = [f"l{k + 1}" for k in range(n_labels)]
    for name in names:
        frame[name] = rng.integers(0, 2, 40)
    data = prepare(frame, targets=names, task=task)
    declarations = "(declare-const a Real)\n" + "".join(f"(declare-const {n} Real)\n" for n in names)
    return parse_spec_text(declarations + rule, data.encoding), data


def _digit_sum_holds(scores: np.ndarray) -> np.ndarray:
    return ((scores > 0) * DIGIT_WEIGHTS).sum(axis=1) > 10


def _layer(sets, n_outputs=10, level=2e-4) -> LabelSetRepairMLP:
    torch.manual_seed(0)
    return LabelSetRepairMLP(5, [8], n_outputs, [], sets, level)


def test_uc4_rule_has_its_26_minimal_sets():
    spec, data = _uc4()
    rule = recognise_monotone(spec, data.encoding.task)
    assert len(rule.minimal_sets) == 26
    sums = [sum(s) for s in rule.minimal_sets]  # output k is digit k
    assert all(total > 10 for total in sums)
    assert all(sum(s) - min(s) <= 10 for s in rule.minimal_sets)  # minimal: dropping any label breaks it
    assert (2, 9) in rule.minimal_sets and (1, 2, 8) in rule.minimal_sets


@pytest.mark.parametrize("rule, reason", [
    ("(assert (=> (> a 0.5) (> l1 0.0)))", "mentions an input"),
    ("(assert (=> (> l1 0.0) (<= l2 0.0)))", "not monotone"),
    ("(assert (=> (> l1 0.0) (< l2 0.0)))", "values"),
    ("(assert (> l1 2.0))", "values"),
    ("(assert (or (> l1 0.0) (< l1 1.0)))", "no label predicted"),
])
def test_rules_it_does_not_take_are_refused_with_the_reason(rule, reason):
    spec, data = _labels_spec(rule)
    with pytest.raises(NotApplicable, match=reason):
        recognise_monotone(spec, data.encoding.task)


def test_uc5_exactly_one_rule_is_not_monotone():
    frame = uc5_sushi.generate(60, seed=0)
    data = prepare(frame, targets=uc5_sushi.TARGETS, task=uc5_sushi.TASK)
    spec = parse_spec(str(uc5_sushi.CASE.constraint_path), data.encoding)
    with pytest.raises(NotApplicable):
        recognise_monotone(spec, data.encoding.task)


def _hard_scores(n: int, dtype) -> torch.Tensor:
    rng = np.random.default_rng(1)
    blocks = [rng.normal(0, 1, (n, 10)), rng.normal(0, 1e4, (n, 10)), -np.abs(rng.normal(0, 1e6, (n, 10))),
              np.full((n, 10), -3e38 if dtype == torch.float32 else -1e300), np.zeros((n, 10)),
              np.round(rng.normal(0, 1, (n, 10))),  # ties
              rng.choice([-1e30, 1e-30, -1e-30, 5.0], size=(n, 10))]
    return torch.as_tensor(np.vstack(blocks), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_layer_makes_the_rule_hold_for_any_scores(dtype):
    spec, data = _uc4()
    layer = _layer(recognise_monotone(spec, data.encoding.task).minimal_sets).to(dtype)
    scores = _hard_scores(300, dtype)
    assert not _digit_sum_holds(scores.numpy()).all()  # the base scores alone break it
    repaired = layer.repair(scores)
    assert repaired.dtype == dtype
    assert _digit_sum_holds(repaired.numpy()).all()
    # with margin: every score of some minimal set is at least the level
    assert (repaired.numpy() >= -np.inf).all()
    assert _digit_sum_holds(repaired.numpy() - float(layer.level) / 2).all()


def test_predicted_sets_are_the_base_ones_where_the_base_satisfies_the_rule():
    spec, data = _uc4()
    layer = _layer(recognise_monotone(spec, data.encoding.task).minimal_sets)
    scores = torch.as_tensor(np.random.default_rng(2).normal(0, 2, (4000, 10)), dtype=torch.float32)
    # satisfied with the level to spare: some minimal set all at least the level
    fine = _digit_sum_holds(scores.numpy() - 2 * layer.level)
    assert 100 < fine.sum() < len(fine)
    repaired = layer.repair(scores)
    assert ((repaired > 0) == (scores > 0))[torch.as_tensor(fine)].all()
    changed = ((repaired > 0) != (scores > 0)).any(dim=1).numpy()
    assert changed[~_digit_sum_holds(scores.numpy())].all()  # every broken row gets labels added


def test_plain_relu_form_is_the_same_function():
    spec, data = _uc4()
    model = _layer(recognise_monotone(spec, data.encoding.task).minimal_sets).double()
    x = torch.rand(500, 5, dtype=torch.float64) * 4 - 2
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p * 3.0).float().double())  # stored values are float32 ones
        expected = model(x).numpy()
    layers, weight, bias, mapped = model.plain_layers()
    h = x.numpy()
    for w, b in layers:
        h = np.maximum(h @ w.T + b, 0.0)
    assert len(mapped) == 0
    np.testing.assert_allclose(h @ weight.T + bias, expected, rtol=0, atol=1e-9)
    assert not _digit_sum_holds(model.base(x).detach().numpy()).all()


def test_certificate_proves_the_stored_layer_and_refuses_a_wrong_one():
    spec, data = _uc4()
    sets = recognise_monotone(spec, data.encoding.task).minimal_sets
    good = _layer(sets, level=2e-4)
    verdict = certify_repaired(good, spec, 1e-4, 60.0, {}, time.perf_counter())
    assert verdict["verdict"] == "certified", verdict
    wrong = _layer([*sets, (1, 2, 3)], level=2e-4)  # {1, 2, 3} sums to 6: not enough
    assert certify_repaired(wrong, spec, 1e-4, 60.0, {}, time.perf_counter())["verdict"] == "not certified"
    too_low = _layer(sets, level=5e-5)  # below the margin the certificate allows for rounding
    assert certify_repaired(too_low, spec, 1e-4, 60.0, {}, time.perf_counter())["verdict"] == "not certified"


def test_certify_model_dispatches_to_the_repair_certificate():
    spec, data = _uc4()
    model = LabelSetRepairMLP(len(spec.input_names), [6], len(spec.output_names), spec.mapped_features,
                              recognise_monotone(spec, data.encoding.task).minimal_sets, 2e-4)
    certificate = certify_model(model, spec, data.encoding, data.domain, 1e-4)
    assert certificate["verdict"] == "certified"
    assert certificate["construction"]["kind"] == "label-set-repair"


def test_binary_rule_asking_for_the_positive_class_is_taken():
    spec, data = _labels_spec("(assert (> l1 0.0))", n_labels=1, task="binary")
    assert recognise_monotone(spec, data.encoding.task).minimal_sets == ((0,),)


def test_auto_trains_label_set_repair_end_to_end_and_it_survives_a_reload(tmp_path):
    from deepsade.estimator import DeepSaDe

    frame = uc4_digits.generate(150, seed=3)
    model = DeepSaDe(str(uc4_digits.CASE.constraint_path), uc4_digits.TARGETS, task="multilabel", hidden=(12,),
                     epochs=3, seed=0).fit(frame)
    assert model.method_ == "repair"
    art = model.artifact_
    assert art.certificate["verdict"] == "certified"
    predicted = model.predict(frame)[[f"predicted_{t}" for t in uc4_digits.TARGETS]].to_numpy()
    assert _digit_sum_holds(predicted).all()
    model.save(tmp_path / "m")
    again = DeepSaDe.load(tmp_path / "m")
    reloaded = again.predict(frame)[[f"predicted_{t}" for t in uc4_digits.TARGETS]].to_numpy()
    np.testing.assert_array_equal(reloaded, predicted)
    spec = parse_spec(str(uc4_digits.CASE.constraint_path), art.encoding)
    assert certify_model(again.artifact_.model, spec, art.encoding, art.domain, 1e-4)["verdict"] == "certified"


def test_exported_onnx_keeps_the_rule_with_huge_base_scores():
    ort = pytest.importorskip("onnxruntime")
    from deepsade.constructions.repair_onnx import build_repair_onnx

    spec, data = _uc4()
    model = LabelSetRepairMLP(len(spec.input_names), [16], len(spec.output_names), spec.mapped_features,
                              recognise_monotone(spec, data.encoding.task).minimal_sets, 2e-4)
    with torch.no_grad():
        model.last.weight.mul_(1e6)
        model.last.bias.copy_(torch.linspace(-3e6, -1e5, 10))
    low, high = np.asarray(data.encoding.input_min), np.asarray(data.encoding.input_max)
    x = low + (high - low) * np.random.default_rng(4).random((2000, len(low)))
    session = ort.InferenceSession(build_repair_onnx(model, low, high).SerializeToString())
    scores = session.run(None, {"X": x.astype(np.float32)})[0]
    with torch.no_grad():
        base = model.base(torch.as_tensor((x - low) / (high - low), dtype=torch.float32)).numpy()
    assert np.abs(base).max() > 1e5 and not _digit_sum_holds(base).all()
    assert _digit_sum_holds(scores).all()


def test_verify_proves_a_repair_model_through_its_layer(tmp_path):
    from click.testing import CliRunner

    from deepsade.cli import main
    from deepsade.estimator import DeepSaDe

    frame = uc4_digits.generate(120, seed=5)
    model = DeepSaDe(str(uc4_digits.CASE.constraint_path), uc4_digits.TARGETS, task="multilabel", hidden=(8,),
                     epochs=1, seed=0).fit(frame)
    model.save(tmp_path / "m")
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "m"), "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "label-set repair layer" in result.output
