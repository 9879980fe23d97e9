"""Training with score clamps: the base network trains unconstrained through the fixed layer.

The rule is compiled (``score_clamp_rule``), the layer checked once with z3 for every base score (so a rule
whose clauses fight each other is refused before training), then the network is trained end to end like
HardNet-Aff (``hardnet.fit_constructed``: mini-batch SGD on the data loss of the clamped scores, best epoch
on validation) and certified exactly on the stored network (``score_clamp_certificate``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from deepsade.constructions.recognise import NotApplicable
from deepsade.constructions.score_clamp import ScoreClampedMLP
from deepsade.constructions.score_clamp_certificate import program_holds
from deepsade.constructions.score_clamp_rule import (
    SCORE_CLAMPS,
    ScoreProgram,
    compile_score_program,
    with_unlowered_anchors,
)
from deepsade.spec import Spec

# share of the base scores' data loss added during training (a clamped score passes no gradient back to ``f``):
# off. Measured with 1.0 against 0 on the price benchmark, seeds 1-3: wine 0.947 vs 0.985 accuracy (ffn 0.985),
# credit 0.828 vs 0.830, pump_alarms 0.929 vs 0.928 per-label accuracy, breast_cancer 0.965 vs 0.949
BASE_LOSS_WEIGHT = 0.0

if TYPE_CHECKING:  # pragma: no cover
    from deepsade.artifact import ModelArtifact


def score_program(spec: Spec, low: Sequence[Fraction], high: Sequence[Fraction], task: str,
                  output_margin: float) -> ScoreProgram:
    """The score clamps for the rule, proven by z3 to keep every assert for every base score; NotApplicable
    (one line) otherwise."""
    program = compile_score_program(spec, low, high, task, output_margin)
    failing = program_holds(program, spec, list(low), list(high), output_margin)
    if failing:  # exclusions that name each other's classes: anchor them on the classes no clause lowers
        narrowed = with_unlowered_anchors(program)
        if narrowed != program and not program_holds(narrowed, spec, list(low), list(high), output_margin):
            return narrowed
    if failing:  # heads that one clause raises and another lowers: clamp scores moved one way only, first
        steered = compile_score_program(spec, low, high, task, output_margin, one_direction_first=True)
        if steered != program and not program_holds(steered, spec, list(low), list(high), output_margin):
            return steered
    if failing:
        raise NotApplicable(f"{SCORE_CLAMPS} do not keep assert(s) {', '.join(str(i + 1) for i in failing)} for "
                            "every score (where premises overlap, or meet at a boundary within a gate's band, a later "
                            "clamp can undo an earlier one: the clauses contradict each other there, or each moves "
                            "a score the other compares with)")
    return program


def recognise_score_clamps(spec: Spec, box: tuple[Sequence[Fraction], Sequence[Fraction]], task: str,
                           output_margin: float = 1e-4) -> tuple[bool, str]:
    """Whether ``--method scoreclamp`` can guarantee the rule, and how (or why not), in one line (``advise``)."""
    try:
        program = score_program(spec, *box, task, output_margin)
    except NotApplicable as exc:
        return False, str(exc)
    return True, f"by construction, exactly certified for every base score: {program.describe(spec.output_names)}"


def train_score_clamps(job: Any) -> ModelArtifact:
    """Score clamps for every assert, the base trained through them; exact certificate."""
    from deepsade.constructions.hardnet import fit_constructed

    start = time.perf_counter()
    spec, train, settings = job.spec, job.train, job.settings
    low, high = train.domain.scaled_exact(train.encoding)
    program = score_program(spec, low, high, train.encoding.task, settings.output_margin)
    torch.manual_seed(settings.seed)
    model = ScoreClampedMLP(len(spec.input_names), settings.hidden, len(spec.output_names), spec.mapped_features,
                            program)
    return fit_constructed(job, model, start, {"construction": program.describe(spec.output_names),
                                               "base_loss_weight": BASE_LOSS_WEIGHT},
                           base_loss_weight=BASE_LOSS_WEIGHT, refit_base=True, refit_each_epoch=True,
                           rule_labelled=True)
