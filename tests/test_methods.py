"""The method registry: a method registered from outside is used by the estimator, the CLI and the experiments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from deepsade.artifact import ModelArtifact
from deepsade.baselines import CONSTRAINT_LOSSES
from deepsade.cli import main
from deepsade.errors import UserInputError
from deepsade.estimator import DeepSaDe
from deepsade.methods import (
    BASELINE,
    DEEPSADE,
    Method,
    TrainingJob,
    get_method,
    method_names,
    register,
    unregister,
)
from deepsade.network import SkipMLP
from deepsade.usecases import toy
from deepsade.usecases.experiment import ExperimentConfig, run_experiment

CALLS: list[TrainingJob] = []


def train_mean(job: TrainingJob) -> ModelArtifact:
    """A toy method: a network that ignores its input and predicts the training targets' mean."""
    CALLS.append(job)
    enc = job.train.encoding
    model = SkipMLP(len(enc.input_names), job.settings.hidden, len(enc.output_names), job.spec.mapped_features)
    with torch.no_grad():
        model.last.weight.zero_()
        model.last.bias.copy_(torch.as_tensor(job.train.targets, dtype=torch.float32).reshape(len(job.train.targets), -1)
                              .mean(dim=0))
    return ModelArtifact(model=model, encoding=enc, domain=job.train.domain, constraint_text=job.constraint_text,
                         method=job.method, training={"method": job.method, "toy": True},
                         certificate={"verdict": "none", "note": "no certificate: toy method"})


@pytest.fixture
def mean_method() -> Iterator[Method]:
    CALLS.clear()
    method = register(Method("mean", "predicts the training mean (a test toy)", certifies=False, train=train_mean))
    try:
        yield method
    finally:
        unregister("mean")


def test_builtin_registry_lists_every_method_once() -> None:
    assert method_names() == ("deepsade", "ffn", "reg", "sbr", "sl", "hardnet", "hcr", "polytope", "repair",
                              "scoreclamp")
    assert get_method("deepsade").certifies and get_method("deepsade").family == DEEPSADE
    baselines = [m for m in method_names() if get_method(m).family == BASELINE]
    assert baselines == list(CONSTRAINT_LOSSES)  # every registered baseline has its constraint loss
    assert not any(get_method(m).certifies for m in baselines)
    with pytest.raises(UserInputError, match="unknown method 'nope'; choose one of deepsade, ffn"):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(Method("ffn", "again", certifies=False, train=train_mean))
    with pytest.raises(ValueError, match="family"):
        Method("x", "bad family", certifies=False, train=train_mean, family="other")


def test_a_registered_method_trains_through_the_estimator(mean_method: Method) -> None:
    frame = toy.generate_regression(120, seed=1)
    model = DeepSaDe("deepsade/constraints/example_bounds.smt2", ["y"], method="mean", hidden=(4,), seed=0).fit(frame)
    assert len(CALLS) == 1 and CALLS[0].method == "mean" and CALLS[0].val is not None
    art = model.artifact_
    assert art is not None and art.method == "mean" and art.training["toy"]
    predicted = model.predict(frame)["predicted_y"].to_numpy()
    assert predicted.std() < 1e-9  # the toy's constant prediction, not a trained network
    unregister("mean")
    with pytest.raises(UserInputError, match="unknown method 'mean'"):
        DeepSaDe("deepsade/constraints/example_bounds.smt2", ["y"], method="mean").fit(frame)


def test_a_registered_method_is_a_cli_choice(mean_method: Method, tmp_path: Path) -> None:
    csv = tmp_path / "toy.csv"
    toy.generate_regression(120, seed=2).to_csv(csv, index=False)
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", str(csv), "--constraint", "deepsade/constraints/example_bounds.smt2",
                                       "--target", "y", "--method", "mean", "--hidden", "4", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    # the rows trained on exclude the validation rows, for a method that records nothing itself as well
    assert "trained mean on 108 rows (12 more held out for validation, 0 dropped" in result.output
    assert json.loads((out / "model.json").read_text())["method"] == "mean"
    assert len(CALLS) == 1
    unregister("mean")
    refused = CliRunner().invoke(main, ["train", str(csv), "--constraint", "deepsade/constraints/example_bounds.smt2",
                                        "--target", "y", "--method", "mean", "--out", str(tmp_path / "m2")])
    assert refused.exit_code == 2 and "'mean' is not one of" in refused.output


def test_a_registered_method_runs_in_the_experiments(mean_method: Method, tmp_path: Path) -> None:
    config = ExperimentConfig(usecase="TOY_REG", out=str(tmp_path), folds=1, methods=("ffn", "mean"), rows=120,
                              baseline_epochs=2, adi_sample=0, save_models=False, quiet=True)
    results = run_experiment(config, log=None)
    assert [r["method"] for r in results] == ["ffn", "mean"]
    mean = results[1]
    assert mean["status"] == "ok" and mean["epochs"] == 2 and mean["certificate"] == "none"
    assert len(CALLS) == 1 and CALLS[0].settings.epochs == 2  # a baseline-family method reads baseline_epochs
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs["method"]) == ["ffn", "mean"]
    report = (tmp_path / "report.md").read_text()
    assert "| TOY_REG | mean | 1 |" in report
