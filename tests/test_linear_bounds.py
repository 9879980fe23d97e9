"""Per-unit linear bounds (``deepsade.linear_bounds``): sound on samples, tighter than the box, LP = closed form."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import linprog

from deepsade.bounds import exact_latent_box, latent_box
from deepsade.encoding.dual import to_dual
from deepsade.encoding.layout import LatentLayout
from deepsade.ingest import prepare
from deepsade.last_layer_solve import solve_last_layer
from deepsade.linear_bound_rows import LinearBoundRows, exact_check, rows_from_duals
from deepsade.linear_bounds import exact_linear_bounds, linear_bounds
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text


def _network(seed: int, n_inputs: int = 4, hidden=(12, 8, 6), n_out: int = 2, mapped=(0, 2)) -> SkipMLP:
    torch.manual_seed(seed)
    model = SkipMLP(n_inputs, hidden, n_out, list(mapped))
    with torch.no_grad():
        for layer in model.hidden:
            layer.bias.uniform_(-0.5, 0.5)
    return model


def _hidden_exact_forward(model: SkipMLP, x: np.ndarray) -> np.ndarray:
    """The last hidden layer in float64 on the float32 weights (far more precise than the bounds' padding)."""
    a = x
    for layer in model.hidden:
        a = np.maximum(a @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy(), 0.0)
    return a


def _box(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1.0, 0.5, n)
    return low, low + rng.uniform(0.2, 1.5, n)


@pytest.mark.parametrize("seed", range(4))
def test_float_and_exact_bounds_contain_every_sample(seed):
    model = _network(seed)
    low, high = _box(seed, 4)
    x = np.random.default_rng(seed).uniform(low, high, (100_000, 4))
    x = np.vstack([x, low, high])
    h = _hidden_exact_forward(model, x)
    float_bounds = linear_bounds(model, low, high)
    exact = exact_linear_bounds(model, [Fraction(v) for v in low], [Fraction(v) for v in high])
    for bounds, tol in ((float_bounds, 1e-12), (exact, 1e-9)):  # tol: the float64 evaluation of the test
        lower = x @ bounds.lower_coef.astype(np.float64).T + bounds.lower_const.astype(np.float64)
        upper = x @ bounds.upper_coef.astype(np.float64).T + bounds.upper_const.astype(np.float64)
        assert (lower <= h + tol).all() and (upper >= h - tol).all()
        assert (bounds.box_low.astype(np.float64) <= h.min(axis=0) + tol).all()
        assert (bounds.box_high.astype(np.float64) >= h.max(axis=0) - tol).all()
    # the exact upper linear bound stays close to the float one (same relaxation, different rounding)
    assert np.allclose(exact.upper_coef.astype(np.float64), float_bounds.upper_coef, atol=1e-6)


def test_linear_bounds_are_tighter_than_the_interval_box():
    model = _network(0, hidden=(30, 20, 10))
    low, high = np.zeros(4), np.ones(4)
    box_low, box_high = latent_box(model, low, high)
    bounds = linear_bounds(model, low, high)
    _, concrete_high = bounds.concretised()
    assert (concrete_high <= box_high[:10] + 1e-9).all()
    assert concrete_high.sum() < 0.9 * box_high[:10].sum()  # strictly tighter on a deep random network


def _rows(model: SkipMLP, low: np.ndarray, high: np.ndarray, seed: int) -> LinearBoundRows:
    """Random conclusion rows over the whole box, their skip coefficients on the mapped inputs."""
    rng = np.random.default_rng(seed)
    n_rows, n_latent = 3, model.n_latent
    unit = linear_bounds(model, low, high)
    lat = np.zeros((n_rows, n_latent))
    lat[:, model.hidden_sizes[-1]:] = rng.normal(size=(n_rows, len(model.mapped_features)))
    return LinearBoundRows(rng.normal(size=(n_rows, model.n_outputs)), lat, np.zeros(n_rows),
                           np.tile(low, (n_rows, 1)), np.tile(high, (n_rows, 1)), (unit,) * n_rows,
                           model.mapped_features.numpy(), np.zeros(n_rows, bool))


def test_row_worst_case_is_sound_and_usually_tighter_than_the_box():
    tighter = total = 0
    for seed in range(12):
        model = _network(seed)
        low, high = _box(seed, 4)
        rows = _rows(model, low, high, seed)
        rng = np.random.default_rng(100 + seed)
        weights, biases = rng.normal(size=(2, model.n_latent)), rng.normal(size=2)
        x = np.vstack([rng.uniform(low, high, (100_000, 4)), low, high])
        z = np.hstack([_hidden_exact_forward(model, x), x[:, model.mapped_features.numpy()]])
        sampled = ((z @ weights.T + biases) @ rows.out.T + z @ rows.lat.T).max(axis=0)
        upper_share, lower_share, best = rows.best_split(weights, biases)
        box = rows.box_worst_case(weights, biases)
        assert (best >= sampled - 1e-9).all()
        assert (best <= box + 1e-9).all()
        tighter += int((best < box - 1e-6).sum())
        total += rows.n_rows
        # the float box bound is the trainer's latent-box bound (same interval box, same skip coordinates)
        box_low, box_high = latent_box(model, low, high)
        a = rows.out @ weights + rows.lat
        box_ibp = np.maximum(a * box_low, a * box_high).sum(axis=1) + rows.out @ biases
        assert (box <= box_ibp + 1e-9).all()
    assert tighter >= total // 2, f"tighter on {tighter} of {total} rows"


def test_exact_worst_case_bounds_the_float_one_and_the_samples():
    frame_text = "(declare-const x1 Real)(declare-const x3 Real)(declare-const y1 Real)(declare-const y2 Real)" \
                 "(assert (<= (+ y1 y2) (+ x1 3)))(assert (=> (>= x3 0.5) (>= y1 -2)))"
    frame = pd.DataFrame(np.random.default_rng(0).random((50, 6)), columns=["x1", "x2", "x3", "x4", "y1", "y2"])
    data = prepare(frame, ["y1", "y2"], task="regression")
    spec = parse_spec_text(frame_text, data.encoding)
    torch.manual_seed(3)
    model = SkipMLP(4, (12, 8, 6), 2, spec.mapped_features)
    layout = LatentLayout(6, tuple(spec.mapped_features), 2)
    duals = [to_dual(a, layout) for a in spec.asserts]
    lo_exact, hi_exact = data.domain.scaled_exact(data.encoding)
    rows = rows_from_duals(model, duals, lo_exact, hi_exact, 0.0)
    weights = model.last.weight.detach().double().numpy()
    biases = model.last.bias.detach().double().numpy()
    shares = rows.best_split(weights, biases)
    results = exact_check(model, duals, lo_exact, hi_exact, 0.0, shares[:2])
    float_worst = shares[2] - rows.bound  # const included
    for result, worst in zip(results, float_worst):
        assert abs(float(result.worst) - worst) < 1e-5
        assert result.worst <= result.box_worst
    # the box part agrees with the certificate's exact latent box on the rows without a premise
    ex_low, ex_high = exact_latent_box(model, lo_exact, hi_exact)
    row = duals[0].rows[0]
    a = [sum(row.out[k] * Fraction(float(weights[k, l])) for k in range(2)) + row.lat.get(l, 0) for l in range(8)]
    box_worst = sum(max(v * lo, v * hi) for v, lo, hi in zip(a, ex_low, ex_high)) + row.const + sum(
        row.out[k] * Fraction(float(biases[k])) for k in range(2))
    assert results[0].box_worst <= box_worst


def test_lp_rows_agree_with_the_closed_form():
    for seed in range(4):
        model = _network(seed)
        low, high = _box(seed, 4)
        rows = _rows(model, low, high, seed)
        rng = np.random.default_rng(seed)
        weights, biases = rng.normal(size=(2, model.n_latent)), rng.normal(size=2)
        _, _, best = rows.best_split(weights, biases)
        matrix, upper, n_aux = rows.linear_system()
        h, n_in = rows.n_hidden, rows.n_inputs
        per_block = 4 * h + 2 * n_in + 1
        finals = np.arange(rows.n_rows) * per_block + per_block - 1
        others = np.setdiff1d(np.arange(matrix.shape[0]), finals)
        theta = np.concatenate([weights.ravel(), biases])
        fixed = [(v, v) for v in theta] + [(None, None)] * n_aux
        dense = matrix.toarray()
        # the warm start from the closed form is inside the system with bound = the closed form
        x0 = np.concatenate([theta, rows.auxiliaries_at(weights, biases)])
        tight = LinearBoundRows(rows.out, rows.lat, best + 1e-7, rows.region_low, rows.region_high, rows.units,
                                rows.mapped, rows.strict)
        t_matrix, t_upper, _ = tight.linear_system()
        assert (t_matrix @ x0 <= t_upper + 1e-6).all()
        for r, final in enumerate(finals):
            res = linprog(dense[final], A_ub=dense[others], b_ub=upper[others], bounds=fixed, method="highs")
            assert res.status == 0
            lp_worst = res.fun - (upper[final] - rows.bound[r])
            assert lp_worst == pytest.approx(best[r], abs=1e-6)


def test_refit_over_the_linear_polyhedron_passes_the_exact_check():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.random((300, 3)), columns=["x1", "x2", "x3"])
    frame["y"] = 40 * frame["x1"] * frame["x2"] + 3 * frame["x3"]
    data = prepare(frame, ["y"], task="regression")
    spec = parse_spec_text("(declare-const y Real)(assert (and (>= y 0) (<= y 30)))", data.encoding)
    torch.manual_seed(0)
    model = SkipMLP(3, (16, 8), 1, spec.mapped_features)
    layout = LatentLayout(8, tuple(spec.mapped_features), 1)
    duals = [to_dual(a, layout) for a in spec.asserts]
    lo_exact, hi_exact = data.domain.scaled_exact(data.encoding)
    rows = rows_from_duals(model, duals, lo_exact, hi_exact, 2e-4)
    with torch.no_grad():
        latent = model.latent(torch.as_tensor(data.inputs, dtype=torch.float32)).double().numpy()
    fit = solve_last_layer(latent, np.asarray(data.targets, dtype=np.float64), "regression", rows)
    assert fit is not None
    with torch.no_grad():
        model.last.weight.copy_(torch.as_tensor(fit.weights, dtype=torch.float32))
        model.last.bias.copy_(torch.as_tensor(fit.biases, dtype=torch.float32))
    shares = rows.best_split(fit.weights, fit.biases)
    results = exact_check(model, duals, lo_exact, hi_exact, 1e-4, shares[:2])
    assert all(r.holds for r in results)
    # a last layer pushed outside: the exact check must say no
    with torch.no_grad():
        model.last.bias.add_(1e3)
    assert not all(r.holds for r in exact_check(model, duals, lo_exact, hi_exact, 1e-4, shares[:2]))
