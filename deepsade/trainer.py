"""The DeepSaDe training loop (DESIGN.md step 4): SGD on the hidden layers, and a last layer that is
moved only to weights satisfying the translated constraint (line search, else MaxSMT, else restart)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
import torch
import z3

from deepsade.bounds import latent_box
from deepsade.data import TabularData
from deepsade.encode import Encoder, LatentLayout, find_counterexample, point_constraint, weight_variables
from deepsade.errors import UserInputError
from deepsade.losses import data_loss
from deepsade.maxsmt import model_values, solve_maxsmt
from deepsade.network import SkipMLP
from deepsade.spec import Spec


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
    strategy: str = "auto"
    maxsmt: str = "fu-malik"
    solver_timeout: float = 10.0
    output_margin: float = 1e-4  # the certificate's slack on every output (network units)
    val_fraction: float = 0.1
    cegis_rounds: int = 25
    seed: int = 0
    threads: int = 1


@dataclass
class EpochStats:
    epoch: int
    iterations: int = 0
    line_search_hits: int = 0
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


def soft_clauses(task: str, latent: np.ndarray, targets: np.ndarray, margins, weights, biases,
                 label_scale: np.ndarray) -> list[z3.BoolRef]:
    """Per batch instance and margin: 'the prediction is right by this margin', linear in (W, b).

    Regression: |y_ik - t_ik| <= m * max|t_k|. Binary / multi-label: the score has the label's sign
    with magnitude >= m. Multiclass: the true class's score beats every other by m."""
    n_out = len(biases)

    def output(i: int, k: int) -> z3.ArithRef:
        terms = [z3.RealVal(float(latent[i, l])) * weights[k][l] for l in range(latent.shape[1]) if latent[i, l] != 0]
        return z3.Sum(terms + [biases[k]]) if terms else biases[k]

    clauses = []
    for i in range(latent.shape[0]):
        outputs = [output(i, k) for k in range(n_out)]
        for m in margins:
            if task == "regression":
                for k in range(n_out):
                    width = z3.RealVal(float(m * label_scale[k]))
                    target = z3.RealVal(float(targets[i, k]))
                    clauses.append(z3.And(outputs[k] - target <= width, target - outputs[k] <= width))
            elif task == "multiclass":
                c = int(targets[i])
                clauses.append(z3.And(*[outputs[c] - outputs[k] >= m for k in range(n_out) if k != c]))
            else:
                for k in range(n_out):
                    positive = targets[i, k] > 0.5
                    clauses.append(outputs[k] >= m if positive else outputs[k] <= -m)
    return clauses


class DeepSaDeTrainer:
    """Runs the loop; holds the state (model, optimizer, CEGIS points, statistics)."""

    def __init__(self, spec: Spec, train: TabularData, settings: TrainSettings,
                 progress: Callable[[EpochStats, dict], None] | None = None):
        self.spec, self.data, self.settings = spec, train, settings
        self.progress = progress
        # these networks are tiny: one thread is fastest, and extra threads fight the solver for the cores
        torch.set_num_threads(max(1, settings.threads))
        torch.manual_seed(settings.seed)
        self.rng = np.random.default_rng(settings.seed)
        enc = train.encoding
        self.task = enc.task
        self.model = SkipMLP(len(enc.input_names), settings.hidden, len(enc.output_names), spec.mapped_features)
        self.layout = LatentLayout(settings.hidden[-1], tuple(spec.mapped_features), len(enc.output_names))
        self.encoder = Encoder(spec, self.layout, settings.strategy)
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
        base = self.encoder.hard_constraints(self.weights_vars, self.bias_vars, low, high, self.solve_margin,
                                             self.settings.solver_timeout)
        flat_vars = [w for row in self.weights_vars for w in row] + self.bias_vars
        cegis_asserts = [a for a in self.spec.asserts if self.encoder.kinds[a.index] == "cegis"]
        for _ in range(max(1, self.settings.cegis_rounds)):
            hard = base + hard_extra + self._cegis_constraints(low, high)
            t0 = time.perf_counter()
            result = solve_maxsmt(hard, soft, method=method, timeout_s=self.settings.solver_timeout)
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
            if stats is not None:
                stats.cegis_points += new_points
            if new_points == 0:
                return (weights, biases) if self.satisfied(weights, biases, box) else None
        return None

    def initialise(self) -> None:
        """Keep He-initialised weights if they already satisfy the constraint, else solve for some that do."""
        box = self.box()
        weights, biases = _last_layer(self.model)
        weights, biases = _as_float32(weights), _as_float32(biases)
        if self.satisfied(weights, biases, box):
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

    def gradient_box(self, weights: np.ndarray, biases: np.ndarray, grad_w: np.ndarray, grad_b: np.ndarray
                     ) -> list[z3.BoolRef]:
        """Box of side max_step around the weights, on the side the negative gradient points to."""
        signs = np.sign(np.concatenate([grad_w.ravel(), grad_b]))
        if self.restart_next:
            signs = signs * self.rng.choice([-1.0, 1.0], size=signs.shape)
            self.restart_next = False
        current = np.concatenate([weights.ravel(), biases])
        step = self.settings.max_step
        variables = [w for row in self.weights_vars for w in row] + self.bias_vars
        constraints = []
        for var, value, sign in zip(variables, current, signs):
            low = value - step if sign >= 0 else value
            high = value + step if sign <= 0 else value
            constraints += [var >= z3.RealVal(float(low)), var <= z3.RealVal(float(high))]
        return constraints

    # ---- the loop --------------------------------------------------------------------------------
    def fit(self, val: TabularData | None = None) -> TrainResult:
        s = self.settings
        start = time.perf_counter()
        self.initialise()
        if self.progress is not None:
            self.progress(None, {"total": s.epochs * -(-self.data.n_rows // s.batch_size)})
        init_seconds = time.perf_counter() - start
        x_all = torch.as_tensor(self.data.inputs, dtype=torch.float32)
        y_all = torch.as_tensor(self.data.targets)
        history: list[EpochStats] = []
        best_state, best_loss, best_epoch = copy.deepcopy(self.model.state_dict()), float("inf"), 0
        valid_state = copy.deepcopy(self.model.state_dict())
        for epoch in range(1, s.epochs + 1):
            stats = EpochStats(epoch)
            t_epoch = time.perf_counter()
            order = torch.as_tensor(self.rng.permutation(len(x_all)))
            losses = []
            for start_i in range(0, len(order), s.batch_size):
                batch = order[start_i:start_i + s.batch_size]
                x, y = x_all[batch], y_all[batch]
                stats.iterations += 1
                self.optimizer.zero_grad()
                self.model.last.zero_grad()
                loss = data_loss(self.task, self.model(x), y)
                loss.backward()
                losses.append(float(loss.detach()))
                if self.update_last_layer(x, y, stats):
                    valid_state = copy.deepcopy(self.model.state_dict())
                self.optimizer.step()  # hidden layers only; the last layer moved under the solver's control
                if self.progress is not None:
                    self.progress(stats, {"loss": float(np.mean(losses))})
            stats.train_loss = float(np.mean(losses))
            current_state = copy.deepcopy(self.model.state_dict())
            self.model.load_state_dict(valid_state)  # evaluate the last constraint-satisfying snapshot
            if val is not None and val.n_rows:
                with torch.no_grad():
                    out = self.model(torch.as_tensor(val.inputs, dtype=torch.float32))
                    stats.val_loss = float(data_loss(self.task, out, torch.as_tensor(val.targets)))
            else:
                stats.val_loss = stats.train_loss
            if stats.val_loss < best_loss:
                best_loss, best_state, best_epoch = stats.val_loss, copy.deepcopy(valid_state), epoch
            self.model.load_state_dict(current_state)
            stats.seconds = time.perf_counter() - t_epoch
            history.append(stats)
            if self.progress is not None:
                self.progress(stats, {"epoch_done": True})
        self.model.load_state_dict(best_state)
        return TrainResult(self.model, history, best_epoch, time.perf_counter() - start, init_seconds, s, self.notes)

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
        ok = self.encoder.check_candidates(candidates_w, candidates_b, box[0], box[1], self.check_margin,
                                           s.solver_timeout) if s.line_search_steps else np.zeros(0, bool)
        stats.check_seconds += time.perf_counter() - t0
        if ok.any():
            first = int(np.argmax(ok))
            _set_last_layer(self.model, candidates_w[first], candidates_b[first])
            stats.line_search_hits += 1
            return True
        stats.maxsmt_calls += 1
        with torch.no_grad():
            latent = self.model.latent(x).to(torch.float64).numpy()
        targets = y.to(torch.float64).numpy()
        if self.task == "multiclass":
            targets = y.numpy()
        soft = soft_clauses(self.task, latent, targets, s.margins, self.weights_vars, self.bias_vars, self.label_scale)
        hard_box = self.gradient_box(weights, biases, grad_w, grad_b)
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
