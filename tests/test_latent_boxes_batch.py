"""Latent boxes of several input boxes from one read of the weights, and the trainer's per-assert boxes:
the same numbers as one ``latent_box`` call per box, recomputed after the hidden layers move."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deepsade.bounds import latent_box, latent_boxes
from deepsade.estimator import split_validation
from deepsade.ingest import prepare
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings


def test_batch_equals_one_call_per_box():
    torch.manual_seed(0)
    model = SkipMLP(4, (8, 5), 2, [0, 3])
    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(4):
        low = rng.uniform(-2, 0, 4)
        boxes.append((low, low + rng.uniform(0, 3, 4)))
    for (low, high), (batch_low, batch_high) in zip(boxes, latent_boxes(model, boxes)):
        single_low, single_high = latent_box(model, low, high)
        assert np.array_equal(batch_low, single_low) and np.array_equal(batch_high, single_high)


def test_trainer_boxes_per_region_follow_the_hidden_layers():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.uniform(0, 10, 60), "x2": rng.uniform(-5, 5, 60)})
    frame["label"] = np.where(frame["x2"] > 0, "yes", "no")
    data = prepare(frame, ["label"], positive="yes")
    rule = ("(declare-const x1 Real)(declare-const x2 Real)(declare-const label Real)"
            "(assert (=> (>= x1 8) (> label 0)))(assert (=> (<= x2 -4) (< label 0)))")
    spec = parse_spec_text(rule, data.encoding)
    settings = TrainSettings(hidden=(6, 4), epochs=1, seed=0, premise_gates=False)
    train, _ = split_validation(data, settings.val_fraction, settings.seed)
    trainer = DeepSaDeTrainer(spec, train, settings)
    for _ in range(2):
        boxes = trainer.box()
        assert np.array_equal(boxes.whole[0], latent_box(trainer.model, trainer.domain_low, trainer.domain_high)[0])
        assert set(boxes.per_assert) == {0, 1}
        for index, (low, high) in boxes.per_assert.items():
            region = trainer.regions[index]
            expected = latent_box(trainer.model, np.array([float(v) for v in region.low]),
                                  np.array([float(v) for v in region.high]))
            assert np.array_equal(low, expected[0]) and np.array_equal(high, expected[1])
        with torch.no_grad():  # the hidden layers move: the next boxes must follow
            for layer in trainer.model.hidden:
                layer.weight.mul_(1.5)
