"""The exact check of a one-output CEGIS assert, reduced to the assert's own inputs and built once per run.

For an assert on one output ``k`` the network is ``y = sum_pinned W_l s_l + b + v`` with
``v = sum_free W_l z_l``. Over the box, ``v`` takes exactly the values of ``[min_over_box, max_over_box]``
(a linear form over a box is onto that interval), and the assert sees the free coordinates only through
``y``: so some latent point violates the assert iff some ``(s, u)`` with ``u = b + v`` in
``[b + v_min, b + v_max]`` does. That z3 problem is far smaller than ``find_counterexample``'s.

What does not depend on the weights (the assert with the network substituted, as a formula in ``s``, ``u``,
the margin variable ``e`` and one parameter per pinned weight; the bounds of ``s`` and ``e``) is built once
per (assert, layout, pinned box, margin) and kept (``ReducedCheck``). A check substitutes the step's numbers
for the parameters (one z3 call) and asks a fresh solver, so every verdict is the one a solver built from
scratch gives. A non-linear assert has two ways to a verdict: z3's complete procedure for non-linear real
arithmetic (``qfnra-nlsat``) and the default solver. Which is faster depends on the rule, so the first few
checks time both and the faster goes first from then on; what it leaves undecided goes to the other. Every
verdict is z3's (sat with a model, or unsat), exact in rationals throughout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import z3

from deepsade.encoding.exact import UNKNOWN, Counterexample, Undecided, substitute_outputs
from deepsade.encoding.layout import LatentLayout, exact_term, sum_terms
from deepsade.numbers import z3_fraction
from deepsade.spec import Assert, input_var, output_var

_NONLINEAR_TACTIC = "qfnra-nlsat"
_TRIALS = 5  # checks timed per way of solving before the fastest goes first


class ReducedCheck:
    """The weight-independent part of the reduced check of one assert over one box of its input coordinates
    (``pinned_low``/``pinned_high``, in the order of ``assert_.inputs``) with one margin."""

    def __init__(self, assert_: Assert, layout: LatentLayout, pinned_low: Sequence[Fraction],
                 pinned_high: Sequence[Fraction], margin: Fraction):
        (self.output,) = assert_.outputs
        self.assert_ = assert_
        self.pinned = [layout.coordinate(j) for j in assert_.inputs]
        self.free = np.array([l for l in range(layout.n_latent) if l not in self.pinned], dtype=int)
        self.n_latent, self.n_out = layout.n_latent, layout.n_out
        self.inputs = [z3.Real(f"s!{j}") for j in assert_.inputs]
        self.pinned_weights = [z3.Real(f"w!{j}") for j in assert_.inputs]  # parameters, numbers at each check
        self.shift, self.perturbation = z3.Real("u"), z3.Real("e")
        exact = sum_terms([w * s for w, s in zip(self.pinned_weights, self.inputs)]) + self.shift
        substituted = [(input_var(j), s) for j, s in zip(assert_.inputs, self.inputs)]
        k = self.output
        self.violation = z3.Not(substitute_outputs(assert_.scaled, substituted + [(output_var(k), exact +
                                                                                     self.perturbation)],
                                                   substituted + [(output_var(k), exact)]))
        self.bounds = [c for s, lo, hi in zip(self.inputs, pinned_low, pinned_high)
                       for c in (s >= exact_term(lo), s <= exact_term(hi))]
        self.bounds += [self.perturbation >= -exact_term(margin), self.perturbation <= exact_term(margin)]
        self.linear = assert_.linear
        # how to make each fresh solver; which is faster depends on the rule (in one measurement nlsat took a third
        # of the default solver's time on obesity's premise and twice it on dosing's product), so the first checks
        # time each in turn and later ones start with the fastest, the others kept for what it leaves undecided
        self.makers = ([lambda: z3.SolverFor("QF_LRA")] if self.linear else
                       [lambda: z3.Tactic(_NONLINEAR_TACTIC).solver(), z3.Solver])
        self.seconds: list[list[float]] = [[] for _ in self.makers]
        self.order: list[int] | None = None

    def _solver_order(self) -> list[int]:
        """The makers in the order to try: each in turn first while it has fewer than ``_TRIALS`` timings,
        then the fastest by median first (decided once, when the last timing is in)."""
        if self.order is None:
            untried = [i for i, times in enumerate(self.seconds) if len(times) < _TRIALS]
            if untried:
                return untried[:1] + [i for i in range(len(self.makers)) if i != untried[0]]
            medians = [float(np.median(times)) for times in self.seconds]
            self.order = sorted(range(len(self.makers)), key=lambda i: medians[i])
        return self.order

    def check(self, weights: np.ndarray, biases: np.ndarray, low: Sequence, high: Sequence,
              timeout_s: float | None) -> Counterexample | Undecided | None:
        """A latent point of the box ``[low, high]`` (whose pinned coordinates are this check's box) where the
        assert fails for ``(weights, biases)``, None when there is none, ``UNKNOWN`` when z3 cannot decide."""
        row = np.array([Fraction(float(w)) for w in weights[self.output]], dtype=object)
        free = self.free
        box_low = np.array([Fraction(float(v)) for v in low], dtype=object)
        box_high = np.array([Fraction(float(v)) for v in high], dtype=object)
        at_min = np.where(row[free] >= 0, box_low[free], box_high[free])
        at_max = np.where(row[free] >= 0, box_high[free], box_low[free])
        v_min = Fraction(sum(row[free] * at_min, Fraction(0)))
        v_max = Fraction(sum(row[free] * at_max, Fraction(0)))
        bias = Fraction(float(biases[self.output]))
        violation = z3.substitute(self.violation, *[(w, exact_term(row[c]))
                                                    for w, c in zip(self.pinned_weights, self.pinned)])
        shift_bounds = [self.shift >= exact_term(bias + v_min), self.shift <= exact_term(bias + v_max)]
        verdict, model = z3.unknown, None
        deadline = time.perf_counter() + timeout_s if timeout_s else None
        for attempt, maker in enumerate(self._solver_order()):
            solver = self.makers[maker]()
            started = time.perf_counter()
            if deadline is not None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                solver.set("timeout", max(1, int(remaining * 1000)))
            solver.add(*self.bounds, *shift_bounds, violation)
            try:
                verdict = solver.check()
            except z3.Z3Exception:  # a tactic may refuse a goal outside its fragment: the next solver decides
                verdict = z3.unknown
            if attempt == 0 and self.order is None:  # an undecided first try counts as never finishing
                self.seconds[maker].append(time.perf_counter() - started if verdict != z3.unknown else np.inf)
            if verdict != z3.unknown:
                model = solver.model() if verdict == z3.sat else None
                break
        if verdict == z3.unsat:
            return None
        if model is None:
            return UNKNOWN
        value = lambda term: z3_fraction(model.eval(term, model_completion=True))  # noqa: E731
        found_v = value(self.shift) - bias
        share = (found_v - v_min) / (v_max - v_min) if v_max != v_min else Fraction(0)
        latent = list(box_low)
        for l, lo_corner, hi_corner in zip(free, at_min, at_max):
            latent[l] = lo_corner + share * (hi_corner - lo_corner)
        for s, c in zip(self.inputs, self.pinned):
            latent[c] = value(s)
        perturbation = [Fraction(0)] * self.n_out
        perturbation[self.output] = value(self.perturbation)
        return Counterexample(self.assert_.index, [Fraction(x) for x in latent], perturbation)


_CACHE_SIZE = 64
_checks: dict[tuple, ReducedCheck] = {}


def reduced_check_for(assert_: Assert, layout: LatentLayout, low: Sequence, high: Sequence,
                      margin: Fraction) -> ReducedCheck:
    """The ``ReducedCheck`` of this assert, layout, box of its input coordinates and margin, built on first use
    and kept (the trainer checks the same assert over the same input box at every step)."""
    pinned = [layout.coordinate(j) for j in assert_.inputs]
    pinned_low = tuple(Fraction(float(low[c])) for c in pinned)
    pinned_high = tuple(Fraction(float(high[c])) for c in pinned)
    key = (id(assert_), layout, pinned_low, pinned_high, Fraction(margin))
    check = _checks.get(key)
    if check is None or check.assert_ is not assert_:  # the kept assert stops its id from being reused
        if len(_checks) >= _CACHE_SIZE:
            _checks.clear()
        check = _checks[key] = ReducedCheck(assert_, layout, pinned_low, pinned_high, Fraction(margin))
    return check


def reduced_counterexample(assert_: Assert, layout: LatentLayout, weights: np.ndarray, biases: np.ndarray,
                           low: Sequence, high: Sequence, margin: Fraction, timeout_s: float | None
                           ) -> Counterexample | Undecided | None:
    """``find_counterexample`` for an assert on one output, with every latent coordinate but the assert's own
    inputs folded into one variable: the same verdict, from a far smaller z3 problem built once per run. A
    found ``v`` is mapped back to the latent point on the segment between the minimising and the maximising
    corner."""
    return reduced_check_for(assert_, layout, low, high, margin).check(weights, biases, low, high, timeout_s)
