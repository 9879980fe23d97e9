"""Which asserts the sequential clamps take, their polytope, and the rest of the rule strengthened for DeepSaDe.

The clamps (``sequential_clamp``) take every assert without a premise that is a conjunction of linear
inequalities that each mention an output: together they are a polytope ``P(x) = {y : A y <= b(x)}`` with
bounds affine in the inputs, any number of rows. The other asserts ``premise -> conclusion`` are trained by
DeepSaDe on the base output ``f`` as ``premise -> (conclusion and f in P_t(x))`` (``P_t`` the polytope the
layer clamps onto, tightened by the slack): where a premise holds, ``f`` is in ``P_t``, the clamps leave it
unchanged, and the conclusion holds for the network's output too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import z3

from deepsade.constructions.fourier_motzkin import HalfSpace, Projection, project, violated_condition
from deepsade.constructions.recognise import NoRoom, NotApplicable, _atoms
from deepsade.data import Encoding
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, input_var, is_linear, output_var

POLYTOPE = "sequential clamps"


@dataclass(frozen=True)
class SplitRule:
    """The asserts the clamps enforce (0-based), the others, and the reason each other one is not taken."""

    constructible: tuple[int, ...]
    remaining: tuple[int, ...]
    reasons: dict[int, str]


def split_asserts(spec: Spec) -> SplitRule:
    """Which asserts are a polytope with input-affine bounds (no premise, linear inequalities on outputs)."""
    taken, rest, reasons = [], [], {}
    for a in spec.asserts:
        try:
            _atoms(a, POLYTOPE)
            taken.append(a.index)
        except NotApplicable as exc:
            rest.append(a.index)
            reasons[a.index] = str(exc)
    return SplitRule(tuple(taken), tuple(rest), reasons)


def polytope_rows(spec: Spec, indices: Sequence[int], tightening: Fraction) -> list[HalfSpace]:
    """The asserts ``indices`` as half-spaces ``a . y <= c . x + d`` (scaled units), each moved inwards by
    ``tightening * |a|_1``."""
    n_in, n_out = len(spec.input_names), len(spec.output_names)
    rows = []
    for index in indices:
        for atom in _atoms(spec.asserts[index], POLYTOPE):  # coefs . (y, x) + const <= 0 (or < 0)
            outputs = tuple(atom.outputs().get(k, Fraction(0)) for k in range(n_out))
            inputs = tuple(-atom.inputs().get(j, Fraction(0)) for j in range(n_in))
            tightened = -atom.const - tightening * sum(abs(v) for v in outputs)
            rows.append(HalfSpace(outputs, inputs, tightened, frozenset({index})))
    return rows


def polytope_projection(spec: Spec, indices: Sequence[int], low: Sequence[Fraction], high: Sequence[Fraction],
                        tightening: Fraction, encoding: Encoding) -> tuple[list[HalfSpace], Projection]:
    """The tightened rows and their Fourier–Motzkin projection; NoRoom (one line, naming an input where no
    output satisfies the rule) when the tightened polytope is empty somewhere in the domain box."""
    rows = polytope_rows(spec, indices, tightening)
    projection = project(rows, len(spec.output_names), low, high)
    failure = violated_condition(projection, low, high)
    if failure is not None:
        condition, point = failure
        which = ", ".join(str(i + 1) for i in sorted(condition.asserts))
        where = ", ".join(f"{encoding.input_names[j]}={float(off + scale * point[j]):.6g}"
                          for j, (off, scale) in enumerate(encoding.input_affine()) if condition.inputs[j] != 0)
        raise NoRoom(f"asserts {which} admit no output {'at ' + where if where else 'at any input'}"
                     f"{' (within the certificate margin)' if tightening > 0 else ''}: the rule has no solution "
                     "there (narrow the box with --domain, or lower --margin)")
    return rows, projection


def _row_formula(row: HalfSpace, outputs: Sequence[z3.ArithRef]) -> z3.BoolRef:
    left = [z3_rational(c) * y for c, y in zip(row.outputs, outputs, strict=True) if c != 0]
    right = [z3_rational(c) * input_var(j) for j, c in enumerate(row.inputs) if c != 0]
    return z3.Sum(left) <= z3.Sum(right) + z3_rational(row.const) if right else \
        z3.Sum(left) <= z3_rational(row.const)


def strengthened_spec(spec: Spec, split: SplitRule, rows: Sequence[HalfSpace], encoding: Encoding) -> Spec:
    """The remaining asserts, each ``premise -> (conclusion and rows)`` (scaled units), as a Spec for DeepSaDe.

    Its mapped features are the original rule's (every input a constructible assert mentions is in the rows)."""
    ys = [output_var(k) for k in range(len(spec.output_names))]
    polytope = z3.And(*[_row_formula(r, ys) for r in rows])
    back = [(input_var(j), (z3.Real(name) - z3_rational(Fraction(off))) / z3_rational(Fraction(scale)))
            for j, (name, (off, scale)) in enumerate(zip(encoding.input_names, encoding.input_affine(), strict=True))]
    back += [(output_var(k), (z3.Real(name) - z3_rational(Fraction(off))) / z3_rational(Fraction(scale)))
             for k, (name, (off, scale)) in enumerate(zip(encoding.output_names, encoding.output_affine(),
                                                          strict=True))]
    row_inputs = {j for i in split.constructible for j in spec.asserts[i].inputs}
    row_outputs = {k for r in rows for k, c in enumerate(r.outputs) if c != 0}
    asserts = []
    for position, index in enumerate(split.remaining):
        a = spec.asserts[index]
        conclusion = z3.And(a.conclusion, polytope)
        scaled = conclusion if not a.has_premise else z3.Implies(a.premise, conclusion)
        asserts.append(replace(a, index=position, scaled=scaled, conclusion=conclusion,
                               raw=z3.substitute(scaled, *back),
                               text=f"{' '.join(a.text.split())} strengthened with the clamped polytope",
                               inputs=sorted(set(a.inputs) | row_inputs), outputs=sorted(set(a.outputs) | row_outputs),
                               linear=a.linear and is_linear(polytope)))
    return replace(spec, asserts=asserts)
