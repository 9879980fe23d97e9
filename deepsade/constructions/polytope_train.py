"""Training with sequential clamps: alone when every assert is a polytope, with DeepSaDe for the rest otherwise.

- Every assert is a polytope with input-affine bounds: the base network is trained end to end through the
  fixed clamps (``hardnet.fit_constructed``, as HardNet-Aff), no solver runs during training.
- Some asserts are not (premises, disjunctions, nonlinear terms): DeepSaDe trains the base network on those,
  each strengthened with the tightened polytope (``polytope.strengthened_spec``); the clamps are then
  appended to the trained base. In both cases the certificate is the exact check of the original rule on
  the whole stored network (``polytope_certificate``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch

from deepsade.constructions.exact_equalities import for_clamps
from deepsade.constructions.hardnet import SLACK_FACTOR, fit_constructed
from deepsade.constructions.polytope import (
    no_polytope_reason,
    polytope_projection,
    split_asserts,
    strengthened_spec,
)
from deepsade.constructions.ratio_bound import BoundUnit
from deepsade.constructions.recognise import NotApplicable
from deepsade.constructions.sequential_clamp import SequentiallyClampedMLP

# share of the base output's data loss added during training: a clamped output passes no gradient back
# (friedman, seed 1: MSE 2.71 with 1.0, 5.72 with 0.1 and 5.71 without; ffn 3.9)
BASE_LOSS_WEIGHT = 1.0

if TYPE_CHECKING:  # pragma: no cover
    from deepsade.artifact import ModelArtifact


def describe(n_rows: int, model: SequentiallyClampedMLP, constructible: tuple[int, ...], remaining: tuple[int, ...],
             gated: tuple[int, ...] = (), units: Sequence = ()) -> str:
    """One line: which asserts the clamps enforce, how big the layer is, and what DeepSaDe keeps (``units``: the
    ratio bounds' units, ``ratio_bound.BoundUnit``)."""
    taken = ", ".join(str(i + 1) for i in constructible)
    kept = (f"; DeepSaDe trains assert(s) {', '.join(str(i + 1) for i in remaining)}, each strengthened with the "
            "polytope on its premise region" if remaining else "")
    gates = (f" (assert(s) {', '.join(str(i + 1) for i in gated)} through premise gates)" if gated else "")
    ratio = [u.describe() for u in units if isinstance(u, BoundUnit)]
    gates += f" ({'; '.join(ratio)})" if ratio else ""
    return (f"sequential clamps for assert(s) {taken}{gates}: {n_rows} row(s), {len(model.layer_sizes)} ReLU layer(s) of "
            f"{max(model.layer_sizes, default=0)} unit(s) at most{kept}")


def train_polytope(job: Any) -> ModelArtifact:
    """Sequential clamps for the polytope asserts, DeepSaDe (strengthened) for the others; exact certificate."""
    start = time.perf_counter()
    job = _with_exact_equalities(job)
    spec, train, settings = job.spec, job.train, job.settings
    low, high = train.domain.scaled_exact(train.encoding)
    split = split_asserts(spec, low, high)
    if not split.constructible and not split.gated:
        raise NotApplicable(no_polytope_reason(split))
    slack = Fraction(SLACK_FACTOR * settings.output_margin)
    rows, projection, gates, split = polytope_projection(spec, split, low, high, slack, train.encoding)
    n_in, n_out = len(spec.input_names), len(spec.output_names)
    if not split.remaining:
        torch.manual_seed(settings.seed)
        model = SequentiallyClampedMLP.for_projection(n_in, settings.hidden, n_out, spec.mapped_features, projection,
                                                      gates)
        return fit_constructed(job, model, start, {
            "construction": describe(len(rows), model, split.constructible + split.gated, split.remaining, split.gated,
                                     gates),
            "slack_factor": SLACK_FACTOR, "base_loss_weight": BASE_LOSS_WEIGHT},
            base_loss_weight=BASE_LOSS_WEIGHT, refit_base=True)
    return _with_deepsade(job, split, rows, projection, start)


def _with_exact_equalities(job: Any) -> Any:
    """The job in the output scaling that makes the rule's equalities on outputs exact for the clamps
    (``exact_equalities``): the rule read again and the targets encoded again in those units; the job as it is
    when the rule states none (or they cannot be made exact: the split then names the equality)."""
    spec, encoding = for_clamps(job.spec, job.train.encoding)
    if encoding is job.train.encoding:
        return job

    def rescaled(data):
        if data is None:
            return None
        return replace(data, encoding=encoding, targets=encoding.encode_targets(data.frame))

    return replace(job, spec=spec, train=rescaled(job.train), val=rescaled(job.val))


def _with_deepsade(job: Any, split, rows, projection, start: float) -> ModelArtifact:
    from deepsade import artifact as artifact_io
    from deepsade.certify import certify_model
    from deepsade.checkpoint import CheckpointPolicy
    from deepsade.training.loop import DeepSaDeTrainer

    spec, train, val, settings = job.spec, job.train, job.val, job.settings
    strong = strengthened_spec(spec, split, rows, train.encoding)
    trainer = DeepSaDeTrainer(strong, train, settings, progress=job.progress, checkpoint_dir=job.checkpoint_dir,
                              checkpoint_policy=CheckpointPolicy.parse(job.checkpoint_every))
    result = trainer.fit(val, resume=job.resume)
    base = result.model
    model = SequentiallyClampedMLP.for_projection(len(spec.input_names), base.hidden_sizes, len(spec.output_names),
                                                  spec.mapped_features, projection)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("clamp_", "out_")) for k in missing):
        raise RuntimeError(f"the trained base does not fit the clamped network: {missing} {unexpected}")
    certificate = certify_model(model, spec, train.encoding, train.domain, settings.output_margin)
    certificate["strategy"] = {str(split.remaining[i] + 1): k for i, k in trainer.encoder.kinds.items()}
    certificate["constraint_sha256"] = artifact_io.text_sha256(job.constraint_text)
    training = asdict(settings)
    training.update({"method": job.method, "seconds": round(time.perf_counter() - start, 3),
                     "init_seconds": round(result.init_seconds, 3), "best_epoch": result.best_epoch,
                     "construction": describe(len(rows), model, split.constructible, split.remaining),
                     "slack_factor": SLACK_FACTOR, "train_rows": train.n_rows,
                     "val_rows": 0 if val is None else val.n_rows})
    notes = list(spec.notes) + list(result.notes)
    if notes:
        training["notes"] = notes
    if result.mechanisms:
        training["mechanisms"] = list(result.mechanisms)
    return artifact_io.ModelArtifact(
        model=model, encoding=train.encoding, domain=train.domain, constraint_text=job.constraint_text,
        method=job.method, training=training, history=[asdict(h) for h in result.history], certificate=certificate)
