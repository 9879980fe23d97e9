"""Where things sit in the latent vector ``z = [h; s]`` and the z3 variables of the last layer."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import z3

from deepsade.numbers import z3_rational


@dataclass(frozen=True)
class LatentLayout:
    """Where things sit in the latent vector ``z = [h; s]``."""

    n_hidden: int
    mapped: tuple[int, ...]  # input index of each skip coordinate
    n_out: int

    @property
    def n_latent(self) -> int:
        return self.n_hidden + len(self.mapped)

    def coordinate(self, input_index: int) -> int:
        return self.n_hidden + self.mapped.index(input_index)


def weight_variables(layout: LatentLayout) -> tuple[list[list[z3.ArithRef]], list[z3.ArithRef]]:
    """z3 variables for the last layer: W[k][l] and b[k]."""
    weights = [[z3.Real(f"W!{k}!{l}") for l in range(layout.n_latent)] for k in range(layout.n_out)]
    biases = [z3.Real(f"b!{k}") for k in range(layout.n_out)]
    return weights, biases


def exact_term(value) -> z3.ArithRef:
    """A z3 rational for a number (a float converts exactly, as its binary value)."""
    return z3_rational(value if isinstance(value, Fraction) else Fraction(float(value)))


def sum_terms(terms: list) -> z3.ArithRef:
    """The z3 sum of ``terms`` (0 when there are none)."""
    return z3.Sum(terms) if terms else z3.RealVal(0)
