"""Equalities on outputs held exactly by the sequential clamps (``constructions.exact_equalities``): the output
scaling that makes an equation's coefficients exact, the clamps that then define its last output, and the
certificate that checks the equality without a margin."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade import artifact as artifact_io
from deepsade.certify import certify_model
from deepsade.constructions.exact_equalities import (
    clamp_order,
    derived_output,
    exact_scaling,
    float32_exact,
    inexact_reason,
    output_equalities,
)
from deepsade.constructions.recognise import NotApplicable
from deepsade.data import Encoding
from deepsade.estimator import DeepSaDe
from deepsade.ingest import prepare
from deepsade.prediction import raw_outputs
from deepsade.recheck import recheck_artifact
from deepsade.spec import parse_spec_text
from tests.test_equalities import RULE, _budget_rows

BUDGET = RULE.format(sum="(assert (= (+ housing food other) income))")
TARGETS = ["housing", "food", "other"]


def _budget_spec():
    data = prepare(_budget_rows(), TARGETS)
    return parse_spec_text(BUDGET, data.encoding), data.encoding


def test_the_data_scaling_leaves_the_equation_inexact_and_the_rescaling_makes_it_exact() -> None:
    spec, encoding = _budget_spec()
    ((index, atom),) = output_equalities(spec)
    assert index == 0 and inexact_reason(atom, spec, "assert 1") is not None  # what the clamps could not hold
    rescaled, aligned = exact_scaling(spec, encoding)
    ((_, exact),) = output_equalities(rescaled)
    assert inexact_reason(exact, rescaled, "assert 1") is None
    assert derived_output(exact) == 2  # "other", the largest part, is the one the equation defines
    lead = exact.outputs()[2]
    assert exact.const == 0 and all(float32_exact(v / lead) for v in [*exact.outputs().values(),
                                                                         *exact.inputs().values()])
    # each output's scale moves by a power-of-two factor of at most sqrt(2) (its targets stay O(1))
    for (_, before), (_, after) in zip(encoding.output_affine(), aligned.output_affine(), strict=True):
        assert 1 / math.sqrt(2) <= float(after / before) <= math.sqrt(2)
    # the stored floats are the nearest floats of the exact pairs, and the encoding survives JSON
    again = Encoding.from_dict(json.loads(json.dumps(aligned.to_dict())))
    assert again.output_affine() == aligned.output_affine()
    assert "output_affine_exact" not in encoding.to_dict()  # encodings without it serialise as before


def test_an_equation_over_two_inputs_of_unrelated_ranges_cannot_be_made_exact() -> None:
    rows = _budget_rows().assign(bonus=lambda f: np.linspace(0, 977, len(f)))
    rows["other"] = rows["income"] + rows["bonus"] - rows["housing"] - rows["food"]
    data = prepare(rows, TARGETS)
    text = BUDGET.replace("(declare-const other Real)", "(declare-const other Real)(declare-const bonus Real)") \
        .replace("income))", "(+ income bonus)))")
    with pytest.raises(NotApplicable, match=r"inputs \(income, bonus\) whose scales have no exact ratio"):
        exact_scaling(parse_spec_text(text, data.encoding), data.encoding)


def test_shares_summing_to_a_constant_are_made_exact_without_an_input() -> None:
    rng = np.random.default_rng(3)
    weights = rng.uniform(1, 3, (200, 3))
    shares = weights / weights.sum(axis=1, keepdims=True) * 100
    rows = pd.DataFrame({"x": weights[:, 0], "a": shares[:, 0], "b": shares[:, 1], "c": shares[:, 2]})
    data = prepare(rows, ["a", "b", "c"])
    spec = parse_spec_text("(declare-const a Real)(declare-const b Real)(declare-const c Real)"
                           "(assert (= (+ a b c) 100))", data.encoding)
    rescaled, _ = exact_scaling(spec, data.encoding)
    ((_, atom),) = output_equalities(rescaled)
    assert inexact_reason(atom, rescaled, "assert 1") is None and not atom.inputs()


@pytest.fixture(scope="module")
def budget_model():
    rows = _budget_rows()
    return DeepSaDe(BUDGET, TARGETS, hidden=(8,), epochs=2, seed=0).fit(rows), rows


def test_auto_holds_the_budget_equality_with_clamps_and_the_certificate_checks_it(budget_model, tmp_path) -> None:
    model, rows = budget_model
    art = model.artifact_
    assert art.method == "polytope"
    assert art.certificate["verdict"] == "certified"
    assert [a["result"] for a in art.certificate["asserts"]] == ["holds"] * 3
    assert art.encoding.output_affine_exact is not None
    # what predict returns keeps the equality up to float64 rounding
    outputs, _ = raw_outputs(art, rows)
    assert np.abs(outputs.sum(axis=1) - rows["income"].to_numpy()).max() < 1e-6
    # the saved directory re-checks from first principles
    art_dir = artifact_io.save(art, tmp_path / "m")
    assert not recheck_artifact(artifact_io.load(art_dir)).problems


def test_one_float32_step_in_the_clamps_breaks_the_equality_and_the_certificate_says_so(budget_model) -> None:
    model, _ = budget_model
    art = model.artifact_
    network = art.model
    spec = parse_spec_text(BUDGET, art.encoding)
    row = int(np.flatnonzero(network.out_weight[2].detach().numpy())[0])  # "other", defined by the equation
    with torch.no_grad():
        original = network.out_weight[2, row].clone()
        network.out_weight[2, row] = torch.nextafter(original, torch.tensor(math.inf))
    try:
        broken = certify_model(network, spec, art.encoding, art.domain, art.certificate["margin"])
    finally:
        with torch.no_grad():
            network.out_weight[2, row] = original
    assert broken["verdict"] != "certified"
    assert broken["asserts"][0]["result"] != "holds"  # no margin: a one-ulp change is caught


def test_a_tampered_exact_scaling_is_refused_on_recheck(budget_model, tmp_path) -> None:
    model, _ = budget_model
    directory = artifact_io.save(model.artifact_, tmp_path / "m")
    data = json.loads((directory / "model.json").read_text())
    offset, scale = data["encoding"]["output_affine_exact"][2]
    data["encoding"]["output_affine_exact"][2] = [str(Fraction(offset) + 1), scale]
    (directory / "model.json").write_text(json.dumps(data))
    problems = recheck_artifact(artifact_io.load(directory)).problems
    assert any("nearest floats of the exact output scaling" in p for p in problems), problems


def test_the_largest_part_is_defined_whatever_the_target_order_and_the_clamps_compute_it_last(tmp_path) -> None:
    """A new-user probe listed a small part last (heating, cooling, other kWh): defined as total minus the large
    parts, it carried their errors (3.7x ffn's MSE with a band). The equation defines its largest part instead,
    and the clamps compute it after the others."""
    rng = np.random.default_rng(5)
    n = 240
    heating = rng.uniform(200, 1200, n)
    cooling = rng.uniform(50, 400, n)
    other = rng.uniform(5, 20, n)
    rows = pd.DataFrame({"total": heating + cooling + other, "heating": heating, "cooling": cooling, "other": other})
    text = ("(declare-const total Real)(declare-const heating Real)(declare-const cooling Real)"
            "(declare-const other Real)(assert (= (+ heating cooling other) total))"
            "(assert (and (>= heating 0) (>= cooling 0) (>= other 0)))")
    data = prepare(rows, ["heating", "cooling", "other"])
    rescaled, _ = exact_scaling(parse_spec_text(text, data.encoding), data.encoding)
    ((_, atom),) = output_equalities(rescaled)
    assert derived_output(atom) == 0 and clamp_order(rescaled, 3) == [1, 2, 0]
    model = DeepSaDe(text, ["heating", "cooling", "other"], hidden=(8,), epochs=2, seed=0).fit(rows)
    assert model.artifact_.method == "polytope" and model.artifact_.certificate["verdict"] == "certified"
    outputs, _ = raw_outputs(model.artifact_, rows)
    assert np.abs(outputs.sum(axis=1) - rows["total"].to_numpy()).max() < 1e-6
    assert (outputs >= 0).all()


def _synthetic(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x1, x3 = rng.uniform(0, 10, n), rng.uniform(-3, 3, n)
    y1 = rng.uniform(0, 4, n)
    return pd.DataFrame({"x1": x1, "x3": x3, "y1": y1, "y2": 3 * x1 - y1, "y3": y1 + 2, "y4": y1 + x3 + 1})


DECLARE = "".join(f"(declare-const {v} Real)" for v in ("x1", "x3", "y1", "y2", "y3", "y4"))


def test_an_output_shared_by_two_equalities_keeps_both_exact() -> None:
    """The audit's r4: y1 + y2 = x1 and y3 - y1 = 2. The second equation's coefficients were read in the units
    the first had already changed, so no scaling passed the exactness guard and training found no model."""
    rows = _synthetic().assign(y2=lambda f: f["x1"] - f["y1"])
    text = DECLARE + "(assert (= (+ y1 y2) x1))(assert (= (- y3 y1) 2))"
    data = prepare(rows, ["y1", "y2", "y3"])
    rescaled, _ = exact_scaling(parse_spec_text(text, data.encoding), data.encoding)
    assert all(inexact_reason(atom, rescaled, "") is None for _, atom in output_equalities(rescaled))
    model = DeepSaDe(text, ["y1", "y2", "y3"], hidden=(8,), epochs=2, seed=0).fit(rows)
    assert model.artifact_.method == "polytope" and model.artifact_.certificate["verdict"] == "certified"


def test_the_defined_output_is_the_equation_alone_even_when_other_asserts_bound_it(tmp_path) -> None:
    """The audit's r22 (y1 + y2 = 3 x1, y4 - y1 >= x3, y2 <= x1 + 1, margin 0.05, a wide box): the clamps had
    bounded the defined output by float32 copies of pieces such as 8/3 x1 next to the exact form, which moved it
    off the equation by a rounding (an exact violation of 2.9e-10; the certificate said not certified). The
    defined output's clamp now reads the equation's form alone."""
    rows = _synthetic()
    text = DECLARE + "(assert (= (+ y1 y2) (* 3 x1)))(assert (>= (- y4 y1) x3))(assert (<= y2 (+ x1 1)))"
    box = tmp_path / "wide.json"
    box.write_text(json.dumps({"x1": [-50, 200], "x3": [-1000, 1000]}))
    model = DeepSaDe(text, ["y1", "y2", "y3", "y4"], hidden=(8,), epochs=2, seed=0, margin=0.05,
                     domain=str(box)).fit(rows)
    art = model.artifact_
    assert art.method == "polytope" and art.certificate["verdict"] == "certified", art.certificate["asserts"]


def test_an_exact_scaling_beyond_float64_is_a_named_problem_not_a_crash(budget_model, tmp_path) -> None:
    model, _ = budget_model
    directory = artifact_io.save(model.artifact_, tmp_path / "m")
    data = json.loads((directory / "model.json").read_text())
    data["encoding"]["output_affine_exact"][0][1] = "1e400"
    (directory / "model.json").write_text(json.dumps(data))
    problems = recheck_artifact(artifact_io.load(directory)).problems
    assert "the exact output scaling holds a value beyond the float64 range" in problems


def _households(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    income = rng.uniform(1000, 5000, n).round(2)
    subsidised = (rng.uniform(0, 1, n) < 0.3).astype(float)
    rent = np.where(subsidised == 1, 0.3 * income, 0.35 * income + rng.normal(0, 150, n))
    food = np.clip(0.1 * income + rng.normal(0, 80, n), 60, None)
    return pd.DataFrame({"income": income, "subsidised": subsidised, "rent": rent.round(2), "food": food.round(2)})


HOUSEHOLD = "".join(f"(declare-const {v} Real)" for v in ("income", "subsidised", "rent", "food"))
SUBSIDISED = "(>= subsidised 0.5)"


def test_an_equality_behind_a_premise_is_held_exactly_through_its_gate() -> None:
    """'a subsidised rent is 30% of income': auto had sent it to DeepSaDe, which found no model (an equality
    pins its last layer). The clamps hold it behind a premise gate, and the certificate checks it without a
    margin."""
    rows = _households()
    text = HOUSEHOLD.replace("(declare-const food Real)", "") + f"(assert (=> {SUBSIDISED} (= rent (* 0.3 income))))"
    model = DeepSaDe(text, ["rent"], hidden=(8,), epochs=2, seed=0).fit(rows.drop(columns="food"))
    art = model.artifact_
    assert art.method == "polytope" and art.certificate["verdict"] == "certified", art.certificate["asserts"]
    outputs, _ = raw_outputs(art, rows.drop(columns="food"))
    on = rows["subsidised"].to_numpy() == 1
    assert np.abs(outputs[on, 0] - 0.3 * rows["income"].to_numpy()[on]).max() < 1e-6
    assert np.abs(outputs[~on, 0] - 0.3 * rows["income"].to_numpy()[~on]).max() > 10  # free off the premise


def test_an_output_defined_behind_a_premise_gets_room_from_the_bounds_computed_before_it() -> None:
    """food = rent / 2 when subsidised, under rent + food <= income and rent >= 100: food comes last, and its
    other pieces are looser by a quarter of the tightening than those the earlier outputs' bounds were
    projected with. Without that, the float32 rounding of rent's bounds let food's own lower piece pass the
    form at a subsidised input, and the certificate found the equality broken."""
    rows = _households().assign(food=lambda f: np.where(f["subsidised"] == 1, f["rent"] / 2, f["food"]))
    text = HOUSEHOLD + ("(assert (<= (+ rent food) income))(assert (>= food 0.0))(assert (>= rent 100.0))"
                        f"(assert (=> {SUBSIDISED} (= food (* 0.5 rent))))")
    model = DeepSaDe(text, ["rent", "food"], hidden=(8,), epochs=2, seed=0).fit(rows)
    art = model.artifact_
    assert art.method == "polytope" and art.certificate["verdict"] == "certified", art.certificate["asserts"]


def test_equalities_behind_premises_on_two_outputs_or_beside_a_plain_equality_are_named_not_tried() -> None:
    from deepsade.constructions.exact_equalities import for_clamps
    from deepsade.constructions.polytope import split_asserts

    rows = _households()
    data = prepare(rows, ["rent", "food"])
    box = data.domain.scaled_exact(data.encoding)
    for rule in (f"(assert (=> {SUBSIDISED} (= rent (* 0.3 income))))(assert (=> {SUBSIDISED} (= food (* 0.1 income))))",
                 f"(assert (=> {SUBSIDISED} (= rent (* 0.3 income))))(assert (= food (* 0.1 income)))"):
        spec, _ = for_clamps(parse_spec_text(HOUSEHOLD + rule, data.encoding), data.encoding)
        split = split_asserts(spec, *box)
        assert 0 in split.remaining and "only when no other equality" in split.reasons[0], split
