"""The ``dual-or`` strategy: a sound strengthening of linear disjunctions (``auto`` only).

``P => and_j (or_i A_ji)`` with linear conjunctions ``A_ji`` is enforced as: for every clause j, some
alternative i holds over the whole box. Everything it accepts the exact checker accepts too; where its
closed form says no, the exact checker decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.encoding.base import ClosedFormVerdict, LastLayer, LatentBoxes, Margins, Strategy
from deepsade.encoding.dual import (
    DualAssert,
    conclusion_rows,
    dual_constraints,
    dual_satisfied,
    dual_worst_case,
    premise_of,
)
from deepsade.encoding.layout import LatentLayout
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.spec import Assert, conjunction_atoms


@dataclass
class DisjunctiveDual:
    """``P => and_j (or_i A_ji)`` with linear conjunctions ``A_ji``, enforced as: for every clause j, some
    alternative i holds over the whole box (the solver picks i). A sound strengthening of the assert (a
    clause whose alternative changes inside the box is not covered), so everything it accepts the exact
    checker accepts too; the line search falls back to the exact checker where it says no."""

    source: Assert
    clauses: list[list[DualAssert]]

    @property
    def closed_form(self) -> bool:
        return all(alt.closed_form for clause in self.clauses for alt in clause)


def to_disjunctive_dual(assert_: Assert, layout: LatentLayout) -> DisjunctiveDual | None:
    """The form above for a linear assert whose conclusion is a conjunction of disjunctions of linear
    conjunctions (e.g. "a Beatles song is rock or pop"); None otherwise."""
    if not assert_.linear:
        return None
    premise_atoms = conjunction_atoms(assert_.premise)
    if premise_atoms is None:
        return None
    conclusion = assert_.conclusion
    items = list(conclusion.children()) if z3.is_and(conclusion) else [conclusion]
    try:
        premise = premise_of([atom_from_comparison(a) for a in premise_atoms], layout)
        clauses = []
        for item in items:
            alternatives = list(item.children()) if z3.is_or(item) else [item]
            clause = []
            for alternative in alternatives:
                atoms = conjunction_atoms(alternative)
                if atoms is None:
                    return None
                rows = conclusion_rows([atom_from_comparison(a) for a in atoms], layout)
                clause.append(DualAssert(assert_, premise, rows))
            clauses.append(clause)
    except NotLinear:
        return None
    if all(len(clause) == 1 for clause in clauses):
        return None  # no disjunction: to_dual covers it exactly
    return DisjunctiveDual(assert_, clauses)


def disjunctive_constraints(form: DisjunctiveDual, weights, biases, low, high, margin: Fraction,
                            tag: str) -> list[z3.BoolRef]:
    """Per clause a Boolean selector per alternative: one must be on, and an alternative that is on holds
    over the box (its exact dual constraints)."""
    constraints: list[z3.BoolRef] = []
    for j, clause in enumerate(form.clauses):
        selectors = [z3.Bool(f"sel!{tag}!{j}!{i}") for i in range(len(clause))]
        constraints.append(z3.Or(*selectors))
        for i, alternative in enumerate(clause):
            body = dual_constraints(alternative, weights, biases, low, high, margin, f"{tag}!{j}!{i}")
            constraints.append(z3.Implies(selectors[i], z3.And(*body) if body else z3.BoolVal(True)))
    return constraints


def disjunctive_satisfied(form: DisjunctiveDual, weights: np.ndarray, biases: np.ndarray, low, high,
                          margin: float) -> np.ndarray:
    """Sufficient float check (C candidates): every clause has an alternative that holds over the box."""
    ok = np.ones(weights.shape[0], dtype=bool)
    for clause in form.clauses:
        any_alt = np.zeros(weights.shape[0], dtype=bool)
        for alternative in clause:
            any_alt |= dual_satisfied(alternative, weights, biases, low, high, margin)
        ok &= any_alt
    return ok


class DisjunctiveStrategy(Strategy):
    """Linear disjunctions, each clause held by one alternative over the whole box."""

    name = "dual-or"

    def __init__(self, forms: Sequence[DisjunctiveDual], layout: LatentLayout):
        super().__init__([f.source for f in forms], layout)
        self.forms = {f.source.index: f for f in forms}

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> DisjunctiveStrategy | None:
        forms = [f for f in (to_disjunctive_dual(a, layout) for a in asserts) if f is not None]
        return cls(forms, layout) if forms else None

    def closed_form(self, weights, biases, boxes: LatentBoxes, margin: float) -> dict[int, ClosedFormVerdict]:
        return {index: ClosedFormVerdict(disjunctive_satisfied(form, weights, biases, *boxes.for_assert(index), margin),
                                         exact=False)
                for index, form in self.forms.items() if form.closed_form}

    def hard_constraints(self, assert_: Assert, weights, biases, boxes: LatentBoxes, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        return disjunctive_constraints(self.forms[assert_.index], weights, biases, *boxes.for_assert(assert_.index),
                                       margin, str(assert_.index))

    @property
    def projectable(self) -> bool:
        return all(form.closed_form for form in self.forms.values())

    def polyhedron(self, current: LastLayer, boxes: LatentBoxes, target: LastLayer, margins: Margins,
                   choice=None) -> list[DualAssert]:
        """Per clause the alternative the current weights satisfy, else the one the step breaks least."""
        weights, biases = current
        chosen = []
        for index, form in self.forms.items():
            box = boxes.for_assert(index)
            for clause in form.clauses:
                holds = [bool(dual_satisfied(alt, weights[None], biases[None], box[0], box[1], margins.check)[0])
                         for alt in clause]
                if any(holds):
                    chosen.append(clause[holds.index(True)])
                else:
                    worst = [float(dual_worst_case(alt, weights[None], biases[None], box[0], box[1]).max())
                             for alt in clause]
                    chosen.append(clause[int(np.argmin(worst))])
        return chosen
