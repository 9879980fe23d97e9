"""Sequential clamps (--method polytope): over-determined polytopes, identity inside, DeepSaDe for the rest."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepsade.artifact import load, save
from deepsade.constructions.fourier_motzkin import HalfSpace, project
from deepsade.constructions.recognise import NoRoom
from deepsade.constructions.sequential_clamp import SequentiallyClampedMLP
from deepsade.errors import UserInputError
from deepsade.estimator import DeepSaDe
from deepsade.recheck import recheck_artifact
from deepsade.spec import parse_spec_text
from deepsade.verification.network import NetworkWeights
from tests.conftest import run_cli

# three outputs, five rows (more rows than outputs): HardNet-Aff's closed form cannot take it
BUDGET_RULES = """
(declare-const income Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const leisure Real)
(assert (<= (+ housing food leisure) income))
(assert (>= food (* 0.3 leisure)))
(assert (and (>= housing 0.0) (>= food 0.0) (>= leisure 0.0)))
"""

# a bound everywhere (clamped) and a premise rule that the clamp alone could break; its premise is nonlinear,
# so no gate takes it: DeepSaDe keeps it, strengthened with the polytope
MIXED_RULES = """
(declare-const x Real)
(declare-const z Real)
(declare-const a Real)
(declare-const b Real)
(assert (<= a 1.0))
(assert (=> (>= (* x z) 0.25) (>= a b)))
"""
# the same with a premise that is a box and bounded outputs: a premise gate inside the clamp layer takes it
# (relaxed by the most the row can exceed over the rest of the polytope), no DeepSaDe at all
GATED_RULES = MIXED_RULES.replace("(>= (* x z) 0.25)", "(>= x 0.5)") + "(assert (and (>= a 0.0) (>= b 0.0) (<= b 5.0)))\n"
# the same with the premise coupling two inputs (a half-space, not a box): a gate on the half-space takes it
COUPLED_RULES = MIXED_RULES.replace("(>= (* x z) 0.25)", "(>= (+ x z) 1.0)") + "(assert (and (>= a 0.0) (>= b 0.0) (<= b 5.0)))\n"


def _half(outputs, inputs, const) -> HalfSpace:
    return HalfSpace(tuple(map(Fraction, outputs)), tuple(map(Fraction, inputs)), Fraction(const), frozenset({0}))


BUDGET_ROWS = [_half((1, 1, 1), (1,), 0), _half((0, -1, Fraction(3, 10)), (0,), 0), _half((-1, 0, 0), (0,), 0),
               _half((0, -1, 0), (0,), 0), _half((0, 0, -1), (0,), 0)]


def _clamp64(model: SequentiallyClampedMLP, f: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The stored clamp layers evaluated in float64 (what predict and the plain form compute)."""
    layers, out_weight, out_bias = model.clamp_layers()
    skip = x[:, model.mapped_features.numpy()]
    z = np.concatenate([np.maximum(f, 0), np.maximum(-f, 0), np.maximum(skip, 0), np.maximum(-skip, 0)], axis=1)
    for weight, bias in layers:
        z = np.maximum(z @ weight.T + bias, 0.0)
    return z @ out_weight.T + out_bias


def _budget_holds(y: np.ndarray, income: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    return ((y.sum(axis=1) <= income + tolerance) & (y >= -tolerance[:, None]).all(axis=1)
            & (0.3 * y[:, 2] <= y[:, 1] + tolerance))


def test_clamps_map_every_output_into_an_overdetermined_polytope_and_leave_inside_points_alone():
    projection = project(BUDGET_ROWS, 3, [Fraction(0)], [Fraction(1)])
    model = SequentiallyClampedMLP.for_projection(1, [4], 3, [0], projection)
    rng = np.random.default_rng(0)
    x = rng.random((100_000, 1))
    f = rng.standard_normal((100_000, 3)) * 10.0 ** rng.integers(-3, 9, (100_000, 3))  # up to 1e9
    y = _clamp64(model, f, x)
    assert _budget_holds(y, x[:, 0], 1e-12 * np.abs(f).max(axis=1) + 1e-12).all()
    inside = rng.random((20_000, 3)) * 0.3
    keep = _budget_holds(inside, np.ones(20_000), np.zeros(20_000))
    assert keep.sum() > 1000
    assert np.array_equal(_clamp64(model, inside[keep], np.ones((int(keep.sum()), 1))), inside[keep])
    # the layer is what does it: the base output itself breaks the rule
    assert not _budget_holds(f, x[:, 0], np.zeros(len(f))).all()


def test_an_empty_polytope_is_refused_naming_the_input(tmp_path: Path, monkeypatch):
    frame = _budget_frame(200, 0)
    rules = tmp_path / "r.smt2"
    rules.write_text(BUDGET_RULES + "(assert (>= housing (* 0.5 income)))\n(assert (>= food (* 0.6 income)))\n")
    # the conflict search refuses it before training (asserts 1, 3, 4 and 5 leave no output together) ...
    with pytest.raises(UserInputError, match="contradict each other at income = "):
        DeepSaDe(rules, ["housing", "food", "leisure"], method="polytope", hidden=(4,), epochs=1).fit(frame)
    # ... and, where that search gives no answer, the clamps' projection does
    monkeypatch.setattr("deepsade.conflicts.find_conflicts", lambda *args, **kwargs: [])
    with pytest.raises(NoRoom, match="no output at income="):
        DeepSaDe(rules, ["housing", "food", "leisure"], method="polytope", hidden=(4,), epochs=1).fit(frame)


def test_a_rule_of_premise_asserts_only_is_taken_through_gates(tmp_path: Path):
    """Every assert has a premise a gate takes and no assert without one bounds the gated rows (the price
    benchmark's diabetes rule): away from the premise each row is relaxed to admit every output within
    IMPLICIT_OUTPUT_REACH data ranges of the targets, so the gate binds only near its premise."""
    from deepsade.constructions.polytope import IMPLICIT_OUTPUT_REACH

    frame = _mixed_frame(150, 3)[["x", "a"]]
    csv, rules = tmp_path / "d.csv", tmp_path / "r.smt2"
    frame.to_csv(csv, index=False)
    rules.write_text("(declare-const x Real)(declare-const a Real)(assert (=> (>= x 0.5) (>= a 3.9)))")
    result = run_cli("train", str(csv), "--constraint", str(rules), "--target", "a", "--epochs", "3", "--quiet",
                     "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    art = load(tmp_path / "m")
    assert art.method == "polytope" and art.certificate["verdict"] == "certified"
    assert "through premise gates" in art.training["construction"]
    x = np.linspace(0, 1, 20_001)[:, None]
    (x0, xs), = [(float(o), float(c)) for o, c in art.encoding.input_affine()]
    (a0, a1), = [(float(o), float(c)) for o, c in art.encoding.output_affine()]
    base = art.model.base(torch.as_tensor(x, dtype=torch.float32)).detach().double().numpy()[:, 0]
    y = NetworkWeights.from_model(art.model).forward(x)[:, 0]
    premise = x0 + xs * x[:, 0] >= 0.5
    assert (a0 + a1 * y[premise] >= 3.9).all()
    far = x0 + xs * x[:, 0] < 0.4  # beyond the band: the base output passes unchanged within the reach
    within = (base > -float(IMPLICIT_OUTPUT_REACH)) & (base < 1 + float(IMPLICIT_OUTPUT_REACH))
    assert np.allclose(y[far & within], base[far & within], atol=1e-5) and (a0 + a1 * y[far] < 3.9).any()


def _budget_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.uniform(1000, 5000, n)
    housing = 0.35 * income + rng.normal(0, 150, n)
    leisure = 0.1 * income + rng.normal(0, 80, n)
    food = 0.2 * income + rng.normal(0, 80, n)
    return pd.DataFrame({"income": income, "size": rng.integers(1, 6, n), "housing": housing, "food": food,
                         "leisure": leisure})


@pytest.fixture(scope="module")
def budget_model(tmp_path_factory):
    rules = tmp_path_factory.mktemp("rules") / "budget.smt2"
    rules.write_text(BUDGET_RULES)
    est = DeepSaDe(rules, ["housing", "food", "leisure"], method="polytope", hidden=(8, 4), epochs=3, lr=0.05)
    est.fit(_budget_frame(300, 0))
    return est


def test_overdetermined_rule_trains_certifies_and_verifies(budget_model, tmp_path: Path):
    art = budget_model.artifact_
    assert art.certificate["verdict"] == "certified"
    assert isinstance(art.model, SequentiallyClampedMLP)
    model_dir = tmp_path / "m"
    save(art, model_dir)
    loaded = load(model_dir)
    assert recheck_artifact(loaded).ok
    # the plain ReLU form is the same function as the torch module
    x = torch.rand(256, art.model.n_inputs)
    plain = NetworkWeights.from_model(loaded.model).forward(x.numpy().astype(np.float64))
    assert np.allclose(plain, loaded.model(x).detach().numpy(), atol=1e-4)
    certify = run_cli("certify", str(model_dir))
    assert certify.returncode == 0, certify.stdout + certify.stderr


def test_the_float32_bound_of_the_clamps_bounds_sampled_passes_and_follows_signed_intervals(budget_model):
    art = budget_model.artifact_
    bound = art.certificate["float32_error_bound"]
    lower, upper = np.asarray(art.domain.lower), np.asarray(art.domain.upper)
    offset = np.asarray(art.encoding.input_min)
    span = np.asarray(art.encoding.input_max) - offset
    x = (lower - offset) / span + (upper - lower) / span * np.random.default_rng(0).random((20000, len(lower)))
    model = copy.deepcopy(art.model)
    with torch.no_grad():
        exact = model.double()(torch.as_tensor(x)).numpy()
        fast = model.float()(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    assert np.abs(fast - exact).max() <= bound
    # propagating |W| times the magnitudes, without the clamp units' signed interval bounds, gave 0.065 here
    assert bound < 0.01


def test_a_removed_clamp_is_not_certified(budget_model):
    from deepsade.certify import certify_model
    from deepsade.constructions.fourier_motzkin import Projection

    art = budget_model.artifact_
    n_out = art.model.n_outputs
    nothing = Projection(((),) * n_out, ((),) * n_out, ())
    bare = SequentiallyClampedMLP.for_projection(art.model.n_inputs, art.model.hidden_sizes, n_out,
                                                 art.model.mapped_features.tolist(), nothing)
    # the trained base may satisfy the rule on its own (its last layer is refitted by least squares on data
    # that keeps it); push one output far off so that only the clamps can keep the rule
    clamped = copy.deepcopy(art.model)
    with torch.no_grad():
        clamped.last.bias[0] += 50.0
    bare.load_state_dict({k: v for k, v in clamped.state_dict().items() if not k.startswith(("clamp_", "out_"))},
                         strict=False)
    assert bare.layer_sizes == []  # the layer is gone: y = f, the base network the clamps were trained behind
    x = torch.rand(64, art.model.n_inputs)
    assert torch.equal(bare(x), clamped.base(x))
    spec = parse_spec_text(BUDGET_RULES, art.encoding)
    assert certify_model(clamped, spec, art.encoding, art.domain, 1e-4)["verdict"] == "certified"
    assert certify_model(bare, spec, art.encoding, art.domain, 1e-4)["verdict"] != "certified"


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    return pd.DataFrame({"x": x, "z": rng.uniform(0, 1, n), "a": 3 + x + rng.normal(0, 0.1, n),
                         "b": 2 + 2 * x + rng.normal(0, 0.1, n)})


def _train_mixed(tmp_path: Path, text: str = MIXED_RULES) -> DeepSaDe:
    rules = tmp_path / "mixed.smt2"
    rules.write_text(text)
    est = DeepSaDe(rules, ["a", "b"], method="polytope", hidden=(8, 4), epochs=2, lr=0.05)
    est.fit(_mixed_frame(200, 1))
    return est


def test_mixed_rules_strengthened_for_deepsade_are_certified(tmp_path: Path):
    est = _train_mixed(tmp_path)
    art = est.artifact_
    assert art.certificate["verdict"] == "certified", art.certificate
    model = art.model
    assert "DeepSaDe trains assert(s) 2" in art.training["construction"]
    low, high = (np.asarray(v, dtype=np.float64) for v in art.domain.scaled(art.encoding))
    x = torch.as_tensor(low + (high - low) * np.random.default_rng(0).random((20_000, model.n_inputs)),
                        dtype=torch.float32)
    raw_x = [(float(o), float(c)) for o, c in art.encoding.input_affine()]
    premise = (raw_x[0][0] + raw_x[0][1] * x[:, 0]) * (raw_x[1][0] + raw_x[1][1] * x[:, 1]) >= 0.25
    assert premise.sum() > 1000
    with torch.no_grad():
        f, y = model.base(x[premise]), model(x[premise])
    # on the premise region the base output is already in the polytope (the strengthening), so y = f
    assert torch.allclose(f, y, atol=1e-5)
    (a0, a1), (b0, b1) = [(float(o), float(c)) for o, c in art.encoding.output_affine()]
    assert ((a0 + a1 * y[:, 0]) <= 1.0).all() and ((a0 + a1 * y[:, 0]) >= (b0 + b1 * y[:, 1]) - 1e-4).all()


def test_a_box_premise_is_taken_by_a_gate_inside_the_layer(tmp_path: Path):
    est = _train_mixed(tmp_path, GATED_RULES)
    art = est.artifact_
    assert art.certificate["verdict"] == "certified", art.certificate
    assert "through premise gates" in art.training["construction"] and "DeepSaDe" not in art.training["construction"]
    model = art.model
    low, high = (np.asarray(v, dtype=np.float64) for v in art.domain.scaled(art.encoding))
    points = low + (high - low) * np.random.default_rng(1).random((100_000, model.n_inputs))
    (x0, xs), _ = [(float(o), float(c)) for o, c in art.encoding.input_affine()]
    (a0, a1), (b0, b1) = [(float(o), float(c)) for o, c in art.encoding.output_affine()]
    y = NetworkWeights.from_model(model).forward(points)
    a, b = a0 + a1 * y[:, 0], b0 + b1 * y[:, 1]
    premise = x0 + xs * points[:, 0] >= 0.5
    assert (a <= 1.0).all() and (a[premise] >= b[premise]).all()
    # away from the premise (beyond the gate's band) the layer does not impose a >= b
    assert (a[x0 + xs * points[:, 0] < 0.4] < b[x0 + xs * points[:, 0] < 0.4]).any()


def test_a_premise_coupling_inputs_is_taken_by_a_half_space_gate_inside_the_layer(tmp_path: Path):
    est = _train_mixed(tmp_path, COUPLED_RULES)
    art = est.artifact_
    assert art.certificate["verdict"] == "certified", art.certificate
    assert "through premise gates" in art.training["construction"] and "DeepSaDe" not in art.training["construction"]
    model = art.model
    low, high = (np.asarray(v, dtype=np.float64) for v in art.domain.scaled(art.encoding))
    rng = np.random.default_rng(2)
    points = low + (high - low) * rng.random((100_000, model.n_inputs))
    (x0, xs), (z0, zs) = [(float(o), float(c)) for o, c in art.encoding.input_affine()]
    on_plane = rng.random(len(points)) < 0.3  # a third exactly on (or a float away from) the premise's boundary
    points[on_plane, 1] = (1.0 - (x0 + xs * points[on_plane, 0]) - z0) / zs
    points = np.clip(points, low, high).astype(np.float32).astype(np.float64)
    (a0, a1), (b0, b1) = [(float(o), float(c)) for o, c in art.encoding.output_affine()]
    y = NetworkWeights.from_model(model).forward(points)
    with torch.no_grad():
        y32 = model(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    total = (x0 + xs * points[:, 0]) + (z0 + zs * points[:, 1])
    premise = total >= 1.0
    assert premise.sum() > 10_000 and (premise & on_plane).sum() > 1000
    for out in (y, y32):
        a, b = a0 + a1 * out[:, 0], b0 + b1 * out[:, 1]
        assert (a <= 1.0 + 1e-6).all() and (a[premise] >= b[premise] - 1e-6).all()
    a, b = a0 + a1 * y[:, 0], b0 + b1 * y[:, 1]
    assert (a[total < 0.8] < b[total < 0.8]).any()  # away from the premise the layer does not impose a >= b


def test_dropping_the_strengthening_is_caught_by_the_certificate(tmp_path: Path, monkeypatch):
    from deepsade.constructions import polytope, polytope_train

    def unstrengthened(spec, split, rows, encoding):
        from dataclasses import replace

        return replace(spec, asserts=[replace(spec.asserts[i], index=p) for p, i in enumerate(split.remaining)])

    monkeypatch.setattr(polytope_train, "strengthened_spec", unstrengthened)
    assert polytope.strengthened_spec is not unstrengthened
    est = _train_mixed(tmp_path)
    # the data pull a above 1 on the premise region: the clamp then sets a = 1 < b there
    assert est.artifact_.certificate["verdict"] != "certified"


def _advice(text_or_path, frame, targets, **prepare_args):
    from deepsade.constructions.advise import advise
    from deepsade.ingest import prepare
    from deepsade.spec import parse_spec

    data = prepare(frame, targets, **prepare_args)
    spec = parse_spec_text(text_or_path, data.encoding) if isinstance(text_or_path, str) else \
        parse_spec(text_or_path, data.encoding)
    return {a.method: a for a in advise(spec, data.encoding, data.domain)}["polytope"]


def test_advise_says_where_the_clamps_apply():
    from deepsade.usecases import uc1_expenses, uc2_loan

    budget = _advice(BUDGET_RULES, _budget_frame(80, 0), ["housing", "food", "leisure"])
    assert budget.guarantees and "5 row(s)" in budget.reason and "DeepSaDe" not in budget.reason
    uc1 = uc1_expenses.CASE
    assert _advice(uc1.constraint_path, uc1.generate(80, 0), list(uc1.targets)).guarantees
    mixed = _advice(MIXED_RULES, _mixed_frame(80, 0), ["a", "b"])
    assert mixed.guarantees and "DeepSaDe trains assert(s) 2" in mixed.reason
    uc2 = uc2_loan.CASE
    loan = _advice(uc2.constraint_path, uc2.generate(80, 0), list(uc2.targets), task=uc2.task, positive=uc2.positive)
    assert loan.guarantees and "1 premise gate(s)" in loan.reason  # its premise is a box: a gate takes it
    nonlinear = _advice(MIXED_RULES.replace("(assert (<= a 1.0))", ""), _mixed_frame(80, 0), ["a", "b"])
    assert not nonlinear.guarantees and "assert 1" in nonlinear.reason
    # a premise on outputs blocks the clamps: advise names it, not the input premise a gate would take
    rng = np.random.default_rng(0)
    alarms = pd.DataFrame({"temp": rng.uniform(20, 120, 80), "hot": rng.integers(0, 2, 80),
                           "due": rng.integers(0, 2, 80)})
    blocked = _advice("(declare-const temp Real)(declare-const hot Real)(declare-const due Real)"
                      "(assert (=> (>= temp 100.0) (> hot 0.0)))(assert (=> (> hot 0.0) (> due 0.0)))",
                      alarms, ["hot", "due"], task="multilabel")
    assert not blocked.guarantees and blocked.reason.endswith("assert 2's premise reads output(s) hot: premise "
                                                              "gates read inputs only")


@pytest.mark.parametrize(("rules", "targets", "paper", "expected"), [
    (GATED_RULES, ["a", "b"], False, "polytope"),  # every assert taken (one through a gate)
    (MIXED_RULES, ["a", "b"], False, "deepsade"),  # a nonlinear premise: DeepSaDe's
    (COUPLED_RULES, ["a", "b"], False, "polytope"),  # a premise coupling two inputs, through a half-space gate
    (GATED_RULES, ["a", "b"], True, "deepsade"),  # --paper always trains the paper's DeepSaDe
])
def test_the_default_method_takes_the_clamps_only_when_they_take_every_assert(tmp_path, monkeypatch, rules, targets,
                                                                              paper, expected):
    """``method='auto'`` (deepsade train's default) resolves per rule; the model says which method trained it."""
    from deepsade import methods

    trained = []
    real = methods.get_method

    def record(name):
        trained.append(name)
        return real(name)

    monkeypatch.setattr("deepsade.estimator.get_method", record)
    path = tmp_path / "rules.smt2"
    path.write_text(rules)
    est = DeepSaDe(path, targets, hidden=(6,), epochs=1, lr=0.05, paper=paper)
    assert est.method == "auto"
    est.fit(_mixed_frame(120, 2))
    assert est.method_ == expected and trained[-1] == expected
    assert est.artifact_.method == expected and est.artifact_.certificate["verdict"] == "certified"
    assert est.artifact_.training["method_choice"].startswith(f"auto: {expected}")


class _ClampAbove(torch.nn.Module):
    """A base of one linear unit and a clamp ``min(f, 1)``: the smallest model ``constructed_loss`` reads."""

    def __init__(self):
        super().__init__()
        self.base = torch.nn.Linear(1, 1)

    @staticmethod
    def clamp(base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(base, torch.ones_like(base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(self.base(x), x)


def test_the_base_loss_counts_only_the_rows_the_clamp_moved():
    """Where the clamp leaves the output alone, the base term would repeat the output's loss and double the
    step there (dosing_children trained to 1.85x ffn's MSE that way); it applies only to moved rows."""
    from deepsade.constructions.hardnet import constructed_loss
    from deepsade.losses import data_loss

    model = _ClampAbove()
    with torch.no_grad():
        model.base.weight.fill_(1.0)
        model.base.bias.zero_()
    x = torch.tensor([[0.2], [0.5], [3.0], [4.0]])  # the last two rows are clamped to 1
    y = torch.tensor([[0.0], [0.0], [2.0], [2.0]])
    unclamped = constructed_loss("regression", model, x[:2], y[:2], 1.0)
    assert float(unclamped) == pytest.approx(float(data_loss("regression", model(x[:2]), y[:2])))
    mixed = constructed_loss("regression", model, x, y, 1.0)
    expected = data_loss("regression", model(x), y) + 0.5 * data_loss("regression", x[2:], y[2:])
    assert float(mixed) == pytest.approx(float(expected))
    mixed.backward()
    assert float(model.base.weight.grad) != 0.0  # the clamped rows still pull the base back


def test_a_violation_found_on_a_construction_is_an_input_a_real_row_could_have(tmp_path: Path):
    """The certificate covers the relaxed box, but a witness it calls *violated* must be realisable: one
    category per one-hot group, whole numbers in integer columns (a probe saw ward=icu 0.73, ward=general
    0.41)."""
    from deepsade.certify import certify_model
    from deepsade.realisable import RealisableInputs

    rng = np.random.default_rng(0)
    weight = rng.uniform(3, 90, 200)
    frame = pd.DataFrame({"age": rng.integers(1, 90, 200), "weight": weight,
                          "ward": rng.choice(["general", "icu", "pediatric"], 200), "dose": 10 * weight})
    rules = tmp_path / "r.smt2"
    rules.write_text("(declare-const weight Real)(declare-const dose Real)"
                     "(assert (and (>= dose 0.0) (<= dose (* 15.0 weight))))")
    model = DeepSaDe(rules, ["dose"], method="polytope", hidden=(8,), epochs=2, seed=0).fit(frame)
    art = model.artifact_
    stricter = parse_spec_text("(declare-const weight Real)(declare-const dose Real)(assert (<= dose (* 5.0 weight)))",
                               art.encoding)
    certificate = certify_model(art.model, stricter, art.encoding, art.domain, 1e-4)
    assert certificate["verdict"] == "violated"
    witness = certificate["asserts"][0]["violating_input_raw"]
    raw = [witness[name] for name in art.encoding.input_names]
    realisable = RealisableInputs.from_encoding(art.encoding)
    assert realisable.constrained
    offsets_scales = art.encoding.input_affine()
    scaled = [(Fraction(v) - Fraction(off)) / Fraction(scale) for v, (off, scale) in zip(raw, offsets_scales)]
    assert realisable.contains(scaled), witness


# a price at least its cost, and in the north at most 10 above a competitor priced at or above cost; the box lets
# the competitor's price fall far below cost, where the gate is 0 but a gate free in [0, 1] would bind
PRICING_RULES = """
(declare-const cost Real)
(declare-const competitor Real)
(declare-const north Real)
(declare-const price Real)
(assert (>= price cost))
(assert (<= price (* 2.5 cost)))
(assert (=> (and (= north 1.0) (>= competitor cost)) (<= price (+ competitor 10.0))))
"""


def test_a_gate_is_checked_for_room_at_its_own_value_not_anywhere_in_0_1(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    cost = rng.uniform(5, 50, n)
    frame = pd.DataFrame({"cost": cost, "competitor": cost * rng.uniform(0.3, 1.8, n),
                          "north": rng.integers(0, 2, n).astype(float)})
    frame["price"] = np.minimum(cost * rng.uniform(1.1, 2.0, n), np.where(
        (frame["north"] == 1) & (frame["competitor"] >= cost), frame["competitor"] + 5, np.inf))
    path = tmp_path / "pricing.smt2"
    path.write_text(PRICING_RULES)
    est = DeepSaDe(path, ["price"], hidden=(8, 4), epochs=2, lr=0.05)
    est.fit(frame)
    # before, the room check let the gate be any value in [0, 1] at every input ('its gate leaves no room')
    # and the rule went to DeepSaDe
    assert est.method_ == "polytope", est.artifact_.training["method_choice"]
    assert est.artifact_.certificate["verdict"] == "certified"
    assert "premise gate" in est.artifact_.training["construction"]
