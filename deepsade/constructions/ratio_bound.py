"""Rows whose output coefficient depends on one input, ``a(x_t) y <= N(x)``, as a piecewise-linear inner bound.

A comparison ``(a0 + a1 x_t) y_k + b . x + b0 <= 0`` (scaled units, from ``bilinear``) whose coefficient
``a(x_t)`` keeps one sign over the domain box (proved by z3, else NotApplicable) bounds ``y_k`` by the ratio
``N(x) / a(x_t)`` with ``N = -(b . x + b0)``: from above when ``a > 0``, from below when ``a < 0``. With
``p(t) = 1 / |a(t)|`` both sides need a function ``L(x) <= N(x) p(x_t)``: then ``y <= L`` (``a > 0``) or
``y >= -L`` (``a < 0``) implies the comparison. The construction:

- the inputs other than ``x_t`` enter through the McCormick inequality ``(z - z_lo)(p - p_lo) >= 0`` per term
  ``z = b_i x_i`` (``z_lo``, ``p_lo`` their minima over the box), so that
  ``N p >= Phi(t) + p_lo sum_i m_i x_i - p_lo sum_i z_lo_i`` with ``Phi(t) = (m0 + sum z_lo + m_t t) p(t)``
  (``m = `` the coefficients of ``N``), a Moebius function of ``t``: convex or concave on the interval, since
  ``a`` has no zero there;
- ``Phi`` is bounded from below by a piecewise-linear ``u(t)``: the max of its tangents at K nodes when it is
  convex, its chord interpolant at K nodes when it is concave (nodes added where the gap is largest until
  the gap is at most ``GAP_TOLERANCE`` or there are ``MAX_NODES``);
- ``u(t) = alpha + beta t + sum_i c_i relu(t - s_i)`` with every number a float32 value, lowered by a hair so
  that rounding cannot lift it above ``Phi``. The row is then ``+-y <= u(t) + lin . x + const``, linear in
  the inputs and the unit ``u`` that the clamp layer computes with one ReLU layer (``BoundUnit``).

z3 (nonlinear real arithmetic) then proves the comparison with ``y`` replaced by the bound over the whole box,
piece by piece of ``u``; any ``unknown``/``sat`` refuses the row (NotApplicable). The network's certificate
re-checks the original assert on the stored weights regardless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from deepsade.constructions.bilinear import BilinearAtom, NotBilinear, bilinear_atom
from deepsade.constructions.fourier_motzkin import HalfSpace
from deepsade.constructions.recognise import NotApplicable
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.numbers import z3_rational
from deepsade.spec import Assert, conjunction_atoms, input_var, output_var

# the inner bound's largest gap to the true bound, relative to max(1, |bound|): 0.1% of the data's range (scaled
# output units) where the bound is within it, 0.1% of the bound where it is larger (far from any data)
GAP_TOLERANCE = 1e-3
MAX_NODES = 128
PROOF_TIMEOUT_MS = 20_000


def _f32(value: Fraction) -> Fraction:
    return Fraction(float(np.float32(float(value))))


@dataclass(frozen=True)
class BoundUnit:
    """``u(t) = alpha + beta t + sum_i c_i relu(d (t - s_i))`` of the scaled input ``t = x_{input_index}`` (float32
    values, ``d = direction``), computed inside the clamp layer; ``low``/``high`` bound it over the domain box
    (exact). ``d = -1`` anchors the form at the right end: no ReLU is active there, so where the bound is
    flattest (the ratio's denominator largest) float32 adds no large terms that cancel."""

    input_index: int
    alpha: Fraction
    beta: Fraction
    kinks: tuple[tuple[Fraction, Fraction], ...]  # (s_i, c_i)
    low: Fraction
    high: Fraction
    gap: float = 0.0  # its row's largest distance to the exact ratio bound (scaled output units, measured)
    assert_index: int = -1
    direction: int = 1

    def describe(self) -> str:
        """One line: which assert, how many pieces, the gap."""
        return (f"assert {self.assert_index + 1}: ratio bound clamped onto {len(self.kinks) + 1} linear piece(s), "
                f"at most {self.gap:.3g} inside the exact bound (scaled output units)")

    def value(self, t: Fraction) -> Fraction:
        """``u(t)`` exactly."""
        d = self.direction
        return self.alpha + self.beta * t + sum((c * max(d * (t - s), Fraction(0)) for s, c in self.kinks),
                                                Fraction(0))

    def z3_term(self, t: z3.ArithRef) -> z3.ArithRef:
        """``u(t)`` as a z3 term (each ReLU an ``If``)."""
        terms = [z3_rational(self.alpha), z3_rational(self.beta) * t]
        d = self.direction
        terms += [z3_rational(c) * z3.If(d * (t - z3_rational(s)) > 0, d * (t - z3_rational(s)), z3.RealVal(0))
                  for s, c in self.kinks]
        return z3.Sum(terms)


@dataclass(frozen=True)
class RatioRow:
    """``sign * y_output <= u(t) + sum_j inputs[j] x_j + const`` (``sign`` +1: an upper bound, -1: a lower bound),
    an inner bound of the comparison ``assert_index`` takes; ``gap``: its largest distance to the exact bound
    ``N / a`` measured on a grid of the box (scaled output units)."""

    assert_index: int
    output: int
    sign: int
    unit: BoundUnit
    inputs: dict[int, Fraction]
    const: Fraction
    gap: float
    kind: str  # 'tangents' or 'chords'

    def half_space(self, n_inputs: int, n_outputs: int, unit_column: int, n_columns: int) -> HalfSpace:
        """The row over ``[x; extra columns]`` with the unit in column ``unit_column``."""
        outputs = tuple(Fraction(self.sign) if k == self.output else Fraction(0) for k in range(n_outputs))
        inputs = [self.inputs.get(j, Fraction(0)) for j in range(n_inputs)] + [Fraction(0)] * (n_columns - n_inputs)
        inputs[unit_column] = Fraction(1)
        return HalfSpace(outputs, tuple(inputs), self.const, frozenset({self.assert_index}))


@dataclass(frozen=True)
class RatioAtom:
    """A comparison ``(a0 + a1 x_t) y_k + sum_j b[j] x_j + b0 <= 0`` whose coefficient has sign ``sign`` on the box."""

    assert_index: int
    comparison: z3.BoolRef
    output: int
    input_index: int
    a0: Fraction
    a1: Fraction
    b: dict[int, Fraction]
    b0: Fraction
    sign: int


def _coefficient_sign(atom: BilinearAtom, k: int, t: int, low: Sequence[Fraction], high: Sequence[Fraction]) -> int:
    """+1 or -1 when z3 proves ``a0 + a1 x_t`` keeps that strict sign over the box, else 0."""
    a = z3_rational(atom.output_const.get(k, Fraction(0))) + z3_rational(atom.output_inputs[k][t]) * input_var(t)
    box = [input_var(t) >= z3_rational(low[t]), input_var(t) <= z3_rational(high[t])]
    for sign in (1, -1):
        solver = z3.Solver()
        solver.add(*box, sign * a <= 0)
        if solver.check() == z3.unsat:
            return sign
    return 0


def split_comparisons(a: Assert, method: str, low: Sequence[Fraction], high: Sequence[Fraction]
                      ) -> tuple[list[z3.BoolRef], list[RatioAtom]]:
    """An assert without a premise whose conjunction mixes linear comparisons (returned as they are) and at least
    one comparison that bounds one output through a coefficient affine in one input of constant sign over the
    box; NotApplicable (one line) otherwise."""
    where = f"assert {a.index + 1}"
    comparisons = conjunction_atoms(a.conclusion) if not a.has_premise else None
    if comparisons is None:
        raise NotApplicable(f"{method} takes a ratio bound only in an assert without a premise that is a conjunction")
    linear, ratios = [], []
    for comparison in comparisons:
        try:
            linear_atom = atom_from_comparison(comparison)
        except NotLinear:
            linear_atom = None
        if linear_atom is not None:
            if linear_atom.op == "==" or not linear_atom.outputs():
                raise NotApplicable(f"{method} takes inequalities that mention an output only; {where} has another "
                                    "comparison")
            linear.append(comparison)
            continue
        try:
            atom = bilinear_atom(comparison)
        except NotBilinear as exc:
            raise NotApplicable(f"{method}: {where} has a nonlinear term other than an output times an input "
                                f"({exc})") from None
        if atom.op == "==":
            raise NotApplicable(f"{method} here takes inequalities only; {where} states an equality")
        if len(atom.outputs) != 1:
            raise NotApplicable(f"{method} takes a product of an input and an output only in a comparison that "
                                f"mentions one output; {where} mentions {len(atom.outputs)}")
        (k,) = atom.outputs
        if len(atom.output_inputs.get(k, {})) != 1:
            raise NotApplicable(f"{method} takes an output coefficient that depends on one input; {where}'s depends "
                                "on several")
        (t,) = atom.output_inputs[k]
        sign = _coefficient_sign(atom, k, t, low, high)
        if sign == 0:
            raise NotApplicable(f"{method}: in {where} the coefficient of the output changes sign (or reaches 0) "
                                "over the domain box")
        ratios.append(RatioAtom(a.index, comparison, k, t, atom.output_const.get(k, Fraction(0)),
                                atom.output_inputs[k][t], dict(atom.input_coefs), atom.const, sign))
    if not ratios:
        raise NotApplicable(f"{method}: {where} is linear")  # not reached: the caller tries the linear path first
    return linear, ratios


# ---- the inner bound ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moebius:
    """``Phi(t) = (n0 + n1 t) / (d0 + d1 t)`` with ``d0 + d1 t > 0`` on the interval (floats for choosing nodes)."""

    n0: Fraction
    n1: Fraction
    d0: Fraction
    d1: Fraction

    def value(self, t: Fraction) -> Fraction:
        return (self.n0 + self.n1 * t) / (self.d0 + self.d1 * t)

    def slope(self, t: Fraction) -> Fraction:
        return (self.n1 * self.d0 - self.n0 * self.d1) / (self.d0 + self.d1 * t) ** 2

    @property
    def curvature_sign(self) -> int:  # sign of Phi''
        value = -self.d1 * (self.n1 * self.d0 - self.n0 * self.d1)
        return (value > 0) - (value < 0)

    def floats(self, t: np.ndarray) -> np.ndarray:
        return (float(self.n0) + float(self.n1) * t) / (float(self.d0) + float(self.d1) * t)


def _tangent_kinks(phi: _Moebius, nodes: list[Fraction]) -> tuple[Fraction, Fraction, list[tuple[Fraction, Fraction]]]:
    """Max of the tangents at ``nodes`` (convex ``Phi``) as ``alpha + beta t + sum c relu(t - s)`` (exact)."""
    slopes = [phi.slope(p) for p in nodes]
    offsets = [phi.value(p) - m * p for p, m in zip(nodes, slopes, strict=True)]
    kinks = []
    for i in range(1, len(nodes)):
        if slopes[i] == slopes[i - 1]:
            continue
        s = (offsets[i - 1] - offsets[i]) / (slopes[i] - slopes[i - 1])
        kinks.append((s, slopes[i] - slopes[i - 1]))
    return offsets[0], slopes[0], kinks


def _chord_kinks(phi: _Moebius, nodes: list[Fraction]) -> tuple[Fraction, Fraction, list[tuple[Fraction, Fraction]]]:
    """The chord interpolant at ``nodes`` (concave ``Phi``) as ``alpha + beta t + sum c relu(t - s)`` (exact)."""
    values = [phi.value(p) for p in nodes]
    slopes = [(values[i + 1] - values[i]) / (nodes[i + 1] - nodes[i]) for i in range(len(nodes) - 1)]
    kinks = [(nodes[i], slopes[i] - slopes[i - 1]) for i in range(1, len(slopes)) if slopes[i] != slopes[i - 1]]
    return values[0] - slopes[0] * nodes[0], slopes[0], kinks


def _piecewise(alpha: float, beta: float, kinks: Sequence[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    out = alpha + beta * t
    for s, c in kinks:
        out = out + c * np.maximum(t - s, 0.0)
    return out


def _largest_gaps(phi: _Moebius, nodes: list[Fraction], kinks_of) -> tuple[np.ndarray, float]:
    """Per segment between nodes, the largest ``(Phi - u) / max(1, |Phi|)`` on a grid (floats), and the largest
    ``Phi - u`` overall."""
    alpha, beta, kinks = kinks_of(phi, nodes)
    fk = [(float(s), float(c)) for s, c in kinks]
    relative, absolute = [], 0.0
    for left, right in zip(nodes[:-1], nodes[1:], strict=True):
        t = np.linspace(float(left), float(right), 33)
        exact = phi.floats(t)
        gap = exact - _piecewise(float(alpha), float(beta), fk, t)
        relative.append(float(np.max(gap / np.maximum(1.0, np.abs(exact)))))
        absolute = max(absolute, float(np.max(gap)))
    return np.array(relative), absolute


def _choose_nodes(phi: _Moebius, t_lo: Fraction, t_hi: Fraction, kinks_of) -> list[Fraction]:
    """Nodes from the interval's ends, each new one halving the segment with the largest gap, until the gap is at
    most ``GAP_TOLERANCE`` or there are ``MAX_NODES``."""
    nodes = [t_lo, t_hi] if t_hi > t_lo else [t_lo]
    while len(nodes) >= 2 and len(nodes) < MAX_NODES:
        gaps, _ = _largest_gaps(phi, nodes, kinks_of)
        if gaps.max() <= GAP_TOLERANCE:
            break
        i = int(np.argmax(gaps))
        nodes.insert(i + 1, _f32((nodes[i] + nodes[i + 1]) / 2))
        if not nodes[i] < nodes[i + 1] < nodes[i + 2]:  # float32 cannot split it further
            del nodes[i + 1]
            break
    return nodes


def inner_bound(ratio: RatioAtom, low: Sequence[Fraction], high: Sequence[Fraction]) -> RatioRow:
    """The piecewise-linear inner bound of one ratio comparison over the box, proved exactly (z3); NotApplicable
    when the proof does not go through. Remembered per comparison and box (``auto`` builds it before training
    builds it again)."""
    key = (ratio.comparison.sexpr(), ratio.assert_index, tuple(Fraction(v) for v in low),
           tuple(Fraction(v) for v in high))
    if key not in _BUILT:
        if len(_BUILT) >= 64:
            _BUILT.clear()
        _BUILT[key] = _inner_bound(ratio, low, high)
    return _BUILT[key]


_BUILT: dict[tuple, RatioRow] = {}


def _inner_bound(ratio: RatioAtom, low: Sequence[Fraction], high: Sequence[Fraction]) -> RatioRow:
    t = ratio.input_index
    t_lo, t_hi = Fraction(low[t]), Fraction(high[t])
    m = {j: -v for j, v in ratio.b.items()}  # N(x) = m . x + m0
    m0 = -ratio.b0
    d0, d1 = ratio.sign * ratio.a0, ratio.sign * ratio.a1  # |a(t)| = d0 + d1 t on the box
    p_lo = 1 / max(d0 + d1 * t_lo, d0 + d1 * t_hi)
    others = {j: v for j, v in m.items() if j != t and v != 0}
    z_lo = {j: min(v * Fraction(low[j]), v * Fraction(high[j])) for j, v in others.items()}
    phi = _Moebius(m0 + sum(z_lo.values(), Fraction(0)), m.get(t, Fraction(0)), d0, d1)
    kinks_of = _tangent_kinks if phi.curvature_sign > 0 else _chord_kinks
    nodes = _choose_nodes(phi, t_lo, t_hi, kinks_of)
    if len(nodes) == 1:
        alpha, beta, kinks = phi.value(t_lo), Fraction(0), []
    else:
        alpha, beta, kinks = kinks_of(phi, nodes)
    direction = -1 if d0 + d1 * t_hi >= d0 + d1 * t_lo else 1  # anchor where |a| is largest: Phi flattest
    if direction < 0:  # relu(t - s) = (t - s) + relu(s - t)
        alpha -= sum((c * s for s, c in kinks), Fraction(0))
        beta += sum((c for _, c in kinks), Fraction(0))
    rounded = [(_f32(s), _f32(c)) for s, c in kinks]
    beta32 = _f32(beta)
    # lower alpha by the most float32 rounding of the other numbers lifts u anywhere on the interval (the
    # difference is piecewise linear: its max is at an end or a kink), and one float32 step more
    exact = BoundUnit(t, alpha, beta, tuple(kinks), Fraction(0), Fraction(0), direction=direction)
    trial = BoundUnit(t, alpha, beta32, tuple(rounded), Fraction(0), Fraction(0), direction=direction)
    points = [t_lo, t_hi] + [v for pair in zip(kinks, rounded, strict=True) for v in (pair[0][0], pair[1][0])
                             if t_lo < v < t_hi]
    lift = max(max(trial.value(v) - exact.value(v) for v in points), Fraction(0))
    alpha32 = _f32(alpha - lift)
    while alpha32 >= alpha - lift:
        alpha32 = Fraction(float(np.nextafter(np.float32(float(alpha32)), np.float32(-np.inf), dtype=np.float32)))
    u_values = [alpha32 + beta32 * v + sum((c * max(direction * (v - s), Fraction(0)) for s, c in rounded),
                                           Fraction(0)) for v in [t_lo, t_hi] + [s for s, _ in rounded if t_lo < s < t_hi]]
    inputs = {j: p_lo * v for j, v in others.items()}
    const = -p_lo * sum(z_lo.values(), Fraction(0))
    _, gap = _largest_gaps(phi, nodes, kinks_of) if len(nodes) > 1 else (None, 0.0)
    gap += _mccormick_gap(others, z_lo, low, high, d0, d1, t_lo, t_hi)
    unit = BoundUnit(t, alpha32, beta32, tuple(rounded), min(u_values), max(u_values), gap, ratio.assert_index,
                     direction)
    row = RatioRow(ratio.assert_index, ratio.output, ratio.sign, unit, inputs, const, gap,
                   "tangents" if kinks_of is _tangent_kinks else "chords")
    _prove(ratio, row, low, high)
    return row


def _mccormick_gap(others: dict[int, Fraction], z_lo: dict[int, Fraction], low, high, d0, d1, t_lo, t_hi) -> float:
    """The largest McCormick gap ``sum (z - z_lo)(p - p_lo)`` over the box (0 without other inputs)."""
    if not others:
        return 0.0
    p = [1 / (d0 + d1 * t_lo), 1 / (d0 + d1 * t_hi)]
    spread = max(p) - min(p)
    return float(sum((abs(v) * (Fraction(high[j]) - Fraction(low[j]))) * spread for j, v in others.items()))


def _prove(ratio: RatioAtom, row: RatioRow, low: Sequence[Fraction], high: Sequence[Fraction]) -> None:
    """z3 (nonlinear real arithmetic): the comparison holds with ``y`` replaced by the bound over the box, on each
    piece of ``u`` between consecutive kinks (where ``u`` is exactly the affine piece checked; the pieces cover
    the box); NotApplicable otherwise."""
    unit = row.unit
    j_t = ratio.input_index
    t = input_var(j_t)
    used = sorted({j_t, *ratio.b, *row.inputs})
    box = [c for j in used for c in (input_var(j) >= z3_rational(low[j]), input_var(j) <= z3_rational(high[j]))]
    rest = z3.Sum([z3_rational(v) * input_var(j) for j, v in row.inputs.items()] + [z3_rational(row.const)])
    cuts = [Fraction(low[j_t])] + sorted(s for s, _ in unit.kinks if low[j_t] < s < high[j_t]) + [Fraction(high[j_t])]
    for left, right in zip(cuts[:-1], cuts[1:], strict=True):
        d = unit.direction
        active = [(s, c) for s, c in unit.kinks if (s <= left if d > 0 else s >= right)]
        alpha = unit.alpha - sum((d * c * s for s, c in active), Fraction(0))
        beta = unit.beta + sum((d * c for _, c in active), Fraction(0))
        bound = z3_rational(alpha) + z3_rational(beta) * t + rest
        claim = z3.substitute(ratio.comparison, (output_var(ratio.output), row.sign * bound))
        solver = z3.SolverFor("QF_NRA")
        solver.set("timeout", PROOF_TIMEOUT_MS)
        solver.add(*box, t >= z3_rational(left), t <= z3_rational(right), z3.Not(claim))
        answer = solver.check()
        if answer != z3.unsat:
            raise NotApplicable(f"the inner bound of assert {ratio.assert_index + 1}'s ratio could not be proved "
                                f"on [{float(left):.6g}, {float(right):.6g}] ({answer})")


def unit_definition(unit: BoundUnit, column: z3.ArithRef, inputs: Sequence[z3.ArithRef]) -> z3.BoolRef:
    """``column == u(x_t)`` over the variables ``inputs`` (the link a product box loses)."""
    return column == unit.z3_term(inputs[unit.input_index])
