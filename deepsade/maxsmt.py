"""MaxSMT over z3: hard constraints plus (weighted or unweighted) soft constraints.

One entry point, :func:`solve_maxsmt`, with three methods:

``"fu-malik"``
    Core-guided Fu & Malik (2006) on a single incremental ``z3.Solver`` (the loop and its greedy
    fallback live in ``deepsade.fu_malik``).  Every soft
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

import z3

from deepsade.fu_malik import Clock, fu_malik, holds, new_solver, satisfied, set_timeout

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
    clock = Clock(timeout_s)
    ctx = _context(hard, soft)
    if method == "fu-malik":
        status, model, calls = fu_malik(
            hard, soft, w, clock, ctx, logic, fallback, fallback_timeout_s, core_minimize
        )
    elif method == "z3-opt":
        status, model, calls = _z3_opt(hard, soft, w, clock, ctx)
    elif method == "first-model":
        status, model, calls = _first_model(hard, soft, clock, ctx, logic)
    else:
        raise ValueError(f"unknown MaxSMT method {method!r}; choose one of {METHODS}")
    return MaxSMTResult(status, model, satisfied(model, soft), calls, clock.elapsed())


def _first_model(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    clock: Clock,
    ctx: z3.Context,
    logic: str | None,
) -> tuple[str, z3.ModelRef | None, int]:
    s = new_solver(ctx, logic)
    s.add(*hard)
    set_timeout(s, clock.remaining_ms())
    r = s.check()
    if r == z3.sat:
        # Soft constraints are not looked at, so the model is only optimal if there are none.
        return ("satisfiable" if soft else "optimal"), s.model(), 1
    return ("unsat" if r == z3.unsat else "unknown"), None, 1


def _z3_opt(
    hard: list[z3.BoolRef],
    soft: list[z3.BoolRef],
    w: list[int],
    clock: Clock,
    ctx: z3.Context,
) -> tuple[str, z3.ModelRef | None, int]:
    opt = z3.Optimize(ctx=ctx)
    opt.add(*hard)
    for c, wi in zip(soft, w, strict=True):
        if wi > 0:
            opt.add_soft(c, wi)
    set_timeout(opt, clock.remaining_ms())
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
    if model is not None and all(holds(model, h) for h in hard):
        return "satisfiable", model, 1
    return "unknown", None, 1
