"""Exact Fourier–Motzkin elimination of a polytope ``A y <= b(x)`` whose bounds are affine in the inputs.

For an output order ``y_1..y_k`` it gives, per output ``j``, the lower and upper bounds of ``y_j`` as affine
functions of the inputs and of ``y_1..y_{j-1}`` (the projection of the polytope onto ``y_1..y_j``), plus the
conditions on the inputs alone under which the polytope is non-empty. Everything is rational (``Fraction``);
rows made redundant by the others (over the domain box of the inputs) are removed with z3 so that the
clamp layer built from the result (``deepsade.constructions.sequential_clamp``) stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.numbers import z3_fraction, z3_rational


@dataclass(frozen=True)
class HalfSpace:
    """``outputs . y <= inputs . x + const`` (``inputs`` over all scaled inputs, ``outputs`` over all outputs)."""

    outputs: tuple[Fraction, ...]
    inputs: tuple[Fraction, ...]
    const: Fraction
    asserts: frozenset[int]  # the asserts (0-based) this row was derived from
    exact: bool = False  # one side of an equality (held exactly: never tightened by a margin)

    def scaled(self, factor: Fraction) -> HalfSpace:
        """The same half-space with both sides multiplied by ``factor`` > 0."""
        return HalfSpace(tuple(v * factor for v in self.outputs), tuple(v * factor for v in self.inputs),
                         self.const * factor, self.asserts, self.exact)

    def key(self) -> tuple:
        return self.outputs, self.inputs, self.const


@dataclass(frozen=True)
class Bound:
    """One affine piece of a bound of ``y_j``: ``inputs . x + earlier . y_{<j} + const``."""

    inputs: tuple[Fraction, ...]
    earlier: tuple[Fraction, ...]  # coefficients of y_1..y_{j-1}
    const: Fraction


@dataclass(frozen=True)
class Projection:
    """Per output (in order), the affine pieces whose max is its lower and whose min is its upper bound; and
    the conditions on the inputs alone (``0 <= inputs . x + const``) that the polytope needs to be non-empty."""

    lower: tuple[tuple[Bound, ...], ...]
    upper: tuple[tuple[Bound, ...], ...]
    conditions: tuple[HalfSpace, ...]
    # the outputs in the order of ``lower``/``upper`` (position -> output index; None: 0, 1, 2, ...): the bounds
    # of the output at position ``j`` read the outputs at positions before ``j``
    order: tuple[int, ...] | None = None

    @property
    def n_pieces(self) -> int:
        return sum(len(p) for p in self.lower) + sum(len(p) for p in self.upper)


def _normalised(row: HalfSpace, pivot: int) -> HalfSpace:
    """The row scaled so that |coefficient of y_pivot| is 1 (or the largest |entry| when it does not touch it)."""
    value = abs(row.outputs[pivot]) if row.outputs[pivot] != 0 else \
        max([abs(v) for v in (*row.outputs, *row.inputs)] + [Fraction(1)])
    return row.scaled(1 / value) if value not in (0, 1) else row


def _z3_row(row: HalfSpace, ys: Sequence[z3.ArithRef], xs: Sequence[z3.ArithRef]) -> z3.BoolRef:
    def form(coefs: Sequence[Fraction], variables: Sequence[z3.ArithRef]) -> z3.ArithRef:
        terms = [z3_rational(c) * v for c, v in zip(coefs, variables, strict=True) if c != 0]
        return z3.Sum(terms) if terms else z3.RealVal(0)
    return form(row.outputs, ys) <= form(row.inputs, xs) + z3_rational(row.const)


def remove_redundant(rows: Sequence[HalfSpace], low: Sequence[Fraction], high: Sequence[Fraction]) -> list[HalfSpace]:
    """The rows minus those implied by the remaining ones for inputs in the box ``[low, high]`` (exact, z3)."""
    unique = list({r.key(): r for r in rows}.values())
    ys = [z3.Real(f"fm_y!{k}") for k in range(len(unique[0].outputs))] if unique else []
    xs = [z3.Real(f"fm_x!{j}") for j in range(len(low))]
    box = [c for j, x in enumerate(xs) for c in (x >= z3_rational(low[j]), x <= z3_rational(high[j]))]
    kept = list(unique)
    for row in list(unique):
        others = [r for r in kept if r is not row]
        solver = z3.Solver()
        solver.add(*box, *[_z3_row(r, ys, xs) for r in others], z3.Not(_z3_row(row, ys, xs)))
        if solver.check() == z3.unsat:
            kept = others
    return kept


def project(rows: Sequence[HalfSpace], n_outputs: int, low: Sequence[Fraction],
            high: Sequence[Fraction], order: Sequence[int] | None = None) -> Projection:
    """Eliminate ``y_k, ..., y_2`` (and finally ``y_1``) from ``rows``; see ``Projection``. With ``order`` (a
    permutation of the outputs), the outputs are taken in that order: ``order[-1]`` is eliminated first."""
    if order is not None and list(order) != list(range(n_outputs)):
        permuted = [HalfSpace(tuple(r.outputs[k] for k in order), r.inputs, r.const, r.asserts) for r in rows]
        found = project(permuted, n_outputs, low, high)
        return Projection(found.lower, found.upper, found.conditions, tuple(order))
    current = remove_redundant(rows, low, high)
    lower: list[tuple[Bound, ...]] = []
    upper: list[tuple[Bound, ...]] = []
    for j in reversed(range(n_outputs)):
        touching = [_normalised(r, j) for r in current if r.outputs[j] != 0]
        rest = [r for r in current if r.outputs[j] == 0]
        above = [r for r in touching if r.outputs[j] > 0]  # y_j <= ...
        below = [r for r in touching if r.outputs[j] < 0]  # y_j >= ...

        def piece(r: HalfSpace, sign: int, j: int = j) -> Bound:  # y_j <= or >= inputs.x + const - (other outputs).y
            return Bound(tuple(sign * v for v in r.inputs), tuple(-sign * v for v in r.outputs[:j]), sign * r.const)

        upper.append(tuple(piece(r, 1) for r in above))
        lower.append(tuple(piece(r, -1) for r in below))
        combined = [HalfSpace(tuple(a + b for a, b in zip(u.outputs, d.outputs, strict=True)),
                              tuple(a + b for a, b in zip(u.inputs, d.inputs, strict=True)), u.const + d.const,
                              u.asserts | d.asserts) for u in above for d in below]
        current = remove_redundant(rest + combined, low, high) if rest or combined else []
    conditions = tuple(r for r in current if any(v != 0 for v in r.inputs) or r.const < 0)
    return Projection(tuple(reversed(lower)), tuple(reversed(upper)), conditions)


def violated_condition(projection: Projection, low: Sequence[Fraction], high: Sequence[Fraction],
                       links: Callable[[Sequence[z3.ArithRef]], list[z3.BoolRef]] | None = None
                       ) -> tuple[HalfSpace, list[Fraction]] | None:
    """A condition on the inputs that fails somewhere in the box, with such an input (exact), or None.

    ``links``: constraints between the box's columns (an extra column defined as a function of the inputs), so
    that the search stays where the columns can actually be."""
    xs = [z3.Real(f"fm_x!{j}") for j in range(len(low))]
    tied = links(xs) if links is not None else []
    for condition in projection.conditions:
        if all(v == 0 for v in condition.inputs):  # 0 <= const: a constant that fails everywhere
            return condition, [Fraction(v) for v in low]
        solver = z3.Solver()
        solver.add(*[c for j, x in enumerate(xs) for c in (x >= z3_rational(low[j]), x <= z3_rational(high[j]))])
        solver.add(*tied)
        solver.add(z3.Not(_z3_row(condition, [], xs)) if not condition.outputs else
                   z3.Not(_z3_row(condition, [z3.RealVal(0)] * len(condition.outputs), xs)))
        if solver.check() == z3.sat:
            model = solver.model()
            return condition, [z3_fraction(model.eval(x, model_completion=True)) for x in xs]
    return None
