"""The ``cegis`` strategy: any assert z3 can decide, enforced at a growing set of latent points.

The trainer checks each candidate over the whole box with the exact checker and adds each
counterexample as a point constraint (``deepsade.encoding.exact.point_constraint``) to the next solver
call. It takes every assert it is offered, so ``auto`` ends with it.

Where each of its asserts is linear in the outputs once the inputs are fixed, the trainer replaces that
MaxSMT call by a quadratic program over the points' pinned rows (``deepsade.encoding.point_projection``).
"""

from __future__ import annotations

from collections.abc import Sequence

from deepsade.encoding.base import Strategy
from deepsade.encoding.layout import LatentLayout
from deepsade.spec import Assert


class CegisStrategy(Strategy):
    """Counterexample-guided: no closed form, no hard constraints; the trainer supplies points."""

    name = "cegis"
    user_selectable = True
    by_points = True

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> CegisStrategy | None:
        return cls(asserts, layout) if asserts else None
