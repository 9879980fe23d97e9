"""Sequential clamps onto a polytope ``A y <= b(x)``: an exact piecewise-linear map of any output into it.

With the bounds of each output given by Fourier–Motzkin elimination (``fourier_motzkin.project``: ``y_j``
between the max of its lower pieces and the min of its upper pieces, affine in ``x`` and ``y_1..y_{j-1}``),
the layer maps the base network's output ``f`` to

    y_1 = clamp(f_1, lo_1(x), hi_1(x)),  y_2 = clamp(f_2, lo_2(x, y_1), hi_2(x, y_1)),  ...

with ``max(v, a) = v + relu(a - v)`` and ``min(v, b) = v - relu(v - b)`` applied one piece at a time. So

- ``y`` lies in the polytope for every ``f`` and every input where the polytope is non-empty (checked over
  the whole domain box when the layer is built), and
- ``y = f`` exactly whenever ``f`` lies in it: every ReLU is then 0 and ``f`` is carried with weights 1.

Unlike HardNet-Aff's closed form it takes any number of rows (more rows than outputs, several bounds on
the same combination). The layer is a fixed stack of ReLU layers over ``[relu(f); relu(-f); relu(x); relu(-x)]``
(``x`` the mapped inputs), stored as float32 tensors of the saved network; ``plain_layers`` gives the whole
network as a plain ReLU network, so z3, Marabou, export, predict and the certificate see one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from deepsade.constructions.fourier_motzkin import Projection
from deepsade.constructions.plain_form import base_as_plain_layers
from deepsade.constructions.ratio_bound import BoundUnit
from deepsade.network import SkipMLP

SEQUENTIAL_CLAMP = "sequential-clamp"


class _Program:
    """Builds ReLU layers in exact rationals: each live value is an affine form over the current neurons."""

    def __init__(self, width: int):
        self.width = width
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []

    def unit(self, index: int, sign: int = 1) -> tuple[np.ndarray, Fraction]:
        coefs = np.array([Fraction(0)] * self.width, dtype=object)
        coefs[index] = Fraction(sign)
        return coefs, Fraction(0)

    def relu_layer(self, carried: list[tuple[np.ndarray, Fraction]],
                   new: list[tuple[np.ndarray, Fraction]]) -> tuple[list, list]:
        """One ReLU layer: carries each value as relu(v), relu(-v) and adds relu(t) per new term ``t``;
        returns the carried values and the new terms as affine forms over the layer's neurons."""
        rows, consts = [], []
        for coefs, const in carried:
            rows += [coefs, -coefs]
            consts += [const, -const]
        for coefs, const in new:
            rows.append(coefs)
            consts.append(const)
        weight = np.array([list(r) for r in rows], dtype=object).reshape(len(rows), self.width)
        self.layers.append((weight, np.array(consts, dtype=object)))
        self.width = len(rows)
        values = [_difference(self.unit(2 * i), self.unit(2 * i + 1)) for i in range(len(carried))]
        terms = [self.unit(2 * len(carried) + t) for t in range(len(new))]
        return values, terms


def _difference(a: tuple[np.ndarray, Fraction], b: tuple[np.ndarray, Fraction]) -> tuple[np.ndarray, Fraction]:
    return a[0] - b[0], a[1] - b[1]


def _combine(terms: Sequence[tuple[Fraction, tuple[np.ndarray, Fraction]]], const: Fraction,
             width: int) -> tuple[np.ndarray, Fraction]:
    coefs = np.array([Fraction(0)] * width, dtype=object)
    total = const
    for factor, (c, k) in terms:
        if factor != 0:
            coefs = coefs + factor * c
            total += factor * k
    return coefs, total


def _extra_columns(program: _Program, extras: list, f: list, x: list, position: dict[int, int]) -> tuple[list, list, list]:
    """The values of the extra columns the bounds read after the inputs, in order: a premise gate
    (``polytope.GateUnits``, two ReLU layers) or a ratio bound's unit (``ratio_bound.BoundUnit``, one ReLU layer:
    ``alpha + beta t + sum c relu(t - s)``); returns (extra values, f, x) as forms over the last layer built."""
    n_outputs = len(f)
    new = []
    for extra in extras:
        if isinstance(extra, BoundUnit):
            d = extra.direction
            new += [_combine([(d, x[position[extra.input_index]])], -d * s, program.width) for s, _ in extra.kinks]
        else:
            new += [_combine([(w, x[position[j]]) for j, w in side.terms], side.bias, program.width)
                    for side in extra.sides]
    carried, r = program.relu_layer([*f, *x], new)
    f, x = carried[:n_outputs], carried[n_outputs:]
    values: list = []
    gate_units, start = [], 0
    for extra in extras:
        if isinstance(extra, BoundUnit):
            values.append(_combine([(extra.beta, x[position[extra.input_index]])]
                                   + [(c, r[start + i]) for i, (_, c) in enumerate(extra.kinks)],
                                   extra.alpha, program.width))
            start += len(extra.kinks)
        else:
            gate_units.append(_combine([(-1, r[start + s]) for s in range(len(extra.sides))], Fraction(1),
                                       program.width))
            values.append(None)
            start += len(extra.sides)
    if gate_units:  # g = relu(1 - sum of its sides): one more layer, carrying the rest
        kept = [v for v in values if v is not None]
        carried, units = program.relu_layer([*f, *x, *kept], gate_units)
        f, x, kept = carried[:n_outputs], carried[n_outputs:n_outputs + len(x)], carried[n_outputs + len(x):]
        kept_iter, units_iter = iter(kept), iter(units)
        values = [next(units_iter) if v is None else next(kept_iter) for v in values]
    return values, f, x


def compile_clamps(projection: Projection, mapped: Sequence[int], n_outputs: int, gates: Sequence = ()
                   ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """The clamp layers (exact Fraction arrays) over ``[relu(f); relu(-f); relu(x); relu(-x)]`` and the final
    linear map to ``y``; ``mapped`` lists the input indices present (the bounds may mention no others).

    With extra columns ``gates`` (premise gates ``polytope.GateUnits``, two ReLU layers, or ratio bounds' units
    ``ratio_bound.BoundUnit``, one ReLU layer), the first layers compute them from the inputs; the bounds' input
    coefficients then run over the inputs followed by those columns."""
    m = len(mapped)
    program = _Program(2 * n_outputs + 2 * m)
    f = [_difference(program.unit(k), program.unit(n_outputs + k)) for k in range(n_outputs)]
    x = [_difference(program.unit(2 * n_outputs + p), program.unit(2 * n_outputs + m + p)) for p in range(m)]
    position = {j: p for p, j in enumerate(mapped)}
    g: list[tuple[np.ndarray, Fraction]] = []
    if gates:
        g, f, x = _extra_columns(program, list(gates), f, x, position)
    n_g = len(g)
    y: list[tuple[np.ndarray, Fraction]] = []  # in the projection's order
    order = list(projection.order) if projection.order is not None else list(range(n_outputs))
    for j in range(n_outputs):
        value = f[order[j]]
        steps = [(1, piece) for piece in projection.lower[j]] + [(-1, piece) for piece in projection.upper[j]]
        for sign, piece in steps:
            n_in = len(piece.inputs) - n_g
            for jj, v in enumerate(piece.inputs[:n_in]):
                if v != 0 and jj not in position:
                    raise ValueError(f"a bound mentions input {jj}, which the network does not map")
            bound = _combine([(piece.inputs[jj], x[p]) for p, jj in enumerate(mapped)]
                             + [(piece.inputs[n_in + i], g[i]) for i in range(n_g)]
                             + [(piece.earlier[i], y[i]) for i in range(j)], piece.const, program.width)
            gap = _difference(bound, value) if sign > 0 else _difference(value, bound)  # > 0: clamp active
            carried, (term,) = program.relu_layer([*f, *x, *g, *y, value], [gap])
            f, rest = carried[:n_outputs], carried[n_outputs:]
            x, g, y, value = rest[:m], rest[m:m + n_g], rest[m + n_g:m + n_g + j], rest[-1]
            value = _combine([(1, value), (sign, term)], Fraction(0), program.width)
        y.append(value)
    by_output = [y[order.index(k)] for k in range(n_outputs)]
    out_weight = np.array([list(c) for c, _ in by_output], dtype=object).reshape(n_outputs, program.width)
    out_bias = np.array([k for _, k in by_output], dtype=object)
    return program.layers, out_weight, out_bias


def _as_float32(array: np.ndarray) -> torch.Tensor:
    values = np.vectorize(float, otypes=[np.float64])(array) if array.dtype == object else array
    return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)


class SequentiallyClampedMLP(SkipMLP):
    """A ``SkipMLP`` whose output goes through fixed sequential clamps onto the rule's polytope."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 layer_sizes: Sequence[int]):
        super().__init__(n_inputs, hidden, n_outputs, mapped_features)
        self.kind = SEQUENTIAL_CLAMP
        width = 2 * n_outputs + 2 * len(self.mapped_features)
        self.layer_sizes = [int(s) for s in layer_sizes]
        weights, biases = [], []
        for size in self.layer_sizes:
            weights.append(nn.Parameter(torch.zeros(size, width), requires_grad=False))
            biases.append(nn.Parameter(torch.zeros(size), requires_grad=False))
            width = size
        self.clamp_weights, self.clamp_biases = nn.ParameterList(weights), nn.ParameterList(biases)
        self.out_weight = nn.Parameter(torch.zeros(n_outputs, width), requires_grad=False)
        self.out_bias = nn.Parameter(torch.zeros(n_outputs), requires_grad=False)

    @classmethod
    def for_projection(cls, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                       projection: Projection, gates: Sequence = ()) -> SequentiallyClampedMLP:
        """A network (base untrained) whose layer clamps onto ``projection`` (float32 copies of the exact layers),
        with premise ``gates`` (``polytope.GateUnits``) computed inside the layer."""
        layers, out_weight, out_bias = compile_clamps(projection, list(mapped_features), n_outputs, gates)
        model = cls(n_inputs, hidden, n_outputs, mapped_features, [w.shape[0] for w, _ in layers])
        with torch.no_grad():
            for (w, b), pw, pb in zip(layers, model.clamp_weights, model.clamp_biases, strict=True):
                pw.copy_(_as_float32(w))
                pb.copy_(_as_float32(b))
            model.out_weight.copy_(_as_float32(out_weight))
            model.out_bias.copy_(_as_float32(out_bias))
        return model

    # ---- the function ----
    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's output ``f`` (before the clamps)."""
        return super().forward(x)

    def clamp(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The layer: base outputs ``f`` and (scaled) inputs ``x`` to clamped outputs ``y``."""
        skip = x[:, self.mapped_features]
        z = torch.cat([torch.relu(f), torch.relu(-f), torch.relu(skip), torch.relu(-skip)], dim=1)
        for weight, bias in zip(self.clamp_weights, self.clamp_biases, strict=True):
            z = torch.relu(z @ weight.T + bias)
        return z @ self.out_weight.T + self.out_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(self.base(x), x)

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "layer_sizes": list(self.layer_sizes)}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> SequentiallyClampedMLP:
        layer = arch["enforcement"]
        if layer.get("kind") != SEQUENTIAL_CLAMP:
            raise ValueError(f"unknown enforcement layer {layer.get('kind')!r}")
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"],
                   [int(s) for s in layer["layer_sizes"]])

    def clamp_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """The layer's stored (float32) values as float64 arrays: ReLU layers, then the final linear map."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float64)
        layers = [(arr(w), arr(b)) for w, b in zip(self.clamp_weights, self.clamp_biases, strict=True)]
        return layers, arr(self.out_weight), arr(self.out_bias)

    # ---- the plain ReLU form ----
    def plain_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """(hidden layers, last weight, last bias, mapped) of the same function as a plain ReLU network whose
        last layer reads ``[h; x[mapped]]``; every weight is a stored float32 value, its negation, 0 or 1."""
        layers, mapped = base_as_plain_layers(self)
        m, n_out = len(mapped), self.n_outputs
        clamp_layers, out_weight, out_bias = self.clamp_layers()
        if not clamp_layers:  # no bound at all: y = f from [f+; f-; x+; x-]
            return layers, np.hstack([np.eye(n_out), -np.eye(n_out), np.zeros((n_out, 3 * m))]), \
                np.zeros(n_out), mapped
        layers += clamp_layers[:-1]
        last_layer_w, last_layer_b = clamp_layers[-1]
        layers.append((last_layer_w, last_layer_b))
        # the plain form's last layer reads [h; x[mapped]]: its skip part is zero (x rides inside the layer)
        return layers, np.hstack([out_weight, np.zeros((n_out, m))]), out_bias, mapped
