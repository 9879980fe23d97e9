"""Weight averaging of the constructions (``TrainSettings.weight_average``, ``hardnet._WeightAverage``).

The constructions judge each epoch by, and keep, an exponential moving average of SGD's weights. The average
must be exactly that (checked against the closed form), must never touch the rule's fixed layer (an average of
two infinities is not a number), and must change the kept network when asked for (``--weight-average``; off by
default: mixed on the price benchmark).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.artifact import load
from deepsade.constructions import hardnet
from deepsade.estimator import DeepSaDe
from deepsade.training.settings import TrainSettings
from tests.conftest import run_cli

CREDIT_RULES = """
(declare-const score Real)
(declare-const other Real)
(declare-const approved Real)
(assert (=> (>= score 760.0) (> approved 0.0)))
(assert (=> (<= score 400.0) (< approved 0.0)))
"""


RANGE_RULES = """
(declare-const load Real)
(declare-const hour Real)
(declare-const power Real)
(assert (and (>= power 0.0) (<= power (* 0.5 load))))
"""


def _power_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    load, hour = rng.uniform(10, 100, n), rng.uniform(0, 24, n)
    power = np.clip(0.3 * load + 5 * np.sin(hour / 4) + rng.normal(0, 2, n), 0, 0.5 * load)
    return pd.DataFrame({"load": load, "hour": hour, "power": power})


CASES = {"score clamps": (CREDIT_RULES, "approved", "scoreclamp"),
         "sequential clamps": (RANGE_RULES, "power", "polytope")}


def _credit_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score, other = rng.uniform(300, 850, n), rng.uniform(0, 1, n)
    return pd.DataFrame({"score": score, "other": other,
                         "approved": ((score - 500) / 100 + other + rng.normal(0, 0.5, n) > 0.5).astype(int)})


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.free = torch.nn.Parameter(torch.zeros(3))
        self.fixed = torch.nn.Parameter(torch.tensor([float("inf"), -float("inf"), 1.0 / 3.0]), requires_grad=False)


def test_the_average_is_the_exponential_moving_average_of_the_iterates_and_leaves_fixed_parameters_alone():
    toy = _Toy()
    settings = SimpleNamespace(epochs=2, batch_size=10, weight_average=True)
    average = hardnet._WeightAverage(toy, settings, rows=25)  # 2 epochs x 3 steps: horizon max(1, 0.2 * 6) = 1.2
    weight = 1.0 / (hardnet.AVERAGE_HORIZON_SHARE * 6)
    assert average.weight == pytest.approx(weight)
    iterates = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, -1.0, 0.5]), torch.tensor([0.0, 0.0, 8.0])]
    expected = None
    for iterate in iterates:
        with torch.no_grad():
            toy.free.copy_(iterate)
        average.update()
        expected = iterate.clone() if expected is None else expected + weight * (iterate - expected)
    assert torch.allclose(average.module.free, expected, atol=1e-6)
    assert torch.equal(average.module.fixed, toy.fixed)  # bit for bit, infinities included
    assert not torch.equal(average.module.free, toy.free)  # the average, not the last iterate


@pytest.mark.parametrize("case", list(CASES))
def test_the_kept_construction_is_the_average_and_its_rule_layer_is_the_same_bit_for_bit(tmp_path, case):
    rules, target, method = CASES[case]
    path = tmp_path / "rule.smt2"
    path.write_text(rules)
    frame = (_credit_frame if target == "approved" else _power_frame)(240, 0)
    fitted = {flag: DeepSaDe(path, [target], hidden=(8, 6), epochs=4, lr=0.1 if method == "scoreclamp" else 0.01,
                             seed=0, weight_average=flag).fit(frame) for flag in (True, False)}
    for flag, model in fitted.items():
        assert model.artifact_.method == method and model.certificate["verdict"] == "certified"
        assert model.artifact_.training["weight_average"] is flag
    averaged, last = (fitted[flag].artifact_.model for flag in (True, False))
    trainable = [name for name, p in averaged.named_parameters() if p.requires_grad]
    weights = averaged.state_dict(), last.state_dict()
    fixed = [name for name in weights[0] if name not in trainable]  # the clamps' layer
    assert trainable and fixed
    assert any(not torch.equal(weights[0][name], weights[1][name]) for name in trainable)
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in fixed)


def test_the_average_is_asked_for_and_paper_ignores_it():
    assert not TrainSettings().uses_weight_average  # mixed on the price benchmark: not the default
    assert TrainSettings(weight_average=True).uses_weight_average
    assert not TrainSettings(weight_average=True, paper=True).uses_weight_average


def test_the_command_line_switch_reaches_the_saved_model(tmp_path):
    path = tmp_path / "credit.smt2"
    path.write_text(CREDIT_RULES)
    data = tmp_path / "credit.csv"
    _credit_frame(200, 1).to_csv(data, index=False)
    result = run_cli("train", str(data), "--constraint", str(path), "--target", "approved", "--hidden", "6",
                     "--epochs", "2", "--weight-average", "--out", str(tmp_path / "m"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "m").training["weight_average"] is True
