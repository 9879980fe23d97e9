"""Certified training: every task type certifies, dense sampling finds no violation where an
unconstrained network on the same problem has some, and the certificate catches altered weights."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from deepsade import artifact
from deepsade.estimator import DeepSaDe
from deepsade.ingest import prepare
from deepsade.losses import data_loss
from deepsade.network import SkipMLP
from deepsade.spec import parse_spec_text
from tests.conftest import run_cli


def _frame(task: str, n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.uniform(0, 10, n), rng.uniform(-5, 5, n), rng.uniform(0, 1, n)
    base = {"x1": x1, "x2": x2, "x3": x3}
    if task == "regression":  # labels break y <= x1 almost everywhere
        return (pd.DataFrame({**base, "y": 1.5 * x1 + 0.3 * x2 + 1}),
                "(declare-const x1 Real)(declare-const y Real)(assert (<= y x1))", ["y"], {})
    if task == "binary":  # labels approve many low-x1 applicants: the rule denies them all
        label = np.where(x2 > -1, "yes", "no")
        return (pd.DataFrame({**base, "label": label}),
                "(declare-const x1 Real)(declare-const label Real)(assert (=> (< x1 4) (< label 0)))",
                ["label"], {"positive": "yes"})
    if task == "multiclass":  # class c is common where the rule forbids it
        cls = np.where(x1 > 6, "a", np.where(x2 > 2, "b", "c"))
        return (pd.DataFrame({**base, "cls": cls}),
                "(declare-const x3 Real)(declare-const |cls=a| Real)(declare-const |cls=b| Real)"
                "(declare-const |cls=c| Real)"
                "(assert (=> (> x3 0.5) (or (> |cls=a| |cls=c|) (> |cls=b| |cls=c|))))", ["cls"], {})
    labels = {"l1": (x1 > 3).astype(int), "l2": (x2 > -3).astype(int), "l3": (x3 > 0.2).astype(int)}
    return (pd.DataFrame({**base, **labels}),
            "(declare-const l1 Real)(declare-const l2 Real)(declare-const l3 Real)"
            "(assert (<= (+ (ite (> l1 0) 1 0) (ite (> l2 0) 1 0) (ite (> l3 0) 1 0)) 2))", list(labels), {})


def _domain_samples(data, n: int = 100_000, seed: int = 1) -> np.ndarray:
    """Uniform points of the scaled domain box plus all its corners."""
    low, high = data.domain.scaled(data.encoding)
    rng = np.random.default_rng(seed)
    inside = low + (high - low) * rng.random((n, len(low)))
    corners = np.array(list(itertools.product(*zip(low, high))))
    return np.vstack([inside, corners])


def _violations(model: SkipMLP, spec, points: np.ndarray) -> int:
    with torch.no_grad():
        outputs = model(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    return int((~spec.evaluate_scaled(points, outputs).all(axis=1)).sum())


def _unconstrained(data, hidden, mapped, epochs: int = 60, seed: int = 0) -> SkipMLP:
    torch.manual_seed(seed)
    model = SkipMLP(len(data.encoding.input_names), hidden, len(data.encoding.output_names), mapped)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = torch.as_tensor(data.inputs, dtype=torch.float32), torch.as_tensor(data.targets)
    for _ in range(epochs):
        optimizer.zero_grad()
        data_loss(data.encoding.task, model(x), y).backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass", "multilabel"])
def test_certified_model_has_no_violation_where_unconstrained_has_some(task):
    frame, text, targets, kwargs = _frame(task)
    # CEGIS tasks (multiclass, multilabel) take one short epoch at one margin: each MaxSMT call there
    # grows with the counterexample points, and the test is about the guarantee, not accuracy
    cegis = task in ("multiclass", "multilabel")
    estimator = DeepSaDe(text, targets, hidden=(8, 6), epochs=1 if cegis else 2, batch_size=40 if cegis else 10,
                         margins=(0.0,) if cegis else (0.0, 1.0, 2.0), solver_timeout=3.0, seed=0,
                         **kwargs).fit(frame)
    assert estimator.certificate["verdict"] == "certified"
    data = prepare(frame, targets, **kwargs)
    spec = parse_spec_text(text, data.encoding)
    points = _domain_samples(data)
    assert _violations(estimator.artifact_.model, spec, points) == 0
    free = _unconstrained(data, (8, 6), spec.mapped_features)
    assert _violations(free, spec, points) > 0  # the sampling can find violations: the test can fail


def test_contradictory_constraints_exit_2(tmp_path, monkeypatch):
    frame, _, targets, _ = _frame("regression", n=60)
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    rule = tmp_path / "c.smt2"
    rule.write_text("(declare-const x1 Real)(declare-const y Real)(assert (<= y (- x1 1)))(assert (>= y x1))")
    args = ["train", str(csv), "--constraint", str(rule), "--target", "y", "--epochs", "1", "--hidden", "4",
            "--out", str(tmp_path / "m"), "--quiet", "--method", "deepsade"]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "the rule cannot hold: asserts 1 and 2 contradict each other" in result.stderr  # before training
    assert not (tmp_path / "m").exists()
    # a contradiction the pairwise search does not find (it searches pairs only): the trainer's own check
    from click.testing import CliRunner

    import deepsade.conflicts
    from deepsade.cli import main

    monkeypatch.setattr(deepsade.conflicts, "find_conflicts", lambda *a, **k: [])
    unsearched = CliRunner().invoke(main, args)
    assert unsearched.exit_code == 2 and "cannot all hold on the domain" in unsearched.output
    assert not (tmp_path / "m").exists()


def test_rules_that_leave_less_room_than_the_margin_say_so(tmp_path):
    # 0 <= y <= x1 holds exactly, but where x1 is near 0 it leaves y less room than the certificate's margin
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 10.0, size=(60, 3))
    x[0, 0] = 1e-3
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": 0.4 * x[:, 0]})
    csv, rule = tmp_path / "d.csv", tmp_path / "c.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text("(declare-const x1 Real)(declare-const y Real)(assert (and (>= y 0.0) (<= y x1)))")
    args = ["train", str(csv), "--constraint", str(rule), "--target", "y", "--epochs", "1", "--hidden", "4",
            "--quiet"]
    result = run_cli(*args, "--out", str(tmp_path / "m"))
    assert result.returncode == 2, result.stderr
    assert "less room than that" in result.stderr and "lower --margin" in result.stderr
    assert "contradict" not in result.stderr
    assert run_cli(*args, "--margin", "1e-6", "--out", str(tmp_path / "m2")).returncode == 0  # the advice works
    below = run_cli(*args, "--margin", "1e-7", "--out", str(tmp_path / "m3"))
    assert below.returncode == 2 and "policy minimum" in below.stderr  # certify would refuse such a model


def test_train_predict_certify_and_altered_weight(tmp_path):
    frame, text, targets, kwargs = _frame("binary", n=120)
    csv, rule, out = tmp_path / "d.csv", tmp_path / "rule.smt2", tmp_path / "model"
    frame.to_csv(csv, index=False)
    rule.write_text(text)
    result = run_cli("train", str(csv), "--constraint", str(rule), "--target", "label", "--positive", "yes",
                     "--hidden", "6,4", "--epochs", "2", "--batch-size", "10", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "certificate: CERTIFIED" in result.stdout
    fresh = frame.copy()
    fresh.loc[0, "x1"] = 50.0  # outside the domain box
    predicted = run_cli("predict", str(out), str(csv), "--out", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert set(table["predicted_label"]) <= {"yes", "no"} and table["in_domain"].all()
    assert (table.loc[frame["x1"] < 4, "predicted_label"] == "no").all()
    assert run_cli("certify", str(out)).returncode == 0
    # alter one weight of the last layer: the certificate no longer covers these weights
    tensors = load_file(str(out / artifact.WEIGHTS_FILE))
    tensors["last.bias"] = tensors["last.bias"] + 0.5
    save_file(tensors, str(out / artifact.WEIGHTS_FILE))
    checked = run_cli("certify", str(out))
    assert checked.returncode == 1
    assert "altered" in checked.stderr
    warned = run_cli("predict", str(out), str(csv))
    assert "do NOT match its certificate" in warned.stderr


def test_polyhedral_rules_start_without_the_solver(monkeypatch):
    """The first weights are a projection of the random ones, never z3's first model (which depends on what
    z3 did before in the process), so the same run gives the same network whatever ran before it."""
    import hashlib

    import z3

    from deepsade.spec import parse_spec
    from deepsade.training import DeepSaDeTrainer, TrainSettings
    from deepsade.usecases import uc3_music

    def no_solver(*args, **kwargs):
        raise AssertionError("the solver was called")

    monkeypatch.setattr(DeepSaDeTrainer, "solve_last_layer", no_solver)
    data = prepare(uc3_music.generate(300, 0), list(uc3_music.TARGETS), task=uc3_music.TASK)
    spec = parse_spec(str(uc3_music.CASE.constraint_path), data.encoding)

    def fingerprint() -> str:
        trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(20, 10), epochs=2, batch_size=5))
        assert not trainer.satisfied(*_last_layer_of(trainer), trainer.box())  # the random weights break the rule
        result = trainer.fit()
        return hashlib.sha256(result.model.last.weight.detach().numpy().tobytes()).hexdigest()

    first = fingerprint()
    for i in range(200):
        solver = z3.Solver()
        x = z3.Real(f"q{i}")
        solver.add(x * x > i, x < 3)
        solver.check()
    assert fingerprint() == first


def _last_layer_of(trainer) -> tuple[np.ndarray, np.ndarray]:
    return (trainer.model.last.weight.detach().double().numpy(), trainer.model.last.bias.detach().double().numpy())
