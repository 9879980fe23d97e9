"""How a constraint becomes a constraint on the last layer's weights ``W, b`` alone.

For a latent box ``B`` (every reachable ``[h; s]``) each assert ``P(x) => Q(x, y)`` becomes
``forall z in B, |e| <= margin: P(s) => Q(s, W z + b + e)``: the conclusion must hold even when
every output moves by up to ``margin`` (so float rounding at inference cannot flip it).

Strategies, all exact (no strategy accepts weights that ``find_counterexample`` rejects):
- ``dual``: linear asserts whose premise and conclusion are conjunctions of linear comparisons.
  Worst case over the box via auxiliary variables ``t_l >= a_l lo_l, t_l >= a_l hi_l``; a premise
  that couples several inputs via LP duality (Farkas multipliers). Linear in the weights.
- ``cegis``: the assert at a finite set of latent points; the trainer checks each candidate over
  the whole box and adds the counterexample (any formula z3 can decide: ``or``, ``ite`` counts, ...).
- ``qe``: the quantified formula through z3's quantifier-elimination tactic, then quantifier-free.
- ``quantified``: the paper's formulation: z3 ``ForAll`` over the latent variables, weights free.

Which strategy serves which assert is decided in ``deepsade.strategy``; ``auto`` also uses the sound
strengthenings ``dual-or`` (below) and ``sign-pattern`` (``deepsade.sign_pattern``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import z3

from deepsade.linear import LinearAtom, NotLinear, atom_from_comparison
from deepsade.spec import Assert, conjunction_atoms, input_var, output_var, rational

STRATEGIES = ("auto", "dual", "cegis", "qe", "quantified")


@dataclass(frozen=True)
class LatentLayout:
    """Where things sit in the latent vector ``z = [h; s]``."""

    n_hidden: int
    mapped: tuple[int, ...]  # input index of each skip coordinate
    n_out: int

    @property
    def n_latent(self) -> int:
        return self.n_hidden + len(self.mapped)

    def coordinate(self, input_index: int) -> int:
        return self.n_hidden + self.mapped.index(input_index)


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


def _premise(atoms: list[LinearAtom], layout: LatentLayout) -> Premise:
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


def _conclusion_rows(atoms: list[LinearAtom], layout: LatentLayout) -> list[ConclusionRow]:
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
    return DualAssert(assert_, _premise(premise, layout), _conclusion_rows(conclusion, layout))


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
        premise = _premise([atom_from_comparison(a) for a in premise_atoms], layout)
        clauses = []
        for item in items:
            alternatives = list(item.children()) if z3.is_or(item) else [item]
            clause = []
            for alternative in alternatives:
                atoms = conjunction_atoms(alternative)
                if atoms is None:
                    return None
                rows = _conclusion_rows([atom_from_comparison(a) for a in atoms], layout)
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


# ---- z3 building blocks -------------------------------------------------------------------------

def weight_variables(layout: LatentLayout) -> tuple[list[list[z3.ArithRef]], list[z3.ArithRef]]:
    """z3 variables for the last layer: W[k][l] and b[k]."""
    weights = [[z3.Real(f"W!{k}!{l}") for l in range(layout.n_latent)] for k in range(layout.n_out)]
    biases = [z3.Real(f"b!{k}") for k in range(layout.n_out)]
    return weights, biases


def _q(value) -> z3.ArithRef:
    return rational(value if isinstance(value, Fraction) else Fraction(float(value)))


def _sum(terms: list) -> z3.ArithRef:
    return z3.Sum(terms) if terms else z3.RealVal(0)


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
            terms = [_q(c) * weights[k][l] for k, c in enumerate(row.out) if c != 0]
            if l in row.lat:
                terms.append(_q(row.lat[l]))
            coefficient.append(_sum(terms))
        worst_terms = []
        for l, a in enumerate(coefficient):
            if l in coupled:
                continue
            if box_low[l] == box_high[l]:
                if box_low[l] != 0:
                    worst_terms.append(a * _q(box_low[l]))
                continue
            t = z3.Real(f"t!{tag}!{r}!{l}")
            constraints += [t >= a * _q(box_low[l]), t >= a * _q(box_high[l])]
            worst_terms.append(t)
        if coupled:
            worst_terms.append(_farkas_bound(dual.premise, coefficient, coupled, box_low, box_high, constraints,
                                             f"{tag}!{r}"))
        bias_terms = [_q(c) * biases[k] for k, c in enumerate(row.out) if c != 0]
        slack = margin * row.margin_scale() if row.with_margin else Fraction(0)
        worst = _sum(worst_terms + bias_terms) + _q(row.const)
        if slack > 0:
            constraints.append(worst <= -_q(slack))
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
        objective.append(lam[i] * _q(g))
    for l in sorted(coupled):
        mu, nu = z3.Real(f"mu!{tag}!{l}"), z3.Real(f"nu!{tag}!{l}")
        constraints += [mu >= 0, nu >= 0]
        column = [lam[i] * _q(row[l]) for i, (row, _) in enumerate(premise.rows) if l in row]
        constraints.append(_sum(column) + mu - nu == coefficient[l])
        objective += [mu * _q(high[l]), -nu * _q(low[l])]
    return _sum(objective)


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
        result[:, r] = (np.maximum(a * box_low, a * box_high).sum(axis=1) + biases @ out + float(row.const))
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


def _latent_substitution(assert_: Assert, layout: LatentLayout, point, weights, biases, perturbation):
    """Pairs replacing x!j by the point's skip coordinate and y!k by W z + b + e."""
    pairs = [(input_var(j), _as_term(point[layout.coordinate(j)])) for j in assert_.inputs]
    for k in assert_.outputs:
        terms = [_mul(weights[k][l], point[l]) for l in range(layout.n_latent)]
        terms = [t for t in terms if t is not None]
        pairs.append((output_var(k), _sum(terms) + _as_term(biases[k]) + _as_term(perturbation[k])))
    return pairs


def _as_term(value) -> z3.ArithRef:
    return value if isinstance(value, z3.ExprRef) else _q(value)


def _mul(weight, value):
    """weight * value where either may be a number; None when the product is exactly zero."""
    w_num = not isinstance(weight, z3.ExprRef)
    v_num = not isinstance(value, z3.ExprRef)
    if (w_num and weight == 0) or (v_num and value == 0):
        return None
    if w_num and v_num:
        return _q(Fraction(weight) * Fraction(value))
    return _as_term(weight) * _as_term(value)


def point_constraint(assert_: Assert, layout: LatentLayout, point: Sequence, perturbation: Sequence,
                     weights, biases) -> z3.BoolRef:
    """The assert at one latent point (and output perturbation), as a constraint on the weight variables."""
    perturbed = _latent_substitution(assert_, layout, point, weights, biases, perturbation)
    exact = _latent_substitution(assert_, layout, point, weights, biases, [0] * layout.n_out)
    return _substitute_outputs(assert_.scaled, perturbed, exact)


def quantified_formula(assert_: Assert, layout: LatentLayout, weights, biases, low, high,
                       margin: Fraction) -> z3.BoolRef:
    """The paper's form: ForAll z in box, e in [-margin, margin]: P(s) => Q(s, W z + b + e)."""
    z = [z3.Real(f"z!{assert_.index}!{l}") for l in range(layout.n_latent)]
    e = [z3.Real(f"e!{assert_.index}!{k}") for k in range(layout.n_out)]
    box = [z3.And(z[l] >= _q(low[l]), z[l] <= _q(high[l])) for l in range(layout.n_latent)]
    box += [z3.And(e[k] >= -_q(margin), e[k] <= _q(margin)) for k in assert_.outputs]
    inputs = [(input_var(j), z[layout.coordinate(j)]) for j in assert_.inputs]
    exact = [(output_var(k), _sum([weights[k][l] * z[l] for l in range(layout.n_latent)]) + biases[k])
             for k in assert_.outputs]
    perturbed = [(y, value + e[k]) for (y, value), k in zip(exact, assert_.outputs)]
    body = _substitute_outputs(assert_.scaled, inputs + perturbed, inputs + exact)
    bound = [z[l] for l in range(layout.n_latent)] + [e[k] for k in assert_.outputs]
    return z3.ForAll(bound, z3.Implies(z3.And(*box), body))


def eliminate_quantifiers(formula: z3.BoolRef, timeout_s: float | None = None) -> z3.BoolRef:
    """z3's qe tactic on a quantified formula; the result is quantifier-free in the weights."""
    tactic = z3.Tactic("qe")
    if timeout_s:
        tactic = z3.TryFor(tactic, int(timeout_s * 1000))
    goals = tactic(formula)
    return z3.And(*[g.as_expr() for g in goals])


# ---- the exact checker --------------------------------------------------------------------------

@dataclass
class Counterexample:
    """A latent point (and output perturbation) where the premise holds and the conclusion fails."""

    assert_index: int
    latent: list[Fraction]
    perturbation: list[Fraction]


def find_counterexample(assert_: Assert, layout: LatentLayout, weights, biases, low: Sequence, high: Sequence,
                        margin: Fraction, timeout_s: float | None = 10.0) -> Counterexample | None | str:
    """Exact search, in rationals, for z in the box and |e| <= margin with P(s) and not Q(s, W z + b + e).

    ``weights``/``biases`` are numbers (floats convert exactly). Returns a Counterexample, None when
    there is none, or the string "unknown" when z3 could not decide in time (never take that as safe)."""
    z = [z3.Real(f"z!{l}") for l in range(layout.n_latent)]
    e = [z3.Real(f"e!{k}") for k in range(layout.n_out)]
    solver = z3.SolverFor("QF_LRA") if assert_.linear else z3.Solver()
    if timeout_s:
        solver.set("timeout", int(timeout_s * 1000))
    for l in range(layout.n_latent):
        lo, hi = Fraction(low[l]), Fraction(high[l])
        if lo == hi:
            solver.add(z[l] == _q(lo))
        else:
            solver.add(z[l] >= _q(lo), z[l] <= _q(hi))
    for k in range(layout.n_out):
        solver.add(e[k] >= -_q(margin), e[k] <= _q(margin))
    inputs = [(input_var(j), z[layout.coordinate(j)]) for j in assert_.inputs]
    exact_outputs, perturbed_outputs = [], []
    for k in assert_.outputs:
        terms = [_mul(Fraction(float(weights[k][l])), z[l]) for l in range(layout.n_latent)]
        exact = _sum([t for t in terms if t is not None]) + _q(Fraction(float(biases[k])))
        exact_outputs.append((output_var(k), exact))
        perturbed_outputs.append((output_var(k), exact + e[k]))
    formula = _substitute_outputs(assert_.scaled, inputs + perturbed_outputs, inputs + exact_outputs)
    solver.add(z3.Not(formula))
    verdict = solver.check()
    if verdict == z3.unsat:
        return None
    if verdict != z3.sat:
        return "unknown"
    model = solver.model()
    value = lambda v: _fraction(model.eval(v, model_completion=True))  # noqa: E731
    return Counterexample(assert_.index, [value(v) for v in z], [value(v) for v in e])


def _substitute_outputs(formula: z3.ExprRef, perturbed: list, exact: list) -> z3.ExprRef:
    """Substitute the network into ``formula``: equalities between numbers get the exact outputs (no
    margin can hold an equality), every other atom the outputs moved by the margin variables."""
    cache: dict = {}

    def walk(node: z3.ExprRef) -> z3.ExprRef:
        key = node.get_id()
        if key not in cache:
            if z3.is_eq(node) and not z3.is_bool(node.arg(0)):
                cache[key] = z3.substitute(node, *exact)
            elif z3.is_bool(node) and z3.is_app(node) and node.num_args() and not _is_atom(node):
                cache[key] = node.decl()(*[walk(child) for child in node.children()])
            else:
                cache[key] = z3.substitute(node, *perturbed)
        return cache[key]

    return walk(formula)


def _is_atom(node: z3.ExprRef) -> bool:
    """A Boolean node whose arguments are numbers (a comparison), as opposed to a connective."""
    return not any(z3.is_bool(child) for child in node.children())


def _fraction(value: z3.ExprRef) -> Fraction:
    if z3.is_rational_value(value):
        return Fraction(value.numerator_as_long(), value.denominator_as_long())
    if z3.is_algebraic_value(value):  # an irrational point (non-linear asserts): a close rational stands in
        approx = value.approx(30)
        return Fraction(approx.numerator_as_long(), approx.denominator_as_long())
    return Fraction(str(value))
