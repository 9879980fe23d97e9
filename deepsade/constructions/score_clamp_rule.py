"""Which classifier rules score clamps take, compiled into a ``ScoreProgram`` (exact rationals, scaled units).

Every assert is turned into clauses (an exact CNF over its comparisons: ``phi`` implies each clause and the
clauses together imply ``phi``). A clause is taken when it reads ``premise -> head``:

- its input literals, negated, are the premise: a box of single-input bounds (one-hot ``x = 1`` included)
  narrowing the domain, or a conjunction of linear inequalities coupling inputs (``debt + instalment >
  0.6 income``), which a premise gate ``g`` (exactly 1 on the premise, 0 a band width outside) computes;
- its output literals are either sign literals ``y_k > t`` / ``y_k < t`` (binary and multi-label scores;
  one is the head, the others, negated, are output premises such as ``y_a > 0``), or class comparisons
  ``y_s > y_j`` (multiclass: "class j is never above all of S", or "class c is above class k").

The head output is then raised (``max``) or lowered (``min``) by a value that is at least ``mu`` wherever the
premise holds and far below 0 away from it, so the clause holds for EVERY base score ``f`` (the layer in
``score_clamp``). Anything else is ``NotApplicable`` with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import z3

from deepsade.constructions.linear_gate import LinearSide, linear_premise_sides
from deepsade.constructions.recognise import NotApplicable
from deepsade.gates import plan_gates
from deepsade.linear import LinearAtom, NotLinear, atom_from_comparison
from deepsade.numbers import z3_rational
from deepsade.regions import InputRegion, input_region
from deepsade.spec import Assert, Spec, input_var

SCORE_CLAMPS = "score clamps"
CLASSIFIER_TASKS = ("binary", "multilabel", "multiclass")
MAX_ATOMS = 14  # an assert's comparisons: the exact CNF enumerates at most 2^MAX_ATOMS assignments
GATE_OFFSET = Fraction(1024)  # h = (mu + C) g - C: -C a band width away from the premise box


def _float32_nearest(value: Fraction) -> Fraction:
    return Fraction(float(np.float32(float(value))))


def _float32_down(value: Fraction) -> Fraction:
    rounded = np.float32(float(value))
    if Fraction(float(rounded)) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf), dtype=np.float32)
    return Fraction(float(rounded))


def premise_margin(output_margin: float) -> Fraction:
    """``mu``: how far a clamped score clears its bound (a power of two, >= 1/4 and >= 64 x the margin)."""
    mu = Fraction(1, 4)
    while mu < 64 * Fraction(output_margin):
        mu *= 2
    return mu


@dataclass(frozen=True)
class GateSpec:
    """``g(x) = relu(1 - sum_s relu(W_s . x + bias_s))`` (float32 values): exactly 1 on the premise (each bias
    rounded down), 0 a band width outside; ``h = scale * g - offset``. A box's sides read one input each."""

    sides: tuple[LinearSide, ...]
    scale: Fraction
    offset: Fraction


@dataclass(frozen=True)
class Part:
    """One conjunct of a clause's body: a gate's ``h`` (``kind`` "gate") or ``sign * y'_index + offset``."""

    kind: str
    index: int
    sign: int = 1
    offset: Fraction = Fraction(0)


@dataclass(frozen=True)
class Term:
    """``anchor + v`` (``raises``) or ``anchor - v``, ``v = min(parts)`` (``mu`` with no parts); the anchor is the
    max of the final scores ``anchor_outputs``, or ``anchor_const`` when there are none."""

    raises: bool
    anchor_outputs: tuple[int, ...]
    anchor_const: Fraction
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Step:
    """``y'_output = min(max(f_output, raising terms), lowering terms)``."""

    output: int
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class ScoreProgram:
    """The whole layer: gates, then one step per head output in an order where every score a step reads is final."""

    gates: tuple[GateSpec, ...]
    mu: Fraction
    steps: tuple[Step, ...]
    taken: tuple[int, ...]  # asserts (0-based)

    def to_dict(self) -> dict:
        """JSON form (exact numbers as strings) for the model's architecture."""
        def part(p: Part) -> list:
            return [p.kind, p.index, p.sign, str(p.offset)]
        return {"mu": str(self.mu), "taken": list(self.taken),
                "gates": [{"sides": [side.to_json() for side in g.sides], "scale": str(g.scale),
                           "offset": str(g.offset)} for g in self.gates],
                "steps": [{"output": s.output, "terms": [
                    {"raises": t.raises, "anchor_outputs": list(t.anchor_outputs), "anchor_const": str(t.anchor_const),
                     "parts": [part(p) for p in t.parts]} for t in s.terms]} for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict) -> ScoreProgram:
        gates = tuple(GateSpec(tuple(LinearSide.from_json(side) for side in g["sides"]),
                               Fraction(g["scale"]), Fraction(g["offset"])) for g in data["gates"])
        steps = tuple(Step(int(s["output"]), tuple(
            Term(bool(t["raises"]), tuple(int(k) for k in t["anchor_outputs"]), Fraction(t["anchor_const"]),
                 tuple(Part(str(p[0]), int(p[1]), int(p[2]), Fraction(p[3])) for p in t["parts"]))
            for t in s["terms"])) for s in data["steps"])
        return cls(gates, Fraction(data["mu"]), steps, tuple(int(i) for i in data.get("taken", [])))

    def describe(self, output_names: Sequence[str] | None = None) -> str:
        """One line: which asserts, which scores are clamped, how many gates."""
        heads = ", ".join(output_names[s.output] if output_names else str(s.output) for s in self.steps)
        return (f"score clamps for assert(s) {', '.join(str(i + 1) for i in self.taken)}: {len(self.steps)} clamped "
                f"score(s) ({heads}), {len(self.gates)} premise gate(s), mu {float(self.mu):g}")


# ---- the exact CNF of one assert ------------------------------------------------------------------------

def _comparisons(expr: z3.ExprRef, where: str, found: list) -> None:
    if z3.is_bool(expr) and (z3.is_and(expr) or z3.is_or(expr) or z3.is_not(expr) or z3.is_implies(expr)
                             or (z3.is_eq(expr) and z3.is_bool(expr.arg(0)))):
        for child in expr.children():
            _comparisons(child, where, found)
        return
    if z3.is_true(expr) or z3.is_false(expr):
        return
    if z3.is_le(expr) or z3.is_lt(expr) or z3.is_ge(expr) or z3.is_gt(expr) or \
            (z3.is_eq(expr) and z3.is_arith(expr.arg(0))):
        if not any(expr.eq(e) for e in found):
            found.append(expr)
        return
    raise NotApplicable(f"{SCORE_CLAMPS} take and/or/not/=> over comparisons; {where} uses {expr.decl().name()}")


def clauses_of(formula: z3.BoolRef, where: str) -> list[list[tuple[z3.BoolRef, bool]]]:
    """An exact CNF of ``formula`` over its comparisons: each clause a list of (comparison, polarity)."""
    atoms: list[z3.BoolRef] = []
    _comparisons(formula, where, atoms)
    if len(atoms) > MAX_ATOMS:
        raise NotApplicable(f"{SCORE_CLAMPS} take at most {MAX_ATOMS} comparisons per assert; {where} has {len(atoms)}")
    names = [z3.Bool(f"atom!{i}") for i in range(len(atoms))]
    abstract = z3.substitute(formula, *zip(atoms, names, strict=True)) if atoms else formula
    search = z3.Solver()
    search.add(z3.Not(abstract))
    clauses = []
    while search.check() == z3.sat:
        point = search.model()
        clause = [(i, not z3.is_true(point.eval(b, model_completion=True))) for i, b in enumerate(names)]
        for literal in list(clause):  # drop literals while the formula still implies the clause
            trial = [c for c in clause if c != literal]
            check = z3.Solver()
            check.add(abstract, *[(z3.Not(names[i]) if pol else names[i]) for i, pol in trial])
            if check.check() == z3.unsat:
                clause = trial
        if not clause:
            raise NotApplicable(f"{SCORE_CLAMPS}: {where} is unsatisfiable")
        search.add(z3.Or(*[(names[i] if pol else z3.Not(names[i])) for i, pol in clause]))
        clauses.append([(atoms[i], pol) for i, pol in clause])
    return clauses


# ---- literals ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignLiteral:
    """``y_output > t`` (``up``) or ``y_output < t`` (strictness does not matter: heads are kept with ``mu``)."""

    output: int
    up: bool
    threshold: Fraction


@dataclass(frozen=True)
class Comparison:
    """``y_greater > y_smaller`` (or >=)."""

    greater: int
    smaller: int


def _has_ite(expr: z3.ExprRef) -> bool:
    return z3.is_app(expr) and (expr.decl().kind() == z3.Z3_OP_ITE or any(_has_ite(c) for c in expr.children()))


def _linear(atom: z3.BoolRef, where: str) -> LinearAtom:
    if _has_ite(atom):
        raise NotApplicable(f"{SCORE_CLAMPS} take comparisons of scores, not counts; {where} compares a sum of ite "
                            "terms (a counting rule)")
    try:
        return atom_from_comparison(atom)
    except NotLinear:
        raise NotApplicable(f"{SCORE_CLAMPS} need comparisons linear in the inputs and outputs; {where} has a "
                            "nonlinear term") from None


def _output_literal(atom: LinearAtom, polarity: bool, where: str) -> SignLiteral | Comparison:
    """``atom`` (``coefs . v + const op 0``) with that polarity, as a sign literal or a class comparison."""
    if atom.inputs():
        raise NotApplicable(f"{SCORE_CLAMPS} need output comparisons free of inputs; {where} mixes them")
    if atom.op == "==":
        raise NotApplicable(f"{SCORE_CLAMPS} take inequalities on scores; {where} states an equality")
    outputs = {k: v for k, v in atom.outputs().items() if v != 0}
    # polarity True: coefs . y + const <= 0 (<); False: coefs . y + const > 0 (>=)
    sign = 1 if polarity else -1  # sign * (coefs . y + const) <= 0
    if len(outputs) == 1:
        (k, c), = outputs.items()
        c, const = sign * c, sign * atom.const
        return SignLiteral(k, up=c < 0, threshold=-const / c)  # c y + const <= 0
    if len(outputs) == 2 and atom.const == 0 and sum(outputs.values()) == 0:
        (a, ca), (b, _) = sorted(outputs.items())
        # sign * ca * (y_a - y_b) <= 0: y_b >= y_a when sign * ca > 0
        return Comparison(b, a) if sign * ca > 0 else Comparison(a, b)
    raise NotApplicable(f"{SCORE_CLAMPS} take score signs (y > t) and class comparisons (y_a > y_b); {where} "
                        "compares another combination of outputs")


def _closed(expr: z3.BoolRef) -> z3.BoolRef:
    """The premise with every strict comparison made non-strict (its closure, for conjunctions of atoms)."""
    if z3.is_not(expr) and z3.is_app(expr.arg(0)):
        inner = expr.arg(0)
        if z3.is_le(inner) or z3.is_lt(inner):
            return inner.arg(0) >= inner.arg(1)
        if z3.is_ge(inner) or z3.is_gt(inner):
            return inner.arg(0) <= inner.arg(1)
    if z3.is_lt(expr):
        return expr.arg(0) <= expr.arg(1)
    if z3.is_gt(expr):
        return expr.arg(0) >= expr.arg(1)
    if z3.is_and(expr):
        return z3.And(*[_closed(c) for c in expr.children()])
    if z3.is_or(expr):
        return z3.Or(*[_closed(c) for c in expr.children()])
    return expr


def _box(lo: Sequence[Fraction], hi: Sequence[Fraction]) -> list[z3.BoolRef]:
    return [c for j in range(len(lo)) for c in (input_var(j) >= z3_rational(lo[j]), input_var(j) <= z3_rational(hi[j]))]


def premise_box(a: Assert, premise: z3.BoolRef, low: Sequence[Fraction], high: Sequence[Fraction],
                where: str) -> InputRegion | None:
    """The box of single-input bounds a clause's input premise is (None: it never holds in the domain), or
    NotApplicable when the premise is not such a box (up to its boundary)."""
    domain = _box(low, high)
    solver = z3.Solver()
    solver.add(*domain, premise)
    if solver.check() == z3.unsat:
        return None
    region = input_region(replace(a, premise=premise), low, high)
    outside = z3.Solver()  # the box holds every point of the premise (soundness of the gate)
    outside.add(*domain, premise, z3.Not(z3.And(*_box(region.low, region.high))))
    inside = z3.Solver()  # and the premise, closed, holds on the whole box (the gate enforces nothing more)
    inside.add(*_box(region.low, region.high), z3.Not(_closed(premise)))
    if outside.check() != z3.unsat or inside.check() != z3.unsat:
        raise NotApplicable(f"{SCORE_CLAMPS} need premises that are boxes of single-input bounds; {where}'s premise "
                            "is not one")
    return region


def _gate(region: InputRegion, low: Sequence[Fraction], high: Sequence[Fraction], mu: Fraction) -> GateSpec:
    (gate,) = plan_gates([region], low, high)
    sides = []
    for side in gate.sides:
        sign = -1 if side.lower else 1  # lower side: (threshold - x) / width
        weight = _float32_nearest(Fraction(sign) / side.width)
        sides.append(LinearSide.single(side.input_index, weight, _float32_down(-weight * side.threshold)))
    return GateSpec(tuple(sides), GATE_OFFSET + mu, GATE_OFFSET)


def _premise_gate(a: Assert, premise: z3.BoolRef, low: Sequence[Fraction], high: Sequence[Fraction], mu: Fraction,
                  where: str):
    """How a clause's input premise is gated: "never" (it holds nowhere in the domain box), None (it holds on the
    whole box: no gate), or (key, a function making the ``GateSpec``): the premise's box of single-input bounds,
    else its half-spaces (``linear_gate``); NotApplicable when it is neither."""
    try:
        region = premise_box(a, premise, low, high, where)
    except NotApplicable as box_reason:
        try:
            sides = linear_premise_sides(premise, low, high, where)
        except NotApplicable:
            raise NotApplicable(f"{SCORE_CLAMPS} need premises that are boxes of single-input bounds or "
                                f"conjunctions of linear inequalities over the inputs; {where}'s premise is "
                                "neither") from box_reason
        return ("linear", sides), lambda: GateSpec(sides, GATE_OFFSET + mu, GATE_OFFSET)
    if region is None:
        return "never"
    if not region.restricts:
        return None
    return (tuple(region.low), tuple(region.high)), lambda: _gate(region, low, high, mu)


# ---- the program ---------------------------------------------------------------------------------------

def _head_candidates(a: Assert, spec: Spec) -> set[int]:
    """Outputs in the conclusion of the assert's (raw) implication chain: preferred as heads."""
    expr = a.raw
    while z3.is_implies(expr):
        expr = expr.arg(1)
    seen: list = []
    _collect_names(expr, seen)
    names = {str(n) for n in seen}
    return {k for k, name in enumerate(spec.output_names) if name in names}


def _collect_names(expr: z3.ExprRef, out: list) -> None:
    if z3.is_const(expr) and expr.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        out.append(expr)
    for child in expr.children():
        _collect_names(child, out)


def compile_score_program(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction], task: str,
                          output_margin: float, one_direction_first: bool = False) -> ScoreProgram:
    """The score clamps for every assert of a classifier rule, or NotApplicable (one line) for the first
    assert they cannot take.

    A clause "one of these scores has this sign" clamps one of them, its head: a score the assert's conclusion
    names, one to raise rather than lower, then the last output. With ``one_direction_first``, a score that some
    clause would raise and another lower goes last among equals: "politics or finance" and "not (sports and
    finance)" then clamp politics up and sports down, where the last output (finance) would be raised by the
    one and lowered by the other, and a later clamp could undo an earlier one."""
    if task not in CLASSIFIER_TASKS:
        raise NotApplicable(f"{SCORE_CLAMPS} are for classifier scores; this is a {task} task")
    mu = premise_margin(output_margin)
    gates: list[GateSpec] = []
    gate_of: dict[tuple, int] = {}
    terms: dict[int, list[Term]] = {}
    depends: dict[int, set[int]] = {}
    collected: list[tuple[str, set[int], list]] = []  # per assert: its name, head candidates, clauses
    for a in spec.asserts:
        where = f"assert {a.index + 1}"
        candidates = _head_candidates(a, spec)
        clauses = []
        for clause in clauses_of(a.scaled, where):
            inputs, outputs = [], []
            for atom, polarity in clause:
                linear = _linear(atom, where)
                if linear.outputs():
                    outputs.append(_output_literal(linear, polarity, where))
                else:  # the clause holds the literal; the premise is its negation
                    inputs.append(z3.Not(atom) if polarity else atom)
            if not outputs:
                raise NotApplicable(f"{SCORE_CLAMPS} need every clause to mention a score; {where} constrains "
                                    "inputs only")
            premise = z3.And(*inputs) if inputs else z3.BoolVal(True)
            gate = _premise_gate(a, premise, low, high, mu, where) if inputs else None
            if gate == "never":
                continue  # the premise never holds in the domain box: nothing to enforce
            parts: list[Part] = []
            if gate is not None:
                key, make = gate
                if key not in gate_of:
                    gate_of[key] = len(gates)
                    gates.append(make())
                parts.append(Part("gate", gate_of[key]))
            clauses.append((outputs, parts))
        collected.append((where, candidates, clauses))
    directions: dict[int, set[bool]] = {}
    for _, _, clauses in collected:
        for outputs, _ in clauses:
            for o in outputs:
                if isinstance(o, SignLiteral):
                    directions.setdefault(o.output, set()).add(o.up)
    mixed = {k for k, ways in directions.items() if len(ways) > 1} if one_direction_first else set()
    for where, candidates, clauses in collected:
        greater_count: dict[int, int] = {}
        for outputs, _ in clauses:
            if len(outputs) == 1 and isinstance(outputs[0], Comparison):
                greater_count[outputs[0].greater] = greater_count.get(outputs[0].greater, 0) + 1
        for outputs, parts in clauses:
            head, term = _clause_term(outputs, parts, candidates, greater_count, mu, where, mixed)
            terms.setdefault(head, []).append(term)
            depends.setdefault(head, set()).update(_reads(term))
    order = _topological(depends)
    steps = tuple(Step(k, tuple(terms[k])) for k in order if k in terms)
    if not steps:
        raise NotApplicable(f"{SCORE_CLAMPS}: no assert's premise holds anywhere in the domain box")
    return ScoreProgram(tuple(gates), mu, steps, tuple(a.index for a in spec.asserts))


def _clause_term(outputs: list, parts: list[Part], candidates: set[int], greater_count: dict[int, int],
                 mu: Fraction, where: str, mixed: set[int] = frozenset()) -> tuple[int, Term]:
    if all(isinstance(o, SignLiteral) for o in outputs):
        def rank(o: SignLiteral) -> tuple:
            return (o.output in candidates, o.up, o.output not in mixed, o.output)
        head = max(outputs, key=rank)
        body = list(parts)
        for o in outputs:
            if o is head:
                continue
            # the literal is false (its negation holds): y > t -> t - y + mu > 0 ... positive exactly then
            if o.up:  # false: y <= t
                body.append(Part("output", o.output, -1, _float32_nearest(o.threshold + mu)))
            else:  # false: y >= t
                body.append(Part("output", o.output, 1, _float32_nearest(mu - o.threshold)))
        return head.output, Term(head.up, (), _float32_nearest(head.threshold), tuple(body))
    if all(isinstance(o, Comparison) for o in outputs):
        if len(outputs) == 1 and greater_count.get(outputs[0].greater, 0) >= 2:  # "class c above every k"
            o = outputs[0]
            return o.greater, Term(True, (o.smaller,), Fraction(0), tuple(parts))
        smaller = {o.smaller for o in outputs}
        if len(smaller) != 1:
            raise NotApplicable(f"{SCORE_CLAMPS} take 'class j is below one of S' clauses; {where} compares "
                                "different classes in one clause")
        (j,) = smaller
        return j, Term(False, tuple(sorted({o.greater for o in outputs})), Fraction(0), tuple(parts))
    raise NotApplicable(f"{SCORE_CLAMPS} take score signs or class comparisons in a clause, not both; {where} "
                        "mixes them")


def _reads(term: Term) -> set[int]:
    """The scores a term reads."""
    return set(term.anchor_outputs) | {p.index for p in term.parts if p.kind == "output"}


def with_unlowered_anchors(program: ScoreProgram) -> ScoreProgram:
    """The program with each clause "class j is below one of S" lowering j below the classes of S that no
    clause lowers (S kept whole when that leaves none), steps reordered to follow. Below one of the unlowered
    classes is below one of S, and no step moves those, so a cycle of exclusions (two classes each excluded
    where the other may be too, premises overlapping) becomes a chain. It lowers j at least as far as the
    clause asks, never less."""
    lowered = {step.output for step in program.steps if any(not t.raises for t in step.terms)}

    def narrowed(t: Term) -> Term:
        kept = tuple(k for k in t.anchor_outputs if k not in lowered)
        return replace(t, anchor_outputs=kept) if not t.raises and kept else t

    terms = {step.output: tuple(narrowed(t) for t in step.terms) for step in program.steps}
    order = _topological({head: set().union(*(_reads(t) for t in head_terms)) for head, head_terms in terms.items()})
    return replace(program, steps=tuple(Step(k, terms[k]) for k in order if k in terms))


def _topological(depends: dict[int, set[int]]) -> list[int]:
    """Heads in an order where each follows every score it reads. When the rules between scores form a cycle
    (e.g. two exclusions with disjoint premises), heads go by fewest dependencies: a step then reads the base
    score of a head that comes later, and the z3 check of the whole layer decides whether that still keeps
    the rule (``score_clamp_train.score_program``)."""
    order: list[int] = []
    state: dict[int, int] = {}

    def visit(k: int) -> bool:
        if state.get(k) == 2:
            return True
        if state.get(k) == 1:
            return False
        state[k] = 1
        for d in sorted(depends.get(k, ())):
            if d == k:
                raise NotApplicable(f"{SCORE_CLAMPS}: a clause on output {k} reads that output itself")
            if not visit(d):
                return False
        state[k] = 2
        order.append(k)
        return True

    if all(visit(k) for k in sorted(depends)):
        return order
    return sorted(depends, key=lambda k: (len(depends[k] & set(depends)), k))
