"""SBR (semantic-based regularisation): the constraint's fuzzy truth, compiled from the formula.

The truth of a row is the t-norm conjunction over asserts of ``premise => conclusion``, the premise
being crisp (raw data, exact) and the conclusion read fuzzily (see ``formula.compile_fuzzy``: and/or
through the t-norm, negations pushed down to the comparisons, ``=>`` as ``or(not a, b)``, ``ite`` as
a truth-weighted mix of its branches, comparisons through ``min(1, 2 sigmoid(steepness * margin))``,
steepness 10 by default). The loss of a row is ``1 - truth``: 0 exactly where the constraint holds
(``distinct`` and negated ``=`` aside), differentiable in the outputs.
"""

from __future__ import annotations

import torch

from deepsade.baselines.constraint import ConstraintLoss, Facts
from deepsade.baselines.formula import DEFAULT_STEEPNESS, Batch, compile_fuzzy, make_tnorm
from deepsade.errors import UserInputError
from deepsade.spec import Spec


class FuzzyLoss(ConstraintLoss):
    """``1 - truth`` of the constraint per row under a t-norm (``product`` or ``lukasiewicz``)."""

    name = "sbr"

    def __init__(self, spec: Spec, tnorm: str = "product", steepness: float = DEFAULT_STEEPNESS):
        super().__init__(spec)
        if not steepness > 0:
            raise UserInputError(f"the sigmoid steepness must be positive, got {steepness}")
        self.tnorm = make_tnorm(tnorm)
        self.steepness = float(steepness)
        self.conclusions = [compile_fuzzy(a.conclusion, self.tnorm, self.steepness) for a in spec.asserts]

    def truth(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        """Fuzzy truth of the whole constraint per row, in [0, 1]."""
        batch = Batch(facts["inputs"], outputs)
        per_assert = [
            self.tnorm.implication(facts["premises"][:, i].to(torch.float64), conclusion(batch))
            for i, conclusion in enumerate(self.conclusions)
        ]
        truth = self.tnorm.conjunction(per_assert)
        return torch.broadcast_to(truth, outputs.shape[:-1]).to(outputs.dtype)

    def __call__(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        return 1.0 - self.truth(outputs, facts)
