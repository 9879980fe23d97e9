"""Calls that must end by a deadline, run in a child process that is killed when they do not.

Marabou's own timeout is not always kept: on a small network with sequential clamps (hidden 8-4, the
clamps' ReLU form), ``deepsade verify --timeout 10`` ran for over 150 s inside one ``MarabouCore.solve``
and ignored SIGTERM. A C++ solve cannot be interrupted from Python, so the Marabou engine hands each
query to one persistent child process (spawned once, so Marabou and numpy load once per run) and, when
no answer comes by the deadline, kills it (SIGKILL) and starts a fresh one for the next query.

Where no child process can be started (inside a daemonic worker, or where the platform refuses), the
call runs in this process, without the hard deadline.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # noqa: F401 - registers its exit handler first, so ours (below) runs before it
from collections.abc import Callable
from typing import Any

#: seconds a call may run past the timeout it was given before its process is killed: Marabou reads
#: its timeout in whole seconds and checks it between steps, so an answer a little late is still taken
GRACE_SECONDS = 5.0


class _Child:
    """A spawned process that runs ``(function, args)`` requests one at a time and sends back the results."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end,), daemon=True,
                                       name="deepsade-deadline-child")
        self.process.start()
        child_end.close()

    def call(self, function: Callable[..., Any], args: tuple, seconds: float) -> tuple[bool, Any]:
        """(True, result) when ``function(*args)`` returned within ``seconds``, else (False, None)."""
        self.connection.send((function, args))
        if not self.connection.poll(seconds):
            return False, None
        failed, value = self.connection.recv()
        if failed:
            raise value
        return True, value

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()


def _serve(connection: Any) -> None:
    """The child's loop: run each request, send ``(failed, result or exception)``; stop when the parent goes."""
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (False, function(*args))
        except Exception as exc:  # noqa: BLE001 - the parent re-raises it
            reply = (True, exc)
        try:
            connection.send(reply)
        except Exception as exc:  # noqa: BLE001 - a result or an exception that does not pickle
            connection.send((True, RuntimeError(f"the call's {'error' if reply[0] else 'result'} could not be "
                                                f"sent back: {exc}")))


_child: _Child | None = None


@atexit.register
def _kill_child() -> None:
    """At exit, kill the child outright: multiprocessing would send SIGTERM and wait, and a process inside
    a solve that ignores SIGTERM would keep this one from exiting."""
    if _child is not None and _child.process.is_alive():
        _child.kill()


def call_with_deadline(function: Callable[..., Any], args: tuple, seconds: float) -> tuple[bool, Any]:
    """Run ``function(*args)`` (both picklable; ``function`` importable by name) in the persistent child
    process, allowing ``seconds``. Returns (True, result), or (False, None) after killing a child that did not
    answer in time (the next call starts a fresh one). An exception inside the call is raised here; a child
    that dies without answering counts as out of time. Runs in this process when no child can be started."""
    global _child
    if _child is None or not _child.process.is_alive():
        try:
            _child = _Child()
        except (AssertionError, OSError, RuntimeError):  # e.g. "daemonic processes are not allowed to have children"
            _child = None
            return True, function(*args)
    try:
        finished, value = _child.call(function, args, seconds)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        finished, value = False, None
    if not finished:
        _child.kill()
        _child = None
    return finished, value
