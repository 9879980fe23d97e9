"""Asserts that no output can satisfy together, somewhere in the domain box: pairs, and larger sets.

Two ways a practitioner's rules leave no model to find:

- **overlap**: both premises hold at an input where no output satisfies both conclusions ("proline >= 1100:
  barolo" and "OD280 <= 2: never barolo", with a wine that has both). No model keeps the rule on the box.
- **boundary**: the premises never hold together but meet ("proline >= 1100: barolo" and "proline < 1100
  and ...: never barolo"). At an input ``x0`` where one premise holds and the other's closure does (strict
  comparisons made non-strict), a continuous network's output is the limit of outputs that satisfy the
  second conclusion, so it must satisfy the first conclusion and the closure of the second at once; when no
  output does, no network keeps the rule. A point of the second premise within ``REACH`` of ``x0`` (scaled
  units, a millionth of each input's range) is asked for as well, so a closure wider than the premise's
  (a degenerate premise) reports nothing.

The certificate covers the relaxed box (one-hot inputs anywhere in [0, 1], integer columns real); a conflict
found only at inputs no row can have (two one-hot inputs of one column both 1) is said to be so, with how to
write the premises so that it goes away.

Each check is one z3 query over the inputs with the outputs universally quantified (linear arithmetic: z3
eliminates them), under a timeout and a total budget; a query z3 does not settle is not reported, nor are
pairs whose asserts divide by a term (z3 leaves ``y / 0`` free, the tool's evaluator does not). When no pair
overlaps, one more query asks for an input where no output satisfies every assert at once (an overlap of three
or more, "y >= 1", "z >= 1" and "y + z <= 1" on one region), and names a smallest set of asserts that conflict
there. When nothing else is found, a last query asks the same of boundaries: an input in the closure of
some premises, each holding within ``REACH`` of it, where no output satisfies the closures of their conclusions
together ("x >= 0.5: y >= 1", "x < 0.5: z >= 1" and "y + z <= 1.5" at x = 0.5). Conflicts made only by the
certificate's margin are not searched. Used by ``deepsade check`` (a
warning), by ``train`` (refuses an overlap before training) and when training finds no model (the reason).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.data import Encoding
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Assert, Spec, input_var, output_var
from deepsade.terms import COMPARE, NEGATED_COMPARISON, distinct_subterms

REACH = Fraction(1, 10**6)
MAX_PAIRS = 200  # a rule with more pairs is not searched (each pair is a quantified query)
SMALLEST_QUERY_S = 0.05  # less budget left than this: stop (z3 reads a timeout of 0 ms as none)

_CLOSED = {z3.Z3_OP_LT: z3.Z3_OP_LE, z3.Z3_OP_GT: z3.Z3_OP_GE}


@dataclass(frozen=True)
class Conflict:
    """Asserts ``first`` and ``second`` (0-based; equal for one assert that cannot hold) have no output there."""

    first: int
    second: int
    boundary: bool  # the premises only meet at a boundary (no input satisfies both)
    point: dict[str, float]  # raw values of the inputs the premises mention, at a conflicting input
    realisable: bool = True  # False: found only at inputs no row can have (relaxed one-hot or integer inputs)
    names: tuple[str, str] = ("", "")  # 'assert 3', or 'assert 3 (a case of assert 1)'
    more: tuple[tuple[int, str], ...] = ()  # further asserts (index, name) of a conflict that needs three or more
    premised: tuple[bool, bool] = (True, True)  # whether ``first`` and ``second`` have a premise

    def describe(self) -> str:
        where = ", ".join(f"{name} = {value:.6g}" for name, value in self.point.items()) or "any input of the box"
        first, second = (n or f"assert {i + 1}" for n, i in zip(self.names, (self.first, self.second), strict=True))
        pair = (f"asserts {self.first + 1} and {self.second + 1}" if (first, second) ==
                (f"assert {self.first + 1}", f"assert {self.second + 1}") else f"{first} and {second}")
        if not self.realisable:
            return (f"{pair} contradict each other at {where}, an input no row can have "
                    "(one-hot inputs of one column both non-zero, or a fraction in a whole-number column), but "
                    "the certificate covers the box where each input ranges on its own, so no certified model "
                    "exists; write each premise so that it excludes the other's values, e.g. "
                    "(and (= |c=r| 1.0) (= |c=g| 0.0))")
        if self.more:
            indexes = [self.first, self.second, *(index for index, _ in self.more)]
            names = [first, second, *(name for _, name in self.more)]
            if names == [f"assert {i + 1}" for i in indexes]:
                names = [f"asserts {indexes[0] + 1}", *(str(i + 1) for i in indexes[1:])]
            together = f"{', '.join(names[:-1])} and {names[-1]}"
            if self.boundary:
                return (f"{together} ask for answers no output gives together where their premises meet (at {where}; "
                        "without any one of them, one does): a network is continuous and cannot switch at a point, "
                        "so no certified model exists; leave a gap between the premises (one bound a little further "
                        "out)")
            return (f"{together} contradict each other at {where}: their premises all "
                    "hold there and no output satisfies their conclusions together (without any one of them, one "
                    f"does), so no model can keep the rule{BOX_ADVICE}")
        if self.first == self.second:
            return (f"{first} cannot hold at {where}: its premise holds there and no output satisfies its "
                    f"conclusion{BOX_ADVICE}")
        if not self.boundary:
            held = {(True, True): "both premises hold there and ", (True, False): f"{first}'s premise holds there and ",
                    (False, True): f"{second}'s premise holds there and "}.get(self.premised, "")
            return (f"{pair} contradict each other at {where}: {held}no output satisfies both conclusions, so no "
                    f"model can keep the rule{BOX_ADVICE if any(self.premised) else ''}")
        return (f"{pair} ask for answers no output gives together on the two sides of "
                f"a boundary their premises share (at {where}): a network is continuous and cannot switch at a "
                "point, so no certified model exists; leave a gap between the premises (one bound a little "
                "further out)")


# said after a conflict at an input of the box: the point may combine values no row combines
BOX_ADVICE = ("; the domain box lets each input range on its own, so if no row combines these values, add the "
              "condition the rows keep to a premise (e.g. (>= a b) when a never falls below b), or narrow the box "
              "with --domain")


def find_conflicts(spec: Spec, encoding: Encoding, low: Sequence[Fraction], high: Sequence[Fraction],
                   timeout_s: float = 2.0, budget_s: float = 10.0) -> list[Conflict]:
    """The conflicting pairs of ``spec``'s asserts over the scaled box [low, high] (see the module); the search
    stops after ``budget_s`` seconds (pairs not reached are not reported)."""
    asserts = spec.asserts
    pairs = [(i, j) for i in range(len(asserts)) for j in range(i, len(asserts))]
    if len(pairs) > MAX_PAIRS:
        return []
    realisable = RealisableInputs.from_encoding(encoding)
    deadline = time.perf_counter() + budget_s

    def remaining() -> float:
        return min(timeout_s, deadline - time.perf_counter())

    found = []
    for i, j in pairs:
        a, b = asserts[i], asserts[j]
        if _divides_by_a_term(a) or _divides_by_a_term(b):
            continue
        checks = [(a, b, False)] + ([] if i == j else [(a, b, True), (b, a, True)])
        for first, second, boundary in checks:
            if remaining() < SMALLEST_QUERY_S:
                return found
            point = _solve(first, second, low, high, remaining(), boundary, realisable)
            if point is None:
                continue
            real = not realisable.constrained or _solve(first, second, low, high, max(remaining(), SMALLEST_QUERY_S),
                                                        boundary, realisable, only_realisable=True) is not None
            found.append(Conflict(first.index, second.index, boundary, _raw_point(encoding, point), real,
                                  (_name(first), _name(second)), premised=(first.has_premise, second.has_premise)))
            break
    if not any(not c.boundary for c in found) and remaining() >= SMALLEST_QUERY_S:
        joint = _joint_conflict(asserts, encoding, low, high, remaining, realisable)
        if joint is not None:
            found.append(joint)
    if not found and remaining() >= SMALLEST_QUERY_S:
        joint = _joint_conflict(asserts, encoding, low, high, remaining, realisable, boundary=True)
        if joint is not None:
            found.append(joint)
    return found


def _joint_conflict(asserts: Sequence[Assert], encoding: Encoding, low: Sequence[Fraction], high: Sequence[Fraction],
                    remaining, realisable: RealisableInputs, boundary: bool = False) -> Conflict | None:
    """A conflict that needs three or more asserts, from one quantified query over all of them, named by a
    smallest set of asserts whose conclusions have no common output there (deletion, with the input fixed).

    Overlap: an input where no output satisfies every assert at once. Boundary: an input ``x0`` in the closure
    of some premises, each with a point within ``REACH`` where it holds, where no output satisfies the closures
    of their conclusions together (a continuous network's output at ``x0`` satisfies each of them). None when
    there is none, or z3 gave no answer in time."""
    usable = [a for a in asserts if not _divides_by_a_term(a)]
    if len(usable) < 3:
        return None
    inputs = sorted({j for a in usable for j in a.inputs})
    outputs = [output_var(k) for k in sorted({k for a in usable for k in a.outputs})]
    near = [z3.Bool(f"near!{a.index}") for a in usable]
    if boundary:
        every = z3.And(*[z3.Implies(held, _closure(a.conclusion)) for held, a in zip(near, usable, strict=True)])
    else:
        every = z3.And(*[z3.Implies(a.premise, a.conclusion) for a in usable])

    def solve(only_realisable: bool) -> tuple[dict[int, Fraction], z3.ModelRef] | None:
        solver = _box_solver(inputs, low, high, max(remaining(), SMALLEST_QUERY_S), realisable, only_realisable)
        if boundary:
            for held, a in zip(near, usable, strict=True):
                solver.add(z3.Implies(held, z3.And(_closure(a.premise), _premise_within_reach(a, low, high))))
        solver.add(z3.ForAll(outputs, z3.Not(every)) if outputs else z3.Not(every))
        point = _input_point(solver, inputs)
        return None if point is None else (point, solver.model())

    answer = solve(False)
    if answer is None:
        return None
    point, model = answer
    at_point = [(input_var(j), z3_rational(value)) for j, value in point.items()]
    if boundary:
        members = [a for held, a in zip(near, usable, strict=True) if z3.is_true(model.eval(held))]
    else:
        members = [a for a in usable if z3.is_true(z3.simplify(z3.substitute(a.premise, *at_point)))]
    conclusion = {a.index: _closure(a.conclusion) if boundary else a.conclusion for a in members}

    def satisfiable(group: list[Assert]) -> bool:
        solver = z3.Solver()
        solver.set("timeout", max(1, int(max(remaining(), SMALLEST_QUERY_S) * 1000)))
        solver.add(*[z3.substitute(conclusion[a.index], *at_point) for a in group])
        return solver.check() != z3.unsat  # unknown counts as satisfiable: the assert stays in the group

    if satisfiable(members):
        return None  # z3's point is not what the quantified query said (should not happen): claim nothing
    for a in list(members):
        if len(members) > 1 and not satisfiable([b for b in members if b is not a]):
            members.remove(a)
    if boundary and len(members) < 3:
        return None  # two or one: the pair search covers them
    real = not realisable.constrained or solve(True) is not None
    point = {j: value for j, value in point.items() if any(j in a.inputs for a in members)}
    first, second, *more = members + members[:1] * (2 - len(members))  # one or two: a pair, as the pair search says
    return Conflict(first.index, second.index, boundary, _raw_point(encoding, point), real,
                    (_name(first), _name(second)), tuple((a.index, _name(a)) for a in more))


def _premise_within_reach(a: Assert, low: Sequence[Fraction], high: Sequence[Fraction]) -> z3.BoolRef:
    """A point of the box within ``REACH`` of the inputs (on each input) where ``a``'s premise holds."""
    near = {j: z3.Real(f"near!{a.index}!{j}") for j in a.inputs}
    parts = [part for j, x in near.items() for part in (
        x >= z3_rational(Fraction(low[j])), x <= z3_rational(Fraction(high[j])),
        input_var(j) - x <= z3_rational(REACH), x - input_var(j) <= z3_rational(REACH))]
    premise = z3.substitute(a.premise, *[(input_var(j), x) for j, x in near.items()]) if near else a.premise
    return z3.And(*parts, premise)


def _name(a: Assert) -> str:
    return f"assert {a.index + 1}" + (f" (a case of assert {a.case_of + 1})" if a.case_of not in (None, a.index)
                                      else "")


def _divides_by_a_term(a: Assert) -> bool:
    return any(z3.is_app(n) and n.decl().kind() == z3.Z3_OP_DIV and any(
        not (z3.is_rational_value(d) or z3.is_int_value(d)) for d in n.children()[1:])
        for n in distinct_subterms(a.scaled))


def _solve(a: Assert, b: Assert, low: Sequence[Fraction], high: Sequence[Fraction], timeout_s: float,
           boundary: bool, realisable: RealisableInputs, only_realisable: bool = False) -> dict[int, Fraction] | None:
    """An input (scaled, by index) where ``a``'s premise holds, ``b``'s premise holds too (overlap) or its
    closure does with a point of it within ``REACH`` (boundary), and no output satisfies ``a``'s conclusion
    and ``b``'s (its closure, at a boundary); None if none, or z3 gave no answer in time."""
    outputs = [output_var(k) for k in sorted(set(a.outputs) | set(b.outputs))]
    inputs = sorted(set(a.inputs) | set(b.inputs))
    solver = _box_solver(inputs, low, high, timeout_s, realisable, only_realisable)
    solver.add(a.premise)
    conclusion_b = b.conclusion
    if boundary:
        solver.add(_premise_within_reach(b, low, high), _closure(b.premise))
        conclusion_b = _closure(b.conclusion)
    else:
        solver.add(b.premise)
    both = z3.And(a.conclusion, conclusion_b)
    solver.add(z3.ForAll(outputs, z3.Not(both)) if outputs else z3.Not(both))
    return _input_point(solver, inputs)


def _box_solver(inputs: Sequence[int], low: Sequence[Fraction], high: Sequence[Fraction], timeout_s: float,
                realisable: RealisableInputs, only_realisable: bool) -> z3.Solver:
    """A solver over ``inputs`` in the scaled box [low, high] (only inputs a real row could have, if asked)."""
    solver = z3.Solver()
    solver.set("timeout", max(1, int(timeout_s * 1000)))
    for j in inputs:
        solver.add(input_var(j) >= z3_rational(Fraction(low[j])), input_var(j) <= z3_rational(Fraction(high[j])))
    if only_realisable:
        from deepsade.verification.z3_engine import realisability_constraints

        solver.add(*realisability_constraints(realisable))
    return solver


def _input_point(solver: z3.Solver, inputs: Sequence[int]) -> dict[int, Fraction] | None:
    """The inputs (scaled, by index) of a model of ``solver``; None when unsat, or z3 gave no answer in time."""
    try:
        if solver.check() != z3.sat:
            return None
    except z3.Z3Exception:
        return None
    model = solver.model()
    return {j: z3_fraction(model.eval(input_var(j), model_completion=True)) for j in inputs}


def _closure(expr: z3.BoolRef, negated: bool = False) -> z3.BoolRef:
    """A formula for a superset of the closure of the set ``expr`` (or its negation) describes: negations
    pushed to the comparisons, every strict comparison made non-strict (``a != b`` becomes true)."""
    if z3.is_true(expr) or z3.is_false(expr):
        return z3.BoolVal(z3.is_true(expr) != negated)
    kind = expr.decl().kind() if z3.is_app(expr) else None
    if kind == z3.Z3_OP_NOT:
        return _closure(expr.arg(0), not negated)
    if kind == z3.Z3_OP_IMPLIES:
        return _closure(z3.Or(z3.Not(expr.arg(0)), expr.arg(1)), negated)
    if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
        parts = [_closure(c, negated) for c in expr.children()]
        return z3.And(*parts) if (kind == z3.Z3_OP_AND) != negated else z3.Or(*parts)
    if kind in NEGATED_COMPARISON:
        kind = NEGATED_COMPARISON[kind] if negated else kind
        return COMPARE[_CLOSED.get(kind, kind)](expr.arg(0), expr.arg(1))
    if kind == z3.Z3_OP_EQ and z3.is_arith(expr.arg(0)):
        return z3.BoolVal(True) if negated else expr
    return z3.Not(expr) if negated else expr  # any other Boolean term as it is


def _raw_point(encoding: Encoding, scaled: dict[int, Fraction]) -> dict[str, float]:
    affine = encoding.input_affine()
    return {encoding.input_names[j]: float(affine[j][0] + affine[j][1] * value) for j, value in sorted(scaled.items())}
