"""verify: asserts proved on the last layers alone, with what comes before them free in sound bounds."""


from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.estimator import DeepSaDe
from deepsade.spec import parse_spec_text
from deepsade.verification import NetworkWeights, Status, Verifier
from deepsade.verification.abstraction import EnforcementAbstraction, LatentAbstraction
from tests.test_sequential_clamp import MIXED_RULES, _mixed_frame, budget_model  # noqa: F401 (a fixture)

ENFORCEMENT_LAYER = EnforcementAbstraction.label


@pytest.fixture(scope="module")
def budget(budget_model):  # noqa: F811 (the fixture imported above)
    return budget_model.artifact_


def _verifier(art, model=None, **options) -> Verifier:
    lower, upper = art.domain.scaled_exact(art.encoding)
    return Verifier(NetworkWeights.from_model(model if model is not None else art.model),
                    parse_spec_text(art.constraint_text, art.encoding), lower, upper, engine="z3", timeout=30,
                    presample=0, **options)


def test_the_abstract_network_is_the_network_when_f_is_the_real_base_output(budget):
    weights = NetworkWeights.from_model(budget.model)
    abstraction = EnforcementAbstraction.of(weights)
    assert abstraction is not None and abstraction.cut == len(budget.model.hidden)
    x = np.random.default_rng(0).random((500, weights.n_inputs))
    with torch.no_grad():
        f = budget.model.base(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    # the base output the plain form computes, read off the cut's pre-activations
    h = x
    for weight, bias in weights.hidden[:abstraction.cut]:
        h = np.maximum(h @ weight.T + bias, 0.0)
    cut_weight, cut_bias = weights.hidden[abstraction.cut]
    f = (h @ cut_weight.T + cut_bias)[:, :weights.n_outputs]
    assert np.allclose(abstraction.network.forward(np.hstack([x, f])), weights.forward(x), atol=1e-9)
    # ... and the base output's bounds over the domain hold it
    lower, upper = budget.domain.scaled_exact(budget.encoding)
    f_low, f_high = abstraction.free_box(lower, upper)
    assert np.all(f >= np.array([float(v) for v in f_low])) and np.all(f <= np.array([float(v) for v in f_high]))


def test_no_abstraction_without_a_construction_or_when_the_cut_is_not_the_checked_shape(budget):
    weights = NetworkWeights.from_model(budget.model)
    plain = NetworkWeights(weights.hidden, weights.last_weight, weights.last_bias, weights.mapped)
    assert EnforcementAbstraction.of(plain) is None  # base_layers unknown: a plain network
    cut = len(budget.model.hidden)
    for row in (0, -1):  # an f row that is not the negation of its -f row; a mapped input's copy changed
        hidden = [(w.copy(), b.copy()) for w, b in weights.hidden]
        hidden[cut][0][row, 0] += 0.5
        tampered = NetworkWeights(hidden, weights.last_weight, weights.last_bias, weights.mapped,
                                  base_layers=weights.base_layers)
        assert EnforcementAbstraction.of(tampered) is None


def test_a_clamped_rule_is_proved_on_the_enforcement_layer(budget):
    # the bound pre-check alone proves this small model; without it, the layer's proof comes first
    outcome = _verifier(budget, bound_check=False, last_layers_first=True).check_domain()
    assert outcome.status is Status.VERIFIED and outcome.decided_by == ENFORCEMENT_LAYER
    without = _verifier(budget, bound_check=False).check_domain()  # off with the bound pre-check, by default
    assert without.status is Status.VERIFIED and ENFORCEMENT_LAYER not in without.decided_by


def test_a_broken_clamp_is_found_not_proved(budget):
    broken = copy.deepcopy(budget.model)
    with torch.no_grad():
        broken.out_bias[0] += 1.0  # housing moved up after the clamps: the budget can break
    outcome = _verifier(budget, broken).check_domain()
    assert outcome.status is Status.COUNTEREXAMPLE and outcome.broken


def test_an_assert_trained_into_the_base_goes_on_to_the_engines(tmp_path):
    rules = tmp_path / "mixed.smt2"
    rules.write_text(MIXED_RULES)
    est = DeepSaDe(rules, ["a", "b"], method="polytope", hidden=(8, 4), epochs=3, lr=0.05)
    est.fit(_mixed_frame(300, 0))
    art = est.artifact_
    assert "DeepSaDe trains assert(s) 2" in art.training["construction"]
    assert _verifier(art).check_domain().status is Status.VERIFIED
    # the premise rule a >= b rests on the base (no clamp holds it): a base whose b is pushed up breaks it,
    # the layer's proof fails, and the engines on the whole network find the break
    broken = copy.deepcopy(art.model)
    with torch.no_grad():
        broken.last.bias[1] += 5.0
    outcome = _verifier(art, broken).check_domain()
    assert outcome.status is Status.COUNTEREXAMPLE and outcome.broken == (1,) and outcome.decided_by == "z3"


def test_verify_says_what_a_proof_on_the_last_layers_means():
    from deepsade.cli.verify import how_decided

    assert "for every base output within sound bounds" in how_decided("z3-enforcement+marabou")
    assert "for every last-hidden-layer vector" in how_decided("z3-latent")
    assert how_decided("marabou") == "" and how_decided("bounds") == ""


def test_a_nonlinear_assert_is_searched_on_pieces_that_cover_the_box():
    from fractions import Fraction

    from deepsade.data import Encoding
    from deepsade.verification.abstraction import NONLINEAR_PIECES, pieces

    encoding = Encoding(feature_columns=["w", "z"], categorical_levels={}, input_names=["w", "z"], target_columns=["d"],
                        task="regression", output_names=["d"], input_min=[0.0, 0.0], input_max=[1.0, 1.0],
                        target_min=[0.0], target_max=[1.0])
    spec = parse_spec_text("(declare-const w Real)(declare-const z Real)(declare-const d Real)\n"
                           "(assert (<= (* w d) 1.0))\n(assert (<= d z))\n", encoding)
    lower, upper = [Fraction(0), Fraction(0)], [Fraction(1), Fraction(1, 2)]
    product, linear = spec.asserts
    assert pieces(linear, lower, upper) == [(lower, upper)]
    parts = pieces(product, lower, upper)
    assert len(parts) == NONLINEAR_PIECES
    assert parts[0][0][0] == 0 and parts[-1][1][0] == 1
    assert all(a[1][0] == b[0][0] for a, b in zip(parts, parts[1:]))  # consecutive: they cover [0, 1]
    assert all(p[0][1] == 0 and p[1][1] == Fraction(1, 2) for p in parts)  # the other input keeps its range


PREMISE_RULE = """
(declare-const x Real)
(declare-const z Real)
(declare-const y Real)
(assert (=> (>= x 0.5) (<= y 1.0)))
"""


@pytest.fixture(scope="module")
def premise_model(tmp_path_factory):
    rules = tmp_path_factory.mktemp("rules") / "premise.smt2"
    rules.write_text(PREMISE_RULE)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(0, 1, 200), "z": rng.uniform(0, 1, 200)})
    frame["y"] = 2 * frame["x"] + frame["z"] + rng.normal(0, 0.1, 200)
    est = DeepSaDe(rules, ["y"], method="deepsade", hidden=(8, 4), epochs=2, lr=0.05)
    return est.fit(frame).artifact_


def test_a_plain_network_is_proved_on_its_last_layer_over_the_premise_box(premise_model):
    art = premise_model
    assert LatentAbstraction.of(NetworkWeights.from_model(art.model)) is not None
    outcome = _verifier(art, bound_check=False, last_layers_first=True).check_domain()
    assert outcome.status is Status.VERIFIED and outcome.decided_by == LatentAbstraction.label
    broken = copy.deepcopy(art.model)
    with torch.no_grad():
        broken.last.bias[0] += 5.0
    outcome = _verifier(art, broken, bound_check=False, last_layers_first=True).check_domain()
    assert outcome.status is Status.COUNTEREXAMPLE and outcome.broken == (0,)


def test_premise_boxes_narrow_the_box_by_one_input_atoms():
    from fractions import Fraction

    from deepsade.verification.abstraction import premise_boxes
    from deepsade.verification.violation import Atom

    lower, upper = [Fraction(0), Fraction(0)], [Fraction(1), Fraction(1)]
    half = Fraction(1, 2)
    premise = Atom((("x!0", Fraction(-1)),), "<=", -half)  # -x <= -1/2: x >= 1/2
    conclusion = Atom((("y!0", Fraction(1)),), ">", Fraction(1))  # an output atom narrows nothing
    coupled = Atom((("x!0", Fraction(1)), ("x!1", Fraction(-1))), ">=", Fraction(0))  # two inputs: nothing
    assert premise_boxes([(premise, conclusion, coupled)], lower, upper) == [([half, Fraction(0)], upper)]
    empty = Atom((("x!1", Fraction(1)),), ">", Fraction(2))  # outside the box: no input can break there
    assert premise_boxes([(premise, conclusion), (empty,)], lower, upper) == [([half, Fraction(0)], upper)]
    assert premise_boxes(None, lower, upper) == [(lower, upper)]
