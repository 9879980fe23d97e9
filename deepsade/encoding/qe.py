"""The ``qe`` strategy (chosen explicitly only): the quantified formula through z3's
quantifier-elimination tactic, leaving a quantifier-free constraint on the weights."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import z3

from deepsade.encoding.base import LatentBoxes, Strategy
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.quantified import quantified_formula
from deepsade.spec import Assert


def eliminate_quantifiers(formula: z3.BoolRef, timeout_s: float | None = None) -> z3.BoolRef:
    """z3's qe tactic on a quantified formula; the result is quantifier-free in the weights."""
    tactic = z3.Tactic("qe")
    if timeout_s:
        tactic = z3.TryFor(tactic, int(timeout_s * 1000))
    goals = tactic(formula)
    return z3.And(*[g.as_expr() for g in goals])


class QeStrategy(Strategy):
    """Every assert quantifier-eliminated by z3 (a failed elimination raises ``z3.Z3Exception``)."""

    name = "qe"
    user_selectable = True
    in_auto = False

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> QeStrategy | None:
        return cls(asserts, layout) if asserts else None

    def hard_constraints(self, assert_: Assert, weights, biases, boxes: LatentBoxes, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        low, high = boxes.for_assert(assert_.index)
        formula = quantified_formula(assert_, self.layout, weights, biases, low, high, margin)
        return [eliminate_quantifiers(formula, qe_timeout_s)]
