"""The strategy registry is the extension point: a strategy registered from outside is walked by ``auto``,
used by the trainer through the Strategy interface, and its model certifies."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import z3

from deepsade.boxes import max_over_box
from deepsade.certify import certify_model
from deepsade.encoding import ClosedFormVerdict, Encoder, LatentLayout, Strategy, registered, user_choices
from deepsade.encoding.layout import exact_term, sum_terms
from deepsade.encoding.registry import register_strategy, unregister_strategy
from deepsade.ingest import prepare
from deepsade.linear import NotLinear, atom_from_comparison
from deepsade.spec import Assert, conjunction_atoms, parse_spec_text
from deepsade.training import DeepSaDeTrainer, TrainSettings


class OutputRange(Strategy):
    """Toy strategy: asserts that bound single outputs by constants (``lo <= y_k <= hi``), nothing else."""

    name = "output-range"
    calls = {"closed_form": 0, "hard_constraints": 0}

    def __init__(self, bounds: dict[int, list[tuple[int, Fraction, Fraction]]], asserts, layout):
        super().__init__(asserts, layout)
        self.bounds = bounds  # assert index -> [(output, coefficient, constant)]: coefficient * y + constant <= 0

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout):
        bounds, taken = {}, []
        for a in asserts:
            atoms = conjunction_atoms(a.conclusion)
            if a.has_premise or atoms is None:
                continue
            try:
                linear = [atom_from_comparison(atom) for atom in atoms]
            except NotLinear:
                continue
            if any(atom.inputs() or len(atom.outputs()) != 1 or atom.op not in ("<=", "<") for atom in linear):
                continue
            bounds[a.index] = [(k, c, atom.const) for atom in linear for k, c in atom.outputs().items()]
            taken.append(a)
        return cls(bounds, taken, layout) if taken else None

    def closed_form(self, weights, biases, boxes, margin: float):
        OutputRange.calls["closed_form"] += 1
        verdicts = {}
        for index, rows in self.bounds.items():
            low, high = boxes.for_assert(index)
            holds = np.ones(weights.shape[0], dtype=bool)
            for k, c, const in rows:
                worst = max_over_box(float(c) * weights[:, k, :], low, high) + float(c) * biases[:, k] + float(const)
                holds &= worst + abs(float(c)) * margin < 0
            verdicts[index] = ClosedFormVerdict(holds, exact=True)
        return verdicts

    def hard_constraints(self, assert_, weights, biases, boxes, margin: Fraction, qe_timeout_s=None):
        OutputRange.calls["hard_constraints"] += 1
        low, high = boxes.for_assert(assert_.index)
        constraints = []
        for r, (k, c, const) in enumerate(self.bounds[assert_.index]):
            worst = []
            for l in range(self.layout.n_latent):
                t = z3.Real(f"range!{assert_.index}!{r}!{l}")
                a = exact_term(c) * weights[k][l]
                constraints += [t >= a * exact_term(low[l]), t >= a * exact_term(high[l])]
                worst.append(t)
            total = sum_terms(worst) + exact_term(c) * biases[k] + exact_term(const)
            constraints.append(total <= -exact_term(abs(c) * margin))
        return constraints


@pytest.fixture
def output_range():
    register_strategy(OutputRange, before="dual")
    try:
        yield OutputRange
    finally:
        unregister_strategy(OutputRange.name)


def test_registry_order_and_user_choices():
    assert [s.name for s in registered()] == ["dual", "dual-or", "sign-pattern", "cegis", "qe", "quantified"]
    assert user_choices() == ("auto", "dual", "cegis", "qe", "quantified")


def test_a_registered_strategy_is_walked_by_auto_and_trains_a_certified_model(output_range):
    rng = np.random.default_rng(0)
    n = 200
    x = rng.uniform(0, 1, (n, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": 2 + 3 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=n)})
    data = prepare(frame, ["y"])
    spec = parse_spec_text("(declare-const y Real)(declare-const x1 Real)"
                           "(assert (and (>= y 1.5) (<= y 4)))"
                           "(assert (<= y (+ x1 4)))", data.encoding)
    encoder = Encoder(spec, LatentLayout(4, tuple(spec.mapped_features), 1), "auto")
    assert encoder.kinds == {0: "output-range", 1: "dual"}  # earlier in the registry than dual: it wins
    assert "output-range" not in user_choices()  # not user-selectable unless it says so

    OutputRange.calls.update(closed_form=0, hard_constraints=0)
    settings = TrainSettings(hidden=(6, 4), epochs=2, batch_size=20, seed=0)
    trainer = DeepSaDeTrainer(spec, data, settings)
    result = trainer.fit()
    assert trainer.encoder.kinds[0] == "output-range" and not trainer.can_project
    assert OutputRange.calls["closed_form"] > 0  # the line search asked it
    certificate = certify_model(result.model, spec, data.encoding, data.domain, settings.output_margin)
    assert certificate["verdict"] == "certified"
