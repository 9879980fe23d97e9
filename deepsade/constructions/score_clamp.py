"""Score clamps: a fixed max/min layer after a classifier's scores that makes every assert hold for ANY score.

For a clause ``premise -> head`` (``deepsade.constructions.score_clamp_rule``) the head score is moved by

    y'_k = max(y_k, t + v)            (head y_k > t)
    y'_k = min(y_k, t - v)            (head y_k < t)
    y'_j = min(y_j, max_s y'_s - v)   (multiclass: class j is below one of S)
    y'_c = max(y_c, y'_k + v)         (multiclass: class c above class k)

with ``v = min(parts)``: a premise gate's ``h(x) = (mu + C) g(x) - C`` (``g`` exactly 1 on the premise box, so
``h = mu`` there, and ``h = -C`` a band width away) and, for output premises ``y_a > t``, ``y'_a - t + mu``.
Wherever the premise holds, ``v >= mu > 0`` and the head holds whatever ``f`` is; away from it the layer
leaves a score's sign (and the argmax) as the base network gave it. Heads come in an order where every
score a step reads is final, so chained rules (``y_a > 0 -> y_c > 0``) hold on the clamped scores.

``forward`` computes ``max``/``min`` as such (exact in floating point: a clamped score is its bound as
computed, whatever the magnitude of ``f``). The bounds themselves are rounded: ``t + v`` is exact enough for
any ``f``, but a class comparison's ``y'_k + v`` loses ``v`` once ``|y'_k|`` nears ``2^24 v`` (about 4e6 at
``mu = 1/4``), so in float32 such a head holds for bounded base scores only. The certificate's float32 error
bound counts this rounding for the stored base, whose scores it bounds over the domain (interval bounds), and
widens its check by it; a base with larger scores is another network, not covered. ``plain_layers`` gives the
same function as plain ReLU layers (``max(a, b) = a + relu(b - a)``), for z3, Marabou, export and the exact evaluator. The program's numbers
are float32 values, stored exactly (as rationals) in the model's architecture, which the certificate binds.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from deepsade.constructions.plain_form import base_as_plain_layers
from deepsade.constructions.score_clamp_rule import Part, ScoreProgram, Term
from deepsade.constructions.sequential_clamp import _combine, _difference, _Program
from deepsade.network import SkipMLP

SCORE_CLAMP = "score-clamp"


class ScoreClampedMLP(SkipMLP):
    """A ``SkipMLP`` whose scores go through fixed score clamps (``ScoreProgram``)."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 program: ScoreProgram):
        super().__init__(n_inputs, hidden, n_outputs, mapped_features)
        self.kind = SCORE_CLAMP
        self.program = program
        mapped = set(self.mapped_features.tolist())
        for gate in program.gates:
            for j in {j for side in gate.sides for j in side.inputs} - mapped:
                raise ValueError(f"a premise gate reads input {j}, which the network does not map")

    # ---- the function ----
    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's scores ``f`` (before the clamps)."""
        return super().forward(x)

    def gate_values(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``h`` of every premise gate, per row."""
        values = []
        for gate in self.program.gates:
            total = None
            for s in gate.sides:
                form = float(s.bias)
                for j, weight in s.terms:
                    form = x[:, j] * float(weight) + form
                side = torch.relu(form)
                total = side if total is None else total + side
            g = torch.relu(1 - total) if total is not None else torch.ones_like(x[:, 0])
            values.append(g * float(gate.scale) - float(gate.offset))
        return values

    def clamp(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The layer: base scores ``f`` and (scaled) inputs ``x`` to clamped scores."""
        h = self.gate_values(x)
        final: dict[int, torch.Tensor] = {}

        def score(k: int) -> torch.Tensor:
            return final[k] if k in final else f[:, k]

        def part(p: Part) -> torch.Tensor:
            if p.kind == "gate":
                return h[p.index]
            return score(p.index) * float(p.sign) + float(p.offset)

        def term(t: Term) -> torch.Tensor:
            v = _fold(torch.minimum, [part(p) for p in t.parts]) if t.parts else \
                torch.full_like(f[:, 0], float(self.program.mu))
            if t.anchor_outputs:
                anchor = _fold(torch.maximum, [score(k) for k in t.anchor_outputs])
                return anchor + v if t.raises else anchor - v
            return v + float(t.anchor_const) if t.raises else float(t.anchor_const) - v

        for step in self.program.steps:
            value = f[:, step.output]
            for t in step.terms:
                if t.raises:
                    value = torch.maximum(value, term(t))
            for t in step.terms:
                if not t.raises:
                    value = torch.minimum(value, term(t))
            final[step.output] = value
        columns = [final.get(k, f[:, k]) for k in range(self.n_outputs)]
        return torch.stack(columns, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clamp(self.base(x), x)

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "program": self.program.to_dict()}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> ScoreClampedMLP:
        layer = arch["enforcement"]
        if layer.get("kind") != SCORE_CLAMP:
            raise ValueError(f"unknown enforcement layer {layer.get('kind')!r}")
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"],
                   ScoreProgram.from_dict(layer["program"]))

    # ---- the plain ReLU form ----
    def plain_layers(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
        """(hidden layers, last weight, last bias, mapped) of the same function as a plain ReLU network whose
        last layer reads ``[h; x[mapped]]``."""
        layers, mapped = base_as_plain_layers(self)
        m, n_out = len(mapped), self.n_outputs
        compiled, out_weight, out_bias = compile_plain(self.program, mapped.tolist(), n_out)
        if not compiled:
            return layers, np.hstack([np.eye(n_out), -np.eye(n_out), np.zeros((n_out, 3 * m))]), np.zeros(n_out), \
                mapped
        as_float = np.vectorize(float, otypes=[np.float64])
        layers += [(as_float(w), as_float(b)) for w, b in compiled]
        return layers, np.hstack([as_float(out_weight), np.zeros((n_out, m))]), as_float(out_bias), mapped


def _fold(op, values: list[torch.Tensor]) -> torch.Tensor:
    result = values[0]
    for v in values[1:]:
        result = op(result, v)
    return result


class _Live:
    """Named affine forms over the current neurons of a ``_Program``; every ReLU layer carries all of them."""

    def __init__(self, program: _Program, values: dict):
        self.program, self.values = program, values

    def relu(self, form) -> tuple:
        names = list(self.values)
        carried, (term,) = self.program.relu_layer([self.values[n] for n in names], [form])
        self.values = dict(zip(names, carried, strict=True))
        return term

    def affine(self, terms: list[tuple[Fraction, str]], const: Fraction = Fraction(0)):
        return _combine([(c, self.values[n]) for c, n in terms], const, self.program.width)

    def max(self, a: str, b: str, out: str) -> None:
        term = self.relu(_difference(self.values[b], self.values[a]))
        self.values[out] = _combine([(1, self.values[a]), (1, term)], Fraction(0), self.program.width)

    def min(self, a: str, b: str, out: str) -> None:
        term = self.relu(_difference(self.values[a], self.values[b]))
        self.values[out] = _combine([(1, self.values[a]), (-1, term)], Fraction(0), self.program.width)

    def fold(self, names: list[str], op: str, out: str) -> None:
        self.values[out] = self.values[names[0]]
        for n in names[1:]:
            getattr(self, op)(out, n, out)

    def drop(self, *names: str) -> None:
        for n in names:
            self.values.pop(n, None)


def compile_plain(program: ScoreProgram, mapped: list[int], n_outputs: int
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """The score clamps as exact ReLU layers over ``[relu(f); relu(-f); relu(x_m); relu(-x_m)]`` and the final
    linear map to the clamped scores (Fraction arrays)."""
    m = len(mapped)
    prog = _Program(2 * n_outputs + 2 * m)
    values = {f"f{k}": _difference(prog.unit(k), prog.unit(n_outputs + k)) for k in range(n_outputs)}
    values.update({f"x{j}": _difference(prog.unit(2 * n_outputs + p), prog.unit(2 * n_outputs + m + p))
                   for p, j in enumerate(mapped)})
    live = _Live(prog, values)
    if program.gates:  # sides, then g = relu(1 - sum sides), h = scale g - offset
        sides = [live.affine([(w, f"x{j}") for j, w in side.terms], side.bias) for gate in program.gates
                 for side in gate.sides]
        names = list(live.values)
        carried, r = prog.relu_layer([live.values[n] for n in names], sides)
        live.values = dict(zip(names, carried, strict=True))
        start, units = 0, []
        for gate in program.gates:
            units.append(_combine([(-1, r[start + s]) for s in range(len(gate.sides))], Fraction(1), prog.width))
            start += len(gate.sides)
        names = list(live.values)
        carried, g = prog.relu_layer([live.values[n] for n in names], units)
        live.values = dict(zip(names, carried, strict=True))
        for i, gate in enumerate(program.gates):
            live.values[f"h{i}"] = _combine([(gate.scale, g[i])], -gate.offset, prog.width)
    final: dict[int, str] = {}
    for step in program.steps:
        acc = f"acc{step.output}"
        live.values[acc] = live.values[f"f{step.output}"]
        for kind in (True, False):
            for n, t in enumerate(x for x in step.terms if x.raises == kind):
                tag = f"t{step.output}_{int(kind)}_{n}"
                parts = []
                for q, p in enumerate(t.parts):
                    name = f"{tag}_p{q}"
                    live.values[name] = (live.values[f"h{p.index}"] if p.kind == "gate" else
                                         live.affine([(Fraction(p.sign), final.get(p.index, f"f{p.index}"))], p.offset))
                    parts.append(name)
                if not parts:
                    live.values[f"{tag}_p"] = live.affine([], program.mu)
                    parts = [f"{tag}_p"]
                live.fold(parts, "min", f"{tag}_v")
                if t.anchor_outputs:
                    live.fold([final.get(k, f"f{k}") for k in t.anchor_outputs], "max", f"{tag}_a")
                    sign = Fraction(1 if t.raises else -1)
                    live.values[tag] = live.affine([(Fraction(1), f"{tag}_a"), (sign, f"{tag}_v")])
                else:
                    sign = Fraction(1 if t.raises else -1)
                    live.values[tag] = live.affine([(sign, f"{tag}_v")], t.anchor_const)
                getattr(live, "max" if t.raises else "min")(acc, tag, acc)
                live.drop(*parts, f"{tag}_v", f"{tag}_a", tag)
        final[step.output] = acc
    outputs = [live.values[final.get(k, f"f{k}")] for k in range(n_outputs)]
    out_weight = np.array([list(c) for c, _ in outputs], dtype=object).reshape(n_outputs, prog.width)
    out_bias = np.array([k for _, k in outputs], dtype=object)
    return prog.layers, out_weight, out_bias
