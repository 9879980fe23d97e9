"""Sequential clamps onto a ratio bound: ``w * y <= 1000`` with ``w > 0`` over the box is ``y <= 1000 / w``,
clamped onto a proved piecewise-linear inner bound (``deepsade.constructions.ratio_bound``).

The inner bound is checked exactly at its nodes, kinks and the interval's ends; a trained model keeps the rule
at the box's corners, faces and at ``w_lo``/``w_hi`` exactly (float32 forward pass and exact rationals), for
base outputs blown up to 1e6 (exact network), its certificate re-derives ``certified``, and a layer lifted
above the bound is caught; without the layer the same points break the rule.
"""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.certify import certify_model
from deepsade.constructions.polytope import polytope_projection, split_asserts
from deepsade.constructions.ratio_bound import GAP_TOLERANCE, inner_bound, split_comparisons
from deepsade.constructions.recognise import NotApplicable
from deepsade.estimator import DeepSaDe
from deepsade.ingest import prepare
from deepsade.spec import parse_spec_text
from tests.test_constructions_far import _box_points, _broken_rows, _exact_outputs, _float32_outputs

DOSING = """
(declare-const w Real)
(declare-const d Real)
(assert (<= (* w d) 100.0))
(assert (>= d 0.0))
"""


def _frame(n: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    w = rng.uniform(2.0, 40.0, n)
    other = rng.uniform(0.0, 1.0, n)
    return pd.DataFrame({"w": w, "other": other, "d": np.minimum(15.0, 100.0 / w) * rng.uniform(0.8, 1.0, n)})


def _spec(text: str, frame: pd.DataFrame | None = None):
    data = prepare(_frame() if frame is None else frame, ["d"])
    spec = parse_spec_text(text, data.encoding)
    return spec, *data.domain.scaled_exact(data.encoding)


def _ratio(text: str, frame: pd.DataFrame | None = None):
    spec, low, high = _spec(text, frame)
    _, (ratio,) = split_comparisons(spec.asserts[0], "clamps", low, high)
    return ratio, low, high


def _exact_ratio(ratio, t: Fraction, others: dict[int, Fraction] | None = None) -> Fraction:
    numerator = -(sum((v * (t if j == ratio.input_index else (others or {}).get(j, Fraction(0)))
                       for j, v in ratio.b.items()), Fraction(0)) + ratio.b0)
    return numerator / (ratio.a0 + ratio.a1 * t)


@pytest.mark.parametrize("text, kind, sign", [
    (DOSING, "tangents", 1),  # y <= 100 / w: convex, from above
    (DOSING.replace("(<= (* w d) 100.0)", "(>= (* w d) 10.0)"), "chords", -1),  # y >= 10 / w: from below
])
def test_the_inner_bound_lies_inside_the_ratio_at_its_nodes_kinks_and_ends(text, kind, sign):
    ratio, low, high = _ratio(text)
    row = inner_bound(ratio, low, high)
    assert (row.kind, row.sign) == (kind, sign)
    t_lo, t_hi = Fraction(low[ratio.input_index]), Fraction(high[ratio.input_index])
    points = [t_lo, t_hi] + [s for s, _ in row.unit.kinks] + [t_lo + (t_hi - t_lo) * Fraction(i, 97) for i in range(97)]
    gaps = []
    for t in points:
        if not t_lo <= t <= t_hi:
            continue
        bound = sign * (row.unit.value(t) + row.const)
        exact = _exact_ratio(ratio, t)
        assert (bound <= exact) if sign > 0 else (bound >= exact), float(t)  # inside, exactly
        gaps.append(float(abs(exact - bound) / max(1, abs(exact))))
    assert max(gaps) <= 2 * GAP_TOLERANCE  # close: the grid misses the exact worst point by little
    assert min(gaps) < 1e-6  # it touches the ratio (at the nodes)


def test_a_bound_that_also_reads_another_input_goes_through_mccormick_and_is_proved():
    text = DOSING.replace("(<= (* w d) 100.0)", "(<= (* w d) (+ 100.0 (* 5.0 other)))").replace(
        "(declare-const d Real)", "(declare-const d Real)(declare-const other Real)")
    ratio, low, high = _ratio(text)
    row = inner_bound(ratio, low, high)
    j = next(j for j in ratio.b if j != ratio.input_index)
    for t in (Fraction(low[ratio.input_index]), Fraction(high[ratio.input_index])):
        for z in (Fraction(low[j]), Fraction(high[j])):
            bound = row.unit.value(t) + row.inputs[j] * z + row.const
            assert bound <= _exact_ratio(ratio, t, {j: z})


def test_a_coefficient_that_changes_sign_over_the_box_is_refused():
    frame = _frame()
    frame["w"] = frame["w"] - 10.0  # w from -8 to 30: w * d <= 100 bounds d from both sides
    spec, low, high = _spec(DOSING, frame)
    with pytest.raises(NotApplicable, match="changes sign"):
        split_comparisons(spec.asserts[0], "clamps", low, high)
    split = split_asserts(spec, low, high)
    assert 0 in split.remaining and not split.ratio


def test_the_clamps_take_the_whole_dosing_rule_with_one_extra_unit():
    spec, low, high = _spec(DOSING)
    split = split_asserts(spec, low, high)
    assert (split.constructible, split.remaining, split.ratio) == ((0, 1), (), (0,))
    rows, _, units, split = polytope_projection(spec, split, low, high, Fraction(2 * 10**-4))
    assert len(units) == 1 and len(rows) == 2 and len(units[0].kinks) >= 8
    # with a rule the clamps cannot take as well, the ratio goes back to DeepSaDe with it
    mixed = DOSING + "(assert (=> (>= (+ w other) 30.0) (<= d 5.0)))\n"
    mixed = mixed.replace("(declare-const d Real)", "(declare-const d Real)(declare-const other Real)")
    spec, low, high = _spec(mixed)
    split = split_asserts(spec, low, high)
    assert not split.ratio and 0 in split.remaining


@pytest.fixture(scope="module")
def trained() -> DeepSaDe:
    return DeepSaDe(DOSING, ["d"], method="auto", hidden=(16, 8), epochs=3, seed=0).fit(_frame())


def _points(art) -> tuple[np.ndarray, int]:
    low, high = art.domain.scaled_exact(art.encoding)
    low, high = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    points = _box_points(low, high, n=300)
    j = art.encoding.input_names.index("w")
    ends = np.tile((low + high) / 2, (4, 1))
    ends[:, j] = [low[j], high[j], low[j], high[j]]
    ends[2:, 1 - j] = [low[1 - j], high[1 - j]]
    return np.vstack([ends, points]), j


def test_auto_trains_the_clamps_and_the_model_keeps_the_rule_on_the_whole_box(trained):
    art = trained.artifact_
    assert trained.method_ == "polytope" and art.certificate["verdict"] == "certified"
    assert "ratio bound" in art.training["construction"]
    spec = parse_spec_text(art.constraint_text, art.encoding)
    points, _ = _points(art)
    assert _broken_rows(spec, points, _float32_outputs(art.model, points)) == []
    assert _broken_rows(spec, points[:120], _exact_outputs(art.model, points[:120])) == []
    # the base output alone breaks the rule on the same points once it is pushed up: the clamp has teeth
    big = copy.deepcopy(art.model)
    with torch.no_grad():
        big.last.bias.add_(50.0)
        base = big.base(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    assert len(_broken_rows(spec, points, base)) > 0
    assert _broken_rows(spec, points, _float32_outputs(big, points)) == []


@pytest.mark.parametrize("factor", [1e3, 1e6])
def test_the_exact_network_holds_whatever_the_base_outputs(trained, factor):
    art = trained.artifact_
    spec = parse_spec_text(art.constraint_text, art.encoding)
    points, _ = _points(art)
    big = copy.deepcopy(art.model)
    with torch.no_grad():
        big.last.weight.mul_(factor)
        big.last.bias.mul_(factor).add_(factor)
        base = big.base(torch.as_tensor(points[:80], dtype=torch.float32)).double().numpy()
    assert float(np.abs(base).max()) >= factor / 10
    assert len(_broken_rows(spec, points[:80], base)) > 0
    assert _broken_rows(spec, points[:80], _exact_outputs(big, points[:80])) == []


def test_the_certificate_is_re_derived_and_catches_a_layer_above_the_bound(trained):
    art = trained.artifact_
    spec = parse_spec_text(art.constraint_text, art.encoding)
    again = certify_model(art.model, spec, art.encoding, art.domain, art.certificate["margin"])
    assert again["verdict"] == "certified"
    assert "pieces of input w" in again["asserts"][0]["checked_with"]
    # lift the bound unit's constant (the first clamp step reads it): the rule breaks near the bound
    lifted = copy.deepcopy(art.model)
    with torch.no_grad():
        lifted.clamp_biases[1].add_(0.05)
    broken = certify_model(lifted, spec, art.encoding, art.domain, art.certificate["margin"])
    assert broken["verdict"] != "certified"
    assert broken["asserts"][0]["result"] != "holds"


def test_an_equality_beside_a_ratio_is_refused():
    text = DOSING.replace("(<= (* w d) 100.0)", "(and (<= (* w d) 100.0) (= d 1.0))")
    spec, low, high = _spec(text)
    with pytest.raises(NotApplicable, match="inequalities"):
        split_comparisons(spec.asserts[0], "clamps", low, high)
    assert 0 in split_asserts(spec, low, high).remaining


def test_a_lower_ratio_bound_with_another_input_trains_certified_and_holds_on_the_box():
    """``(50 - w) d >= 10 + other``: a lower bound, chords (the ratio is concave in w), the coefficient largest at
    w's low end, and a second input in the numerator (McCormick)."""
    text = ("(declare-const w Real)(declare-const other Real)(declare-const d Real)"
            "(assert (>= (* (- 50.0 w) d) (+ 10.0 other)))(assert (<= d 30.0))")
    frame = _frame()
    frame["d"] = (10.0 + frame["other"]) / (50.0 - frame["w"]) + frame["w"] / 10.0
    est = DeepSaDe(text, ["d"], method="polytope", hidden=(8,), epochs=2, seed=0).fit(frame)
    art = est.artifact_
    assert art.certificate["verdict"] == "certified", art.certificate["asserts"]
    assert "ratio bound" in art.training["construction"]
    spec = parse_spec_text(art.constraint_text, art.encoding)
    points, _ = _points(art)
    assert _broken_rows(spec, points, _float32_outputs(art.model, points)) == []
    assert _broken_rows(spec, points[:100], _exact_outputs(art.model, points[:100])) == []
    big = copy.deepcopy(art.model)
    with torch.no_grad():
        big.last.bias.sub_(50.0)
        base = big.base(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    assert len(_broken_rows(spec, points, base)) > 0
    assert _broken_rows(spec, points, _float32_outputs(big, points)) == []
