"""The LP projection returns weights that the exact closed-form check accepts, and leaves feasible ones alone."""

from __future__ import annotations

import numpy as np
import pytest

from deepsade.encoding.dual import dual_satisfied, to_dual
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.projection import project_last_layer, projectable
from deepsade.spec import parse_spec_text

DECLS = "(declare-const x1 Real)(declare-const x2 Real)(declare-const y1 Real)(declare-const y2 Real)"
RULES = [
    "(assert (<= (+ y1 y2) x1))",
    "(assert (=> (and (< x1 0.5) (>= x2 0.2)) (and (<= y1 0.3) (>= y2 (- x1)))))",
    "(assert (<= y1 (* 0.05 x1)))(assert (>= y2 0))",
]


@pytest.mark.parametrize("rule", RULES)
def test_projection_is_feasible_and_idempotent(encoding, rule):
    spec = parse_spec_text(DECLS + rule, encoding)
    layout = LatentLayout(4, tuple(spec.mapped_features), 2)
    duals = [to_dual(a, layout) for a in spec.asserts]
    assert projectable(duals, len(spec.asserts))
    rng = np.random.default_rng(len(rule))
    low = np.zeros(layout.n_latent)
    high = np.concatenate([rng.uniform(0.5, 3, 4), np.ones(len(layout.mapped))])
    margin = 1e-3
    infeasible_seen = 0
    for _ in range(10):
        target_w, target_b = rng.normal(size=(2, layout.n_latent)), rng.normal(size=2)
        was_ok = all(dual_satisfied(d, target_w[None], target_b[None], low, high, margin)[0] for d in duals)
        infeasible_seen += not was_ok
        found = project_last_layer(duals, layout, target_w, target_b, low, high, margin)
        assert found is not None
        w, b = found
        # the LP solves with `margin`; the exact check the trainer applies uses a smaller one
        assert all(dual_satisfied(d, w[None], b[None], low, high, 0.5 * margin)[0] for d in duals)
        again = project_last_layer(duals, layout, w, b, low, high, 0.5 * margin)
        assert np.allclose(again[0], w, atol=1e-7) and np.allclose(again[1], b, atol=1e-7)
    assert infeasible_seen  # the projection had work to do


def test_not_projectable_outside_the_dual_fragment(encoding):
    spec = parse_spec_text(DECLS + "(assert (or (> y1 x1) (< y2 0)))", encoding)
    layout = LatentLayout(3, tuple(spec.mapped_features), 2)
    assert not projectable([d for d in (to_dual(a, layout) for a in spec.asserts) if d], len(spec.asserts))


def test_one_row_closed_form_matches_the_lp(encoding):
    """One row goes through the greedy closed form; the same row twice forces the LP: same L1 distance."""
    spec = parse_spec_text(DECLS + "(assert (=> (< x2 0.5) (<= (+ y1 (* 2 y2)) x1)))", encoding)
    layout = LatentLayout(4, tuple(spec.mapped_features), 2)
    dual = to_dual(spec.asserts[0], layout)
    rng = np.random.default_rng(7)
    low = np.zeros(layout.n_latent)
    compared = 0
    for _ in range(15):
        high = np.concatenate([rng.uniform(0.5, 3, 4), np.ones(len(layout.mapped))])
        target_w, target_b = rng.normal(size=(2, layout.n_latent)), rng.normal(size=2)
        greedy = project_last_layer([dual], layout, target_w, target_b, low, high, 1e-3)
        lp = project_last_layer([dual, dual], layout, target_w, target_b, low, high, 1e-3)
        assert (greedy is None) == (lp is None)
        if greedy is None:
            continue
        assert dual_satisfied(dual, greedy[0][None], greedy[1][None], low, high, 0.5e-3)[0]
        distance = lambda w, b, tw=target_w, tb=target_b: np.abs(w - tw).sum() + np.abs(b - tb).sum()  # noqa: E731
        assert distance(*greedy) == pytest.approx(distance(*lp), rel=1e-6, abs=1e-9)
        compared += distance(*lp) > 0
    assert compared
