"""Pairs of asserts that no output can satisfy together, somewhere in the domain box.

Two ways a practitioner's rules leave no model to find:

- **overlap**: both premises hold at an input where no output satisfies both conclusions ("proline >= 1100:
  barolo" and "OD280 <= 2: never barolo", with a wine that has both). No model at all keeps the rule.
- **boundary**: the premises never hold together but meet at a boundary ("proline >= 1100: barolo" and
  "proline < 1100 and ...: never barolo"). Any model that keeps the rule must jump there; a network is
  continuous, so no network keeps it with a margin. Found as premises that hold at two inputs at most
  ``REACH`` apart (scaled units, a millionth of each input's range) with no output satisfying both
  conclusions: a network would need a slope of margin / ``REACH`` there.

Each pair is one z3 query over the inputs with the outputs universally quantified (linear arithmetic: z3
eliminates them), with a timeout; a pair z3 does not settle in time is not reported. Conflicts that need
three asserts or more are not searched. Used by ``deepsade check`` (a warning), and by ``train`` when no
certified model was found (the reason, instead of only "no last-layer weights").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.data import Encoding
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, input_var, output_var

REACH = Fraction(1, 10**6)
MAX_PAIRS = 200  # a rule with more pairs is not searched (each pair is a quantified query)


@dataclass(frozen=True)
class Conflict:
    """Asserts ``first`` and ``second`` (0-based, equal for one assert that cannot hold) have no output there."""

    first: int
    second: int
    boundary: bool  # the premises only meet at a boundary (no input satisfies both)
    point: dict[str, float]  # raw values of the inputs the premises mention, at a conflicting input

    def describe(self) -> str:
        where = ", ".join(f"{name} = {value:.6g}" for name, value in self.point.items()) or "any input of the box"
        if self.first == self.second:
            return (f"assert {self.first + 1} cannot hold at {where}: its premise holds there and no output "
                    "satisfies its conclusion")
        pair = f"asserts {self.first + 1} and {self.second + 1}"
        if not self.boundary:
            return (f"{pair} contradict each other at {where}: both premises hold there and no output satisfies "
                    "both conclusions, so no model can keep the rule")
        return (f"{pair} ask for answers no output gives together on the two sides of a boundary their premises "
                f"share (near {where}): a network is continuous and cannot switch at a point, so no certified "
                "model exists; leave a gap between the premises (one bound a little further out)")


def find_conflicts(spec: Spec, encoding: Encoding, low: Sequence[Fraction], high: Sequence[Fraction],
                   timeout_s: float = 2.0, budget_s: float = 10.0) -> list[Conflict]:
    """The conflicting pairs of ``spec``'s asserts over the scaled box [low, high] (see the module); the search
    stops after ``budget_s`` seconds (pairs not reached are not reported)."""
    asserts = spec.asserts
    pairs = [(i, j) for i in range(len(asserts)) for j in range(i, len(asserts))]
    if len(pairs) > MAX_PAIRS:
        return []
    found = []
    start = time.perf_counter()
    for i, j in pairs:
        left = budget_s - (time.perf_counter() - start)
        if left <= 0:
            break
        conflict = _pair_conflict(spec, encoding, i, j, low, high, min(timeout_s, left))
        if conflict is not None:
            found.append(conflict)
    return found


def _pair_conflict(spec: Spec, encoding: Encoding, i: int, j: int, low: Sequence[Fraction],
                   high: Sequence[Fraction], timeout_s: float) -> Conflict | None:
    a, b = spec.asserts[i], spec.asserts[j]
    outputs = [output_var(k) for k in sorted(set(a.outputs) | set(b.outputs))]
    inputs = sorted(set(a.inputs) | set(b.inputs))
    here = _solve(a, b, inputs, outputs, low, high, timeout_s, None)
    if here is not None:
        return Conflict(i, j, False, _raw_point(encoding, here))
    if i == j:
        return None
    near = _solve(a, b, inputs, outputs, low, high, timeout_s, REACH)
    return None if near is None else Conflict(i, j, True, _raw_point(encoding, near))


def _solve(a, b, inputs: list[int], outputs: list[z3.ArithRef], low: Sequence[Fraction], high: Sequence[Fraction],
           timeout_s: float, reach: Fraction | None) -> dict[int, Fraction] | None:
    """An input (scaled, by index) where ``a``'s premise holds and ``b``'s holds at the same input (``reach``
    None) or at one within ``reach`` per coordinate, and no output satisfies both conclusions; None if none
    (or z3 gave no answer in time)."""
    solver = z3.Solver()
    solver.set("timeout", int(timeout_s * 1000))
    there = {j: input_var(j) if reach is None else z3.Real(f"near!{j}") for j in inputs}
    for j in inputs:
        for x in {input_var(j).get_id(): input_var(j), there[j].get_id(): there[j]}.values():
            solver.add(x >= z3_rational(Fraction(low[j])), x <= z3_rational(Fraction(high[j])))
        if reach is not None:
            solver.add(input_var(j) - there[j] <= z3_rational(reach), there[j] - input_var(j) <= z3_rational(reach))
    moved = [(input_var(j), there[j]) for j in inputs if reach is not None]
    premise_b = z3.substitute(b.premise, *moved) if moved else b.premise
    conclusion_b = z3.substitute(b.conclusion, *moved) if moved else b.conclusion
    solver.add(a.premise, premise_b)
    both = z3.And(a.conclusion, conclusion_b)
    solver.add(z3.ForAll(outputs, z3.Not(both)) if outputs else z3.Not(both))
    try:
        if solver.check() != z3.sat:
            return None
    except z3.Z3Exception:
        return None
    model = solver.model()
    point = {}
    for j in inputs:
        value = model.eval(input_var(j), model_completion=True)
        point[j] = Fraction(value.numerator_as_long(), value.denominator_as_long()) \
            if z3.is_rational_value(value) else Fraction(str(value.approx(12)).rstrip("?"))
    return point


def _raw_point(encoding: Encoding, scaled: dict[int, Fraction]) -> dict[str, float]:
    affine = encoding.input_affine()
    return {encoding.input_names[j]: float(affine[j][0] + affine[j][1] * value) for j, value in sorted(scaled.items())}
