"""The network with HardNet-Aff's enforcement layer appended, and its plain feed-forward ReLU form.

For rows ``b_l(x) <= A y <= b_u(x)`` with ``A`` of full row rank and ``P = A^T (A A^T)^-1`` (so ``A P = I``),
the layer maps the base network's output ``f`` to

    y = f - P_u relu(A_u f - b_u(x)) + P_l relu(b_l(x) - A_l f)

so that, in exact arithmetic, ``A y`` is ``A f`` clamped to ``[b_l(x), b_u(x)]`` row by row (Min & Azizan,
HardNet-Aff, with constant ``A``). The bounds are tightened by a slack that covers the certificate's output
margin. ``A``, ``P`` and the bounds are float32 tensors of the saved network (non-trainable parameters, so
the weights file and its hash hold them); the certificate re-checks the rule on exactly these numbers.

Every piece is linear or a ReLU, so the whole network is a plain ReLU network (``plain_layers``): the
mapped inputs ride through the hidden layers as ``relu(x)`` and ``relu(-x)``, the base output as
``relu(f)`` and ``relu(-f)``; every weight of that form is a stored float32 value, its negation, 0 or 1,
so the exact engines (z3, Marabou) see the very function ``predict`` computes.

When every row bounds one output with coefficient 1 (an output gadget), ``forward`` computes the same function
as ``min(max(f, b_l(x)), b_u(x))``: in float32 a clamped output is then its bound as computed, whatever the
magnitude of ``f`` (the ReLU form would round ``f - (f - b)`` at the scale of ``f``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from deepsade.constructions.plain_form import base_as_plain_layers
from deepsade.constructions.recognise import AffineRule, NotApplicable
from deepsade.network import SkipMLP

HARDNET_AFF = "hardnet-aff"


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse of a small invertible Fraction matrix (Gauss-Jordan)."""
    n = len(matrix)
    rows = [list(r) + [Fraction(int(i == j)) for j in range(n)] for i, r in enumerate(matrix)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if rows[i][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        head = rows[col][col]
        rows[col] = [v / head for v in rows[col]]
        for i in range(n):
            if i != col and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[col], strict=True)]
    return [r[n:] for r in rows]


def pseudo_inverse(matrix: np.ndarray) -> np.ndarray:
    """``A^T (A A^T)^-1`` exactly, for a full-row-rank Fraction matrix ``A`` (rows, outputs)."""
    a = [list(r) for r in matrix]
    gram = [[sum((x * y for x, y in zip(r, s, strict=True)), Fraction(0)) for s in a] for r in a]
    inverse = _inverse(gram)
    n_out = len(a[0]) if a else 0
    return np.array([[sum((a[i][k] * inverse[i][j] for i in range(len(a))), Fraction(0)) for j in range(len(a))]
                     for k in range(n_out)], dtype=object).reshape(n_out, len(a))


class EnforcedMLP(SkipMLP):
    """A ``SkipMLP`` whose output goes through HardNet-Aff's enforcement layer (constant ``A``, affine bounds)."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 upper_rows: int, lower_rows: int, kind: str = HARDNET_AFF):
        super().__init__(n_inputs, hidden, n_outputs, mapped_features)
        m = len(self.mapped_features)
        self.kind = kind

        def fixed(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(*shape), requires_grad=False)

        self.upper_matrix, self.upper_inputs, self.upper_const = fixed(upper_rows, n_outputs), fixed(upper_rows, m), \
            fixed(upper_rows)
        self.upper_lift = fixed(n_outputs, upper_rows)
        self.lower_matrix, self.lower_inputs, self.lower_const = fixed(lower_rows, n_outputs), fixed(lower_rows, m), \
            fixed(lower_rows)
        self.lower_lift = fixed(n_outputs, lower_rows)

    # ---- the function ----
    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's output ``f`` (before enforcement)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base(x)
        skip = x[:, self.mapped_features]
        upper = skip @ self.upper_inputs.T + self.upper_const
        lower = skip @ self.lower_inputs.T + self.lower_const
        clamp = self.clamp_outputs()
        if clamp is not None:
            return _clamp(f, upper, lower, *clamp)
        over = torch.relu(f @ self.upper_matrix.T - upper)
        under = torch.relu(lower - f @ self.lower_matrix.T)
        return f - over @ self.upper_lift.T + under @ self.lower_lift.T

    def clamp_outputs(self) -> tuple[list[int], list[int]] | None:
        """The output each upper and each lower row bounds, when every row is a unit row (``A`` and ``P`` hold
        exactly 1 for one output, 0 elsewhere, at most one row per side and output): the layer is then a clamp per
        output (an output gadget); None otherwise."""
        picked = []
        for matrix, lift in ((self.upper_matrix, self.upper_lift), (self.lower_matrix, self.lower_lift)):
            ones = matrix == 1
            if not (bool(torch.all(ones.sum(dim=1) == 1)) and bool(torch.all((matrix == 0) | ones))
                    and torch.equal(lift, matrix.T)):
                return None
            outputs = ones.int().argmax(dim=1).tolist()
            if len(set(outputs)) != len(outputs):
                return None
            picked.append(outputs)
        return picked[0], picked[1]

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "upper_rows": int(self.upper_const.shape[0]),
                               "lower_rows": int(self.lower_const.shape[0])}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> EnforcedMLP:
        layer = arch["enforcement"]
        if layer.get("kind") != HARDNET_AFF:
            raise ValueError(f"unknown enforcement layer {layer.get('kind')!r}")
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"],
                   int(layer["upper_rows"]), int(layer["lower_rows"]))

    # ---- building it from the rule ----
    def set_rule(self, rule: AffineRule, slack: float) -> None:
        """Fill the enforcement layer from the compiled rule, each bound tightened by ``slack * |row|_1``."""
        matrix = rule.matrix
        lift = pseudo_inverse(matrix)
        mapped = self.mapped_features.tolist()
        position = {j: p for p, j in enumerate(mapped)}
        ups = [i for i, r in enumerate(rule.rows) if r.upper is not None]
        lows = [i for i, r in enumerate(rule.rows) if r.lower is not None]

        def bounds(indices: list[int], side: str, sign: int) -> tuple[np.ndarray, np.ndarray]:
            inputs = np.zeros((len(indices), len(mapped)))
            const = np.zeros(len(indices))
            for p, i in enumerate(indices):
                bound = getattr(rule.rows[i], side)
                for j, value in bound.inputs:
                    if j not in position:
                        raise NotApplicable(f"assert {bound.assert_index + 1} mentions an input the network does "
                                            "not map into its last layer")
                    inputs[p, position[j]] = float(value)
                tightening = Fraction(slack) * sum(abs(v) for v in rule.rows[i].outputs)
                const[p] = float(bound.const - sign * tightening)
            return inputs, const

        up_inputs, up_const = bounds(ups, "upper", 1)
        low_inputs, low_const = bounds(lows, "lower", -1)
        as_float = np.vectorize(float, otypes=[np.float64])
        with torch.no_grad():
            for name, value in (("upper_matrix", matrix[ups]), ("upper_inputs", up_inputs), ("upper_const", up_const),
                                ("upper_lift", lift[:, ups]), ("lower_matrix", matrix[lows]),
                                ("lower_inputs", low_inputs), ("lower_const", low_const),
                                ("lower_lift", lift[:, lows])):
                array = as_float(np.asarray(value, dtype=object)) if np.asarray(value).dtype == object else value
                getattr(self, name).copy_(torch.as_tensor(np.asarray(array, dtype=np.float64).reshape(
                    getattr(self, name).shape), dtype=torch.float32))

    # ---- the plain ReLU form ----
    def plain_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """(hidden layers, last weight, last bias, mapped) of the same function as a plain ReLU network whose
        last layer reads ``[h; x[mapped]]``; float64 arrays holding float32 values, their negations, 0 and 1."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float64)

        layers, mapped = base_as_plain_layers(self)
        m, n_out = len(mapped), self.n_outputs
        a_u, b_u, c_u = arr(self.upper_matrix), arr(self.upper_inputs), arr(self.upper_const)
        a_l, b_l, c_l = arr(self.lower_matrix), arr(self.lower_inputs), arr(self.lower_const)
        over = np.hstack([a_u, -a_u, -b_u, b_u])  # A_u f - b_u(x) from [f+; f-; x+; x-]
        under = np.hstack([-a_l, a_l, b_l, -b_l])
        keep_f = np.hstack([np.eye(2 * n_out), np.zeros((2 * n_out, 2 * m))])
        layers.append((np.vstack([over, under, keep_f]),
                       np.concatenate([-c_u, c_l, np.zeros(2 * n_out)])))
        p_u, p_l = arr(self.upper_lift), arr(self.lower_lift)
        last_weight = np.hstack([-p_u, p_l, np.eye(n_out), -np.eye(n_out), np.zeros((n_out, m))])
        return layers, last_weight, np.zeros(n_out), mapped


def _clamp(f: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, up: list[int], low: list[int]) -> torch.Tensor:
    """The clamp layer ``y = f - relu(f - u) + relu(l - f)`` per output, written so that float32 rounds nothing
    but the bounds: where ``l <= u`` it is ``min(max(f, l), u)`` (exactly the same number in exact arithmetic), so
    however large the base output ``f`` is, a clamped output equals its bound as computed; where ``l > u``
    (no room: outside any certified box) the ReLU form itself."""
    big = torch.full_like(f, float("inf"))
    u = big.index_copy(1, torch.as_tensor(up, dtype=torch.long), upper) if up else big
    lo = (-big).index_copy(1, torch.as_tensor(low, dtype=torch.long), lower) if low else -big
    room = lo <= u
    clamped = torch.minimum(torch.maximum(f, lo), u)
    if bool(room.all()):
        return clamped
    relu_form = torch.minimum(f, u) + torch.relu(lo - f)
    return torch.where(room, clamped, relu_form)



def network_from_architecture(arch: dict) -> SkipMLP:
    """The constructed network an architecture describes (``arch['enforcement']`` says which)."""
    from deepsade.constructions.hcr import HCR_KIND, HyperSphericalMLP
    from deepsade.constructions.input_enforced import HARDNET_AFF_X, InputEnforcedMLP
    from deepsade.constructions.repair_layer import LABEL_SET_REPAIR, LabelSetRepairMLP
    from deepsade.constructions.sequential_clamp import SEQUENTIAL_CLAMP, SequentiallyClampedMLP

    if arch["enforcement"].get("kind") == LABEL_SET_REPAIR:
        return LabelSetRepairMLP.from_architecture(arch)
    if arch["enforcement"].get("kind") == HCR_KIND:
        return HyperSphericalMLP.from_architecture(arch)
    if arch["enforcement"].get("kind") == HARDNET_AFF_X:
        return InputEnforcedMLP.from_architecture(arch)
    if arch["enforcement"].get("kind") == SEQUENTIAL_CLAMP:
        return SequentiallyClampedMLP.from_architecture(arch)
    from deepsade.constructions.score_clamp import SCORE_CLAMP, ScoreClampedMLP

    if arch["enforcement"].get("kind") == SCORE_CLAMP:
        return ScoreClampedMLP.from_architecture(arch)
    return EnforcedMLP.from_architecture(arch)


def is_constructed(model: nn.Module) -> bool:
    """Whether ``model`` carries an enforcement layer of this package."""
    from deepsade.constructions.hcr import HyperSphericalMLP
    from deepsade.constructions.input_enforced import InputEnforcedMLP
    from deepsade.constructions.repair_layer import LabelSetRepairMLP
    from deepsade.constructions.score_clamp import ScoreClampedMLP
    from deepsade.constructions.sequential_clamp import SequentiallyClampedMLP

    return isinstance(model, EnforcedMLP | HyperSphericalMLP | InputEnforcedMLP | SequentiallyClampedMLP
                      | LabelSetRepairMLP | ScoreClampedMLP)
