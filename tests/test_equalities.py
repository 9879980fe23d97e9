"""Equalities on outputs: found with the band half-width the sequential clamps would need, and explained to the
user when DeepSaDe has to take them (an error that says how to state a band, or a note on the trained model)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from deepsade.data import Encoding
from deepsade.equalities import equality_hint, output_equalities
from deepsade.estimator import DeepSaDe
from deepsade.spec import parse_spec_text
from deepsade.training import NoModelExists

ENCODING = Encoding(feature_columns=["income", "size"], categorical_levels={}, input_names=["income", "size"],
                    target_columns=["housing", "food", "other"], task="regression",
                    output_names=["housing", "food", "other"], input_min=[1000.0, 1.0], input_max=[9000.0, 5.0],
                    target_min=[0.0, 0.0, -100.0], target_max=[3000.0, 1000.0, 6000.0])
DECLARE = """
(declare-const income Real)
(declare-const size Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const other Real)
"""


def test_equalities_on_outputs_are_found_with_the_band_the_clamps_need() -> None:
    spec = parse_spec_text(DECLARE + """
(assert (= (+ housing food other) income))
(assert (=> (< size 2.0) (= food 150.0)))
(assert (>= housing 0.0))
(assert (=> (= size 1.0) (<= food 400.0)))
""", ENCODING)
    scales = [Fraction(3000), Fraction(1000), Fraction(6100)]
    found = output_equalities(spec, 1e-4, scales)
    # the premise's (= size 1.0) mentions no output; the band floor is 2 margins times |coefficient| x scale
    assert [e.assert_index for e in found] == [0, 1]
    assert found[0].least_half_width == pytest.approx(2e-4 * (3000 + 1000 + 6100))
    assert found[1].least_half_width == pytest.approx(2e-4 * 1000)
    hint = equality_hint(spec, 1e-4, scales)
    assert "assert(s) 1, 2" in hint and "state it as a band" in hint and "must exceed 2.1 " in hint


def test_equalities_that_only_select_a_case_are_not_flagged_and_asserts_sort_as_numbers() -> None:
    spec = parse_spec_text(DECLARE + """
(assert (=> (= size 1.0) (<= food 400.0)))
(assert (or (not (= food 0.0)) (<= housing 10.0)))
(assert (=> (> housing 0.0) (= other 5.0)))
""" + "(assert (>= housing 0.0))\n" * 7 + "(assert (= food 150.0))\n", ENCODING)
    found = output_equalities(spec, 1e-4, [1, 1, 1])
    assert [e.assert_index for e in found] == [2, 10]  # not the premise's (= size 1) nor the negated (= food 0)
    assert "assert(s) 3, 11 state" in equality_hint(spec, 1e-4, [1, 1, 1])


def test_a_rule_without_equalities_gets_no_hint_and_a_nonlinear_one_no_band() -> None:
    spec = parse_spec_text(DECLARE + "(assert (<= (+ housing food) income))\n", ENCODING)
    assert output_equalities(spec, 1e-4, [1, 1, 1]) == [] and equality_hint(spec, 1e-4, [1, 1, 1]) is None
    for nonlinear in ("(= (* food size) 600.0)", "(= (* food food) 4.0)", "(= other (ite (> food 2.0) food 0.0))"):
        spec = parse_spec_text(DECLARE + f"(assert {nonlinear})\n", ENCODING)
        (found,) = output_equalities(spec, 1e-4, [1, 1, 1])
        assert found.least_half_width is None, nonlinear
    assert "must exceed" not in equality_hint(spec, 1e-4, [1, 1, 1])
    # a value chosen with ite on an input is one linear equality per case (deepsade.cases), each with its band
    spec = parse_spec_text(DECLARE + "(assert (= other (ite (> size 2.0) food 0.0)))\n", ENCODING)
    found = output_equalities(spec, 1e-4, [1, 1, 1])
    assert len(found) == 2 and all(e.least_half_width is not None for e in found)


def _budget_rows(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.uniform(1500, 9000, n).round(0)
    housing = (0.3 * income + rng.normal(0, 150, n)).clip(200).round(2)
    food = (300 + 0.05 * income + rng.normal(0, 60, n)).clip(50).round(2)
    return pd.DataFrame({"income": income, "housing": housing, "food": food,
                         "other": (income - housing - food).round(2)})


RULE = """
(declare-const income Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const other Real)
{sum}
(assert (>= housing 0.0))
(assert (>= food 0.0))
"""


def test_an_equality_deepsade_cannot_meet_fails_with_the_band_to_state_instead(tmp_path) -> None:
    rule = tmp_path / "budget.smt2"
    rule.write_text(RULE.format(sum="(assert (= (+ housing food other) income))"), encoding="utf-8")
    # DeepSaDe itself (auto's sequential clamps hold this equality exactly: tests/test_exact_equalities.py)
    with pytest.raises(NoModelExists, match=r"state it as a band.*must exceed") as failure:
        DeepSaDe(rule, ["housing", "food", "other"], method="deepsade", hidden=(8,), epochs=1, seed=0,
                 solver_timeout=2.0).fit(_budget_rows())
    # the equality leads; the trainer's own advice (a solver timeout) is not the headline
    assert str(failure.value).startswith("no certified model found: assert(s) 1 state an equality")


def test_the_band_the_hint_suggests_is_taken_by_the_clamps_and_certified(tmp_path) -> None:
    rule = tmp_path / "budget.smt2"
    rule.write_text(RULE.format(sum="(assert (= (+ housing food other) income))"), encoding="utf-8")
    rows = _budget_rows()
    with pytest.raises(NoModelExists) as failure:
        DeepSaDe(rule, ["housing", "food", "other"], method="deepsade", hidden=(8,), epochs=1, seed=0,
                 solver_timeout=2.0).fit(rows)
    floor = float(str(failure.value).split("must exceed ")[1].split(" ")[0])
    tol = 3 * floor
    rule.write_text(RULE.format(sum=f"(assert (<= (- (+ housing food other) income) {tol}))\n"
                                    f"(assert (>= (- (+ housing food other) income) (- {tol})))"), encoding="utf-8")
    model = DeepSaDe(rule, ["housing", "food", "other"], hidden=(8,), epochs=2, seed=0).fit(rows)
    assert model.artifact_.method == "polytope"
    assert model.artifact_.certificate["verdict"] == "certified"


def test_advise_names_the_equality_and_the_band(tmp_path) -> None:
    """The band note is for an equality the clamps do not hold exactly (here: another assert, a product of an
    input and an output, needs the DeepSaDe trainer);
    where auto's clamps hold it as written, advise says auto trains them and gives no band (session 15 probe)."""
    from click.testing import CliRunner

    from deepsade.cli import main

    rule, csv = tmp_path / "budget.smt2", tmp_path / "d.csv"
    _budget_rows().to_csv(csv, index=False)
    declare = "".join(f"(declare-const {n} Real)" for n in ("income", "housing", "food", "other"))
    rule.write_text(declare + "(assert (= (+ housing food other) income))"
                    "(assert (<= (* food income) 100000000.0))", encoding="utf-8")
    result = CliRunner().invoke(main, ["advise", str(rule), str(csv), "--target", "housing,food,other"])
    assert result.exit_code == 0, result.output
    assert "note: assert(s) 1 state an equality on the outputs" in result.output and "must exceed" in result.output
    rule.write_text(RULE.format(sum="(assert (= (+ housing food other) income))"), encoding="utf-8")
    held = CliRunner().invoke(main, ["advise", str(rule), str(csv), "--target", "housing,food,other"])
    assert held.exit_code == 0, held.output
    assert "train's default, --method auto: polytope" in held.output and "state an equality" not in held.output
