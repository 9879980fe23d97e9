"""Sign patterns, the pieces of the ``sign-pattern`` strategy (``auto`` only; the strategy itself is
``deepsade.encoding.sign_pattern_strategy``): asserts rules about which outputs lie above a threshold, such as "the digits predicted
present sum to more than 10" or "exactly one positive score per row and column".

Such an assert reads every output only through comparisons with one constant, its threshold (``y_k > c``,
``y_k <= c``, ``(ite (> y_k c) 1 0)`` inside a count, ...). Where each output stays strictly on one side
of its threshold, the assert is a Boolean function ``F`` of the bits "output k is above". The asserts of
this shape are taken together (they may share outputs) and enforced through the cubes of ``F``: a cube
fixes some bits and leaves the rest free, and it is an implicant when every completion satisfies ``F``.
If the last layer keeps every fixed bit on its side over the whole latent box (one linear row per bit,
``y_k >= c + margin`` or ``y_k <= c - margin`` in the worst case over the box), the asserts hold on the
box whatever the free outputs do. So each cube is a polyhedron of last layers, the union over the prime
implicants is a sound strengthening of the asserts, and projecting a gradient step onto the nearest
cube is a closed form per output. Everything this module accepts the exact checker accepts too.

It is exact when ``F`` admits only patterns no continuous move can switch between. For "exactly one
positive per row" the positive entry of a row cannot change inside a connected box (the sets where
each entry is positive are open and disjoint and would split the box), so a network that satisfies
the sushi rule (UC5) over the box keeps one ordering there: the cubes (the 24 orderings) lose nothing.
For the digit-sum rule (UC4) it is a strengthening: a prime implicant is a set of digits that are
always predicted present, the other digits stay free.

Clause sets (issue 13). A cube fixes its bits over the whole box, which forces e.g. "maintenance due" on
every input once "overheat -> maintenance" must hold and overheat is raised somewhere. The rule's own
CNF is another sound strengthening that fixes no bit: a clause ``l_1 or ... or l_k`` over literals
``s_i (y_i - c_i) > 0`` holds wherever ``sum_i s_i (y_i - c_i) >= k * margin`` (one linear row over the
box; some term is then positive even with every output moved by the margin). The conjunction of the
prime implicates of ``F`` is ``F`` itself, so the rows of its clauses (one polyhedron of last layers)
imply the asserts; the network decides per input which literal of each clause it makes true. A cube
is the special case of unit clauses. The trainer offers that clause set beside the cubes
(``SignPatternStrategy.use_clause_sets``) when it is small and some constant output satisfies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.boxes import max_over_box, min_over_box
from deepsade.encoding.dual import ConclusionRow, DualAssert, Premise
from deepsade.encoding.knapsack import fractional_knapsack
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.prime_implicants import prime_implicants
from deepsade.spec import Assert, distinct_subterms, evaluate, output_var

MAX_BITS = 16  # the truth table has 2**bits rows
MAX_IMPLICANTS = 200_000  # cubes generated while merging minterms; beyond this the asserts stay with CEGIS
MAX_FALSE_MINTERMS = 4096  # the clause set is derived from the false patterns only below this many
MAX_CLAUSE_IMPLICANTS = 20_000  # merging budget for the clause set (it is optional: past this, cubes only)
MAX_CLAUSES = 64  # rows of the clause set
ABOVE, BELOW, FREE = 1, -1, 0

_COMPARISONS = (z3.is_le, z3.is_lt, z3.is_ge, z3.is_gt)


@dataclass
class SignPattern:
    """The sign-pattern asserts of a spec, their thresholds and the prime implicants of their conjunction."""

    asserts: tuple[Assert, ...]
    outputs: np.ndarray  # (m,) output index of each bit
    thresholds: np.ndarray  # (m,) float threshold of each bit
    exact_thresholds: tuple[Fraction, ...]
    cubes: np.ndarray  # (n_cubes, m) in {ABOVE, BELOW, FREE}
    # the prime implicates of F, each (n_clauses, m) in {ABOVE, BELOW, FREE}: a literal per non-FREE entry
    clause_sets: tuple[np.ndarray, ...] = ()

    @property
    def n_bits(self) -> int:
        return len(self.outputs)

    @property
    def n_choices(self) -> int:
        """Cubes first (choice ``i < len(cubes)``), then clause sets."""
        return len(self.cubes) + len(self.clause_sets)

    def is_cube(self, choice: int) -> bool:
        return choice < len(self.cubes)

    def clause_worst_cases(self, choice: int, weights: np.ndarray, biases: np.ndarray, low: np.ndarray,
                           high: np.ndarray) -> np.ndarray:
        """Per candidate (C, n_out, n_latent) and clause of clause set ``choice``: the least value over the box
        of ``sum_i s_i (y_i - c_i)`` divided by the clause's length k; shape (C, n_clauses)."""
        clauses = self.clause_sets[choice - len(self.cubes)].astype(np.float64)  # (n_clauses, m)
        w = weights[:, self.outputs, :]  # (C, m, L)
        b = biases[:, self.outputs] - self.thresholds  # (C, m)
        combined_w = np.einsum("qm,cml->cql", clauses, w)
        combined_b = b @ clauses.T  # (C, n_clauses)
        lowest = min_over_box(combined_w, low, high) + combined_b
        return lowest / np.abs(clauses).sum(axis=1)

    def clause_set_holds(self, choice: int, weights: np.ndarray, biases: np.ndarray, low: np.ndarray,
                         high: np.ndarray, margin: float) -> np.ndarray:
        """(C,): every clause's row keeps ``k * margin`` over the box (sufficient for the asserts)."""
        return (self.clause_worst_cases(choice, weights, biases, low, high) >= margin).all(axis=1)

    def status(self, weights: np.ndarray, biases: np.ndarray, low: np.ndarray, high: np.ndarray,
               margin: float) -> np.ndarray:
        """Per candidate (C, n_out, n_latent) and bit: ABOVE / BELOW when the output keeps that side over the
        whole box with ``margin`` to spare, FREE when it does not; shape (C, m)."""
        w = weights[:, self.outputs, :]
        b = biases[:, self.outputs]
        lowest = min_over_box(w, low, high) + b
        highest = max_over_box(w, low, high) + b
        status = np.full(lowest.shape, FREE, dtype=np.int8)
        status[lowest >= self.thresholds + margin] = ABOVE
        status[highest <= self.thresholds - margin] = BELOW
        return status

    def matching_cubes(self, status: np.ndarray) -> np.ndarray:
        """(C, n_cubes): which cubes hold for each candidate's status (every fixed bit on its side)."""
        return ((self.cubes[None] == FREE) | (self.cubes[None] == status[:, None, :])).all(axis=2)

    def satisfied(self, weights: np.ndarray, biases: np.ndarray, low: np.ndarray, high: np.ndarray,
                  margin: float) -> np.ndarray:
        """Sufficient float check per candidate: some cube, or some clause set, holds over the box."""
        holds = self.matching_cubes(self.status(weights, biases, low, high, margin)).any(axis=1)
        for choice in range(len(self.cubes), self.n_choices):
            holds |= self.clause_set_holds(choice, weights, biases, low, high, margin)
        return holds

    def cube_costs(self, cost_above: np.ndarray, cost_below: np.ndarray) -> np.ndarray:
        """Cost of every cube when fixing bit j above costs ``cost_above[j]`` and below ``cost_below[j]``."""
        return (self.cubes == ABOVE) @ cost_above + (self.cubes == BELOW) @ cost_below

    def side_projections(self, weights: np.ndarray, biases: np.ndarray, low: np.ndarray, high: np.ndarray,
                         margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every bit and side, the L1-closest output row (weights, bias) that keeps the bit on that side
        over the box (``low >= 0``) with ``margin``: shapes (2, m, n_latent), (2, m), and the L1 distance
        (2, m). Index 0 of the first axis is ABOVE, 1 is BELOW.

        Keeping ``s (y_k - c) >= margin`` for ``v = s W_k``, ``beta = s b_k`` means raising
        ``sum_l min(v_l lo_l, v_l hi_l) + beta`` by the shortfall. Raising a negative ``v_l`` gains ``hi_l`` per
        unit until it reaches 0, then ``lo_l``; raising ``beta`` gains 1. A fractional knapsack: the steepest
        segments first, one of the unbounded ones (``beta``, or the coordinate of largest ``lo``) last."""
        sides = np.array([ABOVE, BELOW], dtype=np.float64)[:, None]
        v = sides[:, :, None] * weights[self.outputs][None]  # (2, m, L)
        beta = sides * biases[self.outputs][None]  # (2, m)
        need = np.maximum(sides * self.thresholds[None] + margin - min_over_box(v, low, high) - beta, 0.0)
        # the unbounded segment: the bias (gain 1) unless some coordinate never drops below lo_l > 1
        widest = int(np.argmax(low))
        unbounded_gain = max(1.0, float(low[widest]))
        spend = fractional_knapsack(need, np.maximum(-v, 0.0), high, unbounded_gain)
        v_new = v.copy()
        v_new[:, :, spend.segments] += spend.used
        tail = spend.tail
        if unbounded_gain > 1.0:  # the coordinate of largest lo gains more than the bias
            v_new[:, :, widest] += tail / unbounded_gain
            bias_step = np.zeros_like(tail)
        else:
            bias_step = tail
        distance = np.abs(v_new - v).sum(axis=2) + bias_step
        return sides[:, :, None] * v_new, sides * (beta + bias_step), distance

    def apply_cube(self, cube: int, weights: np.ndarray, biases: np.ndarray,
                   projections: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The target with each fixed bit's output row replaced by its side projection."""
        rows_w, rows_b, _ = projections
        weights, biases = weights.copy(), biases.copy()
        for side_index, side in enumerate((ABOVE, BELOW)):
            bits = np.nonzero(self.cubes[cube] == side)[0]
            weights[self.outputs[bits]] = rows_w[side_index, bits]
            biases[self.outputs[bits]] = rows_b[side_index, bits]
        return weights, biases

    def bit_row(self, bit: int, side: int, source: Assert, n_out: int) -> DualAssert:
        """Bit ``bit`` kept on ``side`` over the box as a one-row dual assert: ``c - y_k < 0`` (ABOVE) or
        ``y_k - c < 0`` (BELOW), with the output margin."""
        out = [Fraction(0)] * n_out
        out[int(self.outputs[bit])] = Fraction(-side)
        row = ConclusionRow(out, {}, side * self.exact_thresholds[bit], True, True)
        return DualAssert(source, Premise(), [row])

    def clause_row(self, clause: np.ndarray, source: Assert, n_out: int) -> DualAssert:
        """A clause (literals s_i on bits i) as one dual row: ``sum_i -s_i y_k(i) + sum_i s_i c_i < 0``, with the
        output margin times k (its ``margin_scale``): some literal then holds whatever the rounding."""
        out = [Fraction(0)] * n_out
        const = Fraction(0)
        for bit in np.nonzero(clause)[0]:
            side = int(clause[bit])
            out[int(self.outputs[bit])] = Fraction(-side)
            const += side * self.exact_thresholds[bit]
        return DualAssert(source, Premise(), [ConclusionRow(out, {}, const, True, True)])

    def rows(self, cube: int, n_out: int) -> list[DualAssert]:
        """The cube as one-row dual asserts, one per fixed bit; a clause set (``cube >= len(cubes)``) as one
        row per clause."""
        if not self.is_cube(cube):
            return [self.clause_row(clause, self.asserts[0], n_out)
                    for clause in self.clause_sets[cube - len(self.cubes)]]
        return [self.bit_row(int(bit), int(self.cubes[cube, bit]), self.asserts[0], n_out)
                for bit in np.nonzero(self.cubes[cube])[0]]

    def restricted(self, choices: Sequence[int]) -> SignPattern:
        """The same pattern offering only ``choices`` (cube or clause-set indices), in that order: what a
        caller that enumerates every piece (the refit) should see when there are too many."""
        cubes = [int(c) for c in choices if self.is_cube(int(c))]
        sets = tuple(self.clause_sets[int(c) - len(self.cubes)] for c in choices if not self.is_cube(int(c)))
        return SignPattern(self.asserts, self.outputs, self.thresholds, self.exact_thresholds,
                           self.cubes[cubes].reshape(len(cubes), self.n_bits), sets)


def _threshold_atom(node: z3.ExprRef) -> tuple[int, Fraction] | None | bool:
    """(output, threshold) for a comparison of one output with a constant; False when the node is a
    comparison over several outputs or inputs (not a sign pattern); None when it is no such atom."""
    if not (any(test(node) for test in _COMPARISONS) or (z3.is_eq(node) and z3.is_arith(node.arg(0)))):
        return None
    try:
        atom = atom_from_comparison(node)
    except NotLinear:
        return None  # e.g. a count of ite terms compared with a constant: the atoms sit inside it
    outputs = atom.outputs()
    if atom.inputs() or len(outputs) != 1:
        return False if outputs or atom.inputs() else None
    (k, coef), = outputs.items()
    return k, -atom.const / coef


def assert_thresholds(assert_: Assert) -> dict[int, Fraction] | None:
    """The threshold of every output the assert reads, when it reads each output only through comparisons
    with that one constant and mentions no input; None otherwise."""
    if assert_.inputs:
        return None
    thresholds: dict[int, Fraction] = {}
    atoms = []
    for node in distinct_subterms(assert_.scaled):
        found = _threshold_atom(node)
        if found is False:
            return None
        if found is not None:
            k, c = found
            if thresholds.setdefault(k, c) != c:
                return None  # two thresholds on one output: three regions, not two sides
            atoms.append(node)
    bits = [(atom, z3.Bool(f"bit!{i}")) for i, atom in enumerate(atoms)]
    remainder = z3.substitute(assert_.scaled, *bits) if bits else assert_.scaled
    names = {node.decl().name() for node in distinct_subterms(remainder) if z3.is_const(node)}
    if any(name.startswith("y!") for name in names):
        return None  # an output is used outside a threshold comparison (e.g. in a sum)
    return thresholds or None


def to_sign_pattern(asserts: Sequence[Assert]) -> SignPattern | None:
    """The sign pattern of those of ``asserts`` that have one (``assert_thresholds``), taken together;
    None when none has, their thresholds disagree, there are too many bits or no fixed pattern works."""
    covered, thresholds = [], {}
    for a in asserts:
        own = assert_thresholds(a)
        if own is None:
            continue
        if any(thresholds.get(k, c) != c for k, c in own.items()):
            return None
        thresholds.update(own)
        covered.append(a)
    asserts = covered
    if not thresholds or len(thresholds) > MAX_BITS:
        return None
    outputs = np.array(sorted(thresholds))
    exact = tuple(thresholds[k] for k in outputs)
    values = np.array([float(c) for c in exact])
    # every pattern of sides: output above its threshold by 1 or below by 1
    patterns = (np.arange(2 ** len(outputs))[:, None] >> np.arange(len(outputs))[None, :]) & 1
    env = {output_var(int(k)).decl().name(): values[j] + np.where(patterns[:, j] == 1, 1.0, -1.0)
           for j, k in enumerate(outputs)}
    truth = np.ones(len(patterns), dtype=bool)
    with np.errstate(all="ignore"):
        for a in asserts:
            truth &= np.broadcast_to(np.asarray(evaluate(a.scaled, env), dtype=bool), truth.shape)
    minterms = np.nonzero(truth)[0]
    if len(minterms) == 0:
        return None  # no fixed pattern works; leave the asserts to the exact machinery
    primes = prime_implicants([int(v) for v in minterms], len(outputs), MAX_IMPLICANTS)
    if primes is None:
        return None
    cubes = np.zeros((len(primes), len(outputs)), dtype=np.int8)
    for i, (free, value) in enumerate(primes):
        for j in range(len(outputs)):
            if not free >> j & 1:
                cubes[i, j] = ABOVE if value >> j & 1 else BELOW
    clause_set = _prime_implicate_clauses(np.nonzero(~truth)[0], len(outputs))
    return SignPattern(tuple(asserts), outputs, values, exact, cubes,
                       (clause_set,) if clause_set is not None else ())


def _prime_implicate_clauses(false_minterms: np.ndarray, n_bits: int) -> np.ndarray | None:
    """F's prime implicates as clauses (n_clauses, m) in {ABOVE, BELOW, FREE}: each prime implicant of
    ``not F`` negated. Their conjunction is F. None when F has no false pattern (nothing to enforce),
    when it is too large to derive cheaply, or when no constant output satisfies every clause row."""
    if len(false_minterms) == 0 or len(false_minterms) > MAX_FALSE_MINTERMS:
        return None
    primes = prime_implicants([int(v) for v in false_minterms], n_bits, MAX_CLAUSE_IMPLICANTS)
    if primes is None or len(primes) > MAX_CLAUSES:
        return None
    clauses = np.zeros((len(primes), n_bits), dtype=np.int8)
    for i, (free, value) in enumerate(primes):
        for j in range(n_bits):
            if not free >> j & 1:  # the implicant fixes bit j; the clause asks for the other side
                clauses[i, j] = BELOW if value >> j & 1 else ABOVE
    if not _rows_feasible(clauses):
        return None
    return clauses


def _rows_feasible(clauses: np.ndarray) -> bool:
    """Whether some point ``u`` (u_i = y_i - c_i) has ``sum_i s_i u_i >= k`` for every clause: the rows of
    a clause set can contradict each other (e.g. "exactly one of a, b" gives ``u_a + u_b >= 1`` and
    ``-u_a - u_b >= 1``), and then the clause set admits no last layer."""
    from scipy.optimize import linprog

    a_ub = -clauses.astype(np.float64)
    b_ub = -np.abs(clauses).sum(axis=1).astype(np.float64)
    result = linprog(np.zeros(clauses.shape[1]), A_ub=a_ub, b_ub=b_ub, bounds=(None, None), method="highs")
    return bool(result.status == 0)
