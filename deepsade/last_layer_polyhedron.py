"""The last layers that satisfy a polyhedral rule over a latent box, as linear inequalities.

For rules in the closed-form dual fragment (``deepsade.encoding.dual.DualAssert``) the last layers
``(W, b)`` that satisfy the translated rule over the latent box ``B`` form a polyhedron: every
conclusion row reads

    sum_l max(a_l lo_l, a_l hi_l) + out . b <= bound,    a = out W + lat,

over the box cut by the premise's single-coordinate bounds. Each ``max`` becomes an auxiliary variable
above both of its terms (as in ``deepsade.encoding.projection``), so the rule is a set of linear
inequalities in ``(W, b, t)`` (``WorstCaseRows.linear_system``). Rules that are unions of polyhedra
(``dual-or`` disjuncts, sign-pattern cubes) give one polyhedron per choice (``candidate_polyhedra``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix

from deepsade.encoding.latent_boxes import LatentBoxes


class NotPolyhedral(ValueError):
    """The rule's feasible last layers are not one polyhedron this module can build (a premise that couples
    several inputs, or too many disjunct / cube choices)."""


@dataclass(frozen=True)
class WorstCaseRows:
    """Last layers ``(W, b)`` with ``sum_l max(a_rl lo_rl, a_rl hi_rl) + out_r . b <= bound_r`` for every row
    ``r``, where ``a_r = out_r W + lat_r``: the conclusion rows of closed-form duals over their boxes."""

    out: np.ndarray  # (R, n_out) output coefficients
    lat: np.ndarray  # (R, n_latent) the rows' own input terms on latent coordinates
    low: np.ndarray  # (R, n_latent) each row's box (the latent box cut by its premise)
    high: np.ndarray  # (R, n_latent)
    bound: np.ndarray  # (R,) right-hand side, the caller's margin already subtracted

    @property
    def n_rows(self) -> int:
        return len(self.bound)

    @property
    def n_out(self) -> int:
        return self.out.shape[1]

    @property
    def n_latent(self) -> int:
        return self.lat.shape[1]

    def worst_case(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """Each row's left-hand side at its worst point of the box, for one last layer: shape (R,)."""
        a = self.out @ np.asarray(weights, dtype=np.float64) + self.lat
        return np.maximum(a * self.low, a * self.high).sum(axis=1) + self.out @ np.asarray(biases, dtype=np.float64)

    def slack(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """``bound - worst case`` per row (>= 0 everywhere: inside, in floats)."""
        return self.bound - self.worst_case(weights, biases)

    def tightened(self, amount: float) -> WorstCaseRows:
        """The same rows with every bound lowered by ``amount`` (an interior target for the solver)."""
        return WorstCaseRows(self.out, self.lat, self.low, self.high, self.bound - amount)

    def linear_system(self) -> tuple[csr_matrix, np.ndarray, int]:
        """``A x <= u`` over ``x = [W (row-major), b, t]`` with one auxiliary ``t`` per row and moving
        coordinate; returns (A, u, number of auxiliaries)."""
        n_out, n_lat = self.n_out, self.n_latent
        n_w = n_out * n_lat
        n_theta = n_w + n_out
        rows, cols, vals, upper = [], [], [], []
        n_rows = n_aux = 0
        for r in range(self.n_rows):
            out, lat, lo, hi = self.out[r], self.lat[r], self.low[r], self.high[r]
            outs = np.nonzero(out)[0]
            moving = np.nonzero(lo != hi)[0]
            fixed = np.nonzero(lo == hi)[0]
            aux = n_theta + n_aux + np.arange(len(moving))
            n_aux += len(moving)
            for corner in (lo, hi):  # a_l * corner - t_l <= 0
                at = n_rows + np.arange(len(moving))
                rows += [np.repeat(at, len(outs)), at]
                cols += [(outs[None, :] * n_lat + moving[:, None]).ravel(), aux]
                vals += [(corner[moving][:, None] * out[outs][None, :]).ravel(), -np.ones(len(moving))]
                upper.append(-lat[moving] * corner[moving])
                n_rows += len(moving)
            # sum t + fixed coordinates' a_l lo_l + out . b <= bound
            rows += [np.full(len(moving) + len(outs) * (len(fixed) + 1), n_rows)]
            cols += [np.concatenate([aux, (outs[None, :] * n_lat + fixed[:, None]).ravel(), n_w + outs])]
            vals += [np.concatenate([np.ones(len(moving)), (lo[fixed][:, None] * out[outs][None, :]).ravel(),
                                     out[outs]])]
            upper.append(np.array([self.bound[r] - float(lat[fixed] @ lo[fixed])]))
            n_rows += 1
        matrix = coo_matrix((np.concatenate(vals) if vals else np.zeros(0),
                             (np.concatenate(rows) if rows else np.zeros(0, int),
                              np.concatenate(cols) if cols else np.zeros(0, int))),
                            shape=(n_rows, n_theta + n_aux)).tocsr()
        return matrix, (np.concatenate(upper) if upper else np.zeros(0)), n_aux

    def auxiliaries_at(self, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
        """The tightest auxiliaries for a last layer, in ``linear_system``'s order (a warm start)."""
        a = self.out @ np.asarray(weights, dtype=np.float64) + self.lat
        worst = np.maximum(a * self.low, a * self.high)
        return worst[self.low != self.high]  # row-major: row by row, moving coordinates in order


def polyhedron_from_duals(duals: Sequence, n_out: int, n_latent: int, low: np.ndarray | LatentBoxes,
                          high: np.ndarray | None, margin: float) -> WorstCaseRows:
    """The rows of closed-form duals (``deepsade.encoding.dual.DualAssert``) over the latent box ``[low, high]``
    (or, with ``low`` a ``LatentBoxes`` and ``high`` None, each over its source assert's box), each bound
    lowered by ``margin`` times its output coefficients' L1 norm (as the exact encoding does).

    Raises ``NotPolyhedral`` for a dual whose premise couples several inputs. Premise bounds are applied in
    floats: this is the solver's view, never the certificate's."""
    boxes = LatentBoxes.coerce(low, high)
    outs, lats, lows, highs, bounds = [], [], [], [], []
    for dual in duals:
        if dual.premise.rows:
            raise NotPolyhedral("a premise couples several inputs (Farkas form): not supported by the refit")
        own_low, own_high = boxes.for_assert(dual.source.index)
        box_low = np.array(own_low, dtype=np.float64)
        box_high = np.array(own_high, dtype=np.float64)
        empty = False
        for coord, (lo, hi) in dual.premise.bounds.items():
            if lo is not None:
                box_low[coord] = max(box_low[coord], float(lo))
            if hi is not None:
                box_high[coord] = min(box_high[coord], float(hi))
            empty |= box_low[coord] > box_high[coord]
        if empty:
            continue  # the premise never holds on the box: nothing to enforce
        for row in dual.rows:
            lat = np.zeros(n_latent)
            for coord, value in row.lat.items():
                lat[coord] = float(value)
            slack = margin * float(row.margin_scale()) if row.with_margin else 0.0
            if row.strict and slack <= 0:
                slack = 1e-12  # a strict row needs some room
            outs.append(row.out_float)
            lats.append(lat)
            lows.append(box_low)
            highs.append(box_high)
            bounds.append(-float(row.const) - slack)
    if not outs:
        empty_rows = np.zeros((0, n_latent))
        return WorstCaseRows(np.zeros((0, n_out)), empty_rows, empty_rows, empty_rows, np.zeros(0))
    return WorstCaseRows(np.array(outs), np.array(lats), np.array(lows), np.array(highs), np.array(bounds))


def candidate_polyhedra(duals: Sequence, disjunctive: Sequence, sign_pattern, n_out: int, n_latent: int,
                        low: np.ndarray | LatentBoxes, high: np.ndarray | None, margin: float, max_programs: int = 16
                        ) -> list[WorstCaseRows]:
    """One polyhedron per choice: every plain dual, one alternative per clause of each disjunctive form
    (``DisjunctiveDual``), and one cube of the sign pattern (``SignPattern``, or None). Each polyhedron is
    a sound strengthening of the rule (what it admits, the rule admits). Raises ``NotPolyhedral`` when
    there are more than ``max_programs`` choices."""
    clauses = [clause for form in disjunctive for clause in form.clauses]
    n_cubes = sign_pattern.n_choices if sign_pattern is not None else 1  # cubes, then clause sets
    count = n_cubes
    for clause in clauses:
        count *= len(clause)
    if count > max_programs:
        raise NotPolyhedral(f"{count} disjunct/cube choices (more than {max_programs}): one program each is too many")
    result = []
    for choice in itertools.product(*clauses):
        for cube in range(n_cubes):
            chosen = list(duals) + list(choice)
            if sign_pattern is not None:
                chosen += sign_pattern.rows(cube, n_out)
            result.append(polyhedron_from_duals(chosen, n_out, n_latent, low, high, margin))
    return result
