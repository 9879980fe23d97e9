"""Scale-out through joblib: the same answers in this process, in loky workers and on a Dask cluster.

What a user relies on: a run on a cluster gives exactly the results of a local run (weights, metrics,
AdI outcomes); a missing extra is one clear line; a task that kills its worker costs that task only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deepsade.artifact import load
from deepsade.errors import UserInputError
from deepsade.parallel import Backend, require, run_isolating_crashes, run_tasks
from deepsade.usecases import toy
from deepsade.usecases.experiment import ExperimentConfig, run_experiment
from deepsade.verification.adi import adversity_index, instances_from_frame
from tests.parallel_tasks import die_on_three, square


def test_backend_options_are_checked() -> None:
    with pytest.raises(UserInputError, match="unknown backend"):
        Backend("spark")
    with pytest.raises(UserInputError, match="--scheduler goes with --backend dask"):
        Backend("loky", scheduler="tcp://x:1")
    with pytest.raises(UserInputError, match="--address goes with --backend ray"):
        Backend("dask", address="ray://x:1")
    with pytest.raises(UserInputError, match="--jobs"):
        Backend("loky", 0)


def test_missing_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.startswith("dask"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(UserInputError, match=r"pip install 'deepsade\[dask\]'"):
        require("dask")


def test_loky_runs_every_task_and_isolates_a_crash() -> None:
    assert sorted(run_tasks(square, [(i,) for i in range(6)], Backend("loky", 2))) == [0, 1, 4, 9, 16, 25]
    got = dict(run_isolating_crashes(die_on_three, [(i,) for i in range(6)], Backend("loky", 2),
                                     on_crash=lambda i: "crashed"))
    assert got == {0: 0, 1: 10, 2: 20, 3: "crashed", 4: 40, 5: 50}


# ---- a real dask.distributed cluster ---------------------------------------------------------------------


def _dask_or_skip():
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Dask test: install 'deepsade[dask]' (scripts/setup.sh does)")
        pytest.skip("dask.distributed is not installed (pip install 'deepsade[dask]')")
    return LocalCluster


_TIMING = ("seconds", "wall")


def _comparable(value: Any) -> Any:
    """A stored result without what legitimately differs between runs: timings and the output folder."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()
                if not any(word in k for word in _TIMING) and k != "out"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _weights_hash(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "weights.safetensors").read_bytes()).hexdigest()


def test_dask_cluster_gives_the_local_results(tmp_path: Path) -> None:
    LocalCluster = _dask_or_skip()

    def config(out: Path) -> ExperimentConfig:
        return ExperimentConfig(usecase="TOY_REG", out=str(out), folds=1, methods=("deepsade", "ffn"), rows=80,
                                epochs=2, baseline_epochs=3, adi_sample=4, adi_timeout=5.0, solver_timeout=1.0,
                                quiet=True)

    local = run_experiment(config(tmp_path / "local"), log=None, write_report=False)
    frame = toy.generate_regression(60, seed=3)
    ffn = load(tmp_path / "local" / "models" / "fold1_ffn")
    _, inputs, _ = instances_from_frame(frame, ffn.encoding)
    adi_local = adversity_index(ffn, inputs, [0.1, 0.02], timeout=5.0, progress=False)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = Backend("dask", scheduler=cluster.scheduler_address)
        remote = run_experiment(config(tmp_path / "dask"), log=None, write_report=False, backend=on_dask)
        adi_dask = adversity_index(ffn, inputs, [0.1, 0.02], timeout=5.0, progress=False, backend=on_dask)

    assert [(r["fold"], r["method"]) for r in remote] == [(1, "deepsade"), (1, "ffn")]
    assert [_comparable(r) for r in remote] == [_comparable(r) for r in local]
    for method in ("deepsade", "ffn"):
        assert _weights_hash(tmp_path / "dask" / "models" / f"fold1_{method}") == \
            _weights_hash(tmp_path / "local" / "models" / f"fold1_{method}")
    assert local[0]["certificate"] == "certified" and local[0]["adi"]["per_epsilon"][0]["counterexample"] == 0
    columns = [c for c in adi_local.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(adi_dask.table[columns], adi_local.table[columns])
    assert [e["adi"] for e in adi_dask.summary["epsilons"]] == [e["adi"] for e in adi_local.summary["epsilons"]]
    assert np.isfinite(adi_local.table["seconds"]).all()
