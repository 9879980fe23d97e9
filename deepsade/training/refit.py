"""The last-layer refit: for fixed hidden layers, the best certified last layer as one convex program
(``deepsade.last_layer_solve``), kept only when the trainer's exact check passes.

The trainer refits twice (``TrainSettings.refit``): right after the first feasible last layer, where
projected steps would otherwise stall at a degenerate start (issue 13, failure mode 1), and on the best
model at the end, kept only if the validation loss does not get worse. Refitting every epoch was
measured worse (``results/refit_probe.md``). Rules outside the polyhedral fragment (CEGIS asserts,
premises that couple inputs, too many disjunct / cube choices) are skipped with a note.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from deepsade.last_layer_polyhedron import NotPolyhedral, candidate_polyhedra
from deepsade.last_layer_solve import solve_best_choice
from deepsade.losses import data_loss

REFITTABLE_KINDS = {"dual", "dual-or", "sign-pattern"}
MAX_REFIT_PIECES = 16  # one convex program per piece (``candidate_polyhedra``'s own limit)


@dataclass
class RefitOutcome:
    """What one refit did: ``accepted`` (the model's last layer was replaced), why not, and the losses."""

    accepted: bool
    reason: str
    loss: float = float("nan")
    start_loss: float = float("nan")
    seconds: float = 0.0


class LastLayerRefit:
    """The refit half of ``DeepSaDeTrainer`` (a mixin over its model, encoder, data and checks)."""

    def refit_applicable(self) -> str | None:
        """None when the rule is polyhedral for the refit; else why the refit is skipped."""
        kinds = set(self.encoder.kinds.values())
        if not kinds <= REFITTABLE_KINDS:
            return f"{', '.join(sorted(kinds - REFITTABLE_KINDS))} asserts are not polyhedral"
        if any(not dual.closed_form for dual in self.encoder.duals.values()) or any(
                not form.closed_form for form in self.encoder.disjunctive.values()):
            return "a premise couples several inputs"
        return None

    def refit_sign_pattern(self, boxes):
        """The sign pattern's pieces the refit solves one program each for: all of them when there are at
        most ``MAX_REFIT_PIECES``; else (clause sets offered) the clause set and the cubes the current last
        layer keeps over the box, so a rule with many cubes (UC4: 26) is still refitted."""
        pattern = self.encoder.sign_pattern
        if pattern is None or pattern.n_choices <= MAX_REFIT_PIECES or not pattern.clause_sets:
            return pattern
        weights = self.model.last.weight.detach().double().numpy()[None]
        biases = self.model.last.bias.detach().double().numpy()[None]
        status = pattern.status(weights, biases, *boxes.whole, self.check_margin)
        kept = list(range(len(pattern.cubes), pattern.n_choices))
        kept += [int(c) for c in np.nonzero(pattern.matching_cubes(status)[0])[0]]
        return pattern.restricted(kept[:MAX_REFIT_PIECES])

    def refit_last_layer(self) -> RefitOutcome:
        """Re-solve the last layer on the training rows (hidden layers and latent boxes as they are); the
        model's last layer is replaced only when the answer passes the exact check."""
        t0 = time.perf_counter()
        why_not = self.refit_applicable()
        if why_not is not None:
            return RefitOutcome(False, f"not applicable: {why_not}")
        boxes = self.box()
        encoder = self.encoder
        try:
            polyhedra = candidate_polyhedra(list(encoder.duals.values()), list(encoder.disjunctive.values()),
                                            self.refit_sign_pattern(boxes), self.layout.n_out, self.layout.n_latent,
                                            boxes, None, float(self.solve_margin))
        except NotPolyhedral as exc:
            return RefitOutcome(False, f"not applicable: {exc}")
        with torch.no_grad():
            latent = self.model.latent(torch.as_tensor(self.data.inputs, dtype=torch.float32)).double().numpy()
        start = (self.model.last.weight.detach().double().numpy(), self.model.last.bias.detach().double().numpy())
        fit = solve_best_choice(latent, np.asarray(self.data.targets), self.task, polyhedra, start=start,
                                seed=self.settings.seed)
        if fit is None and self.encoder.sign_pattern is not None and self.encoder.sign_pattern.clause_sets:
            # a clause row sums several outputs over a wide box: rounding the answer to float32 can undo the
            # solver's default 1e-6 of room, so aim further inside, by the rounding such a box can cause
            low, high = boxes.whole
            room = float(np.finfo(np.float32).eps) * self.layout.n_latent * max(1.0, float(np.abs(high).max(initial=1.0)))
            fit = solve_best_choice(latent, np.asarray(self.data.targets), self.task, polyhedra, start=start,
                                    seed=self.settings.seed, interior=room)
        seconds = time.perf_counter() - t0
        if fit is None:
            return RefitOutcome(False, "the solver found no last layer inside the constraint", seconds=seconds)
        if fit.status == "start":
            return RefitOutcome(False, "no better last layer found", fit.loss, fit.start_loss, seconds)
        if not self.satisfied(fit.weights, fit.biases, boxes):
            return RefitOutcome(False, "the solved last layer failed the exact check", fit.loss, fit.start_loss,
                                seconds)
        with torch.no_grad():
            self.model.last.weight.copy_(torch.as_tensor(fit.weights, dtype=torch.float32))
            self.model.last.bias.copy_(torch.as_tensor(fit.biases, dtype=torch.float32))
        return RefitOutcome(True, fit.status, fit.loss, fit.start_loss, time.perf_counter() - t0)

    def refit_final(self, val) -> RefitOutcome:
        """The refit of the selected model, kept only if its validation loss (training loss without a
        validation split) does not get worse."""
        rows = val if val is not None and val.n_rows else self.data
        x = torch.as_tensor(rows.inputs, dtype=torch.float32)
        y = torch.as_tensor(np.asarray(rows.targets))

        def loss() -> float:
            with torch.no_grad():
                return float(data_loss(self.task, self.model(x), y))

        before_loss = loss()
        before = (self.model.last.weight.detach().clone(), self.model.last.bias.detach().clone())
        outcome = self.refit_last_layer()
        if outcome.accepted:
            after_loss = loss()
            if after_loss > before_loss:
                with torch.no_grad():
                    self.model.last.weight.copy_(before[0])
                    self.model.last.bias.copy_(before[1])
                outcome = RefitOutcome(False, f"validation loss would rise ({before_loss:.4g} -> {after_loss:.4g})",
                                       outcome.loss, outcome.start_loss, outcome.seconds)
            else:
                outcome.reason += f"; validation loss {before_loss:.4g} -> {after_loss:.4g}"
        return outcome

    def refit_note(self, when: str, outcome: RefitOutcome) -> str:
        """One line for the train result's ``mechanisms``."""
        state = "accepted" if outcome.accepted else "skipped"
        losses = (f" (train loss {outcome.start_loss:.4g} -> {outcome.loss:.4g})"
                  if np.isfinite(outcome.loss) and np.isfinite(outcome.start_loss) else "")
        return f"last-layer refit {when}: {state}, {outcome.reason}{losses}, {outcome.seconds:.2f} s"
