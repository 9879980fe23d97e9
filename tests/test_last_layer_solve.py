"""The last-layer solve returns weights the exact checker accepts, and a better fit than a stalled feasible start."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from deepsade.encoding.dual import dual_satisfied, to_dual
from deepsade.encoding.dual_or import to_disjunctive_dual
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.projection import project_last_layer
from deepsade.last_layer_polyhedron import NotPolyhedral, candidate_polyhedra, polyhedron_from_duals
from deepsade.last_layer_solve import solve_best_choice, solve_last_layer
from deepsade.losses import data_loss
from deepsade.spec import parse_spec_text

DECLS = "(declare-const x1 Real)(declare-const x2 Real)(declare-const y1 Real)(declare-const y2 Real)"
RULES = [
    "(assert (<= (+ y1 y2) x1))",
    "(assert (=> (and (< x1 0.5) (>= x2 0.2)) (and (<= y1 0.3) (>= y2 (- x1)))))",
    "(assert (<= y1 (* 0.05 x1)))(assert (>= y2 0))",
]
SOLVE_MARGIN = 2e-3  # the solver's margin; the exact check below uses half of it, as the trainer does


def _instance(encoding, rule: str, seed: int, n_hidden: int = 4):
    spec = parse_spec_text(DECLS + rule, encoding)
    layout = LatentLayout(n_hidden, tuple(spec.mapped_features), 2)
    rng = np.random.default_rng(seed)
    low = np.zeros(layout.n_latent)
    high = np.concatenate([rng.uniform(0.5, 3, n_hidden), np.ones(len(layout.mapped))])
    latent = rng.random((200, layout.n_latent)) * high
    return spec, layout, low, high, latent, rng


def _exactly_satisfied(spec, layout, weights, biases, low, high, margin: float) -> bool:
    return all(find_counterexample(a, layout, weights, biases, low, high, Fraction(margin)) is None
               for a in spec.asserts)


@pytest.mark.parametrize("task", ["regression", "multilabel"])
@pytest.mark.parametrize("rule", RULES)
def test_solution_passes_the_exact_check(encoding, rule, task):
    for seed in range(3):
        spec, layout, low, high, latent, rng = _instance(encoding, rule, seed)
        duals = [to_dual(a, layout) for a in spec.asserts]
        polyhedron = polyhedron_from_duals(duals, 2, layout.n_latent, low, high, SOLVE_MARGIN)
        scores = latent @ rng.normal(size=(layout.n_latent, 2)) + rng.normal(size=2)
        targets = scores if task == "regression" else (scores > 0).astype(float)
        fit = solve_last_layer(latent, targets, task, polyhedron)
        assert fit is not None and fit.status == "solved"
        assert fit.weights.dtype == np.float64 and np.array_equal(fit.weights, fit.weights.astype(np.float32))
        assert _exactly_satisfied(spec, layout, fit.weights, fit.biases, low, high, SOLVE_MARGIN / 2)
        assert all(dual_satisfied(d, fit.weights[None], fit.biases[None], low, high, SOLVE_MARGIN / 2)[0]
                   for d in duals)
        # the reported loss is the data loss the trainer uses, on the returned float32 weights
        outputs = torch.as_tensor(latent @ fit.weights.T + fit.biases)
        assert fit.loss == pytest.approx(float(data_loss(task, outputs, torch.as_tensor(targets))), rel=1e-6)


def _stalled_binary(encoding):
    """'x1 >= 0.8 -> positive' over h in [0, 1]^2, s = x1 in [0, 1]; the labels follow a rule-abiding score.
    The start is the projection of zero weights: bias at the margin, every row predicted positive."""
    spec = parse_spec_text("(declare-const x1 Real)(declare-const y1 Real)(assert (=> (>= x1 0.8) (> y1 0)))",
                           encoding)
    layout = LatentLayout(2, tuple(spec.mapped_features), 2)
    low, high = np.zeros(layout.n_latent), np.ones(layout.n_latent)
    rng = np.random.default_rng(5)
    latent = rng.random((400, layout.n_latent))
    score = 2 * (latent[:, 0] - 0.5) + 6 * (latent[:, 2] - 0.6)  # > 0.2 wherever x1 >= 0.8: the rule holds
    targets = np.stack([score > 0, score > 0], axis=1).astype(float)
    duals = [to_dual(a, layout) for a in spec.asserts]
    start = project_last_layer(duals, layout, np.zeros((2, layout.n_latent)), np.zeros(2), low, high, SOLVE_MARGIN)
    start = tuple(np.asarray(v, dtype=np.float32).astype(np.float64) for v in start)
    return spec, layout, duals, low, high, latent, targets, start


def test_solve_beats_the_stalled_feasible_start(encoding):
    spec, layout, duals, low, high, latent, targets, start = _stalled_binary(encoding)
    assert (latent @ start[0].T + start[1] > 0)[:, 0].all()  # the degenerate start: one class everywhere
    polyhedron = polyhedron_from_duals(duals, 2, layout.n_latent, low, high, SOLVE_MARGIN)
    assert (polyhedron.slack(*start) >= 0).all()
    fit = solve_last_layer(latent, targets, "multilabel", polyhedron, start=start)
    assert fit is not None and fit.status == "solved"
    assert fit.loss < 0.5 * fit.start_loss  # returning the start would fail here
    accuracy = ((latent @ fit.weights.T + fit.biases > 0) == (targets > 0.5)).mean()
    assert accuracy > 0.95
    assert _exactly_satisfied(spec, layout, fit.weights, fit.biases, low, high, SOLVE_MARGIN / 2)


def test_start_kept_when_nothing_better_is_inside(encoding):
    spec, layout, duals, low, high, latent, targets, start = _stalled_binary(encoding)
    polyhedron = polyhedron_from_duals(duals, 2, layout.n_latent, low, high, SOLVE_MARGIN)
    best = solve_last_layer(latent, targets, "multilabel", polyhedron, start=start)
    again = solve_last_layer(latent, targets, "multilabel", polyhedron, start=(best.weights, best.biases))
    assert again is not None and again.loss <= best.loss + 1e-9


@pytest.mark.parametrize("solver", ["trust-constr", "clarabel", "scs"])
def test_solvers_agree(encoding, solver):
    pytest.importorskip("cvxpy")
    spec, layout, duals, low, high, latent, targets, start = _stalled_binary(encoding)
    polyhedron = polyhedron_from_duals(duals, 2, layout.n_latent, low, high, SOLVE_MARGIN)
    reference = solve_last_layer(latent, targets, "multilabel", polyhedron, start=start, solver="slsqp")
    other = solve_last_layer(latent, targets, "multilabel", polyhedron, start=start, solver=solver)
    assert other is not None
    assert other.loss == pytest.approx(reference.loss, rel=2e-3)


def test_disjunction_takes_the_best_alternative(encoding):
    rule = "(assert (=> (>= x1 0.5) (or (<= y1 0) (<= y2 0))))"
    spec = parse_spec_text(DECLS + rule, encoding)
    layout = LatentLayout(3, tuple(spec.mapped_features), 2)
    form = to_disjunctive_dual(spec.asserts[0], layout)
    low, high = np.zeros(layout.n_latent), np.ones(layout.n_latent)
    polyhedra = candidate_polyhedra([], [form], None, 2, layout.n_latent, low, high, SOLVE_MARGIN)
    assert len(polyhedra) == 2
    rng = np.random.default_rng(2)
    latent = rng.random((300, layout.n_latent))
    targets = np.stack([1 + latent[:, 0], -1 - latent[:, 1]], axis=1)  # y1 high, y2 low: give up y2
    fits = [solve_last_layer(latent, targets, "regression", p) for p in polyhedra]
    best = solve_best_choice(latent, targets, "regression", polyhedra)
    assert best.loss == pytest.approx(min(f.loss for f in fits))
    assert best.loss < max(f.loss for f in fits) - 0.1  # the choice matters
    assert _exactly_satisfied(spec, layout, best.weights, best.biases, low, high, SOLVE_MARGIN / 2)
    with pytest.raises(NotPolyhedral):
        candidate_polyhedra([], [form, form], None, 2, layout.n_latent, low, high, SOLVE_MARGIN, max_programs=3)


def test_coupled_premise_is_not_polyhedral(encoding):
    spec = parse_spec_text(DECLS + "(assert (=> (<= (+ x1 x2) 0.5) (<= y1 0)))", encoding)
    layout = LatentLayout(2, tuple(spec.mapped_features), 2)
    dual = to_dual(spec.asserts[0], layout)
    assert dual.premise.rows
    with pytest.raises(NotPolyhedral):
        polyhedron_from_duals([dual], 2, layout.n_latent, np.zeros(layout.n_latent), np.ones(layout.n_latent), 1e-3)


def test_multiclass_and_binary_losses_match_the_trainer(encoding):
    spec = parse_spec_text("(declare-const x1 Real)(declare-const y1 Real)(declare-const y2 Real)"
                           "(assert (=> (>= x1 0.8) (< y2 y1)))", encoding)
    layout = LatentLayout(3, tuple(spec.mapped_features), 2)
    low, high = np.zeros(layout.n_latent), np.ones(layout.n_latent)
    polyhedron = polyhedron_from_duals([to_dual(spec.asserts[0], layout)], 2, layout.n_latent, low, high, 1e-3)
    rng = np.random.default_rng(4)
    latent = rng.random((300, layout.n_latent))
    labels = (latent[:, 0] + latent[:, 3] > 1).astype(int)
    fit = solve_last_layer(latent, 1 - labels, "multiclass", polyhedron)
    outputs = torch.as_tensor(latent @ fit.weights.T + fit.biases)
    assert fit.loss == pytest.approx(float(data_loss("multiclass", outputs, torch.as_tensor(1 - labels))), rel=1e-6)
    assert _exactly_satisfied(spec, layout, fit.weights, fit.biases, low, high, 5e-4)
    assert ((outputs.numpy().argmax(axis=1)) == 1 - labels).mean() > 0.9


def test_auto_solver_switches_to_a_sparse_solver_for_large_programs():
    from deepsade.last_layer_solve import DENSE_LIMIT, choose_solver

    assert choose_solver(DENSE_LIMIT) == "slsqp"
    large = choose_solver(DENSE_LIMIT + 1)
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        assert large == "slsqp"
    else:
        assert large == "clarabel"
