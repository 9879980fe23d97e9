"""Which engine checks which assert: computed once per spec, before any box is searched.

The engine asked for comes first, then every other registered engine in registry order; each assert
goes to the first of them that can express it (``Engine.cannot_express``), with a note when that is
not the engine asked for. With the built-in registry this is: Marabou for asserts whose violation is
a small linear disjunction and z3 for the rest, or z3 for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsade.errors import UserInputError
from deepsade.spec import Spec
from deepsade.verification.engine import Engine, ViolationForm
from deepsade.verification.engines import engine_class, engine_names
from deepsade.verification.violation import MAX_DISJUNCTS, Disjunct, violation_disjuncts


@dataclass
class Plan:
    """How each assert is checked (plain data: picklable, sent to worker processes).

    ``disjuncts[i]``: the violation of assert i as linear disjuncts, or None when it has no such form
    (``reasons[i]`` says why; the bound pre-check skips such an assert). ``assignments`` maps engine
    names, in the order they are run, to the asserts each checks; ``engines`` holds their classes
    (pickled by reference: a worker process imports the module that defines a plug-in engine)."""

    disjuncts: dict[int, list[Disjunct] | None]
    assignments: dict[str, list[int]]
    notes: list[str]
    reasons: dict[int, str] = field(default_factory=dict)
    engines: dict[str, type[Engine]] = field(default_factory=dict)

    def on(self, engine: str) -> list[int]:
        """The asserts ``engine`` checks (empty when it checks none)."""
        return self.assignments.get(engine, [])

    def engine_order(self) -> list[str]:
        """The engines of this plan in the order they are run (and tried when one must hand over)."""
        return list(self.assignments)


def make_plan(spec: Spec, engine: str, max_disjuncts: int = MAX_DISJUNCTS) -> Plan:
    """Assign every assert to an engine: ``engine`` where it can express the assert, else the first
    registered engine that can (a note says so). A UserInputError for an unknown engine name."""
    chosen = engine_class(engine)
    order = [engine, *(name for name in engine_names() if name != engine)]
    disjuncts: dict[int, list[Disjunct] | None] = {}
    reasons: dict[int, str] = {}
    assignments: dict[str, list[int]] = {name: [] for name in order}
    notes = []
    for a in spec.asserts:
        disjuncts[a.index], reasons[a.index] = violation_disjuncts(a, max_disjuncts)
        form = ViolationForm(a, disjuncts[a.index], reasons[a.index])
        refusal = chosen.cannot_express(form)
        taker = engine if refusal is None else next(
            (name for name in order[1:] if engine_class(name).cannot_express(form) is None), None)
        if taker is None:
            raise UserInputError(f"no registered engine can check assert {a.index + 1} ({refusal})")
        assignments[taker].append(a.index)
        if refusal is not None:
            notes.append(f"assert {a.index + 1} is checked with {taker} ({chosen.label} cannot express it: {refusal})")
    return Plan(disjuncts, assignments, notes, reasons, {name: engine_class(name) for name in order})
