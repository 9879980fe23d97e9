"""Premises that go on past the domain box: where the guarantee stops although the rule does not.

The box is the training rows' range of each input unless ``--domain`` widens it, so a rule such as
"pressure >= 100 bar: always a failure" is guaranteed up to the largest pressure in the data and not beyond,
while the rule as written reaches every higher pressure. When a premise holds at the box's edge on an input
and also past it (within one more box width, the other inputs inside the box), the user is told, with the
edge in raw units and how to widen the box. Only inputs with real values whose bound is the data's own are
looked at: a one-hot or whole-number column (an hour of the day, a 0/1 flag) usually has its whole range in
the data, and a bound the user set with ``--domain`` is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.data import Domain, Encoding
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, input_var
from deepsade.terms import distinct_subterms

QUERY_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Edge:
    """Assert ``written`` (0-based, as written)'s premise holds at the box's ``side`` ("upper" or "lower") on
    input ``name`` and past it; ``value`` is that edge in raw units."""

    written: int
    name: str
    side: str
    value: float

    def describe(self) -> str:
        relation, extreme = ("above", "largest") if self.side == "upper" else ("below", "smallest")
        return f"{self.name} {relation} {self.value:.6g}, the data's {extreme}"


def premise_edges(spec: Spec, encoding: Encoding, domain: Domain) -> list[Edge]:
    """Every (assert, input, side) where a premise goes on past the box (see the module), in assert order."""
    low, high = domain.scaled_exact(encoding)
    integer = set(encoding.integer_inputs or [])
    own = {j for j, name in enumerate(encoding.input_names)
           if name in encoding.feature_columns and name not in encoding.categorical_levels and name not in integer}
    found: dict[tuple[int, str, str], Edge] = {}
    for a in spec.asserts:
        if not a.has_premise:
            continue
        in_premise = {j for j in a.inputs if any(z3.eq(t, input_var(j)) for t in distinct_subterms(a.premise))}
        for j in sorted(in_premise & own):
            width = high[j] - low[j]
            for side, edge, data_edge, raw in (("upper", high[j], encoding.input_max[j], domain.upper[j]),
                                              ("lower", low[j], encoding.input_min[j], domain.lower[j])):
                key = (a.written_index, encoding.input_names[j], side)
                if key in found or width <= 0 or float(raw) != float(data_edge):
                    continue
                past = edge + width if side == "upper" else edge - width
                beyond = (input_var(j) > z3_rational(edge), input_var(j) <= z3_rational(past)) if side == "upper" \
                    else (input_var(j) < z3_rational(edge), input_var(j) >= z3_rational(past))
                if _holds(a, low, high, j, [input_var(j) == z3_rational(edge)]) and _holds(a, low, high, j, beyond):
                    found[key] = Edge(a.written_index, encoding.input_names[j], side, float(raw))
    return list(found.values())


def _holds(a, low: list[Fraction], high: list[Fraction], j: int, where) -> bool:
    """Whether ``a``'s premise holds somewhere with input ``j`` as ``where`` says and the others in the box."""
    solver = z3.Solver()
    solver.set("timeout", QUERY_TIMEOUT_MS)
    for i in a.inputs:
        if i != j:
            solver.add(input_var(i) >= z3_rational(low[i]), input_var(i) <= z3_rational(high[i]))
    solver.add(*where, a.premise)
    return solver.check() == z3.sat


def edge_note(edges: list[Edge]) -> str | None:
    """One line for ``train`` (None when there are no edges): which premises reach past the box, and the fix."""
    if not edges:
        return None
    by_assert: dict[int, list[Edge]] = {}
    for e in edges:
        by_assert.setdefault(e.written, []).append(e)
    parts = [f"assert {i + 1}'s to {' and '.join(e.describe() for e in es)}" for i, es in by_assert.items()]
    example = edges[0]
    span = "[LOW, HIGH]"
    return (f"premises go on past the domain box ({'; '.join(parts)}): the guarantee covers the box only, so "
            "inputs beyond it are not covered; if they can occur, widen the box with --domain, a JSON file such "
            f"as {{\"{example.name}\": {span}}} with the range the input can really take")
