"""Sign-pattern asserts: the cube check never accepts what the exact checker rejects, and the use-case
rules (UC4 digit sum, UC5 orderings) get the cubes they should."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from deepsade.certify import certify_model
from deepsade.encoding.dual import dual_satisfied
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.projection import project_last_layer
from deepsade.encoding.sign_pattern import ABOVE, BELOW, FREE, to_sign_pattern
from deepsade.ingest import prepare
from deepsade.spec import parse_spec, parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings
from deepsade.usecases import uc4_digits, uc5_sushi


def _use_case_spec(module, n_rows: int):
    frame = module.generate(n_rows, seed=0)
    data = prepare(frame, targets=module.TARGETS, task=module.TASK)
    return parse_spec(str(module.CASE.constraint_path), data.encoding), data


def test_uc5_cubes_are_the_24_orderings():
    spec, _ = _use_case_spec(uc5_sushi, 60)
    pattern = to_sign_pattern(spec.asserts)
    assert pattern is not None and len(pattern.asserts) == 8
    assert pattern.cubes.shape == (24, 16)
    assert not (pattern.cubes == FREE).any()
    matrices = (pattern.cubes == ABOVE).reshape(24, 4, 4)
    assert (matrices.sum(axis=1) == 1).all() and (matrices.sum(axis=2) == 1).all()
    assert len({m.tobytes() for m in matrices}) == 24


def test_uc4_cubes_are_the_minimal_digit_sets_above_ten():
    spec, data = _use_case_spec(uc4_digits, 300)
    pattern = to_sign_pattern(spec.asserts)
    assert pattern is not None
    digit = {k: int(data.encoding.output_names[k].split("_")[1]) for k in pattern.outputs}
    for cube in pattern.cubes:
        assert not (cube == BELOW).any()  # the rule is monotone: no digit is ever forced absent
        present = [digit[k] for k, side in zip(pattern.outputs, cube) if side == ABOVE]
        assert sum(present) > 10
        assert all(sum(present) - d <= 10 for d in present)  # minimal
    minimal_sets = {frozenset(s) for r in range(1, 10) for s in itertools.combinations(range(1, 10), r)
                    if sum(s) > 10 and all(sum(s) - d <= 10 for d in s)}
    found = {frozenset(digit[k] for k, side in zip(pattern.outputs, cube) if side == ABOVE)
             for cube in pattern.cubes}
    assert found == minimal_sets


@pytest.mark.parametrize("module", [uc4_digits, uc5_sushi])
def test_cube_check_never_accepts_what_the_exact_checker_rejects(module):
    spec, data = _use_case_spec(module, 200)
    n_out = len(data.encoding.output_names)
    layout = LatentLayout(5, (), n_out)
    encoder = Encoder(spec, layout, "auto")
    assert set(encoder.kinds.values()) == {"sign-pattern"}
    pattern = encoder.sign_pattern
    rng = np.random.default_rng(5)
    low, high = np.zeros(5), rng.uniform(0.5, 2.0, 5)
    margin = 1e-3
    verdicts = []
    for trial in range(12):
        w, b = rng.normal(size=(n_out, 5)), rng.normal(size=n_out)
        if trial % 2:  # half of the candidates projected onto a random cube, so acceptance occurs
            cube = int(rng.integers(len(pattern.cubes)))
            w, b = project_last_layer(pattern.rows(cube, n_out), layout, w, b, low, high, 2 * margin)
            assert all(dual_satisfied(d, w[None], b[None], low, high, margin)[0]
                       for d in pattern.rows(cube, n_out))
        accepted = bool(pattern.satisfied(w[None], b[None], low, high, margin)[0])
        exact = all(find_counterexample(a, layout, w, b, low, high, Fraction(margin), 30.0) is None
                    for a in spec.asserts)
        assert exact or not accepted
        verdicts.append((accepted, exact))
    assert (True, True) in verdicts and (False, False) in verdicts


def test_outputs_read_outside_a_threshold_stay_with_cegis(encoding):
    decls = "(declare-const x1 Real)(declare-const y1 Real)(declare-const y2 Real)"
    for rule in ["(assert (> (+ (ite (> y1 0) 1 0) y2) 0))",  # y2 summed directly
                 "(assert (or (> y1 0) (> y1 1)))",  # two thresholds on y1
                 "(assert (=> (> x1 0.5) (> (+ (ite (> y1 0) 1 0) (ite (> y2 0) 1 0)) 0)))"]:  # an input
        spec = parse_spec_text(decls + rule, encoding)
        assert to_sign_pattern(spec.asserts) is None, rule


def test_disjoint_rows_project_in_closed_form_like_the_lp(encoding):
    """Rows on distinct outputs split into closed forms; the same rows twice force the LP: same distance."""
    spec = parse_spec_text("(declare-const y1 Real)(declare-const y2 Real)"
                           "(assert (= (+ (ite (> y1 0) 1 0) (ite (> y2 0) 1 0)) 1))", encoding)
    pattern = to_sign_pattern(spec.asserts)
    assert pattern is not None and len(pattern.cubes) == 2  # y1 above and y2 below, or the reverse
    layout = LatentLayout(4, (), 2)
    rng = np.random.default_rng(11)
    low = np.zeros(4)
    for cube in range(2):
        rows = pattern.rows(cube, 2)
        high = rng.uniform(0.5, 3, 4)
        target_w, target_b = rng.normal(size=(2, 4)), rng.normal(size=2)
        closed = project_last_layer(rows, layout, target_w, target_b, low, high, 1e-3)
        lp = project_last_layer(rows + rows, layout, target_w, target_b, low, high, 1e-3)
        distance = [np.abs(w - target_w).sum() + np.abs(b - target_b).sum() for w, b in (closed, lp)]
        assert distance[0] == pytest.approx(distance[1], rel=1e-6, abs=1e-9)
        assert pattern.satisfied(closed[0][None], closed[1][None], low, high, 0.5e-3)[0]


@pytest.mark.parametrize("seed", range(6))
def test_side_projections_match_the_general_projection(encoding, seed):
    """The vectorised knapsack per bit and side gives the same L1 distance as the general projection."""
    spec = parse_spec_text("(declare-const y1 Real)(declare-const y2 Real)"
                           "(assert (= (+ (ite (> y1 0.25) 1 0) (ite (> y2 -0.5) 1 0)) 1))", encoding)
    pattern = to_sign_pattern(spec.asserts)
    rng = np.random.default_rng(seed)
    n_lat = 5
    layout = LatentLayout(n_lat, (), 2)
    low = rng.uniform(0, 1.5, n_lat) * (rng.random(n_lat) < 0.5)  # some lo > 1: a weight beats the bias
    high = low + rng.uniform(0, 3, n_lat) * (rng.random(n_lat) < 0.8)  # some fixed coordinates
    target_w, target_b = rng.normal(size=(2, n_lat)), rng.normal(size=2)
    rows_w, rows_b, distance = pattern.side_projections(target_w, target_b, low, high, 1e-3)
    for side_index, side in enumerate((ABOVE, BELOW)):
        for bit in range(2):
            row = pattern.bit_row(bit, side, spec.asserts[0], 2)
            general = project_last_layer([row, row], layout, target_w, target_b, low, high, 1e-3)  # the LP
            k = pattern.outputs[bit]
            expected = np.abs(general[0] - target_w).sum() + np.abs(general[1] - target_b).sum()
            assert distance[side_index, bit] == pytest.approx(expected, rel=1e-6, abs=1e-9)
            w, b = target_w.copy(), target_b.copy()
            w[k], b[k] = rows_w[side_index, bit], rows_b[side_index, bit]
            assert dual_satisfied(row, w[None], b[None], low, high, 0.999e-3)[0]


@pytest.mark.parametrize("module", [uc4_digits, uc5_sushi])
def test_training_on_a_sign_pattern_needs_no_solver_and_certifies(module):
    spec, data = _use_case_spec(module, 150)
    settings = TrainSettings(hidden=(12, 8), epochs=2, batch_size=10)
    trainer = DeepSaDeTrainer(spec, data, settings)
    result = trainer.fit()
    assert set(trainer.encoder.kinds.values()) == {"sign-pattern"}
    assert sum(e.projection_hits for e in result.history) > 0
    assert sum(e.maxsmt_calls for e in result.history) == 0
    certificate = certify_model(result.model, spec, data.encoding, data.domain, settings.output_margin)
    assert certificate["verdict"] == "certified"


def test_first_cube_pins_the_output_the_data_supports():
    """Rule "y1 or y2 is positive": labels have l1 = 1 on nearly every row, l2 rarely; the warm-up picks
    the cube pinning l1, never the one pinning l2."""
    rng = np.random.default_rng(0)
    n = 300
    x = rng.uniform(0, 1, (n, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "l1": (rng.random(n) < 0.95).astype(int),
                          "l2": (x[:, 0] > 0.8).astype(int)})
    data = prepare(frame, targets=["l1", "l2"], task="multilabel")
    spec = parse_spec_text("(declare-const l1 Real)(declare-const l2 Real)"
                           "(assert (>= (+ (ite (> l1 0) 1 0) (ite (> l2 0) 1 0)) 1))", data.encoding)
    # cubes only: with clause sets on, the rule's own clause (l1 or l2) is the first piece instead
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(8,), epochs=1, batch_size=10, clause_sets=False))
    pattern = trainer.encoder.sign_pattern
    assert pattern is not None and len(pattern.cubes) == 2
    cube = pattern.cubes[trainer.fitted_cube()]
    assert cube[list(pattern.outputs).index(0)] == ABOVE and cube[list(pattern.outputs).index(1)] == FREE


def test_sign_pattern_beside_a_linear_rule_projects_through_the_lp():
    """A count rule (sign pattern) and a linear bound on a score (dual) share outputs: one polyhedron."""
    rng = np.random.default_rng(1)
    n = 200
    x = rng.uniform(0, 1, (n, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "l1": (x[:, 0] > 0.3).astype(int),
                          "l2": (x[:, 1] > 0.5).astype(int), "l3": (x[:, 0] + x[:, 1] > 1).astype(int)})
    data = prepare(frame, targets=["l1", "l2", "l3"], task="multilabel")
    spec = parse_spec_text("(declare-const l1 Real)(declare-const l2 Real)(declare-const l3 Real)"
                           "(assert (<= (+ (ite (> l1 0) 1 0) (ite (> l2 0) 1 0) (ite (> l3 0) 1 0)) 1))"
                           "(assert (<= l2 2.0))", data.encoding)
    settings = TrainSettings(hidden=(8, 6), epochs=2, batch_size=10)
    trainer = DeepSaDeTrainer(spec, data, settings)
    assert trainer.encoder.kinds == {0: "sign-pattern", 1: "dual"} and trainer.can_project
    result = trainer.fit()
    assert sum(e.projection_hits for e in result.history) > 0
    assert sum(e.maxsmt_calls for e in result.history) == 0
    certificate = certify_model(result.model, spec, data.encoding, data.domain, settings.output_margin)
    assert certificate["verdict"] == "certified"
