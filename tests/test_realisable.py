"""Realisable counterexamples: one category per one-hot group, whole numbers in integer columns.

The models here are built by hand so that the only points of the relaxed box that break the rule are
ones no row can have (``Gender=Female = 0.32, Gender=Male = 0.27``, ``children = 0.5``): verification
and AdI must call them safe, while a real violation is still found with a realisable witness."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import deepsade.verification.marabou_engine as marabou_engine
from deepsade.artifact import ModelArtifact, load, save
from deepsade.certify import NOT_CERTIFIED, VIOLATED, certify_model
from deepsade.cli import main
from deepsade.data import Encoding
from deepsade.ingest import prepare
from deepsade.network import SkipMLP
from deepsade.realisable import RealisableInputs, integer_indices, one_hot_groups
from deepsade.recheck import encoding_problems
from deepsade.spec import parse_spec_text
from deepsade.verification import VerifierConfig, adversity_index, verify_domain

RULE = "(declare-const y Real)\n(assert (<= y 0.1))\n"
ENGINES = ("marabou", "z3")


def household_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Gender (two categories), children (whole numbers 0..4), income (real, [0, 1]), y in [0, 1]:
    scaled units of y and income equal raw ones, children scaled = children / 4."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"Gender": rng.choice(["Female", "Male"], n), "children": rng.integers(0, 5, n),
                          "income": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n)})
    frame.loc[0, ["children", "income", "y"]] = [0, 0.0, 0.0]
    frame.loc[1, ["children", "income", "y"]] = [4, 1.0, 1.0]
    return frame


def household_model(data, real_violation: bool) -> ModelArtifact:
    """y = |Female + Male - 1| + sum of tents over children that vanish at whole numbers (+ a real
    violation when asked: relu(Male + children - 3.5), 0.5 for a man with 3 children).

    Inputs: 0 Gender=Female, 1 Gender=Male, 2 children (scaled c / 4), 3 income."""
    rows, biases, out = [], [], []
    rows += [[1, 1, 0, 0], [-1, -1, 0, 0]]  # relu(g0 + g1 - 1), relu(1 - g0 - g1)
    biases += [-1.0, 1.0]
    out += [1.0, 1.0]
    for k in range(4):  # the tent on [k, k + 1]: relu(c - k) - 2 relu(c - k - 0.5) + relu(c - k - 1)
        for shift, weight in ((0.0, 1.0), (0.5, -2.0), (1.0, 1.0)):
            rows.append([0, 0, 4, 0])
            biases.append(-(k + shift))
            out.append(weight)
    if real_violation:
        rows.append([0, 1, 4, 0])
        biases.append(-3.5)
        out.append(1.0)
    model = SkipMLP(4, [len(rows)], 1, [])
    with torch.no_grad():
        model.hidden[0].weight.copy_(torch.tensor(rows, dtype=torch.float32))
        model.hidden[0].bias.copy_(torch.tensor(biases, dtype=torch.float32))
        model.last.weight.copy_(torch.tensor([out], dtype=torch.float32))
        model.last.bias.zero_()
    return ModelArtifact(model, data.encoding, data.domain, RULE, method="test")


@pytest.fixture(scope="module")
def data():
    return prepare(household_frame(), ["y"])


@pytest.fixture(scope="module")
def safe(data) -> ModelArtifact:
    return household_model(data, real_violation=False)


@pytest.fixture(scope="module")
def violator(data) -> ModelArtifact:
    return household_model(data, real_violation=True)


# ---- the encoding and the structure ------------------------------------------------------------------------


def test_whole_number_columns_are_recorded_as_integer_inputs(data):
    encoding = data.encoding
    assert encoding.input_names == ["Gender=Female", "Gender=Male", "children", "income"]
    assert encoding.integer_inputs == ["children"]
    assert one_hot_groups(encoding) == [[0, 1]] and integer_indices(encoding) == [2]


def test_an_encoding_stored_before_integer_inputs_loads_and_serialises_as_before(data):
    old = {k: v for k, v in data.encoding.to_dict().items() if k != "integer_inputs"}
    encoding = Encoding.from_dict(old)
    assert encoding.integer_inputs is None and encoding.to_dict() == old  # same dict, same certificate hash
    assert RealisableInputs.from_encoding(encoding).integers == ()  # every numeric column real
    assert RealisableInputs.from_encoding(encoding).groups == ((0, 1),)


def test_a_stored_integer_input_must_be_a_numeric_column(data):
    encoding = Encoding.from_dict({**data.encoding.to_dict(), "integer_inputs": ["Gender"]})
    assert any("integer input" in p for p in encoding_problems(encoding))
    assert not encoding_problems(data.encoding)


def test_hull_snap_and_membership(data):
    realisable = RealisableInputs.from_encoding(data.encoding)
    F = Fraction
    lower, upper = [F(0), F(0), F(1, 10), F(0)], [F(1), F(1), F(7, 10), F(1)]  # children in [0.4, 2.8]
    low, high = realisable.hull(lower, upper)
    assert (low[2], high[2]) == (F(1, 4), F(2, 4))  # children 1..2
    assert low[:2] == [0, 0] and high[:2] == [1, 1]
    # an eps-ball around a woman fixes the group
    low, high = realisable.hull([F(7, 10), F(0), F(0), F(0)], [F(1), F(3, 10), F(1), F(1)])
    assert (low[0], high[0], low[1], high[1]) == (1, 1, 0, 0)
    assert realisable.hull([F(1, 10), F(1, 10), F(0), F(0)], [F(9, 10), F(9, 10), F(1), F(1)]) is None
    assert realisable.hull([F(0), F(0), F(1, 10), F(0)], [F(1), F(1), F(2, 10), F(1)]) is None  # no whole child

    point = [F(32, 100), F(27, 100), F(13, 40), F(1, 3)]  # children 1.3
    snapped = realisable.snap_exact(point, lower, upper)
    assert snapped == [F(1), F(0), F(1, 4), F(1, 3)] and realisable.contains(snapped)
    assert not realisable.contains(point)
    assert not realisable.contains([F(1), F(0), F(13, 40), F(0)])  # fractional child
    assert not realisable.contains([F(1), F(1), F(1, 4), F(0)])  # two categories
    floats = realisable.snap(np.array([[0.32, 0.27, 0.33, 0.5], [0.1, 0.9, 0.99, 0.2]]),
                             np.array([0, 0, 0, 0.0]), np.array([1, 1, 1, 1.0]))
    np.testing.assert_allclose(floats, [[1, 0, 0.25, 0.5], [0, 1, 1.0, 0.2]])


# ---- whole-domain verification ---------------------------------------------------------------------------


def _breaking_only_in_the_relaxed_box(safe: ModelArtifact) -> None:
    """The relaxed box does hold breaking points, and all of them are unrealisable."""
    for engine in ENGINES:
        outcome, _ = verify_domain(safe, engine=engine, presample=0, bound_check=False, realisable=False)
        assert outcome.status == "counterexample"
        assert not RealisableInputs.from_encoding(safe.encoding).contains(list(outcome.exact_point))


@pytest.mark.parametrize("engine", ENGINES)
def test_fractional_one_hot_and_integer_points_are_not_counterexamples(safe, engine):
    _breaking_only_in_the_relaxed_box(safe)
    for presample, bounds in ((0, False), (1024, True)):
        outcome, verifier = verify_domain(safe, engine=engine, presample=presample, bound_check=bounds)
        assert outcome.status == "verified", outcome
        assert any("real row" in note for note in verifier.notes)
    if engine == "marabou":  # Marabou took the query itself (group and children as disjunctions)
        outcome, _ = verify_domain(safe, engine=engine, presample=0, bound_check=False)
        assert outcome.decided_by == "marabou"


def test_marabou_hands_what_it_does_not_enumerate_to_z3(safe, violator, monkeypatch):
    """With children left relaxed (too many values to enumerate), Marabou's witness sits at a fractional
    child; it is not reported: z3, which expresses whole numbers, decides."""
    monkeypatch.setattr(marabou_engine, "MAX_INTEGER_CASES", 2)
    outcome, _ = verify_domain(safe, presample=0, bound_check=False)
    assert (outcome.status, outcome.decided_by) == ("verified", "marabou+z3"), outcome
    monkeypatch.setattr(marabou_engine, "MAX_ENUMERATED", 1)  # nothing enumerated, not even the group
    outcome, _ = verify_domain(violator, presample=0, bound_check=False)
    assert outcome.status == "counterexample"
    assert RealisableInputs.from_encoding(violator.encoding).contains(list(outcome.exact_point))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_real_violation_is_found_with_a_realisable_witness(violator, engine):
    outcome, _ = verify_domain(violator, engine=engine, presample=0, bound_check=False)
    assert outcome.status == "counterexample" and outcome.broken == (0,)
    point = list(outcome.exact_point)
    assert RealisableInputs.from_encoding(violator.encoding).contains(point)
    female, male, children = point[0], point[1], point[2] * 4
    assert {female, male} == {0, 1} and children.denominator == 1
    assert (male == 1 and children >= 3) or children == 4  # where relu(Male + children - 3.5) > 0.1


def test_cli_verify_prints_a_realisable_counterexample_in_raw_units(tmp_path, safe, violator):
    safe_dir, violator_dir = save(safe, tmp_path / "safe"), save(violator, tmp_path / "violator")
    assert load(safe_dir).encoding.integer_inputs == ["children"]
    result = CliRunner().invoke(main, ["verify", str(safe_dir)])
    assert result.exit_code == 0 and result.output.startswith("note: only inputs a real row"), result.output
    result = CliRunner().invoke(main, ["verify", str(violator_dir), "--presample", "0", "--no-bounds"])
    assert result.exit_code == 1, result.output
    values = dict(tuple(part.strip(" *") for part in line.rsplit(" = ", 1))
                  for line in result.output.splitlines() if line.startswith("    "))
    assert {values["Gender=Female"], values["Gender=Male"]} == {"0", "1"}
    assert values["children"] in {"3", "4"}
    result = CliRunner().invoke(main, ["verify", str(safe_dir), "--relaxed", "--presample", "0", "--no-bounds"])
    assert result.exit_code == 1 and "note: only inputs" not in result.output, result.output


# ---- AdI ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_adi_does_not_count_unrealisable_points(data, safe, engine):
    inputs = data.inputs[:8]
    relaxed = adversity_index(safe, inputs, [0.3], engine=engine, presample=0, bound_check=False,
                              progress=False, realisable=False)
    assert relaxed.summary["epsilons"][0]["adi"] == 1.0  # e.g. Female = 0.7, Male = 0: |sum - 1| = 0.3
    report = adversity_index(safe, inputs, [0.3], engine=engine, presample=0, bound_check=False, progress=False)
    part = report.summary["epsilons"][0]
    assert part["adi"] == 0.0 and part["verified"] == 8 and report.summary["realisable_only"]


def test_adi_counterexamples_are_realisable(data, violator):
    men_with_three = np.flatnonzero((data.frame["Gender"] == "Male") & (data.frame["children"] == 3))[:3]
    assert len(men_with_three)
    report = adversity_index(violator, data.inputs[men_with_three], [0.3], presample=16, progress=False)
    assert report.summary["epsilons"][0]["adi"] == 1.0
    table = report.table
    assert set(table["cex:children"]) <= {2.0, 3.0, 4.0} and set(table["cex:Gender=Male"]) == {1.0}


def test_a_ball_with_no_realisable_input_is_outside(safe):
    """A row with a category the model never saw (all-zero one-hot) has no realisable input within eps < 1."""
    config = VerifierConfig.from_artifact(safe, presample=0)
    outcome = config.build().check_ball(np.array([0.0, 0.0, 0.5, 0.5]), 0.3)
    assert outcome.status == "outside" and "real row" in outcome.note


# ---- certify: violated only at a realisable input -------------------------------------------------------------


def test_certify_calls_violated_only_at_a_realisable_input(data, safe, violator):
    spec = parse_spec_text(RULE, data.encoding)
    certificate = certify_model(safe.model, spec, data.encoding, data.domain, 1e-4)
    assert certificate["verdict"] == NOT_CERTIFIED  # the bound check fails; no row breaks the rule
    certificate = certify_model(violator.model, spec, data.encoding, data.domain, 1e-4)
    assert certificate["verdict"] == VIOLATED
    violating = certificate["asserts"][0]["violating_input_raw"]
    assert float(violating["children"]).is_integer()
    assert {violating["Gender=Female"], violating["Gender=Male"]} == {0.0, 1.0}


def test_the_note_names_a_few_integer_columns_and_counts_the_rest():
    many = RealisableInputs(tuple(Fraction(0) for _ in range(20)), tuple(Fraction(1) for _ in range(20)),
                            integers=tuple(range(20)))
    text = many.describe([f"pixel_{j}" for j in range(20)])
    assert "pixel_7" in text and "pixel_8" not in text and text.endswith("and 12 more columns")
    few = RealisableInputs((Fraction(0),) * 2, (Fraction(1),) * 2, integers=(0, 1))
    assert few.describe(["age", "children"]) == "whole numbers in age, children"
