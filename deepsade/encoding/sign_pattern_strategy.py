"""The sign-pattern strategy: the sign-pattern asserts taken together as a union of polyhedra (cubes, and
the rule's clause set beside them; ``deepsade.encoding.sign_pattern`` derives them), checked and projected in
closed form, the piece chosen from the warm-up outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from deepsade.encoding.base import Box, ClosedFormVerdict, LastLayer, LatentBoxes, Margins, Strategy, Warmup
from deepsade.encoding.dual import DualAssert
from deepsade.encoding.layout import LatentLayout
from deepsade.encoding.sign_pattern import ABOVE, BELOW, SignPattern, to_sign_pattern
from deepsade.spec import Assert


class SignPatternStrategy(Strategy):
    """The sign-pattern asserts taken together: a union of polyhedra (cubes), checked and projected in
    closed form; the solver sees the exact asserts through CEGIS points."""

    name = "sign-pattern"
    by_points = True  # the union of cubes is not one polyhedron

    def __init__(self, pattern: SignPattern, layout: LatentLayout):
        super().__init__(pattern.asserts, layout)
        self.full_pattern = pattern
        self.pattern = replace(pattern, clause_sets=())  # cubes only until the trainer asks for clause sets
        self.clause_set_chosen = False  # set by ``first_choice`` when the clause set costs the data least

    @property
    def use_clause_sets(self) -> bool:
        """Whether the clause set (the rule's CNF as rows) is offered beside the cubes (off: the paper's cubes)."""
        return bool(self.pattern.clause_sets)

    @use_clause_sets.setter
    def use_clause_sets(self, value: bool) -> None:
        self.pattern = self.full_pattern if value else replace(self.full_pattern, clause_sets=())

    @classmethod
    def claim(cls, asserts: Sequence[Assert], layout: LatentLayout) -> SignPatternStrategy | None:
        pattern = to_sign_pattern(asserts)
        return cls(pattern, layout) if pattern is not None else None

    # sign-pattern asserts mention no input, so their premise never narrows the domain: the whole-domain
    # box is theirs (and the rows of a cube, tagged with the first of them, are meant over it too)
    def closed_form(self, weights, biases, boxes: LatentBoxes, margin: float) -> dict[int, ClosedFormVerdict]:
        """Some cube (or the clause set) holds over the box. With cubes only, where none holds the exact
        checker decides. Once the clause set is chosen the verdict is final (``exact=True``): a candidate no
        piece keeps is rejected without a z3 call. Rejecting is always sound (the certificate checks the
        rule itself); it only refuses line-search steps the weaker exact rule would take, whose z3 checks
        made UC4 training 25x slower per step, and the projection then lands inside the clause set."""
        holds = self.pattern.satisfied(weights, biases, *boxes.whole, margin)
        final = bool(self.pattern.clause_sets) and self.clause_set_chosen
        return {a.index: ClosedFormVerdict(holds, exact=final) for a in self.pattern.asserts}

    @property
    def projectable(self) -> bool:
        return True

    @property
    def clause_set(self) -> int | None:
        """The choice index of the clause set once ``first_choice`` chose it: every projection goes onto it
        (it fixes no output's side, so the per-input choices stay open, and it always has a point)."""
        return len(self.pattern.cubes) if self.pattern.clause_sets and self.clause_set_chosen else None

    def cube_near(self, current: LastLayer, box: Box, target: LastLayer, margins: Margins,
                  projections=None) -> int:
        """The piece to project onto: the clause set once chosen; else, of the cubes the current
        weights keep, the one closest (L1) to the target step; when they keep none, the closest of all."""
        pattern = self.pattern
        if self.clause_set is not None:
            return self.clause_set
        if projections is None:
            projections = pattern.side_projections(*target, box[0], box[1], float(margins.solve))
        distance = projections[2]
        costs = pattern.cube_costs(distance[0], distance[1])
        status = pattern.status(current[0][None], current[1][None], box[0], box[1], margins.check)
        kept = pattern.matching_cubes(status)[0]
        if kept.any():
            costs = np.where(kept, costs, np.inf)
        return int(np.argmin(costs))

    def polyhedron(self, current: LastLayer, boxes: LatentBoxes, target: LastLayer, margins: Margins,
                   choice: int | None = None) -> list[DualAssert]:
        cube = self.cube_near(current, boxes.whole, target, margins) if choice is None else choice
        return self.pattern.rows(cube, self.layout.n_out)

    def own_projection(self, target: LastLayer, boxes: LatentBoxes, current: LastLayer, margins: Margins,
                       choice: int | None = None) -> LastLayer | None:
        """Each fixed bit's output row is its own knapsack (``SignPattern.side_projections``), for boxes
        with ``low >= 0``; a clause set couples outputs (None: the LP projects onto its rows)."""
        box = boxes.whole
        if not (box[0] >= 0).all():
            return None
        piece = self.clause_set if choice is None else choice
        if piece is not None and not self.pattern.is_cube(piece):
            return None
        projections = self.pattern.side_projections(*target, box[0], box[1], float(margins.solve))
        cube = self.cube_near(current, box, target, margins, projections) if choice is None else choice
        return self.pattern.apply_cube(cube, *target, projections)

    def first_choice(self, warmup: Callable[[], Warmup], margins: Margins) -> int:
        """The piece that costs the data least: the warm-up network's outputs clamped to each cube (fixed
        bits moved just past their threshold, the least change that keeps them on their side) and, when it
        is offered, to the clause set (``clamp_to_clauses``). When a cube wins, the clause set is withdrawn
        and training goes on exactly as with cubes only (on UC4 the clause rows, sums of nine scores over a
        latent box 100-200 wide, cost Jaccard 0.60 -> 0.42; on pump_alarms they lift accuracy 0.75 -> 0.92:
        ``results/cubes/report.md``)."""
        pattern = self.pattern
        fit = warmup()
        outputs = fit.outputs
        columns = torch.as_tensor(pattern.outputs)
        fixed = outputs[:, columns]
        margin = float(margins.solve)
        above = torch.maximum(fixed, torch.as_tensor(pattern.thresholds) + margin)
        below = torch.minimum(fixed, torch.as_tensor(pattern.thresholds) - margin)
        losses = []
        for cube in torch.as_tensor(pattern.cubes):
            clamped = outputs.clone()
            clamped[:, columns] = torch.where(cube == ABOVE, above, torch.where(cube == BELOW, below, fixed))
            losses.append(fit.loss(clamped))
        for clauses in pattern.clause_sets:
            clamped = outputs.clone()
            clamped[:, columns] = clamp_to_clauses(fixed, pattern.thresholds, clauses, margin)
            losses.append(fit.loss(clamped))
        choice = int(np.argmin(losses))
        if pattern.clause_sets:
            self.clause_set_chosen = not pattern.is_cube(choice)
            if not self.clause_set_chosen:
                self.use_clause_sets = False
        return choice


def clamp_to_clauses(values: torch.Tensor, thresholds: np.ndarray, clauses: np.ndarray, margin: float,
                     sweeps: int = 3) -> torch.Tensor:
    """Outputs (n, m) moved so that each row meets every clause's row ``sum_i s_i (y_i - c_i) >= k margin``
    where it does not: the short row's literals move together by the shortfall over k (the least squared
    change for that row), a few sweeps over the clauses. A cost estimate for ``first_choice`` only."""
    values = values.clone()
    centre = torch.as_tensor(thresholds, dtype=values.dtype)
    for _ in range(sweeps):
        for clause in torch.as_tensor(clauses, dtype=values.dtype):
            k = clause.abs().sum()
            shortfall = torch.clamp(k * margin - ((values - centre) * clause).sum(dim=1), min=0.0)
            values = values + shortfall[:, None] * clause[None] / k
    return values
