"""The DeepSaDe training loop (DESIGN.md step 4): SGD on the hidden layers, and a last layer that is
moved only to weights satisfying the translated constraint (line search, else MaxSMT, else restart)."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import z3

from deepsade import checkpoint
from deepsade.bounds import latent_box
from deepsade.data import TabularData
from deepsade.encode import (
    LatentLayout,
    dual_satisfied,
    dual_worst_case,
    find_counterexample,
    point_constraint,
    weight_variables,
)
from deepsade.errors import UserInputError
from deepsade.losses import data_loss
from deepsade.maxsmt import model_values, solve_maxsmt
from deepsade.network import SkipMLP
from deepsade.projection import project_last_layer
from deepsade.sign_pattern import ABOVE, BELOW
from deepsade.spec import Spec
from deepsade.strategy import CEGIS_KINDS, Encoder


class NoModelExists(UserInputError):
    """No last-layer weights satisfy the constraints over the domain (they may contradict each other)."""


@dataclass
class TrainSettings:
    """Hyper-parameters of a DeepSaDe run (defaults: the paper's UC2 settings)."""

    hidden: tuple[int, ...] = (50, 30, 10)
    epochs: int = 50
    batch_size: int = 5
    lr: float = 0.1
    max_step: float = 0.1
    margins: tuple[float, ...] = (0.0, 1.0, 2.0)  # soft-clause margins (x max|label| for regression)
    line_search_steps: int = 5
    projection: bool = True  # project the gradient step onto the constraint (LP) before MaxSMT, where exact
    strategy: str = "auto"
    maxsmt: str = "fu-malik"
    solver_timeout: float = 10.0
    output_margin: float = 1e-4  # the certificate's slack on every output (network units)
    val_fraction: float = 0.1
    cegis_rounds: int = 25
    cube_warmup_epochs: int = 2  # sign patterns: epochs of an unconstrained copy that picks the first cube
    seed: int = 0
    threads: int = 1


@dataclass
class EpochStats:
    epoch: int
    iterations: int = 0
    line_search_hits: int = 0
    projection_hits: int = 0
    maxsmt_calls: int = 0
    maxsmt_successes: int = 0
    restarts: int = 0
    solver_seconds: float = 0.0
    check_seconds: float = 0.0
    cegis_points: int = 0
    train_loss: float = 0.0
    val_loss: float = float("nan")
    val_violations: int = -1
    seconds: float = 0.0


@dataclass
class TrainResult:
    model: SkipMLP
    history: list[EpochStats]
    best_epoch: int
    seconds: float
    init_seconds: float
    settings: TrainSettings
    notes: list[str] = field(default_factory=list)


def _last_layer(model: SkipMLP) -> tuple[np.ndarray, np.ndarray]:
    return (model.last.weight.detach().to(torch.float64).numpy().copy(),
            model.last.bias.detach().to(torch.float64).numpy().copy())


def _set_last_layer(model: SkipMLP, weights: np.ndarray, biases: np.ndarray) -> None:
    with torch.no_grad():
        model.last.weight.copy_(torch.as_tensor(weights, dtype=torch.float32))
        model.last.bias.copy_(torch.as_tensor(biases, dtype=torch.float32))


def _as_float32(values: np.ndarray) -> np.ndarray:
    """What the weights will be once stored: the trainer checks exactly these."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def output_ranges(latent: np.ndarray, theta_low: np.ndarray, theta_high: np.ndarray, n_out: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest value of each output (batch, n_out) over a box of last-layer weights."""
    n_lat = latent.shape[1]
    w_low, w_high = theta_low[:n_out * n_lat].reshape(n_out, n_lat), theta_high[:n_out * n_lat].reshape(n_out, n_lat)
    b_low, b_high = theta_low[n_out * n_lat:], theta_high[n_out * n_lat:]
    z = latent[:, None, :]
    lowest = np.minimum(w_low[None] * z, w_high[None] * z).sum(axis=2) + b_low
    highest = np.maximum(w_low[None] * z, w_high[None] * z).sum(axis=2) + b_high
    return lowest, highest


def soft_clauses(task: str, latent: np.ndarray, targets: np.ndarray, margins, weights, biases,
                 label_scale: np.ndarray, reachable: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> list[z3.BoolRef]:
    """Per batch instance and margin: 'the prediction is right by this margin', linear in (W, b).

    Regression: |y_ik - t_ik| <= m * max|t_k|. Binary / multi-label: the score has the label's sign
    with magnitude >= m. Multiclass: the true class's score beats every other by m.
    ``reachable`` (bounds on the flattened weights that the hard part imposes) drops clauses no weights
    in those bounds can satisfy: they cannot change the MaxSMT optimum, and each would cost a core."""
    n_out = len(biases)
    if reachable is not None:
        lowest, highest = output_ranges(latent, reachable[0], reachable[1], n_out)
    else:
        lowest = np.full((latent.shape[0], n_out), -np.inf)
        highest = np.full((latent.shape[0], n_out), np.inf)

    def output(i: int, k: int) -> z3.ArithRef:
        terms = [z3.RealVal(float(latent[i, l])) * weights[k][l] for l in range(latent.shape[1]) if latent[i, l] != 0]
        return z3.Sum(terms + [biases[k]]) if terms else biases[k]

    clauses = []
    for i in range(latent.shape[0]):
        outputs = [output(i, k) for k in range(n_out)]
        for m in margins:
            if task == "regression":
                for k in range(n_out):
                    if not (lowest[i, k] <= targets[i, k] + m * label_scale[k] + 1e-12
                            and highest[i, k] >= targets[i, k] - m * label_scale[k] - 1e-12):
                        continue
                    width = z3.RealVal(float(m * label_scale[k]))
                    target = z3.RealVal(float(targets[i, k]))
                    clauses.append(z3.And(outputs[k] - target <= width, target - outputs[k] <= width))
            elif task == "multiclass":
                c = int(targets[i])
                if any(highest[i, c] - lowest[i, k] < m - 1e-12 for k in range(n_out) if k != c):
                    continue
                clauses.append(z3.And(*[outputs[c] - outputs[k] >= m for k in range(n_out) if k != c]))
            else:
                for k in range(n_out):
                    positive = targets[i, k] > 0.5
                    if (highest[i, k] < m - 1e-12) if positive else (lowest[i, k] > -m + 1e-12):
                        continue
                    clauses.append(outputs[k] >= m if positive else outputs[k] <= -m)
    return clauses


@dataclass
class _Loop:
    """Where the loop stands: what a checkpoint holds besides the trainer's model, optimizer and RNGs."""

    best_state: dict
    valid_state: dict  # the last constraint-satisfying snapshot (before the hidden layers' step)
    epoch: int = 1
    position: int = 0  # index into ``order`` of the next batch
    order: torch.Tensor | None = None  # this epoch's permutation (None: not drawn yet)
    stats: EpochStats | None = None
    losses: list[float] = field(default_factory=list)
    history: list[EpochStats] = field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = 0
    iterations: int = 0  # over all epochs
    epoch_seconds: float = 0.0  # spent on this epoch in earlier processes (a resumed run)
    seconds: float = 0.0  # spent on the run in earlier processes
    init_seconds: float = 0.0
    resumed: int = 0


# settings that may differ when a run is resumed: more epochs, other thread count
_RESUMABLE_SETTINGS = {"epochs", "threads"}


class DeepSaDeTrainer:
    """Runs the loop; holds the state (model, optimizer, CEGIS points, statistics).

    With ``checkpoint_dir`` the loop writes checkpoints there (``checkpoint_policy``: when) and turns
    SIGINT / SIGTERM into "write a checkpoint, raise TrainingInterrupted"; ``fit(resume=True)``
    continues from the checkpoint, mid-epoch, with the same RNG states."""

    # CEGIS points kept (oldest dropped first): each is a constraint in every later solver call, so an
    # unbounded list would make a long run slower and bigger; the exact check still guards every step.
    max_cegis_points = 500

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
        self.layout = LatentLayout(settings.hidden[-1], tuple(spec.mapped_features), len(enc.output_names))
        self.encoder = Encoder(spec, self.layout, settings.strategy)
        polyhedral = list(self.encoder.duals.values()) + [alt for form in self.encoder.disjunctive.values()
                                                          for clause in form.clauses for alt in clause]
        self.can_project = (settings.projection and all(d.closed_form for d in polyhedral)
                            and set(self.encoder.kinds.values()) <= {"dual", "dual-or", "sign-pattern"})
        self.domain_low, self.domain_high = train.domain.scaled(enc)
        self.optimizer = torch.optim.SGD(self.model.hidden_parameters(), lr=settings.lr)
        self.weights_vars, self.bias_vars = weight_variables(self.layout)
        self.cegis_points: list[tuple[int, list[Fraction], list[Fraction]]] = []
        # the solver asks for twice the certificate's margin so float32 rounding of its answer stays inside
        self.solve_margin = Fraction(2 * settings.output_margin)
        self.check_margin = settings.output_margin * 1.5
        targets = np.asarray(train.targets, dtype=np.float64)
        self.label_scale = np.abs(targets).max(axis=0) if self.task == "regression" else None
        self.restart_next = False
        self.notes: list[str] = []

    # ---- pieces ---------------------------------------------------------------------------------
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return latent_box(self.model, self.domain_low, self.domain_high)

    def satisfied(self, weights: np.ndarray, biases: np.ndarray, box) -> bool:
        return bool(self.encoder.check_candidates(weights[None], biases[None], box[0], box[1],
                                                  self.check_margin, self.settings.solver_timeout)[0])

    def _cegis_constraints(self, low: np.ndarray, high: np.ndarray) -> list[z3.BoolRef]:
        """Point constraints, each point clipped into the current box (still a necessary condition there)."""
        constraints = []
        asserts = {a.index: a for a in self.spec.asserts}
        for index, point, perturbation in self.cegis_points:
            clipped = [min(max(p, Fraction(float(lo))), Fraction(float(hi))) for p, lo, hi in zip(point, low, high)]
            constraints.append(point_constraint(asserts[index], self.layout, clipped, perturbation,
                                                self.weights_vars, self.bias_vars))
        return constraints

    def solve_last_layer(self, box, hard_extra: list[z3.BoolRef], soft: list[z3.BoolRef], method: str,
                         stats: EpochStats | None) -> tuple[np.ndarray, np.ndarray] | None | str:
        """MaxSMT (or SAT) for the last layer with CEGIS rounds; weights that pass the exact check, else None.

        Returns "unsat" when the hard part is unsatisfiable without CEGIS points (no model at all)."""
        low, high = box
        try:
            base = self.encoder.hard_constraints(self.weights_vars, self.bias_vars, low, high, self.solve_margin,
                                                 self.settings.solver_timeout)
        except z3.Z3Exception:  # e.g. the qe tactic ran out of time: a failed step, never a success
            return None
        flat_vars = [w for row in self.weights_vars for w in row] + self.bias_vars
        cegis_asserts = [a for a in self.spec.asserts if self.encoder.kinds[a.index] in CEGIS_KINDS]
        deadline = time.perf_counter() + self.settings.solver_timeout  # one budget for all CEGIS rounds
        for _ in range(max(1, self.settings.cegis_rounds)):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            hard = base + hard_extra + self._cegis_constraints(low, high)
            t0 = time.perf_counter()
            result = solve_maxsmt(hard, soft, method=method, timeout_s=remaining)
            if stats is not None:
                stats.solver_seconds += time.perf_counter() - t0
            if result.status == "unsat" and not self.cegis_points:
                return "unsat"
            if not result.has_model:
                return None
            values = np.array([float(v) for v in model_values(result.model, flat_vars)])
            n_w = self.layout.n_out * self.layout.n_latent
            weights = _as_float32(values[:n_w].reshape(self.layout.n_out, self.layout.n_latent))
            biases = _as_float32(values[n_w:])
            if not cegis_asserts:
                return (weights, biases) if self.satisfied(weights, biases, box) else None
            new_points = 0
            for a in cegis_asserts:
                found = find_counterexample(a, self.layout, weights, biases, low, high,
                                            Fraction(self.check_margin), self.settings.solver_timeout)
                if found == "unknown":
                    return None
                if found is not None:
                    self.cegis_points.append((a.index, found.latent, found.perturbation))
                    new_points += 1
            del self.cegis_points[:-self.max_cegis_points]
            if stats is not None:
                stats.cegis_points += new_points
            if new_points == 0:
                return (weights, biases) if self.satisfied(weights, biases, box) else None
        return None

    def initialise(self) -> None:
        """Keep He-initialised weights if they already satisfy the constraint, else project them onto it (polyhedral
        rules, sign patterns), else solve for some that do."""
        box = self.box()
        weights, biases = _last_layer(self.model)
        weights, biases = _as_float32(weights), _as_float32(biases)
        if self.satisfied(weights, biases, box):
            return
        # where the rule is polyhedral, the closest certified weights to the random ones: deterministic, unlike
        # the solver's first model (which depends on z3's state in the process), and no CEGIS for sign patterns
        if self.can_project and self.project_initial(weights, biases, box):
            return
        found = self.solve_last_layer(box, [], [], "first-model", None)
        if isinstance(found, str) or found is None:
            raise NoModelExists(
                "no last-layer weights satisfy the constraints over the domain box: the constraints cannot all "
                "hold on the domain (do they contradict each other?)" if found == "unsat" else
                "the solver found no last-layer weights satisfying the constraints within the time limit; "
                "raise --solver-timeout"
            )
        _set_last_layer(self.model, *found)

    def project_initial(self, weights: np.ndarray, biases: np.ndarray, box) -> bool:
        """First weights by projection of the random ones: a sign pattern onto the cube that fits the data
        best (``fitted_cube``), the other duals as in every step; True when they pass the exact check."""
        cube = self.fitted_cube() if self.encoder.sign_pattern is not None else None
        return self.project_step(weights, biases, box, None, (weights, biases), cube)

    def fitted_cube(self) -> int:
        """The sign-pattern cube that costs the data least. A copy of the network trains without the
        constraint for ``cube_warmup_epochs`` epochs (plain SGD, same batch size and learning rate); its
        training outputs are clamped to each cube (fixed bits moved just past their threshold, the least
        change that keeps them on their side) and the cube with the lowest data loss wins. The copy is
        dropped: it only decides which outputs the constraint pins, e.g. which digits UC4 always predicts."""
        pattern = self.encoder.sign_pattern
        s = self.settings
        model = copy.deepcopy(self.model)
        optimizer = torch.optim.SGD(model.parameters(), lr=s.lr)
        x = torch.as_tensor(self.data.inputs, dtype=torch.float32)
        y = torch.as_tensor(np.asarray(self.data.targets))
        order = torch.Generator().manual_seed(s.seed)  # its own stream: the run's RNG states stay untouched
        for _ in range(s.cube_warmup_epochs):
            for batch in torch.randperm(len(x), generator=order).split(s.batch_size):
                optimizer.zero_grad()
                data_loss(self.task, model(x[batch]), y[batch]).backward()
                optimizer.step()
        with torch.no_grad():
            outputs = model(x).double()
        columns = torch.as_tensor(pattern.outputs)
        fixed = outputs[:, columns]
        margin = float(self.solve_margin)
        above = torch.maximum(fixed, torch.as_tensor(pattern.thresholds) + margin)
        below = torch.minimum(fixed, torch.as_tensor(pattern.thresholds) - margin)
        losses = []
        for cube in torch.as_tensor(pattern.cubes):
            clamped = outputs.clone()
            clamped[:, columns] = torch.where(cube == ABOVE, above, torch.where(cube == BELOW, below, fixed))
            losses.append(float(data_loss(self.task, clamped, y)))
        return int(np.argmin(losses))

    def polyhedron(self, weights: np.ndarray, biases: np.ndarray, box, target: tuple[np.ndarray, np.ndarray],
                   cube: int | None = None) -> list:
        """The duals to project onto: every dual assert, per disjunctive clause the alternative the current
        weights satisfy (else the one the step breaks least), and the rows of one sign-pattern cube
        (``cube``, else ``sign_cube``), so the feasible set is one polyhedron."""
        chosen = list(self.encoder.duals.values())
        margin = self.check_margin
        for form in self.encoder.disjunctive.values():
            for clause in form.clauses:
                holds = [bool(dual_satisfied(alt, weights[None], biases[None], box[0], box[1], margin)[0])
                         for alt in clause]
                if any(holds):
                    chosen.append(clause[holds.index(True)])
                else:
                    worst = [float(dual_worst_case(alt, weights[None], biases[None], box[0], box[1]).max())
                             for alt in clause]
                    chosen.append(clause[int(np.argmin(worst))])
        pattern = self.encoder.sign_pattern
        if pattern is not None:
            if cube is None:
                cube = self.sign_cube(weights, biases, box, target)
            chosen += pattern.rows(cube, self.layout.n_out)
        return chosen

    def sign_cube(self, weights: np.ndarray, biases: np.ndarray, box, target: tuple[np.ndarray, np.ndarray],
                  projections=None) -> int:
        """The sign-pattern cube to project onto: of the cubes the current weights keep, the one closest (L1)
        to the target step; when they keep none, the closest of all."""
        pattern = self.encoder.sign_pattern
        if projections is None:
            projections = pattern.side_projections(*target, box[0], box[1], float(self.solve_margin))
        distance = projections[2]
        costs = pattern.cube_costs(distance[0], distance[1])
        status = pattern.status(weights[None], biases[None], box[0], box[1], self.check_margin)
        kept = pattern.matching_cubes(status)[0]
        if kept.any():
            costs = np.where(kept, costs, np.inf)
        return int(np.argmin(costs))

    def project(self, target_w: np.ndarray, target_b: np.ndarray, box, current: tuple[np.ndarray, np.ndarray],
                cube: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The closest weights (L1) to the target in the polyhedron; a sign pattern alone needs no LP: each
        fixed bit's output row is its own knapsack (``SignPattern.side_projections``)."""
        pattern = self.encoder.sign_pattern
        if pattern is not None and not self.encoder.duals and not self.encoder.disjunctive \
                and (box[0] >= 0).all():
            projections = pattern.side_projections(target_w, target_b, box[0], box[1], float(self.solve_margin))
            if cube is None:
                cube = self.sign_cube(*current, box, (target_w, target_b), projections)
            return pattern.apply_cube(cube, target_w, target_b, projections)
        return project_last_layer(self.polyhedron(*current, box, (target_w, target_b), cube), self.layout,
                                  target_w, target_b, box[0], box[1], float(self.solve_margin))

    def project_step(self, target_w: np.ndarray, target_b: np.ndarray, box, stats: EpochStats | None,
                     current: tuple[np.ndarray, np.ndarray], cube: int | None = None) -> bool:
        """The gradient step projected onto the constraint (LP or closed form); kept only if the exact check
        passes."""
        t0 = time.perf_counter()
        found = self.project(target_w, target_b, box, current, cube)
        accepted = False
        if found is not None:
            weights, biases = _as_float32(found[0]), _as_float32(found[1])
            if self.satisfied(weights, biases, box):
                _set_last_layer(self.model, weights, biases)
                accepted = True
        if stats is not None:
            stats.projection_hits += accepted
            stats.check_seconds += time.perf_counter() - t0
        return accepted

    def gradient_bounds(self, weights: np.ndarray, biases: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Box of side max_step around the weights (flattened W then b), on the side the negative gradient
        points to; after a failed step the signs are flipped at random (restart)."""
        signs = np.sign(np.concatenate([grad_w.ravel(), grad_b]))
        if self.restart_next:
            signs = signs * self.rng.choice([-1.0, 1.0], size=signs.shape)
            self.restart_next = False
        current = np.concatenate([weights.ravel(), biases])
        step = self.settings.max_step
        return np.where(signs >= 0, current - step, current), np.where(signs <= 0, current + step, current)

    def gradient_box(self, theta_low: np.ndarray, theta_high: np.ndarray) -> list[z3.BoolRef]:
        """The bounds as z3 constraints on the weight variables."""
        variables = [w for row in self.weights_vars for w in row] + self.bias_vars
        constraints = []
        for var, low, high in zip(variables, theta_low, theta_high):
            constraints += [var >= z3.RealVal(float(low)), var <= z3.RealVal(float(high))]
        return constraints

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
                loop = _Loop(best_state=state, valid_state=copy.deepcopy(state),
                             init_seconds=time.perf_counter() - start)
            self._run(loop, val, interrupted, start)
        self.model.load_state_dict(loop.best_state)
        seconds = loop.seconds + time.perf_counter() - start
        return TrainResult(self.model, loop.history, loop.best_epoch, seconds, loop.init_seconds, self.settings,
                           self.notes)

    def _run(self, loop: _Loop, val: TabularData | None, interrupted: checkpoint.InterruptFlag,
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

    def _step(self, loop: _Loop, x: torch.Tensor, y: torch.Tensor, stats: EpochStats) -> None:
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

    # ---- checkpoints -------------------------------------------------------------------------------
    def _snapshot(self, loop: _Loop) -> dict:
        """The state before an iteration, to undo it if a signal interrupts it (cheap: these nets are small)."""
        return {"model": copy.deepcopy(self.model.state_dict()), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "numpy_rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "restart_next": self.restart_next, "cegis_points": list(self.cegis_points),
                "stats": replace(loop.stats), "n_losses": len(loop.losses), "valid_state": loop.valid_state,
                "position": loop.position, "iterations": loop.iterations}

    def _rollback(self, loop: _Loop, snapshot: dict) -> None:
        self.model.load_state_dict(snapshot["model"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        self.rng.bit_generator.state = snapshot["numpy_rng"]
        torch.set_rng_state(snapshot["torch_rng"])
        self.restart_next, self.cegis_points = snapshot["restart_next"], snapshot["cegis_points"]
        loop.stats, loop.valid_state = snapshot["stats"], snapshot["valid_state"]
        del loop.losses[snapshot["n_losses"]:]
        loop.position, loop.iterations = snapshot["position"], snapshot["iterations"]

    def fingerprints(self, val: TabularData | None) -> dict[str, str]:
        """What a resumed run must share with the one it continues: the data split and the constraint."""
        arrays = [self.data.inputs, np.asarray(self.data.targets)]
        if val is not None:
            arrays += [val.inputs, np.asarray(val.targets)]
        return {"data": checkpoint.array_sha256(*arrays),
                "domain": checkpoint.array_sha256(self.domain_low, self.domain_high),
                "constraint": checkpoint.array_sha256(np.frombuffer(self.spec.source.text.encode(), dtype=np.uint8))}

    def _save(self, loop: _Loop, epoch_seconds: float, seconds: float) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, state in (("model.", self.model.state_dict()), ("valid.", loop.valid_state),
                              ("best.", loop.best_state)):
            tensors.update({prefix + name: value.clone() for name, value in state.items()})
        optimizer = self.optimizer.state_dict()
        optimizer_scalars: dict[str, dict] = {}
        for index, buffers in optimizer["state"].items():
            for name, value in buffers.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{name}"] = value.clone()
                else:
                    optimizer_scalars.setdefault(str(index), {})[name] = value
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["loop.losses"] = torch.tensor(loop.losses, dtype=torch.float64)
        if loop.order is not None:
            tensors["loop.order"] = loop.order.clone()
        payload = {
            "epoch": loop.epoch, "position": loop.position, "iterations": loop.iterations,
            "stats": asdict(loop.stats) if loop.stats is not None else None,
            "history": [asdict(h) for h in loop.history],
            "best_loss": loop.best_loss, "best_epoch": loop.best_epoch,
            "epoch_seconds": epoch_seconds, "seconds": seconds, "init_seconds": loop.init_seconds,
            "resumed": loop.resumed,
            "restart_next": self.restart_next,
            "numpy_rng": self.rng.bit_generator.state,
            "cegis_points": [[index, [str(v) for v in point], [str(v) for v in perturbation]]
                             for index, point, perturbation in self.cegis_points],
            "optimizer_groups": optimizer["param_groups"],
            "optimizer_scalars": optimizer_scalars,
            "settings": asdict(self.settings),
            "fingerprints": self._run_fingerprints,
            "notes": list(self.notes),
        }
        checkpoint.write(self.checkpoint_dir, tensors, payload)

    def _restore(self, val: TabularData | None) -> _Loop:
        """Load the checkpoint into this trainer (refusing one from other data, constraint or settings)."""
        tensors, p = checkpoint.read(self.checkpoint_dir)
        where = f"checkpoint {self.checkpoint_dir}"
        try:
            settings = dict(p["settings"])
            ours = asdict(self.settings)
            differing = [f"{name} ({settings.get(name)!r} there, {ours[name]!r} here)" for name in ours
                         if name not in _RESUMABLE_SETTINGS
                         and _jsonable(settings.get(name)) != _jsonable(ours[name])]
            if differing:
                raise UserInputError(f"{where} was written with other settings: {'; '.join(differing)}. "
                                     "Resume with the same flags as the run it continues")
            mine = self._run_fingerprints
            for key, label in (("data", "data (or validation split)"), ("domain", "domain box"),
                               ("constraint", "constraint")):
                if p["fingerprints"].get(key) != mine[key]:
                    raise UserInputError(f"{where} belongs to a run on other {label}: resume with the same data, "
                                         "constraint and flags, or start a new run")
            completed = int(p["epoch"]) - 1
            if completed > self.settings.epochs:
                raise UserInputError(f"{where} has already completed {completed} epochs; --epochs "
                                     f"{self.settings.epochs} is fewer")

            def group(prefix: str) -> dict[str, torch.Tensor]:
                return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

            self.model.load_state_dict(group("model."))
            optimizer_state: dict = {}
            for key, value in group("optimizer.").items():
                index, name = key.split(".", 1)
                optimizer_state.setdefault(int(index), {})[name] = value
            for index, scalars in p["optimizer_scalars"].items():
                optimizer_state.setdefault(int(index), {}).update(scalars)
            self.optimizer.load_state_dict({"state": optimizer_state, "param_groups": p["optimizer_groups"]})
            torch.set_rng_state(tensors["rng.torch"])
            self.rng.bit_generator.state = p["numpy_rng"]
            self.restart_next = bool(p["restart_next"])
            self.cegis_points = [(int(index), [Fraction(v) for v in point], [Fraction(v) for v in perturbation])
                                 for index, point, perturbation in p["cegis_points"]]
            self.notes = list(p["notes"])
            loop = _Loop(best_state=group("best."), valid_state=group("valid."), epoch=int(p["epoch"]),
                         position=int(p["position"]), order=tensors.get("loop.order"),
                         stats=_epoch_stats(p["stats"]) if p["stats"] is not None else None,
                         losses=tensors["loop.losses"].tolist(),
                         history=[_epoch_stats(h) for h in p["history"]], best_loss=float(p["best_loss"]),
                         best_epoch=int(p["best_epoch"]), iterations=int(p["iterations"]),
                         epoch_seconds=float(p["epoch_seconds"]), seconds=float(p["seconds"]),
                         init_seconds=float(p["init_seconds"]), resumed=int(p["resumed"]) + 1)
        except UserInputError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a checkpoint of another version / network
            raise UserInputError(f"{where} does not fit this run ({type(exc).__name__}: {exc}); "
                                 "start a new run") from None
        self.notes.append(f"resumed from {self.checkpoint_dir} at epoch {loop.epoch}, iteration {loop.iterations}")
        return loop

    def update_last_layer(self, x: torch.Tensor, y: torch.Tensor, stats: EpochStats) -> bool:
        """Line search, else MaxSMT, else schedule a restart. True when the last layer satisfies the constraint."""
        s = self.settings
        weights, biases = _last_layer(self.model)
        grad_w = self.model.last.weight.grad.detach().to(torch.float64).numpy()
        grad_b = self.model.last.bias.grad.detach().to(torch.float64).numpy()
        t0 = time.perf_counter()
        box = self.box()
        fractions = np.arange(s.line_search_steps, 0, -1) / max(1, s.line_search_steps)
        candidates_w = _as_float32(weights[None] - s.lr * fractions[:, None, None] * grad_w[None])
        candidates_b = _as_float32(biases[None] - s.lr * fractions[:, None] * grad_b[None])
        # with the projection to fall back on, the line search uses closed forms only (no z3 per candidate)
        ok = self.encoder.check_candidates(candidates_w, candidates_b, box[0], box[1], self.check_margin,
                                           s.solver_timeout, sufficient_only=self.can_project
                                           ) if s.line_search_steps else np.zeros(0, bool)
        stats.check_seconds += time.perf_counter() - t0
        if ok.any():
            first = int(np.argmax(ok))
            _set_last_layer(self.model, candidates_w[first], candidates_b[first])
            stats.line_search_hits += 1
            return True
        if self.can_project and self.project_step(candidates_w[0], candidates_b[0], box, stats,
                                                  (_as_float32(weights), _as_float32(biases))):
            return True
        stats.maxsmt_calls += 1
        with torch.no_grad():
            latent = self.model.latent(x).to(torch.float64).numpy()
        targets = y.to(torch.float64).numpy()
        if self.task == "multiclass":
            targets = y.numpy()
        theta_low, theta_high = self.gradient_bounds(weights, biases, grad_w, grad_b)
        soft = soft_clauses(self.task, latent, targets, s.margins, self.weights_vars, self.bias_vars, self.label_scale,
                            reachable=(theta_low, theta_high))
        hard_box = self.gradient_box(theta_low, theta_high)
        found = self.solve_last_layer(box, hard_box, soft, s.maxsmt, stats)
        if isinstance(found, tuple):
            _set_last_layer(self.model, *found)
            stats.maxsmt_successes += 1
            return True
        stats.restarts += 1
        self.restart_next = True
        # the current weights may still satisfy the constraint on the new box (then the snapshot is valid)
        return self.satisfied(_as_float32(weights), _as_float32(biases), box)


def settings_dict(settings: TrainSettings) -> dict:
    return asdict(settings)


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


def _jsonable(value):
    """Settings as JSON gives them back (tuples become lists), to compare a checkpoint's with ours."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _epoch_stats(data: dict) -> EpochStats:
    known = {f.name for f in fields(EpochStats)}
    return EpochStats(**{k: v for k, v in data.items() if k in known})
