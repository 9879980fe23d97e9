"""The bound pre-check: sound linear bounds over a box rule out the violation of an assert, atom by atom.

An assert's violation is a disjunction of conjunctions of linear atoms (``violation``). Over a box of
inputs, sound bounds on every atom's left-hand side (``NetworkWeights.propagate``, the ``relaxation``)
show some atoms impossible there; an assert each of whose disjuncts holds an impossible atom cannot
break in the box, and no engine needs to look at it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from deepsade.verification.network import NetworkWeights
from deepsade.verification.violation import Atom, Disjunct


class BoundCheck:
    """The atoms of every assert's violation as rows (coefficients on outputs and inputs, a bound), and the
    check that rules asserts out over a box. ``disjuncts``: per assert index, its violation's disjuncts, or
    None when it has no such form (then it is never ruled out)."""

    def __init__(self, disjuncts: Mapping[int, list[Disjunct] | None], weights: NetworkWeights):
        self.disjuncts, self.weights = disjuncts, weights
        # every atom of the violations as a row: coefficients on outputs, on inputs, and its bound
        atoms = {atom for ds in disjuncts.values() if ds for d in ds for atom in d}
        self.rows: dict[Atom, int] = {atom: row for row, atom in enumerate(sorted(atoms, key=repr))}
        n = len(self.rows)
        self.on_outputs, self.on_inputs = np.zeros((n, weights.n_outputs)), np.zeros((n, weights.n_inputs))
        self.bound = np.zeros(n)
        for atom, row in self.rows.items():
            for name, value in atom.terms:
                (self.on_outputs if name[0] == "y" else self.on_inputs)[row, int(name[2:])] = float(value)
            self.bound[row] = float(atom.bound)

    def not_ruled_out(self, lower: Sequence[Fraction], upper: Sequence[Fraction], indices: list[int]) -> list[int]:
        """Asserts among ``indices`` whose violation the bounds over the box do not rule out."""
        rows, on_outputs, on_inputs, bound = self.rows, self.on_outputs, self.on_inputs, self.bound
        if not rows:
            return [i for i in indices if self.disjuncts.get(i) is None or () in self.disjuncts[i]]
        relaxation = self.weights.propagate(np.array([float(v) for v in lower]), np.array([float(v) for v in upper]))
        # lhs - bound lies in [at_least, at_most] everywhere in the box
        at_least = self.weights.output_lower_bound(relaxation, on_outputs, on_inputs, -bound)
        at_most = -self.weights.output_lower_bound(relaxation, -on_outputs, -on_inputs, bound)
        impossible = {atom: bool({"<=": at_least[r] > 0, "<": at_least[r] >= 0, ">=": at_most[r] < 0,
                                  ">": at_most[r] <= 0, "==": at_least[r] > 0 or at_most[r] < 0}[atom.op])
                      for atom, r in rows.items()}
        remaining = []
        for i in indices:
            disjuncts = self.disjuncts.get(i)
            if disjuncts is None or not all(any(impossible[a] for a in d) for d in disjuncts):
                remaining.append(i)
        return remaining
