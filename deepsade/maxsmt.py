"""MaxSMT over z3: hard constraints plus (weighted or unweighted) soft constraints.

One entry point, :func:`solve_maxsmt`, with three methods:

``"fu-malik"``
    Core-guided Fu & Malik (2006) on a single incremental ``z3.Solver``.  Every soft
    constraint ``c_i`` gets an indicator Boolean ``a_i`` with ``a_i => c_i'`` (``c_i'`` is
    ``c_i`` disjoined with its relaxation variables so far) and the solver is called with
    the indicators as assumptions.  On ``unsat`` the core is read: no indicator in the core
    means the hard part alone is unsatisfiable; otherwise every soft constraint in the
    core receives a *fresh* relaxation variable, gets a new indicator, and an exactly-one
    (``PbEq``) over the new relaxation variables is added as a hard constraint.  Unweighted,
    the number of ``unsat`` answers equals the number of soft constraints falsified in the
    optimum.  Weighted problems run WPM1 (Ansotegui, Bonet & Levy 2009), the weighted
    generalisation: a core's minimum weight ``w_min`` is paid, constraints of larger weight
    are split into an unrelaxed copy of weight ``w - w_min`` and a relaxed copy of weight
    ``w_min``.  With all weights equal WPM1 is exactly Fu-Malik.

``"z3-opt"``
    z3's own ``Optimize`` with ``add_soft`` (weights default to 1).

``"first-model"``
    A plain satisfiability check of the hard constraints only: the first model z3 finds,
    soft constraints ignored (SAT initialisation and the "legacy" baseline).

All methods return a :class:`MaxSMTResult`.  A z3 ``unknown`` is never reported as success:
a model is only returned when z3 answered ``sat`` for it (or, for ``z3-opt`` after a
timeout, when the best model so far is checked to satisfy every hard constraint).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

import z3

__all__ = ["METHODS", "MaxSMTResult", "model_values", "solve_maxsmt"]

METHODS = ("fu-malik", "z3-opt", "first-model")

# core.minimize off: on scripts/bench_maxsmt.py (results/bench_maxsmt.md, 3 seeds) it gave the
# same optima with the same number of calls (median 0.38 s vs 0.40 s where both proved optimality,
# within noise), and z3's core minimisation ignores the timeout: calls overran a 10 s + 1 s budget
# to 13-15 s, and a 60 s + 1 s budget to 71 s.  SolverFor("QF_LRA") was slower (median 0.58 s).
DEFAULT_CORE_MINIMIZE = False


class MaxSMTStatus(str, Enum):
    """How a MaxSMT call ended (a ``str`` enum: equal to its value, and written as it)."""

    OPTIMAL = "optimal"
    SATISFIABLE = "satisfiable"
    UNSAT = "unsat"
    UNKNOWN = "unknown"


@dataclass
class MaxSMTResult:
    """Outcome of one MaxSMT call.

    ``status`` is one of

    - ``"optimal"``: ``model`` satisfies the hard constraints and a maximum-weight set of
      soft constraints (for ``first-model``: only when there are no soft constraints);
    - ``"satisfiable"``: ``model`` satisfies the hard constraints, optimality not proven
      (``z3-opt``'s best model when time ran out, the ``fu-malik`` greedy fallback, or
      ``first-model`` with soft constraints);
    - ``"unsat"``: the hard constraints alone are unsatisfiable, ``model`` is ``None``;
    - ``"unknown"``: no model (timeout or solver ``unknown`` before any model).

    Models from ``fu-malik`` also assign its auxiliary Booleans (``soft!N``, ``relax!N``,
    ``keep!N``); read the caller's variables with :func:`model_values` or ``model.eval``.

    ``satisfied[i]`` says whether the model satisfies the original soft constraint ``i``
    (all ``False`` without a model).  ``n_solver_calls`` counts ``check`` calls,
    ``seconds`` is the wall time of the whole call.
    """

    status: MaxSMTStatus
    model: z3.ModelRef | None
    satisfied: list[bool] = field(default_factory=list)
    n_solver_calls: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.status = MaxSMTStatus(self.status)  # the solvers below return the plain strings

    @property
    def has_model(self) -> bool:
        """True when ``model`` is a model of the hard constraints (optimal or not)."""
        return self.model is not None

    @property
    def n_satisfied(self) -> int:
        """Number of soft constraints the model satisfies."""
        return sum(self.satisfied)


def model_values(model: z3.ModelRef, variables: Sequence[z3.ArithRef]) -> list[Fraction]:
    """Exact values of arithmetic ``variables`` (or terms) in ``model``, as Fractions.

    Unassigned variables evaluate to 0 (``model_completion=True``).  Rational and integer
    values are exact.  Irrational algebraic numbers (impossible for linear real
    arithmetic) are approximated to 30 decimal digits.  Raises ``ValueError`` when a term
    does not evaluate to a numeral.
    """
    out: list[Fraction] = []
    for v in variables:
        val = model.eval(v, model_completion=True)
        if z3.is_rational_value(val):
            out.append(Fraction(val.numerator_as_long(), val.denominator_as_long()))
        elif z3.is_int_value(val):
            out.append(Fraction(val.as_long()))
        elif z3.is_algebraic_value(val):
            approx = val.approx(30)
            out.append(Fraction(approx.numerator_as_long(), approx.denominator_as_long()))
        else:
            raise ValueError(f"{v} evaluates to {val}, not a numeral")
    return out


class _Clock:
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


def _set_timeout(obj: z3.Solver | z3.Optimize, ms: int | None) -> None:
    # z3's default (UINT_MAX) is "no timeout"; the value must be re-set before each call
    # because the budget counts down.
    obj.set("timeout", 4294967295 if ms is None else max(1, ms))


def _holds(model: z3.ModelRef, formula: z3.BoolRef) -> bool:
    # A formula whose evaluation is not a Boolean constant (e.g. a quantifier the model
    # evaluator cannot decide) is conservatively reported as not satisfied.
    return z3.is_true(model.eval(formula, model_completion=True))


def _satisfied(model: z3.ModelRef | None, soft: Sequence[z3.BoolRef]) -> list[bool]:
    if model is None:
        return [False] * len(soft)
    return [_holds(model, c) for c in soft]


def _context(hard: Sequence[z3.BoolRef], soft: Sequence[z3.BoolRef]) -> z3.Context:
    for f in (*hard, *soft):
        return f.ctx
    return z3.main_ctx()


def _check_weights(weights: Sequence[int] | None, n: int) -> list[int]:
    if weights is None:
        return [1] * n
    if len(weights) != n:
        raise ValueError(f"{len(weights)} weights for {n} soft constraints")
    out = []
    for w in weights:
        if isinstance(w, bool) or int(w) != w or w < 0:
            raise ValueError(f"soft weights must be non-negative integers, got {w!r}")
        out.append(int(w))
    return out


def _new_solver(ctx: z3.Context, logic: str | None) -> z3.Solver:
    return z3.Solver(ctx=ctx) if logic is None else z3.SolverFor(logic, ctx=ctx)


def solve_maxsmt(
    hard: Sequence[z3.BoolRef],
    soft: Sequence[z3.BoolRef],
    *,
    method: str = "fu-malik",
    timeout_s: float | None = 10.0,
    weights: Sequence[int] | None = None,
    logic: str | None = None,
    fallback: bool = True,
    fallback_timeout_s: float | None = 1.0,
    core_minimize: bool = DEFAULT_CORE_MINIMIZE,
) -> MaxSMTResult:
    """Find a model of ``hard`` that satisfies a maximum-weight subset of ``soft``.

    ``method`` is ``"fu-malik"`` (core-guided; weighted problems via WPM1), ``"z3-opt"``
    (z3's ``Optimize``) or ``"first-model"`` (hard constraints only, see module doc).
    ``weights`` are non-negative integers, one per soft constraint (default: all 1).
    ``timeout_s`` bounds the solving time (``None``: unlimited); every solver call gets
    the remaining budget as its z3 timeout.  ``logic`` is passed to ``z3.SolverFor`` for
    ``fu-malik``/``first-model`` (default: a plain ``z3.Solver``).

    Fallback (``fu-malik`` only): when it runs out of time (or z3 says ``unknown``) no model exists
    yet, because every answer so far was ``unsat``.  With ``fallback=True`` a greedy pass
    gets ``fallback_timeout_s`` more seconds on a fresh solver: first a model of the hard
    constraints alone, then soft constraints added one at a time (heaviest first) while
    ``hard`` + the ones kept stays satisfiable.  Any model found is returned as
    ``"satisfiable"`` (optimality not proven), otherwise ``"unknown"``.  The worst-case wall
    time of a ``fu-malik`` call is therefore about ``timeout_s + fallback_timeout_s``
    (``fallback_timeout_s=None``: unlimited fallback).

    ``core_minimize`` sets z3's ``core.minimize`` for ``fu-malik`` (smaller cores, more
    expensive calls; off by default, see results/bench_maxsmt.md).

    Never returns a model z3 did not confirm; ``satisfied`` is computed by evaluating each
    original soft constraint in the returned model with ``model_completion=True``.
    """
    hard = list(hard)
    soft = list(soft)
    w = _check_weights(weights, len(soft))
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0 or None, got {timeout_s}")
    clock = _Clock(timeout_s)
    ctx = _context(hard, soft)
    if method == "fu-malik":
        status, model, calls = _fu_malik(
            hard, soft, w, clock, ctx, logic, fallback, fallback_timeout_s, core_minimize
        )
    elif method == "z3-opt":
        status, model, calls = _z3_opt(hard, soft, w, clock, ctx)
    elif method == "first-model":
        status, model, calls = _first_model(hard, soft, clock, ctx, logic)
    else:
        raise ValueError(f"unknown MaxSMT method {method!r}; choose one of {METHODS}")
    return MaxSMTResult(status, model, _satisfied(model, soft), calls, clock.elapsed())


def _first_model(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    clock: _Clock,
    ctx: z3.Context,
    logic: str | None,
) -> tuple[str, z3.ModelRef | None, int]:
    s = _new_solver(ctx, logic)
    s.add(*hard)
    _set_timeout(s, clock.remaining_ms())
    r = s.check()
    if r == z3.sat:
        # Soft constraints are not looked at, so the model is only optimal if there are none.
        return ("satisfiable" if soft else "optimal"), s.model(), 1
    return ("unsat" if r == z3.unsat else "unknown"), None, 1


def _z3_opt(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    w: list[int],
    clock: _Clock,
    ctx: z3.Context,
) -> tuple[str, z3.ModelRef | None, int]:
    opt = z3.Optimize(ctx=ctx)
    opt.add(*hard)
    for c, wi in zip(soft, w, strict=True):
        if wi > 0:
            opt.add_soft(c, wi)
    _set_timeout(opt, clock.remaining_ms())
    r = opt.check()
    if r == z3.sat:
        return "optimal", opt.model(), 1
    if r == z3.unsat:
        return "unsat", None, 1
    # After a timeout Optimize may still hold its best model so far; keep it only if it
    # provably satisfies every hard constraint.
    try:
        model = opt.model()
    except z3.Z3Exception:
        return "unknown", None, 1
    if model is not None and all(_holds(model, h) for h in hard):
        return "satisfiable", model, 1
    return "unknown", None, 1


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


def _fu_malik(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    w: list[int],
    clock: _Clock,
    ctx: z3.Context,
    logic: str | None,
    fallback: bool,
    fallback_timeout_s: float | None,
    core_minimize: bool,
) -> tuple[str, z3.ModelRef | None, int]:
    s = _new_solver(ctx, logic)
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
        _set_timeout(s, ms)
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
        status, model, extra = _greedy(hard, soft, w, ctx, logic, _Clock(fallback_timeout_s))
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
    clock: _Clock,
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
    s = _new_solver(ctx, logic)
    s.add(*hard)
    _set_timeout(s, clock.remaining_ms())
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
        if _holds(model, soft[i]):
            kept.append(a)
            continue
        ms = clock.remaining_ms()
        if ms == 0:
            break
        _set_timeout(s, ms)
        calls += 1
        r = s.check(*kept, a)
        if r == z3.sat:
            model = s.model()
            kept.append(a)
        elif r != z3.unsat:
            break
    return "satisfiable", model, calls
