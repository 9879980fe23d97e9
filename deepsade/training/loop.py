"""The DeepSaDe training loop (DESIGN.md step 4): SGD on the hidden layers, and a last layer that is
moved only to weights satisfying the translated constraint (``deepsade.training.last_layer``), with
validation selection, progress and checkpoints (``deepsade.training.state``)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import z3

from deepsade import checkpoint
from deepsade.data import TabularData
from deepsade.encoding import point_projection
from deepsade.encoding.encoder import Encoder
from deepsade.encoding.layout import LatentLayout, weight_variables
from deepsade.errors import UserInputError
from deepsade.gates import GateLayout, freeze_gate_units, plan_gates, with_gates
from deepsade.losses import data_loss
from deepsade.network import SkipMLP
from deepsade.regions import input_regions
from deepsade.spec import Spec
from deepsade.training.last_layer import LastLayerStep
from deepsade.training.refit import LastLayerRefit
from deepsade.training.settings import (
    ADAM_LR,
    OPTIMIZERS,
    EpochStats,
    NoModelExists,
    TrainResult,
    TrainSettings,
)
from deepsade.training.state import ResumableState, TrainState


class DeepSaDeTrainer(LastLayerStep, LastLayerRefit, ResumableState):
    """Runs the loop; holds the state (model, optimizer, CEGIS points, statistics).

    With ``checkpoint_dir`` the loop writes checkpoints there (``checkpoint_policy``: when) and turns
    SIGINT / SIGTERM into "write a checkpoint, raise TrainingInterrupted"; ``fit(resume=True)``
    continues from the checkpoint, mid-epoch, with the same RNG states."""

    def __init__(self, spec: Spec, train: TabularData, settings: TrainSettings,
                 progress: Callable[[EpochStats, dict], None] | None = None,
                 checkpoint_dir: str | Path | None = None,
                 checkpoint_policy: checkpoint.CheckpointPolicy | None = None):
        self.spec, self.data, self.settings = spec, train, settings
        self.progress = progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_policy = checkpoint_policy or checkpoint.CheckpointPolicy()
        # these networks are tiny: one thread is fastest, and extra threads fight the solver for the cores
        torch.set_num_threads(max(1, settings.threads))
        torch.manual_seed(settings.seed)
        self.rng = np.random.default_rng(settings.seed)
        enc = train.encoding
        self.task = enc.task
        self.model = SkipMLP(len(enc.input_names), settings.hidden, len(enc.output_names), spec.mapped_features)
        self.domain_low, self.domain_high = train.domain.scaled(enc)
        self.notes: list[str] = []
        self.mechanisms: list[str] = []
        # Premise regions only when a lever reads them. Reading the rules' numbers makes z3 numerals, and
        # every term z3 makes shifts the ids of later ones, hence its answers: with z3 in the loop
        # (--no-projection) the paper's trainer would no longer solve the queries it solved before.
        uses_regions = settings.uses_region_boxes or settings.uses_gates(narrowing_premise=True)
        self.regions = input_regions(spec, self.domain_low, self.domain_high) if uses_regions else {}
        self.gate_layout = self._add_premise_gates()
        self.layout = LatentLayout(self.model.hidden_sizes[-1], tuple(spec.mapped_features), len(enc.output_names))
        self.encoder = Encoder(spec, self.layout, settings.strategy)
        self._offer_clause_sets()
        self.can_project = settings.projection and self.encoder.can_project
        # CEGIS asserts linear in the outputs at fixed inputs: an LP replaces MaxSMT (off under --paper)
        self.points_by_lp = settings.projection and not settings.paper and point_projection.applies(self.encoder)
        self.optimizer = hidden_optimizer(self.model, settings)
        self.weights_vars, self.bias_vars = weight_variables(self.layout)
        self.cegis_points: list[tuple[int, list[Fraction], list[Fraction]]] = []
        # the solver asks for twice the certificate's margin so float32 rounding of its answer stays inside
        self.solve_margin = Fraction(2 * settings.output_margin)
        self.check_margin = settings.output_margin * 1.5
        targets = np.asarray(train.targets, dtype=np.float64)
        self.label_scale = np.abs(targets).max(axis=0) if self.task == "regression" else None
        self.restart_next = False

    def _offer_clause_sets(self) -> None:
        """Sign patterns: offer the rule's CNF rows beside the cubes where the settings ask for it."""
        strategy = self.encoder.serving("sign-pattern")
        if strategy is None or not self.settings.uses_clause_sets:
            return
        strategy.use_clause_sets = True
        if strategy.use_clause_sets:
            self.mechanisms.append(f"sign pattern: {len(strategy.pattern.cubes)} cube(s) and a clause set of "
                                   f"{len(strategy.pattern.clause_sets[0])} clause row(s)")

    def _add_premise_gates(self) -> GateLayout | None:
        """Widen the network with frozen premise gates where the settings ask for them (``deepsade.gates``)."""
        narrowing = [r for r in self.regions.values() if r.restricts and not r.empty]
        if not self.settings.uses_gates(bool(narrowing)):
            if self.settings.premise_gates and narrowing and len(self.settings.hidden) < 2:
                self.mechanisms.append("premise gates skipped: they need at least two hidden layers")
            return None
        gates = plan_gates(narrowing, self.domain_low, self.domain_high)
        self.model, layout = with_gates(self.model, gates)
        freeze_gate_units(self.model, layout)
        self.mechanisms.append(f"premise gates: {layout.n_gates} gate unit(s) for asserts "
                          f"{', '.join(str(i + 1) for g in gates for i in g.asserts)} (hidden sizes "
                          f"{layout.hidden_sizes}, the gate units frozen)")
        return layout

    # ---- the loop --------------------------------------------------------------------------------
    def fit(self, val: TabularData | None = None, resume: bool = False) -> TrainResult:
        """Train (or, with ``resume``, continue the run in ``checkpoint_dir``); returns the best valid model.

        Raises ``checkpoint.TrainingInterrupted`` after writing a checkpoint when SIGINT / SIGTERM arrive."""
        start = time.perf_counter()
        guard = _solver_interrupts() if self.checkpoint_dir is not None else \
            contextlib.nullcontext(checkpoint.InterruptFlag())
        with guard as interrupted:
            self._run_fingerprints = self.fingerprints(val) if self.checkpoint_dir is not None else {}
            if resume:
                if self.checkpoint_dir is None:
                    raise UserInputError("nothing to resume from: no checkpoint directory given")
                loop = self._restore(val)
            else:
                if self.checkpoint_dir is not None:
                    checkpoint.prepare_directory(self.checkpoint_dir, keep=False)  # fail now, not after hours of training
                try:
                    self.initialise()
                except (NoModelExists, z3.Z3Exception):
                    if interrupted:  # the solver call was cut short by the signal: no verdict on the constraint
                        raise checkpoint.TrainingInterrupted(None, interrupted.signal_number) from None
                    raise
                state = copy.deepcopy(self.model.state_dict())
                loop = TrainState(best_state=state, valid_state=copy.deepcopy(state),
                             init_seconds=time.perf_counter() - start)
            self._run(loop, val, interrupted, start)
        self.model.load_state_dict(loop.best_state)
        if self.settings.uses_refit:
            self.mechanisms.append(self.refit_note("of the final model", self.refit_final(val)))
        seconds = loop.seconds + time.perf_counter() - start
        return TrainResult(self.model, loop.history, loop.best_epoch, seconds, loop.init_seconds, self.settings,
                           self.notes, list(self.mechanisms))

    def _run(self, loop: TrainState, val: TabularData | None, interrupted: checkpoint.InterruptFlag,
             start: float) -> None:
        s = self.settings
        if self.progress is not None:
            self.progress(None, {"total": s.epochs * -(-self.data.n_rows // s.batch_size), "done": loop.iterations})
        x_all = torch.as_tensor(self.data.inputs, dtype=torch.float32)
        y_all = torch.as_tensor(self.data.targets)
        policy = self.checkpoint_policy
        last_iterations, last_time = loop.iterations, time.perf_counter()
        t_epoch = time.perf_counter()

        def save() -> None:
            nonlocal last_iterations, last_time
            if self.checkpoint_dir is not None:
                self._save(loop, loop.epoch_seconds + time.perf_counter() - t_epoch,
                           loop.seconds + time.perf_counter() - start)
            last_iterations, last_time = loop.iterations, time.perf_counter()

        def stop_if_interrupted() -> None:
            if interrupted:
                save()
                raise checkpoint.TrainingInterrupted(self.checkpoint_dir, interrupted.signal_number)

        while loop.epoch <= s.epochs:
            stop_if_interrupted()
            if loop.order is None and patience_ran_out(loop, s.patience):
                break
            t_epoch = time.perf_counter()
            if loop.order is None:
                loop.order = torch.as_tensor(self.rng.permutation(len(x_all)))
                loop.stats, loop.losses, loop.position, loop.epoch_seconds = EpochStats(loop.epoch), [], 0, 0.0
            stats = loop.stats
            while loop.position < len(loop.order):
                stop_if_interrupted()
                before = self._snapshot(loop) if self.checkpoint_dir is not None else None
                batch = loop.order[loop.position:loop.position + s.batch_size]
                try:
                    self._step(loop, x_all[batch], y_all[batch], stats)
                except z3.Z3Exception:
                    if not interrupted:  # not a call we cancelled: a real error
                        raise
                loop.position += s.batch_size
                loop.iterations += 1
                if interrupted:  # a signal during the iteration may have cut a solver call short: undo it all
                    self._rollback(loop, before)
                    stop_if_interrupted()
                if self.progress is not None:
                    self.progress(stats, {"loss": float(np.mean(loop.losses))})
                if loop.position < len(loop.order) and policy.due(loop.iterations - last_iterations,
                                                                  time.perf_counter() - last_time):
                    save()
            stats.train_loss = float(np.mean(loop.losses))
            current_state = copy.deepcopy(self.model.state_dict())
            self.model.load_state_dict(loop.valid_state)  # evaluate the last constraint-satisfying snapshot
            if val is not None and val.n_rows:
                with torch.no_grad():
                    out = self.model(torch.as_tensor(val.inputs, dtype=torch.float32))
                    stats.val_loss = float(data_loss(self.task, out, torch.as_tensor(val.targets)))
            else:
                stats.val_loss = stats.train_loss
            if stats.val_loss < loop.best_loss:
                loop.best_loss, loop.best_state, loop.best_epoch = stats.val_loss, copy.deepcopy(loop.valid_state), \
                    loop.epoch
            self.model.load_state_dict(current_state)
            stats.seconds = loop.epoch_seconds + time.perf_counter() - t_epoch
            loop.history.append(stats)
            loop.epoch, loop.order, loop.stats, loop.losses, loop.position = loop.epoch + 1, None, None, [], 0
            loop.epoch_seconds = 0.0
            t_epoch = time.perf_counter()
            if self.progress is not None:
                self.progress(stats, {"epoch_done": True})
            if policy.per_epoch or policy.due(loop.iterations - last_iterations, time.perf_counter() - last_time):
                save()
        stop_if_interrupted()

    def _step(self, loop: TrainState, x: torch.Tensor, y: torch.Tensor, stats: EpochStats) -> None:
        """One iteration: gradients, the last layer under the solver's control, an SGD step on the rest."""
        stats.iterations += 1
        self.optimizer.zero_grad()
        self.model.last.zero_grad()
        loss = data_loss(self.task, self.model(x), y)
        loss.backward()
        loop.losses.append(float(loss.detach()))
        if self.update_last_layer(x, y, stats):
            loop.valid_state = {name: t.detach().clone() for name, t in self.model.state_dict().items()}
        self.optimizer.step()  # hidden layers only; the last layer moved under the solver's control


def hidden_optimizer(model: SkipMLP, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimiser of the hidden layers (``settings.optimizer``); the last layer is never in it."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.hidden_parameters(), lr=settings.lr)
    if settings.optimizer == "adam":
        return torch.optim.Adam(model.hidden_parameters(), lr=ADAM_LR)
    raise UserInputError(f"unknown optimizer {settings.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def patience_ran_out(loop: TrainState, patience: int) -> bool:
    """Early stopping: ``patience`` (> 0) finished epochs have passed since the best validation loss."""
    return patience > 0 and bool(loop.history) and loop.history[-1].epoch - loop.best_epoch >= patience


@contextlib.contextmanager
def _solver_interrupts():
    """SIGINT / SIGTERM set a flag and cut the running z3 call short. z3 normally catches SIGINT itself
    (cancels the call and swallows the signal, so Ctrl-C would be lost): its ctrl_c handling is off here."""
    z3.set_param("ctrl_c", False)
    try:
        with checkpoint.interrupt_signals(on_signal=z3.main_ctx().interrupt) as flag:
            yield flag
    finally:
        z3.set_param("ctrl_c", True)
