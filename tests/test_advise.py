"""``deepsade advise``: every rule file that ships is classified, method by method, with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepsade.constructions.advise import advise
from deepsade.ingest import prepare
from deepsade.spec import parse_spec
from deepsade.usecases import ALL_CASES
from tests.conftest import REPO, run_cli

# rule file -> (whether HardNet-Aff fits, a phrase of the reason when it does not)
EXPECTED_HARDNET = {
    "uc1_expenses.smt2": (True, "HardNet-Aff projection"),
    "example_bounds.smt2": (True, "clamp per output"),
    "uc2_loan.smt2": (False, "assert 1 has a premise"),
    "uc3_music.smt2": (False, "assert 1 has a premise"),
    "example_implication.smt2": (False, "assert 1 has a premise"),
    "uc4_digits.smt2": (False, "assert 1 has a nonlinear term"),
    "uc5_sushi.smt2": (False, "assert 1"),
}

# rule file -> (whether HCR fits, a phrase of the reason): no shipped rule is a polytope free of the inputs
EXPECTED_HCR = {
    "uc1_expenses.smt2": (False, "does not depend on the inputs; assert 1 mentions an input"),
    "example_bounds.smt2": (False, "does not depend on the inputs"),
    "uc2_loan.smt2": (False, "assert 1 has a premise"),
    "uc3_music.smt2": (False, "assert 1 has a premise"),
    "example_implication.smt2": (False, "assert 1 has a premise"),
    "uc4_digits.smt2": (False, "assert 1 has a nonlinear term"),
    "uc5_sushi.smt2": (False, "assert 1"),
}


def _rule_files() -> list[Path]:
    folders = [REPO / "deepsade" / "constraints"]  # the shipped rule files
    return sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.smt2"))


def _case_for(path: Path):
    return next((c for c in ALL_CASES.values() if c.constraint_path.resolve() == path.resolve()), None)


@pytest.mark.parametrize("path", _rule_files(), ids=lambda p: p.name)
def test_every_rule_file_is_classified(path: Path):
    case = _case_for(path)
    assert case is not None, f"{path.name}: no use case generates data for it; add its expectation here"
    frame = case.generate(80, 0)
    data = prepare(frame, list(case.targets), task=case.task, positive=case.positive)
    answers = {a.method: a for a in advise(parse_spec(path, data.encoding), data.encoding, data.domain)}
    assert answers["deepsade"].guarantees
    for name in ("ffn", "reg", "sbr", "sl"):
        assert not answers[name].guarantees and answers[name].reason.startswith("no guarantee")
    fits, phrase = EXPECTED_HARDNET[path.name]
    assert answers["hardnet"].guarantees is fits
    assert phrase in answers["hardnet"].reason
    fits, phrase = EXPECTED_HCR[path.name]
    assert answers["hcr"].guarantees is fits
    assert phrase in answers["hcr"].reason and "not available" not in answers["hcr"].reason


def test_advise_cli_lists_both_groups(tmp_path: Path):
    case = ALL_CASES["UC1"]
    csv = tmp_path / "uc1.csv"
    case.generate(80, 0).to_csv(csv, index=False)
    targets = [arg for t in case.targets for arg in ("--target", t)]
    result = run_cli("advise", str(case.constraint_path), str(csv), *targets)
    assert result.returncode == 0, result.stderr
    can, cannot = result.stdout.split("cannot guarantee it:")
    assert "hardnet" in can and "deepsade" in can and "ffn" in cannot
    as_json = json.loads(run_cli("advise", str(case.constraint_path), str(csv), *targets, "--json").stdout)
    assert {a["method"] for a in as_json if a["guarantees"]} == {"deepsade", "hardnet", "polytope"}


def test_advise_bad_rule_file_exits_2(tmp_path: Path):
    csv = tmp_path / "d.csv"
    ALL_CASES["TOY_REG"].generate(40, 0).to_csv(csv, index=False)
    rules = tmp_path / "r.smt2"
    rules.write_text("(declare-const nope Real)(assert (> nope 0.0))")
    result = run_cli("advise", str(rules), str(csv), "--target", "y")
    assert result.returncode == 2 and "nope" in result.stderr
