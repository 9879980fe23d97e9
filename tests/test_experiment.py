"""The use-case cross-validation runner and its reports, on the generators at tiny sizes.

What a user relies on: every DeepSaDe model the runner trains is certified and breaks the rule on no
test row; all methods see the same folds; a stopped run resumes without redoing finished folds; the
report puts our numbers beside the published ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deepsade import usecases
from deepsade.cli import main
from deepsade.errors import UserInputError
from deepsade.usecases.experiment import ExperimentConfig, make_folds, result_path, run_experiment
from deepsade.usecases.report import write_summary

# Tiny sizes: each use case end to end in a few seconds on 2 cores.
TINY_ROWS = {"UC1": 120, "UC2": 120, "UC3": 80, "UC4": 40, "UC5": 100}
# One baseline per use case that applies to its rule (the one the paper compares against).
BASELINE = {"UC1": "reg", "UC2": "sl", "UC3": "sbr", "UC4": "ffn", "UC5": "sl"}


def tiny_config(name: str, out: Path, **changes) -> ExperimentConfig:
    settings = dict(usecase=name, out=str(out), folds=1, methods=("deepsade", BASELINE[name]),
                    data_dir=str(out / "no-real-data"), rows=TINY_ROWS[name], epochs=1, baseline_epochs=2,
                    adi_sample=4, adi_timeout=5.0, solver_timeout=1.0, quiet=True)
    settings.update(changes)
    return ExperimentConfig(**settings)


@pytest.mark.parametrize("name", list(usecases.USECASES))
def test_usecase_end_to_end_on_its_generator(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    results = run_experiment(tiny_config(name, out), log=None)
    by_method = {r["method"]: r for r in results}
    assert set(by_method) == {"deepsade", BASELINE[name]}
    deepsade = by_method["deepsade"]
    assert deepsade["status"] == "ok"
    assert deepsade["certificate"] == "certified"
    assert deepsade["exact_check"] == "certified"
    assert deepsade["test"]["violating_rows"] == 0
    assert deepsade["train_violating_rows"] == 0
    for entry in deepsade["adi"]["per_epsilon"]:
        assert entry["counterexample"] == 0
    # every metric the use case reports was measured, on all rows and on the corrected ones
    for metric in usecases.get(name).metrics:
        assert deepsade["test"][metric] is not None
        assert f"{metric}_corrected" in deepsade["test"]
    # the same fold for both methods
    baseline = by_method[BASELINE[name]]
    assert (baseline["n_train"], baseline["n_val"], baseline["n_test"]) == (
        deepsade["n_train"], deepsade["n_val"], deepsade["n_test"])
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["method"]) == ["deepsade", BASELINE[name]]
    assert {"test.violating_rows", "adi_0.1.adi", "adi_0.01.adi", "certificate", "train_seconds"} <= set(runs)
    report = (out / "report.md").read_text()
    assert "published" in report and f"| {name} | deepsade |" in report
    assert (out / "val_loss.png").stat().st_size > 0
    if name == "UC3":
        assert (out / "tsne_hidden.png").is_file()
    if name == "UC5":
        assert (out / "lambda_test_loss.png").is_file()


def test_folds_are_seeded_disjoint_and_70_20_10() -> None:
    folds = make_folds(500, seed=3)
    again = make_folds(500, seed=3)
    tests = np.concatenate(folds.test)
    assert sorted(tests.tolist()) == list(range(500))  # every row is a test row exactly once
    for k in range(5):
        parts = [set(folds.train[k]), set(folds.val[k]), set(folds.test[k])]
        assert sum(map(len, parts)) == 500 and len(set.union(*parts)) == 500
        assert (len(parts[0]), len(parts[2]), len(parts[1])) == (350, 100, 50)
        assert np.array_equal(folds.train[k], again.train[k])
    assert not np.array_equal(make_folds(500, seed=4).test[0], folds.test[0])


def test_a_rerun_skips_finished_folds_and_refuses_changed_settings(tmp_path: Path) -> None:
    config = tiny_config("UC2", tmp_path, methods=("deepsade", "ffn"))
    run_experiment(config, log=None)
    kept, removed = result_path(tmp_path, 1, "deepsade"), result_path(tmp_path, 1, "ffn")
    kept_text = kept.read_text()
    removed.unlink()  # as if the run had stopped before ffn finished

    lines: list[str] = []
    run_experiment(tiny_config("UC2", tmp_path, methods=("deepsade", "ffn"), quiet=False), log=lines.append)
    assert kept.read_text() == kept_text  # not retrained
    assert any("deepsade: already finished, skipped" in line for line in lines)
    assert removed.is_file() and len(pd.read_csv(tmp_path / "runs.csv")) == 2

    # other DeepSaDe settings into the same folder would overwrite the stored fold (issue: a committed
    # 50-epoch result replaced by a 2-epoch one): refused, nothing touched
    ffn_text = removed.read_text()
    with pytest.raises(UserInputError, match="holds results made with other settings.*fold 1 deepsade"):
        run_experiment(tiny_config("UC2", tmp_path, methods=("deepsade", "ffn"), epochs=2), log=None)
    with pytest.raises(UserInputError, match="other settings"):
        run_experiment(tiny_config("UC2", tmp_path, methods=("deepsade",), paper=True), log=None)
    assert kept.read_text() == kept_text and removed.read_text() == ffn_text
    # a setting only DeepSaDe reads does not clash with a baseline's stored result
    lines.clear()
    run_experiment(tiny_config("UC2", tmp_path, methods=("ffn",), epochs=2, quiet=False), log=lines.append)
    assert any("ffn: already finished, skipped" in line for line in lines)


def test_paper_results_keep_the_key_they_had_before_the_levers(tmp_path: Path) -> None:
    paper = tiny_config("UC2", tmp_path, methods=("deepsade", "ffn"), paper=True)
    default = tiny_config("UC2", tmp_path, methods=("deepsade", "ffn"))
    assert paper.result_key("deepsade") != default.result_key("deepsade")
    assert paper.result_key("ffn") == default.result_key("ffn")  # baselines do not read the trainer


def test_a_baseline_that_does_not_apply_is_recorded_not_fatal(tmp_path: Path) -> None:
    config = tiny_config("UC3", tmp_path, methods=("reg",), adi_sample=0)
    (result,) = run_experiment(config, log=None)
    assert result["status"] == "not applicable" and "reg" in result["reason"]
    assert "not applicable" in (tmp_path / "report.md").read_text()


def test_summary_over_usecases_lists_ours_beside_published(tmp_path: Path) -> None:
    run_experiment(tiny_config("UC2", tmp_path / "UC2", methods=("deepsade", "sbr")), log=None)
    summary = write_summary(tmp_path, command="python scripts/reproduce.py --usecases UC2").read_text()
    assert "python scripts/reproduce.py --usecases UC2" in summary
    assert "| UC2 | deepsade | 1 |" in summary
    assert f"{usecases.get('UC2').published['deepsade'].metrics['accuracy']:g}" in summary
    assert "| UC2 | sl | 0 | not run |" in summary  # a published method we did not run stays visible


def test_cli_usecase_list_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["usecase", "list"])
    assert listed.exit_code == 0
    for name in usecases.USECASES:
        assert name in listed.output
    bad = runner.invoke(main, ["usecase", "run", "UC9", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown use case" in bad.output
    bad = runner.invoke(main, ["usecase", "run", "UC2", "--methods", "deepsade,magic", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "magic" in bad.output


def test_cli_usecase_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "UC2"
    result = CliRunner().invoke(main, [
        "usecase", "run", "UC2", "--data", str(tmp_path / "none"), "--folds", "1", "--methods", "deepsade",
        "--rows", "100", "--epochs", "1", "--adi-sample", "3", "--out", str(out), "--no-models"])
    assert result.exit_code == 0, result.output
    assert "UC2 fold 1 deepsade" in result.output and "certified" in result.output
    assert (out / "report.md").is_file() and not (out / "models").exists()
    assert "epochs = 1" in (out / "report.md").read_text()  # overrides are recorded


@pytest.mark.slow
def test_jobs_run_folds_in_parallel_processes(tmp_path: Path) -> None:
    config = tiny_config("UC2", tmp_path, folds=2, methods=("deepsade", "ffn"), jobs=2)
    results = run_experiment(config, log=None)
    assert sorted((r["fold"], r["method"]) for r in results) == [
        (1, "deepsade"), (1, "ffn"), (2, "deepsade"), (2, "ffn")]
    assert all(r["certificate"] == "certified" for r in results if r["method"] == "deepsade")


def test_constructions_train_for_deepsades_epochs_and_their_results_are_keyed_by_them():
    """``auto`` trains a construction in DeepSaDe's place, so at the paper's settings it gets DeepSaDe's epochs
    (as ``deepsade train`` gives it ``--epochs``), not the baselines' 400."""
    from deepsade.usecases.config import ExperimentConfig, reads_deepsade_epochs

    assert reads_deepsade_epochs("scoreclamp") and reads_deepsade_epochs("polytope") and reads_deepsade_epochs("deepsade")
    assert not reads_deepsade_epochs("ffn") and not reads_deepsade_epochs("sl")
    base = ExperimentConfig(usecase="UC2", out="x")
    more_epochs = ExperimentConfig(usecase="UC2", out="x", epochs=7)
    more_baseline = ExperimentConfig(usecase="UC2", out="x", baseline_epochs=7)
    assert base.result_key("scoreclamp") != more_epochs.result_key("scoreclamp")
    assert base.result_key("scoreclamp") == more_baseline.result_key("scoreclamp")
    assert base.result_key("ffn") == more_epochs.result_key("ffn") != more_baseline.result_key("ffn")
