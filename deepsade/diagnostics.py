"""Why a certified model is as good as it is: which asserts bind, and how wide the latent box is.

The last layer must satisfy each rule for every latent point ``[h; s]`` in the interval box of the
assert's input region, not only for the points the data reach. Two numbers explain most poor models:

- the **width ratio**: per hidden unit of the last hidden layer, the width of the whole-domain latent
  box over the width the training rows actually span (a box 30x wider than the data forces tiny
  weights wherever a rule bounds the outputs);
- each assert's **slack**: how far, in output units, the worst case of its linear rows over its
  latent box stays from the bound (close to the certificate's margin: the assert binds, and it is what
  holds the model back).

Slack is computed for asserts in the closed-form dual fragment (linear conclusions, premises on single
inputs); other asserts are reported without it. Float64 arithmetic: a diagnosis, not a certificate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from deepsade.bounds import latent_box
from deepsade.encoding.dual import dual_worst_case, to_dual
from deepsade.encoding.layout import LatentLayout
from deepsade.network import SkipMLP
from deepsade.regions import input_region
from deepsade.spec import Spec

BINDING_FACTOR = 10.0  # an assert whose slack is within this many margins of its bound binds
WIDE_RATIO = 10.0  # a latent box this many times the data's latent range is "wide"


@dataclass(frozen=True)
class AssertSlack:
    """One assert's distance from its bound (output units), or None outside the dual fragment."""

    assert_number: int  # 1-based, as in the rule file
    slack: float | None
    binds: bool | None


@dataclass(frozen=True)
class Diagnosis:
    median_width_ratio: float | None  # over hidden units the data move (None: no such unit)
    max_width_ratio: float | None
    asserts: tuple[AssertSlack, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Plain sentences for the command line."""
        out = []
        if self.median_width_ratio is not None:
            wide = " (wide: rules that bound outputs over the whole domain cost accuracy)" \
                if self.median_width_ratio >= WIDE_RATIO else ""
            out.append(f"latent box over the domain: {self.median_width_ratio:.3g}x the training rows' latent range "
                       f"(median over hidden units; max {self.max_width_ratio:.3g}x){wide}")
        for entry in self.asserts:
            if entry.slack is None:
                continue
            state = "binds (its worst case sits at the certificate's margin)" if entry.binds else "has room"
            out.append(f"assert {entry.assert_number} {state}: worst-case slack {entry.slack:.3g} (output units)")
        return out


def diagnose(model: SkipMLP, spec: Spec, inputs: np.ndarray, domain_low: np.ndarray, domain_high: np.ndarray,
             margin: float) -> Diagnosis:
    """Width ratio of the latent box and per-assert slack for a trained model (scaled units throughout)."""
    low, high = latent_box(model, domain_low, domain_high)
    n_hidden = model.hidden_sizes[-1]
    with torch.no_grad():
        latent = model.latent(torch.as_tensor(inputs, dtype=torch.float32)).double().numpy()
    data_width = latent[:, :n_hidden].max(axis=0) - latent[:, :n_hidden].min(axis=0)
    moving = data_width > 1e-9
    ratios = (high[:n_hidden] - low[:n_hidden])[moving] / data_width[moving]
    layout = LatentLayout(n_hidden, tuple(spec.mapped_features), model.n_outputs)
    weights = model.last.weight.detach().double().numpy()[None]
    biases = model.last.bias.detach().double().numpy()[None]
    slacks = []
    for a in spec.asserts:
        dual = to_dual(a, layout)
        if dual is None or not dual.closed_form:
            slacks.append(AssertSlack(a.index + 1, None, None))
            continue
        region = input_region(a, domain_low, domain_high)
        if region.empty:
            slacks.append(AssertSlack(a.index + 1, None, None))
            continue
        box = latent_box(model, np.array([float(v) for v in region.low]), np.array([float(v) for v in region.high]))
        worst = dual_worst_case(dual, weights, biases, box[0], box[1])[0]
        scales = np.array([max(float(row.margin_scale()), 1e-12) for row in dual.rows])
        finite = np.isfinite(worst)
        if not finite.any():  # the premise never holds on the box: nothing binds
            slacks.append(AssertSlack(a.index + 1, None, None))
            continue
        slack = float(np.min(-worst[finite] / scales[finite]))
        slacks.append(AssertSlack(a.index + 1, slack, slack <= BINDING_FACTOR * margin))
    return Diagnosis(float(np.median(ratios)) if ratios.size else None,
                     float(np.max(ratios)) if ratios.size else None, tuple(slacks))
