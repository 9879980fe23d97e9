"""Premise gates: fixed ReLU units that are exactly 1 where an assert's premise holds.

For a premise region ``lo_j <= x_j <= hi_j`` (``deepsade.regions``), the gate is

    g(x) = relu(1 - sum_j r_j(x)),   r_j(x) = relu((lo_j - x_j) / w_j)  or  relu((x_j - hi_j) / w_j)

one ``r`` per narrowed side, ``w_j`` a band width. ``g`` is 1 on the region, 0 once ``x`` is a band
width outside it, and linear in between. The last layer reads ``g`` like any hidden unit, so it can
add an offset on the premise region alone instead of tying its weights over the whole domain.

A gate is ordinary weights of the MLP: the ``r`` units are extra rows of the first hidden layer, ``g``
an extra row of the second, carried to the last hidden layer by identity rows (``relu(g) = g``). The
saved network is a plain ``SkipMLP``, so certify, verify, AdI, predict and export see the gates with
no special case, and the exact certificate covers them. During training those rows (and the columns
that would let other units read them) are frozen by gradient masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from deepsade.network import SkipMLP
from deepsade.regions import InputRegion

DEFAULT_BAND = 0.05  # band width as a share of each input's domain interval


@dataclass(frozen=True)
class GateSide:
    """One ``r`` unit: ``relu((threshold - x_j) / width)`` (lower side) or ``relu((x_j - threshold) / width)``."""

    input_index: int
    threshold: Fraction
    lower: bool
    width: Fraction


@dataclass(frozen=True)
class Gate:
    """The gate of one premise region (shared by every assert with that region)."""

    sides: tuple[GateSide, ...]
    asserts: tuple[int, ...]


@dataclass(frozen=True)
class GateLayout:
    """Where the gate units sit in the widened network: after the free units of each hidden layer."""

    free_sizes: tuple[int, ...]  # the hidden sizes without gates
    n_sides: int  # r units in the first hidden layer
    n_gates: int  # g units in every later hidden layer

    @property
    def hidden_sizes(self) -> list[int]:
        return [self.free_sizes[0] + self.n_sides] + [h + self.n_gates for h in self.free_sizes[1:]]

    def gate_coordinate(self, gate: int) -> int:
        """The latent coordinate (index into ``[h; s]``) of gate number ``gate``."""
        return self.free_sizes[-1] + gate


def plan_gates(regions: Sequence[InputRegion], domain_low: Sequence, domain_high: Sequence,
               band: float = DEFAULT_BAND) -> list[Gate]:
    """One gate per distinct premise region that narrows the domain (and is not empty)."""
    by_sides: dict[tuple[GateSide, ...], list[int]] = {}
    for region in regions:
        if not region.restricts or region.empty:
            continue
        sides = []
        for j in region.narrowed:
            span = Fraction(domain_high[j]) - Fraction(domain_low[j])
            width = max(Fraction(band) * span, Fraction(1, 10**6))
            if region.low[j] > Fraction(domain_low[j]):
                sides.append(GateSide(j, region.low[j], True, width))
            if region.high[j] < Fraction(domain_high[j]):
                sides.append(GateSide(j, region.high[j], False, width))
        by_sides.setdefault(tuple(sides), []).append(region.assert_index)
    return [Gate(sides, tuple(asserts)) for sides, asserts in by_sides.items()]


def gate_layout(hidden: Sequence[int], gates: Sequence[Gate]) -> GateLayout:
    return GateLayout(tuple(int(h) for h in hidden), sum(len(g.sides) for g in gates), len(gates))


def with_gates(model: SkipMLP, gates: Sequence[Gate]) -> tuple[SkipMLP, GateLayout]:
    """A widened copy of ``model`` computing the same outputs plus the gates as latent units.

    The free weights are copied unchanged; the last layer's weights on the gates start at 0, so the
    widened network computes exactly what ``model`` does until training moves them."""
    if len(model.hidden_sizes) < 2:
        raise ValueError("premise gates need at least two hidden layers")
    layout = gate_layout(model.hidden_sizes, gates)
    rng = torch.get_rng_state()  # every weight below is set explicitly: leave the run's random stream alone
    wide = SkipMLP(model.n_inputs, layout.hidden_sizes, model.n_outputs, model.mapped_features.tolist())
    torch.set_rng_state(rng)
    free = layout.free_sizes
    with torch.no_grad():
        for layer in wide.hidden:
            layer.weight.zero_()
            layer.bias.zero_()
        previous = model.n_inputs
        for index, (source, target) in enumerate(zip(model.hidden, wide.hidden)):
            target.weight[:free[index], :previous] = source.weight
            target.bias[:free[index]] = source.bias
            previous = free[index]
        _write_gate_rows(wide, layout, gates)
        n_h = free[-1]
        wide.last.weight.zero_()
        wide.last.weight[:, :n_h] = model.last.weight[:, :n_h]
        wide.last.weight[:, n_h + layout.n_gates:] = model.last.weight[:, n_h:]
        wide.last.bias.copy_(model.last.bias)
    return wide, layout


def _write_gate_rows(model: SkipMLP, layout: GateLayout, gates: Sequence[Gate]) -> None:
    free = layout.free_sizes
    first, second = model.hidden[0], model.hidden[1]
    side = 0
    for g, gate in enumerate(gates):
        for s in gate.sides:
            row = free[0] + side
            scale = 1 / s.width
            sign = -1.0 if s.lower else 1.0  # lower side: (threshold - x) / width
            first.weight[row, s.input_index] = float(sign * scale)
            first.bias[row] = float(-sign * s.threshold * scale)
            second.weight[free[1] + g, free[0] + side] = -1.0
            side += 1
        second.bias[free[1] + g] = 1.0
    for index in range(2, len(model.hidden)):
        layer = model.hidden[index]
        for g in range(layout.n_gates):
            layer.weight[free[index] + g, free[index - 1] + g] = 1.0


def trainable_masks(layout: GateLayout, n_inputs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per hidden layer, (weight mask, bias mask): 1 where SGD may move the entry, 0 on gate rows/columns."""
    masks = []
    previous_free, previous_total = n_inputs, n_inputs
    for index, total in enumerate(layout.hidden_sizes):
        free = layout.free_sizes[index]
        weight = torch.zeros(total, previous_total)
        weight[:free, :previous_free] = 1.0
        bias = torch.zeros(total)
        bias[:free] = 1.0
        masks.append((weight, bias))
        previous_free, previous_total = free, total
    return masks


def freeze_gate_units(model: SkipMLP, layout: GateLayout) -> list:
    """Zero the gradients of the gate rows and columns (hooks; returned so a caller can remove them)."""
    handles = []
    for layer, (weight_mask, bias_mask) in zip(model.hidden, trainable_masks(layout, model.n_inputs)):
        handles.append(layer.weight.register_hook(lambda grad, m=weight_mask: grad * m))
        handles.append(layer.bias.register_hook(lambda grad, m=bias_mask: grad * m))
    return handles
