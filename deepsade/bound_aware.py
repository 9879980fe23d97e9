"""Bound-aware hidden layers: differentiable interval bounds of the latent box and penalties on it.

The last layer must satisfy each rule for every latent ``z = [h; s]`` in the interval (IBP) box of the
domain (``deepsade.bounds.latent_box``). Plain SGD on the hidden layers ignores that box, and it grows
until the only certified last layers are nearly constant (issue 13, failure mode 2). Certified training
(IBP training, Gowal et al. 2018) adds a term on the propagated bounds to the loss; this module gives the
pieces for that:

- ``interval_latent_box``: the same interval arithmetic as ``bounds.latent_box`` in torch, without the
  outward padding, differentiable with respect to the hidden weights. It only shapes training; the
  certificate is still the exact check on the stored weights.
- three penalties on that box, each a scalar tensor:
  ``box_width`` (plain IBP width of the hidden coordinates),
  ``output_spread`` (the width of the output interval under the current last layer, ``|W| (hi - lo)``:
  what the box costs the outputs), and
  ``rule_excess`` (each rule row's worst case over the box under a *desired* last layer, hinged at its
  bound: "make room for the last layer the data wants").
- ``desired_last_layer``: that desired layer, the unconstrained optimum of the data loss on fixed latents.
- ``RelativeWeight``: scales a penalty so that one weight means the same on every problem
  (``weight x recent data loss x penalty / penalty at the start``).

Nothing here touches the last layer's parameters: every penalty treats the last layer as a constant, so
its gradient only reaches the hidden layers, and the last layer stays under the solver's control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deepsade.last_layer_polyhedron import WorstCaseRows, candidate_polyhedra
from deepsade.network import SkipMLP

PENALTIES = ("width", "spread", "rule", "ratio")


def interval_latent_box(model: SkipMLP, lower: np.ndarray | torch.Tensor, upper: np.ndarray | torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 interval bounds of ``[h; s]`` over the input box ``[lower, upper]`` (no padding).

    Differentiable with respect to the hidden layers' weights and biases; the skip coordinates are the
    input box's own bounds (constants)."""
    low = torch.as_tensor(lower, dtype=torch.float64)
    high = torch.as_tensor(upper, dtype=torch.float64)
    mapped = model.mapped_features
    skip_low, skip_high = low[mapped], high[mapped]
    for layer in model.hidden:
        weight, bias = layer.weight.to(torch.float64), layer.bias.to(torch.float64)
        center, radius = (high + low) / 2, (high - low) / 2
        mid = weight @ center + bias
        spread = weight.abs() @ radius
        low, high = torch.relu(mid - spread), torch.relu(mid + spread)
    return torch.cat([low, skip_low]), torch.cat([high, skip_high])


def box_width(low: torch.Tensor, high: torch.Tensor, n_hidden: int) -> torch.Tensor:
    """Sum of the widths of the hidden coordinates of the box (plain IBP width)."""
    return (high[:n_hidden] - low[:n_hidden]).sum()


def output_spread(low: torch.Tensor, high: torch.Tensor, weights: np.ndarray | torch.Tensor, n_hidden: int
                  ) -> torch.Tensor:
    """Width of the output interval over the box under a fixed last layer, summed over outputs:
    ``sum_k sum_l |W_kl| (hi_l - lo_l)`` over the hidden coordinates ``l`` (W is a constant here)."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64) if not torch.is_tensor(weights) else
                        weights.detach().to(torch.float64))
    return (w[:, :n_hidden].abs() @ (high[:n_hidden] - low[:n_hidden])).sum()


def width_to_data_ratio(low: torch.Tensor, high: torch.Tensor, latent: torch.Tensor, n_hidden: int,
                        floor: float = 1e-2) -> torch.Tensor:
    """Mean over hidden units of ``box width / (data range + floor)``, both differentiable: the data range
    is taken over ``latent`` (rows of ``[h; s]`` computed with gradients). Unlike the plain width, it does
    not fall when the hidden layers merely scale everything down (the last layer would scale back up)."""
    spread = latent[:, :n_hidden].max(dim=0).values - latent[:, :n_hidden].min(dim=0).values
    return ((high[:n_hidden] - low[:n_hidden]) / (spread.to(torch.float64) + floor)).mean()


@dataclass(frozen=True)
class RuleRows:
    """The conclusion rows of a rule's polyhedra with each row's premise cut kept apart from the box.

    ``choices`` holds one ``WorstCaseRows`` per disjunct / cube choice, built over an unbounded box, so
    its ``low`` / ``high`` are the premise's own bounds (``-inf`` / ``+inf`` where it says nothing). The
    rows' boxes are then ``[max(box_low, low), min(box_high, high)]`` for whichever box is current."""

    choices: tuple[WorstCaseRows, ...]

    @classmethod
    def from_encoder(cls, encoder, n_out: int, n_latent: int, margin: float) -> RuleRows:
        """From an ``Encoder``'s closed-form duals, disjunctive forms and sign pattern (as the last-layer
        solve takes them). Raises ``last_layer_polyhedron.NotPolyhedral`` for rules it cannot build."""
        low, high = np.full(n_latent, -np.inf), np.full(n_latent, np.inf)
        polyhedra = candidate_polyhedra(list(encoder.duals.values()), list(encoder.disjunctive.values()),
                                        encoder.sign_pattern, n_out, n_latent, low, high, margin)
        return cls(tuple(polyhedra))


def rule_excess(low: torch.Tensor, high: torch.Tensor, rules: RuleRows, weights: np.ndarray, biases: np.ndarray,
                room: float = 0.0) -> torch.Tensor:
    """How far a fixed last layer ``(W, b)`` is from satisfying the rule over the box:
    ``sum_r relu(worst_r + room - bound_r)``, the worst case of each row over its (premise-cut) box; for a
    union of choices, the smallest sum. Zero exactly when ``(W, b)`` fits with ``room`` to spare."""
    w = np.asarray(weights, dtype=np.float64)
    b = np.asarray(biases, dtype=np.float64)
    best: torch.Tensor | None = None
    for rows in rules.choices:
        if rows.n_rows == 0:
            return torch.zeros((), dtype=torch.float64)
        row_low = torch.maximum(low[None, :], torch.as_tensor(rows.low))
        row_high = torch.minimum(high[None, :], torch.as_tensor(rows.high))
        alive = (row_low <= row_high).all(dim=1)  # a premise outside the box: the row never applies
        coefficients = torch.as_tensor(rows.out @ w + rows.lat)
        worst = torch.maximum(coefficients * row_low, coefficients * row_high).sum(dim=1)
        worst = worst + torch.as_tensor(rows.out @ b)
        excess = torch.relu(worst + room - torch.as_tensor(rows.bound))
        total = torch.where(alive, excess, torch.zeros_like(excess)).sum()
        best = total if best is None or float(total) < float(best) else best
    return best if best is not None else torch.zeros((), dtype=torch.float64)


def desired_last_layer(latent: np.ndarray, targets: np.ndarray, task: str, l2: float = 1e-4,
                       iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The last layer the data wants for fixed latents, ignoring the rule: ridge least squares
    (regression, closed form) or L2-regularised logistic / softmax regression (L-BFGS)."""
    latent = np.asarray(latent, dtype=np.float64)
    n, n_lat = latent.shape
    design = np.hstack([latent, np.ones((n, 1))])
    if task == "regression":
        t = np.asarray(targets, dtype=np.float64).reshape(n, -1)
        penalty = l2 * n * np.eye(n_lat + 1)
        penalty[-1, -1] = 0.0  # no penalty on the bias
        theta = np.linalg.solve(design.T @ design + penalty, design.T @ t).T
        return theta[:, :-1], theta[:, -1]
    x = torch.as_tensor(design)
    if task == "multiclass":
        y = torch.as_tensor(np.asarray(targets)).long().reshape(-1)
        n_out = int(y.max()) + 1
    else:
        y = torch.as_tensor(np.asarray(targets, dtype=np.float64)).reshape(n, -1)
        n_out = y.shape[1]
    theta = torch.zeros((n_out, n_lat + 1), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        scores = x @ theta.T
        if task == "multiclass":
            loss = torch.nn.functional.cross_entropy(scores, y)
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, y)
        loss = loss + l2 * (theta[:, :-1] ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    result = theta.detach().numpy()
    return result[:, :-1], result[:, -1]


class RelativeWeight:
    """Scales a penalty to ``weight x data-loss scale x penalty / reference``, where ``reference`` is the
    penalty's first value. At the start the term is ``weight`` times the data loss, whatever the problem's
    units; later it follows the data loss as it falls, and stays linear in the penalty (a hinge reaching
    zero gives no blow-up)."""

    def __init__(self, weight: float, floor: float = 1e-12):
        self.weight = float(weight)
        self.floor = floor
        self.reference: float | None = None

    def __call__(self, penalty: torch.Tensor, data_loss_scale: float) -> torch.Tensor:
        if self.reference is None:
            self.reference = max(float(penalty.detach()), self.floor)
        return self.weight * float(data_loss_scale) / self.reference * penalty


def latent_summary(model: SkipMLP, lower: np.ndarray, upper: np.ndarray, inputs: np.ndarray
                   ) -> dict[str, float]:
    """How wide the box is against the data's own latent range, over the hidden coordinates: mean upper
    bound, mean data maximum, and the ratio of the summed box widths to the summed data ranges."""
    n_hidden = model.hidden_sizes[-1]
    with torch.no_grad():
        low, high = interval_latent_box(model, lower, upper)
        latent = model.latent(torch.as_tensor(inputs, dtype=torch.float32)).to(torch.float64)
    low, high = low[:n_hidden].numpy(), high[:n_hidden].numpy()
    data = latent[:, :n_hidden].numpy()
    data_range = data.max(axis=0) - data.min(axis=0)
    return {"box_upper_mean": float(high.mean()), "data_max_mean": float(data.max(axis=0).mean()),
            "width_ratio": float((high - low).sum() / max(float(data_range.sum()), 1e-12))}


def penalty_value(kind: str, low: torch.Tensor, high: torch.Tensor, n_hidden: int, *,
                  weights: np.ndarray | None = None, rules: RuleRows | None = None,
                  desired: tuple[np.ndarray, np.ndarray] | None = None, room: float = 0.0,
                  latent: torch.Tensor | None = None) -> torch.Tensor:
    """One of ``PENALTIES`` by name: "width" (``box_width``), "spread" (``output_spread`` under
    ``weights``, the current last layer), "rule" (``rule_excess`` of ``desired`` over ``rules``), "ratio"
    (``width_to_data_ratio`` against ``latent``, reference rows' latents with gradients)."""
    if kind == "width":
        return box_width(low, high, n_hidden)
    if kind == "spread":
        if weights is None:
            raise ValueError("the spread penalty needs the current last layer's weights")
        return output_spread(low, high, weights, n_hidden)
    if kind == "rule":
        if rules is None or desired is None:
            raise ValueError("the rule penalty needs the rule rows and a desired last layer")
        return rule_excess(low, high, rules, *desired, room=room)
    if kind == "ratio":
        if latent is None:
            raise ValueError("the ratio penalty needs reference rows' latents")
        return width_to_data_ratio(low, high, latent, n_hidden)
    raise ValueError(f"unknown penalty {kind!r}; choose one of {', '.join(PENALTIES)}")


def hidden_gradient_norm(model: SkipMLP, penalty: torch.Tensor) -> float:
    """L2 norm of the penalty's gradient on the hidden parameters (no ``.grad`` is touched)."""
    params: Sequence[torch.nn.Parameter] = model.hidden_parameters()
    grads = torch.autograd.grad(penalty, params, allow_unused=True, retain_graph=True)
    return float(torch.sqrt(sum((g.to(torch.float64) ** 2).sum() for g in grads if g is not None)))
