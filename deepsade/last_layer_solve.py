"""The best certified last layer for fixed hidden layers, as one convex program.

With the hidden layers fixed, the latent box ``B`` and the training rows' latent vectors ``z`` are fixed
too. For rules in the closed-form dual fragment the last layers that satisfy the translated rule over
``B`` form a polyhedron (``deepsade.last_layer_polyhedron``). Minimising the data loss over it (MSE,
logistic, softmax cross-entropy, plus a small L2 term on ``W``) is a convex program whose optimum is the
best certified last layer for these hidden layers: projected SGD can stall far from it (issue 13, failure
mode 1).

Everything here works on plain arrays (latent rows, targets, the polyhedron's rows) so that a trainer
can call it wherever it holds the hidden layers fixed. Nothing here certifies: the answer is rounded to
float32 and kept only if the float worst case over the box is inside the polyhedron the caller gave
(built with the caller's solver margin); the caller re-checks it with its own exact check. Rules that are
unions of polyhedra get one program per choice and the best answer wins (``solve_best_choice``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, minimize
from scipy.sparse import csr_matrix
from scipy.special import expit

from deepsade.last_layer_polyhedron import WorstCaseRows

TASKS = ("regression", "binary", "multilabel", "multiclass")
SOLVERS = ("auto", "slsqp", "trust-constr", "clarabel", "scs", "osqp", "highs")
QP_ONLY_SOLVERS = ("osqp", "highs")  # quadratic objectives only: regression


# ---- the data loss ----------------------------------------------------------------------------------

class _Loss:
    """Data loss of a last layer ``Theta = [W | b]`` (n_out, L + 1) on fixed latent rows, with its gradient;
    the same reductions as ``deepsade.losses.data_loss`` (means over rows, and outputs where it averages)."""

    def __init__(self, latent: np.ndarray, targets: np.ndarray, task: str, l2: float):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        self.task, self.l2 = task, l2
        n = latent.shape[0]
        design = np.hstack([np.asarray(latent, dtype=np.float64), np.ones((n, 1))])
        self.n_rows = n
        if task == "regression":
            # ||design theta - t||^2 = ||R theta - Q^T t||^2 + ||t||^2 - ||Q^T t||^2: the rows collapse
            t = np.asarray(targets, dtype=np.float64).reshape(n, -1)
            q, self.r = np.linalg.qr(design)
            self.qt = q.T @ t
            self.rest = float((t ** 2).sum() - (self.qt ** 2).sum())
            self.n_out = t.shape[1]
        elif task == "multiclass":
            self.design = design
            self.labels = np.asarray(targets).reshape(-1).astype(np.int64)
        else:
            self.design = design
            self.t = np.asarray(targets, dtype=np.float64).reshape(n, -1)
            self.n_out = self.t.shape[1]

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss (data + l2/2 |W|^2) and its gradient with respect to ``Theta``."""
        if self.task == "regression":
            residual = self.r @ theta.T - self.qt  # (L + 1, n_out)
            scale = self.n_rows * self.n_out
            value = float((residual ** 2).sum() + self.rest) / scale
            gradient = (2.0 / scale) * (self.r.T @ residual).T
        elif self.task == "multiclass":
            scores = self.design @ theta.T
            shifted = scores - scores.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(shifted).sum(axis=1))
            rows = np.arange(self.n_rows)
            value = float((log_norm - shifted[rows, self.labels]).mean())
            probabilities = np.exp(shifted - log_norm[:, None])
            probabilities[rows, self.labels] -= 1.0
            gradient = probabilities.T @ self.design / self.n_rows
        else:
            scores = self.design @ theta.T
            scale = self.n_rows * self.n_out
            value = float((np.logaddexp(0.0, scores) - self.t * scores).sum() / scale)
            gradient = ((expit(scores) - self.t).T @ self.design) / scale
        weights = theta[:, :-1]
        value += 0.5 * self.l2 * float((weights ** 2).sum())
        gradient = gradient.copy()
        gradient[:, :-1] += self.l2 * weights
        return value, gradient

    def value(self, weights: np.ndarray, biases: np.ndarray) -> float:
        return self.value_and_gradient(np.hstack([weights, np.asarray(biases).reshape(-1, 1)]))[0]


def _theta(x: np.ndarray, n_out: int, n_lat: int) -> np.ndarray:
    """``[W | b]`` from the flat vector ``[W (row-major), b, aux]``."""
    n_w = n_out * n_lat
    return np.hstack([x[:n_w].reshape(n_out, n_lat), x[n_w:n_w + n_out, None]])


# ---- solvers ----------------------------------------------------------------------------------------

def _solve_scipy(loss: _Loss, matrix: csr_matrix, upper: np.ndarray, x0: np.ndarray, n_out: int, n_lat: int,
                 method: str, max_iterations: int) -> np.ndarray | None:
    n_w = n_out * n_lat

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = loss.value_and_gradient(_theta(x, n_out, n_lat))
        full = np.zeros_like(x)
        full[:n_w] = gradient[:, :-1].ravel()
        full[n_w:n_w + n_out] = gradient[:, -1]
        return value, full

    if method == "slsqp":
        dense = matrix.toarray()
        constraints = [{"type": "ineq", "fun": lambda x: upper - dense @ x, "jac": lambda x: -dense}]
        result = minimize(objective, x0, jac=True, method="SLSQP", constraints=constraints,
                          options={"maxiter": max_iterations, "ftol": 1e-10})
    else:
        constraint = LinearConstraint(matrix, -np.inf, upper)
        result = minimize(objective, x0, jac=True, method="trust-constr", constraints=[constraint],
                          bounds=Bounds(-np.inf, np.inf), options={"maxiter": max_iterations, "gtol": 1e-8,
                                                                    "xtol": 1e-10})
    return result.x if result.x is not None and np.isfinite(result.x).all() else None


def _solve_cvxpy(loss: _Loss, matrix: csr_matrix, upper: np.ndarray, n_out: int, n_lat: int, solver: str,
                 x0: np.ndarray) -> np.ndarray | None:
    import cvxpy as cp  # optional: only these solvers need it

    n_w = n_out * n_lat
    x = cp.Variable(matrix.shape[1])
    x.value = x0
    weights = cp.reshape(x[:n_w], (n_out, n_lat), order="C")
    theta = cp.hstack([weights, cp.reshape(x[n_w:n_w + n_out], (n_out, 1), order="C")])
    if loss.task == "regression":
        data = (cp.sum_squares(loss.r @ theta.T - loss.qt) + loss.rest) / (loss.n_rows * loss.n_out)
    elif loss.task == "multiclass":
        scores = loss.design @ theta.T
        onehot = np.zeros((loss.n_rows, n_out))
        onehot[np.arange(loss.n_rows), loss.labels] = 1.0
        data = (cp.sum(cp.log_sum_exp(scores, axis=1)) - cp.sum(cp.multiply(onehot, scores))) / loss.n_rows
    else:
        scores = loss.design @ theta.T
        data = (cp.sum(cp.logistic(scores)) - cp.sum(cp.multiply(loss.t, scores))) / (loss.n_rows * loss.n_out)
    problem = cp.Problem(cp.Minimize(data + 0.5 * loss.l2 * cp.sum_squares(weights)), [matrix @ x <= upper])
    options = {"osqp": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 100_000, "polish": True},
               "highs": {"output_flag": False}, "scs": {"eps_abs": 1e-9, "eps_rel": 1e-9}}.get(solver, {})
    try:
        problem.solve(solver=solver.upper(), **options)
    except cp.error.SolverError:
        return None
    if problem.status not in ("optimal", "optimal_inaccurate") or x.value is None:
        return None
    return np.asarray(x.value, dtype=np.float64)


def choose_solver(n_variables: int) -> str:
    """``auto``: SLSQP up to ``DENSE_LIMIT`` variables (weights, biases and auxiliaries), Clarabel beyond when
    cvxpy is installed. Measured in ``results/refit_probe_solvers.md``: SLSQP solved every trained-model
    instance in 0.03-0.1 s (Clarabel 0.06-1.2 s, trust-constr 1.4-2.5 s), but its dense subproblem grows
    with the cube of the variables: 115 s against Clarabel's 14 s at 566 variables."""
    if n_variables <= DENSE_LIMIT:
        return "slsqp"
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        return "slsqp"
    return "clarabel"


DENSE_LIMIT = 300


# ---- the public entry points -------------------------------------------------------------------------

@dataclass
class LastLayerFit:
    """A solved last layer (float32 values in float64 arrays) and what it cost. ``status``: "solved" (the
    optimum, rounded), "pulled-back" (moved towards the start until its rounding stayed inside), "start"
    (the start was kept). Inside means: inside the given polyhedron by a float check, not certified."""

    weights: np.ndarray
    biases: np.ndarray
    loss: float
    start_loss: float
    status: str
    solver: str
    seconds: float


def _as_float32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def sample_rows(latent: np.ndarray, targets: np.ndarray, max_rows: int | None, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` of the rows (a seeded sample without replacement); all of them when
    there are no more, or ``max_rows`` is None. A classifier's loss costs one pass over the rows per solver
    iteration; 20,000 rows pin the fit of a last layer with tens of weights per output well enough."""
    if max_rows is None or latent.shape[0] <= max_rows:
        return latent, targets
    rows = np.random.default_rng(seed).choice(latent.shape[0], max_rows, replace=False)
    return latent[rows], targets[rows]


def solve_last_layer(latent: np.ndarray, targets: np.ndarray, task: str, polyhedron: WorstCaseRows,
                     start: tuple[np.ndarray, np.ndarray] | None = None, l2: float = 1e-4,
                     solver: str = "auto", interior: float = 1e-6, max_rows: int | None = 20_000,
                     max_iterations: int = 500, seed: int = 0) -> LastLayerFit | None:
    """The last layer that minimises the data loss on ``latent`` rows (n, n_latent) over ``polyhedron``.

    ``solver``: "auto" (``choose_solver``) or one of ``SOLVERS``. ``targets``: (n, n_out) values (regression), 0/1 labels (binary: one score; multi-label) or class
    indices (multiclass, n). ``start``: a last layer to warm-start from and to fall back on. The solver
    aims ``interior`` inside every row; the answer is rounded to float32 and returned only if its float
    worst case stays inside ``polyhedron``; otherwise it is pulled towards a start that is inside, else
    the start itself is returned; None when neither is inside. The caller must re-check it exactly.
    Classification losses use at most ``max_rows`` rows (a seeded sample); regression uses all rows
    (they collapse to a (L + 1)-square factor)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if solver in QP_ONLY_SOLVERS and task != "regression":
        raise ValueError(f"{solver} solves quadratic programs only (regression)")
    t0 = time.perf_counter()
    latent = np.asarray(latent, dtype=np.float64)
    targets = np.asarray(targets)
    if task != "regression":
        latent, targets = sample_rows(latent, targets, max_rows, seed)
    n_out, n_lat = polyhedron.n_out, polyhedron.n_latent
    loss = _Loss(latent, targets, task, l2)
    full_loss = _Loss(latent, targets, task, 0.0)
    matrix, upper, n_aux = polyhedron.tightened(interior).linear_system()
    if solver == "auto":
        solver = choose_solver(matrix.shape[1])
    if start is not None:
        start_w, start_b = (np.asarray(v, dtype=np.float64) for v in start)
        x0 = np.concatenate([start_w.ravel(), start_b, polyhedron.auxiliaries_at(start_w, start_b)])
        start_inside = bool((polyhedron.slack(start_w, start_b) >= 0).all())
        start_loss = full_loss.value(start_w, start_b)
    else:
        x0 = np.zeros(n_out * n_lat + n_out + n_aux)
        start_inside, start_loss = False, float("nan")
    if solver in ("slsqp", "trust-constr"):
        x = _solve_scipy(loss, matrix, upper, x0, n_out, n_lat, solver, max_iterations)
    else:
        x = _solve_cvxpy(loss, matrix, upper, n_out, n_lat, solver, x0)
    candidates: list[tuple[str, np.ndarray, np.ndarray]] = []
    if x is not None:
        theta = _theta(x, n_out, n_lat)
        solved_w, solved_b = _as_float32(theta[:, :-1]), _as_float32(theta[:, -1])
        candidates.append(("solved", solved_w, solved_b))
        if start_inside:  # the polyhedron is convex: points between two inside points are inside
            for fraction in (0.999, 0.99, 0.9, 0.5):
                candidates.append(("pulled-back", _as_float32(start_w + fraction * (theta[:, :-1] - start_w)),
                                   _as_float32(start_b + fraction * (theta[:, -1] - start_b))))
    if start_inside:
        candidates.append(("start", _as_float32(start_w), _as_float32(start_b)))
    for status, weights, biases in candidates:
        if (polyhedron.slack(weights, biases) >= 0).all():
            value = full_loss.value(weights, biases)
            if status != "start" and start_inside and value > start_loss:
                continue  # the solver stopped early, worse than where it began: keep the start
            return LastLayerFit(weights, biases, value, start_loss, status, solver, time.perf_counter() - t0)
    return None


def solve_free_last_layer(latent: np.ndarray, targets: np.ndarray, task: str, start: tuple[np.ndarray, np.ndarray],
                          l2: float = 1e-4, max_iterations: int = 500, max_rows: int | None = 20_000,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The last layer that minimises the data loss (+ l2/2 |W|^2) on ``latent`` rows with no constraint, for a
    classifier (logistic or softmax loss: convex), by L-BFGS from ``start``; float32 values in float64 arrays,
    None when the solver returns no finite answer. For a network whose later layer keeps the rule whatever
    these scores are. Uses at most ``max_rows`` rows (``sample_rows``), as ``solve_last_layer`` does."""
    start_w, start_b = (np.asarray(v, dtype=np.float64) for v in start)
    n_out, n_lat = start_w.shape
    latent, targets = sample_rows(np.asarray(latent, dtype=np.float64), np.asarray(targets), max_rows, seed)
    loss = _Loss(latent, targets, task, l2)

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = loss.value_and_gradient(flat.reshape(n_out, n_lat + 1))
        return value, gradient.ravel()

    x0 = np.hstack([start_w, start_b.reshape(-1, 1)]).ravel()
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iterations})
    if result.x is None or not np.isfinite(result.x).all():
        return None
    theta = result.x.reshape(n_out, n_lat + 1)
    return _as_float32(theta[:, :-1]), _as_float32(theta[:, -1])


def solve_best_choice(latent: np.ndarray, targets: np.ndarray, task: str, polyhedra: Sequence[WorstCaseRows],
                      start: tuple[np.ndarray, np.ndarray] | None = None, **options) -> LastLayerFit | None:
    """``solve_last_layer`` over each polyhedron of a union (``candidate_polyhedra``); the lowest loss wins."""
    best: LastLayerFit | None = None
    t0 = time.perf_counter()
    for polyhedron in polyhedra:
        fit = solve_last_layer(latent, targets, task, polyhedron, start=start, **options)
        if fit is not None and (best is None or fit.loss < best.loss):
            best = fit
    if best is not None:
        best.seconds = time.perf_counter() - t0
    return best
