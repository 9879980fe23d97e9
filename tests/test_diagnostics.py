"""Diagnostics after training: the width ratio of the latent box and which assert binds."""

import numpy as np
import pandas as pd
import torch

from deepsade.diagnostics import diagnose
from deepsade.ingest import prepare
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text

RULES = "(declare-const x1 Real)(declare-const y Real)(assert (<= y 5.0))(assert (=> (> x1 8.0) (>= y 1.0)))"


def _setup():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.uniform(0, 10, 200), "x2": rng.uniform(0, 10, 200)})
    frame["y"] = 0.3 * frame["x1"]
    data = prepare(frame, ["y"], task="regression")
    spec = parse_spec_text(RULES, data.encoding)
    torch.manual_seed(0)
    model = SkipMLP(2, [8, 6], 1, spec.mapped_features)
    return data, spec, model


def test_a_binding_assert_and_one_with_room_are_told_apart():
    data, spec, model = _setup()
    low, high = data.domain.scaled(data.encoding)
    with torch.no_grad():
        model.last.weight.zero_()  # a constant output ...
    offset, scale = data.encoding.output_affine()[0]
    scaled_bound = float((5 - offset) / scale)
    with torch.no_grad():
        model.last.bias.fill_(scaled_bound - 1e-5)  # ... just under y <= 5: the first assert binds
    report = diagnose(model, spec, data.inputs, low, high, margin=1e-4)
    first, second = report.asserts
    assert first.binds and 0 < first.slack < 1e-3
    assert second.slack is not None and not second.binds
    assert any("assert 1 binds" in line for line in report.lines())


def test_width_ratio_compares_the_domain_box_with_the_data():
    data, spec, model = _setup()
    low, high = data.domain.scaled(data.encoding)
    report = diagnose(model, spec, data.inputs, low, high, margin=1e-4)
    assert report.median_width_ratio is not None and report.median_width_ratio >= 1.0 - 1e-9
    # rows covering only a corner of the domain make the same box look wider against them
    corner = data.inputs[(data.inputs < 0.3).all(axis=1)]
    narrow = diagnose(model, spec, corner, low, high, margin=1e-4)
    assert narrow.median_width_ratio > report.median_width_ratio
