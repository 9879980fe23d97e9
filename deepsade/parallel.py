"""Independent tasks scheduled through joblib: loky on this machine, or a Dask or Ray cluster.

Experiment grids (seeds x hyper-parameters x folds x methods), AdI (one search per instance) and
whole-domain verification (one search per assert) are sets of independent tasks. They all go through
``run_tasks``, which hands them to joblib under the backend chosen on the command line:

- ``loky`` (default): ``jobs`` worker processes on this machine (``jobs=1``: in this process);
- ``dask``: the workers of a ``dask.distributed`` cluster (``--scheduler ADDRESS``, or the client
  already made in this process), through dask.distributed's joblib backend;
- ``ray``: the workers of a Ray cluster (``--address ADDRESS``, or a local one), through Ray's.

Results come back as each task finishes (in completion order), so a caller can store each at once and
a lost worker costs only its own task. Ray's joblib backend hands results back only when all are done;
the tasks that store their own results (the experiment runner's) still store them as they finish.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from deepsade.errors import UserInputError

BACKENDS = ("loky", "dask", "ray")
INSTALL_HINT = {"dask": "pip install 'deepsade[dask]'", "ray": "pip install 'deepsade[ray]'"}


@dataclass(frozen=True)
class Backend:
    """Where independent tasks run: ``name`` in BACKENDS, ``jobs`` local workers (loky), and the
    cluster to join (``scheduler``: a Dask scheduler address; ``address``: a Ray cluster address)."""

    name: str = "loky"
    jobs: int = 1
    scheduler: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise UserInputError(f"unknown backend {self.name!r}; choose among {', '.join(BACKENDS)}")
        if self.jobs < 1:
            raise UserInputError(f"--jobs must be at least 1, got {self.jobs}")
        if self.scheduler is not None and self.name != "dask":
            raise UserInputError("--scheduler goes with --backend dask")
        if self.address is not None and self.name != "ray":
            raise UserInputError("--address goes with --backend ray")

    @property
    def in_process(self) -> bool:
        """True when tasks run one after another in this process (loky with one job)."""
        return self.name == "loky" and self.jobs <= 1

    @property
    def streams_results(self) -> bool:
        """True when results reach the caller as each task finishes (not for Ray's joblib backend)."""
        return self.name != "ray"

    def describe(self) -> str:
        """One phrase for logs and summaries."""
        if self.name == "loky":
            return "this process" if self.jobs <= 1 else f"{self.jobs} local worker processes (loky)"
        where = self.scheduler if self.name == "dask" else self.address
        return f"{self.name} cluster at {where}" if where else f"{self.name} (default cluster)"


def require(backend: str) -> None:
    """Import the optional packages a backend needs; a missing one is one clear line."""
    try:
        if backend == "dask":
            import dask.distributed  # noqa: F401
        elif backend == "ray":
            import ray  # noqa: F401
            import ray.util.joblib  # noqa: F401
    except ImportError as exc:
        raise UserInputError(f"--backend {backend} needs {exc.name or backend}: {INSTALL_HINT[backend]}") from None


@contextlib.contextmanager
def joblib_backend(backend: Backend) -> Iterator[None]:
    """Inside this block, joblib's ``Parallel`` runs on ``backend`` (and joins its cluster)."""
    import joblib

    require(backend.name)
    if backend.name == "loky":
        with joblib.parallel_config(backend="loky", n_jobs=backend.jobs):
            yield
        return
    if backend.name == "dask":
        import dask.distributed

        created = None
        if backend.scheduler is not None:
            try:
                created = dask.distributed.Client(backend.scheduler, timeout="30s")
            except OSError as exc:
                raise UserInputError(f"cannot reach the Dask scheduler at {backend.scheduler}: {exc}") from None
        else:
            try:
                dask.distributed.get_client()
            except ValueError:
                raise UserInputError("--backend dask needs --scheduler ADDRESS (or a Client made in this "
                                     "process)") from None
        try:
            with joblib.parallel_config(backend="dask", n_jobs=-1):
                yield
        finally:
            if created is not None:
                created.close()
        return
    import ray
    from ray.util.joblib import register_ray

    register_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=backend.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"cannot join the Ray cluster at {backend.address}: {exc}") from None
    try:
        with joblib.parallel_config(backend="ray", n_jobs=-1):
            yield
    finally:
        if started:
            ray.shutdown()


def run_tasks(function: Callable[..., Any], tasks: Iterable[Sequence[Any]], backend: Backend) -> Iterator[Any]:
    """``function(*task)`` for every task, yielded in completion order, on ``backend``.

    ``function`` must be importable at the top level of a module (workers import it). Every task is
    dispatched on its own (no batching), so a lost worker costs the tasks it was running, no more."""
    tasks = list(tasks)
    if not tasks:
        return
    if backend.in_process:
        for task in tasks:
            yield function(*task)
        return
    import joblib

    with joblib_backend(backend):
        parallel = joblib.Parallel(batch_size=1, return_as="generator_unordered" if backend.streams_results
                                   else "list")
        yield from parallel(joblib.delayed(function)(*task) for task in tasks)


def worker_lost_errors() -> tuple[type[BaseException], ...]:
    """The exceptions with which the backends report a worker that died under a task."""
    from concurrent.futures.process import BrokenProcessPool

    errors: list[type[BaseException]] = [BrokenProcessPool]
    with contextlib.suppress(ImportError):
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        errors.append(TerminatedWorkerError)
    with contextlib.suppress(ImportError):
        from distributed.scheduler import KilledWorker

        errors.append(KilledWorker)
    with contextlib.suppress(ImportError):
        from ray.exceptions import WorkerCrashedError

        errors.append(WorkerCrashedError)
    return tuple(errors)


def run_isolating_crashes(function: Callable[..., tuple[int, Any]], tasks: Sequence[Sequence[Any]],
                          backend: Backend, on_crash: Callable[[int], Any]) -> Iterator[tuple[int, Any]]:
    """Like ``run_tasks`` for tasks whose first element is their position and whose result is
    ``(position, value)``; a task that kills its worker process does not stop the run.

    When a worker dies, the tasks that may have been running on it (the first ``2 * jobs`` not yet
    finished, joblib's dispatch window) are retried one at a time in a worker of their own; one that
    kills that worker too gets ``(position, on_crash(position))``. In-process runs have no such guard."""
    if backend.in_process:
        yield from run_tasks(function, tasks, backend)
        return
    lost = worker_lost_errors()
    by_position = {int(task[0]): task for task in tasks}
    left = list(by_position)
    window = 2 * max(backend.jobs, 2)
    while left:
        done: set[int] = set()
        try:
            for position, value in run_tasks(function, [by_position[p] for p in left], backend):
                done.add(position)
                yield position, value
            left = []
        except lost:
            left = [p for p in left if p not in done]
            suspects, left = left[:window], left[window:]
            alone = Backend(backend.name, max(2, backend.jobs), backend.scheduler, backend.address)
            for position in suspects:
                try:
                    yield next(iter(run_tasks(function, [by_position[position]], alone)))
                except lost:
                    yield position, on_crash(position)


def new_token() -> str:
    """A fresh key under which workers cache what they build once per run (e.g. a verifier)."""
    return uuid.uuid4().hex
