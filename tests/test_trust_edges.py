"""Edge cases of issue 14 (findings 5, 6, 8): extreme ranges, unwritable outputs, missing values and
unseen categories in predict, and never replacing a trained model by accident."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deepsade.cli import main

RULE = "(declare-const x1 Real)\n(declare-const y Real)\n(assert (=> (> x1 5.0) (<= y (* 2.0 x1))))\n"


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    x1 = rng.uniform(0, 10, n)
    return pd.DataFrame({"x1": x1, "area": rng.choice(["a", "b"], n), "y": 0.5 * x1 + rng.normal(0, 0.2, n)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("edges")
    csv, rule, out = root / "d.csv", root / "rule.smt2", root / "model"
    _frame().to_csv(csv, index=False)
    rule.write_text(RULE)
    result = CliRunner().invoke(main, ["train", str(csv), "--constraint", str(rule), "--target", "y", "--hidden", "6,4",
                                       "--epochs", "1", "--batch-size", "20", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    return csv, rule, out


def test_a_column_spanning_the_float_range_is_refused_with_one_line(tmp_path):
    frame = _frame()
    frame.loc[0, "x1"], frame.loc[1, "x1"] = -1.7e308, 1.7e308
    csv, rule = tmp_path / "d.csv", tmp_path / "rule.smt2"
    frame.to_csv(csv, index=False)
    rule.write_text(RULE)
    result = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "'x1' spans" in result.stderr and "overflows the scaling" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_domain_too_wide_to_scale_is_refused(tmp_path):
    csv, rule, domain = tmp_path / "d.csv", tmp_path / "rule.smt2", tmp_path / "domain.json"
    _frame().to_csv(csv, index=False)
    rule.write_text(RULE)
    domain.write_text('{"x1": [-1.7e308, 1.7e308]}')
    result = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y", "--domain", str(domain)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "too wide to scale" in result.stderr


def test_predict_names_the_path_and_the_reason_it_cannot_write(trained, tmp_path):
    csv, _, out = trained
    target = tmp_path / "no" / "such" / "dir" / "p.csv"
    result = CliRunner().invoke(main, ["predict", str(out), str(csv), "--out", str(target)])
    assert result.exit_code == 2
    assert str(target) in result.stderr and "None" not in result.stderr
    assert "non-existent directory" in result.stderr or "No such file" in result.stderr


def test_predict_reports_missing_values_as_missing_and_flags_unseen_categories(trained, tmp_path):
    csv, _, out = trained
    frame = _frame(10)
    frame.loc[0, "x1"] = np.nan
    frame.loc[1, "area"] = "z"  # a category the model never saw
    new = tmp_path / "new.csv"
    frame.to_csv(new, index=False)
    result = CliRunner().invoke(main, ["predict", str(out), str(new), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.stderr
    assert "1 of 10 rows have missing input values" in result.stderr
    assert "outside the domain box" not in result.stderr
    assert "1 rows hold a category of 'area' the model never saw (z)" in result.stderr
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["unseen_category"].tolist() == [False, True] + [False] * 8


def test_train_refuses_to_replace_an_existing_model_unless_forced(trained):
    csv, rule, out = trained
    before = (out / "weights.safetensors").read_bytes()
    args = ["train", str(csv), "--constraint", str(rule), "--target", "y", "--hidden", "6,4", "--epochs", "1",
            "--batch-size", "20", "--seed", "3", "--out", str(out), "--quiet"]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "already holds files" in refused.stderr and "--force" in refused.stderr
    assert (out / "weights.safetensors").read_bytes() == before
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.stderr
    assert (out / "weights.safetensors").read_bytes() != before


def test_predict_returns_the_stored_network_evaluated_in_float64(trained, tmp_path):
    """Finding 9: predict computed in float32, so its numbers could leave the certified margin on a wide domain;
    it now evaluates the stored float32 weights in float64, within float64 rounding of the exact network the
    certificate covers (a float32 pass is about a million times further off)."""
    from fractions import Fraction

    import torch

    from deepsade import artifact
    from deepsade.concrete_violation import exact_outputs

    csv, _, out = trained
    result = CliRunner().invoke(main, ["predict", str(out), str(csv), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.stderr
    predicted = pd.read_csv(tmp_path / "p.csv")["predicted_y"].to_numpy()[:8]
    art = artifact.load(out)
    scaled = art.encoding.scale_inputs(art.encoding.encode_inputs(pd.read_csv(csv).head(8)))
    exact = np.array([[float(v) for v in exact_outputs(art.model, [Fraction(float(x)) for x in row])]
                      for row in scaled])
    exact_raw = art.encoding.outputs_to_raw(exact)[:, 0]
    with torch.no_grad():
        single = art.encoding.outputs_to_raw(art.model(torch.as_tensor(scaled, dtype=torch.float32)).double().numpy())
    assert np.abs(predicted - exact_raw).max() <= 1e-12 * max(1.0, np.abs(exact_raw).max())
    assert np.abs(single[:, 0] - exact_raw).max() > np.abs(predicted - exact_raw).max()
