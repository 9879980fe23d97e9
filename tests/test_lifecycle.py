"""The checkpoint lifecycle of a run, as the core provides it to the CLI and the Python API."""

from __future__ import annotations

import pytest
import torch

from deepsade import checkpoint
from deepsade.errors import UserInputError
from deepsade.training.lifecycle import checkpoint_directory, run_with_checkpoints


def _write_checkpoint(directory) -> None:
    checkpoint.write(directory, {"a": torch.zeros(1)}, {"epoch": 1})


def test_stale_checkpoint_is_refused_and_resume_needs_one(tmp_path):
    out = tmp_path / "model"
    assert checkpoint_directory(out) == tmp_path / "model.checkpoint"
    _write_checkpoint(tmp_path / "model.checkpoint")
    with pytest.raises(UserInputError, match="interrupted run"):
        checkpoint_directory(out)
    assert checkpoint_directory(out, resume_dir=tmp_path / "model.checkpoint") == tmp_path / "model.checkpoint"
    with pytest.raises(UserInputError, match="no checkpoint to resume"):
        checkpoint_directory(out, resume_dir=tmp_path / "elsewhere")
    with pytest.raises(UserInputError, match="deepsade only"):
        checkpoint_directory(out, resume_dir=tmp_path / "model.checkpoint", method="mlp")
    assert checkpoint_directory(tmp_path / "other", method="mlp") is None
    with pytest.raises(UserInputError, match="checkpoint-every"):
        checkpoint_directory(tmp_path / "other", every="sometimes")


@pytest.mark.parametrize("certified", [True, False])
def test_checkpoint_removed_only_after_a_certified_model_is_saved(tmp_path, certified):
    saved = []

    def train(directory):
        _write_checkpoint(directory)  # what the trainer does along the way
        return "result"

    run = run_with_checkpoints(tmp_path / "model", train, saved.append, lambda result: certified)
    assert saved == ["result"] and run.result == "result"
    assert run.kept is not certified
    assert checkpoint.exists(tmp_path / "model.checkpoint") is not certified


def test_checkpoint_kept_when_saving_fails(tmp_path):
    def train(directory):
        _write_checkpoint(directory)
        return "result"

    def save(result):
        raise UserInputError("cannot write the model directory")

    with pytest.raises(UserInputError, match="--resume .*model.checkpoint"):
        run_with_checkpoints(tmp_path / "model", train, save, lambda result: True)
    assert checkpoint.exists(tmp_path / "model.checkpoint")
