"""Label-set repair: an output layer that makes a monotone label rule hold for every base output.

For a rule with minimal label sets ``S_1..S_r`` (``monotone_rule``), base scores ``f`` and a level ``m > 0``:

    need_S = relu(m - min_{k in S} f_k)       how far set S is from being predicted with margin m
    c_k    = min_{S containing k} need_S       the cheapest set through label k
    c*     = min_S need_S                      the cheapest set
    y_k    = max(f_k, m - (c_k - c*))          for every label in some set; other outputs pass unchanged

Why the rule holds for every ``f``: let ``S*`` be a set with ``need_{S*} = c*``. For ``k`` in ``S*``,
``c_k <= need_{S*} = c*`` and ``c_k >= c*`` (``c*`` is the minimum over all sets), so ``c_k = c*`` and
``y_k >= m > 0``: every label of ``S*`` is predicted, and a monotone rule holds on any superset of a minimal
set. The argument survives floating point: ``min`` and ``max`` are exact, so ``c_k`` and ``c*`` are the very
same float for ``k`` in ``S*`` and ``c_k - c*`` is exactly 0 (the forward pass computes that difference first).

What it changes: where the base already predicts some minimal set with margin ``m``, ``c* = 0``, and a label
that the base does not predict has ``c_k >= m``, so its score may rise but stays ``<= 0``: every predicted
label set is the base network's own. Elsewhere it adds the labels of the cheapest set (ties: all of them).
The layer has no trainable weight; it is stored as its sets and ``m``. ``plain_layers`` gives the same
function (in exact arithmetic) as a plain ReLU network for the exact verifiers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deepsade.constructions.plain_form import base_as_plain_layers
from deepsade.network import SkipMLP

LABEL_SET_REPAIR = "label-set-repair"


class LabelSetRepairMLP(SkipMLP):
    """A ``SkipMLP`` whose scores go through the fixed label-set repair of a monotone rule."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 sets: Sequence[Sequence[int]], level: float):
        super().__init__(n_inputs, hidden, n_outputs, mapped_features)
        if not sets or any(not s for s in sets):
            raise ValueError("label-set repair needs at least one non-empty set")
        if not float(np.float32(level)) > 0:
            raise ValueError(f"the repair level must be a positive float32 value, got {level!r}")
        self.kind = LABEL_SET_REPAIR
        self.sets = [sorted(int(k) for k in s) for s in sets]
        self.level = float(np.float32(level))
        width = max(len(s) for s in self.sets)
        # padded with the set's first member: a repeated member leaves the minimum unchanged
        members = torch.as_tensor([s + [s[0]] * (width - len(s)) for s in self.sets], dtype=torch.long)
        contains = torch.zeros(len(self.sets), n_outputs, dtype=torch.bool)
        for i, s in enumerate(self.sets):
            contains[i, s] = True
        self.register_buffer("repair_members", members, persistent=False)
        self.register_buffer("repair_contains", contains, persistent=False)
        self.repaired = sorted({k for s in self.sets for k in s})

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's scores ``f`` (before the repair)."""
        return super().forward(x)

    def repair(self, f: torch.Tensor) -> torch.Tensor:
        """The layer: base scores to repaired scores (exact float operations, see the module docstring)."""
        level = torch.tensor(self.level, dtype=f.dtype)
        lowest = f[:, self.repair_members].amin(dim=2)  # (batch, sets)
        need = torch.relu(level - lowest)
        cheapest = need.amin(dim=1, keepdim=True)  # c*
        inf = torch.tensor(float("inf"), dtype=f.dtype)
        through = torch.where(self.repair_contains[None], need[:, :, None], inf).amin(dim=1)  # c_k, inf off the sets
        gap = through - cheapest  # exactly 0 on the cheapest set; inf for outputs in no set
        return torch.maximum(f, level - gap)

    def clamp(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The layer as ``hardnet.fit_constructed`` calls it (the inputs are not used)."""
        return self.repair(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.repair(self.base(x))

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "sets": [list(s) for s in self.sets], "level": self.level}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> LabelSetRepairMLP:
        layer = arch["enforcement"]
        if layer.get("kind") != LABEL_SET_REPAIR:
            raise ValueError(f"unknown enforcement layer {layer.get('kind')!r}")
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"], layer["sets"],
                   layer["level"])

    # ---- the plain ReLU form ----
    def plain_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """(hidden layers, last weight, last bias, mapped) of the same function, in exact arithmetic, as a plain
        ReLU network: ``min(a, b) = a - relu(a - b)``, ``max(a, b) = a + relu(b - a)``, one ReLU layer per
        round of pairwise minima. Weights are 0, +-1 and the level (float64 arrays of float32 values)."""
        layers, mapped = base_as_plain_layers(self)
        if len(mapped):
            raise ValueError("label-set repair takes rules that mention no input, so its network maps none")
        program = _ReluProgram(2 * self.n_outputs)
        f = [program.unit(k) - program.unit(self.n_outputs + k) for k in range(self.n_outputs)]
        lowest = program.minima([[f[k] for k in s] for s in self.sets], [*f])
        f, lowest = lowest[1], lowest[0]
        f, need = program.relus([*f], [program.constant(self.level) - v for v in lowest])
        groups = [[need[i] for i, s in enumerate(self.sets) if k in s] for k in self.repaired] + [need]
        (through_and_cheapest, f) = program.minima(groups, f)
        cheapest = through_and_cheapest[-1]
        raise_terms = [program.constant(self.level) - (through_and_cheapest[i] - cheapest) - f[k]
                       for i, k in enumerate(self.repaired)]
        f, lifts = program.relus(f, raise_terms)
        outputs = list(f)
        for i, k in enumerate(self.repaired):
            outputs[k] = f[k] + lifts[i]
        layers += program.layers
        weight = np.array([v[:-1] for v in outputs])
        bias = np.array([v[-1] for v in outputs])
        return layers, weight, bias, mapped


class _ReluProgram:
    """ReLU layers built one at a time; a live value is an affine form over the current layer's units
    (coefficients, then a constant), carried to the next layer as ``relu(v) - relu(-v)``."""

    def __init__(self, width: int):
        self.width = width
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []

    def unit(self, i: int) -> np.ndarray:
        v = np.zeros(self.width + 1)
        v[i] = 1.0
        return v

    def constant(self, value: float) -> np.ndarray:
        v = np.zeros(self.width + 1)
        v[-1] = value
        return v

    def relus(self, carried: list[np.ndarray], new: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One ReLU layer: carries ``carried`` and adds ``relu(t)`` per ``t`` in ``new``; both as forms over it."""
        rows = [r for v in carried for r in (v, -v)] + list(new)
        matrix = np.array(rows).reshape(len(rows), self.width + 1)
        self.layers.append((matrix[:, :-1], matrix[:, -1]))
        self.width = len(rows)
        values = [self.unit(2 * i) - self.unit(2 * i + 1) for i in range(len(carried))]
        return values, [self.unit(2 * len(carried) + t) for t in range(len(new))]

    def minima(self, groups: list[list[np.ndarray]], carried: list[np.ndarray]
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The minimum of each group (pairwise rounds, one ReLU layer each: ``a - relu(a - b)``), with the
        ``carried`` values brought along; returns (minima, carried) as forms over the last layer."""
        groups = [list(g) for g in groups]
        while any(len(g) > 1 for g in groups):
            singles, pairs = [], []
            for g in groups:
                pairs.append([(g[i], g[i + 1]) for i in range(0, len(g) - 1, 2)])
                singles.append(g[-1] if len(g) % 2 else None)
            firsts = [a for p in pairs for a, _ in p]
            kept = [s for s in singles if s is not None]
            values, terms = self.relus([*carried, *firsts, *kept], [a - b for p in pairs for a, b in p])
            carried, firsts, kept = (values[:len(carried)], values[len(carried):len(carried) + len(firsts)],
                                     values[len(carried) + len(firsts):])
            new_groups, i, j = [], 0, 0
            for p, s in zip(pairs, singles, strict=True):
                group = [firsts[i + t] - terms[i + t] for t in range(len(p))]
                i += len(p)
                if s is not None:
                    group.append(kept[j])
                    j += 1
                new_groups.append(group)
            groups = new_groups
        return [g[0] for g in groups], carried
