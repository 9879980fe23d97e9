"""The certificate's verdicts mean what they say, and the Python API re-checks like the CLI does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deepsade.artifact import ModelArtifact
from deepsade.certify import CERTIFIED, NOT_CERTIFIED, VIOLATED, Verdict, certify_model
from deepsade.data import default_domain
from deepsade.ingest import prepare
from deepsade.network import SkipMLP
from deepsade.recheck import recheck_artifact
from deepsade.spec import parse_spec_text


def _unit_encoding():
    frame = pd.DataFrame({"x": np.linspace(0.0, 1.0, 11), "y": np.linspace(0.0, 1.0, 11)})
    return prepare(frame, ["y"]).encoding  # x and y span [0, 1]: scaled units are raw units


def _constant_one_network() -> SkipMLP:
    """y = relu(x) + relu(1 - x) = 1 on [0, 1]; interval bounds say y in [0, 2]."""
    model = SkipMLP(1, [2], 1, [])
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.hidden[0].bias.copy_(torch.tensor([0.0, 1.0]))
        model.last.weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.last.bias.zero_()
    return model


def test_verdict_words_are_defined_once():
    assert [v.value for v in Verdict] == ["certified", "not certified", "violated"]
    assert (CERTIFIED, NOT_CERTIFIED, VIOLATED) == ("certified", "not certified", "violated")


def test_a_failed_bound_check_without_a_real_violation_is_not_certified_never_violated():
    encoding = _unit_encoding()
    spec = parse_spec_text("(declare-const y Real)\n(assert (<= y 1.5))\n", encoding)
    certificate = certify_model(_constant_one_network(), spec, encoding, default_domain(encoding), 1e-4)
    assert certificate["verdict"] == NOT_CERTIFIED
    assert certificate["asserts"][0]["result"] == "bound check failed"
    assert "violating_input_raw" not in certificate["asserts"][0]


def test_a_real_violation_is_violated_with_the_input_in_raw_units():
    encoding = _unit_encoding()
    spec = parse_spec_text("(declare-const y Real)\n(assert (<= y 0.5))\n", encoding)
    certificate = certify_model(_constant_one_network(), spec, encoding, default_domain(encoding), 1e-4)
    assert certificate["verdict"] == VIOLATED
    point = certificate["asserts"][0]["violating_input_raw"]
    assert set(point) == {"x"} and 0.0 <= point["x"] <= 1.0


def test_python_api_recheck_refuses_a_forged_margin_and_an_inverted_scaling():
    encoding = _unit_encoding()
    model = _constant_one_network()
    text = "(declare-const y Real)\n(assert (<= y 1.5))\n"
    spec = parse_spec_text(text, encoding)
    certificate = certify_model(model, spec, encoding, default_domain(encoding), 1e-4)
    certificate.update(verdict=CERTIFIED, margin=-1.0)
    art = ModelArtifact(model, encoding, default_domain(encoding), text, certificate=certificate)
    result = recheck_artifact(art)
    assert not result.ok and any("policy minimum" in p for p in result.problems)
    encoding.input_min, encoding.input_max = encoding.input_max, encoding.input_min
    art = ModelArtifact(model, encoding, default_domain(encoding), text, certificate=dict(certificate, margin=1e-4))
    result = recheck_artifact(art)
    assert not result.ok and any("scaling factor" in p for p in result.problems)


def test_the_float32_rounding_bound_is_small_on_the_data_box_and_warned_about_on_a_wide_domain():
    from deepsade.data import Domain
    from deepsade.float_error import float32_error_bound

    encoding = _unit_encoding()
    model = _constant_one_network()
    spec = parse_spec_text("(declare-const y Real)\n(assert (<= y 1.5))\n", encoding)
    narrow = float32_error_bound(model, encoding, default_domain(encoding))
    assert 0 < narrow < 1e-6
    # the bound really bounds: float32 forward passes against exact rationals on a dense grid
    from fractions import Fraction

    from deepsade.concrete_violation import exact_outputs
    grid = np.linspace(0.0, 1.0, 101)
    with torch.no_grad():
        fast = model(torch.as_tensor(grid[:, None], dtype=torch.float32)).double().numpy()[:, 0]
    exact = np.array([float(exact_outputs(model, [Fraction(float(np.float32(v)))])[0]) for v in grid])
    assert np.abs(fast - exact).max() <= narrow
    wide = Domain(np.array([0.0]), np.array([1e6]), "wide")
    assert float32_error_bound(model, encoding, wide) > 1e-4
    certificate = certify_model(model, parse_spec_text("(declare-const y Real)\n(assert (<= y 3e6))\n".replace(
        "3e6", "3000000.0"), encoding), encoding, wide, 1e-4)
    assert "a float32 runtime is covered only up to" in certificate["warning"]
    assert "warning" not in certify_model(model, spec, encoding, default_domain(encoding), 1e-4)


def test_the_float32_warning_says_first_whether_float64_evaluation_is_covered():
    from deepsade.float_error import rounding_warning

    covered = rounding_warning(0.115, 1e-4)  # float64 bound ~2e-10: predict and the default export are covered
    assert covered.startswith("deepsade predict and deepsade export's default ONNX graph evaluate this model in "
                              "float64 (rounding about 2e-10, an estimate, within the margin 0.0001), so their "
                              "predictions are covered; a float32 runtime is covered only up to 0.115")
    assert "narrow the domain" not in covered  # nothing to do for what predict and export run
    assert "--margin" not in covered  # a margin of 0.115 of the targets' range would leave no room: not offered
    uncovered = rounding_warning(1e6, 1e-6)  # float64 bound ~2e-3 > margin: neither is covered, and it says so
    assert "within the margin" not in uncovered and "a float64 one by about 0.00186" in uncovered
    assert "to cover it, train with --margin 0.0025 or more" in rounding_warning(0.00123, 1e-4)  # twice the bound
    assert "or train with --margin 0.0025 or more" in rounding_warning(0.00123, 1e-13)  # float64 not covered either
    assert "--margin" not in rounding_warning(0.047, 1e-4)  # a probe took 0.052 for 0.047 and got a bound of 0.059
