"""The price-of-the-guarantee benchmark: its problems match their rule files, its split is seeded, and
its "done means" checks pass and fail where the issue's thresholds say."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_price import constructions_section, parse_args, split_rows, summarise  # noqa: E402
from price_problems import PROBLEMS  # noqa: E402

DECLARED = re.compile(r"\(declare-const\s+(\|[^|]+\||\S+)\s+Real\)")


def test_there_are_ten_problems_or_more_with_the_kinds_the_issue_asks_for() -> None:
    covers = " ".join(c for p in PROBLEMS.values() for c in p.covers)
    assert len(PROBLEMS) >= 10
    for kind in ("premise -> class (binary)", "class exclusion", "premise -> bound", "output range everywhere",
                 "sum at most an input", "fraction of another", "multi-output", "one-hot premise", "thin slab",
                 "multi-label", "product of an input and an output", "coupling inputs nonlinearly"):
        assert kind in covers, kind
    assert sum(p.general_path for p in PROBLEMS.values()) >= 2


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_name_in_a_rule_is_a_column_a_one_hot_value_or_a_class(name: str) -> None:
    problem = PROBLEMS[name]
    frame = problem.build()
    assert set(problem.targets) <= set(frame.columns)
    names = [n.strip("|") for n in DECLARED.findall(problem.rule_file.read_text())]
    assert names
    for declared in names:
        if "=" in declared:
            column, value = declared.split("=", 1)
            assert column in frame.columns and value in set(frame[column].astype(str)), declared
        else:
            assert declared in frame.columns, declared
    assert not frame.isna().any().any()


def test_the_split_is_seeded_disjoint_and_three_to_one() -> None:
    frame = pd.DataFrame({"a": np.arange(100)})
    train, test = split_rows(frame, seed=3)
    again, _ = split_rows(frame, seed=3)
    other, _ = split_rows(frame, seed=4)
    assert (len(train), len(test)) == (75, 25)
    assert set(train["a"]).isdisjoint(test["a"])
    assert train["a"].tolist() == again["a"].tolist() != other["a"].tolist()


def run_row(problem: str, task: str, deepsade: float, ffn: float, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "problem": problem, "seed": 1, "task": task, "metric": "mse" if task == "regression" else "accuracy",
        "general_path": False, "deepsade_train_exit": 0, "ffn_train_exit": 0, "deepsade_quality": deepsade,
        "ffn_quality": ffn, "deepsade_certificate": "certified", "deepsade_violations": 0,
        "deepsade_violations_in_domain": 0, "ffn_violations": 0, "deepsade_train_s": 2.0, "ffn_train_s": 1.0,
        "time_ratio": 2.0, "deepsade_majority_share": 0.6, "true_majority_share": 0.6,
    }
    row.update(extra)
    return row


def test_done_means_thresholds() -> None:
    runs = pd.DataFrame([
        run_row("close", "binary", 0.945, 0.96),  # -1.5 pp: within 2 points
        run_row("far", "binary", 0.40, 0.96),  # -56 pp
        run_row("mse_ok", "regression", 1.05, 1.0),
        run_row("mse_bad", "regression", 1.2, 1.0),
        run_row("one_class", "binary", 0.96, 0.96, deepsade_majority_share=1.0),
        run_row("slow", "binary", 0.96, 0.96, time_ratio=9.0),
        run_row("breaks", "binary", 0.96, 0.96, deepsade_violations_in_domain=1, deepsade_violations=1),
    ])
    summary = summarise(runs).set_index("problem")
    assert summary.loc["close", "done"] and summary.loc["mse_ok", "done"]
    assert not summary.loc["far", "ok_quality"] and summary.loc["far", "gap"] == pytest.approx(-56.0)
    assert not summary.loc["mse_bad", "ok_quality"] and summary.loc["mse_bad", "gap"] == pytest.approx(1.2)
    assert not summary.loc["one_class", "ok_not_single_class"] and not summary.loc["one_class", "done"]
    assert not summary.loc["slow", "ok_time"]
    assert not summary.loc["breaks", "ok_certified"]


def test_constructions_get_a_row_or_the_reason_they_do_not_apply() -> None:
    runs = pd.DataFrame([
        {"problem": "solar_plant", "seed": 1, "deepsade_quality": 22000.0, "ffn_quality": 520.0,
         "hardnet_train_exit": 2, "hardnet_not_applicable": "HardNet-Aff needs the rows of A to be linearly independent",
         "hcr_train_exit": 0, "hcr_quality": 900.0, "hcr_certificate": "by construction", "hcr_violations": 0,
         "hcr_train_s": 3.0}])
    lines = "\n".join(constructions_section(runs, ["deepsade", "hardnet", "hcr"]))
    assert "| solar_plant | 1 | hardnet | - |" in lines and "not applicable: HardNet-Aff needs the rows" in lines
    assert "| solar_plant | 1 | hcr | 900 |" in lines.replace("900.000", "900") and "by construction" in lines
    assert constructions_section(runs, ["deepsade"]) == []  # DeepSaDe-only runs keep their report unchanged
    assert parse_args(["--methods", "deepsade,hcr"]).methods == "deepsade,hcr"
