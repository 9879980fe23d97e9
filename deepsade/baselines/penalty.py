"""REG: the constraint as a hinge penalty, compiled from the linear asserts of the spec.

For every assert ``P => (c_1 and ... and c_m)`` whose conclusion is a conjunction of linear
comparisons, the penalty of a row is ``[P holds] * sum_i hinge(c_i)`` with
``hinge(a <= b) = hinge(a < b) = relu(a - b)``, ``hinge(a >= b) = hinge(a > b) = relu(b - a)`` and
``hinge(a = b) = |a - b|``, summed over asserts. It is differentiable in the outputs and exactly 0
where every assert holds (the boundary of a strict comparison included, a set of measure zero).
"""

from __future__ import annotations

import torch
import z3

from deepsade.baselines.constraint import ConstraintLoss, Facts
from deepsade.baselines.formula import Batch, Fn, compile_crisp, compile_term
from deepsade.errors import UserInputError
from deepsade.spec import Spec, conjunction_atoms


def _hinge(atom: z3.BoolRef) -> Fn:
    a, b = (compile_term(atom.arg(i), compile_crisp, torch.where) for i in (0, 1))
    if z3.is_le(atom) or z3.is_lt(atom):
        return lambda batch: torch.relu(a(batch) - b(batch))
    if z3.is_ge(atom) or z3.is_gt(atom):
        return lambda batch: torch.relu(b(batch) - a(batch))
    return lambda batch: torch.abs(a(batch) - b(batch))


class PenaltyLoss(ConstraintLoss):
    """Sum of hinge violations of each assert's conclusion atoms, counted where its premise holds."""

    name = "reg"

    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.hinges: list[list[Fn]] = []
        for a in spec.asserts:
            short = " ".join(a.text.split())[:80]
            if not a.linear:
                raise UserInputError(
                    f"reg compiles linear asserts into hinge penalties, but assert {a.index + 1} ({short}) is "
                    "non-linear: use --method sbr (fuzzy logic), which reads any formula"
                )
            atoms = conjunction_atoms(a.conclusion)
            if atoms is None:
                raise UserInputError(
                    f"reg needs each assert's conclusion to be a conjunction of comparisons; assert {a.index + 1} "
                    f"({short}) has or/not/ite in its conclusion: use --method sbr (fuzzy logic)"
                )
            self.hinges.append([_hinge(atom) for atom in atoms])

    def __call__(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        batch = Batch(facts["inputs"], outputs)
        total = torch.zeros(outputs.shape[:-1], dtype=outputs.dtype)
        for index, hinges in enumerate(self.hinges):
            if not hinges:
                continue
            violation = sum(h(batch) for h in hinges)
            total = total + facts["premises"][:, index].to(outputs.dtype) * violation
        return total.to(outputs.dtype)
