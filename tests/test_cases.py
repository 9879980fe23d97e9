"""An assert that states several cases (a premise joined with or, a value chosen with ite on inputs) is split
into one assert per case: z3 proves the split an equivalence, numbering keeps the asserts as written."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import z3

from deepsade.cases import MAX_CASES, split_cases
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text, vacuous_asserts

DECLS = "".join(f"(declare-const {n} Real)" for n in ("a", "b", "c", "y", "z"))
OUTPUTS = {"y", "z"}


def _read(assertion: str) -> z3.BoolRef:
    return z3.parse_smt2_string(DECLS + f"(assert {assertion})")[0]


@pytest.mark.parametrize("assertion, n_cases", [
    ("(=> (or (>= a 3.0) (< b 1.0)) (>= y 2.0))", 2),
    ("(=> (or (>= a 3.0) (and (< b 1.0) (or (> c 0.0) (<= c -2.0)))) (and (>= y 2.0) (<= z y)))", 3),
    ("(=> (not (and (>= a 3.0) (<= b 1.0))) (>= y 0.0))", 2),
    ("(=> (not (= a 1.0)) (<= y 5.0))", 2),
    ("(=> (=> (> a 0.0) (> b 0.0)) (<= y 5.0))", 2),
    ("(<= y (ite (= a 1.0) 50.0 130.0))", 3),
    ("(=> (>= b 2.0) (<= (+ y (ite (> a 0.5) z 0.0)) (ite (<= c 1.0) 10.0 (* 2.0 c))))", 4),
    ("(=> (or (>= a 3.0) (>= b 3.0)) (<= y (ite (> c 0.0) 1.0 2.0)))", 4),
    ("(and (=> (>= a 3.0) (>= y 2.0)) (=> (< b 1.0) (<= z 0.0)) (>= y -5.0))", 3),  # rules in one assert
    ("(=> (> c 0.0) (and (=> (or (>= a 3.0) (>= b 3.0)) (>= y 2.0)) (<= y 9.0)))", 3),
])
def test_the_cases_together_say_exactly_what_the_assert_says(assertion, n_cases):
    expr = _read(assertion)
    cases = split_cases(expr, OUTPUTS)
    assert cases is not None and len(cases) == n_cases
    solver = z3.Solver()
    solver.add(z3.Not(expr == z3.And(*cases)))
    assert solver.check() == z3.unsat
    for case in cases:  # each case's premise (on inputs) is a conjunction, never a disjunction
        premise = case.arg(0) if z3.is_implies(case) else z3.BoolVal(True)
        assert not any(z3.is_or(n) or z3.is_not(n) for n in [premise, *premise.children()])


@pytest.mark.parametrize("assertion", [
    "(=> (and (>= a 3.0) (< b 1.0)) (>= y 2.0))",  # one case only
    "(<= y 4.0)",
    "(and (>= y 0.0) (<= y 30.0))",  # a plain conjunction of comparisons: the clamps take it as one assert
    "(and (and (>= y 0.0) (<= y 3.0)) (>= z -1.0))",
    "(<= y (ite (> z 0.0) 1.0 2.0))",  # the ite reads an output: a choice of the model, not a case of the data
    "(=> (> a 0.0) (or (>= y 1.0) (<= y -1.0)))",  # a disjunction in the conclusion is no case split
    "(<= 3.0 (ite (> a 0.0) y 5.0))",  # the case a <= 0 says 3 <= 5: it mentions no output
])
def test_an_assert_of_one_case_is_kept_whole(assertion):
    assert split_cases(_read(assertion), OUTPUTS) is None


def test_more_cases_than_the_cap_keep_the_assert_whole():
    premise = "(and " + " ".join(f"(or (> a {k}.0) (> b {k}.0))" for k in range(5)) + ")"  # 2^5 cases
    assert 2 ** 5 > MAX_CASES
    assert split_cases(_read(f"(=> {premise} (>= y 0.0))"), OUTPUTS) is None


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({"flag": rng.integers(0, 2, n).astype(float), "x": rng.uniform(0, 10, n),
                         "y": rng.uniform(0, 100, n)})


def test_asserts_keep_their_numbers_and_further_cases_follow(frame):
    encoding = prepare(frame, ["y"]).encoding
    spec = parse_spec_text("(declare-const flag Real)(declare-const x Real)(declare-const y Real)"
                           "(assert (=> (or (> x 8.0) (< x 1.0)) (>= y 10.0)))"
                           "(assert (<= y 100.0))"
                           "(assert (<= y (ite (= flag 1.0) 50.0 130.0)))", encoding)
    assert [a.written_index for a in spec.asserts] == [0, 1, 2, 0, 2, 2]
    assert [a.case_of for a in spec.asserts] == [0, None, 2, 0, 2, 2]
    assert spec.n_written == 3
    assert spec.asserts[1].text == "(<= y 100.0)"
    assert any("assert 1 states 2 cases (a premise joined with or)" in n and "asserts 1, 4" in n for n in spec.notes)
    assert any("assert 3 states 3 cases (a value chosen with ite on inputs)" in n and "asserts 3, 5, 6" in n
               for n in spec.notes)
    # flag > 1 (case 6) never holds for a 0/1 flag, but its siblings do: not a slip to warn about
    low, high = (list(map(Fraction, v)) for v in ([0.0] * 2, [1.0] * 2))
    assert vacuous_asserts(spec, low, high) == []


def test_an_assert_none_of_whose_cases_holds_is_named_once(frame):
    encoding = prepare(frame, ["y"]).encoding
    spec = parse_spec_text("(declare-const x Real)(declare-const y Real)"
                           "(assert (=> (or (> x 80.0) (< x -5.0)) (>= y 10.0)))(assert (<= y 100.0))", encoding)
    assert len(spec.asserts) == 3
    low, high = [Fraction(0)] * 2, [Fraction(1)] * 2
    assert vacuous_asserts(spec, low, high) == [0]


def test_classifier_rules_are_kept_whole(frame):
    labelled = frame.assign(label=np.where(frame["y"] > 50, "high", "low"))
    encoding = prepare(labelled.drop(columns="y"), ["label"], task="binary", positive="high").encoding
    spec = parse_spec_text("(declare-const x Real)(declare-const label Real)"
                           "(assert (=> (or (> x 8.0) (< x 1.0)) (> label 0.0)))", encoding)
    assert len(spec.asserts) == 1 and spec.asserts[0].case_of is None


def test_a_split_z3_cannot_prove_equivalent_is_not_made(monkeypatch):
    import deepsade.cases as cases

    expr = _read("(=> (or (>= a 3.0) (< b 1.0)) (>= y 2.0))")
    monkeypatch.setattr(cases, "_disjuncts", lambda premise, negate=False: [[premise.children()[0]], [z3.BoolVal(True)]])
    assert split_cases(expr, OUTPUTS) is None  # (a >= 3 => C) and C is stronger than the assert: refused


def test_the_split_can_be_turned_off_for_an_independent_check(frame):
    encoding = prepare(frame, ["y"]).encoding
    text = "(declare-const flag Real)(declare-const y Real)(assert (<= y (ite (= flag 1.0) 50.0 130.0)))"
    assert len(parse_spec_text(text, encoding).asserts) == 3
    whole = parse_spec_text(text, encoding, cases=False)
    assert len(whole.asserts) == 1 and whole.asserts[0].case_of is None and not whole.notes


def test_a_case_false_as_written_is_left_out_but_the_skip_features_stay_the_rules(frame):
    encoding = prepare(frame, ["y"]).encoding
    spec = parse_spec_text("(declare-const flag Real)(declare-const x Real)(declare-const y Real)"
                           "(define-fun use_x () Bool false)"
                           "(assert (<= y (ite use_x x (ite (> flag 0.5) 80.0 130.0))))", encoding)
    assert len(spec.asserts) == 2 and not any("x" in a.text.replace("flag", "") for a in spec.asserts)
    assert spec.mapped_features == [0, 1]  # flag and x, as a model trained before the split was built for


def test_a_threshold_chosen_with_ite_in_a_premise_is_read_as_its_cases(frame):
    from deepsade.cases import expand_premise_choices
    from deepsade.terms import distinct_subterms

    rule = "(=> (and (>= x (ite (= flag 1.0) 8.0 2.0)) (<= y 50.0)) (> label 0.0))"
    labelled = frame.assign(label=np.where(frame["y"] > 50, "high", "low"))
    encoding = prepare(labelled, ["label"], task="binary", positive="high").encoding
    spec = parse_spec_text("(declare-const flag Real)(declare-const x Real)(declare-const y Real)"
                           f"(declare-const label Real)(assert {rule})", encoding)
    (assertion,) = spec.asserts  # a classifier's rule stays one assert, its premise now of comparisons only
    assert assertion.linear and not any(z3.is_app(n) and n.decl().kind() == z3.Z3_OP_ITE
                                        for n in distinct_subterms(assertion.premise))
    assert assertion.text == rule  # shown as written, and without z3's let-bound names
    assert any("assert 1: a premise that chooses a threshold with ite" in n for n in spec.notes)
    decls = "".join(f"(declare-const {n} Real)" for n in ("flag", "x", "y", "label"))
    expr = z3.parse_smt2_string(decls + f"(assert {rule})")[0]
    expanded = expand_premise_choices(expr, {"label"})
    solver = z3.Solver()
    solver.add(expr != expanded)
    assert solver.check() == z3.unsat
    # an ite in the conclusion, or none at all, is left to the case split
    assert expand_premise_choices(z3.parse_smt2_string(decls + "(assert (<= label (ite (= flag 1.0) 1.0 2.0)))")[0],
                                  {"label"}) is None
