"""scripts/attack_certified.py: the attack finds a violation in a deliberately broken model and none in a
certified one; its robustness agrees with the rule's exact truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import z3

from tests.conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "scripts"))
from attack_certified import AttackSettings, Target, attack, robustness, sample_box  # noqa: E402

from deepsade import artifact as artifact_io  # noqa: E402
from deepsade.baselines.formula import Batch, compile_crisp  # noqa: E402

SMALL = AttackSettings(samples=4000, starts=64, steps=30, exact_checks=8, seed=0)


@pytest.fixture(scope="module")
def certified_toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small certified model: a loan rule with a two-input premise, a one-hot input and an integer column."""
    root = tmp_path_factory.mktemp("attack")
    rng = np.random.default_rng(0)
    n = 160
    income = rng.uniform(1000, 20000, n).round()
    credit = rng.integers(0, 2, n).astype(float)
    frame = pd.DataFrame({"ApplicantIncome": income, "Credit_History": credit,
                          "Property_Area": rng.choice(["Urban", "Rural"], n),
                          "Loan_Status": np.where((credit == 1) | (income > 9000), "Y", "N")})
    frame.to_csv(root / "loan.csv", index=False)
    (root / "loan.smt2").write_text(
        "(declare-const ApplicantIncome Real)\n(declare-const Credit_History Real)\n(declare-const Loan_Status Real)\n"
        "(assert (=> (and (< ApplicantIncome 5000) (= Credit_History 0)) (< Loan_Status 0)))\n")
    done = run_cli("train", str(root / "loan.csv"), "--constraint", str(root / "loan.smt2"), "--target", "Loan_Status",
                   "--positive", "Y", "--hidden", "8,8", "--epochs", "2", "--seed", "1", "--quiet",
                   "--method", "deepsade",  # the tests break the last layer: score clamps (auto) would still hold
                   "--out", str(root / "model"))
    assert done.returncode == 0, done.stderr
    return root / "model"


def test_a_certified_model_is_not_broken(certified_toy: Path) -> None:
    target = Target.load(certified_toy)
    assert target.art.certificate["verdict"] == "certified"
    rows = attack(target, SMALL)
    assert len(rows) == 1
    row = rows[0]
    assert row["samples_in_premise"] > 0 and row["pgd_in_premise"] > 0  # the attack did reach the premise region
    assert row["sample_violations_raw"] == row["pgd_violations_raw"] == row["exact_violations"] == 0
    assert row["best_violation"] < 0


def test_a_broken_model_is_caught_and_confirmed_exactly(certified_toy: Path, tmp_path: Path) -> None:
    art = artifact_io.load(certified_toy)
    with torch.no_grad():  # the score says 'approve' everywhere: the rule demands 'deny' in its premise region
        art.model.last.weight.zero_()
        art.model.last.bias.fill_(3.0)
    artifact_io.save(art, tmp_path / "broken")
    rows = attack(Target.load(tmp_path / "broken"), SMALL)
    row = rows[0]
    assert row["exact_violations"] > 0
    assert row["pgd_violations_raw"] > 0 and row["best_violation"] == pytest.approx(3.0)
    example = json.loads(row["example"])
    assert example["ApplicantIncome"] < 5000 and example["Credit_History"] == 0


def test_pgd_finds_a_thin_premise_region_that_sampling_misses(certified_toy: Path, tmp_path: Path) -> None:
    """The score is positive only on a sliver of the premise region: PGD must walk there."""
    art = artifact_io.load(certified_toy)
    income = art.encoding.input_names.index("ApplicantIncome")
    mapped = art.model.mapped_features.tolist()
    with torch.no_grad():  # score = 1 - 2000 * scaled income: positive only at the lowest incomes
        art.model.last.weight.zero_()
        art.model.last.weight[0, art.model.hidden_sizes[-1] + mapped.index(income)] = -2000.0
        art.model.last.bias.fill_(1.0)
    artifact_io.save(art, tmp_path / "sliver")
    row = attack(Target.load(tmp_path / "sliver"), AttackSettings(samples=200, face_share=0.0, corner_share=0.0,
                                                                   starts=16, steps=40, exact_checks=4, seed=3))[0]
    assert row["sample_violations_raw"] == 0
    assert row["pgd_violations_raw"] > 0 and row["exact_violations"] > 0


def test_robustness_has_the_sign_of_the_rule() -> None:
    x0, x1, y0 = z3.Reals("x!0 x!1 y!0")
    rules = [z3.Implies(z3.And(x0 > 0.5, x1 <= 0.3), y0 < 2 * x0),
             z3.Or(y0 >= x1, z3.Not(x0 == x1)), z3.If(x0 > x1, y0 > 0, y0 < -1)]
    rng = np.random.default_rng(0)
    batch = Batch(torch.as_tensor(rng.random((500, 2))), torch.as_tensor(rng.normal(size=(500, 1))))
    for rule in rules:
        rho = robustness(rule)(batch)
        truth = compile_crisp(rule)(batch)
        clear = rho.abs() > 1e-9
        assert torch.equal((rho > 0)[clear], truth[clear])


def test_the_sample_has_faces_and_corners() -> None:
    low, high = np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0])
    points = sample_box(low, high, 1000, face_share=0.2, corner_share=0.1, rng=np.random.default_rng(0))
    on_bound = (points == low) | (points == high)
    assert on_bound[:200].sum(axis=1).min() >= 1
    assert on_bound[200:300].all()
    assert ((points >= low) & (points <= high)).all()
