"""The paper's trainer (``paper=True``) builds the z3 queries it built before the price levers existed.

z3's answers depend on the order in which terms are made (every term shifts the ids of later ones), so a
lever that reads the rules with z3 before the encoder does changes which of several valid last layers
z3 returns with z3 in the loop. The paper's trainer must therefore not compute what only the levers use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepsade.training.loop as loop
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings

RULE = "(declare-const x0 Real)(declare-const label Real)(assert (=> (> x0 0.7) (> label 0.0)))"


def _problem() -> tuple:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x0": rng.uniform(0, 1, 40), "x1": rng.uniform(0, 1, 40)})
    frame["label"] = np.where(frame.x0 + frame.x1 > 1.0, "yes", "no")
    data = prepare(frame, ["label"], positive="yes")
    return parse_spec_text(RULE, data.encoding), data


def _refuse_regions(*_args, **_kwargs):
    raise AssertionError("premise regions computed")


def test_paper_trainer_reads_no_premise_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    spec, data = _problem()
    monkeypatch.setattr(loop, "input_regions", _refuse_regions)
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(4, 4), paper=True, projection=False))
    assert trainer.regions == {} and not trainer.box().per_assert
    with pytest.raises(AssertionError, match="premise regions computed"):
        DeepSaDeTrainer(spec, data, TrainSettings(hidden=(4, 4)))  # the default trainer reads them


def test_levers_off_one_by_one_still_read_regions_when_one_is_left() -> None:
    spec, data = _problem()
    gates_only = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(4, 4), region_boxes=False, refit=False))
    assert gates_only.regions and gates_only.gate_layout is not None
    none_left = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(4, 4), region_boxes=False, premise_gates=False))
    assert none_left.regions == {} and none_left.gate_layout is None
