"""MaxSMT: Fu-Malik (and WPM1) against brute force and z3's Optimize, status semantics, timeouts."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest
import z3

import deepsade.fu_malik as fu_malik
import deepsade.maxsmt as maxsmt
from deepsade.maxsmt import MaxSMTResult, model_values, solve_maxsmt

N_INSTANCES = 30


def bool_instance(seed: int) -> tuple[list[z3.BoolRef], list[z3.BoolRef]]:
    """Random 3-CNF hard part over 5 Booleans, 6-10 soft clauses of 1-2 literals."""
    rng = random.Random(seed)
    xs = [z3.Bool(f"b{seed}_{i}") for i in range(5)]

    def lit() -> z3.BoolRef:
        x = xs[rng.randrange(5)]
        return x if rng.random() < 0.5 else z3.Not(x)

    hard = [z3.Or([lit() for _ in range(3)]) for _ in range(rng.randint(1, 4))]
    soft = [z3.Or([lit() for _ in range(rng.randint(1, 2))]) for _ in range(rng.randint(6, 10))]
    return hard, soft


def lra_instance(seed: int) -> tuple[list[z3.BoolRef], list[z3.BoolRef]]:
    """Box [-2, 2]^3 plus 0-2 random rows hard; 6-10 random rows (some disjunctions of two) soft."""
    rng = random.Random(seed)
    xs = [z3.Real(f"x{seed}_{i}") for i in range(3)]

    def row() -> z3.BoolRef:
        return z3.Sum([rng.randint(-3, 3) * x for x in xs]) <= rng.randint(-2, 2)

    hard = [z3.And(x >= -2, x <= 2) for x in xs] + [row() for _ in range(rng.randint(0, 2))]
    soft = [row() if rng.random() < 0.7 else z3.Or(row(), row()) for _ in range(rng.randint(6, 10))]
    return hard, soft


def brute_force(hard, soft, weights=None) -> int | None:
    """Maximum total weight of a subset of soft satisfiable with hard (None: hard unsat)."""
    weights = weights or [1] * len(soft)
    s = z3.Solver()
    s.add(hard)
    if s.check() != z3.sat:
        return None
    best = 0
    for subset in itertools.product([False, True], repeat=len(soft)):
        value = sum(w for w, chosen in zip(weights, subset) if chosen)
        if value <= best:
            continue
        if s.check([c for c, chosen in zip(soft, subset) if chosen]) == z3.sat:
            best = value
    return best


def assert_consistent(result: MaxSMTResult, hard, soft) -> None:
    """The model satisfies every hard constraint and exactly the soft ones reported."""
    assert result.model is not None
    for h in hard:
        assert z3.is_true(result.model.eval(h, model_completion=True))
    for c, sat in zip(soft, result.satisfied):
        assert z3.is_true(result.model.eval(c, model_completion=True)) == sat


@pytest.mark.parametrize("generator", [bool_instance, lra_instance], ids=["bool", "lra"])
def test_fu_malik_matches_brute_force_and_z3_opt(generator):
    for seed in range(N_INSTANCES):
        hard, soft = generator(seed)
        best = brute_force(hard, soft)
        fm = solve_maxsmt(hard, soft, method="fu-malik")
        opt = solve_maxsmt(hard, soft, method="z3-opt")
        if best is None:
            assert fm.status == opt.status == "unsat"
            continue
        assert fm.status == opt.status == "optimal", seed
        assert fm.n_satisfied == best == opt.n_satisfied, seed
        # Unweighted Fu-Malik: one unsat answer per falsified clause in the optimum, then sat.
        assert fm.n_solver_calls == len(soft) - best + 1
        assert_consistent(fm, hard, soft)
        assert_consistent(opt, hard, soft)


def test_core_minimize_and_logic_give_the_same_optimum():
    for seed in range(10):
        hard, soft = lra_instance(seed)
        best = brute_force(hard, soft)
        for kwargs in ({"core_minimize": True}, {"logic": "QF_LRA"}):
            r = solve_maxsmt(hard, soft, **kwargs)
            assert r.status == "optimal" and r.n_satisfied == best
            assert_consistent(r, hard, soft)


@pytest.mark.parametrize("generator", [bool_instance, lra_instance], ids=["bool", "lra"])
def test_weighted_wpm1_matches_brute_force_and_z3_opt(generator):
    for seed in range(15):
        hard, soft = generator(seed)
        rng = random.Random(1000 + seed)
        weights = [rng.choice([1, 2, 3, 5, 8]) for _ in soft]
        best = brute_force(hard, soft, weights)
        fm = solve_maxsmt(hard, soft, weights=weights)
        opt = solve_maxsmt(hard, soft, weights=weights, method="z3-opt")
        if best is None:
            assert fm.status == opt.status == "unsat"
            continue
        value = sum(w for w, sat in zip(weights, fm.satisfied) if sat)
        assert fm.status == "optimal" and value == best, seed
        assert sum(w for w, sat in zip(weights, opt.satisfied) if sat) == best
        assert_consistent(fm, hard, soft)


def test_zero_weight_is_ignored_and_bad_weights_rejected():
    x = z3.Bool("x")
    r = solve_maxsmt([], [x, z3.Not(x)], weights=[0, 1])
    assert r.status == "optimal" and r.satisfied == [False, True]
    with pytest.raises(ValueError, match="weights"):
        solve_maxsmt([], [x], weights=[1, 2])
    with pytest.raises(ValueError, match="non-negative integers"):
        solve_maxsmt([], [x], weights=[-1])
    with pytest.raises(ValueError, match="non-negative integers"):
        solve_maxsmt([], [x], weights=[0.5])
    with pytest.raises(ValueError, match="unknown MaxSMT method"):
        solve_maxsmt([], [x], method="maxres")


def test_exactly_one_is_what_makes_fu_malik_maximal(monkeypatch):
    """Without the exactly-one over a core's relaxation variables, every clause of a core can
    be relaxed at once and the answer is not maximal on some instances; with it, never."""
    pool = [lra_instance(seed) for seed in range(100, 200)]
    # z3's Optimize as the reference (cross-checked against brute force above), for speed.
    best = [solve_maxsmt(h, s, method="z3-opt").n_satisfied for h, s in pool]
    assert all(solve_maxsmt(h, s).n_satisfied == b for (h, s), b in zip(pool, best))

    monkeypatch.setattr(fu_malik, "_exactly_one", lambda literals: z3.BoolVal(True))
    broken = [solve_maxsmt(h, s).n_satisfied for h, s in pool]
    # Measured: 8-14 of these 100 instances come out non-maximal without the constraint.
    assert any(n < b for n, b in zip(broken, best))


def test_hard_unsat():
    x = z3.Real("x")
    hard = [x >= 1, x <= 0]
    for method in maxsmt.METHODS:
        r = solve_maxsmt(hard, [x >= 2], method=method)
        assert r.status == "unsat" and r.model is None and r.satisfied == [False]
    assert solve_maxsmt(hard, []).status == "unsat"


def test_empty_soft_is_optimal_with_hard_model():
    x = z3.Real("x")
    for method in maxsmt.METHODS:
        r = solve_maxsmt([x >= 1, x <= 2], [], method=method)
        assert r.status == "optimal" and r.satisfied == []
        assert 1 <= model_values(r.model, [x])[0] <= 2
    r = solve_maxsmt([], [])
    assert r.status == "optimal" and r.model is not None


def test_first_model_ignores_soft_and_is_not_optimal():
    x = z3.Real("x")
    r = solve_maxsmt([x >= 0, x <= 1], [x >= 0.5, x <= 0.5, x >= 3], method="first-model")
    assert r.status == "satisfiable" and r.n_solver_calls == 1
    assert r.satisfied[2] is False
    assert_consistent(r, [x >= 0, x <= 1], [x >= 0.5, x <= 0.5, x >= 3])


def hard_problem(seed: int = 0, n: int = 40, m: int = 80):
    """Random LRA MaxSMT that takes Fu-Malik well over 1 ms."""
    rng = random.Random(seed)
    xs = [z3.Real(f"h{seed}_{i}") for i in range(n)]

    def row() -> z3.BoolRef:
        return z3.Sum([rng.randint(-5, 5) * x for x in rng.sample(xs, 8)]) <= rng.randint(-3, 3)

    hard = [z3.And(x >= -1, x <= 1) for x in xs]
    soft = [z3.Or(row(), row()) if i % 3 else row() for i in range(m)]
    return hard, soft


@pytest.mark.parametrize("method", ["fu-malik", "z3-opt"])
def test_tiny_timeout_is_never_optimal(method):
    hard, soft = hard_problem()
    r = solve_maxsmt(hard, soft, method=method, timeout_s=0.001, fallback=False)
    assert r.status in ("unknown", "satisfiable")
    if method == "fu-malik":
        # Core-guided: every answer before the last is unsat, so no model exists yet.
        assert r.status == "unknown" and r.model is None and not any(r.satisfied)
    if r.status == "satisfiable":
        assert_consistent(r, hard, soft)


def test_timeout_fallback_gives_a_model_of_the_hard_part():
    hard, soft = hard_problem()
    r = solve_maxsmt(hard, soft, timeout_s=0.001, fallback=True, fallback_timeout_s=0.5)
    assert r.status == "satisfiable"
    assert_consistent(r, hard, soft)
    r = solve_maxsmt(hard, soft, timeout_s=0.0, fallback=False)
    assert r.status == "unknown" and r.n_solver_calls == 0
    x = z3.Real("x")
    r = solve_maxsmt([x >= 1, x <= 0], [x >= 2], timeout_s=0.0)
    assert r.status == "unsat"


def test_fallback_greedy_set_is_maximal_when_the_budget_suffices():
    for seed in range(10):
        hard, soft = lra_instance(seed)
        r = solve_maxsmt(hard, soft, timeout_s=0.0, fallback_timeout_s=None)
        assert r.status == "satisfiable"
        assert_consistent(r, hard, soft)
        kept = [c for c, sat in zip(soft, r.satisfied) if sat]
        s = z3.Solver()
        s.add(hard + kept)
        for c, sat in zip(soft, r.satisfied):
            if not sat:
                assert s.check(c) == z3.unsat


def test_model_values_are_exact_rationals():
    x, y, z = z3.Reals("x y z")
    r = solve_maxsmt([3 * x == 1, y == x + z3.RealVal("0.1")], [])
    assert model_values(r.model, [x, y, z]) == [Fraction(1, 3), Fraction(13, 30), Fraction(0)]
    n = z3.Int("n")
    r = solve_maxsmt([n == 7], [])
    assert model_values(r.model, [n, n + 1]) == [Fraction(7), Fraction(8)]
    s = z3.Solver()
    s.add(x * x == 2, x > 0)
    assert s.check() == z3.sat
    assert abs(float(model_values(s.model(), [x])[0]) - 2**0.5) < 1e-12
