"""Searching for counterexamples: does the network break an assert somewhere in a box of inputs?

The question, for a box ``R`` of scaled inputs (an L-inf ball around an instance intersected with the
domain box D, or D itself): is there ``x in R`` with ``P(x) and not Q(x, f(x))`` for some assert, where
``f`` is the stored network evaluated exactly (float32 weights read as rationals, no approximation)?

Per box, in this order:

1. ``presample`` random points of the box are tried (a break there is a counterexample like any other,
   confirmed the same way);
2. sound linear bounds (``relaxation``, through ``bound_check``) are computed for every atom of every violation disjunct: an
   assert whose every disjunct contains an atom the bounds rule out cannot break in the box
   (``decided_by="bounds"``);
3. z3 on the last layers alone, with what comes before them free in sound bounds over the box
   (``abstraction``: a plain network's last layer with the last hidden layer's output free, ``z3-latent``; a
   construction's enforcement layer with the base output free, ``z3-enforcement``): an assert proved there
   holds in the network; a violation there proves nothing, and the assert goes on to step 4;
4. the engines of the plan (``planner``) run on the asserts left, each on the asserts assigned to it.

Nothing is claimed without proof: every counterexample is re-evaluated on the network in exact
rational arithmetic and must break an assert there (``Outcome.broken``); a witness from an inexact
engine (Marabou, double precision) that does not is re-checked by an exact one (z3). A timeout is
``unknown``, never ``verified``.

Realisable inputs only (``deepsade.realisable``, on by default): the box is first cut to its
realisable hull (whole numbers in integer columns, one-hot inputs fixed where only one category is
possible; a box with no realisable input is ``outside``), sampled points and engine witnesses are
snapped onto inputs a real row could have, the engines search only such inputs (z3 natively, Marabou
by enumerating categories and small integer ranges), and a counterexample is reported only after an exact check that it is one. The
bound pre-check works on the hull, a superset of the realisable inputs, so what it rules out is
ruled out for them too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import z3

from deepsade.errors import UserInputError
from deepsade.numbers import z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, input_var, output_var
from deepsade.verification.abstraction import Abstraction, abstraction_of
from deepsade.verification.bound_check import BoundCheck
from deepsade.verification.engine import Engine, Query, ViolationForm
from deepsade.verification.engines import engine_class
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Answer, Outcome, Status, Verdict, join_notes
from deepsade.verification.planner import Plan, make_plan

Box = tuple[list[Fraction], list[Fraction]]


class Verifier:
    """Counterexample search for one network and spec: over a box, an eps-ball or the whole domain.

    Per box, in this order: ``presample`` random points (a break there is a counterexample, confirmed
    exactly); sound linear bounds on every atom of each assert's violation (``bound_check``: an assert
    whose every disjunct has an atom the bounds rule out cannot break in the box); then the engines of
    the plan on the asserts left (by default Marabou, with z3 for what Marabou cannot express; or z3
    for all).

    ``realisable``: search only the inputs a real row could have (one category per one-hot group,
    whole numbers in integer columns); None searches the relaxed box."""

    def __init__(self, weights: NetworkWeights, spec: Spec, domain_lower: Sequence[Fraction],
                 domain_upper: Sequence[Fraction], engine: str = "marabou", timeout: float = 10.0,
                 presample: int = 64, bound_check: bool = True, seed: int = 0, plan: Plan | None = None,
                 realisable: RealisableInputs | None = None, last_layers_first: bool | None = None):
        if not timeout > 0:
            raise UserInputError(f"timeout must be positive, got {timeout}")
        if presample < 0:
            raise UserInputError(f"presample must be >= 0, got {presample}")
        if len(domain_lower) != weights.n_inputs or len(spec.input_names) != weights.n_inputs:
            raise UserInputError(f"the network has {weights.n_inputs} inputs but the encoding/domain has "
                                 f"{len(spec.input_names)}/{len(domain_lower)}")
        if len(spec.output_names) != weights.n_outputs:
            raise UserInputError(f"the network has {weights.n_outputs} outputs but the encoding names "
                                 f"{len(spec.output_names)}")
        self.weights, self.spec = weights, spec
        self.domain_lower = [Fraction(v) for v in domain_lower]
        self.domain_upper = [Fraction(v) for v in domain_upper]
        self.engine, self.timeout, self.presample = engine, float(timeout), int(presample)
        self.bound_check, self.seed = bool(bound_check), int(seed)
        self.plan = plan if plan is not None else make_plan(spec, engine)
        if realisable is not None and len(realisable.scales) != weights.n_inputs:
            raise UserInputError(f"the network has {weights.n_inputs} inputs but the encoding scales "
                                 f"{len(realisable.scales)}")
        self.realisable = realisable if realisable is not None and realisable.constrained else None
        self._engines: dict[str, Engine] = {}  # built on first use: z3 encodes the network once
        self._bounds = BoundCheck(self.plan.disjuncts, weights)
        # the last-layers proof rests on the same sound bounds as the pre-check: off with it, unless asked for
        last_layers_first = self.bound_check if last_layers_first is None else last_layers_first
        self._abstraction: Abstraction | None = abstraction_of(weights) if last_layers_first else None
        self._abstract_engine: Engine | None = None  # z3 on the abstract network, built on first use

    @property
    def notes(self) -> list[str]:
        """What the plan says about asserts that the engine asked for cannot express, and which inputs
        count as realisable."""
        notes = list(self.plan.notes)
        if self.realisable is not None:
            notes.append("only inputs a real row could have are searched: "
                         + self.realisable.describe(self.spec.input_names))
        return notes

    # ---- boxes ----
    def ball(self, center: np.ndarray, epsilon: float) -> Box:
        """The L-inf ball of radius ``epsilon`` (scaled units) around ``center``, cut to the domain box, exactly."""
        radius = Fraction(repr(float(epsilon)))
        centre = [Fraction(float(v)) for v in np.asarray(center, dtype=np.float64)]
        lower = [max(c - radius, lo) for c, lo in zip(centre, self.domain_lower, strict=True)]
        upper = [min(c + radius, hi) for c, hi in zip(centre, self.domain_upper, strict=True)]
        return lower, upper

    def check_domain(self) -> Outcome:
        """Search the whole domain box for a counterexample."""
        return self.check_box(self.domain_lower, self.domain_upper)

    def check_ball(self, center: np.ndarray, epsilon: float, key: int = 0) -> Outcome:
        """Search the eps-ball around ``center`` (cut to the domain box) for a counterexample."""
        lower, upper = self.ball(center, epsilon)
        return self.check_box(lower, upper, center=np.asarray(center, dtype=np.float64), key=key)

    def check_balls(self, center: np.ndarray, epsilons: Sequence[float], key: int = 0) -> list[Outcome]:
        """One outcome per epsilon (in the given order), using that balls are nested: a counterexample in a
        smaller ball is one in every larger ball, and a verified larger ball verifies the smaller ones.
        The largest ball is checked first, then the others from small to large."""
        order = sorted(range(len(epsilons)), key=lambda i: epsilons[i])
        outcomes: dict[int, Outcome] = {}
        for i in order[-1:] + order[:-1]:
            lower, upper = self.ball(center, epsilons[i])
            known = self._implied(outcomes, epsilons, i, lower, upper)
            outcomes[i] = known if known is not None else self.check_box(
                lower, upper, center=np.asarray(center, dtype=np.float64), key=key)
        return [outcomes[i] for i in range(len(epsilons))]

    @staticmethod
    def _implied(outcomes: dict[int, Outcome], epsilons: Sequence[float], i: int,
                 lower: list[Fraction], upper: list[Fraction]) -> Outcome | None:
        for j, done in outcomes.items():
            if done.status in (Status.VERIFIED, Status.OUTSIDE) and epsilons[j] >= epsilons[i]:
                return Outcome(done.status, done.decided_by, 0.0, note=f"follows from eps={epsilons[j]:g}")
            if done.status is Status.COUNTEREXAMPLE and done.point is not None:
                point = list(done.exact_point) if done.exact_point is not None else [Fraction(float(v))
                                                                                     for v in done.point]
                if all(lo <= v <= hi for v, lo, hi in zip(point, lower, upper, strict=True)):
                    return Outcome(Status.COUNTEREXAMPLE, done.decided_by, 0.0, done.point, done.outputs,
                                   done.broken, done.float_confirmed, note=f"same point as eps={epsilons[j]:g}",
                                   exact_point=done.exact_point)
        return None

    def check_box(self, lower: Sequence[Fraction], upper: Sequence[Fraction], center: np.ndarray | None = None,
                  key: int = 0) -> Outcome:
        """Search the box [lower, upper] (scaled units, exact) for an input that breaks an assert."""
        start = time.perf_counter()
        lower, upper = [Fraction(v) for v in lower], [Fraction(v) for v in upper]
        if any(lo > hi for lo, hi in zip(lower, upper, strict=True)):
            return Outcome(Status.OUTSIDE, "", time.perf_counter() - start, note="the box misses the domain box")
        if self.realisable is not None:
            hull = self.realisable.hull(lower, upper)
            if hull is None:
                return Outcome(Status.OUTSIDE, "", time.perf_counter() - start,
                               note="the box holds no input a real row could have (a category or whole number)")
            lower, upper = hull
        outcome = self._sample(lower, upper, center, key) if self.presample else None
        if outcome is None:
            remaining = [a.index for a in self.spec.asserts]
            if self.bound_check:
                remaining = self._bounds.not_ruled_out(lower, upper, remaining)
            proven = self._proven_on_last_layers(lower, upper, remaining) if remaining else []
            remaining = [i for i in remaining if i not in proven]
            if not remaining:
                outcome = Outcome(Status.VERIFIED, self._abstraction.label if proven else "bounds")
            else:
                outcome = self._solve(lower, upper, remaining)
                if proven and outcome.status is Status.VERIFIED:
                    outcome.decided_by = f"{self._abstraction.label}+{outcome.decided_by}"
        outcome.seconds = time.perf_counter() - start
        return outcome

    # ---- step 1: random points ----
    def _sample(self, lower: list[Fraction], upper: list[Fraction], center: np.ndarray | None,
                key: int) -> Outcome | None:
        """Try random points of the box (coordinates uniform, or at a bound, or at the centre)."""
        rng = np.random.default_rng([self.seed, key])
        low, high = np.array([float(v) for v in lower]), np.array([float(v) for v in upper])
        middle = np.clip(center, low, high) if center is not None else (low + high) / 2
        n, d = self.presample, len(low)
        choice = rng.integers(0, 4, size=(n, d))
        uniform = low + rng.random((n, d)) * (high - low)
        points = np.where(choice == 0, uniform, np.where(choice == 1, low, np.where(choice == 2, high, middle)))
        points[0] = middle
        if self.realisable is not None:
            points = self.realisable.snap(points, low, high)
        truth = self.spec.evaluate_scaled(points, self.weights.forward(points))
        for row in np.flatnonzero(~truth.all(axis=1))[:3]:
            exact = self._realisable_point([Fraction(v) for v in points[row].tolist()], lower, upper)
            outcome = self._counterexample(exact, "sampling") if exact is not None else None
            if outcome is not None:
                return outcome
        return None

    # ---- step 3: the last layers alone ----
    def _proven_on_last_layers(self, lower: list[Fraction], upper: list[Fraction], indices: list[int]) -> list[int]:
        """Asserts among ``indices`` that z3 proves on the abstract network over the box (``abstraction``)."""
        if self._abstraction is None:
            return []
        if self._abstract_engine is None:
            self._abstract_engine = self._abstraction.engine()
        # the full timeout per assert: where this search gives no answer in time, the whole network's rarely does
        # (household_budget, results/verify: 3.7 s and 7.5 s for two of its asserts)
        return self._abstraction.proven(self._abstract_engine, lower, upper, [self.spec.asserts[i] for i in indices],
                                        self.timeout, self.plan.disjuncts)

    # ---- step 4: the engines ----
    def _engine_class(self, name: str) -> type[Engine]:
        """The engine class the plan chose for ``name`` (the registry's when the plan holds none)."""
        return self.plan.engines[name] if name in self.plan.engines else engine_class(name)

    def _engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = self._engine_class(name)(self.weights)
        return self._engines[name]

    def _solve(self, lower: list[Fraction], upper: list[Fraction], indices: list[int]) -> Outcome:
        """Run the plan's engines, in order, each on its asserts among ``indices`` over the box."""
        notes, unknown, used = [], False, []
        for name in self.plan.engine_order():
            assigned = [i for i in indices if i in self.plan.on(name)]
            if not assigned:
                continue
            if name not in used:
                used.append(name)
            outcome = self._run(self._engine(name), lower, upper, assigned, used)
            if outcome.status is Status.COUNTEREXAMPLE:
                return outcome
            unknown |= outcome.status is Status.UNKNOWN
            notes.append(outcome.note)
        return Outcome(Status.UNKNOWN if unknown else Status.VERIFIED, "+".join(used), note=join_notes(*notes))

    def _run(self, engine: Engine, lower: list[Fraction], upper: list[Fraction], indices: list[int],
             used: list[str]) -> Outcome:
        """One engine on the asserts ``indices``; a witness is confirmed exactly before it is reported."""
        disjuncts = list(dict.fromkeys(d for i in indices for d in self.plan.disjuncts[i] or []))
        query = Query(lower, upper, [self.spec.asserts[i] for i in indices], disjuncts, self.timeout,
                      self.realisable)
        answer = engine.check(query)
        if answer.verdict is Verdict.NO_VIOLATION:
            return Outcome(Status.VERIFIED, engine.name)
        if answer.verdict is Verdict.UNKNOWN:
            which = ", ".join(str(i + 1) for i in indices)  # one query searches these asserts together
            return Outcome(Status.UNKNOWN, engine.name,
                           note=f"unknown on assert{'s' if len(indices) > 1 else ''} {which}: {answer.reason}")
        outcome = self._confirmed(answer, lower, upper, engine.name)
        if outcome is not None:
            return outcome
        if engine.exact:  # would be a bug in the engine's encoding: never claim it
            return Outcome(Status.UNKNOWN, engine.name,
                           note=f"{engine.name}'s counterexample did not hold on exact re-evaluation")
        retry = engine.retry(query)
        outcome = self._confirmed(retry, lower, upper, engine.name) if retry is not None else None
        if outcome is not None:
            return outcome
        # none with a margin (or again not exact): an exact engine decides these asserts
        checker = self._exact_checker(indices, engine.name)
        if checker is None:
            return Outcome(Status.UNKNOWN, engine.name, note=f"{engine.name}'s counterexample did not hold in "
                           "exact arithmetic and no exact engine can check these asserts")
        if checker.name not in used:
            used.append(checker.name)
        outcome = self._run(checker, lower, upper, indices, used)
        outcome.note = join_notes(f"{engine.name}'s counterexample did not hold in exact arithmetic; "
                                  f"{checker.name} re-checked", outcome.note)
        outcome.decided_by = f"{engine.name}+{checker.name}"
        return outcome

    def _exact_checker(self, indices: list[int], after: str) -> Engine | None:
        """The first exact engine of the plan's order (other than ``after``) that can express every assert."""
        forms = [ViolationForm(self.spec.asserts[i], self.plan.disjuncts[i], self.plan.reasons.get(i, ""))
                 for i in indices]
        for name in self.plan.engine_order():
            engine = self._engine_class(name)
            if name != after and engine.exact and all(engine.cannot_express(f) is None for f in forms):
                return self._engine(name)
        return None

    def _confirmed(self, answer: Answer, lower: list[Fraction], upper: list[Fraction],
                   decided_by: str) -> Outcome | None:
        """The counterexample at the answer's witness, if it is one in exact arithmetic."""
        if answer.verdict is not Verdict.VIOLATION or answer.point is None:
            return None
        point = self._realisable_point([Fraction(v) for v in answer.point], lower, upper)
        return self._counterexample(point, decided_by) if point is not None else None

    def _realisable_point(self, point: list[Fraction], lower: list[Fraction],
                          upper: list[Fraction]) -> list[Fraction] | None:
        """``point`` clipped to the box and, when only realisable inputs count, snapped onto the nearest
        one (a float witness of 0.9999999 for a category becomes 1); None when the box holds none."""
        if self.realisable is not None:
            return self.realisable.snap_exact(point, lower, upper)
        return [min(max(v, lo), hi) for v, lo, hi in zip(point, lower, upper, strict=True)]

    # ---- exact re-evaluation ----
    def broken_exact(self, point: Sequence[Fraction]) -> tuple[int, ...]:
        """Indices of the asserts the network breaks at ``point`` (scaled inputs), in exact arithmetic."""
        outputs = self.weights.forward_exact(point)
        pairs = [(input_var(j), z3_rational(v)) for j, v in enumerate(point)]
        pairs += [(output_var(k), z3_rational(v)) for k, v in enumerate(outputs)]
        return tuple(a.index for a in self.spec.asserts if z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs))))

    def _counterexample(self, point: list[Fraction], decided_by: str) -> Outcome | None:
        """An Outcome for ``point`` if it is an input a real row could have (when that is asked) and the
        network breaks an assert there in exact arithmetic, else None."""
        if self.realisable is not None and not self.realisable.contains(point):
            return None
        broken = self.broken_exact(point)
        if not broken:
            return None
        as_float = np.array([float(v) for v in point])[None, :]
        outputs = self.weights.forward(as_float)
        float_ok = bool(~self.spec.evaluate_scaled(as_float, outputs).all())
        note = "" if float_ok else "the violation is below float64 resolution: it shows in exact arithmetic only"
        return Outcome(Status.COUNTEREXAMPLE, decided_by, point=as_float[0], outputs=outputs[0], broken=broken,
                       float_confirmed=float_ok, note=note, exact_point=tuple(point))
