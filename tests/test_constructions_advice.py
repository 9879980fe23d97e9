"""advise on a rule whose A has more rows than outputs: HardNet-Aff cannot, and the line points to any other
registered construction by name (none registered: no hint)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepsade.constructions.advise import advise
from deepsade.ingest import prepare
from deepsade.methods import CONSTRUCTION, Method, register, unregister
from deepsade.spec import parse_spec_text

RULE = ("(declare-const x1 Real)(declare-const y1 Real)(declare-const y2 Real)"
        "(assert (>= y1 0.0))(assert (>= y2 0.0))(assert (<= (+ y1 y2) x1))")


def _hardnet_line(data) -> str:
    spec = parse_spec_text(RULE, data.encoding)
    return next(a for a in advise(spec, data.encoding, data.domain) if a.method == "hardnet").reason


def test_over_determined_rows_name_the_other_construction_when_one_is_registered():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.uniform(1, 10, 50), "y1": rng.uniform(0, 1, 50), "y2": rng.uniform(0, 1, 50)})
    data = prepare(frame, ["y1", "y2"])
    plain = _hardnet_line(data)
    assert "3 output combinations over 2 output(s)" in plain and plain.endswith("try --method polytope")
    register(Method("stacked_test", "a test construction", certifies=True, family=CONSTRUCTION,
                    train=lambda job: None))
    try:
        assert _hardnet_line(data).endswith("A has more rows than outputs: try --method polytope or stacked_test")
    finally:
        unregister("stacked_test")
