"""HardNet-Aff rows whose output coefficients depend on the inputs: ``b_l(x) <= A(x) y <= b_u(x)``, compiled exactly.

``A(x) = A0 + sum_j x_j A1[:, :, j]`` (scaled units) and the bounds are affine in the inputs; every row comes from
the rule's own asserts (``bilinear``). The enforcement needs ``A(x)`` of full row rank at every input of the
domain box: checked here exactly (z3, nonlinear real arithmetic: is there an ``x`` in the box and a non-zero
``lambda`` with ``A(x)^T lambda = 0``?), refused in one line otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.boxes import max_over_box, min_over_box
from deepsade.constructions.bilinear import BilinearAtom, NotBilinear, bilinear_atom
from deepsade.constructions.recognise import HARDNET, AffineBound, NoRoom, NotApplicable
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, conjunction_atoms, input_var

RANK_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class InputRow:
    """One row ``lower(x) <= (a0 + a1 x) . y <= upper(x)``; ``a0`` (outputs,), ``a1`` (outputs, inputs) Fractions."""

    a0: np.ndarray
    a1: np.ndarray
    upper: AffineBound | None
    lower: AffineBound | None
    tightening: Fraction  # slack x max over the box of |a(x)|_1: each bound moved inwards by this much

    @property
    def asserts(self) -> list[int]:
        return sorted({b.assert_index for b in (self.upper, self.lower) if b is not None})


@dataclass(frozen=True)
class InputRule:
    """The rule as rows with input-dependent ``A(x)`` (HardNet-Aff with ``A(x)``)."""

    rows: tuple[InputRow, ...]
    n_inputs: int
    n_outputs: int

    def describe(self) -> str:
        return (f"{len(self.rows)} row(s) on {self.n_outputs} output(s) with A depending on the inputs: HardNet-Aff "
                "projection A(x)^T (A(x) A(x)^T)^-1 per input (not piecewise linear)")


def _atoms(spec: Spec) -> list[tuple[int, BilinearAtom]]:
    where = "assert {}"
    atoms = []
    for a in spec.asserts:
        if a.has_premise:
            raise NotApplicable(f"{HARDNET} needs every assert affine in the outputs without a premise; "
                                f"{where.format(a.index + 1)} has a premise")
        comparisons = conjunction_atoms(a.conclusion)
        if comparisons is None:
            raise NotApplicable(f"{HARDNET} needs every assert to be a conjunction of comparisons; "
                                f"{where.format(a.index + 1)} uses or, not, ite or => inside")
        for comparison in comparisons:
            try:
                atom = bilinear_atom(comparison)
            except NotBilinear as exc:
                raise NotApplicable(f"{HARDNET} needs A(x) y with A and the bounds affine in the inputs; "
                                    f"{where.format(a.index + 1)} has {exc}") from None
            if atom.op == "==":
                raise NotApplicable(f"{HARDNET} here takes inequalities only; {where.format(a.index + 1)} states an "
                                    "equality")
            if not atom.outputs:
                raise NotApplicable(f"{HARDNET} needs every comparison to mention an output; "
                                    f"{where.format(a.index + 1)} compares inputs only")
            atoms.append((a.index, atom))
    return atoms


def _dense(atom: BilinearAtom, n_outputs: int, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    a0 = np.array([atom.output_const.get(k, Fraction(0)) for k in range(n_outputs)], dtype=object)
    a1 = np.array([[atom.output_inputs.get(k, {}).get(j, Fraction(0)) for j in range(n_inputs)]
                   for k in range(n_outputs)], dtype=object).reshape(n_outputs, n_inputs)
    return a0, a1


def compile_input_dependent_rule(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction],
                                 slack: Fraction = Fraction(0)) -> InputRule:
    """The rule as rows ``b_l(x) <= A(x) y <= b_u(x)``; NotApplicable (one line) when it does not fit, when two
    asserts bound the same row from the same side, when a row leaves no room, or when ``A(x)`` loses rank
    somewhere in the box."""
    n_outputs, n_inputs = len(spec.output_names), len(spec.input_names)
    low_a = np.array([Fraction(v) for v in low], dtype=object)
    high_a = np.array([Fraction(v) for v in high], dtype=object)
    rows: dict[tuple, dict] = {}
    for index, atom in _atoms(spec):
        a0, a1 = _dense(atom, n_outputs, n_inputs)
        flat = list(a0) + list(a1.ravel())
        scale = max(abs(v) for v in flat)
        factor = scale * (1 if next(v for v in flat if v != 0) > 0 else -1)
        key = tuple(v / factor for v in flat)
        bound = AffineBound(tuple(sorted((j, -v / factor) for j, v in atom.input_coefs.items())), -atom.const / factor,
                            index)
        side = "upper" if factor > 0 else "lower"
        entry = rows.setdefault(key, {"a0": a0 / factor, "a1": a1 / factor})
        previous = entry.get(side)
        if previous is not None and (previous.inputs, previous.const) != (bound.inputs, bound.const):
            raise NotApplicable(f"{HARDNET} needs one bound per side for each row; asserts {previous.assert_index + 1} "
                                f"and {index + 1} both bound the same one from {'above' if side == 'upper' else 'below'}")
        entry[side] = previous or bound
    compiled = []
    for entry in rows.values():
        a0, a1 = entry["a0"], entry["a1"]
        # max over the box of |a(x)|_1: per output, the larger end of the affine coefficient's range
        reach = sum(max(abs(max_over_box(a1[k], low_a, high_a) + a0[k]), abs(min_over_box(a1[k], low_a, high_a) + a0[k]))
                    for k in range(n_outputs))
        row = InputRow(a0, a1, entry.get("upper"), entry.get("lower"), Fraction(slack) * reach)
        if row.upper is not None and row.lower is not None:
            gap = row.upper.coefficients(n_inputs) - row.lower.coefficients(n_inputs)
            room = min_over_box(gap, low_a, high_a) + row.upper.const - row.lower.const
            if room <= 2 * row.tightening:
                raise NoRoom(f"asserts {', '.join(str(i + 1) for i in row.asserts)} leave no room between a lower and "
                             "an upper bound at some input of the domain box (narrow the box with --domain)")
        compiled.append(row)
    rule = InputRule(tuple(compiled), n_inputs, n_outputs)
    problem = rank_problem(rule, low, high, names=spec.input_names)
    if problem is not None:
        raise NotApplicable(problem)
    return rule


def coefficient_terms(a0: np.ndarray, a1: np.ndarray) -> list[z3.ArithRef]:
    """``a0[k] + a1[k] . x`` per output as z3 terms of the scaled inputs (exact)."""
    terms = []
    for k in range(len(a0)):
        parts = [z3_rational(Fraction(a1[k][j])) * input_var(j) for j in range(a1.shape[1]) if a1[k][j] != 0]
        terms.append(z3.Sum([z3_rational(Fraction(a0[k])), *parts]) if parts else z3_rational(Fraction(a0[k])))
    return terms


def rank_problem(rule_or_rows, low: Sequence[Fraction], high: Sequence[Fraction],
                 timeout_ms: int = RANK_TIMEOUT_MS, names: Sequence[str] | None = None) -> str | None:
    """None when ``A(x)`` has full row rank at every ``x`` of the box (proven by z3), else one line saying where
    it does not (or that z3 could not decide). ``rule_or_rows``: an InputRule, or a list of (a0, a1) pairs."""
    pairs = [(r.a0, r.a1) for r in rule_or_rows.rows] if isinstance(rule_or_rows, InputRule) else list(rule_or_rows)
    if not pairs:
        return None
    n_outputs, n_inputs = len(pairs[0][0]), pairs[0][1].shape[1]
    if len(pairs) > n_outputs:
        return (f"{HARDNET} needs A(x) of full row rank: the rule has {len(pairs)} rows over {n_outputs} output(s)")
    lams = [z3.Real(f"lambda!{i}") for i in range(len(pairs))]
    columns = [coefficient_terms(a0, a1) for a0, a1 in pairs]
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*[v for j in range(n_inputs) for v in (input_var(j) >= z3_rational(Fraction(low[j])),
                                                      input_var(j) <= z3_rational(Fraction(high[j])))])
    solver.add(*[v for lam in lams for v in (lam >= -1, lam <= 1)])
    solver.add(z3.Or([lam == 1 for lam in lams] + [lam == -1 for lam in lams]))
    for k in range(n_outputs):
        solver.add(z3.Sum([lam * columns[i][k] for i, lam in enumerate(lams)]) == 0)
    answer = solver.check()
    if answer == z3.unsat:
        return None
    if answer == z3.unknown:
        return f"{HARDNET} needs A(x) of full row rank over the domain box; z3 could not decide it within the time limit"
    model = solver.model()
    point = {j: model.eval(input_var(j), model_completion=True) for j in range(n_inputs)}
    where = ", ".join(f"{names[j] if names else f'x{j}'} = {point[j].as_decimal(4).rstrip('?')}"
                      for j in range(n_inputs) if any(a1[k][j] != 0 for _, a1 in pairs for k in range(n_outputs)))
    return (f"{HARDNET} needs A(x) of full row rank over the whole domain box; it is not where {where} (scaled units) "
            "(an output's coefficient vanishes there or rows become dependent: narrow the box with --domain)")
