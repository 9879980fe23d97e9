"""What every constraint-aware loss shares: per-row facts about the inputs and an exact violation test.

Premises mention inputs only, so they are facts about a row, not something to learn: each one is
evaluated once per row on the *raw* inputs (the data as written, compared with the constants as
written), which is exact on the data, and enters the losses as a 0/1 mask.
"""

from __future__ import annotations

import numpy as np
import torch

from deepsade.baselines.formula import Batch, compile_crisp
from deepsade.data import TabularData
from deepsade.spec import Spec, evaluate, split_implication

Facts = dict[str, torch.Tensor]


def premise_truth(spec: Spec, raw_inputs: np.ndarray) -> np.ndarray:
    """Whether each assert's premise holds on each row, shape (n, n_asserts), evaluated on raw inputs."""
    env = {name: raw_inputs[:, j] for j, name in enumerate(spec.input_names)}
    outputs = set(spec.output_names)
    n = len(raw_inputs)
    columns = []
    for a in spec.asserts:
        premise, _ = split_implication(a.raw, outputs)
        columns.append(np.broadcast_to(np.asarray(evaluate(premise, env), dtype=bool), (n,)))
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0), dtype=bool)


def base_facts(spec: Spec, data: TabularData) -> Facts:
    """Per-row tensors every loss reads: scaled inputs (float64) and premise truth (bool, (n, n_asserts))."""
    return {
        "inputs": torch.as_tensor(data.inputs, dtype=torch.float64),
        "premises": torch.as_tensor(premise_truth(spec, data.raw_inputs)),
    }


def take(facts: Facts, index: torch.Tensor) -> Facts:
    """The facts of the rows in ``index``."""
    return {key: value[index] for key, value in facts.items()}


class ConstraintLoss:
    """A per-row loss that is 0 (or minimal) where the constraint holds; subclasses compile the spec."""

    name = "constraint"

    def __init__(self, spec: Spec):
        self.spec = spec

    def row_facts(self, data: TabularData) -> Facts:
        """Per-row tensors this loss needs, computed once per data set."""
        return base_facts(self.spec, data)

    def __call__(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        """Loss per row, shape ``outputs.shape[:-1]``."""
        raise NotImplementedError


class ViolationCounter:
    """Exact test of the constraint on predictions: premise from the raw data, conclusion in float64."""

    def __init__(self, spec: Spec):
        self.conclusions = [compile_crisp(a.conclusion) for a in spec.asserts]

    def __call__(self, outputs: torch.Tensor, facts: Facts) -> torch.Tensor:
        """True where a row's prediction violates at least one assert, shape ``outputs.shape[:-1]``."""
        batch = Batch(facts["inputs"], outputs.detach().to(torch.float64))
        violated = torch.zeros(outputs.shape[:-1], dtype=torch.bool)
        for index, conclusion in enumerate(self.conclusions):
            holds = conclusion(batch)
            violated = violated | (facts["premises"][:, index] & ~holds)
        return violated
