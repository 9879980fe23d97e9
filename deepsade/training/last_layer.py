"""The last-layer step (DESIGN.md step 4): move the last layer only to weights that satisfy the translated
constraint: line search, else the projection onto the constraint, else MaxSMT with CEGIS rounds, else a
restart with flipped gradient signs. Also the first weights (DESIGN.md step 5)."""

from __future__ import annotations

import copy
import time
from enum import Enum
from fractions import Fraction

import numpy as np
import torch
import z3

from deepsade.bounds import latent_box, latent_boxes
from deepsade.encoding.base import LatentBoxes, Margins, Warmup
from deepsade.encoding.exact import UNKNOWN, find_counterexample, point_constraint
from deepsade.encoding.point_projection import NotLinearAtPoint, project_by_points
from deepsade.losses import data_loss
from deepsade.maxsmt import model_values, solve_maxsmt
from deepsade.network import SkipMLP
from deepsade.training.settings import EpochStats, NoModelExists


class NoLastLayer(Enum):
    """Why ``solve_last_layer`` returned no weights."""

    NOT_FOUND = "not found"  # no verified weights within the time and rounds (or z3 said unknown)
    INFEASIBLE = "infeasible"  # the hard part is unsatisfiable without any CEGIS point: no model at all


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


def _pair(box) -> tuple:
    """Arguments for ``LatentBoxes.coerce``: a ``LatentBoxes`` alone, or a (low, high) box."""
    return (box,) if isinstance(box, LatentBoxes) else tuple(box)


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


def constant_outputs(task: str, targets: np.ndarray, n_out: int) -> list[np.ndarray]:
    """Constant outputs worth trying as a first last layer: the targets' deciles (regression, the same decile for
    every output), then values ever further below and above their range (a rule may leave room only outside the
    data's range somewhere in the box: a child of 110 kg may get less per kg than any row did); each class on top
    (multiclass); every label off / on (binary, multi-label)."""
    if task == "regression":
        table = targets.reshape(len(targets), -1)
        low, high = table.min(axis=0), table.max(axis=0)
        span = np.maximum(high - low, 1e-6)
        beyond = [edge + sign * k * span for k in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
                  for edge, sign in ((low, -1.0), (high, 1.0))]
        return [np.quantile(table, q, axis=0) for q in np.linspace(0, 1, 11)] + [np.zeros(n_out)] + beyond
    if task == "multiclass":
        return [np.where(np.arange(n_out) == k, 1.0, -1.0) for k in range(n_out)]
    return [np.full(n_out, -1.0), np.full(n_out, 1.0)]


class LastLayerStep:
    """The last-layer half of ``DeepSaDeTrainer`` (a mixin over its model, encoder and settings)."""

    # CEGIS points kept (oldest dropped first): each is a constraint in every later solver call, so an
    # unbounded list would make a long run slower and bigger; the exact check still guards every step.
    max_cegis_points = 500

    @property
    def margins(self) -> Margins:
        return Margins(self.solve_margin, self.check_margin)

    def box(self) -> LatentBoxes:
        """The latent boxes of the current hidden layers: over the domain, and (``region_boxes``) per assert
        over its premise's input region (one interval propagation per distinct region)."""
        if not self.settings.uses_region_boxes:
            return LatentBoxes(latent_box(self.model, self.domain_low, self.domain_high))
        inputs, region_of = self._region_input_boxes()
        found = latent_boxes(self.model, [(self.domain_low, self.domain_high), *inputs])
        return LatentBoxes(found[0], {index: found[1 + k] for index, k in region_of.items()})

    def _region_input_boxes(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[int, int]]:
        """The distinct premise regions' input boxes in floats, and per assert the position of its region
        among them; read once from ``self.regions`` (fixed for the run). Asserts whose region does not narrow
        the domain, or is empty (the premise never holds: any box is sound), keep the whole one."""
        cached = getattr(self, "_region_plan", None)
        if cached is None or cached[0] is not self.regions:
            inputs: list[tuple[np.ndarray, np.ndarray]] = []
            position: dict[tuple, int] = {}
            region_of: dict[int, int] = {}
            for index, region in self.regions.items():
                if not region.restricts or region.empty:
                    continue
                key = (region.low, region.high)
                if key not in position:
                    position[key] = len(inputs)
                    inputs.append((np.array([float(v) for v in region.low]),
                                   np.array([float(v) for v in region.high])))
                region_of[index] = position[key]
            cached = self._region_plan = (self.regions, inputs, region_of)
        return cached[1], cached[2]

    def satisfied(self, weights: np.ndarray, biases: np.ndarray, box) -> bool:
        """Whether these last-layer weights satisfy every assert over its box (exactly, or not proven)."""
        return bool(self.encoder.check_candidates(weights[None], biases[None], LatentBoxes.coerce(*_pair(box)),
                                                  None, self.check_margin, self.settings.solver_timeout)[0])

    def _cegis_constraints(self, boxes: LatentBoxes) -> list[z3.BoolRef]:
        """Point constraints, each point clipped into its assert's current box (still a necessary condition
        there)."""
        constraints = []
        asserts = {a.index: a for a in self.spec.asserts}
        for index, point, perturbation in self.cegis_points:
            low, high = boxes.for_assert(index)
            clipped = [min(max(p, Fraction(float(lo))), Fraction(float(hi))) for p, lo, hi in zip(point, low, high)]
            constraints.append(point_constraint(asserts[index], self.layout, clipped, perturbation,
                                                self.weights_vars, self.bias_vars))
        return constraints

    def solve_last_layer(self, box, hard_extra: list[z3.BoolRef], soft: list[z3.BoolRef], method: str,
                         stats: EpochStats | None) -> tuple[np.ndarray, np.ndarray] | NoLastLayer:
        """MaxSMT (or SAT) for the last layer with CEGIS rounds: weights that pass the exact check, else why not."""
        boxes = LatentBoxes.coerce(*_pair(box))
        try:
            base = self.encoder.hard_constraints(self.weights_vars, self.bias_vars, boxes, None, self.solve_margin,
                                                 self.settings.solver_timeout)
        except z3.Z3Exception:  # e.g. the qe tactic ran out of time: a failed step, never a success
            return NoLastLayer.NOT_FOUND
        flat_vars = [w for row in self.weights_vars for w in row] + self.bias_vars
        cegis_asserts = self.encoder.point_asserts
        deadline = time.perf_counter() + self.settings.solver_timeout  # one budget for all CEGIS rounds
        for _ in range(max(1, self.settings.cegis_rounds)):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return NoLastLayer.NOT_FOUND
            hard = base + hard_extra + self._cegis_constraints(boxes)
            t0 = time.perf_counter()
            result = solve_maxsmt(hard, soft, method=method, timeout_s=remaining)
            if stats is not None:
                stats.solver_seconds += time.perf_counter() - t0
            if result.status == "unsat" and not self.cegis_points:
                return NoLastLayer.INFEASIBLE
            if not result.has_model:
                return NoLastLayer.NOT_FOUND
            values = np.array([float(v) for v in model_values(result.model, flat_vars)])
            n_w = self.layout.n_out * self.layout.n_latent
            weights = _as_float32(values[:n_w].reshape(self.layout.n_out, self.layout.n_latent))
            biases = _as_float32(values[n_w:])
            if not cegis_asserts:
                return (weights, biases) if self.satisfied(weights, biases, box) else NoLastLayer.NOT_FOUND
            new_points = 0
            for a in cegis_asserts:
                found = find_counterexample(a, self.layout, weights, biases, *boxes.for_assert(a.index),
                                            Fraction(self.check_margin), self.settings.solver_timeout)
                if found is UNKNOWN:
                    return NoLastLayer.NOT_FOUND
                if found is not None:
                    self.cegis_points.append((a.index, found.latent, found.perturbation))
                    new_points += 1
            del self.cegis_points[:-self.max_cegis_points]
            if stats is not None:
                stats.cegis_points += new_points
            if new_points == 0:
                return (weights, biases) if self.satisfied(weights, biases, box) else NoLastLayer.NOT_FOUND
        return NoLastLayer.NOT_FOUND

    def initialise(self) -> None:
        """The first last layer: ``first_feasible``, then (``refit``) the best certified one for the initial
        hidden layers (``LastLayerRefit``)."""
        self.first_feasible()
        if self.settings.uses_refit:
            self.mechanisms.append(self.refit_note("at initialisation", self.refit_last_layer()))

    def first_feasible(self) -> None:
        """Keep He-initialised weights if they already satisfy the constraint, else project them onto it (polyhedral
        rules, sign patterns), else solve for some that do (if z3 cannot decide, for some on the skip coordinates)."""
        box = self.box()
        weights, biases = _last_layer(self.model)
        weights, biases = _as_float32(weights), _as_float32(biases)
        if self.satisfied(weights, biases, box):
            return
        # where the rule is polyhedral, the closest certified weights to the random ones: deterministic, unlike
        # the solver's first model (which depends on z3's state in the process), and no CEGIS for sign patterns
        if self.can_project and self.project_initial(weights, biases, box):
            return
        if self.points_by_lp and self.project_points_step(weights, biases, box, None, (weights, biases)):
            return
        if self.constant_start(box):
            return
        found = self.solve_last_layer(box, [], [], "first-model", None)
        if found is NoLastLayer.NOT_FOUND and self.layout.n_hidden:
            # z3 often cannot decide the whole bilinear problem (the quantified strategy at any real width), but
            # weights that ignore the hidden units leave it only the skip coordinates: a valid first model
            found = self.solve_last_layer(box, self._hidden_weights_zero(), [], "first-model", None)
            if found is NoLastLayer.INFEASIBLE:  # infeasible on that subspace only: says nothing of the whole
                found = NoLastLayer.NOT_FOUND
        if found is NoLastLayer.INFEASIBLE and self.room_without_margin(box):
            raise NoModelExists(
                f"no last-layer weights satisfy the constraints over the domain box with the certificate's margin "
                f"(--margin {self.settings.output_margin:g}, network units): somewhere in the domain the rules leave an "
                "output less room than that (e.g. 0 <= y <= x1 where x1 is near 0); lower --margin, or narrow the "
                "domain with --domain")
        if isinstance(found, NoLastLayer):
            raise NoModelExists(
                "no last-layer weights satisfy the constraints over the domain box: the constraints cannot all "
                "hold on the domain (do they contradict each other?)" if found is NoLastLayer.INFEASIBLE else
                "the solver found no last-layer weights satisfying the constraints within the time limit; "
                "raise --solver-timeout"
            )
        _set_last_layer(self.model, *found)

    def constant_start(self, box) -> bool:
        """A last layer that outputs one constant (every weight 0), the best of a few (quantiles of the targets;
        class scores) that pass the exact check. Where CEGIS from the solver's first model does not converge (a
        product of an input and an output under a premise: every round a new point on the curve), a constant
        output inside the rule often is a valid start; SGD moves on from it. False when none passes."""
        weights = np.zeros((self.layout.n_out, self.layout.n_latent))
        targets = np.asarray(self.data.targets, dtype=np.float64)
        candidates = constant_outputs(self.task, targets, self.layout.n_out)
        passing = [c for c in candidates if self.satisfied(weights, _as_float32(c), box)]
        if not passing:
            return False
        y = torch.as_tensor(np.asarray(self.data.targets))
        losses = [float(data_loss(self.task, torch.as_tensor(_as_float32(c))[None].expand(len(y), -1), y))
                  for c in passing]
        _set_last_layer(self.model, weights, _as_float32(passing[int(np.argmin(losses))]))
        return True

    def _hidden_weights_zero(self) -> list[z3.BoolRef]:
        """Constraints fixing the last layer's weights on the hidden units to 0 (only skip weights and biases free)."""
        return [row[l] == 0 for row in self.weights_vars for l in range(self.layout.n_hidden)]
    def room_without_margin(self, box) -> bool:
        """Whether some last layer satisfies the translated rules with no output margin at all: then an
        infeasible first solve is the margin's doing, not a contradiction between the rules."""
        boxes = LatentBoxes.coerce(*_pair(box))
        try:
            hard = self.encoder.hard_constraints(self.weights_vars, self.bias_vars, boxes, None, Fraction(0),
                                                 self.settings.solver_timeout)
        except z3.Z3Exception:
            return False
        return solve_maxsmt(hard, [], method="first-model", timeout_s=self.settings.solver_timeout).has_model

    def project_initial(self, weights: np.ndarray, biases: np.ndarray, box) -> bool:
        """First weights by projection of the random ones, onto the pieces each strategy picks for a start
        (a sign pattern: the cube that fits the data best); True when they pass the exact check."""
        choices = self.encoder.first_choices(self._warmup, self.margins)
        return self.project_step(weights, biases, box, None, (weights, biases), choices)

    def fitted_cube(self) -> int:
        """The sign-pattern cube the first weights are projected onto (see ``SignPatternStrategy.first_choice``)."""
        return self.encoder.serving("sign-pattern").first_choice(self._warmup, self.margins)

    def _warmup(self) -> Warmup:
        """A copy of the network trained without the constraint for ``cube_warmup_epochs`` epochs (plain SGD,
        same batch size and learning rate), its outputs on the training data and their data loss. The copy is
        dropped: it only decides which piece of a union the constraint starts from."""
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
        return Warmup(outputs, lambda clamped: float(data_loss(self.task, clamped, y)))

    def project_step(self, target_w: np.ndarray, target_b: np.ndarray, box, stats: EpochStats | None,
                     current: tuple[np.ndarray, np.ndarray], choices: dict | None = None) -> bool:
        """The gradient step projected onto the constraint (LP or closed form); kept only if the exact check
        passes."""
        t0 = time.perf_counter()
        found = self.encoder.project((target_w, target_b), box, current, self.margins, choices)
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

    def project_points_step(self, target_w: np.ndarray, target_b: np.ndarray, box, stats: EpochStats | None,
                            current: tuple[np.ndarray, np.ndarray]) -> bool:
        """CEGIS with an LP instead of MaxSMT (``deepsade.encoding.point_projection``): the gradient step
        projected onto the rows of the CEGIS points, refined until the exact check passes. Turned off for the
        run the first time a point leaves an assert no LP can express."""
        t0 = time.perf_counter()

        def counted() -> None:
            if stats is not None:
                stats.cegis_points += 1

        try:
            found = project_by_points(self.encoder, (target_w, target_b), current, LatentBoxes.coerce(*_pair(box)),
                                      self.margins, self.cegis_points, self.settings.cegis_rounds,
                                      self.settings.solver_timeout, counted)
        except NotLinearAtPoint:
            self.points_by_lp = False
            found = None
        del self.cegis_points[:-self.max_cegis_points]
        if found is not None:
            _set_last_layer(self.model, *found)
        if stats is not None:
            stats.projection_hits += found is not None
            stats.check_seconds += time.perf_counter() - t0
        return found is not None

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
        # with the projection to fall back on, the line search uses closed forms only (no z3 per candidate);
        # the LP of the CEGIS points returns the whole step itself when it is feasible: no line search then
        ok = self.encoder.check_candidates(candidates_w, candidates_b, box, None, self.check_margin,
                                           s.solver_timeout, sufficient_only=self.can_project
                                           ) if s.line_search_steps and not self.points_by_lp else np.zeros(0, bool)
        stats.check_seconds += time.perf_counter() - t0
        if ok.any():
            first = int(np.argmax(ok))
            _set_last_layer(self.model, candidates_w[first], candidates_b[first])
            stats.line_search_hits += 1
            return True
        if self.can_project and self.project_step(candidates_w[0], candidates_b[0], box, stats,
                                                  (_as_float32(weights), _as_float32(biases))):
            return True
        if self.points_by_lp and self.project_points_step(candidates_w[0], candidates_b[0], box, stats,
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
        if not isinstance(found, NoLastLayer):
            _set_last_layer(self.model, *found)
            stats.maxsmt_successes += 1
            return True
        stats.restarts += 1
        self.restart_next = True
        # the current weights may still satisfy the constraint on the new box (then the snapshot is valid)
        return self.satisfied(_as_float32(weights), _as_float32(biases), box)
