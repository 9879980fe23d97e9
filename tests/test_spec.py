from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import z3

from deepsade.errors import UserInputError
from deepsade.ingest import prepare
from deepsade.spec import conjunction_atoms, input_var, output_var, parse_spec_text

DECLS = "(declare-const a Real)(declare-const b Real)(declare-const y1 Real)(declare-const y2 Real)\n"


@pytest.fixture
def regression_data():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.uniform(-3, 7, 300), "b": rng.uniform(10, 20, 300), "c": rng.normal(size=300),
                          "y1": rng.uniform(0, 5, 300), "y2": rng.uniform(-1, 1, 300)})
    return prepare(frame, ["y1", "y2"])


def test_binding_premise_and_mapped_features(regression_data):
    spec = parse_spec_text(DECLS + "(assert (=> (< a 2) (<= (+ y1 y2) (* 0.5 b))))\n(assert (>= y1 0))", regression_data.encoding)
    names = regression_data.encoding.input_names
    assert [names[j] for j in spec.mapped_features] == ["a", "b"]
    first, second = spec.asserts
    assert first.has_premise and not second.has_premise
    assert first.linear and second.linear
    assert conjunction_atoms(first.premise) is not None and conjunction_atoms(first.conclusion) is not None


def test_scaled_formula_equals_raw_formula_on_data(regression_data):
    """Exact affine substitution: raw formula on raw rows == scaled formula on scaled rows."""
    text = DECLS + ("(assert (=> (< a 2) (<= (+ y1 y2) (* 0.5 b))))\n"
                    "(assert (or (> y2 (- a 1)) (< (+ y1 (* 3 b)) 45)))")
    data = regression_data
    spec = parse_spec_text(text, data.encoding)
    rng = np.random.default_rng(0)
    raw_out = np.column_stack([rng.uniform(0, 5, data.n_rows), rng.uniform(-1, 1, data.n_rows)])
    scaled_out = (raw_out - np.asarray(data.encoding.target_min)) / (
        np.asarray(data.encoding.target_max) - np.asarray(data.encoding.target_min))
    raw_truth = spec.evaluate_raw(data.raw_inputs, raw_out)
    scaled_truth = spec.evaluate_scaled(data.inputs, scaled_out)
    assert 0 < raw_truth.sum() < raw_truth.size  # both outcomes occur, so the comparison means something
    assert (raw_truth == scaled_truth).mean() > 0.999  # float rounding only at exact boundaries


def test_substitution_is_exact_in_rationals(regression_data):
    """At a rational point, the raw and scaled formulas agree exactly (z3 arithmetic, no floats)."""
    data = regression_data
    spec = parse_spec_text(DECLS + "(assert (<= (+ y1 y2) (* 0.5 b)))", data.encoding)
    j_b = data.encoding.input_names.index("b")
    off_b, scale_b = data.encoding.input_affine()[j_b]
    (off1, s1), (off2, s2) = data.encoding.output_affine()
    xs, y1s, y2s = Fraction(1, 3), Fraction(2, 7), Fraction(5, 11)
    raw_b, raw_y1, raw_y2 = off_b + scale_b * xs, off1 + s1 * y1s, off2 + s2 * y2s
    raw_lhs = raw_y1 + raw_y2 - Fraction(1, 2) * raw_b
    scaled = spec.asserts[0].scaled
    value = z3.simplify(z3.substitute(scaled, (input_var(j_b), z3.RealVal(str(xs))),
                                      (output_var(0), z3.RealVal(str(y1s))), (output_var(1), z3.RealVal(str(y2s)))))
    assert z3.is_true(value) == (raw_lhs <= 0)
    # and at the boundary point itself the formula holds exactly
    y2_boundary = (Fraction(1, 2) * raw_b - raw_y1 - off2) / s2
    edge = z3.simplify(z3.substitute(scaled, (input_var(j_b), z3.RealVal(str(xs))),
                                     (output_var(0), z3.RealVal(str(y1s))), (output_var(1), z3.RealVal(str(y2_boundary)))))
    assert z3.is_true(edge)


def test_nonlinear_and_ite_classified(regression_data):
    spec = parse_spec_text(DECLS + "(assert (<= (* y1 y2) 1))(assert (> (+ (ite (> y1 0) 1 0) y2) 0))",
                           regression_data.encoding)
    assert [a.linear for a in spec.asserts] == [False, False]


@pytest.mark.parametrize("text, message", [
    ("(declare-const zz Real)(declare-const y1 Real)(assert (< y1 zz))", "neither inputs nor outputs"),
    ("(declare-const a Int)(declare-const y1 Real)(assert (< y1 1.0))", "declare these as Real"),
    ("(declare-const y1 Real)(assert (< y1 q))", "unknown constant q"),
    ("(declare-const y1 Real)(assert (< y1 1)", "unbalanced"),
    ("(declare-const a Real)(assert (< a 1))", "mentions no output"),
    ("(declare-const y1 Real)(push 1)(assert (< y1 1))", "not allowed"),
    ("(declare-const y1 Real)", r"no \(assert"),
])
def test_bad_constraints(regression_data, text, message):
    with pytest.raises(UserInputError, match=message):
        parse_spec_text(text, regression_data.encoding)


def test_ignored_commands_keep_line_numbers(regression_data):
    spec = parse_spec_text("(set-logic QF_LRA)\n(declare-const y1 Real)\n(assert (< y1 1))\n(check-sat)\n",
                           regression_data.encoding)
    assert len(spec.notes) == 2
    with pytest.raises(UserInputError, match="line 3"):
        parse_spec_text("(set-logic QF_LRA)\n(declare-const y1 Real)\n(assert (+ y1 1))\n", regression_data.encoding)


def test_asserts_are_echoed_with_the_decimals_the_user_wrote(encoding):
    """z3 prints 0.5 as (/ 1.0 2.0) and (- 0.5) as (- (/ 1.0 2.0)); check, certificates and reports show the
    user's decimals again, and leave a quotient with no finite decimal form as it is."""
    from deepsade.numbers import decimal_text

    assert decimal_text("(< x (- (/ 1.0 2.0)))") == "(< x (- 0.5))"
    assert decimal_text("(/ 3.0 40.0) (/ 1.0 10000000.0) (/ 5.0 1.0)") == "0.075 0.0000001 5.0"
    assert decimal_text("(/ 1.0 3.0)") == "(/ 1.0 3.0)"
    spec = parse_spec_text("(declare-const x1 Real)(declare-const y1 Real)"
                           "(assert (=> (< x1 (- 0.5)) (> y1 0.25)))", encoding)
    assert spec.asserts[0].text == "(=> (< x1 (- 0.5)) (> y1 0.25))"
