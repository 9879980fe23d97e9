"""The z3 engine: the exact ReLU network in linear real arithmetic, the spec's formulas as they are.

``post = max(pre, 0)`` is encoded as ``post >= 0, post >= pre, post = pre or post = 0``; neurons that
the sound bounds over the box prove stable are fixed, and the others get a triangle cut. Every
weight is the stored float32 value read as a rational, so a witness is exact and z3 can express
every assert (non-linear ones go to z3's general solver). Inputs a real row could have (one category
per one-hot group, whole numbers in integer columns) are constrained natively: see
``realisability_constraints``."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import z3

from deepsade.numbers import z3_fraction, z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import input_var, output_var
from deepsade.verification.engine import Engine, Query
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Answer


class Z3Network:
    """The exact ReLU network as z3 constraints over ``x!j`` (inputs) and ``y!k`` (outputs)."""

    def __init__(self, weights: NetworkWeights):
        self.weights = weights
        layers = weights.exact_layers()
        previous: list[z3.ArithRef] = [input_var(j) for j in range(weights.n_inputs)]
        self.base: list[z3.BoolRef] = []
        self.neurons: list[list[tuple[z3.ArithRef, z3.ArithRef]]] = []
        for layer, (weight, bias) in enumerate(layers[:-1]):
            neurons = []
            for i in range(len(bias)):
                pre, post = z3.Real(f"p!{layer}!{i}"), z3.Real(f"h!{layer}!{i}")
                self.base.append(pre == _affine(weight[i], previous, bias[i]))
                self.base += [post >= 0, post >= pre, z3.Or(post == pre, post == 0)]
                neurons.append((pre, post))
            self.neurons.append(neurons)
            previous = [post for _, post in neurons]
        weight, bias = layers[-1]
        latent = previous + [input_var(int(j)) for j in weights.mapped]
        self.base += [output_var(k) == _affine(weight[k], latent, bias[k]) for k in range(weights.n_outputs)]

    def region_facts(self, lower: Sequence[Fraction], upper: Sequence[Fraction]) -> list[z3.BoolRef]:
        """Input bounds, plus what interval bounds prove about each neuron over the box (all implied)."""
        facts = []
        for j, (lo, hi) in enumerate(zip(lower, upper, strict=True)):
            facts += [input_var(j) >= z3_rational(lo), input_var(j) <= z3_rational(hi)]
        bounds = self.weights.preactivation_bounds(np.array([float(v) for v in lower]),
                                                   np.array([float(v) for v in upper]))
        for neurons, (pre_low, pre_high) in zip(self.neurons, bounds, strict=True):
            for (pre, post), lo, hi in zip(neurons, pre_low.tolist(), pre_high.tolist(), strict=True):
                if hi <= 0:
                    facts.append(post == 0)
                elif lo >= 0:
                    facts.append(post == pre)
                else:
                    lo_q, hi_q = Fraction(lo), Fraction(hi)
                    facts += [pre >= z3_rational(lo_q), pre <= z3_rational(hi_q),
                              post <= z3_rational(hi_q / (hi_q - lo_q)) * (pre - z3_rational(lo_q))]
        return facts

    def solve(self, lower: Sequence[Fraction], upper: Sequence[Fraction], violation: z3.BoolRef,
              timeout: float, linear: bool = True, realisable: RealisableInputs | None = None) -> Answer:
        """Is there an input in the box where ``violation`` holds? A violation's witness is exact.

        With ``realisable``, only inputs a real row could have count (``realisability_constraints``)."""
        structure = realisability_constraints(realisable) if realisable is not None else []
        integers = realisable is not None and bool(realisable.integers)
        if linear:
            solver = z3.SolverFor("QF_LIRA" if integers else "QF_LRA")
        else:
            solver = z3.Solver()
        solver.set("timeout", max(1, int(timeout * 1000)))
        solver.add(*self.base, *self.region_facts(lower, upper), *structure, violation)
        answer = solver.check()
        if answer == z3.unsat:
            return Answer.no_violation()
        if answer == z3.unknown:
            return Answer.unknown(f"z3 {solver.reason_unknown()}")
        model = solver.model()
        return Answer.violation([z3_fraction(model.eval(input_var(j), model_completion=True))
                                 for j in range(self.weights.n_inputs)])


def realisability_constraints(realisable: RealisableInputs) -> list[z3.BoolRef]:
    """z3 constraints over ``x!j`` that hold exactly at the inputs a real row could have.

    Natively, no case split: each one-hot input is 0 or 1 in raw units and the raw values of a group
    sum to 1 (exactly one category); an integer input's raw value equals an Int variable ``n!j``
    (mixed linear arithmetic, QF_LIRA)."""
    def raw(j: int) -> z3.ArithRef:
        return z3_rational(realisable.offsets[j]) + z3_rational(realisable.scales[j]) * input_var(j)

    facts: list[z3.BoolRef] = []
    for group in realisable.groups:
        facts += [z3.Or(raw(k) == 0, raw(k) == 1) for k in group]
        facts.append(z3.Sum(*[raw(k) for k in group]) == 1)
    facts += [z3.ToReal(z3.Int(f"n!{j}")) == raw(j) for j in realisable.integers]
    return facts


def _affine(row: np.ndarray, variables: list[z3.ArithRef], bias: Fraction) -> z3.ArithRef:
    terms = [z3_rational(w) * v for w, v in zip(row.tolist(), variables, strict=True) if w != 0]
    return z3.Sum(*terms, z3_rational(bias)) if terms else z3_rational(bias)


class Z3Engine(Engine):
    """z3 on the exact ReLU network: expresses every assert, answers exactly (or unknown on timeout)."""

    name = "z3"
    label = "z3"
    exact = True

    def __init__(self, weights: NetworkWeights):
        super().__init__(weights)
        self.network = Z3Network(weights)

    def check(self, query: Query) -> Answer:
        """z3 on the disjunction of the negated asserts (QF_LRA when they are all linear, QF_LIRA
        with integer inputs), over the realisable inputs of the box when the query restricts them."""
        violation = z3.Or(*[z3.Not(a.scaled) for a in query.asserts])
        return self.network.solve(query.lower, query.upper, violation, query.timeout,
                                  linear=all(a.linear for a in query.asserts), realisable=query.realisable)
