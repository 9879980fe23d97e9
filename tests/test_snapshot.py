"""The per-iteration snapshot (undone when a signal cuts an iteration short): it holds copies, not views of
the live state, and rolling back restores the model, the optimizer and the loop exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from deepsade import checkpoint
from deepsade.estimator import split_validation
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings
from deepsade.training.loop import TrainState
from deepsade.training.settings import EpochStats
from deepsade.training.state import cloned_state

RULE = "(declare-const x1 Real)(declare-const y Real)(assert (<= y x1))"


def _trainer(tmp_path, optimizer: str) -> DeepSaDeTrainer:
    rng = np.random.default_rng(0)
    x1 = rng.uniform(0, 10, 80)
    frame = pd.DataFrame({"x1": x1, "x2": rng.uniform(-5, 5, 80), "y": 0.9 * x1 + rng.normal(0, 0.3, 80)})
    data = prepare(frame, ["y"])
    spec = parse_spec_text(RULE, data.encoding)
    settings = TrainSettings(hidden=(6, 4), epochs=1, batch_size=16, seed=0, optimizer=optimizer)
    train, _ = split_validation(data, settings.val_fraction, settings.seed)
    return DeepSaDeTrainer(spec, train, settings, checkpoint_dir=tmp_path / "run.checkpoint",
                           checkpoint_policy=checkpoint.CheckpointPolicy.parse(4))


def _tensors(state) -> list[torch.Tensor]:
    if torch.is_tensor(state):
        return [state]
    if isinstance(state, dict):
        return [t for value in state.values() for t in _tensors(value)]
    if isinstance(state, (list, tuple)):
        return [t for value in state for t in _tensors(value)]
    return []


def test_cloned_state_shares_nothing_with_the_live_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    for live in (model.state_dict(), optimizer.state_dict()):
        copied = cloned_state(live)
        pairs = list(zip(_tensors(live), _tensors(copied)))
        assert pairs and all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in pairs)
    assert cloned_state(model.state_dict())._metadata == model.state_dict()._metadata


def test_rollback_undoes_an_iteration(tmp_path):
    for optimizer in ("adam", "sgd"):
        trainer = _trainer(tmp_path / optimizer, optimizer)
        trainer.initialise()
        x = torch.as_tensor(trainer.data.inputs, dtype=torch.float32)
        y = torch.as_tensor(trainer.data.targets)
        loop = TrainState(best_state=cloned_state(trainer.model.state_dict()),
                          valid_state=cloned_state(trainer.model.state_dict()), stats=EpochStats(1))
        for _ in range(2):  # the optimizer has state to restore
            trainer._step(loop, x[:16], y[:16], loop.stats)
        model_before = cloned_state(trainer.model.state_dict())
        optimizer_before = _tensors(cloned_state(trainer.optimizer.state_dict()))
        rng_state = trainer.rng.bit_generator.state
        iterations, losses, valid = loop.iterations, len(loop.losses), loop.valid_state
        snapshot = trainer._snapshot(loop)
        trainer._step(loop, x[16:32], y[16:32], loop.stats)
        trainer.rng.random(3)
        loop.iterations += 1
        assert any(not torch.equal(a, b) for a, b in zip(model_before.values(), trainer.model.state_dict().values()))
        # the step changed the live tensors, not the snapshot's
        assert all(torch.equal(snapshot["model"][k], v) for k, v in model_before.items())
        trainer._rollback(loop, snapshot)
        assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in model_before.items())
        restored = _tensors(trainer.optimizer.state_dict())
        assert len(restored) == len(optimizer_before) and all(map(torch.equal, restored, optimizer_before))
        assert loop.iterations == iterations and len(loop.losses) == losses and loop.valid_state is valid
        assert trainer.rng.bit_generator.state == rng_state
