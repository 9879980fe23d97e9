"""Does a parsed rule fit a construction, and if not, why (one line naming the assert).

HardNet-Aff (and the output gadgets, its special case) takes rules of the form
``b_l(x) <= A y <= b_u(x)`` with a constant, full-row-rank ``A`` and bounds affine in the inputs;
HCR takes a bounded convex polytope ``A y <= b`` that does not depend on the inputs. Both are compiled
here, exactly (rationals, scaled units: the network's inputs ``x!j`` and outputs ``y!k``), from the
asserts of the parsed ``Spec``: nothing is typed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.boxes import min_over_box
from deepsade.errors import UserInputError
from deepsade.linear import LinearAtom, NotLinear, atom_from_comparison
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.spec import Assert, Spec, conjunction_atoms, output_var

HARDNET = "HardNet-Aff"
HCR = "HCR"


class NotApplicable(UserInputError):
    """The rule does not fit the construction; the message says which assert and why, in one line."""


class InputDependent(NotApplicable):
    """An assert multiplies an output by an input: ``A`` depends on ``x`` (``compile_input_dependent_rule``)."""


class OverDetermined(NotApplicable):
    """A has more rows than outputs: no projection of HardNet-Aff's form exists (another construction may apply)."""


class NoRoom(NotApplicable):
    """The rule fits, but leaves (almost) no output between two bounds somewhere in the domain box."""


@dataclass(frozen=True)
class AffineBound:
    """``sum(inputs[j] * x!j) + const`` (scaled inputs), from assert ``assert_index`` (0-based)."""

    inputs: tuple[tuple[int, Fraction], ...]
    const: Fraction
    assert_index: int

    def coefficients(self, n_inputs: int) -> np.ndarray:
        """Dense coefficient vector over all inputs (Fraction objects)."""
        dense = np.array([Fraction(0)] * n_inputs, dtype=object)
        for j, value in self.inputs:
            dense[j] = value
        return dense


@dataclass(frozen=True)
class AffineRow:
    """One row ``lower(x) <= a . y <= upper(x)``; ``a`` is normalised (largest |entry| 1, first non-zero > 0)."""

    outputs: tuple[Fraction, ...]
    upper: AffineBound | None
    lower: AffineBound | None

    @property
    def single_output(self) -> int | None:
        """The output index when the row touches one output only (an output gadget), else None."""
        nonzero = [k for k, v in enumerate(self.outputs) if v != 0]
        return nonzero[0] if len(nonzero) == 1 else None


@dataclass(frozen=True)
class AffineRule:
    """The whole rule as affine rows over the outputs (HardNet-Aff's ``A``, ``b_l(x)``, ``b_u(x)``)."""

    rows: tuple[AffineRow, ...]
    n_inputs: int
    n_outputs: int

    @property
    def matrix(self) -> np.ndarray:
        """``A`` as a (rows, outputs) array of Fractions."""
        return np.array([list(r.outputs) for r in self.rows], dtype=object).reshape(len(self.rows), self.n_outputs)

    @property
    def is_gadget(self) -> bool:
        """Every row bounds a single output: the enforcement is a clamp per output (an output gadget)."""
        return all(r.single_output is not None for r in self.rows)

    @property
    def input_free(self) -> bool:
        """No bound depends on the inputs (the region is the same for every input)."""
        return all(not b.inputs for r in self.rows for b in (r.upper, r.lower) if b is not None)

    def describe(self) -> str:
        """One line: how many rows, which kind of layer."""
        kind = "a clamp per output (output gadget)" if self.is_gadget else "HardNet-Aff projection"
        two = sum(1 for r in self.rows if r.upper is not None and r.lower is not None)
        return f"{len(self.rows)} affine row(s) ({two} two-sided) on {self.n_outputs} output(s): {kind}"


def _atoms(a: Assert, method: str, spec: Spec | None = None, equalities: bool = False) -> list[LinearAtom]:
    """The assert's comparisons as linear atoms, or NotApplicable naming what is in the way (InputDependent when
    an output is multiplied by an input); ``equalities``: an ``=`` is an atom too (the sequential clamps hold
    one exactly when its coefficients are exact, ``exact_equalities``)."""
    where = f"assert {a.index + 1}"
    if a.has_premise:
        raise NotApplicable(f"{method} needs every assert affine in the outputs without a premise; {where} has a "
                            "premise")
    comparisons = conjunction_atoms(a.conclusion)
    if comparisons is None:
        raise NotApplicable(f"{method} needs every assert to be a conjunction of linear comparisons; {where} uses "
                            "or, not, ite or => inside")
    atoms = []
    for comparison in comparisons:
        try:
            atom = atom_from_comparison(comparison)
        except NotLinear:
            product = _output_times_input(comparison)
            if product is not None and spec is not None:
                k, j = product
                raise InputDependent(f"{method} here needs A constant: {where} multiplies output "
                                     f"{spec.output_names[k]!r} by input {spec.input_names[j]!r}") from None
            raise NotApplicable(f"{method} needs comparisons affine in the outputs and inputs; {where} has a "
                                "nonlinear term") from None
        if atom.op == "==" and not equalities:
            raise NotApplicable(f"{method} here takes inequalities only; {where} states an equality, which no "
                                "certificate margin for float32 rounding survives")
        if not atom.outputs():
            raise NotApplicable(f"{method} needs every comparison to mention an output; {where} compares inputs only")
        atoms.append(atom)
    return atoms


def _output_times_input(comparison: z3.BoolRef) -> tuple[int, int] | None:
    """(output, input) of the first product of an output by an input when the comparison is bilinear that way."""
    from deepsade.constructions.bilinear import NotBilinear, bilinear_atom

    try:
        return bilinear_atom(comparison).first_product()
    except NotBilinear:
        return None


def _rank(matrix: np.ndarray) -> int:
    """Rank of a small Fraction matrix by exact Gaussian elimination."""
    rows = [list(r) for r in matrix]
    rank, n_cols = 0, (len(rows[0]) if rows else 0)
    for col in range(n_cols):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for i in range(len(rows)):
            if i != rank and rows[i][col] != 0:
                factor = rows[i][col] / rows[rank][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


def compile_affine_rule(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction],
                        method: str = HARDNET, tightening: Fraction = Fraction(0)) -> AffineRule:
    """The rule as affine rows ``lower(x) <= a . y <= upper(x)``, or NotApplicable with the reason.

    ``low``/``high`` is the domain box in scaled units: two-sided rows must leave room between their
    bounds at every input of the box, otherwise no output satisfies the rule there; with ``tightening`` (each
    bound moved inwards by ``tightening * |row|_1``) they must still leave room."""
    n_outputs, n_inputs = len(spec.output_names), len(spec.input_names)
    rows: dict[tuple[Fraction, ...], dict[str, AffineBound]] = {}
    for a in spec.asserts:
        for atom in _atoms(a, method, spec):
            coefs = [atom.outputs().get(k, Fraction(0)) for k in range(n_outputs)]
            scale = max(abs(v) for v in coefs)
            sign = 1 if next(v for v in coefs if v != 0) > 0 else -1
            factor = scale * sign
            key = tuple(v / factor for v in coefs)
            # atom: coefs . y + c_x . x + const <= 0, so key . y <= -(c_x . x + const) / factor (>= when factor < 0)
            bound = AffineBound(tuple(sorted((j, -v / factor) for j, v in atom.inputs().items())),
                                -atom.const / factor, a.index)
            side = "upper" if factor > 0 else "lower"
            previous = rows.setdefault(key, {}).get(side)
            if previous is not None and (previous.inputs, previous.const) != (bound.inputs, bound.const):
                raise NotApplicable(
                    f"{method} needs one bound per side for each combination of outputs; asserts "
                    f"{previous.assert_index + 1} and {a.index + 1} both bound the same one from "
                    f"{'above' if side == 'upper' else 'below'} (the tighter of two affine bounds is not affine)")
            rows[key][side] = previous or bound
    rule = AffineRule(tuple(AffineRow(k, v.get("upper"), v.get("lower")) for k, v in rows.items()),
                      n_inputs, n_outputs)
    if method == HARDNET and _rank(rule.matrix) < len(rule.rows):
        raise (OverDetermined if len(rule.rows) > n_outputs else NotApplicable)(f"{method} needs the rows of A to be linearly independent (full row rank): the rule "
                            f"has {len(rule.rows)} output combinations over {n_outputs} output(s) of rank "
                            f"{_rank(rule.matrix)}")
    low_a = np.array([Fraction(v) for v in low], dtype=object)
    high_a = np.array([Fraction(v) for v in high], dtype=object)
    for row in rule.rows:
        if row.upper is None or row.lower is None:
            continue
        gap = row.upper.coefficients(n_inputs) - row.lower.coefficients(n_inputs)
        room = min_over_box(gap, low_a, high_a) + (row.upper.const - row.lower.const)
        if room <= 2 * tightening * sum(abs(v) for v in row.outputs):
            which = (f"assert {row.upper.assert_index + 1}" if row.lower.assert_index == row.upper.assert_index
                     else f"asserts {row.lower.assert_index + 1} and {row.upper.assert_index + 1}")
            raise NoRoom(f"{which} leave{'s' if ' and ' not in which else ''} "
                         f"{'no' if room <= 0 else 'less than twice the certificate margin of'} room between a lower "
                         "and an upper bound at some input of the domain box (narrow the box with --domain"
                         f"{', or lower --margin' if room > 0 else ''})")
    return rule


@dataclass(frozen=True)
class Polytope:
    """HCR's region ``A y <= b`` (constant, bounded, with an interior point), exact rationals."""

    rule: AffineRule
    interior: tuple[Fraction, ...]  # a point strictly inside every bound


def compile_polytope(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction]) -> Polytope:
    """The rule as a bounded polytope independent of the inputs (HCR), or NotApplicable with the reason."""
    rule = compile_affine_rule(spec, low, high, method=HCR)
    for row in rule.rows:
        for bound in (row.upper, row.lower):
            if bound is not None and bound.inputs:
                raise NotApplicable(f"{HCR} needs a region that does not depend on the inputs; assert "
                                    f"{bound.assert_index + 1} mentions an input")
    ys = [output_var(k) for k in range(rule.n_outputs)]
    constraints = []
    for row in rule.rows:
        form = z3.Sum([z3_rational(c) * y for c, y in zip(row.outputs, ys, strict=True) if c != 0])
        if row.upper is not None:
            constraints.append(form <= z3_rational(row.upper.const))
        if row.lower is not None:
            constraints.append(form >= z3_rational(row.lower.const))
    for k, y in enumerate(ys):
        for direction in (1, -1):
            opt = z3.Optimize()
            opt.add(*constraints)
            handle = opt.maximize(direction * y)
            if opt.check() != z3.sat:
                raise NotApplicable(f"{HCR} needs a non-empty region; the asserts admit no output at all")
            if "oo" in str(opt.upper(handle)):  # z3 writes an unbounded objective with infinity
                raise NotApplicable(f"{HCR} needs a bounded region; output {spec.output_names[k]!r} is unbounded "
                                    f"{'above' if direction > 0 else 'below'}")
    # an interior point: maximise the smallest slack t of every bound (Chebyshev-like, exact)
    t = z3.Real("slack!")
    opt = z3.Optimize()
    for row in rule.rows:
        form = z3.Sum([z3_rational(c) * y for c, y in zip(row.outputs, ys, strict=True) if c != 0])
        if row.upper is not None:
            opt.add(form + t <= z3_rational(row.upper.const))
        if row.lower is not None:
            opt.add(form - t >= z3_rational(row.lower.const))
    opt.add(t <= 1)
    opt.maximize(t)
    if opt.check() != z3.sat or not _positive(opt.model().eval(t)):
        raise NotApplicable(f"{HCR} needs a region with an interior; the asserts leave none")
    model = opt.model()
    point = tuple(z3_fraction(model.eval(y, model_completion=True)) for y in ys)
    return Polytope(rule, point)


def _positive(value: z3.ExprRef) -> bool:
    return z3.is_rational_value(value) and z3_fraction(value) > 0
