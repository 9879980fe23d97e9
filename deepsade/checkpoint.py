"""Checkpoints of a training run: when to write them, how to write them so a crash never leaves a
broken one, how to read them without executing anything, and Ctrl-C / SIGTERM handling.

A checkpoint is a directory (by default ``<out>.checkpoint`` beside the model directory) with

- ``state-NNNNNN.safetensors``: every tensor (weights, optimizer buffers, RNG states, ...);
- ``checkpoint.json``: everything else, plus the sha256 of that tensor file and of its own payload.

Each file is written to a temporary name, flushed and fsynced, then renamed into place, and the
directory is fsynced. The tensor file gets a new sequence number each time and ``checkpoint.json``
is renamed last, so at every instant the JSON names a complete tensor file: a run killed at any
moment leaves the previous checkpoint or the new one, never a mix. Old tensor files are removed
after the JSON that replaces them is in place. A damaged or truncated file fails its hash and is
refused with a clear message. Nothing is unpickled: JSON and safetensors only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from deepsade.atomic import fsync_directory
from deepsade.errors import UserInputError

FORMAT = "deepsade-checkpoint/1"
MANIFEST = "checkpoint.json"
_STATE_PATTERN = re.compile(r"^state-(\d+)\.safetensors$")
DEFAULT_EVERY_SECONDS = 300.0  # "once per epoch, and at most every few minutes" within a long epoch
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


def default_directory(out_dir: str | Path) -> Path:
    """Where ``deepsade train --out DIR`` keeps its checkpoint: ``DIR.checkpoint`` beside it."""
    out = Path(out_dir)
    return out.with_name(out.name + ".checkpoint")


def exists(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).exists()


@dataclass(frozen=True)
class CheckpointPolicy:
    """When to write a checkpoint: every N iterations, every S seconds, and/or at the end of each epoch."""

    every_iterations: int | None = None
    every_seconds: float | None = DEFAULT_EVERY_SECONDS
    per_epoch: bool = True

    @classmethod
    def parse(cls, text: str | int) -> CheckpointPolicy:
        """'epoch' (default), 'never', a number of iterations ('200') or a duration ('90s', '10m', '1h')."""
        value = str(text).strip().lower()
        if value == "epoch":
            return cls()
        if value == "never":
            return cls(None, None, False)
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)", value)
        if match:
            seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
            if seconds <= 0:
                raise UserInputError(f"--checkpoint-every must be positive, got {text!r}")
            return cls(None, seconds, True)
        if value.isdigit() and int(value) > 0:
            return cls(int(value), None, True)
        raise UserInputError(f"--checkpoint-every takes 'epoch', 'never', a number of iterations (e.g. 200) or a "
                             f"duration (e.g. 90s, 10m); got {text!r}")

    def due(self, iterations_since: int, seconds_since: float) -> bool:
        """Whether a mid-epoch checkpoint is due."""
        if self.every_iterations is not None and iterations_since >= self.every_iterations:
            return True
        return self.every_seconds is not None and seconds_since >= self.every_seconds


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT / SIGTERM after writing a checkpoint to ``directory`` (None: stopped during
    initialisation, before there was anything to save)."""

    def __init__(self, directory: Path | None, signal_number: int):
        self.directory = Path(directory) if directory is not None else None
        self.signal_number = signal_number
        self.exit_code = EXIT_CODES.get(signal_number, 128 + int(signal_number))
        name = signal.Signals(signal_number).name
        super().__init__(f"interrupted by {name}: " + (f"checkpoint written to {directory}" if directory is not None
                                                        else "before the first checkpoint"))


class InterruptFlag:
    """Set by SIGINT / SIGTERM; the trainer looks at it between iterations."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def __bool__(self) -> bool:
        return self.signal_number is not None


@contextlib.contextmanager
def interrupt_signals(announce: bool = True, on_signal: Callable[[], None] | None = None) -> Iterator[InterruptFlag]:
    """While active, SIGINT and SIGTERM set a flag instead of killing the process; a second one stops at once
    (KeyboardInterrupt). The previous handlers come back on exit. Outside the main thread: a flag that never sets.

    ``on_signal`` runs in a helper thread the moment a signal arrives, even while the main thread is inside
    a long C call (a solver), where Python's own handler would wait until the call returns: the trainer
    uses it to cut the running solver call short."""
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame) -> None:
        if flag:
            raise KeyboardInterrupt
        flag.signal_number = signum
        if announce:
            os.write(2, b"\ninterrupt received: finishing the current step and writing a checkpoint "
                        b"(interrupt again to stop without one)\n")

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_CODES}
    watcher = _SignalWatcher(on_signal) if on_signal is not None else None
    try:
        yield flag
    finally:
        if watcher is not None:
            watcher.close()
        for sig, old in previous.items():
            signal.signal(sig, old)


class _SignalWatcher:
    """Python's C-level signal handler writes each signal's number to the wakeup fd at once; a daemon thread
    reading the other end calls ``on_signal`` (ctypes calls such as z3's release the GIL, so it can run)."""

    def __init__(self, on_signal: Callable[[], None]):
        self.on_signal = on_signal
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        self.thread = threading.Thread(target=self._watch, name="deepsade-interrupt", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        signalled = False
        while True:
            try:
                data = self.reader.recv(64)
            except TimeoutError:
                data = None
            except OSError:
                return
            if data == b"":
                return
            if data and any(byte in EXIT_CODES for byte in data) and not signalled:
                signalled = True
                self.reader.settimeout(0.05)  # from now on, every 50 ms until the guard closes
            if signalled:
                # again and again: the step in progress may start several solver calls before it ends
                with contextlib.suppress(Exception):
                    self.on_signal()

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous_fd)
        self.writer.close()  # the reader sees end of file and the thread ends
        self.thread.join(timeout=1.0)
        self.reader.close()


# ---- files ------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _payload_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _replace_atomically(directory: Path, name: str, write) -> None:
    """Write via ``write(path)`` to a temporary file in ``directory``, fsync it, rename it to ``name``."""
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(temp)
        with open(temp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_directory(directory)


def _state_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        match = _STATE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prepare_directory(directory: str | Path, keep: bool = True) -> Path:
    """Create the checkpoint directory and check it is writable (before any training time is spent);
    with ``keep=False`` a directory created only for the check is removed again."""
    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".probe.", suffix=".tmp", delete=True)  # .tmp: remove() finds one a kill left
        probe.close()
    except OSError as exc:
        raise UserInputError(f"cannot write checkpoints to {directory}: {exc.strerror or exc}") from None
    if created and not keep:
        with contextlib.suppress(OSError):
            directory.rmdir()
    return directory


def write(directory: str | Path, tensors: dict[str, torch.Tensor], payload: dict[str, Any]) -> Path:
    """Write one checkpoint atomically (see the module docstring); returns the directory."""
    directory = prepare_directory(directory)
    previous = _state_files(directory)
    sequence = previous[-1][0] + 1 if previous else 1
    state_name = f"state-{sequence:06d}.safetensors"
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    # serialised in memory and written to our own temporary name: safetensors' save_file writes through a
    # temporary file of its own (".tmpXXXXXX" in 0.8), which a kill would leave behind where remove() and
    # rmdir meet it
    blob = safetensors_bytes(contiguous)

    def write_state(path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(blob)

    _replace_atomically(directory, state_name, write_state)
    manifest = {
        "format": FORMAT,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "state_file": state_name,
        "state_sha256": file_sha256(directory / state_name),
        "payload_sha256": hashlib.sha256(_payload_text(payload).encode()).hexdigest(),
        "payload": payload,
    }
    text = json.dumps(manifest, indent=1, default=_json_default)

    def write_manifest(path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    _replace_atomically(directory, MANIFEST, write_manifest)
    for _, path in previous:
        with contextlib.suppress(OSError):
            path.unlink()
    return directory


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def read(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; a missing, damaged or truncated one raises UserInputError."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise UserInputError(f"no checkpoint at {directory} (it has no {MANIFEST})")
    refuse = f"checkpoint {directory} is corrupted or truncated"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{refuse}: {MANIFEST} is not valid JSON ({exc}); refusing to load it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserInputError(f"{directory}: not a deepsade checkpoint (format {fmt!r}, expected {FORMAT})")
    payload = manifest.get("payload")
    if not isinstance(payload, dict) or hashlib.sha256(_payload_text(payload).encode()).hexdigest() != \
            manifest.get("payload_sha256"):
        raise UserInputError(f"{refuse}: the contents of {MANIFEST} do not match their sha256; refusing to load it")
    state_name = str(manifest.get("state_file", ""))
    if not _STATE_PATTERN.match(state_name) or not (directory / state_name).exists():
        raise UserInputError(f"{refuse}: its tensor file {state_name!r} is missing; refusing to load it")
    if file_sha256(directory / state_name) != manifest.get("state_sha256"):
        raise UserInputError(f"{refuse}: {state_name} does not match its sha256 (damaged or cut short); "
                             "refusing to load it")
    try:
        tensors = load_file(str(directory / state_name))
    except Exception as exc:  # the hash matched, so this is a file written wrongly, not damage
        raise UserInputError(f"{refuse}: {state_name} cannot be read ({exc})") from None
    return tensors, payload


def remove(directory: str | Path) -> None:
    """Delete a checkpoint once the model it led to is safely written."""
    directory = Path(directory)
    if not exists(directory):
        return
    for _, path in _state_files(directory):
        with contextlib.suppress(OSError):
            path.unlink()
    # our temporary files, and safetensors' own (".tmpXXXXXX") that versions before 2026-12-03 left on a kill
    for pattern in (".*.tmp", ".tmp*"):
        for path in directory.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        (directory / MANIFEST).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def array_sha256(*arrays: np.ndarray) -> str:
    """Fingerprint of arrays (shape, dtype and bytes): a resumed run refuses different data."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
