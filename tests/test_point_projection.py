"""The general path's LP step (``deepsade.encoding.point_projection``): a CEGIS assert pinned at an input
point is exactly the rule there, the projection is the Euclidean one, and a trainer on a non-linear rule
takes it instead of MaxSMT and ends certified with no violation in the domain."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.encoding.base import LatentBoxes
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.point_projection import (
    NotLinearAtPoint,
    pinned_dual,
    project_l2,
    reduced_counterexample,
)
from deepsade.estimator import DeepSaDe
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text

DOSING = ("(declare-const w Real)(declare-const d Real)"
          "(assert (<= (* w d) 100.0))(assert (>= d 0.0))")
SCREENING = ("(declare-const h Real)(declare-const w Real)(declare-const r Real)"
             "(assert (=> (>= w (* 35.0 h h)) (> r 0.0)))")


def _dosing_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    w = rng.uniform(2.0, 40.0, n)
    other = rng.uniform(0.0, 1.0, n)
    return pd.DataFrame({"w": w, "other": other, "d": np.minimum(15.0, 100.0 / w) * rng.uniform(0.8, 1.0, n)})


def _screening_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    h = rng.uniform(1.5, 2.0, n)
    bmi = rng.uniform(17.0, 45.0, n)
    return pd.DataFrame({"h": h, "w": bmi * h * h, "r": np.where(bmi + rng.normal(0, 3, n) > 30, "yes", "no")})


def _spec(text: str, frame: pd.DataFrame, target: str, **kwargs):
    data = prepare(frame, [target], **kwargs)
    spec = parse_spec_text(text, data.encoding)
    return data, spec, LatentLayout(0, tuple(spec.mapped_features), 1)


@pytest.mark.parametrize("where", [0.0, 0.3, 1.0])
def test_pinned_rows_accept_exactly_the_outputs_the_rule_accepts_at_that_input(where):
    data, spec, layout = _spec(DOSING, _dosing_frame(), "d")
    low, high = data.domain.scaled(data.encoding)
    j = data.encoding.input_names.index("w")
    s = Fraction(float(low[j])) + Fraction(where) * (Fraction(float(high[j])) - Fraction(float(low[j])))
    inputs = np.tile((low + high) / 2, (2001, 1))
    inputs[:, j] = float(s)
    outputs = np.linspace(-2.0, 6.0, 2001)[:, None]
    rule = spec.evaluate_scaled(inputs, outputs)[:, 0]
    dual = pinned_dual(spec.asserts[0], layout, {j: s})
    assert dual.premise.bounds == {layout.coordinate(j): (s, s)}
    rows = np.ones(len(outputs), dtype=bool)
    for row in dual.rows:
        value = outputs[:, 0] * float(row.out[0]) + float(row.const)
        rows &= value < 0 if row.strict else value <= 1e-12
    assert rule.any() and (~rule).any()  # the grid crosses the rule's boundary: the test can fail
    assert (rows == rule).all()


def test_a_false_premise_pins_to_nothing_and_a_true_one_to_the_conclusion():
    data, spec, layout = _spec(SCREENING, _screening_frame(), "r", positive="yes")
    h, w = data.encoding.input_names.index("h"), data.encoding.input_names.index("w")
    low, high = data.domain.scaled(data.encoding)
    assert pinned_dual(spec.asserts[0], layout, {h: Fraction(float(high[h])), w: Fraction(float(low[w]))}) is None
    dual = pinned_dual(spec.asserts[0], layout, {h: Fraction(float(low[h])), w: Fraction(float(high[w]))})
    assert len(dual.rows) == 1 and dual.rows[0].strict and dual.rows[0].out[0] < 0  # r > 0


def test_a_disjunction_left_at_a_point_is_refused():
    text = "(declare-const w Real)(declare-const d Real)(assert (or (<= d 0.0) (>= (* w d) 100.0)))"
    data, spec, layout = _spec(text, _dosing_frame(), "d")
    j = data.encoding.input_names.index("w")
    with pytest.raises(NotLinearAtPoint):
        pinned_dual(spec.asserts[0], layout, {j: Fraction(1, 2)})


def test_the_projection_is_euclidean_so_it_shrinks_rather_than_zeroes():
    # one row over one pinned coordinate z = 1: out * (W + b) + const <= -margin * |out|; the L2 projection
    # of (W, b) = (3, 2) moves both coordinates by half the excess (an L1 projection would move only one)
    data, spec, layout = _spec("(declare-const w Real)(declare-const d Real)(assert (<= (+ d w) 30.0))",
                               _dosing_frame(), "d")
    j = data.encoding.input_names.index("w")
    dual = pinned_dual(spec.asserts[0], layout, {j: Fraction(1)})
    out, const = float(dual.rows[0].out[0]), float(dual.rows[0].const)
    assert out > 0
    margin = 1e-3
    limit = (-const - margin * out) / out  # W + b <= limit
    box = (np.array([1.0]), np.array([1.0]))
    weights, biases = project_l2([dual], layout, (np.array([[3.0]]), np.array([limit + 1.0])), LatentBoxes(box),
                                 margin)
    assert weights[0, 0] == pytest.approx(3.0 - 2.0, abs=1e-6)
    assert biases[0] == pytest.approx(limit + 1.0 - 2.0, abs=1e-6)


def _violations(model, spec, data, n: int = 50_000) -> int:
    low, high = data.domain.scaled(data.encoding)
    points = low + (high - low) * np.random.default_rng(1).random((n, len(low)))
    with torch.no_grad():
        outputs = model(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    return int((~spec.evaluate_scaled(points, outputs).all(axis=1)).sum())


@pytest.mark.parametrize("problem", ["dosing", "screening"])
def test_a_nonlinear_rule_trains_by_lp_without_maxsmt_and_is_certified(problem):
    if problem == "dosing":
        frame, text, target, kwargs = _dosing_frame(), DOSING, "d", {}
    else:
        frame, text, target, kwargs = _screening_frame(), SCREENING, "r", {"positive": "yes"}
    # method deepsade: auto takes the sequential clamps for the dosing rule (a ratio bound), this tests the trainer
    estimator = DeepSaDe(text, target, hidden=(8, 6), epochs=2, batch_size=20, solver_timeout=5.0, seed=0,
                         method="deepsade", **kwargs).fit(frame)
    history = estimator.artifact_.history
    assert sum(h["projection_hits"] for h in history) == sum(h["iterations"] for h in history) > 0
    assert sum(h["maxsmt_calls"] for h in history) == 0  # the LP step replaced MaxSMT on every batch
    assert estimator.certificate["verdict"] == "certified"
    data = prepare(frame, [target], **kwargs)
    spec = parse_spec_text(text, data.encoding)
    assert _violations(estimator.artifact_.model, spec, data) == 0


@pytest.mark.parametrize("text,target,kwargs", [(DOSING, "d", {}), (SCREENING, "r", {"positive": "yes"})])
def test_the_reduced_check_gives_the_full_checks_verdict_and_real_counterexamples(text, target, kwargs):
    frame = _dosing_frame() if target == "d" else _screening_frame()
    data, spec, _ = _spec(text, frame, target, **kwargs)
    layout = LatentLayout(3, tuple(spec.mapped_features), 1)
    low, high = data.domain.scaled(data.encoding)
    latent_low = np.concatenate([[0.0, -1.0, 0.5], [low[j] for j in spec.mapped_features]])
    latent_high = np.concatenate([[2.0, 1.0, 0.5], [high[j] for j in spec.mapped_features]])
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(30):
        weights = rng.normal(0, 0.3, (1, layout.n_latent))
        biases = rng.normal(0.4, 0.5, 1)
        for a in spec.asserts:
            if a.linear:
                continue
            margin = Fraction(1, 10_000)
            full = find_counterexample(a, layout, weights, biases, latent_low, latent_high, margin, 10.0)
            reduced = reduced_counterexample(a, layout, weights, biases, latent_low, latent_high, margin, 10.0)
            assert (full is None) == (reduced is None)
            verdicts.append(reduced is None)
            if reduced is not None:  # a real point of the box where the rule fails
                point = reduced.latent
                assert all(lo <= p <= hi for p, lo, hi in zip(point, latent_low, latent_high))
                assert find_counterexample(a, layout, weights, biases, point, point, margin, 10.0) is not None
    assert any(verdicts) and not all(verdicts)  # both verdicts occur: the comparison can fail


def test_a_constant_start_where_cegis_from_the_first_model_does_not_converge():
    """dosing_children: 'a child under 12 gets at most 700 mg' over a box where a 110 kg child exists; CEGIS from
    z3's first model finds a new point on the curve every round, a constant dose below the data's range passes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_price import split_rows
    from price_problems import PROBLEMS

    from deepsade.estimator import DeepSaDe

    problem = PROBLEMS["dosing_children"]
    train, _ = split_rows(problem.build(), 1)  # the benchmark's seed-1 split, where the CLI failed
    model = DeepSaDe(str(problem.rule_file), list(problem.targets), task="regression", epochs=1, seed=1,
                     method="deepsade").fit(train)  # auto now takes the sequential clamps for this rule
    assert model.method_ == "deepsade"
    assert model.artifact_.certificate["verdict"] == "certified"
