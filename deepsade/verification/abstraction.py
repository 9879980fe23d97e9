"""Proving asserts on the last layers alone, with what comes before them free in sound bounds.

Searching a whole ReLU network exactly is hard (every ReLU is a case split), but most asserts of a certified
model hold because of its last layers, whatever the earlier ones compute: DeepSaDe's last layer satisfies the
rule for every latent vector in a box, and a construction's enforcement layer for every base output. So the
verifier first asks z3 about an *abstract network* whose inputs are ``[x; v]``: ``v`` is free in sound bounds
over the box (the linear relaxation's, ``relaxation``), its first layer rebuilds the layer that ``v`` stands for,
and the later layers are the stored ones. Every output of the real network over the box is an output of the
abstract one (take ``v`` = the real values), so no violation there proves none in the real network. A violation
there proves nothing (its ``v`` may be one no input gives); such asserts go to the engines on the whole
network, as before.

- ``LatentAbstraction`` (a plain network: DeepSaDe, the baselines): ``v`` is the last hidden layer's output
  ``h``, and the abstract network is the last layer reading ``[h; x_mapped]``.
- ``EnforcementAbstraction`` (a construction: score clamps, sequential clamps, HardNet-Aff, label-set repair,
  verified as the plain ReLU network it equals): one hidden layer, the *cut*, outputs exactly
  ``[relu(f); relu(-f); relu(x_m); relu(-x_m)]``, the base outputs ``f`` and the mapped inputs carried through
  the hidden layers; ``v`` is ``f``. The cut's shape is checked on the weights first (its ``f`` rows come in
  exact negated pairs, its ``x_m`` rows are identity copies of the inputs, layer by layer); a network without
  that shape is not abstracted this way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

from deepsade.spec import Assert
from deepsade.verification.engine import Query
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Verdict
from deepsade.verification.violation import Disjunct
from deepsade.verification.z3_engine import Z3Engine


def _copies(weight: np.ndarray, bias: np.ndarray, rows: np.ndarray, sources: np.ndarray, sign: float) -> bool:
    """Whether each row ``rows[i]`` is ``sign`` times input ``sources[i]`` exactly, with a zero bias."""
    expected = np.zeros((len(rows), weight.shape[1]))
    expected[np.arange(len(rows)), sources] = sign
    return bool(np.array_equal(weight[rows], expected) and not np.any(bias[rows]))


#: a nonlinear assert (an output times an input) is searched on this many equal pieces of that input's range:
#: z3's nonlinear solver gave no answer in 10 s on the whole box of a dosing model (`weight * dose <= 1000`,
#: results/verify), and proved each of 16 pieces in 0.25 s at most, since the bounds then fix most ReLUs
NONLINEAR_PIECES = 16


def pieces(assertion: Assert, lower: Sequence[Fraction],
           upper: Sequence[Fraction]) -> list[tuple[list[Fraction], list[Fraction]]]:
    """The box itself for a linear assert; for a nonlinear one, ``NONLINEAR_PIECES`` equal pieces of the widest
    input it mentions (they cover the box)."""
    lower, upper = list(lower), list(upper)
    if assertion.linear or not assertion.inputs:
        return [(lower, upper)]
    j = max(assertion.inputs, key=lambda i: upper[i] - lower[i])
    step = (upper[j] - lower[j]) / NONLINEAR_PIECES
    if step == 0:
        return [(lower, upper)]
    out = []
    for p in range(NONLINEAR_PIECES):
        piece_low, piece_high = list(lower), list(upper)
        piece_low[j] = lower[j] + p * step
        piece_high[j] = upper[j] if p == NONLINEAR_PIECES - 1 else lower[j] + (p + 1) * step
        out.append((piece_low, piece_high))
    return out


#: more distinct premise boxes than this and an assert is tried on the whole box only
MAX_PREMISE_BOXES = 16


def premise_boxes(disjuncts: Sequence[Disjunct] | None, lower: Sequence[Fraction],
                  upper: Sequence[Fraction]) -> list[tuple[list[Fraction], list[Fraction]]]:
    """Boxes that hold every input where an assert can break: per disjunct of its violation, the box narrowed by
    the disjunct's atoms on one input each (a premise such as ``x >= 5`` or a one-hot ``= 1``); empty boxes are
    left out. Over a narrower box the bounds of what comes before the last layers are tighter (a premise gate is
    fixed there). The whole box when the violation has no disjuncts or more than ``MAX_PREMISE_BOXES`` boxes."""
    whole = [(list(lower), list(upper))]
    if not disjuncts:
        return whole
    boxes: dict[tuple, tuple[list[Fraction], list[Fraction]]] = {}
    for disjunct in disjuncts:
        low, high = list(lower), list(upper)
        for atom in disjunct:
            if len(atom.terms) != 1 or not atom.terms[0][0].startswith("x!"):
                continue
            name, coefficient = atom.terms[0]
            j, value = int(name[2:]), atom.bound / coefficient
            op = atom.op if coefficient > 0 else {"<=": ">=", "<": ">", ">=": "<=", ">": "<", "==": "=="}[atom.op]
            if op in (">=", ">", "=="):
                low[j] = max(low[j], value)
            if op in ("<=", "<", "=="):
                high[j] = min(high[j], value)
        if all(lo <= hi for lo, hi in zip(low, high, strict=True)):
            boxes[(tuple(low), tuple(high))] = (low, high)
    if len(boxes) > MAX_PREMISE_BOXES:
        return whole
    return list(boxes.values())


@dataclass
class Abstraction(ABC):
    """An abstract network (inputs ``[x; v]``) and how to bound ``v`` over a box of inputs."""

    network: NetworkWeights  # the abstract network
    original: NetworkWeights
    label: ClassVar[str]  # the ``decided_by`` of an assert it proves
    proves: ClassVar[str]  # what a proof there means, for the user

    @abstractmethod
    def free_box(self, lower: Sequence[Fraction],
                 upper: Sequence[Fraction]) -> tuple[list[Fraction], list[Fraction]] | None:
        """Sound bounds of ``v`` over the box of inputs; None when not finite."""

    def proven(self, engine: Z3Engine, lower: Sequence[Fraction], upper: Sequence[Fraction],
               asserts: Sequence[Assert], timeout: float,
               disjuncts: dict[int, list[Disjunct] | None] | None = None) -> list[int]:
        """Indices of ``asserts`` that z3 proves on the abstract network over the box: one query per box of
        ``premise_boxes`` (from the violation's ``disjuncts``, per assert index), and for an assert that multiplies
        an output by an input, one per piece of ``pieces`` (each query with ``timeout``)."""
        disjuncts = disjuncts or {}
        bounds: dict[tuple, tuple[list[Fraction], list[Fraction]] | None] = {}  # free_box per box, once
        return [a.index for a in asserts
                if all(self._proven_on(engine, piece_low, piece_high, a, timeout, bounds)
                       for box_low, box_high in premise_boxes(disjuncts.get(a.index), lower, upper)
                       for piece_low, piece_high in pieces(a, box_low, box_high))]

    def _proven_on(self, engine: Z3Engine, lower: Sequence[Fraction], upper: Sequence[Fraction], assertion: Assert,
                   timeout: float, bounds: dict) -> bool:
        key = (tuple(lower), tuple(upper))
        if key not in bounds:
            bounds[key] = self.free_box(lower, upper)
        box = bounds[key]
        if box is None:
            return False
        v_low, v_high = box
        query = Query([*lower, *v_low], [*upper, *v_high], [assertion], [], timeout)
        return engine.check(query).verdict is Verdict.NO_VIOLATION

    def engine(self) -> Z3Engine:
        """z3 on the abstract network (built once per verifier)."""
        return Z3Engine(self.network)


def _fractions(low: np.ndarray, high: np.ndarray) -> tuple[list[Fraction], list[Fraction]] | None:
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return None
    return [Fraction(float(v)) for v in low], [Fraction(float(v)) for v in high]


@dataclass
class LatentAbstraction(Abstraction):
    """A plain network's last layer, with the last hidden layer's output free in its bounds over the box."""

    label: ClassVar[str] = "z3-latent"
    proves: ClassVar[str] = ("z3 proved it on the last layer, for every last-hidden-layer vector within sound "
                             "bounds over the box")

    @classmethod
    def of(cls, weights: NetworkWeights) -> LatentAbstraction | None:
        """The abstraction of a plain network (None for a construction, whose cut abstracts better)."""
        if weights.base_layers is not None or not weights.hidden:
            return None
        n, size = weights.n_inputs, len(weights.hidden[-1][1])
        identity = np.zeros((size, n + size))
        identity[np.arange(size), n + np.arange(size)] = 1.0  # relu(h) = h: h >= 0 in its bounds
        network = NetworkWeights(hidden=[(identity, np.zeros(size))], last_weight=weights.last_weight,
                                 last_bias=weights.last_bias, mapped=np.asarray(weights.mapped, dtype=np.int64))
        return cls(network=network, original=weights)

    def free_box(self, lower: Sequence[Fraction],
                 upper: Sequence[Fraction]) -> tuple[list[Fraction], list[Fraction]] | None:
        """The last hidden layer's output over the box: ReLU of the relaxation's pre-activation bounds."""
        relaxation = self.original.propagate(np.array([float(v) for v in lower]), np.array([float(v) for v in upper]))
        pre_low, pre_high = relaxation.preactivation[-1]
        return _fractions(np.maximum(pre_low, 0.0), np.maximum(pre_high, 0.0))


@dataclass
class EnforcementAbstraction(Abstraction):
    """A construction's layers after the cut, with the base output ``f`` free in its bounds over the box."""

    cut: int = 0  # the hidden layer whose outputs are [relu(f); relu(-f); relu(x_m); relu(-x_m)]
    label: ClassVar[str] = "z3-enforcement"
    proves: ClassVar[str] = ("z3 proved it on the layers after the base network, for every base output within "
                             "sound bounds over the box")

    @classmethod
    def of(cls, weights: NetworkWeights) -> EnforcementAbstraction | None:
        """The abstraction of a construction's network, or None when it has no cut of the checked shape."""
        cut = weights.base_layers
        if cut is None or not 0 <= cut < len(weights.hidden):
            return None
        k, mapped = weights.n_outputs, np.asarray(weights.mapped, dtype=np.int64)
        m = len(mapped)
        # the mapped inputs' copies, from the inputs to the cut: relu(x_m) then relu(-x_m), last in every layer
        for layer, (weight, bias) in enumerate(weights.hidden[:cut + 1]):
            size = len(bias)
            if size < 2 * m + (2 * k if layer == cut else 0):
                return None
            rows = np.arange(size - 2 * m, size)
            if layer == 0:
                if not (_copies(weight, bias, rows[:m], mapped, 1.0) and _copies(weight, bias, rows[m:], mapped, -1.0)):
                    return None
            elif not _copies(weight, bias, rows, np.arange(weight.shape[1] - 2 * m, weight.shape[1]), 1.0):
                return None
        weight, bias = weights.hidden[cut]
        if len(bias) != 2 * k + 2 * m:
            return None
        if not (np.array_equal(weight[k:2 * k], -weight[:k]) and np.array_equal(bias[k:2 * k], -bias[:k])):
            return None
        n = weights.n_inputs
        rebuild = np.zeros((2 * k + 2 * m, n + k))
        rebuild[np.arange(k), n + np.arange(k)] = 1.0
        rebuild[k + np.arange(k), n + np.arange(k)] = -1.0
        rebuild[2 * k + np.arange(m), mapped] = 1.0
        rebuild[2 * k + m + np.arange(m), mapped] = -1.0
        network = NetworkWeights(hidden=[(rebuild, np.zeros(2 * k + 2 * m)), *weights.hidden[cut + 1:]],
                                 last_weight=weights.last_weight, last_bias=weights.last_bias, mapped=mapped)
        return cls(network=network, original=weights, cut=cut)

    def free_box(self, lower: Sequence[Fraction],
                 upper: Sequence[Fraction]) -> tuple[list[Fraction], list[Fraction]] | None:
        """Sound bounds of the base output ``f`` over the box: the relaxation's bounds of the cut's ``f`` rows,
        intersected with the negated bounds of its ``-f`` rows (both padded outwards); None when not finite."""
        k = self.original.n_outputs
        relaxation = self.original.propagate(np.array([float(v) for v in lower]), np.array([float(v) for v in upper]))
        pre_low, pre_high = relaxation.preactivation[self.cut]
        low = np.maximum(pre_low[:k], -pre_high[k:2 * k])
        high = np.minimum(pre_high[:k], -pre_low[k:2 * k])
        return _fractions(low, high)


def abstraction_of(weights: NetworkWeights) -> Abstraction | None:
    """The abstraction the verifier tries first: a construction's cut, else a plain network's last layer."""
    return EnforcementAbstraction.of(weights) or LatentAbstraction.of(weights)
