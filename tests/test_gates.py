"""Premise regions and gates: the gate is exactly 1 on the premise region, 0 outside the band, frozen in
training, and the widened network computes what the original did until its last layer moves."""

from fractions import Fraction as F

import numpy as np
import torch

from deepsade.bounds import exact_latent_box, latent_box
from deepsade.gates import Gate, GateSide, freeze_gate_units, plan_gates, with_gates
from deepsade.ingest import fit_encoding
from deepsade.network import SkipMLP
from deepsade.regions import input_regions
from deepsade.spec import parse_spec_text


def _gated():
    torch.manual_seed(0)
    model = SkipMLP(3, [8, 6, 4], 2, [0])
    gate = Gate((GateSide(0, F(7, 10), True, F(1, 20)), GateSide(1, F(3, 10), False, F(1, 20))), (0,))
    wide, layout = with_gates(model, [gate])
    return model, wide, layout


def test_widened_network_computes_the_same_outputs():
    model, wide, layout = _gated()
    x = torch.rand(500, 3)
    assert layout.hidden_sizes == [10, 7, 5]
    assert torch.allclose(model(x), wide(x), atol=1e-6)


def test_gate_is_one_on_the_region_and_zero_outside_the_band():
    _, wide, layout = _gated()
    x = torch.rand(5000, 3)
    gate = wide.latent(x)[:, layout.gate_coordinate(0)]
    inside = (x[:, 0] >= 0.7) & (x[:, 1] <= 0.3)
    far = (x[:, 0] <= 0.65) | (x[:, 1] >= 0.35)
    assert inside.any() and far.any()
    assert torch.all(gate[inside] == 1.0)
    assert torch.all(gate[far] == 0.0)
    # interval bounds over the region pin the gate to 1: the certificate can rely on it there
    low, high = exact_latent_box(wide, [F(7, 10), F(0), F(0)], [F(1), F(3, 10), F(1)])
    assert low[layout.gate_coordinate(0)] == 1 and high[layout.gate_coordinate(0)] == 1
    flow, fhigh = latent_box(wide, np.array([0.7, 0, 0]), np.array([1, 0.3, 1.0]))
    assert abs(flow[layout.gate_coordinate(0)] - 1) < 1e-6


def test_gate_units_stay_fixed_under_sgd():
    _, wide, layout = _gated()
    freeze_gate_units(wide, layout)
    x = torch.rand(200, 3)
    before = wide.latent(x)[:, layout.gate_coordinate(0)].detach().clone()
    optimizer = torch.optim.SGD(wide.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        (wide(x) ** 2).sum().backward()
        optimizer.step()
    after = wide.latent(x)[:, layout.gate_coordinate(0)]
    assert torch.equal(before, after)
    assert not torch.equal(wide.hidden[0].weight[:8], _gated()[1].hidden[0].weight[:8])  # the free part moved


def test_regions_from_premises():
    import pandas as pd

    frame = pd.DataFrame({"a": [0.0, 10.0], "b": [0.0, 1.0], "y": [0.0, 1.0]})
    encoding = fit_encoding(frame, ["y"])
    spec = parse_spec_text(
        "(declare-const a Real)(declare-const b Real)(declare-const y Real)"
        "(assert (=> (and (> a 8.0) (= b 1.0)) (> y 0.5)))"
        "(assert (=> (> (+ a b) 3.0) (< y 2.0)))"
        "(assert (< y 5.0))", encoding)
    low, high = [F(0), F(0)], [F(1), F(1)]
    regions = input_regions(spec, low, high)
    first = regions[0]
    assert first.narrowed == (0, 1)
    assert first.low == (F(4, 5), F(1)) and first.high == (F(1), F(1))
    assert not regions[1].restricts and not regions[2].restricts  # a coupled premise, and none
    gates = plan_gates(regions.values(), low, high)
    assert len(gates) == 1 and gates[0].asserts == (0,)
