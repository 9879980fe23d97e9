"""Bound-aware hidden layers: the torch box is the IBP box, the penalties reach the hidden layers and
descending them shrinks the box."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepsade.bound_aware import (
    RelativeWeight,
    RuleRows,
    box_width,
    desired_last_layer,
    hidden_gradient_norm,
    interval_latent_box,
    latent_summary,
    output_spread,
    penalty_value,
    rule_excess,
    width_to_data_ratio,
)
from deepsade.bounds import latent_box
from deepsade.last_layer_polyhedron import WorstCaseRows
from deepsade.network import SkipMLP


def _network(seed: int, n_inputs: int = 4, hidden=(8, 6), n_out: int = 2, mapped=(1, 3)) -> SkipMLP:
    torch.manual_seed(seed)
    model = SkipMLP(n_inputs, hidden, n_out, mapped)
    with torch.no_grad():
        for layer in model.hidden:
            layer.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("seed", range(5))
def test_torch_box_equals_numpy_box_and_contains_samples(seed):
    model = _network(seed)
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-1, 0, 4)
    upper = lower + rng.uniform(0.1, 2, 4)
    low, high = (t.detach().numpy() for t in interval_latent_box(model, lower, upper))
    ref_low, ref_high = latent_box(model, lower, upper)
    # the numpy box is padded outwards by about 1e-9 relative: equal up to that padding, and never inside
    assert np.allclose(low, ref_low, rtol=1e-7, atol=1e-9) and np.allclose(high, ref_high, rtol=1e-7, atol=1e-9)
    assert (ref_low <= low + 1e-15).all() and (ref_high >= high - 1e-15).all()
    points = rng.uniform(lower, upper, (2000, 4)).astype(np.float32)
    with torch.no_grad():
        latent = model.latent(torch.as_tensor(points)).double().numpy()
    assert (latent >= low - 1e-6).all() and (latent <= high + 1e-6).all()


def _range_rules() -> RuleRows:
    """y in [0.2, 1.5] everywhere, and a >= 0.8 -> y >= 0.9, over latent [h (6); a]."""
    inf = np.inf
    n_latent = 7
    premise_low = np.full(n_latent, -inf)
    premise_low[-1] = 0.8
    rows = WorstCaseRows(out=np.array([[1.0], [-1.0], [-1.0]]), lat=np.zeros((3, n_latent)),
                         low=np.vstack([np.full(n_latent, -inf), np.full(n_latent, -inf), premise_low]),
                         high=np.full((3, n_latent), inf), bound=np.array([1.5, -0.2, -0.9]))
    return RuleRows((rows,))


@pytest.mark.parametrize("kind", ["width", "spread", "rule"])
def test_penalty_reaches_hidden_layers_and_descent_shrinks_the_box(kind):
    torch.manual_seed(1)
    model = SkipMLP(3, (10, 6), 1, [0])
    lower, upper = np.zeros(3), np.ones(3)
    n_hidden = 6
    rules = _range_rules()
    weights = np.full((1, model.n_latent), 0.5)
    desired = (np.full((1, model.n_latent), 2.0), np.array([0.1]))

    def value() -> torch.Tensor:
        low, high = interval_latent_box(model, lower, upper)
        return penalty_value(kind, low, high, n_hidden, weights=weights, rules=rules, desired=desired)

    start = value()
    assert float(start.detach()) > 0
    assert hidden_gradient_norm(model, start) > 0
    assert model.last.weight.grad is None  # the last layer is left to the solver
    width_before = float(box_width(*interval_latent_box(model, lower, upper), n_hidden))
    optimizer = torch.optim.SGD(model.hidden_parameters(), lr=0.02)
    for _ in range(10):
        optimizer.zero_grad()
        value().backward()
        optimizer.step()
    assert model.last.weight.grad is None
    assert float(value()) < float(start)
    assert float(box_width(*interval_latent_box(model, lower, upper), n_hidden)) < width_before


def test_output_spread_is_the_output_interval_width():
    model = _network(3, mapped=())
    lower, upper = np.zeros(4), np.ones(4)
    low, high = interval_latent_box(model, lower, upper)
    w = np.random.default_rng(0).normal(size=(2, model.n_latent))
    centre, radius = (high + low) / 2, (high - low) / 2
    out_width = 2 * (torch.as_tensor(np.abs(w)) @ radius)
    assert float(output_spread(low, high, w, 6)) == pytest.approx(float(out_width.sum()))
    del centre


def test_rule_excess_is_zero_exactly_when_the_layer_fits_the_box():
    # y in [0.2, 1.5] everywhere, and a >= 0.8 -> y >= 0.9; latent = [h1, h2, a]
    inf = np.inf
    rows = WorstCaseRows(out=np.array([[1.0], [-1.0], [-1.0]]), lat=np.zeros((3, 3)),
                         low=np.array([[-inf] * 3, [-inf] * 3, [-inf, -inf, 0.8]]),
                         high=np.full((3, 3), inf), bound=np.array([1.5, -0.2, -0.9]))
    rules = RuleRows((rows,))
    low = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    high = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    # y = 0.5 h1 + 0.3 + 0.6 a: range [0.3, 1.4]; with a >= 0.8, y >= 0.78 < 0.9: one row off by 0.12
    w, b = np.array([[0.5, 0.0, 0.6]]), np.array([0.3])
    excess = rule_excess(low, high, rules, w, b)
    assert float(excess) == pytest.approx(0.12, abs=1e-9)
    assert float(rule_excess(low, high, rules, w, np.array([0.42]))) == pytest.approx(0.02, abs=1e-9)
    # on this box no bias fits both (b <= 0.4 for the range, b >= 0.42 for the premise): 0.02 short either way
    assert float(rule_excess(low, high, rules, w, np.array([0.4]))) == pytest.approx(0.02, abs=1e-9)
    narrower = torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64)  # h1 at most 0.5: the upper bound has room
    assert float(rule_excess(low, narrower, rules, w, np.array([0.42]))) == pytest.approx(0.0, abs=1e-12)
    # a premise outside the box never applies
    assert float(rule_excess(low, torch.tensor([1.0, 1.0, 0.7], dtype=torch.float64), rules, w, b)) == 0.0


def test_desired_last_layer_fits_linear_targets():
    rng = np.random.default_rng(0)
    latent = rng.random((200, 3))
    targets = latent @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    w, b = desired_last_layer(latent, targets, "regression", l2=0.0)
    assert np.allclose(w, [[1.0, -2.0, 0.5]], atol=1e-8) and np.allclose(b, [0.3], atol=1e-8)
    labels = (latent[:, 0] > 0.5).astype(float)
    w, b = desired_last_layer(latent, labels, "binary")
    assert (((latent @ w.T + b).ravel() > 0) == (labels > 0)).mean() > 0.95


def test_relative_weight_starts_at_weight_times_data_loss():
    scale = RelativeWeight(0.5)
    first = scale(torch.tensor(40.0), 2.0)
    assert float(first) == pytest.approx(1.0)
    assert float(scale(torch.tensor(20.0), 2.0)) == pytest.approx(0.5)  # linear in the penalty afterwards


def test_latent_summary_reports_box_against_data():
    model = _network(0)
    lower, upper = np.zeros(4), np.ones(4)
    inputs = np.random.default_rng(0).random((50, 4))
    summary = latent_summary(model, lower, upper, inputs)
    assert summary["width_ratio"] >= 1.0 - 1e-9  # the box contains the data's latents
    assert summary["box_upper_mean"] >= summary["data_max_mean"] - 1e-6


def test_ratio_penalty_ignores_scale_and_descent_tightens_box_against_data():
    torch.manual_seed(2)
    model = SkipMLP(3, (10, 6), 1, [0])
    lower, upper = np.zeros(3), np.ones(3)
    rows = torch.as_tensor(np.random.default_rng(0).random((64, 3)), dtype=torch.float32)

    def ratio(floor: float = 1e-2) -> torch.Tensor:
        low, high = interval_latent_box(model, lower, upper)
        return width_to_data_ratio(low, high, model.latent(rows), 6, floor=floor)

    before = float(ratio(0.0).detach())
    with torch.no_grad():  # scaling the last hidden layer scales box and data alike: the ratio stays
        model.hidden[-1].weight.mul_(3.0)
        model.hidden[-1].bias.mul_(3.0)
    assert float(ratio(0.0).detach()) == pytest.approx(before, rel=1e-5)
    start = float(ratio().detach())
    optimizer = torch.optim.SGD(model.hidden_parameters(), lr=0.05)
    for _ in range(30):
        optimizer.zero_grad()
        ratio().backward()
        optimizer.step()
    assert float(ratio().detach()) < start
    summary = latent_summary(model, lower, upper, rows.numpy())
    assert summary["width_ratio"] >= 1.0 - 1e-9
