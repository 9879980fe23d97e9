"""The ``quantified`` strategy (chosen explicitly only): the paper's formulation, a z3 ``ForAll`` over
the latent variables with the weights free (bilinear terms)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import z3

from deepsade.encoding.base import LatentBoxes, Strategy
from deepsade.encoding.exact import substitute_outputs
from deepsade.encoding.layout import LatentLayout, exact_term, sum_terms
from deepsade.spec import Assert, input_var, output_var


def quantified_formula(assert_: Assert, layout: LatentLayout, weights, biases, low, high,
                       margin: Fraction) -> z3.BoolRef:
    """The paper's form: ForAll z in box, e in [-margin, margin]: P(s) => Q(s, W z + b + e)."""
    z = [z3.Real(f"z!{assert_.index}!{l}") for l in range(layout.n_latent)]
    e = [z3.Real(f"e!{assert_.index}!{k}") for k in range(layout.n_out)]
    box = [z3.And(z[l] >= exact_term(low[l]), z[l] <= exact_term(high[l])) for l in range(layout.n_latent)]
    box += [z3.And(e[k] >= -exact_term(margin), e[k] <= exact_term(margin)) for k in assert_.outputs]
    inputs = [(input_var(j), z[layout.coordinate(j)]) for j in assert_.inputs]
    exact = [(output_var(k), sum_terms([weights[k][l] * z[l] for l in range(layout.n_latent)]) + biases[k])
             for k in assert_.outputs]
    perturbed = [(y, value + e[k]) for (y, value), k in zip(exact, assert_.outputs)]
    body = substitute_outputs(assert_.scaled, inputs + perturbed, inputs + exact)
    bound = [z[l] for l in range(layout.n_latent)] + [e[k] for k in assert_.outputs]
    return z3.ForAll(bound, z3.Implies(z3.And(*box), body))


class QuantifiedStrategy(Strategy):
    """Every assert as a quantified formula handed to the solver as it is."""

    name = "quantified"
    user_selectable = True
    in_auto = False

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> QuantifiedStrategy | None:
        return cls(asserts, layout) if asserts else None

    def hard_constraints(self, assert_: Assert, weights, biases, boxes: LatentBoxes, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        low, high = boxes.for_assert(assert_.index)
        return [quantified_formula(assert_, self.layout, weights, biases, low, high, margin)]
