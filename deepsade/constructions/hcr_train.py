"""Training HCR: the layer compiled from the rule and fixed, the base network trained through it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from deepsade.constructions.hardnet import MIXED_NOT_SUPPORTED, SLACK_FACTOR, fit_constructed
from deepsade.constructions.hcr import (
    HyperSphericalMLP,
    chebyshev_centre,
    region_inequalities,
    rounding_bound,
    tightened_region,
)
from deepsade.constructions.recognise import NoRoom, NotApplicable, compile_polytope


def build_hcr(job: Any) -> tuple[HyperSphericalMLP, str]:
    """The untrained HCR network for ``job`` (a ``deepsade.methods.TrainingJob``) and a one-line description;
    NotApplicable (exit 2) with the reason when the rule is not a bounded polytope free of the inputs.

    The region is the rule's, tightened by ``SLACK_FACTOR`` x (margin + the layer's rounding bound) per unit
    of ``|a_i|_1``, so an output moved by the margin, or rounded by float32, still satisfies the rule."""
    spec, train, settings = job.spec, job.train, job.settings
    low, high = train.domain.scaled_exact(train.encoding)
    try:
        polytope = compile_polytope(spec, low, high)
    except NoRoom:
        raise
    except NotApplicable as exc:
        raise NotApplicable(f"{exc}; {MIXED_NOT_SUPPORTED}") from None
    torch.manual_seed(settings.seed)
    n_rows = len(region_inequalities(polytope)[1])
    model = HyperSphericalMLP(len(spec.input_names), settings.hidden, len(spec.output_names), spec.mapped_features,
                              n_rows)
    tightening = SLACK_FACTOR * settings.output_margin
    for _ in range(2):  # the rounding bound depends on the stored region: size it, then store the final one
        matrix, bound = tightened_region(polytope, tightening)
        centre, radius = chebyshev_centre(matrix, bound)
        if radius <= 0:
            raise NoRoom("HCR: the region tightened by the certificate margin has no interior (lower --margin)")
        model.set_region(matrix, bound, centre)
        excess = rounding_bound(model)
        row_norm = np.abs(model.stored()[0]).sum(axis=1)
        tightening = SLACK_FACTOR * (settings.output_margin + float(np.max(excess / row_norm)))
    model.set_region(*tightened_region(polytope, tightening), chebyshev_centre(*tightened_region(polytope,
                                                                                                  tightening))[0])
    description = (f"HCR: a bounded polytope of {n_rows} inequalities on {len(spec.output_names)} output(s), "
                   f"centre = Chebyshev centre (radius {radius:.4g}, scaled units), each bound tightened by "
                   f"{tightening:.3g} x |a_i|_1")
    return model, description


def train_hcr(job: Any) -> Any:
    """HCR: train the base network through the layer (SGD on the data loss), then write its certificate."""
    start = time.perf_counter()
    model, description = build_hcr(job)
    return fit_constructed(job, model, start, {"construction": description})
