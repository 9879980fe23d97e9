"""Choosing a strategy per assert (``deepsade.encode`` has the strategies themselves).

``auto`` takes, per assert, the first that fits: ``dual`` (exact, closed form), ``dual-or`` (a sound
strengthening of linear disjunctions), ``sign-pattern`` (a sound strengthening of rules over which
outputs are above a threshold, taken together over all such asserts), else ``cegis``. The strengthenings
only ever narrow what is accepted: where their closed form says no, the exact checker decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import z3

from deepsade.encode import (
    STRATEGIES,
    DisjunctiveDual,
    DualAssert,
    LatentLayout,
    disjunctive_constraints,
    disjunctive_satisfied,
    dual_constraints,
    dual_satisfied,
    eliminate_quantifiers,
    find_counterexample,
    quantified_formula,
    to_disjunctive_dual,
    to_dual,
)
from deepsade.errors import UserInputError
from deepsade.sign_pattern import SignPattern, to_sign_pattern
from deepsade.spec import Assert, Spec

# kinds whose asserts the trainer covers with counterexample points in MaxSMT (sign patterns: the
# union of cubes is not one polyhedron, so the solver sees the exact assert through CEGIS instead)
CEGIS_KINDS = ("cegis", "sign-pattern")


@dataclass
class Encoder:
    """The translated constraint for a network layout: which strategy serves each assert."""

    spec: Spec
    layout: LatentLayout
    strategy: str = "auto"
    duals: dict[int, DualAssert] = field(default_factory=dict)
    disjunctive: dict[int, DisjunctiveDual] = field(default_factory=dict)
    sign_pattern: SignPattern | None = None
    kinds: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UserInputError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        for a in self.spec.asserts:
            dual = to_dual(a, self.layout)
            if self.strategy in ("auto", "dual") and dual is not None:
                self.duals[a.index] = dual
                self.kinds[a.index] = "dual"
            elif self.strategy == "dual":
                raise UserInputError(
                    f"assert {a.index + 1} is outside the dual fragment (needs conjunctions of linear comparisons); "
                    "use --strategy auto, cegis or qe"
                )
            elif self.strategy == "auto" and (form := to_disjunctive_dual(a, self.layout)) is not None:
                self.disjunctive[a.index] = form
                self.kinds[a.index] = "dual-or"
            else:
                self.kinds[a.index] = "cegis" if self.strategy == "auto" else self.strategy
        if self.strategy == "auto":
            self.sign_pattern = to_sign_pattern(self.asserts_of("cegis"))
            if self.sign_pattern is not None:
                for a in self.sign_pattern.asserts:
                    self.kinds[a.index] = "sign-pattern"

    def asserts_of(self, kind: str) -> list[Assert]:
        return [a for a in self.spec.asserts if self.kinds[a.index] == kind]

    def closed_form(self) -> bool:
        """Whether every assert can be checked in vectorised closed form (fast line search)."""
        return all(k == "dual" and self.duals[i].closed_form for i, k in self.kinds.items())

    def check_candidates(self, weights: np.ndarray, biases: np.ndarray, low: np.ndarray, high: np.ndarray,
                         margin: float, timeout_s: float | None = 5.0, sufficient_only: bool = False) -> np.ndarray:
        """Which candidate last layers (C, n_out, n_latent) satisfy every assert over the box.

        ``sufficient_only``: a strengthened assert (dual-or, sign-pattern) counts as satisfied only where its
        closed form says so (no z3 call; sound, may reject a candidate the exact check would accept)."""
        ok = np.ones(weights.shape[0], dtype=bool)
        for dual in self.duals.values():
            if dual.closed_form:
                ok &= dual_satisfied(dual, weights, biases, low, high, margin)
        # strengthened forms: a sufficient closed form; where it says no, the exact checker decides
        settled = {index: disjunctive_satisfied(form, weights, biases, low, high, margin)
                   for index, form in self.disjunctive.items() if form.closed_form}
        if self.sign_pattern is not None:
            holds = self.sign_pattern.satisfied(weights, biases, low, high, margin)
            settled.update({a.index: holds for a in self.sign_pattern.asserts})
        for c in np.nonzero(ok)[0]:
            for a in self.spec.asserts:
                dual = self.duals.get(a.index)
                if dual is not None and dual.closed_form:
                    continue
                if a.index in settled and settled[a.index][c]:
                    continue
                if a.index in settled and sufficient_only:
                    ok[c] = False
                    break
                found = find_counterexample(a, self.layout, weights[c], biases[c], low, high,
                                            Fraction(margin), timeout_s)
                if found is not None:
                    ok[c] = False
                    break
        return ok

    def hard_constraints(self, weights, biases, low, high, margin: Fraction,
                         qe_timeout_s: float | None = None) -> list[z3.BoolRef]:
        """Constraints on the weight variables for every assert outside CEGIS_KINDS (CEGIS points come
        from the trainer)."""
        constraints: list[z3.BoolRef] = []
        for a in self.spec.asserts:
            kind = self.kinds[a.index]
            if kind == "dual":
                constraints += dual_constraints(self.duals[a.index], weights, biases, low, high, margin, str(a.index))
            elif kind == "dual-or":
                constraints += disjunctive_constraints(self.disjunctive[a.index], weights, biases, low, high, margin,
                                                       str(a.index))
            elif kind in ("qe", "quantified"):
                formula = quantified_formula(a, self.layout, weights, biases, low, high, margin)
                constraints.append(eliminate_quantifiers(formula, qe_timeout_s) if kind == "qe" else formula)
        return constraints
