"""Scale-out through joblib: the same answers in this process, in loky workers and on a Dask cluster.

What a user relies on: a run on a cluster gives exactly the results of a local run (weights, metrics,
AdI outcomes); a missing extra is one clear line; a task that kills its worker costs that task only.
"""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
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


# ---- verify: one task per assert ---------------------------------------------------------------------------

TWO_ASSERTS = ("(declare-const x1 Real)\n(declare-const y Real)\n(assert (<= y x1))\n(assert (>= y (- 1.0)))\n")


def test_verify_per_assert_on_workers_agrees_with_one_search() -> None:
    from deepsade.verification import Status, verify_domain
    from deepsade.verification.per_assert import verify_domain_per_assert
    from tests.test_verify import regression_frame, safe_by_construction, trained_violator

    frame = regression_frame(120)
    two_workers = Backend("loky", 2)
    for artifact, expected in ((safe_by_construction(frame), Status.VERIFIED),
                               (trained_violator(frame), Status.COUNTEREXAMPLE)):
        artifact.constraint_text = TWO_ASSERTS
        single, _ = verify_domain(artifact, engine="z3", timeout=20, presample=0)
        split, verifier = verify_domain_per_assert(artifact, engine="z3", timeout=20, presample=0,
                                                   backend=two_workers)
        assert single.status is split.status is expected
        if expected is Status.COUNTEREXAMPLE:  # a real break, confirmed in exact arithmetic
            assert 0 in split.broken and verifier.broken_exact([Fraction(float(v)) for v in split.point])


def test_sweep_runs_each_combination_in_its_own_folder_and_resumes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deepsade.cli import main

    args = ["usecase", "run", "TOY_BIN", "--out", str(tmp_path), "--folds", "1", "--methods", "ffn",
            "--rows", "60", "--baseline-epochs", "2", "--adi-sample", "0", "--no-models", "--quiet",
            "--seeds", "0,1", "--grid", "lr=0.05,0.1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["seed0_lr0.05", "seed0_lr0.1", "seed1_lr0.05", "seed1_lr0.1"]
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert sorted(zip(sweep["sweep.seed"], sweep["sweep.lr"], strict=True)) == [(0, 0.05), (0, 0.1), (1, 0.05), (1, 0.1)]
    stored = json.loads((tmp_path / "seed1_lr0.1" / "folds" / "fold1_ffn.json").read_text())
    assert stored["settings"]["lr"] == 0.1 and stored["config"]["seed"] == 1
    # the models differ across the grid (lr reached the training), and a rerun redoes nothing
    losses = {tuple(r) for r in sweep[["sweep.seed", "sweep.lr", "test_loss"]].itertuples(index=False)}
    assert len({loss for _, _, loss in losses}) == 4
    again = CliRunner().invoke(main, [a for a in args if a != "--quiet"])
    assert again.exit_code == 0 and again.output.count("already finished, skipped") == 4


@pytest.mark.slow
def test_ray_backend_runs_every_task() -> None:
    """Ray is not among the CI extras (a large install): skipped without it, run with -m slow where it is."""
    pytest.importorskip("ray")
    assert sorted(run_tasks(square, [(i,) for i in range(5)], Backend("ray"))) == [0, 1, 4, 9, 16]
