"""How far a float32 (or float64) forward pass can be from the exact network: a rigorous bound over a domain.

The certificate proves the exact network on the stored float32 weights; what a runtime computes differs
by rounding. ``float32_error_bound`` bounds that difference per output over the whole domain, so the
certificate can say whether its margin covers it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepsade.data import Domain, Encoding
from deepsade.network import SkipMLP

_UNIT_ROUNDOFF_32 = 2.0 ** -24
_UNIT_ROUNDOFF_64 = 2.0 ** -53


def float32_error_bound(model: SkipMLP, encoding: Encoding, domain: Domain) -> float:
    """A rigorous bound, over the whole domain, on |float32 forward pass - exact network| per output
    (network units), for inputs scaled in float64 and rounded to float32. ``predict`` evaluates in float64,
    whose error obeys the same analysis with a smaller unit roundoff, so this bounds it too.

    Per layer, for any summation order: |fl(W x' + b) - (W x + b)| <= |W| e + g(n+1) (|W| (m + e) + |b|),
    with e the incoming error, m a bound on |x| over the domain and g(n) = n u / (1 - n u); ReLU passes the
    error unchanged. The bound is evaluated in float64 and padded outwards by a relative 1e-6."""
    lower, upper = np.asarray(domain.lower, np.float64), np.asarray(domain.upper, np.float64)
    offset, span = np.asarray(encoding.input_min, np.float64), np.asarray(encoding.input_max, np.float64)
    span = span - offset
    with np.errstate(all="ignore"):
        scaled_low, scaled_high = (lower - offset) / span, (upper - offset) / span
        magnitude = np.maximum(np.abs(scaled_low), np.abs(scaled_high))
        raw_magnitude = (np.maximum(np.abs(lower), np.abs(upper)) + np.abs(offset)) / span
        error = _UNIT_ROUNDOFF_32 * magnitude + 4 * _UNIT_ROUNDOFF_64 * (raw_magnitude + magnitude)

    def gamma(n: int) -> float:
        return n * _UNIT_ROUNDOFF_32 / (1 - n * _UNIT_ROUNDOFF_32)

    def layer_error(layer: torch.nn.Linear, incoming: np.ndarray, size: np.ndarray) -> np.ndarray:
        weight = np.abs(layer.weight.detach().to(torch.float32).numpy().astype(np.float64))
        bias = np.abs(layer.bias.detach().to(torch.float32).numpy().astype(np.float64))
        return weight @ incoming + gamma(weight.shape[1] + 1) * (weight @ (size + incoming) + bias)

    mapped = model.mapped_features.numpy()
    skip_error, skip_size = error[mapped], magnitude[mapped]
    low, high = scaled_low, scaled_high
    for layer in model.hidden:
        error = layer_error(layer, error, magnitude)
        weight = layer.weight.detach().to(torch.float64).numpy()
        centre = weight @ ((high + low) / 2) + layer.bias.detach().to(torch.float64).numpy()
        spread = np.abs(weight) @ ((high - low) / 2)
        pad = 1e-9 * (np.abs(centre) + spread) + 1e-12  # float64 rounding of these bounds, outwards
        low, high = np.maximum(centre - spread - pad, 0.0), np.maximum(centre + spread + pad, 0.0)
        magnitude = high
    error = layer_error(model.last, np.concatenate([error, skip_error]), np.concatenate([magnitude, skip_size]))
    bound = float(np.max(error)) * (1 + 1e-6) if error.size else 0.0
    return bound if math.isfinite(bound) else math.inf


# the largest float32 bound (network units) for which the warning offers a larger --margin
MARGIN_ADVICE_LIMIT = 0.01


def rounding_warning(rounding: float, margin: float) -> str:
    """The certificate's warning when ``rounding`` (a float32 error bound over the domain) exceeds ``margin``.

    ``deepsade predict`` and the ONNX graph ``deepsade export`` writes by default for such a model evaluate in
    float64, whose unit roundoff is 2^-29 of float32's (2^-53 against 2^-24): the float32 bound scaled by it
    estimates theirs (not a bound: the scaling of the inputs is already float64 in both), said first when
    that estimate is within the margin, since that is the case most users are in. Both numbers are in network units (scores, or
    targets scaled to their training range). A larger ``--margin`` (twice the bound) is suggested only while the bound is
    small beside that range (``MARGIN_ADVICE_LIMIT``): a margin of the bound's size would leave the outputs no room."""
    units = ("network units: scores, or targets scaled to their training range; a worst case over the whole "
             "domain box, usually far above what a float32 runtime shows")
    # a larger margin is offered only for a small bound: it changes the model and so its bound (a new-user probe
    # took --margin 0.052 for a bound of 0.047 and got a bound of 0.059 at 3x the MSE)
    fix = "narrow the domain" + (f", or train with --margin {rounding * 2:.2g} or more (the bound is recomputed "
                                 "on the model that trains)" if rounding <= MARGIN_ADVICE_LIMIT else "")
    float64 = rounding * 2.0 ** -29
    if float64 <= margin:
        return (f"deepsade predict and deepsade export's default ONNX graph evaluate this model in float64, whose "
                f"rounding is about 2^-29 of float32's (about {float64:.1g}, within the margin; an estimate: the "
                f"float64 bound is not computed separately); a float32 runtime may differ by up to {rounding:.3g} "
                "per output "
                f"({units}), more than the margin {margin:g}, so its predictions that close to a rule's boundary "
                f"are not covered ({fix})")
    return (f"on this domain a float32 forward pass may differ from the certified network by up to {rounding:.3g} "
            f"per output and a float64 one by about {float64:.3g} (an estimate; {units}), more than the margin {margin:g}: "
            f"predictions within that distance of a rule's boundary are not covered ({fix})")
