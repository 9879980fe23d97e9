"""Core-guided MaxSMT over one incremental z3 solver: Fu & Malik (2006), weighted as WPM1 (Ansotegui,
Bonet & Levy 2009), with a greedy anytime fallback for when the budget runs out before any model.

``deepsade.maxsmt.solve_maxsmt`` is the entry point (and its module doc describes the algorithm); this
module holds the loop itself and the small solver helpers (a countdown clock, timeouts, model checks)
that every method there shares.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import z3


class Clock:
    """Countdown over an optional budget in seconds."""

    def __init__(self, budget_s: float | None) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining_ms(self) -> int | None:
        """Milliseconds left (None: unlimited); 0 means the budget is spent."""
        if self.budget_s is None:
            return None
        return max(0, int((self.budget_s - self.elapsed()) * 1000))


def set_timeout(obj: z3.Solver | z3.Optimize, ms: int | None) -> None:
    # z3's default (UINT_MAX) is "no timeout"; the value must be re-set before each call
    # because the budget counts down.
    obj.set("timeout", 4294967295 if ms is None else max(1, ms))


def holds(model: z3.ModelRef, formula: z3.BoolRef) -> bool:
    # A formula whose evaluation is not a Boolean constant (e.g. a quantifier the model
    # evaluator cannot decide) is conservatively reported as not satisfied.
    return z3.is_true(model.eval(formula, model_completion=True))


def satisfied(model: z3.ModelRef | None, soft: Sequence[z3.BoolRef]) -> list[bool]:
    if model is None:
        return [False] * len(soft)
    return [holds(model, c) for c in soft]


def new_solver(ctx: z3.Context, logic: str | None) -> z3.Solver:
    return z3.Solver(ctx=ctx) if logic is None else z3.SolverFor(logic, ctx=ctx)


class _Names:
    """Auxiliary Booleans named ``prefix!N`` with a counter per call.

    Not ``z3.FreshBool``: z3 keeps every symbol name it ever saw for the life of the process, and fresh
    names are new each call, so a long training run (thousands of calls) grew by about 1 MiB per 1,000
    calls (scripts/bench_memory.py). Names reused across calls cost nothing: each call has its own solver."""

    def __init__(self, ctx: z3.Context) -> None:
        self.ctx = ctx
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> z3.BoolRef:
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        return z3.Bool(f"{prefix}!{n}", self.ctx)


def _exactly_one(literals: list[z3.BoolRef]) -> z3.BoolRef:
    """Pseudo-Boolean exactly-one over the relaxation variables of one core."""
    return z3.PbEq([(lit, 1) for lit in literals], 1)


@dataclass
class _Soft:
    """One (possibly split) copy of a soft constraint inside the WPM1 loop."""

    formula: z3.BoolRef  # original constraint disjoined with its relaxation variables
    weight: int
    indicator: z3.BoolRef


def fu_malik(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    w: list[int],
    clock: Clock,
    ctx: z3.Context,
    logic: str | None,
    fallback: bool,
    fallback_timeout_s: float | None,
    core_minimize: bool,
) -> tuple[str, z3.ModelRef | None, int]:
    s = new_solver(ctx, logic)
    if core_minimize:
        s.set("core.minimize", True)
    s.add(*hard)
    fresh = _Names(ctx)

    def guarded(formula: z3.BoolRef, weight: int) -> _Soft:
        a = fresh("soft")
        s.add(z3.Implies(a, formula))
        return _Soft(formula, weight, a)

    # Keyed by the indicator's AST id; zero-weight constraints never matter.
    active: dict[int, _Soft] = {}
    for c, wi in zip(soft, w, strict=True):
        if wi > 0:
            e = guarded(c, wi)
            active[e.indicator.get_id()] = e

    calls = 0
    while True:
        ms = clock.remaining_ms()
        if ms == 0:
            break
        set_timeout(s, ms)
        r = s.check(*[e.indicator for e in active.values()])
        calls += 1
        if r == z3.sat:
            return "optimal", s.model(), calls
        if r != z3.unsat:
            break
        core = [active[k] for k in (lit.get_id() for lit in s.unsat_core()) if k in active]
        if not core:
            # Relaxation constraints are always satisfiable on their own, so a core without
            # soft indicators means the hard part alone is unsatisfiable.
            return "unsat", None, calls
        w_min = min(e.weight for e in core)
        if len(core) == 1 and core[0].weight == w_min:
            # exactly-one over a single relaxation variable forces it true: just drop the copy.
            del active[core[0].indicator.get_id()]
            continue
        relax = []
        for e in core:
            r_var = fresh("relax")
            relax.append(r_var)
            relaxed = guarded(z3.Or(e.formula, r_var), w_min)
            if e.weight > w_min:
                # WPM1 split: the unrelaxed copy keeps the weight not yet paid for.
                e.weight -= w_min
            else:
                del active[e.indicator.get_id()]
            active[relaxed.indicator.get_id()] = relaxed
        # The exactly-one is what makes this Fu-Malik: without it every constraint of the
        # core could be relaxed at once and the answer would not be maximal.
        s.add(_exactly_one(relax))

    # Out of time (or z3 unknown): every answer so far was unsat, so there is no model yet.
    if fallback:
        status, model, extra = _greedy(hard, soft, w, ctx, logic, Clock(fallback_timeout_s))
        calls += extra
        if status != "unknown":
            return status, model, calls
    return "unknown", None, calls


def _greedy(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    w: list[int],
    ctx: z3.Context,
    logic: str | None,
    clock: Clock,
) -> tuple[str, z3.ModelRef | None, int]:
    """Anytime fallback: a model of ``hard``, then soft constraints added greedily.

    Soft constraints are tried in decreasing weight; each one the current model already
    satisfies is kept without a call, any other is kept when ``hard`` + kept + it is ``sat``
    within the remaining budget.  Returns ``"satisfiable"`` with the last model (a maximal
    set if the budget sufficed, not a maximum one), ``"unsat"`` or ``"unknown"``.
    """
    # A fresh solver: measured on the tests' hard_problem, the incremental Fu-Malik solver
    # that had just timed out after 10 s could not find a model of the hard part in 5 s; a
    # fresh one found it in 6 ms.
    s = new_solver(ctx, logic)
    s.add(*hard)
    set_timeout(s, clock.remaining_ms())
    r = s.check()
    calls = 1
    if r != z3.sat:
        return ("unsat" if r == z3.unsat else "unknown"), None, calls
    model = s.model()
    fresh = _Names(ctx)
    kept: list[z3.BoolRef] = []
    for i in sorted(range(len(soft)), key=lambda i: -w[i]):
        if w[i] == 0:
            continue
        a = fresh("keep")
        s.add(z3.Implies(a, soft[i]))
        if holds(model, soft[i]):
            kept.append(a)
            continue
        ms = clock.remaining_ms()
        if ms == 0:
            break
        set_timeout(s, ms)
        calls += 1
        r = s.check(*kept, a)
        if r == z3.sat:
            model = s.model()
            kept.append(a)
        elif r != z3.unsat:
            break
    return "satisfiable", model, calls
