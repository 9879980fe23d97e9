"""HardNet-Aff with ``A(x)``: the network with an enforcement layer whose matrix depends on the inputs.

For rows ``b_l(x) <= A(x) y <= b_u(x)`` (``input_rule``), with ``A(x) = A0 + sum_j x_j A1[:, :, j]`` over the
mapped inputs and ``A(x)`` of full row rank on the domain box, the layer maps the base output ``f`` to

    c = relu(A(x) f - b_u(x)) - relu(b_l(x) - A(x) f)          (rows without an upper/lower bound: masked)
    y = f - A(x)^T (A(x) A(x)^T)^-1 c                          (one small linear solve per input, in float64)

so that in exact arithmetic ``A(x) y`` is ``A(x) f`` clamped to the (tightened) bounds row by row. The solve is
not piecewise linear in the inputs: the exact ReLU engines cannot take this network, and its certificate says
which part is by construction (``input_certificate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from deepsade.constructions.hcr import NotPiecewiseLinear
from deepsade.constructions.input_rule import InputRule
from deepsade.constructions.recognise import NotApplicable
from deepsade.network import SkipMLP

HARDNET_AFF_X = "hardnet-aff-x"
NOT_PIECEWISE_LINEAR = ("this model's HardNet-Aff layer has A depending on the inputs (a linear solve per input), so "
                        "it is not piecewise linear and the ReLU engines (Marabou, z3) cannot verify it; its guarantee "
                        "is by construction: see certificate.json, re-checked by `deepsade certify`")


class InputEnforcedMLP(SkipMLP):
    """A ``SkipMLP`` whose output goes through HardNet-Aff's layer with ``A(x)`` affine in the mapped inputs."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 rows: int):
        super().__init__(n_inputs, hidden, n_outputs, mapped_features)
        m = len(self.mapped_features)
        self.kind = HARDNET_AFF_X

        def fixed(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(*shape), requires_grad=False)

        self.matrix_const, self.matrix_inputs = fixed(rows, n_outputs), fixed(rows, n_outputs, m)
        self.upper_inputs, self.upper_const, self.upper_mask = fixed(rows, m), fixed(rows), fixed(rows)
        self.lower_inputs, self.lower_const, self.lower_mask = fixed(rows, m), fixed(rows), fixed(rows)

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's output ``f`` (before enforcement)."""
        return super().forward(x)

    def matrix(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)`` per input row: shape (batch, rows, outputs)."""
        skip = x[:, self.mapped_features]
        return self.matrix_const + torch.einsum("rkj,nj->nrk", self.matrix_inputs, skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base(x)
        # the layer runs in float64 whatever the base network's precision: the solve's rounding grows with the
        # condition of A(x) A(x)^T, and float32 left measured violations of 1e-4 where rows are near dependent
        wide = x.double()
        skip = wide[:, self.mapped_features]
        a = self.matrix_const.double() + torch.einsum("rkj,nj->nrk", self.matrix_inputs.double(), skip)
        f64 = f.double()
        af = torch.einsum("nrk,nk->nr", a, f64)
        upper = skip @ self.upper_inputs.double().T + self.upper_const.double()
        lower = skip @ self.lower_inputs.double().T + self.lower_const.double()
        over = torch.relu(af - upper) * self.upper_mask.double()
        under = torch.relu(lower - af) * self.lower_mask.double()
        gram, rhs = a @ a.transpose(1, 2), (over - under).unsqueeze(-1)
        weights, info = torch.linalg.solve_ex(gram, rhs)
        singular = info != 0  # only outside the domain box (full row rank is proven on it): least squares there
        if bool(singular.any()):
            weights = torch.where(singular[:, None, None], torch.linalg.pinv(gram) @ rhs, weights)
        return (f64 - (a.transpose(1, 2) @ weights).squeeze(-1)).to(f.dtype)

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "rows": int(self.matrix_const.shape[0])}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> InputEnforcedMLP:
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"],
                   int(arch["enforcement"]["rows"]))

    def plain_layers(self) -> None:
        """No plain ReLU form: ``A(x)`` makes the layer a rational function of the inputs."""
        raise NotPiecewiseLinear(NOT_PIECEWISE_LINEAR)

    def set_rule(self, rule: InputRule) -> None:
        """Fill the layer from the compiled rule, each bound moved inwards by its row's tightening."""
        mapped = self.mapped_features.tolist()
        position = {j: p for p, j in enumerate(mapped)}
        values = {name: np.zeros(tuple(getattr(self, name).shape)) for name in (
            "matrix_const", "matrix_inputs", "upper_inputs", "upper_const", "upper_mask", "lower_inputs",
            "lower_const", "lower_mask")}
        for i, row in enumerate(rule.rows):
            values["matrix_const"][i] = [float(v) for v in row.a0]
            for k in range(rule.n_outputs):
                for j in range(rule.n_inputs):
                    if row.a1[k][j] != 0:
                        if j not in position:
                            raise NotApplicable(f"assert {row.asserts[0] + 1} multiplies an output by an input the "
                                                "network does not map into its last layer")
                        values["matrix_inputs"][i, k, position[j]] = float(row.a1[k][j])
            for side, sign in (("upper", 1), ("lower", -1)):
                bound = getattr(row, side)
                if bound is None:
                    continue
                values[f"{side}_mask"][i] = 1.0
                for j, value in bound.inputs:
                    if j not in position:
                        raise NotApplicable(f"assert {bound.assert_index + 1} mentions an input the network does not "
                                            "map into its last layer")
                    values[f"{side}_inputs"][i, position[j]] = float(value)
                values[f"{side}_const"][i] = float(bound.const - sign * row.tightening)
        with torch.no_grad():
            for name, value in values.items():
                getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    def stored_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per row (a0, a1 over all inputs) as Fraction arrays of the stored float32 values (for exact checks)."""
        def frac(t: torch.Tensor) -> np.ndarray:
            values = t.detach().float().numpy().astype(np.float64)
            return np.array([Fraction(v) for v in values.ravel().tolist()], dtype=object).reshape(values.shape)

        const, inputs = frac(self.matrix_const), frac(self.matrix_inputs)
        mapped = self.mapped_features.tolist()
        rows = []
        for i in range(const.shape[0]):
            a1 = np.array([[Fraction(0)] * self.n_inputs for _ in range(self.n_outputs)], dtype=object)
            for p, j in enumerate(mapped):
                a1[:, j] = inputs[i, :, p]
            rows.append((const[i], a1))
        return rows


def is_input_dependent(model: nn.Module) -> bool:
    """Whether ``model`` carries HardNet-Aff's layer with ``A(x)``."""
    return isinstance(model, InputEnforcedMLP)
