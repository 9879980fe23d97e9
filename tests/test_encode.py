"""Every strategy agrees with the exact checker: no strategy accepts weights the checker rejects."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import z3

from deepsade.encoding.dual import dual_constraints, dual_satisfied, to_dual
from deepsade.encoding.dual_or import disjunctive_satisfied
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout, weight_variables
from deepsade.encoding.qe import eliminate_quantifiers
from deepsade.encoding.quantified import quantified_formula
from deepsade.spec import parse_spec_text

RULES = [
    "(assert (<= (+ y1 y2) x1))",
    "(assert (=> (and (< x1 0.5) (>= x2 0.2)) (and (<= y1 0.3) (>= y2 (- x1)))))",
    "(assert (=> (<= (+ x1 x2) 0.8) (<= (- y1 y2) (* 2 x2))))",  # premise couples two inputs: Farkas
    "(assert (=> (> x1 0.3) (= y1 x2)))",
]


def _fixed(weights_vars, biases_vars, weights, biases):
    return [v == z3.RealVal(str(Fraction(float(w)))) for row_v, row_w in zip(weights_vars, weights)
            for v, w in zip(row_v, row_w)] + [v == z3.RealVal(str(Fraction(float(b))))
                                              for v, b in zip(biases_vars, biases)]


def _sat(constraints) -> bool:
    solver = z3.Solver()
    solver.add(*constraints)
    return solver.check() == z3.sat


@pytest.mark.parametrize("rule", RULES)
def test_strategies_agree_with_exact_checker(encoding, rule):
    decls = "(declare-const x1 Real)(declare-const x2 Real)(declare-const y1 Real)(declare-const y2 Real)"
    spec = parse_spec_text(decls + rule, encoding)
    layout = LatentLayout(3, tuple(spec.mapped_features), 2)
    assert_ = spec.asserts[0]
    dual = to_dual(assert_, layout)
    assert dual is not None
    rng = np.random.default_rng(len(rule))
    margin = Fraction(1, 1000)
    outcomes = []
    for trial in range(12):
        low = np.concatenate([np.zeros(3), np.zeros(len(layout.mapped))])
        high = np.concatenate([rng.uniform(0, 2, 3), np.ones(len(layout.mapped))])
        scale = 0.05 if trial % 2 else 1.0  # small weights often satisfy, large ones often do not
        weights = (rng.normal(size=(2, layout.n_latent)) * scale).astype(np.float32).astype(np.float64)
        # small weights around a bias of (-0.2, 0.2) satisfy every rule here; large ones seldom do
        biases = (rng.normal(size=2) * scale + np.array([-0.2, 0.2])).astype(np.float32).astype(np.float64)
        if "(= y1" in rule and trial % 2:  # the only weights that hold an equality: y1 is x2 itself
            weights[0] = 0.0
            weights[0, layout.coordinate(1)] = 1.0
            biases[0] = 0.0
        exact_ok = find_counterexample(assert_, layout, weights, biases, low, high, margin) is None
        W, b = weight_variables(layout)
        fixed = _fixed(W, b, weights, biases)
        assert _sat(dual_constraints(dual, W, b, low, high, margin, "t") + fixed) == exact_ok
        if dual.closed_form:
            assert bool(dual_satisfied(dual, weights[None], biases[None], low, high, float(margin))[0]) == exact_ok
        quantified = quantified_formula(assert_, layout, W, b, low, high, margin)
        assert _sat([quantified] + fixed) == exact_ok
        assert _sat([eliminate_quantifiers(quantified)] + fixed) == exact_ok
        outcomes.append(exact_ok)
    assert any(outcomes) and not all(outcomes)  # both verdicts occur: the comparison means something


def test_auto_picks_dual_dual_or_sign_pattern_and_cegis(encoding):
    decls = "(declare-const x1 Real)(declare-const y1 Real)(declare-const y2 Real)"
    spec = parse_spec_text(decls + "(assert (or (> y1 x1) (< y2 0)))(assert (<= y1 1))"
                           "(assert (<= (+ (ite (> y1 0) 1 0) (ite (> y2 0) 1 0)) 1))"
                           "(assert (=> (> x1 0.5) (<= (* y1 y2) 1)))", encoding)
    encoder = Encoder(spec, LatentLayout(3, tuple(spec.mapped_features), 2), "auto")
    assert encoder.kinds == {0: "dual-or", 1: "dual", 2: "sign-pattern", 3: "cegis"}


def test_dual_or_accepts_only_what_the_exact_checker_accepts(encoding):
    """The disjunctive form is a strengthening: sat with fixed weights implies no counterexample."""
    decls = "(declare-const x1 Real)(declare-const x2 Real)(declare-const y1 Real)(declare-const y2 Real)"
    spec = parse_spec_text(decls + "(assert (=> (> x1 0.5) (and (or (> y1 y2) (> y1 x2)) (or (< y2 0) (<= y1 1)))))",
                           encoding)
    layout = LatentLayout(3, tuple(spec.mapped_features), 2)
    encoder = Encoder(spec, layout, "auto")
    assert encoder.kinds == {0: "dual-or"}
    form = encoder.disjunctive[0]
    rng = np.random.default_rng(3)
    margin = Fraction(1, 1000)
    accepted = 0
    for _trial in range(16):
        low = np.zeros(layout.n_latent)
        high = np.concatenate([rng.uniform(0, 2, 3), np.ones(len(layout.mapped))])
        weights = (rng.normal(size=(2, layout.n_latent)) * 0.3).astype(np.float32).astype(np.float64)
        biases = (rng.normal(size=2) * 0.5).astype(np.float32).astype(np.float64)
        W, b = weight_variables(layout)
        held = _sat(encoder.hard_constraints(W, b, low, high, margin) + _fixed(W, b, weights, biases))
        closed = bool(encoder.check_candidates(weights[None], biases[None], low, high, float(margin))[0])
        exact_ok = find_counterexample(spec.asserts[0], layout, weights, biases, low, high, margin) is None
        assert closed == exact_ok  # check_candidates is exact (closed form first, then z3)
        if held:
            accepted += 1
            assert exact_ok
        assert bool(disjunctive_satisfied(form, weights[None], biases[None], low, high, float(margin))[0]) == held
    assert 0 < accepted < 16
