"""The checkpoint lifecycle of one training run, the same for the CLI and the Python API: refuse to start
over an interrupted run's checkpoint, keep the checkpoint when saving the model fails (the run can be
resumed once that is fixed), and delete it once a certified model is safely written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from deepsade import checkpoint
from deepsade.errors import UserInputError

Result = TypeVar("Result")


def checkpoint_directory(out_dir: str | Path, resume_dir: str | Path | None = None, every: str | int = "epoch",
                         method: str = "deepsade") -> Path | None:
    """Where the run writing ``out_dir`` keeps its checkpoint (None: a method without checkpoints).

    Raises ``UserInputError`` for a bad ``every``, ``resume_dir`` without a checkpoint or with another
    method, and a stale checkpoint beside ``out_dir`` when not resuming."""
    checkpoint.CheckpointPolicy.parse(every)  # a bad value fails before the data is read
    if method != "deepsade":
        if resume_dir is not None:
            raise UserInputError(f"--resume works with --method deepsade only (got {method})")
        return None
    if resume_dir is not None:
        if not checkpoint.exists(resume_dir):
            raise UserInputError(f"no checkpoint to resume in {resume_dir} (it has no checkpoint.json)")
        return Path(resume_dir)
    directory = checkpoint.default_directory(out_dir)
    if checkpoint.exists(directory):
        raise UserInputError(f"{directory} holds the checkpoint of an interrupted run: continue it with --resume "
                             f"{directory}, or delete it to start over")
    return directory


@dataclass(frozen=True)
class CheckpointedRun(Generic[Result]):
    """What ``run_with_checkpoints`` did: the training result, where its checkpoint was, whether it is kept."""

    result: Result
    directory: Path | None
    kept: bool


def run_with_checkpoints(out_dir: str | Path, train: Callable[[Path | None], Result],
                         save: Callable[[Result], None], certified: Callable[[Result], bool],
                         resume_dir: str | Path | None = None, every: str | int = "epoch",
                         method: str = "deepsade") -> CheckpointedRun[Result]:
    """Train (``train(checkpoint_dir)``), save (``save(result)``) and settle the checkpoint.

    The checkpoint is removed only when the model was saved and ``certified(result)``; when saving fails
    with a ``UserInputError`` the checkpoint stays and the error says how to resume. Interruptions
    (``checkpoint.TrainingInterrupted``) pass through with the checkpoint in place."""
    directory = checkpoint_directory(out_dir, resume_dir, every, method)
    result = train(directory)
    try:
        save(result)
    except UserInputError as exc:
        if directory is not None and checkpoint.exists(directory):
            raise UserInputError(f"{exc}; the trained state is kept in {directory}: once this is fixed, run the "
                                 f"same command with --resume {directory}") from None
        raise
    kept = directory is not None and checkpoint.exists(directory)
    if kept and certified(result):
        checkpoint.remove(directory)
        kept = False
    return CheckpointedRun(result, directory, kept)
