"""The projection LP built in whole arrays and solved by HiGHS through highspy: the same LP the row-by-row
builder made, the optimum scipy's linprog finds, and the path ``project_last_layer`` takes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from deepsade.encoding import projection
from deepsade.encoding.dual import dual_satisfied, to_dual
from deepsade.encoding.layout import LatentLayout
from deepsade.spec import parse_spec_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_projection import legacy_lp  # noqa: E402

DECLS = "(declare-const x1 Real)(declare-const x2 Real)(declare-const y1 Real)(declare-const y2 Real)"
RULES = [
    "(assert (<= (+ y1 y2) x1))(assert (>= y2 (* 0.5 y1)))",
    "(assert (=> (and (< x1 0.5) (>= x2 0.2)) (and (<= y1 0.3) (>= y2 (- x1)))))(assert (>= (- y1 y2) -2))",
    "(assert (<= y1 (* 0.05 x1)))(assert (>= y2 0))(assert (<= (+ y1 (* 3 y2)) 4))",
    "(assert (= (+ y1 y2) x2))",  # an equality: two rows without margin
]


def _lps(encoding, rule: str, count: int, seed: int):
    """Random projection LPs of one rule: boxes with some fixed coordinates (low == high, as a dead ReLU or a
    premise pinning an input gives), random targets; yields (restricted, n_out, n_lat, target, margin)."""
    spec = parse_spec_text(DECLS + rule, encoding)
    layout = LatentLayout(5, tuple(spec.mapped_features), 2)
    duals = [to_dual(a, layout) for a in spec.asserts]
    rng = np.random.default_rng(seed)
    for _ in range(count):
        low = np.concatenate([np.zeros(5), rng.uniform(-1, 0, len(layout.mapped))])
        high = np.concatenate([rng.uniform(0.5, 3, 5), rng.uniform(0.2, 1, len(layout.mapped))])
        pinned = rng.random(layout.n_latent) < 0.25
        high[pinned] = low[pinned]
        restricted = [(d, projection._restrict(d, low, high)) for d in duals]
        target = rng.normal(size=2 * layout.n_latent + 2)
        yield restricted, 2, layout.n_latent, target, 1e-3


@pytest.mark.parametrize("rule", RULES)
def test_array_builder_gives_the_row_by_row_lp(encoding, rule):
    for restricted, n_out, n_lat, target, margin in _lps(encoding, rule, 6, len(rule)):
        lp = projection.projection_lp(restricted, n_out, n_lat, target, margin)
        cost, matrix, upper, bounds = legacy_lp(restricted, n_out, n_lat, target, margin)
        legacy = matrix.tocsc()
        assert lp.matrix().shape == legacy.shape
        assert np.array_equal(lp.start, legacy.indptr) and np.array_equal(lp.index, legacy.indices)
        assert np.array_equal(lp.value, legacy.data)
        assert np.array_equal(lp.row_upper, upper) and np.array_equal(lp.cost, cost)
        assert np.array_equal(lp.col_lower, bounds[:, 0]) and np.array_equal(lp.col_upper, bounds[:, 1])


@pytest.mark.parametrize("rule", RULES)
def test_highspy_finds_scipys_optimum(encoding, rule):
    solved = 0
    for restricted, n_out, n_lat, target, margin in _lps(encoding, rule, 8, 3 + len(rule)):
        lp = projection.projection_lp(restricted, n_out, n_lat, target, margin)
        reference = linprog(lp.cost, A_ub=lp.matrix(), b_ub=lp.row_upper, bounds=np.c_[lp.col_lower, lp.col_upper],
                            method="highs")
        x = projection.solve_lp(lp)
        assert (x is None) == (reference.status != 0)
        if x is None:
            continue
        assert lp.feasible(x, 1e-7)
        assert lp.cost @ x == pytest.approx(reference.fun, rel=1e-9, abs=1e-9)
        solved += reference.fun > 1e-9  # the target was outside: the projection had work to do
    assert solved


def test_infeasible_lp_gives_none(encoding):
    """Two rows on one output that no weights meet together (y1 <= 0 and y1 >= 1): no projection."""
    restricted, n_out, n_lat, target, margin = next(_lps(encoding, "(assert (<= y1 -1))(assert (>= y1 1))", 1, 0))
    lp = projection.projection_lp(restricted, n_out, n_lat, target, margin)
    assert projection.solve_lp(lp) is None
    assert linprog(lp.cost, A_ub=lp.matrix(), b_ub=lp.row_upper, bounds=np.c_[lp.col_lower, lp.col_upper],
                   method="highs").status == 2


def test_projection_goes_through_highspy_and_is_feasible(encoding, monkeypatch):
    """``project_last_layer`` solves its LP with ``solve_lp`` (not scipy's wrapper), and its answer satisfies
    the rule over the box."""
    calls = []
    solve = projection.solve_lp

    def counted(lp):
        calls.append(lp.n_rows)
        return solve(lp)

    monkeypatch.setattr(projection, "solve_lp", counted)
    monkeypatch.setattr("scipy.optimize.linprog", None)  # any use of scipy's wrapper would fail
    spec = parse_spec_text(DECLS + RULES[0], encoding)
    layout = LatentLayout(4, tuple(spec.mapped_features), 2)
    duals = [to_dual(a, layout) for a in spec.asserts]
    rng = np.random.default_rng(5)
    low, high = np.zeros(layout.n_latent), np.concatenate([rng.uniform(0.5, 3, 4), np.ones(len(layout.mapped))])
    for _ in range(5):
        w, b = projection.project_last_layer(duals, layout, rng.normal(size=(2, layout.n_latent)), rng.normal(size=2),
                                             low, high, 1e-3)
        assert all(dual_satisfied(d, w[None], b[None], low, high, 0.5e-3)[0] for d in duals)
    assert len(calls) == 5


def test_reused_instance_answers_as_a_fresh_one(encoding):
    """The one HiGHS instance kept per thread carries nothing from one LP to the next."""
    lps = [projection.projection_lp(*args) for rule in RULES for args in _lps(encoding, rule, 3, 11)]
    reused = [projection.solve_lp(lp) for lp in lps]
    for lp, answer in zip(lps, reused):
        projection._solvers.highs = None
        fresh = projection.solve_lp(lp)
        assert (answer is None and fresh is None) or np.array_equal(answer, fresh)


def test_feasibility_tolerance_rejects_off_row_answers(encoding):
    restricted, n_out, n_lat, target, margin = next(_lps(encoding, RULES[0], 1, 2))
    lp = projection.projection_lp(restricted, n_out, n_lat, target, margin)
    x = projection.solve_lp(lp)
    assert lp.feasible(x, 1e-7)
    off = x.copy()
    off[:n_out * n_lat + n_out] += 1.0  # theta moved, u not: the |theta - target| rows break
    assert not lp.feasible(off, 1e-3)
