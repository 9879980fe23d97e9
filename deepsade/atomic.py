"""Atomic file writes: a stopped process never leaves a half-written file that looks finished."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_directory(directory: str | Path) -> None:
    """Flush a directory's entries (renames into it) to disk; a no-op where the OS cannot."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomically(path: str | Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary sibling, fsync it, rename it onto ``path``, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, mode)  # mkstemp makes the file private; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_text_atomically(path: str | Path, text: str, mode: int = 0o644) -> Path:
    """``write_bytes_atomically`` for UTF-8 text."""
    return write_bytes_atomically(path, text.encode("utf-8"), mode)
