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

import numpy as np
import z3

from deepsade.constructions.exact_equalities import (
    clamp_order,
    defined_bounds,
    derived_output,
    exact_scaling,
    inexact_reason,
    output_equalities,
)
from deepsade.constructions.fourier_motzkin import HalfSpace, Projection, project, violated_condition
from deepsade.constructions.linear_gate import LinearSide, linear_premise_sides
from deepsade.constructions.ratio_bound import (
    BoundUnit,
    RatioRow,
    inner_bound,
    split_comparisons,
    unit_definition,
)
from deepsade.constructions.recognise import NoRoom, NotApplicable, _atoms
from deepsade.data import Encoding
from deepsade.gates import plan_gates
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.numbers import z3_numeral_or_none, z3_rational
from deepsade.regions import InputRegion, input_regions
from deepsade.spec import Spec, conjunction_atoms, input_var, is_linear, output_var
from deepsade.terms import free_constants

POLYTOPE = "sequential clamps"
# a gated row whose excess over the unconditional rows is unbounded is relaxed, away from its premise, enough to
# admit every output within this many data ranges of the training targets (scaled units [-8, 9])
IMPLICIT_OUTPUT_REACH = Fraction(8)


_GATES_ONLY_WITH_ALL = "premise gates are built only when they take every assert with a premise"


@dataclass(frozen=True)
class SplitRule:
    """The asserts the clamps enforce (0-based), those they enforce through a premise gate, the others, and the
    reason each other one is not taken."""

    constructible: tuple[int, ...]
    remaining: tuple[int, ...]
    reasons: dict[int, str]
    gated: tuple[int, ...] = ()
    ratio: tuple[int, ...] = ()  # the constructible asserts with a ratio bound (``ratio_bound``)


@dataclass(frozen=True)
class GateUnits:
    """A premise gate inside the clamp layer: ``g = relu(1 - sum_s relu(W_s . x + bias_s))``.

    Weights and biases are float32 values (exact rationals); each bias is rounded down, so every side is
    exactly 0 on the premise and ``g`` exactly 1 there. ``g`` is 0 once ``x`` is a band width outside. A box of
    single-input bounds has one-input sides; a premise coupling inputs linearly, one side per inequality
    (``linear_gate``)."""

    sides: tuple[LinearSide, ...]


def gate_value(gate: GateUnits, xs: Sequence[z3.ArithRef]) -> z3.ArithRef:
    """The gate ``relu(1 - sum_s relu(W_s . x + bias_s))`` as an exact z3 term over the inputs ``xs``."""
    def relu(term: z3.ArithRef) -> z3.ArithRef:
        return z3.If(term > 0, term, z3.RealVal(0))

    sides = [relu(z3.Sum([z3_rational(w) * xs[j] for j, w in side.terms]) + z3_rational(side.bias))
             for side in gate.sides]
    return relu(1 - z3.Sum(sides))


def _float32_down(value: Fraction) -> Fraction:
    rounded = np.float32(float(value))
    if Fraction(float(rounded)) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf), dtype=np.float32)
    return Fraction(float(rounded))


def _gate_units(region: InputRegion, low: Sequence[Fraction], high: Sequence[Fraction]) -> GateUnits:
    (gate,) = plan_gates([region], low, high)
    sides = []
    for side in gate.sides:
        sign = -1 if side.lower else 1  # lower side: (threshold - x) / width
        weight = Fraction(float(np.float32(float(sign / side.width))))
        sides.append(LinearSide.single(side.input_index, weight, _float32_down(-weight * side.threshold)))
    return GateUnits(tuple(sides))


def _premise_gate(a, region: InputRegion | None, low: Sequence[Fraction], high: Sequence[Fraction]
                  ) -> GateUnits | None:
    """The gate of an assert's premise: on its box of single-input bounds when the premise is exactly that box,
    else on its half-spaces when it is a conjunction of linear inequalities over the inputs holding somewhere in
    the domain; None when it is neither."""
    if region is not None and region.restricts and not region.empty and _premise_is_its_box(a, region, low, high):
        return _gate_units(region, low, high)
    if region is not None and region.empty:
        return None
    try:
        return GateUnits(linear_premise_sides(a.premise, low, high, f"assert {a.index + 1}"))
    except NotApplicable:
        return None


def _premise_is_its_box(a, region: InputRegion, low: Sequence[Fraction], high: Sequence[Fraction]) -> bool:
    """Whether, inside the domain, the premise holds on the whole of its single-input box (exact, z3)."""
    solver = z3.Solver()
    solver.add(*[c for j in range(len(low)) for c in (input_var(j) >= z3_rational(region.low[j]),
                                                       input_var(j) <= z3_rational(region.high[j]))])
    solver.add(z3.Not(a.premise))
    return solver.check() == z3.unsat


def _gated_ratios(a, low: Sequence[Fraction], high: Sequence[Fraction], spec: Spec | None = None) -> list:
    """The ratio comparisons (``ratio_bound.RatioAtom``) of a premise assert's conclusion (empty: it is linear);
    NotApplicable when the conclusion is neither linear nor a conjunction with ratio bounds."""
    conclusion = replace(a, premise=z3.BoolVal(True))
    try:
        atoms = _atoms(conclusion, POLYTOPE, equalities=True)
    except NotApplicable:
        return split_comparisons(conclusion, POLYTOPE, low, high)[1]
    if spec is not None:  # an equality is held exactly behind the gate when the output scaling makes it exact
        inexact = [inexact_reason(atom, spec, f"assert {a.index + 1}") for atom in atoms if atom.op == "=="]
        if any(inexact):
            raise NotApplicable(next(r for r in inexact if r))
    return []


def _conclusion_is_taken(a, low: Sequence[Fraction], high: Sequence[Fraction], spec: Spec) -> bool:
    try:
        _gated_ratios(a, low, high, spec)
        return True
    except NotApplicable:
        return False


def split_asserts(spec: Spec, low: Sequence[Fraction] | None = None,
                  high: Sequence[Fraction] | None = None) -> SplitRule:
    """Which asserts are a polytope with input-affine bounds (no premise, linear inequalities on outputs), and
    (given the domain box) which premise asserts a gate can take: a premise that is exactly a box of single-input
    bounds narrowing the domain, or a conjunction of linear inequalities over the inputs, with a conclusion of
    linear inequalities on the outputs."""
    taken, gated, rest, ratio, reasons = [], [], [], [], {}
    regions = input_regions(spec, low, high) if low is not None else {}
    outputs = set(spec.output_names)
    equal: list[int] = []  # taken asserts that state an equality (held exactly: no other share may remain)
    for a in spec.asserts:
        try:
            atoms = _atoms(a, POLYTOPE, equalities=True)
            inexact = [inexact_reason(atom, spec, f"assert {a.index + 1}") for atom in atoms if atom.op == "=="]
            if any(inexact):
                raise NotApplicable(next(r for r in inexact if r))
            taken.append(a.index)
            if inexact:
                equal.append(a.index)
            continue
        except NotApplicable as exc:
            reasons[a.index] = str(exc)
        premise_outputs = sorted(free_constants(a.raw.arg(0)) & outputs) if z3.is_implies(a.raw) else []
        if premise_outputs:  # the reason, rather than what the ratio bounds below would say about it
            rest.append(a.index)
            reasons[a.index] = (f"assert {a.index + 1}'s premise reads output(s) {', '.join(premise_outputs)}: "
                                "premise gates read inputs only")
            continue
        if low is not None and not a.has_premise:
            try:
                split_comparisons(a, POLYTOPE, low, high)
                ratio.append(a.index)
                continue
            except NotApplicable as exc:
                reasons[a.index] = str(exc)
        if a.has_premise and low is not None:
            if not _conclusion_is_taken(a, low, high, spec):  # say what is in the conclusion, not that there is a premise
                try:
                    _atoms(replace(a, premise=z3.BoolVal(True)), POLYTOPE, equalities=True)
                    _gated_ratios(a, low, high, spec)
                except NotApplicable as exc:
                    reasons[a.index] = f"{exc} (in its conclusion)"
            elif _premise_gate(a, regions.get(a.index), low, high) is not None:
                gated.append(a.index)
                continue
            else:
                reasons[a.index] = (f"assert {a.index + 1}'s premise is neither a box of single-input bounds nor "
                                    "linear inequalities over the inputs, which premise gates take")
        rest.append(a.index)
    if ratio and (rest or gated):  # a ratio bound only when the clamps take everything else without a gate
        reasons.update({i: f"{POLYTOPE} take assert {i + 1}'s ratio bound only when they take every assert without "
                           "a premise gate" for i in ratio})
        rest, ratio = sorted(rest + ratio), []
    behind = [(i, atom) for i, atom in output_equalities(spec, premised=True) if i in gated]
    if behind and (equal or len({derived_output(atom) for _, atom in behind}) > 1):
        # the clamps hold one output exactly behind premise gates (it comes last, _gated_projection)
        other = next((i for i in equal), next((i for i, _ in behind if i != behind[0][0]), behind[0][0]))
        reasons.update({i: f"{POLYTOPE} hold an equality behind a premise (assert {i + 1}) only when no other "
                           f"equality (assert {other + 1}) defines an output" for i, _ in behind})
        gated = [i for i in gated if i not in {i for i, _ in behind}]
        rest = sorted(rest + [i for i, _ in behind])
    if equal and (rest or gated or ratio):  # an equality's row cannot be strengthened into DeepSaDe's share
        blocker = (rest or gated or ratio)[0]
        reasons.update({i: f"{POLYTOPE} hold an equality (assert {i + 1}) only when they take every assert, and "
                           f"assert {blocker + 1} is not theirs alone" for i in equal})
        taken = [i for i in taken if i not in equal]
        rest = sorted(rest + equal)
    if rest:  # gates only when they take every premise assert: otherwise DeepSaDe keeps them all
        reasons.update({i: f"{_GATES_ONLY_WITH_ALL} (assert {rest[0] + 1} is not)" for i in gated})
        rest, gated = sorted(rest + gated), []
    return SplitRule(tuple(sorted(taken + ratio)), tuple(rest), {i: reasons[i] for i in rest + gated}, tuple(gated),
                     tuple(ratio))


def polytope_rows(spec: Spec, indices: Sequence[int], tightening: Fraction, n_gates: int = 0,
                  ratios: Sequence[RatioRow] = ()) -> list[HalfSpace]:
    """The asserts ``indices`` (their conclusions) as half-spaces ``a . y <= c . x + d`` (scaled units), each
    moved inwards by ``tightening * |a|_1``; ``n_gates`` zero coefficients for extra columns follow the inputs.

    ``ratios``: the inner bounds of the asserts' ratio comparisons, in the order of the last ``len(ratios)``
    extra columns (their units); their assert's linear comparisons give ordinary rows."""
    n_in, n_out = len(spec.input_names), len(spec.output_names)
    n_columns = n_in + n_gates
    with_ratio = {r.assert_index for r in ratios}
    rows = []
    for index in indices:
        a = replace(spec.asserts[index], premise=z3.BoolVal(True))
        atoms = _linear_comparisons(a) if index in with_ratio else _atoms(a, POLYTOPE, equalities=True)
        for atom in atoms:  # coefs . (y, x) + const <= 0 (or < 0, or == 0)
            outputs = tuple(atom.outputs().get(k, Fraction(0)) for k in range(n_out))
            inputs = tuple(-atom.inputs().get(j, Fraction(0)) for j in range(n_in)) + (Fraction(0),) * n_gates
            if atom.op == "==":  # both sides, not tightened: the clamps hold it exactly, without a margin
                rows.append(HalfSpace(outputs, inputs, -atom.const, frozenset({index}), exact=True))
                rows.append(HalfSpace(tuple(-v for v in outputs), tuple(-v for v in inputs), atom.const,
                                      frozenset({index}), exact=True))
                continue
            tightened = -atom.const - tightening * sum(abs(v) for v in outputs)
            rows.append(HalfSpace(outputs, inputs, tightened, frozenset({index})))
    for position, ratio in enumerate(ratios):
        row = ratio.half_space(n_in, n_out, n_columns - len(ratios) + position, n_columns)
        rows.append(HalfSpace(row.outputs, row.inputs, row.const - tightening, row.asserts))
    return rows


def _linear_comparisons(a) -> list:
    """The linear atoms of a conjunction that also holds ratio comparisons (those are skipped)."""
    atoms = []
    for comparison in conjunction_atoms(a.conclusion) or []:
        try:
            atoms.append(atom_from_comparison(comparison))
        except NotLinear:
            continue
    return atoms


def _largest_excess(row: HalfSpace, others: Sequence[HalfSpace], low: Sequence[Fraction],
                    high: Sequence[Fraction], extra_low: Sequence[Fraction] = (), extra_high: Sequence[Fraction] = (),
                    reach: Fraction | None = None) -> Fraction | None:
    """max of ``a . y - c . x - d`` over inputs in the box, extra columns (gates, units) in their ranges and
    outputs in the ``others`` polytope (and, with ``reach``, in ``[-reach, 1 + reach]``: that many data ranges
    of the training targets around them); None if unbounded (exact, z3)."""
    ys = [output_var(k) for k in range(len(row.outputs))]
    xs = [input_var(j) for j in range(len(low) + len(extra_low))]
    ranges = list(zip(list(low) + list(extra_low), list(high) + list(extra_high), strict=True))
    opt = z3.Optimize()
    opt.add(*[c for x, (lo, hi) in zip(xs, ranges, strict=True) for c in (x >= z3_rational(lo), x <= z3_rational(hi))])
    opt.add(*[_row_formula(r, ys) for r in others])
    if reach is not None:
        opt.add(*[c for y in ys for c in (y >= -z3_rational(reach), y <= 1 + z3_rational(reach))])
    excess = z3.Sum([z3_rational(c) * y for c, y in zip(row.outputs, ys, strict=True) if c != 0]) \
        - z3.Sum([z3_rational(c) * xs[j] for j, c in enumerate(row.inputs[:len(xs)]) if c != 0] + [z3.RealVal(0)]) \
        - z3_rational(row.const)
    handle = opt.maximize(excess)
    if opt.check() != z3.sat or "oo" in str(opt.upper(handle)) or "eps" in str(opt.upper(handle)):
        return None
    return z3_numeral_or_none(opt.upper(handle))


def polytope_projection(spec: Spec, split: SplitRule, low: Sequence[Fraction], high: Sequence[Fraction],
                        tightening: Fraction, encoding: Encoding | None = None
                        ) -> tuple[list[HalfSpace], Projection, list[GateUnits], SplitRule]:
    """The tightened rows, their Fourier–Motzkin projection, the premise gates and the split actually used
    (gated asserts go back to DeepSaDe's share when no gate can take them); NoRoom (one line, naming an input
    where no output satisfies the rule) when the tightened polytope is empty somewhere in the domain box."""
    if split.ratio:
        return _with_ratio_bounds(spec, split, low, high, tightening, encoding)
    if split.gated:
        try:
            gated = _gated(spec, split, low, high, tightening)
        except NotApplicable:  # a ratio comparison with no proved inner bound
            gated = None
        if gated is not None:
            rows, extras, extra_low, extra_high = gated
            box_low, box_high = list(low) + extra_low, list(high) + extra_high
            projection = _gated_projection(spec, rows, box_low, box_high, tightening)
            n_in, units = len(low), [e for e in extras if isinstance(e, BoundUnit)]
            first_unit = len(extras) - len(units)

            gate_units = [e for e in extras if isinstance(e, GateUnits)]

            def links(xs: Sequence[z3.ArithRef]) -> list[z3.BoolRef]:
                # each gate column is the gate's value at the inputs (free in [0, 1], a gate could meet a
                # conclusion far outside its premise: a probe's pricing rule was refused, 'its gate leaves no
                # room', where the gate is 0), and each unit column its definition
                return ([xs[n_in + g] == gate_value(gate, xs) for g, gate in enumerate(gate_units)]
                        + [unit_definition(u, xs[n_in + first_unit + i], xs) for i, u in enumerate(units)])

            if violated_condition(projection, box_low, box_high, links) is None:
                return rows, projection, extras, split
        split = SplitRule(split.constructible, tuple(sorted(split.remaining + split.gated)),
                          {**split.reasons, **{i: "its gate leaves no room" for i in split.gated}})
    rows = polytope_rows(spec, split.constructible, tightening)
    # an equation's defined output last among its outputs (exact_equalities.clamp_order), else index order
    projection = project(rows, len(spec.output_names), low, high, clamp_order(spec, len(spec.output_names)))
    _no_room(spec, violated_condition(projection, low, high), tightening, encoding)
    if any(index in split.constructible for index, _ in output_equalities(spec)):
        projection = defined_bounds(projection, spec)
    return rows, projection, [], split


def _gated_projection(spec: Spec, rows: Sequence[HalfSpace], low: Sequence[Fraction], high: Sequence[Fraction],
                      tightening: Fraction) -> Projection:
    """The projection of gated rows; an output an equality behind a premise defines comes last, and its own
    pieces other than the equality's are moved out by a quarter of the tightening.

    Where the gate is 1 the equality's two pieces both equal its form and the clamp returns the form exactly,
    provided every other piece of the output lies strictly on its side of the form. The earlier outputs' bounds
    (the projection at the full tightening) leave room for the form inside the other pieces; the quarter keeps
    the float32 rounding of those bounds from closing that room (a 2-output rule with `subsidised -> food =
    rent / 2` was refused by its certificate without it), and leaves three quarters of the tightening, above
    the certificate's margin, for the asserts of those pieces."""
    n_out = len(spec.output_names)
    order = clamp_order(spec, n_out, premised=True)
    projection = project(rows, n_out, low, high, order)
    if order is None:
        return projection
    looser = [row if row.exact else replace(row, const=row.const + tightening / 4 * sum(abs(v) for v in row.outputs))
              for row in rows]
    last = project(looser, n_out, low, high, order)
    return replace(projection, lower=projection.lower[:-1] + last.lower[-1:],
                   upper=projection.upper[:-1] + last.upper[-1:])


def ratio_rows(spec: Spec, split: SplitRule, low: Sequence[Fraction], high: Sequence[Fraction]) -> list[RatioRow]:
    """The proved piecewise-linear inner bound of every ratio comparison of the split's ratio asserts."""
    return [inner_bound(r, low, high) for i in split.ratio
            for r in split_comparisons(spec.asserts[i], POLYTOPE, low, high)[1]]


def _with_ratio_bounds(spec: Spec, split: SplitRule, low: Sequence[Fraction], high: Sequence[Fraction],
                       tightening: Fraction, encoding: Encoding | None
                       ) -> tuple[list[HalfSpace], Projection, list[BoundUnit], SplitRule]:
    """The rows with each ratio comparison replaced by its inner bound over one extra column (its unit, bounded by
    the unit's range for the projection; the non-emptiness conditions are checked with the unit tied to its
    definition)."""
    ratios = ratio_rows(spec, split, low, high)
    units = [r.unit for r in ratios]
    rows = polytope_rows(spec, split.constructible, tightening, len(units), ratios)
    box_low = list(low) + [u.low for u in units]
    box_high = list(high) + [u.high for u in units]
    projection = project(rows, len(spec.output_names), box_low, box_high)
    n_in = len(low)

    def links(xs: Sequence[z3.ArithRef]) -> list[z3.BoolRef]:
        return [unit_definition(u, xs[n_in + i], xs) for i, u in enumerate(units)]

    _no_room(spec, violated_condition(projection, box_low, box_high, links), tightening, encoding)
    return rows, projection, units, split


def _no_room(spec: Spec, failure, tightening: Fraction, encoding: Encoding | None) -> None:
    """NoRoom naming the asserts and an input where the tightened polytope is empty (``failure`` from
    ``violated_condition``); nothing when it is None."""
    if failure is not None:
        condition, point = failure
        which = ", ".join(str(i + 1) for i in sorted(condition.asserts))
        affine = encoding.input_affine() if encoding is not None else [(0, 1)] * len(spec.input_names)
        where = ", ".join(f"{spec.input_names[j]}={float(off + scale * point[j]):.6g}"
                          for j, (off, scale) in enumerate(affine) if condition.inputs[j] != 0)
        where += "" if encoding is not None or not where else " (scaled units)"
        raise NoRoom(f"asserts {which} admit no output {'at ' + where if where else 'at any input'}"
                     f"{' (within the certificate margin)' if tightening > 0 else ''}: the rule has no solution "
                     "there (narrow the box with --domain, or lower --margin)")


def _gated(spec: Spec, split: SplitRule, low: Sequence[Fraction], high: Sequence[Fraction],
           tightening: Fraction) -> tuple[list[HalfSpace], list, list[Fraction], list[Fraction]] | None:
    """Rows of the polytope with each gated conclusion row relaxed to ``a . y <= b(x) + M (1 - g)``, ``M`` the
    largest excess of the row over the unconditional polytope, or, where that is unbounded (or there is no
    unconditional row), over the outputs within ``IMPLICIT_OUTPUT_REACH`` data ranges of the training targets:
    at ``g = 0`` the row binds nowhere in that range. A gated conclusion with ratio comparisons gets their
    inner bounds, each over one unit column (``ratio_bound``). Returns the rows, the extra columns (gates,
    then units) and the extra columns' ranges; None when no ``M`` is found."""
    regions = input_regions(spec, low, high)
    n_in, n_out, n_gates = len(low), len(spec.output_names), len(split.gated)
    ratios = [(g, inner_bound(r, low, high)) for g, index in enumerate(split.gated)
              for r in _gated_ratios(spec.asserts[index], low, high)]
    units = [r.unit for _, r in ratios]
    n_columns = n_in + n_gates + len(units)
    base = polytope_rows(spec, split.constructible, tightening, n_gates + len(units))
    extra_low = [Fraction(0)] * n_gates + [u.low for u in units]
    extra_high = [Fraction(1)] * n_gates + [u.high for u in units]
    rows, gates = list(base), []
    for g, index in enumerate(split.gated):
        gates.append(_premise_gate(spec.asserts[index], regions[index], low, high))
        own = [(p, r) for p, (gate, r) in enumerate(ratios) if gate == g]
        if own:
            conclusion = [HalfSpace(h.outputs, h.inputs + (Fraction(0),) * (n_columns - n_in), h.const, h.asserts)
                          for h in _linear_rows(spec, index, tightening)]
            for p, r in own:
                h = r.half_space(n_in, n_out, n_in + n_gates + p, n_columns)
                conclusion.append(HalfSpace(h.outputs, h.inputs, h.const - tightening, h.asserts))
        else:
            conclusion = polytope_rows(spec, [index], tightening, n_gates + len(units))
        for row in conclusion:
            excess = _largest_excess(row, base, low, high, extra_low, extra_high) if base else None
            if excess is None:
                excess = _largest_excess(row, base, low, high, extra_low, extra_high, reach=IMPLICIT_OUTPUT_REACH)
            if excess is None:
                return None
            relax = max(excess, Fraction(0))
            inputs = list(row.inputs)
            inputs[n_in + g] = -relax
            rows.append(HalfSpace(row.outputs, tuple(inputs), row.const + relax, row.asserts, row.exact))
    return rows, gates + units, extra_low, extra_high


def _linear_rows(spec: Spec, index: int, tightening: Fraction) -> list[HalfSpace]:
    """The linear comparisons of an assert's conclusion that also holds ratio comparisons, as tightened rows."""
    n_in, n_out = len(spec.input_names), len(spec.output_names)
    rows = []
    for atom in _linear_comparisons(replace(spec.asserts[index], premise=z3.BoolVal(True))):
        outputs = tuple(atom.outputs().get(k, Fraction(0)) for k in range(n_out))
        inputs = tuple(-atom.inputs().get(j, Fraction(0)) for j in range(n_in))
        rows.append(HalfSpace(outputs, inputs, -atom.const - tightening * sum(abs(v) for v in outputs),
                              frozenset({index})))
    return rows


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
    return replace(spec, asserts=asserts, written_inputs=None)  # mapped features: those of these asserts


def no_polytope_reason(split: SplitRule) -> str:
    """Why the clamps take nothing, in one line naming an assert that blocks them (not one they would take if
    the others allowed it)."""
    candidates = list(split.remaining) + list(split.gated)
    first = next((i for i in candidates if not split.reasons.get(i, "").startswith(_GATES_ONLY_WITH_ALL)),
                 candidates[0])
    return (f"{POLYTOPE} take asserts that are conjunctions of linear inequalities on the outputs, without a "
            "premise or behind a premise that is a box or linear inequalities over the inputs: "
            f"{split.reasons.get(first, f'assert {first + 1} is not one')}")


def recognise_polytope(spec: Spec, box: tuple[Sequence[Fraction], Sequence[Fraction]],
                       tightening: Fraction = Fraction(2 * 10**-4)) -> tuple[bool, str]:
    """Whether ``--method polytope`` can guarantee the rule, and how (or why not), in one line (for ``advise``)."""
    low, high = box
    split = split_asserts(spec, low, high)
    if not split.constructible and not split.gated:
        return False, no_polytope_reason(split)
    try:
        rows, _, gates, split = polytope_projection(spec, split, low, high, tightening)
    except NoRoom as exc:
        return False, str(exc)
    taken = ", ".join(str(i + 1) for i in split.constructible + split.gated)
    how = f"by construction, exactly certified: sequential clamps onto {len(rows)} row(s) (asserts {taken}"
    n_gates = sum(1 for g in gates if isinstance(g, GateUnits))
    ratio = [g.describe() for g in gates if isinstance(g, BoundUnit)]
    how += f"; {n_gates} premise gate(s))" if n_gates else ")"
    how += f" ({'; '.join(ratio)})" if ratio else ""
    if split.remaining:
        how += (f"; DeepSaDe trains assert(s) {', '.join(str(i + 1) for i in split.remaining)}, strengthened with "
                "the polytope")
    return True, how


def equality_blocker(spec: Spec, encoding: Encoding, low: Sequence[Fraction], high: Sequence[Fraction]) -> str | None:
    """Why the sequential clamps do not hold the rule's equalities on outputs exactly (None: they do, or there
    are none): no output scaling makes one exact (``exact_equalities``), or the clamps do not take every other
    assert."""
    if not output_equalities(spec):
        return None
    try:
        rescaled = exact_scaling(spec, encoding)
    except NotApplicable as exc:
        return str(exc)
    split = split_asserts(rescaled[0] if rescaled is not None else spec, low, high)
    equal = {index for index, _ in output_equalities(spec)}
    return next((split.reasons[i] for i in split.remaining if i in equal and i in split.reasons), None)
