"""Checkpoints: written atomically, verified on load, and a run interrupted at any point (Ctrl-C, SIGTERM,
SIGKILL) and resumed ends with a certified model -- the same one an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from deepsade import checkpoint
from deepsade.cli import main
from deepsade.errors import UserInputError
from deepsade.estimator import split_validation
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings
from tests.conftest import REPO, run_cli

BINARY_RULE = "(declare-const x1 Real)(declare-const label Real)(assert (=> (< x1 4) (< label 0)))"
REGRESSION_RULE = "(declare-const x1 Real)(declare-const y Real)(assert (<= y x1))"


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.uniform(0, 10, n), rng.uniform(-5, 5, n), rng.uniform(0, 1, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "label": np.where(x2 > -1, "yes", "no"),
                         "y": 1.5 * x1 + 0.3 * x2 + 1})


def _trainer(tmp_path: Path | None, epochs: int = 3, frame: pd.DataFrame | None = None, **overrides):
    """A small binary problem whose steps go through the MaxSMT solver (projection off where it exists)."""
    frame = _frame() if frame is None else frame
    data = prepare(frame.drop(columns=["y"]), ["label"], positive="yes")
    spec = parse_spec_text(BINARY_RULE, data.encoding)
    extra = {"projection": False} if "projection" in TrainSettings.__dataclass_fields__ else {}
    # z3 in the loop picks among equally good models by its process state once gate units pin latent
    # coordinates; the gated resume is tested on the projection path (test_gated_run_resumes_...)
    extra["premise_gates"] = False
    settings = TrainSettings(hidden=(6, 4), epochs=epochs, batch_size=10, seed=0, **{**extra, **overrides})
    train, val = split_validation(data, settings.val_fraction, settings.seed)
    directory = None if tmp_path is None else tmp_path / "run.checkpoint"
    return DeepSaDeTrainer(spec, train, settings, checkpoint_dir=directory,
                           checkpoint_policy=checkpoint.CheckpointPolicy.parse(4)), val


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- the file format --------------------------------------------------------------------------------

def test_write_read_roundtrip_and_old_files_removed(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "rng": torch.get_rng_state()}
    payload = {"epoch": 3, "big": 2**100, "nan": float("nan"), "inf": float("inf"), "text": "é"}
    checkpoint.write(tmp_path, tensors, payload)
    checkpoint.write(tmp_path, tensors, {**payload, "epoch": 4})
    loaded, data = checkpoint.read(tmp_path)
    assert data["epoch"] == 4 and data["big"] == 2**100 and data["inf"] == float("inf")
    assert torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["rng"], tensors["rng"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "state-000002.safetensors"]


def test_remove_deletes_what_a_kill_can_leave(tmp_path):
    """A run killed inside a write leaves a temporary file: ours (.NAME.XXXX.tmp, .probe.XXXX.tmp) or, from
    versions that wrote through safetensors' save_file, its own (.tmpXXXXXX). After a certified resume,
    remove() must leave no directory behind (seen in CI: the checkpoint outlived a certified resume)."""
    checkpoint.write(tmp_path, {"a": torch.zeros(3)}, {"epoch": 1})
    for leftover in (".tmpAb12Cd", ".state-000002.safetensors.x1y2z3.tmp", ".probe.q9w8e7.tmp",
                     ".checkpoint.json.k3j4h5.tmp"):
        (tmp_path / leftover).write_bytes(b"partial")
    checkpoint.remove(tmp_path)
    assert not tmp_path.exists()


def test_state_is_not_written_through_save_file(tmp_path, monkeypatch):
    """safetensors' save_file (0.8) writes through a temporary file it names itself (.tmpXXXXXX, seen with
    strace), created by Rust where Python cannot watch it: a kill there left a file in the checkpoint. The
    state is serialised in memory and written to checkpoint's own temporary name instead."""
    import safetensors.torch

    def refuse(*args, **kwargs):
        raise AssertionError("save_file writes through a temporary file of its own")

    monkeypatch.setattr(safetensors.torch, "save_file", refuse)
    monkeypatch.setattr(checkpoint, "save_file", refuse, raising=False)
    checkpoint.write(tmp_path, {"a": torch.arange(4.0)}, {"epoch": 1})
    tensors, _ = checkpoint.read(tmp_path)
    assert torch.equal(tensors["a"], torch.arange(4.0))


@pytest.mark.parametrize("damage, message", [
    ("truncate_state", "does not match its sha256"),
    ("flip_state_byte", "does not match its sha256"),
    ("truncate_json", "not valid JSON"),
    ("edit_payload", "do not match their sha256"),
    ("delete_state", "is missing"),
    ("not_a_checkpoint", "not a deepsade checkpoint"),
])
def test_damaged_checkpoint_refused(tmp_path, damage, message):
    checkpoint.write(tmp_path, {"w": torch.randn(50, 50)}, {"epoch": 2, "position": 10})
    state = next(tmp_path.glob("state-*.safetensors"))
    manifest = tmp_path / checkpoint.MANIFEST
    if damage == "truncate_state":
        state.write_bytes(state.read_bytes()[:-100])
    elif damage == "flip_state_byte":
        raw = bytearray(state.read_bytes())
        raw[-7] ^= 0x40
        state.write_bytes(bytes(raw))
    elif damage == "truncate_json":
        manifest.write_text(manifest.read_text()[:-30])
    elif damage == "edit_payload":
        manifest.write_text(manifest.read_text().replace('"position": 10', '"position": 11'))
    elif damage == "delete_state":
        state.unlink()
    else:
        manifest.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserInputError, match=message):
        checkpoint.read(tmp_path)


def test_policy_parsing():
    assert checkpoint.CheckpointPolicy.parse("epoch") == checkpoint.CheckpointPolicy()
    assert checkpoint.CheckpointPolicy.parse("25").every_iterations == 25
    assert checkpoint.CheckpointPolicy.parse("90s").every_seconds == 90
    assert checkpoint.CheckpointPolicy.parse("2m").every_seconds == 120
    never = checkpoint.CheckpointPolicy.parse("never")
    assert not never.per_epoch and not never.due(10**9, 1e9)
    with pytest.raises(UserInputError, match="checkpoint-every"):
        checkpoint.CheckpointPolicy.parse("sometimes")


def test_signal_handlers_restored_after_training(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    trainer, val = _trainer(tmp_path, epochs=1)
    trainer.fit(val)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert checkpoint.exists(tmp_path / "run.checkpoint")


# ---- interrupt and resume in-process ----------------------------------------------------------------

def test_interrupt_between_iterations_then_resume_matches_uninterrupted(tmp_path):
    reference, val = _trainer(None)
    expected = reference.fit(val)

    trainer, val = _trainer(tmp_path)
    calls = {"n": 0}

    def progress(stats, info):
        if stats is not None and not info.get("epoch_done"):
            calls["n"] += 1
            if calls["n"] == 17:  # mid-epoch 2
                os.kill(os.getpid(), signal.SIGINT)

    trainer.progress = progress
    with pytest.raises(checkpoint.TrainingInterrupted) as stop:
        trainer.fit(val)
    assert stop.value.exit_code == 130
    _, payload = checkpoint.read(tmp_path / "run.checkpoint")
    assert (payload["epoch"], payload["iterations"]) == (2, 17)

    resumed, val = _trainer(tmp_path)
    result = resumed.fit(val, resume=True)
    assert _same(_weights(result.model), _weights(expected.model))
    assert [h.train_loss for h in result.history] == [h.train_loss for h in expected.history]
    assert [h.maxsmt_calls for h in result.history] == [h.maxsmt_calls for h in expected.history]
    assert result.best_epoch == expected.best_epoch
    assert any("resumed from" in note for note in result.notes)


def test_gated_run_resumes_where_an_uninterrupted_one_ends(tmp_path):
    """Premise gates widen the network: a checkpoint holds the wide network and resumes it exactly."""
    reference, val = _trainer(None, epochs=2, projection=True, premise_gates=True)
    expected = reference.fit(val)
    assert reference.gate_layout is not None
    trainer, val = _trainer(tmp_path, epochs=2, projection=True, premise_gates=True)
    calls = {"n": 0}

    def progress(stats, info):
        if stats is not None and not info.get("epoch_done"):
            calls["n"] += 1
            if calls["n"] == 13:
                os.kill(os.getpid(), signal.SIGINT)

    trainer.progress = progress
    with pytest.raises(checkpoint.TrainingInterrupted):
        trainer.fit(val)
    resumed, val = _trainer(tmp_path, epochs=2, projection=True, premise_gates=True)
    result = resumed.fit(val, resume=True)
    assert _same(_weights(result.model), _weights(expected.model))
    assert result.best_epoch == expected.best_epoch


def test_signal_inside_a_solver_step_is_rolled_back(tmp_path):
    """SIGTERM while the last layer is being solved: the solver call is cut short, the step undone, the
    checkpoint holds the state before it, and the resumed run still equals the uninterrupted one."""
    reference, val = _trainer(None)
    expected = reference.fit(val)

    trainer, val = _trainer(tmp_path)
    original = trainer.update_last_layer
    calls = {"n": 0}

    def update_then_signal(x, y, stats):
        calls["n"] += 1
        if calls["n"] == 9:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the watcher thread starts cancelling z3 calls
        return original(x, y, stats)

    trainer.update_last_layer = update_then_signal
    with pytest.raises(checkpoint.TrainingInterrupted) as stop:
        trainer.fit(val)
    assert stop.value.exit_code == 143
    _, payload = checkpoint.read(tmp_path / "run.checkpoint")
    assert payload["iterations"] == 8  # the interrupted 9th step is not in the checkpoint

    resumed, val = _trainer(tmp_path)
    result = resumed.fit(val, resume=True)
    assert _same(_weights(result.model), _weights(expected.model))
    assert [h.train_loss for h in result.history] == [h.train_loss for h in expected.history]


def test_resume_refuses_other_data_settings_or_constraint(tmp_path):
    trainer, val = _trainer(tmp_path, epochs=1)
    trainer.fit(val)
    other_data, val2 = _trainer(tmp_path, epochs=2, frame=_frame(seed=5))
    with pytest.raises(UserInputError, match="other data"):
        other_data.fit(val2, resume=True)
    other_lr, val3 = _trainer(tmp_path, epochs=2, lr=0.05)
    with pytest.raises(UserInputError, match=r"other settings: lr \(0.1 there, 0.05 here\)"):
        other_lr.fit(val3, resume=True)
    more_epochs, val4 = _trainer(tmp_path, epochs=2)
    assert len(more_epochs.fit(val4, resume=True).history) == 2  # --epochs may grow


# ---- the CLI, as a user runs it ---------------------------------------------------------------------

CLI_EPOCHS = 45  # ~0.15 s each on a laptop core: the kill below lands well before the last epoch


def _cli_problem(tmp_path: Path) -> tuple[list[str], Path, Path]:
    csv, rule, out = tmp_path / "d.csv", tmp_path / "rule.smt2", tmp_path / "model"
    _frame(300).drop(columns=["label"]).to_csv(csv, index=False)
    rule.write_text(REGRESSION_RULE)
    args = ["train", str(csv), "--constraint", str(rule), "--target", "y", "--method", "deepsade", "--hidden", "8,6",
            "--batch-size", "10", "--patience", "0",
            "--epochs", str(CLI_EPOCHS), "--seed", "3", "--out", str(out), "--quiet", "--checkpoint-every", "7"]
    return args, out, Path(str(out) + ".checkpoint")


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "deepsade.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended before the first checkpoint: {process.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_sigkill_at_a_random_moment_then_resume_gives_certified_model(tmp_path):
    args, out, ckpt = _cli_problem(tmp_path)
    delay = random.Random().uniform(0.0, 1.0)
    process = _start(args)
    _wait_for(ckpt / checkpoint.MANIFEST, process)
    time.sleep(delay)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill (delay {delay:.2f}s)"
    assert not out.exists()  # nothing that looks like a finished model
    resumed = run_cli(*args, "--resume", str(ckpt))
    assert resumed.returncode == 0, (delay, resumed.stderr)
    assert "certificate: CERTIFIED" in resumed.stdout
    assert not ckpt.exists()  # removed once the certified model is written
    history = json.loads((out / "model.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, CLI_EPOCHS + 1))
    assert CliRunner().invoke(main, ["certify", str(out)]).exit_code == 0  # re-checked from scratch


def test_sigterm_prints_resume_command_and_damaged_checkpoint_is_refused(tmp_path):
    args, out, ckpt = _cli_problem(tmp_path)
    process = _start(args)
    _wait_for(ckpt / checkpoint.MANIFEST, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: checkpoint written to {ckpt}; resume with: deepsade train ")
    command = shlex.split(last.split("resume with: ", 1)[1])
    assert command[-2:] == ["--resume", str(ckpt)]

    # a copy with its tensor file cut short is refused with one line, exit 2
    broken = tmp_path / "broken.checkpoint"
    shutil.copytree(ckpt, broken)
    state = next(broken.glob("state-*.safetensors"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    refused = CliRunner().invoke(main, [*command[1:-1], str(broken)])
    assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit)
    assert "corrupted or truncated" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not out.exists()

    # a fresh run over the checkpoint is refused (it would throw the work away); the printed command resumes
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--resume" in again.stderr
    resumed = run_cli(*command[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert "certificate: CERTIFIED" in resumed.stdout


def test_resume_errors_are_one_line(tmp_path):
    args, out, ckpt = _cli_problem(tmp_path)
    missing = CliRunner().invoke(main, [*args, "--resume", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no checkpoint to resume" in missing.stderr
    bad_policy = CliRunner().invoke(main, [*args[:-1], "sometimes"])
    assert bad_policy.exit_code == 2 and "--checkpoint-every" in bad_policy.stderr
    for result in (missing, bad_policy):
        assert len(result.stderr.strip().splitlines()) == 1


def test_remove_deletes_what_a_kill_can_leave_behind(tmp_path, monkeypatch):
    """A run killed while it probed the directory or wrote a file leaves a hidden temporary file; once the
    resumed run is certified, the whole checkpoint directory must still go."""
    directory = checkpoint.write(tmp_path / "run.checkpoint", {"w": torch.zeros(2)}, {"epoch": 1})
    real = checkpoint.tempfile.NamedTemporaryFile

    def killed_before_cleanup(*args, **kwargs):  # the probe file as a kill leaves it: never deleted
        return real(*args, **{**kwargs, "delete": False})

    monkeypatch.setattr(checkpoint.tempfile, "NamedTemporaryFile", killed_before_cleanup)
    checkpoint.prepare_directory(directory)
    monkeypatch.undo()
    (directory / ".state-000002.safetensors.abc.tmp").write_bytes(b"cut short")
    assert len(list(directory.iterdir())) == 4
    checkpoint.remove(directory)
    assert not directory.exists()
