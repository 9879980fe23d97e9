"""The translated constraint for a network layout: which registered strategy serves each assert.

``auto`` walks the registry in order and gives each strategy the asserts no earlier one took (dual,
dual-or, sign-pattern, then cegis, which takes the rest); an explicit choice gives every assert to that
strategy and refuses asserts it cannot take. The strengthenings only ever narrow what is accepted:
where their closed form says no, the exact checker decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import z3

from deepsade.encoding.base import Box, ClosedFormVerdict, LastLayer, LatentBoxes, Margins, Strategy, Warmup
from deepsade.encoding.exact import find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.projection import project_last_layer
from deepsade.encoding.registry import AUTO, registered, strategy_named, user_choices
from deepsade.errors import UserInputError
from deepsade.spec import Assert, Spec


@dataclass
class Encoder:
    """The strategies serving the asserts of ``spec`` for ``layout`` (``strategy``: auto or one name)."""

    spec: Spec
    layout: LatentLayout
    strategy: str = "auto"
    strategies: list[Strategy] = field(default_factory=list)
    kinds: dict[int, str] = field(default_factory=dict)  # assert index -> strategy name

    def __post_init__(self) -> None:
        if self.strategy == AUTO:
            candidates = [s for s in registered() if s.in_auto]
        else:
            try:
                candidates = [strategy_named(self.strategy)]
            except KeyError:
                raise UserInputError(f"unknown strategy {self.strategy!r}; choose one of "
                                     f"{', '.join(user_choices())}") from None
        remaining = list(self.spec.asserts)
        for candidate in candidates:
            if not remaining:
                break
            claimed = candidate.claim(remaining, self.layout)
            if claimed is None:
                continue
            self.strategies.append(claimed)
            taken = {a.index for a in claimed.asserts}
            remaining = [a for a in remaining if a.index not in taken]
        if remaining:
            raise UserInputError(candidates[-1].refusal(remaining[0]))
        owner = {a.index: s for s in self.strategies for a in s.asserts}
        self._owner = owner
        self.kinds.update({a.index: owner[a.index].name for a in self.spec.asserts})

    # ---- what the trainer and the tests ask --------------------------------------------------------
    def serving(self, name: str) -> Strategy | None:
        """The strategy called ``name`` if it serves some assert."""
        return next((s for s in self.strategies if s.name == name), None)

    @property
    def sign_pattern(self):
        """The sign pattern taken by the ``sign-pattern`` strategy, if any."""
        strategy = self.serving("sign-pattern")
        return strategy.pattern if strategy is not None else None

    @property
    def disjunctive(self) -> dict:
        """The ``dual-or`` forms by assert index."""
        strategy = self.serving("dual-or")
        return dict(strategy.forms) if strategy is not None else {}

    @property
    def duals(self) -> dict:
        """The ``dual`` forms by assert index."""
        strategy = self.serving("dual")
        return dict(strategy.duals) if strategy is not None else {}

    @property
    def point_asserts(self) -> list[Assert]:
        """The asserts the trainer covers with CEGIS points in MaxSMT."""
        return [a for a in self.spec.asserts if self._owner[a.index].by_points]

    @property
    def can_project(self) -> bool:
        """Whether every strategy describes its constraint as polyhedra (then projection applies)."""
        return all(s.projectable for s in self.strategies)

    def check_candidates(self, weights: np.ndarray, biases: np.ndarray, low: np.ndarray | LatentBoxes,
                         high: np.ndarray | None, margin: float, timeout_s: float | None = 5.0,
                         sufficient_only: bool = False) -> np.ndarray:
        """Which candidate last layers (C, n_out, n_latent) satisfy every assert over its latent box.

        ``low``/``high``: one box for every assert, or ``low`` a ``LatentBoxes`` (per-assert boxes) and
        ``high`` None. ``sufficient_only``: a strengthened assert (dual-or, sign-pattern) counts as satisfied only where its
        closed form says so (no z3 call; sound, may reject a candidate the exact check would accept)."""
        boxes = LatentBoxes.coerce(low, high)
        ok = np.ones(weights.shape[0], dtype=bool)
        verdicts: dict[int, ClosedFormVerdict] = {}
        for strategy in self.strategies:
            verdicts.update(strategy.closed_form(weights, biases, boxes, margin))
        for verdict in verdicts.values():
            if verdict.exact:
                ok &= verdict.holds
        for c in np.nonzero(ok)[0]:
            for a in self.spec.asserts:
                verdict = verdicts.get(a.index)
                if verdict is not None and (verdict.exact or verdict.holds[c]):
                    continue
                if verdict is not None and sufficient_only:
                    ok[c] = False
                    break
                found = find_counterexample(a, self.layout, weights[c], biases[c], *boxes.for_assert(a.index),
                                            Fraction(margin), timeout_s)
                if found is not None:
                    ok[c] = False
                    break
        return ok

    def hard_constraints(self, weights, biases, low, high, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        """Constraints on the weight variables for every assert not covered by points (CEGIS points come
        from the trainer); ``low``/``high`` as in ``check_candidates``."""
        boxes = LatentBoxes.coerce(low, high)
        constraints: list[z3.BoolRef] = []
        for a in self.spec.asserts:
            constraints += self._owner[a.index].hard_constraints(a, weights, biases, boxes, margin, qe_timeout_s)
        return constraints

    def project(self, target: LastLayer, box: Box | LatentBoxes, current: LastLayer, margins: Margins,
                choices: dict[str, Any] | None = None) -> LastLayer | None:
        """The closest weights (L1) to ``target`` inside one polyhedron of the constraint near ``current``
        (``choices``: a strategy's piece by name); None when the LP has no solution. Needs ``can_project``.
        ``box``: one box for every assert, or per-assert ``LatentBoxes``."""
        boxes = LatentBoxes.coerce(*box) if isinstance(box, tuple) else LatentBoxes.coerce(box)
        choices = choices or {}
        if len(self.strategies) == 1:
            only = self.strategies[0]
            found = only.own_projection(target, boxes, current, margins, choices.get(only.name))
            if found is not None:
                return found
        rows = [row for s in self.strategies for row in s.polyhedron(current, boxes, target, margins,
                                                                      choices.get(s.name))]
        return project_last_layer(rows, self.layout, target[0], target[1], boxes, None, float(margins.solve))

    def first_choices(self, warmup: Callable[[], Warmup], margins: Margins) -> dict[str, Any]:
        """Each strategy's piece to project the first weights onto (strategies without pieces omitted)."""
        choices = {s.name: s.first_choice(warmup, margins) for s in self.strategies}
        return {name: choice for name, choice in choices.items() if choice is not None}
