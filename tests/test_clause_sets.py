"""Clause sets of sign patterns (issue 13): the rule's own CNF as linear rows beside the cubes.

A cube fixes outputs over the whole domain; for "overheat or bearing wear -> maintenance due" together
with "temperature >= 100 -> overheat" the only cube left is "maintenance due everywhere". The clause
rows (maintenance - overheat >= 2 margin, maintenance - bearing wear >= 2 margin) fix no output, so the
network can predict maintenance only where an alarm is raised. These tests check the clauses, that
their check never accepts what the exact checker rejects, and that training with them certifies and
beats the cubes on such a rule (they fail when the clause set is removed)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from deepsade.certify import certify_model
from deepsade.encoding.dual import dual_satisfied
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.projection import project_last_layer
from deepsade.encoding.sign_pattern import ABOVE, BELOW, FREE, to_sign_pattern
from deepsade.ingest import prepare
from deepsade.spec import parse_spec, parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings
from deepsade.usecases import uc4_digits, uc5_sushi

ALARM_RULES = ("(declare-const x1 Real)(declare-const over Real)(declare-const wear Real)(declare-const due Real)"
               "(assert (=> (>= x1 0.8) (> over 0.0)))"
               "(assert (=> (or (> over 0.0) (> wear 0.0)) (> due 0.0)))")


def _alarms(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Three alarms from two inputs: overheat above x1 = 0.8, wear above x2 = 0.7, due when either."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 2))
    over = (x[:, 0] >= 0.8).astype(int)
    wear = (x[:, 1] > 0.7).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "over": over, "wear": wear, "due": over | wear})


def _alarm_spec():
    data = prepare(_alarms(), targets=["over", "wear", "due"], task="multilabel")
    return parse_spec_text(ALARM_RULES, data.encoding), data


def test_alarm_rule_gets_its_two_implications_as_clauses():
    spec, data = _alarm_spec()
    pattern = to_sign_pattern(spec.asserts)
    assert pattern is not None and [a.index for a in pattern.asserts] == [1]  # the first assert reads x1
    names = [data.encoding.output_names[k] for k in pattern.outputs]
    assert names == ["over", "wear", "due"]
    # cubes: "due above" or "over and wear below"; clauses: (not over or due), (not wear or due)
    assert {tuple(c) for c in pattern.cubes} == {(FREE, FREE, ABOVE), (BELOW, BELOW, FREE)}
    assert len(pattern.clause_sets) == 1
    assert {tuple(c) for c in pattern.clause_sets[0]} == {(BELOW, FREE, ABOVE), (FREE, BELOW, ABOVE)}


def test_uc4_clauses_are_the_prime_implicates_and_uc5_offers_none():
    frame = uc4_digits.generate(100, seed=0)
    data = prepare(frame, targets=uc4_digits.TARGETS, task=uc4_digits.TASK)
    pattern = to_sign_pattern(parse_spec(str(uc4_digits.CASE.constraint_path), data.encoding).asserts)
    digit = [int(data.encoding.output_names[k].split("_")[1]) for k in pattern.outputs]
    found = {frozenset(d for d, side in zip(digit, clause) if side == ABOVE) for clause in pattern.clause_sets[0]}
    assert not (pattern.clause_sets[0] == BELOW).any()  # the rule is monotone
    # a prime implicate "some digit of S present": the digits outside S sum to at most 10, and S is minimal
    everything = frozenset(range(1, 10))
    expected = set()
    for r in range(1, 10):
        for s in itertools.combinations(range(1, 10), r):
            rest = everything - set(s)
            if sum(rest) <= 10 and all(sum(rest | {d}) > 10 for d in s):
                expected.add(frozenset(s))
    assert found == expected
    # UC5 ("exactly one positive per row and column"): the clause rows contradict each other, so none
    frame = uc5_sushi.generate(60, seed=0)
    data = prepare(frame, targets=uc5_sushi.TARGETS, task=uc5_sushi.TASK)
    assert to_sign_pattern(parse_spec(str(uc5_sushi.CASE.constraint_path), data.encoding).asserts).clause_sets == ()


@pytest.mark.parametrize("rules", ["alarms", "uc4"])
def test_clause_check_never_accepts_what_the_exact_checker_rejects(rules):
    if rules == "alarms":
        spec, data = _alarm_spec()
    else:
        frame = uc4_digits.generate(100, seed=0)
        data = prepare(frame, targets=uc4_digits.TARGETS, task=uc4_digits.TASK)
        spec = parse_spec(str(uc4_digits.CASE.constraint_path), data.encoding)
    n_out = len(data.encoding.output_names)
    layout = LatentLayout(5, (), n_out)
    pattern = to_sign_pattern(spec.asserts)
    clause_set = len(pattern.cubes)
    rng = np.random.default_rng(3)
    low, high = np.zeros(5), rng.uniform(0.5, 2.0, 5)
    margin = 1e-3
    verdicts = []
    for trial in range(10):
        w, b = rng.normal(size=(n_out, 5)), rng.normal(size=n_out)
        if trial % 2:  # half projected onto the clause rows, so acceptance occurs
            rows = pattern.rows(clause_set, n_out)
            w, b = project_last_layer(rows, layout, w, b, low, high, 2 * margin)
            assert all(dual_satisfied(d, w[None], b[None], low, high, margin)[0] for d in rows)
        accepted = bool(pattern.clause_set_holds(clause_set, w[None], b[None], low, high, margin)[0])
        exact = all(find_counterexample(a, layout, w, b, low, high, Fraction(margin), 30.0) is None
                    for a in pattern.asserts)
        assert exact or not accepted
        verdicts.append((accepted, exact))
    assert (True, True) in verdicts and (False, False) in verdicts


def test_clause_sets_are_off_under_paper_and_on_by_default():
    spec, data = _alarm_spec()
    paper = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(8, 6), epochs=1, paper=True))
    assert paper.encoder.sign_pattern.clause_sets == ()
    default = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(8, 6), epochs=1))
    assert len(default.encoder.sign_pattern.clause_sets) == 1
    assert any("clause set" in m for m in default.mechanisms)


def _due_accuracy(model, frame: pd.DataFrame, data) -> tuple[float, float]:
    import torch

    test = prepare(frame, targets=["over", "wear", "due"], task="multilabel", encoding=data.encoding,
                   domain=data.domain)
    with torch.no_grad():
        scores = model(torch.as_tensor(test.inputs, dtype=torch.float32)).numpy()
    due = list(data.encoding.output_names).index("due")
    predicted = scores[:, due] > 0
    return float((predicted == frame["due"].to_numpy().astype(bool)).mean()), float(predicted.mean())


def test_alarm_rule_trains_certified_and_beats_the_cube():
    """With clause sets the certified model predicts "due" only where it is due; with cubes only it is
    forced to predict it everywhere (the one cube the first assert leaves)."""
    spec, data = _alarm_spec()
    test_frame = _alarms(400, seed=1)
    accuracies = {}
    for clause_sets in (False, True):
        settings = TrainSettings(hidden=(16, 8), epochs=6, batch_size=10, lr=0.1, clause_sets=clause_sets)
        result = DeepSaDeTrainer(spec, data, settings).fit()
        certificate = certify_model(result.model, spec, data.encoding, data.domain, settings.output_margin)
        assert certificate["verdict"] == "certified"
        accuracies[clause_sets] = _due_accuracy(result.model, test_frame, data)
    cube_accuracy, cube_positive_share = accuracies[False]
    clause_accuracy, clause_positive_share = accuracies[True]
    assert cube_positive_share == 1.0  # the cube: "due" everywhere
    assert clause_positive_share < 0.9
    assert clause_accuracy > cube_accuracy + 0.1


def test_refit_keeps_the_clause_set_among_many_cubes():
    """UC4 has 26 cubes, more than the refit's 16 programs: with clause sets the refit solves the clause set
    and the cubes the current weights keep, instead of skipping."""
    frame = uc4_digits.generate(120, seed=0)
    data = prepare(frame, targets=uc4_digits.TARGETS, task=uc4_digits.TASK)
    spec = parse_spec(str(uc4_digits.CASE.constraint_path), data.encoding)
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(8, 6), epochs=1, refit=False))
    strategy = trainer.encoder.serving("sign-pattern")
    strategy.clause_set_chosen = True  # as if the warm-up had preferred it (on UC4 a cube wins: next test)
    strategy.first_choice = lambda warmup, margins: 26
    trainer.first_feasible()
    pieces = trainer.refit_sign_pattern(trainer.box())
    assert len(pieces.clause_sets) == 1 and pieces.n_choices <= 16
    assert trainer.encoder.sign_pattern.clause_set_holds(26, trainer.model.last.weight.detach().double().numpy()[None],
                                                         trainer.model.last.bias.detach().double().numpy()[None],
                                                         *trainer.box().whole, trainer.check_margin)[0]
    cubes_only = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(8, 6), epochs=1, refit=False, clause_sets=False))
    cubes_only.first_feasible()
    assert cubes_only.refit_sign_pattern(cubes_only.box()).n_choices == 26  # too many: the refit is skipped


def test_a_cube_that_fits_better_withdraws_the_clause_set():
    """On UC4 the warm-up prefers a cube (the clause rows sum nine scores over a wide box): the clause set is
    withdrawn and the trainer is the cubes-only one; on the alarm rule the clause set wins."""
    frame = uc4_digits.generate(300, seed=0)
    data = prepare(frame, targets=uc4_digits.TARGETS, task=uc4_digits.TASK)
    spec = parse_spec(str(uc4_digits.CASE.constraint_path), data.encoding)
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(50, 50, 10), batch_size=10))
    strategy = trainer.encoder.serving("sign-pattern")
    choice = strategy.first_choice(trainer._warmup, trainer.margins)
    assert choice < 26 and not strategy.clause_set_chosen
    assert trainer.encoder.sign_pattern.clause_sets == ()
    spec, data = _alarm_spec()
    trainer = DeepSaDeTrainer(spec, data, TrainSettings(hidden=(16, 8), batch_size=10))
    strategy = trainer.encoder.serving("sign-pattern")
    assert strategy.first_choice(trainer._warmup, trainer.margins) == 2 and strategy.clause_set_chosen
    assert len(trainer.encoder.sign_pattern.clause_sets) == 1
