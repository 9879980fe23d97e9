"""HCR's output layer: a direction and a radius fraction around an interior point of a fixed polytope.

For a bounded polytope ``A y <= b`` over the outputs that does not depend on the inputs (Signorelli &
Lombardi, "Constrained Machine Learning Through Hyperspherical Representation"), the base network (the
same ``SkipMLP`` as DeepSaDe's, with one extra output) predicts a direction ``d`` and a logit ``s``; with
``c`` an interior point (the Chebyshev centre of the region) and ``slack = b - A c > 0``,

    u = d / max(|d|_inf, tiny)                 (a direction of unit max-norm)
    rho(u) = max_i (A u)_i / slack_i           (the gauge of the region around c: r_max(u) = 1 / rho(u))
    y = c + sigmoid(s) * u / max(rho(u), rho_min)

so, in exact arithmetic, ``A (y - c) <= sigmoid(s) * slack <= slack`` row by row, i.e. ``A y <= b``: every
output lies in the region, whatever the base network computes (clamping ``rho`` from below only shortens
the step). The region stored in the network is the rule's polytope tightened by a slack that covers the
certificate's output margin and the float32 rounding of the layer (``rounding_bound``).

Normalisation, a division and a sigmoid are not piecewise linear: the exact ReLU engines cannot take
this network, and the certificate says which part of the claim is "by construction"
(``deepsade.constructions.hcr_certificate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from deepsade.constructions.recognise import NoRoom, Polytope
from deepsade.errors import UserInputError
from deepsade.network import SkipMLP

HCR_KIND = "hcr"
NOT_PIECEWISE_LINEAR = ("this model's HCR layer (normalisation, division, sigmoid) is not piecewise linear, so the "
                        "ReLU engines (Marabou, z3) cannot verify it; its guarantee is by construction: see "
                        "certificate.json, re-checked by `deepsade certify`")


class NotPiecewiseLinear(UserInputError):
    """The network is not a ReLU network: the exact engines cannot take it."""

_U32 = 2.0 ** -24
_TINY = 1e-12  # below this max-norm a direction counts as zero (y = c)


def region_inequalities(polytope: Polytope) -> tuple[np.ndarray, np.ndarray]:
    """The polytope as ``A y <= b`` (Fraction object arrays): an upper bound ``a.y <= u`` gives ``(a, u)``,
    a lower bound ``a.y >= l`` gives ``(-a, -l)``."""
    rows, bounds = [], []
    for row in polytope.rule.rows:
        if row.upper is not None:
            rows.append(list(row.outputs))
            bounds.append(row.upper.const)
        if row.lower is not None:
            rows.append([-v for v in row.outputs])
            bounds.append(-row.lower.const)
    return (np.array(rows, dtype=object).reshape(len(rows), polytope.rule.n_outputs),
            np.array(bounds, dtype=object))


def chebyshev_centre(matrix: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre and radius of the largest Euclidean ball inside ``A y <= b`` (an LP, HiGHS)."""
    a = np.asarray(matrix, dtype=np.float64)
    b = np.asarray(bound, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1)
    n = a.shape[1]
    objective = np.zeros(n + 1)
    objective[-1] = -1.0  # maximise the radius
    result = linprog(objective, A_ub=np.hstack([a, norms[:, None]]), b_ub=b,
                     bounds=[(None, None)] * n + [(0, None)], method="highs")
    if result.status != 0:
        raise NoRoom(f"the Chebyshev centre of the region could not be found ({result.message})")
    return result.x[:n], float(result.x[-1])


class HyperSphericalMLP(SkipMLP):
    """A ``SkipMLP`` with one extra base output, followed by HCR's layer into a fixed polytope."""

    def __init__(self, n_inputs: int, hidden: Sequence[int], n_outputs: int, mapped_features: Sequence[int],
                 rows: int):
        super().__init__(n_inputs, hidden, n_outputs + 1, mapped_features)
        self.n_outputs = int(n_outputs)  # the function's outputs; the base has one more (the radius logit)
        self.kind = HCR_KIND

        def fixed(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(*shape), requires_grad=False)

        self.region_matrix, self.region_bound, self.centre = fixed(rows, n_outputs), fixed(rows), fixed(n_outputs)
        self.rho_min = fixed(1)

    # ---- the function ----
    def base(self, x: torch.Tensor) -> torch.Tensor:
        """The base network's output: ``n_outputs`` direction coordinates, then the radius logit."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base(x)
        d, fraction = f[:, :-1], torch.sigmoid(f[:, -1:])
        u = d / d.abs().amax(dim=1, keepdim=True).clamp_min(_TINY)
        slack = self.region_bound - self.centre @ self.region_matrix.T
        rho = ((u @ self.region_matrix.T) / slack).amax(dim=1, keepdim=True).clamp_min(self.rho_min)
        return self.centre + (fraction / rho) * u

    def architecture(self) -> dict:
        arch = super().architecture()
        arch["enforcement"] = {"kind": self.kind, "rows": int(self.region_bound.shape[0])}
        return arch

    @classmethod
    def from_architecture(cls, arch: dict) -> HyperSphericalMLP:
        return cls(arch["n_inputs"], arch["hidden"], arch["n_outputs"], arch["mapped_features"],
                   int(arch["enforcement"]["rows"]))

    def plain_layers(self) -> None:
        """HCR's layer has no plain ReLU form: the exact engines (Marabou, z3 on ReLUs) cannot take it."""
        raise NotPiecewiseLinear(NOT_PIECEWISE_LINEAR)

    # ---- building it from the rule ----
    def set_region(self, matrix: np.ndarray, bound: np.ndarray, centre: np.ndarray) -> None:
        """Store ``A``, ``b`` (already tightened) and the interior point ``c`` as float32 tensors."""
        a = np.vectorize(float, otypes=[np.float64])(np.asarray(matrix, dtype=object))
        b = np.vectorize(float, otypes=[np.float64])(np.asarray(bound, dtype=object))
        with torch.no_grad():
            self.region_matrix.copy_(torch.as_tensor(a, dtype=torch.float32))
            self.region_bound.copy_(torch.as_tensor(b, dtype=torch.float32))
            self.centre.copy_(torch.as_tensor(np.asarray(centre, dtype=np.float64), dtype=torch.float32))
            extent = region_extent(self)
            # rho(u) >= 1 / extent for every unit-max-norm u; a smaller floor only matters for near-zero d
            self.rho_min.fill_(float(1.0 / (1e3 * extent)) if np.isfinite(extent) and extent > 0 else 1e-9)

    def stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``A``, ``b`` and ``c`` as the stored float32 values (float64 arrays)."""
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().float().numpy().astype(np.float64)
        return arr(self.region_matrix), arr(self.region_bound), arr(self.centre)


def region_extent(model: HyperSphericalMLP) -> float:
    """``R``: the largest max-norm distance from ``c`` to a point of the stored region (an LP per output and
    sign, HiGHS, padded by a relative 1e-6); inf when the stored region is unbounded or the LP fails."""
    a, b, c = model.stored()
    extent = 0.0
    for k in range(a.shape[1]):
        for sign in (1.0, -1.0):
            objective = np.zeros(a.shape[1])
            objective[k] = -sign
            result = linprog(objective, A_ub=a, b_ub=b, bounds=[(None, None)] * a.shape[1], method="highs")
            if result.status != 0:
                return float("inf")
            extent = max(extent, abs(float(result.x[k]) - float(c[k])))
    return extent * (1 + 1e-6) + 1e-12


def rounding_bound(model: HyperSphericalMLP) -> np.ndarray:
    """Per row ``i``, a bound on how far ``(A y)_i`` of the float32 layer can exceed ``b_i``.

    The argument (float32, unit roundoff u, g(n) = n u / (1 - n u)): with ``v`` the computed direction
    (max-norm 1, or smaller when it is clamped), each computed ``(A v)_i / slack_i`` is within
    ``g(n + 2) (|A| |v|)_i / slack_i`` of the exact value, so the computed gauge is at least
    ``rho(v) (1 - g(n + 2) kappa)`` with ``kappa = R max_i |a_i|_1 / slack_i`` (``rho(v) >= |v|_inf / R``). The
    step ``t v / rho`` then overshoots the region by a factor of at most ``1 / (1 - g(n + 2) kappa)`` times
    ``1 + g(3)`` (division, product), and adding ``c`` rounds each coordinate by ``u (|c| + R)``. The floor
    ``rho_min`` only shortens the step. This is a hand-derived analysis, not a machine-checked proof."""
    a, b, c = model.stored()
    n = a.shape[1]
    extent = region_extent(model)
    slack = b - a @ c
    if not np.all(slack > 0) or not np.isfinite(extent):
        return np.full(len(b), np.inf)

    def gamma(k: int) -> float:
        return k * _U32 / (1 - k * _U32)

    row_norm = np.abs(a).sum(axis=1)
    kappa = extent * float(np.max(row_norm / slack))
    shrink = 1 - gamma(n + 2) * kappa
    if shrink <= 0:
        return np.full(len(b), np.inf)
    overshoot = (1 + gamma(3)) / shrink - 1
    # (A y - b)_i <= slack_i * overshoot (the step) + |a_i|_1 * (rounding of c + step) + the product A y itself
    coordinate = gamma(2) * (np.abs(c) + extent)
    bound = slack * overshoot + np.abs(a) @ coordinate
    return bound * (1 + 1e-6)


def is_hcr(model: nn.Module) -> bool:
    """Whether ``model`` carries HCR's layer."""
    return isinstance(model, HyperSphericalMLP)


def tightened_region(polytope: Polytope, tightening: float) -> tuple[np.ndarray, np.ndarray]:
    """The rule's ``A y <= b`` with every bound moved inwards by ``tightening * |a_i|_1`` (exact)."""
    a, b = region_inequalities(polytope)
    step = Fraction(tightening)
    return a, np.array([bi - step * sum(abs(v) for v in ai) for ai, bi in zip(a, b, strict=True)], dtype=object)

