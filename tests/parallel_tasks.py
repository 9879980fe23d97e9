"""Tiny task functions for tests/test_parallel.py, in a module without heavy imports (workers import it)."""

from __future__ import annotations

import os


def square(x: int) -> int:
    return x * x


def die_on_three(position: int) -> tuple[int, int]:
    if position == 3:
        os._exit(17)  # a solver crash kills the worker process
    return position, position * 10
