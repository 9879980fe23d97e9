"""How many threads torch uses while a model trains.

The networks are small (tabular inputs, hidden layers of tens of units, batches of 5-32 rows), so one
training step is hundreds of tiny tensor operations, each a parallel region whose threads meet at a barrier.
On a machine whose cores are busy with other work a descheduled thread holds every barrier up: a new-user
probe measured the sequential clamps at 4-43x ffn's time on a loaded 2-core machine, against 1.0-1.6x on the
benchmark (which runs with OMP_NUM_THREADS=1). ``scripts/bench_threads.py`` measures both settings, idle and
under load (``results/threads``). Training therefore runs on one torch thread unless the user set
``OMP_NUM_THREADS``, which is then left to torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

#: torch threads while training when OMP_NUM_THREADS is not set
TRAINING_THREADS = 1


@contextlib.contextmanager
def training_threads() -> Iterator[int]:
    """Within the block torch uses ``TRAINING_THREADS`` threads (unless OMP_NUM_THREADS is set); the count
    before is restored after. Yields the count in force."""
    before = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        yield before
        return
    torch.set_num_threads(TRAINING_THREADS)
    try:
        yield TRAINING_THREADS
    finally:
        torch.set_num_threads(before)
