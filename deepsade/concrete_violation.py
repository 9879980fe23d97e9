"""A concrete violation: an input of the domain at which the network, evaluated exactly, breaks a rule.

The certificate's bound check works on a latent box, which holds points no input reaches, so a failed
check alone proves nothing. A verdict of *violated* needs a witness: a realisable input of the domain
box whose exact rational forward pass (on the stored float32 weights) makes the assert false.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
import z3

from deepsade.data import Encoding
from deepsade.encoding.exact import Counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.network import SkipMLP
from deepsade.numbers import z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, input_var, output_var

# Random inputs tried, besides the counterexample's own, when looking for a concrete violation.
_VIOLATION_SAMPLES = 256


def exact_outputs(model: SkipMLP, scaled_input: Sequence[Fraction]) -> list[Fraction]:
    """The network's outputs at one scaled input, in exact rationals on the stored float32 weights."""
    def fractions(tensor: torch.Tensor) -> np.ndarray:
        values = tensor.detach().to(torch.float32).numpy().astype(np.float64)
        return np.vectorize(Fraction, otypes=[object])(values)

    x = np.array([Fraction(v) for v in scaled_input], dtype=object)
    h = x
    zero = Fraction(0)
    for layer in model.hidden:
        h = fractions(layer.weight).dot(h) + fractions(layer.bias)
        h = np.array([max(v, zero) for v in h], dtype=object)
    latent = np.concatenate([h, x[model.mapped_features.numpy()]])
    return list(fractions(model.last.weight).dot(latent) + fractions(model.last.bias))


def breaks_exactly(spec: Spec, assert_index: int, scaled_input: Sequence[Fraction],
                   outputs: Sequence[Fraction]) -> bool:
    """Whether the assert is false at this input and these outputs, decided exactly by z3 (no margin)."""
    a = spec.asserts[assert_index]
    pairs = [(input_var(j), z3_rational(scaled_input[j])) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(outputs[k])) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))


def find_concrete_violation(model: SkipMLP, spec: Spec, encoding: Encoding, low: Sequence[Fraction],
                            high: Sequence[Fraction], assert_index: int, found: Counterexample | None = None,
                            layout: LatentLayout | None = None, seed: int = 0) -> dict[str, float] | None:
    """A realisable input of the domain box at which the network, evaluated exactly, breaks the assert;
    returned in raw units, or None when none of the candidates does (which proves nothing).

    Candidates: the bound check's skip inputs with the other inputs at the box's centre, and random
    points of the box; each is snapped onto an input a real row could have (one category per one-hot
    group, whole numbers in integer columns: ``deepsade.realisable``). Screened in float64, confirmed exactly."""
    low_f = np.array([float(v) for v in low])
    high_f = np.array([float(v) for v in high])
    rng = np.random.default_rng(seed)
    candidates = [low_f + (high_f - low_f) * rng.random((_VIOLATION_SAMPLES, len(low_f)))]
    if found is not None and layout is not None:
        centre = (low_f + high_f) / 2
        for j in layout.mapped:
            centre[j] = float(found.latent[layout.coordinate(j)])
        candidates.insert(0, centre[None, :])
    realisable = RealisableInputs.from_encoding(encoding)
    points = realisable.snap(np.vstack(candidates), low_f, high_f)
    with torch.no_grad():
        outputs = model(torch.as_tensor(points, dtype=torch.float64).to(torch.float32)).double().numpy()
    with np.errstate(all="ignore"):
        suspicious = ~spec.evaluate_scaled(points, outputs)[:, assert_index]
    order = list(np.flatnonzero(suspicious)[:16]) + ([0] if found is not None else [])
    affine = encoding.input_affine()
    for i in dict.fromkeys(order):  # screened points first; the counterexample's own point last
        exact_input = realisable.snap_exact([Fraction(float(v)) for v in points[i]], low, high)
        if exact_input is None or not realisable.contains(exact_input):
            return None  # the box holds no input a real row could have
        if breaks_exactly(spec, assert_index, exact_input, exact_outputs(model, exact_input)):
            return {encoding.input_names[j]: float(off + scale * exact_input[j])
                    for j, (off, scale) in enumerate(affine)}
    return None
