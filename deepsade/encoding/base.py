"""The interface every encoding strategy implements (``deepsade.encoding.registry`` lists them).

A strategy takes some asserts of a spec (``claim``) and answers, for those asserts, what the trainer
and the certificate ask of the translated last-layer constraint:

- ``closed_form``: a vectorised float check of candidate last layers, exact or only sufficient;
- ``hard_constraints``: constraints on the z3 weight variables (empty when the trainer covers the
  assert with counterexample points instead: ``by_points``);
- where the constraint is a polyhedron of last layers: ``polyhedron`` (rows to project onto),
  ``own_projection`` (a closed form that needs no LP) and ``first_choice`` (how to pick the piece of
  a union to start from).

Everything a strategy accepts the exact checker (``deepsade.encoding.exact``) must accept too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import z3

from deepsade.encoding.latent_boxes import Box, LatentBoxes
from deepsade.encoding.layout import LatentLayout
from deepsade.spec import Assert

__all__ = ["Box", "ClosedFormVerdict", "LastLayer", "LatentBoxes", "Margins", "Strategy", "Warmup"]

LastLayer = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Margins:
    """The output margins: ``solve`` for what solvers and projections aim at (larger, so rounding the
    answer to float32 stays inside), ``check`` for the closed-form checks."""

    solve: Fraction
    check: float


@dataclass(frozen=True)
class ClosedFormVerdict:
    """Which candidates (C,) satisfy an assert by a closed form. ``exact``: False means the verdict is
    only sufficient (where it says no, the exact checker decides)."""

    holds: np.ndarray
    exact: bool


@dataclass(frozen=True)
class Warmup:
    """What a strategy may use to pick its first piece: the outputs of a briefly trained, unconstrained
    copy of the network on the training data (n, n_out), and the data loss of any such outputs."""

    outputs: Any
    loss: Callable[[Any], float]


class Strategy:
    """One way of translating asserts into constraints on the last layer; subclasses register in
    ``deepsade.encoding.registry``."""

    name: ClassVar[str]
    user_selectable: ClassVar[bool] = False  # offered as ``--strategy NAME``
    in_auto: ClassVar[bool] = True  # ``auto`` tries it (in registry order)
    by_points: ClassVar[bool] = False  # the trainer covers its asserts with CEGIS points in MaxSMT

    def __init__(self, asserts: Sequence[Assert], layout: LatentLayout):
        self.asserts = tuple(asserts)
        self.layout = layout

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> Strategy | None:
        """An instance serving those of ``asserts`` it can take (in their order); None when it takes none."""
        raise NotImplementedError

    @classmethod
    def refusal(cls, assert_: Assert) -> str:
        """Why an explicitly chosen strategy cannot take ``assert_`` (a user-facing message)."""
        return f"assert {assert_.index + 1} is outside the {cls.name} strategy's fragment"

    def closed_form(self, weights: np.ndarray, biases: np.ndarray, boxes: LatentBoxes,
                    margin: float) -> dict[int, ClosedFormVerdict]:
        """Per assert index it can judge in closed form: the verdict on candidates (C, n_out, n_latent), each
        assert over its own latent box (``boxes.for_assert``)."""
        return {}

    def hard_constraints(self, assert_: Assert, weights, biases, boxes: LatentBoxes, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        """Constraints on the weight variables equivalent to (or stronger than) ``assert_`` over its box."""
        return []

    @property
    def projectable(self) -> bool:
        """Whether ``polyhedron`` describes its constraint (then the trainer may project onto it)."""
        return False

    def polyhedron(self, current: LastLayer, boxes: LatentBoxes, target: LastLayer, margins: Margins,
                   choice: Any = None) -> list:
        """One-polyhedron rows (``DualAssert``) inside the constraint, chosen near ``current`` / ``target``;
        each row is meant over the box of its ``source`` assert."""
        return []

    def own_projection(self, target: LastLayer, boxes: LatentBoxes, current: LastLayer, margins: Margins,
                       choice: Any = None) -> LastLayer | None:
        """The projection in a closed form of its own when it is the only strategy; None: use the LP."""
        return None

    def first_choice(self, warmup: Callable[[], Warmup], margins: Margins) -> Any:
        """Which piece of a union to project the first weights onto (None: the one nearest)."""
        return None
