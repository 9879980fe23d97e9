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


def gamma(n: int) -> float:
    """Higham's gamma_n = n u / (1 - n u) for float32: the relative error of a sum of n terms in any order."""
    return n * _UNIT_ROUNDOFF_32 / (1 - n * _UNIT_ROUNDOFF_32)


def _stored(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """A weight as the float32 values a runtime holds, in float64."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().to(torch.float32).numpy().astype(np.float64)
    return np.asarray(t, np.float32).astype(np.float64)


def affine_error(weight, bias, low: np.ndarray, high: np.ndarray,
                 error: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One affine map ``W z + b`` in float32, for exact inputs ``z`` in ``[low, high]`` and computed inputs
    within ``error`` of them: the exact outputs' interval and a bound on the computed outputs' error,
    |W| e + gamma(n + 1) (|W| (|z| + e) + |b|) for any summation order. The interval is evaluated in float64
    and padded outwards (relative 1e-9, absolute 1e-12)."""
    weight, bias = _stored(weight), _stored(bias)
    absolute = np.abs(weight)
    magnitude = np.maximum(np.abs(low), np.abs(high)) + error
    out_error = absolute @ error + gamma(weight.shape[1] + 1) * (absolute @ magnitude + np.abs(bias))
    centre = weight @ ((high + low) / 2) + bias
    spread = absolute @ ((high - low) / 2)
    pad = 1e-9 * (np.abs(centre) + spread) + 1e-12
    return centre - spread - pad, centre + spread + pad, out_error


def relu_error(low: np.ndarray, high: np.ndarray,
               error: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ReLU on exact values in ``[low, high]`` computed within ``error``: ReLU is 1-Lipschitz, so the error
    passes unchanged, except where even the computed value cannot be positive (both outputs are exactly 0)."""
    dead = high + error <= 0
    return np.maximum(low, 0.0), np.maximum(high, 0.0), np.where(dead, 0.0, error)


def relu_stack_error(layers, low: np.ndarray, high: np.ndarray,
                     error: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``affine_error`` then ``relu_error`` through each ``(weight, bias)`` of ``layers``."""
    for weight, bias in layers:
        low, high, error = relu_error(*affine_error(weight, bias, low, high, error))
    return low, high, error


def scaled_input_error(encoding: Encoding, domain: Domain) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scaled domain box (float64) and the rounding error of scaled inputs as ``predict`` computes them:
    scaled in float64, then rounded to float32."""
    lower, upper = np.asarray(domain.lower, np.float64), np.asarray(domain.upper, np.float64)
    offset, span = np.asarray(encoding.input_min, np.float64), np.asarray(encoding.input_max, np.float64)
    span = span - offset
    with np.errstate(all="ignore"):
        scaled_low, scaled_high = (lower - offset) / span, (upper - offset) / span
        magnitude = np.maximum(np.abs(scaled_low), np.abs(scaled_high))
        raw_magnitude = (np.maximum(np.abs(lower), np.abs(upper)) + np.abs(offset)) / span
        error = _UNIT_ROUNDOFF_32 * magnitude + 4 * _UNIT_ROUNDOFF_64 * (raw_magnitude + magnitude)
    pad = 1e-12 * (1 + magnitude)
    return scaled_low - pad, scaled_high + pad, error


def float32_error_bound(model: SkipMLP, encoding: Encoding, domain: Domain) -> float:
    """A rigorous bound, over the whole domain, on |float32 forward pass - exact network| per output
    (network units), for inputs scaled in float64 and rounded to float32. ``predict`` evaluates in float64,
    whose error obeys the same analysis with a smaller unit roundoff, so this bounds it too.

    Interval bounds of every layer's exact values over the domain box carry the error through each layer
    (``affine_error``, ``relu_error``); the last layer reads ``[h; x[mapped]]``. Padded outwards by a relative
    1e-6 at the end."""
    low, high, error = scaled_input_error(encoding, domain)
    mapped = model.mapped_features.numpy()
    h_low, h_high, h_error = relu_stack_error([(layer.weight, layer.bias) for layer in model.hidden],
                                              low, high, error)
    *_, out_error = affine_error(model.last.weight, model.last.bias, np.concatenate([h_low, low[mapped]]),
                                 np.concatenate([h_high, high[mapped]]), np.concatenate([h_error, error[mapped]]))
    return finite_bound(out_error)


def finite_bound(error: np.ndarray) -> float:
    """The largest per-output error, padded outwards by a relative 1e-6; inf when not finite."""
    bound = float(np.max(error)) * (1 + 1e-6) if np.size(error) else 0.0
    return bound if math.isfinite(bound) else math.inf


# how the rounding text begins when predict's float64 evaluation is within the margin: only a float32 runtime is
# then not covered, and the command line prints it as a note rather than a warning under CERTIFIED
FLOAT64_COVERED = "deepsade predict and deepsade export's default ONNX graph evaluate this model in float64"

# the largest float32 bound (network units) for which the warning offers a larger --margin
MARGIN_ADVICE_LIMIT = 0.01


def rounding_warning(rounding: float, margin: float) -> str:
    """The certificate's warning when ``rounding`` (a float32 error bound over the domain) exceeds ``margin``.

    ``deepsade predict`` and the ONNX graph ``deepsade export`` writes by default for such a model evaluate in
    float64, whose unit roundoff is 2^-29 of float32's (2^-53 against 2^-24): the float32 bound scaled by it
    estimates theirs (not a bound: the scaling of the inputs is already float64 in both), said first when
    that estimate is within the margin, since that is the case most users are in (then without the advice to
    narrow the domain). Both numbers are in network units (scores, or
    targets scaled to their training range). A larger ``--margin`` (twice the bound) is suggested only while the bound is
    small beside that range (``MARGIN_ADVICE_LIMIT``): a margin of the bound's size would leave the outputs no room."""
    units = ("network units: scores, or targets scaled to their training range; a worst case over the whole "
             "domain box, usually far above what a float32 runtime shows")
    # a larger margin is offered only for a small bound: it changes the model and so its bound (a new-user probe
    # took --margin 0.052 for a bound of 0.047 and got a bound of 0.059 at 3x the MSE)
    wider_margin = (f"train with --margin {rounding * 2:.2g} or more (the bound is recomputed on the model that "
                    "trains)" if rounding <= MARGIN_ADVICE_LIMIT else "")
    fix = "narrow the domain" + (f", or {wider_margin}" if wider_margin else "")
    float64 = rounding * 2.0 ** -29
    if float64 <= margin:
        # what most users run is covered: said first and plainly, with no advice that does not apply (two probes
        # read 'narrow the domain' under CERTIFIED as something to do, and it rarely shrinks the bound enough)
        return (f"{FLOAT64_COVERED} (rounding about {float64:.1g}, an estimate, within the margin {margin:g}), so "
                f"their predictions are covered; a float32 runtime is covered only up to {rounding:.3g} per output "
                f"from a rule's boundary ({units})" + (f"; to cover it, {wider_margin}" if wider_margin else ""))
    return (f"on this domain a float32 forward pass may differ from the certified network by up to {rounding:.3g} "
            f"per output and a float64 one by about {float64:.3g} (an estimate; {units}), more than the margin {margin:g}: "
            f"predictions within that distance of a rule's boundary are not covered ({fix})")
