"""Every construction keeps the rule far outside the training data, checked exactly.

Each model is trained on rows that fill about 1/20 of each input's domain box (the box is widened with a
domain file), then fed the box's corners, points on its faces and random points of the whole box. Their
outputs, as the float32 forward pass computes them and (for the piecewise-linear layers) as the exact
rational network computes them, are checked against every assert by z3 on exact rationals (no tolerance).
The base networks are also blown up (last layer scaled) until their outputs reach 1e3-1e6: the clamp and
HCR layers still land inside the rule; HardNet-Aff with a general ``A`` holds as long as its certificate
says so (its float32 right inverse ``P`` satisfies ``A P = I`` only up to rounding, so huge base outputs can
push an output over a bound by ``|A P - I| |A f - b|``), and the certificate catches it when it does not.
Removing the enforcement layer breaks the rule on the same points: the checks have teeth.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import z3

from deepsade.certify import certify_model
from deepsade.estimator import DeepSaDe
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, input_var, output_var, parse_spec_text
from deepsade.usecases import toy, uc1_expenses
from deepsade.verification.network import NetworkWeights
from tests.conftest import REPO

WIDEN = 10.0  # the domain box reaches this many data ranges beyond the data on each side
HCR_RULES = """
(declare-const output Real)
(declare-const losses Real)
(assert (>= losses (* 0.05 output)))
(assert (<= losses (* 0.4 output)))
(assert (and (>= output 0.0) (<= output 1500.0)))
"""


def _widened_domain(frame: pd.DataFrame, targets: list[str], path: Path, keep_low: tuple[str, ...] = ()) -> Path:
    """A domain file whose box reaches WIDEN data ranges beyond every numeric input (``keep_low``: not below)."""
    numeric = [c for c in frame.select_dtypes("number").columns if c not in targets]
    box = {}
    for c in numeric:
        lo, hi = float(frame[c].min()), float(frame[c].max())
        span = hi - lo if hi > lo else 1.0
        box[c] = [lo if c in keep_low else lo - WIDEN * span, hi + WIDEN * span]
    path.write_text(json.dumps(box))
    return path


def _hcr_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (rows, 3))
    output = 200 + 900 * x[:, 0] + 50 * x[:, 1]
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "output": output,
                         "losses": output * (0.08 + 0.2 * x[:, 2])})


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, DeepSaDe]:
    """HardNet-Aff (UC1: a sum row and a single-output row), the clamp gadget and HCR, each on a widened box."""
    folder = tmp_path_factory.mktemp("far")
    built = {}
    frame = uc1_expenses.generate(300, 0)
    targets = list(uc1_expenses.CASE.targets)
    built["hardnet"] = DeepSaDe(REPO / "deepsade" / "constraints" / "uc1_expenses.smt2", targets, method="hardnet",
                                hidden=(12, 6), epochs=2, lr=0.05,
                                domain=_widened_domain(frame, targets, folder / "uc1.json")).fit(frame)
    frame = toy.generate_regression()
    # x1 may not go below its data minimum: 0 <= y <= x1 leaves no room where x1 < 0
    built["clamp"] = DeepSaDe(REPO / "deepsade" / "constraints" / "example_bounds.smt2", ["y"],
                              features=["x1", "x2", "x3"], method="hardnet", hidden=(8,), epochs=2, margin=1e-5,
                              domain=_widened_domain(frame, ["y"], folder / "toy.json", keep_low=("x1",))).fit(frame)
    rules = folder / "plant.smt2"
    rules.write_text(HCR_RULES)
    frame = _hcr_frame()
    built["hcr"] = DeepSaDe(rules, ["output", "losses"], features=["x1", "x2", "x3"], method="hcr", hidden=(16, 8),
                            epochs=3, domain=_widened_domain(frame, ["output", "losses"], folder / "hcr.json")
                            ).fit(frame)
    return built


def _box_points(low: np.ndarray, high: np.ndarray, n: int = 400, seed: int = 0) -> np.ndarray:
    """Corners, points on every face, and random points of the scaled box (float32 values, as predict feeds)."""
    rng = np.random.default_rng(seed)
    d = len(low)
    corners = np.where(rng.random((min(2 ** d, 128), d)) < 0.5, low, high)
    faces = low + (high - low) * rng.random((4 * d, d))
    for i in range(4 * d):  # pin one coordinate to its lower or upper face
        faces[i, i % d] = low[i % d] if i < 2 * d else high[i % d]
    inside = low + (high - low) * rng.random((n, d))
    return np.vstack([corners, faces, inside]).astype(np.float32).astype(np.float64)


def _breaks(spec: Spec, index: int, scaled_input: np.ndarray, output: np.ndarray) -> bool:
    """Whether assert ``index`` is false at these exact rational values (z3, no tolerance)."""
    a = spec.asserts[index]
    pairs = [(input_var(j), z3_rational(Fraction(float(scaled_input[j])))) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(Fraction(output[k]) if isinstance(output[k], Fraction)
                                          else Fraction(float(output[k])))) for k in a.outputs]
    verdict = z3.simplify(z3.substitute(a.scaled, *pairs))
    assert z3.is_true(verdict) or z3.is_false(verdict), "the assert did not reduce to a truth value"
    return z3.is_false(verdict)


def _broken_rows(spec: Spec, inputs: np.ndarray, outputs: np.ndarray) -> list[int]:
    """Rows where some assert is false, decided exactly (the float evaluator only picks the candidates)."""
    with np.errstate(all="ignore"):
        truth = spec.evaluate_scaled(inputs, np.asarray(outputs, dtype=np.float64))
    near = np.flatnonzero(~truth.all(axis=1) | np.ones(len(inputs), dtype=bool))  # every row: exact is cheap
    return [int(i) for i in near if any(_breaks(spec, k, inputs[i], outputs[i]) for k in range(len(spec.asserts)))]


def _float32_outputs(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(inputs, dtype=torch.float32)).double().numpy()


def _exact_outputs(model: torch.nn.Module, inputs: np.ndarray) -> list[list[Fraction]]:
    plain = NetworkWeights.from_model(model)
    return [plain.forward_exact([Fraction(float(v)) for v in row]) for row in inputs]


def _layer_removed(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    """The outputs without the enforcement layer: HardNet's base output, HCR's direction taken as the output."""
    with torch.no_grad():
        base = model.base(torch.as_tensor(inputs, dtype=torch.float32)).double().numpy()
    return base[:, :model.n_outputs]


def _blown_up(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """A copy whose base network's last layer is scaled by ``factor`` (the enforcement layer untouched)."""
    big = copy.deepcopy(model)
    with torch.no_grad():
        big.last.weight.mul_(factor)
        big.last.bias.mul_(factor)
    return big


def _scaled_box(est: DeepSaDe) -> tuple[Spec, np.ndarray, np.ndarray]:
    art = est.artifact_
    low, high = art.domain.scaled_exact(art.encoding)
    return (parse_spec_text(art.constraint_text, art.encoding), np.array([float(v) for v in low]),
            np.array([float(v) for v in high]))


@pytest.mark.parametrize("name", ["hardnet", "clamp", "hcr"])
def test_the_whole_widened_box_keeps_the_rule_exactly(models, name):
    est = models[name]
    art = est.artifact_
    assert art.certificate["verdict"] == ("by construction" if name == "hcr" else "certified")
    spec, low, high = _scaled_box(est)
    # the training rows fill only a small part of the box: the checks below reach far outside them
    # (scaled units: the data spans [0, 1] per input); the inputs the rule mentions included
    assert (high - low).max() >= 2 * WIDEN and np.all((high - low)[list(spec.mapped_features)] >= WIDEN)
    points = _box_points(low, high)
    assert _broken_rows(spec, points, _float32_outputs(art.model, points)) == []
    if name != "hcr":  # piecewise linear: the exact rational network too
        exact = _exact_outputs(art.model, points[:120])
        assert _broken_rows(spec, points[:120], exact) == []
    # without the layer the same points break the rule: the test would fail if the layer were removed
    assert len(_broken_rows(spec, points, _layer_removed(art.model, points))) > 0


@pytest.mark.parametrize("name", ["clamp", "hcr"])
def test_clamp_and_hcr_hold_whatever_the_base_network_outputs(models, name):
    art = models[name].artifact_
    spec, low, high = _scaled_box(models[name])
    points = _box_points(low, high, n=200, seed=1)
    reached = []
    for factor in (1e3, 1e4, 1e5, 1e6):
        big = _blown_up(art.model, factor)
        base = _layer_removed(big, points)
        reached.append(float(np.abs(base).max()))
        assert _broken_rows(spec, points, _float32_outputs(big, points)) == [], f"factor {factor:g}"
        if name == "clamp":  # the clamp's A and P are exactly +-1: the exact network holds at any magnitude
            assert _broken_rows(spec, points[:80], _exact_outputs(big, points[:80])) == [], f"factor {factor:g}"
        assert len(_broken_rows(spec, points, base)) > 0
    assert min(reached) >= 1e3 and max(reached) >= 1e6, reached


def test_hardnet_holds_where_its_certificate_says_and_the_certificate_catches_the_rest(models):
    """For a general A the float32 right inverse P has A P = I only up to rounding: the rule holds for base
    outputs as large as the certificate covers, and where it does not hold the certificate does not say
    certified (measured: a base scaled 1e4 reaches |f| ~ 1e5 and breaks the sum row exactly)."""
    art = models["hardnet"].artifact_
    spec, low, high = _scaled_box(models["hardnet"])
    points = _box_points(low, high, n=150, seed=2)
    verdicts = {}
    for factor in (1e2, 1e4):
        big = _blown_up(art.model, factor)
        assert float(np.abs(_layer_removed(big, points)).max()) >= 1e3
        certificate = certify_model(big, spec, art.encoding, art.domain, art.certificate["margin"])
        broken = _broken_rows(spec, points[:60], _exact_outputs(big, points[:60]))
        verdicts[factor] = (certificate["verdict"], bool(broken))
        if certificate["verdict"] == "certified":
            assert broken == [] and _broken_rows(spec, points, _float32_outputs(big, points)) == []
        if broken:
            assert certificate["verdict"] == "violated"
    assert verdicts[1e2] == ("certified", False), verdicts
