"""What the general path keeps between steps, and that keeping it changes no verdict and no projection: the
reduced exact check built once per assert (``deepsade.encoding.reduced_check``), the pinned rows remembered
while the points stay the same, and one auxiliary per distinct worst-case term in the quadratic program
(``deepsade.encoding.point_projection``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import deepsade.encoding.point_projection as point_projection
import deepsade.encoding.reduced_check as reduced_check
from deepsade.encoding.base import LatentBoxes
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.point_projection import pinned_dual, pinned_rows, project_l2, shared_linear_system
from deepsade.encoding.reduced_check import ReducedCheck, reduced_check_for, reduced_counterexample
from deepsade.ingest import prepare
from deepsade.last_layer_polyhedron import WorstCaseRows, polyhedron_from_duals
from deepsade.spec import parse_spec_text

DOSING = ("(declare-const w Real)(declare-const d Real)"
          "(assert (<= (* w d) 100.0))(assert (>= d 0.0))")
SCREENING = ("(declare-const h Real)(declare-const w Real)(declare-const r Real)"
             "(assert (=> (>= w (* 35.0 h h)) (> r 0.0)))")


def _frame(target: str, n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if target == "d":
        w = rng.uniform(2.0, 40.0, n)
        return pd.DataFrame({"w": w, "other": rng.uniform(0.0, 1.0, n),
                             "d": np.minimum(15.0, 100.0 / w) * rng.uniform(0.8, 1.0, n)})
    h = rng.uniform(1.5, 2.0, n)
    bmi = rng.uniform(17.0, 45.0, n)
    return pd.DataFrame({"h": h, "w": bmi * h * h, "r": np.where(bmi + rng.normal(0, 3, n) > 30, "yes", "no")})


def _problem(text: str, target: str, n_hidden: int = 3):
    kwargs = {"positive": "yes"} if target == "r" else {}
    data = prepare(_frame(target), [target], **kwargs)
    spec = parse_spec_text(text, data.encoding)
    layout = LatentLayout(n_hidden, tuple(spec.mapped_features), 1)
    low, high = data.domain.scaled(data.encoding)
    latent_low = np.concatenate([np.linspace(-1.0, 0.0, n_hidden), [low[j] for j in spec.mapped_features]])
    latent_high = np.concatenate([np.linspace(0.5, 2.0, n_hidden), [high[j] for j in spec.mapped_features]])
    return data, spec, layout, latent_low, latent_high


@pytest.mark.parametrize("text,target", [(DOSING, "d"), (SCREENING, "r")])
def test_a_kept_reduced_check_gives_a_fresh_full_checks_verdict_on_random_weights(text, target):
    _, spec, layout, low, high = _problem(text, target)
    margin = Fraction(1, 10_000)
    rng = np.random.default_rng(3)
    verdicts = []
    for a in spec.asserts:
        kept = reduced_check_for(a, layout, low, high, margin)
        for _ in range(25):
            weights = rng.normal(0, 0.3, (1, layout.n_latent)).astype(np.float32).astype(np.float64)
            biases = rng.normal(0.4, 0.5, 1).astype(np.float32).astype(np.float64)
            assert reduced_check_for(a, layout, low, high, margin) is kept  # built once, reused every step
            full = find_counterexample(a, layout, weights, biases, low, high, margin, 10.0)
            found = reduced_counterexample(a, layout, weights, biases, low, high, margin, 10.0)
            assert (full is None) == (found is None)
            verdicts.append(found is None)
            if found is not None:  # a real point of the box where the rule fails
                point = found.latent
                assert all(lo <= p <= hi for p, lo, hi in zip(point, low, high))
                assert find_counterexample(a, layout, weights, biases, point, point, margin, 10.0) is not None
    assert any(verdicts) and not all(verdicts)  # violating and satisfying weights both occur


def test_a_kept_check_is_one_per_assert_box_and_margin():
    _, spec, layout, low, high = _problem(SCREENING, "r")
    a = spec.asserts[0]
    margin = Fraction(1, 10_000)
    first = reduced_check_for(a, layout, low, high, margin)
    moved_hidden = low.copy()
    moved_hidden[0] -= 5.0  # the hidden coordinates' box moves every step: the same check serves it
    assert reduced_check_for(a, layout, moved_hidden, high, margin) is first
    narrower = low.copy()
    narrower[layout.coordinate(a.inputs[0])] += 0.01  # the assert's own inputs' box is part of the check
    assert reduced_check_for(a, layout, narrower, high, margin) is not first
    assert reduced_check_for(a, layout, low, high, Fraction(1, 100)) is not first


def test_what_the_nonlinear_procedure_leaves_undecided_the_default_solver_decides(monkeypatch):
    _, spec, layout, low, high = _problem(SCREENING, "r")
    a = spec.asserts[0]
    margin = Fraction(1, 10_000)
    monkeypatch.setattr(reduced_check, "_NONLINEAR_TACTIC", "fail")  # a procedure that never decides
    check = ReducedCheck(a, layout, *_pinned_box(a, layout, low, high), margin)
    rng = np.random.default_rng(5)
    verdicts = []
    for _ in range(10):
        weights = rng.normal(0, 0.3, (1, layout.n_latent))
        biases = rng.normal(0.4, 0.5, 1)
        full = find_counterexample(a, layout, weights, biases, low, high, margin, 10.0)
        found = check.check(weights, biases, low, high, 10.0)
        assert (full is None) == (found is None)
        verdicts.append(found is None)
    assert any(verdicts) and not all(verdicts)
    assert check._solver_order()[0] == 1  # once timed, the procedure that never decides is tried last


def test_after_timing_each_way_of_solving_the_fastest_goes_first():
    _, spec, layout, low, high = _problem(SCREENING, "r")
    check = ReducedCheck(spec.asserts[0], layout, *_pinned_box(spec.asserts[0], layout, low, high), Fraction(1, 10))
    rng = np.random.default_rng(6)
    firsts = []
    for _ in range(2 * reduced_check._TRIALS):
        firsts.append(check._solver_order()[0])
        check.check(rng.normal(0, 0.3, (1, layout.n_latent)), rng.normal(0.4, 0.5, 1), low, high, 10.0)
    assert sorted(set(firsts)) == [0, 1] and all(len(t) == reduced_check._TRIALS for t in check.seconds)
    for seconds, order in (([0.5, 0.001], [1, 0]), ([0.001, 0.5], [0, 1])):
        check.seconds = [[t] * reduced_check._TRIALS for t in seconds]
        check.order = None
        assert check._solver_order() == order


def _pinned_box(a, layout, low, high):
    coords = [layout.coordinate(j) for j in a.inputs]
    return [Fraction(float(low[c])) for c in coords], [Fraction(float(high[c])) for c in coords]


def _screening_points(spec, layout, low, high, n: int, seed: int = 0):
    a = spec.asserts[0]
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        latent = [Fraction(float(v)) for v in low + (high - low) * rng.random(len(low))]
        points.append((a.index, latent, [Fraction(0)]))
    return points


def test_remembered_pinned_rows_follow_new_points_and_a_new_input_box(monkeypatch):
    _, spec, layout, low, high = _problem(SCREENING, "r")
    points = _screening_points(spec, layout, low, high, 40)
    boxes = LatentBoxes((low, high))
    computed = []
    real = point_projection._pinned_rows
    monkeypatch.setattr(point_projection, "_pinned_rows", lambda *args: computed.append(1) or real(*args))
    first = pinned_rows(spec.asserts, layout, points, boxes)
    again = pinned_rows(spec.asserts, layout, points, LatentBoxes((low - np.r_[1.0, 1.0, 1.0, 0, 0], high)))
    assert len(computed) == 1  # the same points and input box (only the hidden box moved): remembered
    assert [id(d) for d in again] == [id(d) for d in first]
    points.append(_screening_points(spec, layout, low, high, 1, seed=9)[0])
    grown = pinned_rows(spec.asserts, layout, points, boxes)
    assert len(computed) == 2 and [id(d) for d in grown] == [id(d) for d in real(spec.asserts, layout, points, boxes)]
    narrow_low = low.copy()
    narrow_low[layout.coordinate(spec.asserts[0].inputs[0])] = high[layout.coordinate(spec.asserts[0].inputs[0])]
    narrowed = LatentBoxes((narrow_low, high))
    clipped = pinned_rows(spec.asserts, layout, points, narrowed)
    assert len(computed) == 3
    assert [id(d) for d in clipped] == [id(d) for d in real(spec.asserts, layout, points, narrowed)]


def _pinned_polyhedron(n_points: int = 30, seed: int = 0) -> tuple[WorstCaseRows, LatentLayout]:
    data, spec, layout, low, high = _problem(SCREENING, "r", n_hidden=6)
    duals = pinned_rows(spec.asserts, layout, _screening_points(spec, layout, low, high, n_points, seed),
                        LatentBoxes((low, high)))
    assert len(duals) > 5
    return polyhedron_from_duals(duals, 1, layout.n_latent, LatentBoxes((low, high)), None, 1e-4), layout


def _tight_auxiliaries_feasible(matrix, upper, n_aux, rows: WorstCaseRows, weights, biases, shared: bool) -> bool:
    """Whether (W, b) with its tightest auxiliaries satisfies ``matrix x <= upper`` (to rounding)."""
    a = rows.out @ weights + rows.lat
    terms = np.maximum(a * rows.low, a * rows.high)
    moving = rows.low != rows.high
    if shared:
        row_of, coord_of = np.nonzero(moving)
        keys = np.column_stack([rows.out[row_of], coord_of, rows.lat[row_of, coord_of], rows.low[row_of, coord_of],
                                rows.high[row_of, coord_of]])
        _, first = np.unique(keys, axis=0, return_index=True)
        aux = terms[row_of[first], coord_of[first]]
    else:
        aux = terms[moving]
    x = np.concatenate([weights.ravel(), biases, aux])
    assert len(aux) == n_aux
    return bool((matrix @ x <= upper + 1e-9).all())


def test_shared_auxiliaries_accept_exactly_the_last_layers_the_rows_accept():
    rows, layout = _pinned_polyhedron()
    matrix, upper, n_aux = shared_linear_system(rows)
    full_matrix, full_upper, full_aux = rows.linear_system()
    assert n_aux < full_aux / 5  # the points share every moving coordinate's term
    rng = np.random.default_rng(1)
    inside = []
    for _ in range(200):
        weights = rng.normal(0, 0.5, (1, layout.n_latent))
        biases = rng.normal(0.5, 1.0, 1)
        holds = bool((rows.slack(weights, biases) >= -1e-9).all())
        assert _tight_auxiliaries_feasible(matrix, upper, n_aux, rows, weights, biases, True) == holds
        assert _tight_auxiliaries_feasible(full_matrix, full_upper, full_aux, rows, weights, biases, False) == holds
        inside.append(holds)
    assert any(inside) and not all(inside)


def test_the_projection_with_shared_auxiliaries_is_the_projection_onto_the_rows(monkeypatch):
    _, spec, layout, low, high = _problem(SCREENING, "r", n_hidden=6)
    duals = pinned_rows(spec.asserts, layout, _screening_points(spec, layout, low, high, 30), LatentBoxes((low, high)))
    rng = np.random.default_rng(2)
    target = (rng.normal(0, 0.5, (1, layout.n_latent)), np.array([-1.0]))
    monkeypatch.setattr(WorstCaseRows, "linear_system", lambda self: pytest.fail("one auxiliary per row and term"))
    weights, biases = project_l2(duals, layout, target, LatentBoxes((low, high)), 1e-4)
    monkeypatch.undo()
    rows = polyhedron_from_duals(duals, 1, layout.n_latent, LatentBoxes((low, high)), None, 1e-4)
    assert (rows.slack(weights, biases) >= -1e-7).all()
    assert not (rows.slack(*target) >= 0).all()  # the target is outside: the projection had to move it
    # the same point as the program with one auxiliary per row and term
    monkeypatch.setattr(point_projection, "shared_linear_system", lambda r: r.linear_system())
    full_weights, full_biases = project_l2(duals, layout, target, LatentBoxes((low, high)), 1e-4)
    assert np.allclose(weights, full_weights, atol=1e-5) and np.allclose(biases, full_biases, atol=1e-5)


def test_a_pinned_dual_is_what_the_remembered_rows_hold():
    data, spec, layout, low, high = _problem(SCREENING, "r")
    a = spec.asserts[0]
    points = _screening_points(spec, layout, low, high, 20)
    duals = pinned_rows(spec.asserts, layout, points, LatentBoxes((low, high)))
    expected = []
    for _, latent, _ in points:
        inputs = point_projection.point_inputs(a, layout, latent, low, high)
        dual = pinned_dual(a, layout, inputs)
        if dual is not None:
            expected.append(dual.premise.bounds)
    assert [d.premise.bounds for d in duals] == expected


def test_pinned_rows_put_over_a_box_from_kept_arrays_are_the_polyhedron_of_the_duals():
    _, spec, layout, low, high = _problem(SCREENING, "r", n_hidden=6)
    points = _screening_points(spec, layout, low, high, 30)
    rng = np.random.default_rng(4)
    for _ in range(3):  # the hidden box moves every step; the kept arrays must follow it
        step_low = low - np.r_[rng.random(6), 0.0, 0.0]
        boxes = LatentBoxes((step_low, high))
        duals = pinned_rows(spec.asserts, layout, points, boxes)
        expected = polyhedron_from_duals(duals, 1, layout.n_latent, boxes, None, 1e-3)
        got = point_projection.pinned_polyhedron(spec.asserts, layout, points, boxes, 1e-3)
        for name in ("out", "lat", "low", "high", "bound"):
            assert np.array_equal(getattr(got, name), getattr(expected, name)), name
    assert expected.n_rows > 5
