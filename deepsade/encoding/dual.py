"""The ``dual`` strategy: linear asserts whose premise and conclusion are conjunctions of linear
comparisons, exactly.

For a latent box ``B`` each such assert ``P(s) => Q(s, W z + b)`` must hold for every ``z`` in ``B`` with
every output moved by up to the margin. Each conclusion row's worst case over the box is a closed form
(``max(a_l lo_l, a_l hi_l)`` per coordinate); for z3 it becomes auxiliary variables
``t_l >= a_l lo_l, t_l >= a_l hi_l``, and a premise that couples several inputs is handled by LP duality
(Farkas multipliers). Linear in the weights, so the set of accepted last layers is a polyhedron.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import z3

from deepsade.boxes import max_over_box
from deepsade.encoding.base import ClosedFormVerdict, LastLayer, LatentBoxes, Margins, Strategy
from deepsade.encoding.layout import LatentLayout, exact_term, sum_terms
from deepsade.linear import LinearAtom, NotLinear, atom_from_comparison
from deepsade.spec import Assert, conjunction_atoms


@dataclass
class ConclusionRow:
    """One linear inequality of a conclusion: ``out . y + lat . z + const <= 0`` (``< 0`` when strict)."""

    out: list[Fraction]  # per output
    lat: dict[int, Fraction]  # per latent coordinate (the conclusion's own input terms)
    const: Fraction
    strict: bool
    with_margin: bool  # False for the halves of an equality: no slack is possible there

    @property
    def out_float(self) -> np.ndarray:
        return np.array([float(v) for v in self.out])

    def margin_scale(self) -> Fraction:
        """How far the row moves when every output moves by 1: the L1 norm of the output coefficients."""
        return sum((abs(v) for v in self.out), Fraction(0))


@dataclass
class Premise:
    """A premise as bounds on single latent coordinates plus rows ``a . z <= g`` coupling several."""

    bounds: dict[int, tuple[Fraction | None, Fraction | None]] = field(default_factory=dict)
    rows: list[tuple[dict[int, Fraction], Fraction]] = field(default_factory=list)

    def restrict(self, low: Sequence, high: Sequence) -> tuple[list[Fraction], list[Fraction]] | None:
        """The latent box cut by the single-coordinate bounds (closure of strict ones); None when empty."""
        low, high = [Fraction(v) for v in low], [Fraction(v) for v in high]
        for coord, (lo, hi) in self.bounds.items():
            if lo is not None:
                low[coord] = max(low[coord], lo)
            if hi is not None:
                high[coord] = min(high[coord], hi)
            if low[coord] > high[coord]:
                return None
        return low, high


@dataclass
class DualAssert:
    """An assert in the dual fragment, ready to be encoded or checked in closed form."""

    source: Assert
    premise: Premise
    rows: list[ConclusionRow]

    @property
    def closed_form(self) -> bool:
        """Whether the float check is a closed form (no premise rows coupling several inputs)."""
        return not self.premise.rows


def premise_of(atoms: list[LinearAtom], layout: LatentLayout) -> Premise:
    premise = Premise()
    for atom in atoms:
        coefs = {layout.coordinate(j): v for j, v in atom.inputs().items()}
        sides = [(coefs, atom.const)] if atom.op != "==" else [
            (coefs, atom.const), ({c: -v for c, v in coefs.items()}, -atom.const)]
        for row, const in sides:
            if len(row) == 1:
                (coord, coef), = row.items()
                limit = -const / coef
                lo, hi = premise.bounds.get(coord, (None, None))
                if coef > 0:
                    hi = limit if hi is None else min(hi, limit)
                else:
                    lo = limit if lo is None else max(lo, limit)
                premise.bounds[coord] = (lo, hi)
            elif row:
                premise.rows.append((row, -const))
            elif const > 0 or (const == 0 and atom.op == "<"):
                premise.bounds[0] = (Fraction(1), Fraction(0))  # constant false premise: vacuous assert
    return premise


def conclusion_rows(atoms: list[LinearAtom], layout: LatentLayout) -> list[ConclusionRow]:
    rows = []
    for atom in atoms:
        outputs = atom.outputs()
        out = [outputs.get(k, Fraction(0)) for k in range(layout.n_out)]
        lat = {layout.coordinate(j): v for j, v in atom.inputs().items()}
        if atom.op == "==":
            rows.append(ConclusionRow(out, lat, atom.const, False, False))
            rows.append(ConclusionRow([-v for v in out], {c: -v for c, v in lat.items()}, -atom.const, False, False))
        else:
            rows.append(ConclusionRow(out, lat, atom.const, atom.op == "<", True))
    return rows


def to_dual(assert_: Assert, layout: LatentLayout) -> DualAssert | None:
    """The dual-fragment form of an assert, or None when it falls outside (or, ite, non-linear)."""
    if not assert_.linear:
        return None
    premise_atoms = conjunction_atoms(assert_.premise)
    conclusion_atoms = conjunction_atoms(assert_.conclusion)
    if premise_atoms is None or conclusion_atoms is None:
        return None
    try:
        premise = [atom_from_comparison(a) for a in premise_atoms]
        conclusion = [atom_from_comparison(a) for a in conclusion_atoms]
    except NotLinear:
        return None
    return DualAssert(assert_, premise_of(premise, layout), conclusion_rows(conclusion, layout))


def dual_constraints(dual: DualAssert, weights, biases, low: Sequence, high: Sequence, margin: Fraction,
                     tag: str) -> list[z3.BoolRef]:
    """Exact linear constraints on (W, b, auxiliaries) equivalent to the assert holding over the box."""
    box = dual.premise.restrict(low, high)
    if box is None:
        return []  # the premise never holds on the box: nothing to enforce
    box_low, box_high = box
    coupled = {c for row, _ in dual.premise.rows for c in row}
    constraints: list[z3.BoolRef] = []
    for r, row in enumerate(dual.rows):
        coefficient = []
        for l in range(len(box_low)):
            terms = [exact_term(c) * weights[k][l] for k, c in enumerate(row.out) if c != 0]
            if l in row.lat:
                terms.append(exact_term(row.lat[l]))
            coefficient.append(sum_terms(terms))
        worst_terms = []
        for l, a in enumerate(coefficient):
            if l in coupled:
                continue
            if box_low[l] == box_high[l]:
                if box_low[l] != 0:
                    worst_terms.append(a * exact_term(box_low[l]))
                continue
            t = z3.Real(f"t!{tag}!{r}!{l}")
            constraints += [t >= a * exact_term(box_low[l]), t >= a * exact_term(box_high[l])]
            worst_terms.append(t)
        if coupled:
            worst_terms.append(_farkas_bound(dual.premise, coefficient, coupled, box_low, box_high, constraints,
                                             f"{tag}!{r}"))
        bias_terms = [exact_term(c) * biases[k] for k, c in enumerate(row.out) if c != 0]
        slack = margin * row.margin_scale() if row.with_margin else Fraction(0)
        worst = sum_terms(worst_terms + bias_terms) + exact_term(row.const)
        if slack > 0:
            constraints.append(worst <= -exact_term(slack))
        else:
            constraints.append(worst < 0 if row.strict else worst <= 0)
    return constraints


def _farkas_bound(premise: Premise, coefficient, coupled: set[int], low, high, constraints, tag: str):
    """Upper bound of ``sum_l a_l z_l`` over ``{rows} and box`` for the coupled coordinates, by LP duality.

    max a.z s.t. A z <= g, lo <= z <= hi  ==  min g.lam + hi.mu - lo.nu s.t. A^T lam + mu - nu = a, lam, mu, nu >= 0.
    Any dual-feasible point bounds the max, and the solver may pick the best one: exact."""
    lam = [z3.Real(f"lam!{tag}!{i}") for i in range(len(premise.rows))]
    objective = []
    for i, (_, g) in enumerate(premise.rows):
        constraints.append(lam[i] >= 0)
        objective.append(lam[i] * exact_term(g))
    for l in sorted(coupled):
        mu, nu = z3.Real(f"mu!{tag}!{l}"), z3.Real(f"nu!{tag}!{l}")
        constraints += [mu >= 0, nu >= 0]
        column = [lam[i] * exact_term(row[l]) for i, (row, _) in enumerate(premise.rows) if l in row]
        constraints.append(sum_terms(column) + mu - nu == coefficient[l])
        objective += [mu * exact_term(high[l]), -nu * exact_term(low[l])]
    return sum_terms(objective)


def dual_worst_case(dual: DualAssert, weights: np.ndarray, biases: np.ndarray, low: np.ndarray,
                    high: np.ndarray) -> np.ndarray:
    """Closed-form worst case of each conclusion row over the box for candidate weights, vectorised.

    weights: (C, n_out, n_latent), biases: (C, n_out). Returns (C, n_rows) of max(lhs) (-inf when vacuous).
    Only for duals without coupled premise rows."""
    box = dual.premise.restrict(low, high)
    n_candidates = weights.shape[0]
    if box is None:
        return np.full((n_candidates, len(dual.rows)), -np.inf)
    box_low = np.array([float(v) for v in box[0]])
    box_high = np.array([float(v) for v in box[1]])
    result = np.empty((n_candidates, len(dual.rows)))
    for r, row in enumerate(dual.rows):
        out = row.out_float
        a = np.einsum("k,ckl->cl", out, weights)
        for l, v in row.lat.items():
            a[:, l] += float(v)
        result[:, r] = max_over_box(a, box_low, box_high) + biases @ out + float(row.const)
    return result


def dual_satisfied(dual: DualAssert, weights: np.ndarray, biases: np.ndarray, low, high,
                   margin: float) -> np.ndarray:
    """Float check of candidate weights (C, n_out, n_latent) against a closed-form dual assert."""
    worst = dual_worst_case(dual, weights, biases, low, high)
    ok = np.ones(weights.shape[0], dtype=bool)
    for r, row in enumerate(dual.rows):
        slack = margin * float(row.margin_scale()) if row.with_margin else 0.0
        ok &= (worst[:, r] <= -slack) if slack > 0 else ((worst[:, r] < 0) if row.strict else (worst[:, r] <= 0))
    return ok


class DualStrategy(Strategy):
    """Asserts in the dual fragment, exactly: closed-form checks, linear z3 constraints, a polyhedron."""

    name = "dual"
    user_selectable = True

    def __init__(self, duals: Sequence[DualAssert], layout: LatentLayout):
        super().__init__([d.source for d in duals], layout)
        self.duals = {d.source.index: d for d in duals}

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> DualStrategy | None:
        duals = [d for d in (to_dual(a, layout) for a in asserts) if d is not None]
        return cls(duals, layout) if duals else None

    @classmethod
    def refusal(cls, assert_: Assert) -> str:
        return (f"assert {assert_.index + 1} is outside the dual fragment (needs conjunctions of linear comparisons); "
                "use --strategy auto, cegis or qe")

    def closed_form(self, weights, biases, boxes: LatentBoxes, margin: float) -> dict[int, ClosedFormVerdict]:
        return {index: ClosedFormVerdict(dual_satisfied(dual, weights, biases, *boxes.for_assert(index), margin),
                                         exact=True)
                for index, dual in self.duals.items() if dual.closed_form}

    def hard_constraints(self, assert_: Assert, weights, biases, boxes: LatentBoxes, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        return dual_constraints(self.duals[assert_.index], weights, biases, *boxes.for_assert(assert_.index), margin,
                                str(assert_.index))

    @property
    def projectable(self) -> bool:
        return all(dual.closed_form for dual in self.duals.values())

    def polyhedron(self, current: LastLayer, boxes: LatentBoxes, target: LastLayer, margins: Margins,
                   choice=None) -> list[DualAssert]:
        return list(self.duals.values())
