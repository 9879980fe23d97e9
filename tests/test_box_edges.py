"""Premises that go on past the domain box (``deepsade.box_edges``): said where the rule reaches inputs the
guarantee does not cover, and not where the box is the user's or the column's whole range."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from deepsade.box_edges import edge_note, premise_edges
from deepsade.cli import main
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text

HEAD = "(declare-const pressure Real)(declare-const hour Real)(declare-const y Real)"


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    pressure = rng.uniform(20, 108.8, 300).round(1)
    pressure[0] = 108.8
    return pd.DataFrame({"pressure": pressure, "hour": rng.integers(0, 24, 300).astype(float),
                         "y": (pressure > 90).astype(int)})


def _edges(rule: str, domain=None):
    data = prepare(_frame(), ["y"], domain_file=domain)
    return premise_edges(parse_spec_text(HEAD + rule, data.encoding), data.encoding, data.domain)


def test_a_one_sided_premise_at_the_data_maximum_goes_on_past_the_box():
    (edge,) = _edges("(assert (=> (>= pressure 100.0) (> y 0.0)))")
    assert (edge.written, edge.name, edge.side) == (0, "pressure", "upper")
    assert edge.value == _frame()["pressure"].max()
    note = edge_note([edge])
    assert "assert 1's to pressure above 108.8, the data's largest" in note and "--domain" in note


def test_no_edge_for_a_closed_premise_a_whole_number_column_an_input_of_the_conclusion_or_a_users_box(tmp_path):
    assert _edges("(assert (=> (and (>= pressure 100.0) (<= pressure 105.0)) (> y 0.0)))") == []
    assert _edges("(assert (=> (>= hour 22.0) (> y 0.0)))") == []  # hours 0-23: the data hold the whole range
    assert _edges("(assert (=> (>= hour 22.0) (> y (- pressure 200.0))))") == []  # pressure is not in the premise
    box = tmp_path / "box.json"
    box.write_text(json.dumps({"pressure": [0, 108.8]}))
    assert _edges("(assert (=> (>= pressure 100.0) (> y 0.0)))", domain=str(box))[0].side == "upper"  # as the data's
    box.write_text(json.dumps({"pressure": [0, 200]}))
    assert _edges("(assert (=> (>= pressure 100.0) (> y 0.0)))", domain=str(box)) == []


def test_check_says_it_under_the_assert(tmp_path):
    csv, rule = tmp_path / "d.csv", tmp_path / "r.smt2"
    _frame().to_csv(csv, index=False)
    rule.write_text(HEAD + "(assert (=> (>= pressure 100.0) (> y 0.0)))")
    out = CliRunner().invoke(main, ["check", str(rule), str(csv), "--target", "y"]).output
    assert "note: its premise goes on past the domain box, to pressure above 108.8, the data's largest" in out
