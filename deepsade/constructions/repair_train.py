"""Training with label-set repair: the base network end to end through the fixed repair layer.

No solver runs while training: the layer keeps the rule for any base scores, so the network trains as an
unconstrained one (``hardnet.fit_constructed``), and the certificate checks the stored layer exactly
(``repair_certificate``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from deepsade.constructions.hardnet import SLACK_FACTOR, fit_constructed
from deepsade.constructions.monotone_rule import recognise_monotone
from deepsade.constructions.repair_layer import LabelSetRepairMLP

if TYPE_CHECKING:  # pragma: no cover
    from deepsade.artifact import ModelArtifact

# share of the base scores' own data loss added while training: where the layer lifts a score it passes no
# gradient back to it; the base term keeps every score learning its label
BASE_LOSS_WEIGHT = 1.0


def train_repair(job: Any) -> ModelArtifact:
    """Label-set repair for a monotone rule on the predicted labels; exact certificate."""
    start = time.perf_counter()
    spec, train, settings = job.spec, job.train, job.settings
    rule = recognise_monotone(spec, train.encoding.task)
    level = SLACK_FACTOR * settings.output_margin  # the margin the certificate allows, with room to spare
    torch.manual_seed(settings.seed)
    model = LabelSetRepairMLP(len(spec.input_names), settings.hidden, len(spec.output_names), spec.mapped_features,
                              rule.minimal_sets, level)
    names = [", ".join(spec.output_names[k] for k in s) for s in rule.minimal_sets]
    details = {"construction": f"label-set repair: {len(rule.minimal_sets)} minimal label set(s) of the rule "
                               f"({'; '.join(names[:3])}{'; ...' if len(names) > 3 else ''}), level {model.level:g}",
               "base_loss_weight": BASE_LOSS_WEIGHT}
    return fit_constructed(job, model, start, details, base_loss_weight=BASE_LOSS_WEIGHT, refit_base=True)
