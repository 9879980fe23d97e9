"""Optional extras: a command that needs a package that is not installed says in one line which extra
brings it, instead of a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepsade.cli import main
from deepsade.errors import UserInputError
from deepsade.estimator import DeepSaDe
from deepsade.extras import install_hint, require
from deepsade.usecases.toy import generate_regression

RULE = Path(__file__).resolve().parents[1] / "deepsade" / "constraints" / "example_bounds.smt2"


def test_install_hint_names_the_extra():
    assert install_hint("maraboupy.MarabouCore").endswith("pip install 'deepsade[marabou]'")
    assert "deepsade[plots]" in install_hint("matplotlib.pyplot")
    assert "deepsade[dask]" in install_hint("distributed")
    assert install_hint("numpy") is None  # a core dependency: a missing one is a broken install, not an extra


def test_require_raises_one_line_for_a_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UserInputError, match=r"pip install 'deepsade\[ray\]'"):
        require("ray")
    assert require("json").dumps([1]) == "[1]"


def test_cli_without_maraboupy_says_which_extra(tmp_path, monkeypatch):
    model_dir, data = tmp_path / "model", tmp_path / "data.csv"
    frame = generate_regression(60, seed=0)
    frame.to_csv(data, index=False)
    DeepSaDe(RULE, "y", method="ffn", hidden=(4,), epochs=1).fit(frame).save(model_dir)
    monkeypatch.setitem(sys.modules, "maraboupy", None)
    result = CliRunner().invoke(main, ["adi", str(model_dir), str(data), "--sample", "3", "--presample", "0", "--no-bounds",
                                         "--quiet", "--out", str(tmp_path / "adi.csv")])
    assert result.exit_code == 2, result.output
    assert "needs the maraboupy package, which is not installed: pip install 'deepsade[marabou]'" in result.output
    assert "Traceback" not in result.output
