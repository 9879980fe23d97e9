"""Rules about which labels are predicted, and monotone in them: recognised, with their minimal label sets.

A multi-label (or binary) rule that mentions no input and depends on the scores only through their signs
(label k is predicted when ``y_k > 0``) is a Boolean function of the predicted label set. When it is
*monotone* (predicting one more label never breaks it), it holds exactly when the predicted set contains one
of its *minimal sets*. UC4's "the digits present sum to more than 10" is such a rule: its minimal sets are
{2, 9}, {3, 8}, ..., {1, 2, 8}, ... (26 sets). ``deepsade.constructions.repair_layer`` turns the minimal sets
into an output layer that makes the rule hold for every base output.

Recognition is exact: z3 decides, on each orthant of the mentioned outputs (each ``y_k > 0`` or ``y_k <= 0``),
whether the rule is true everywhere on it, false everywhere, or depends on more than the signs (refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from deepsade.constructions.recognise import NotApplicable
from deepsade.spec import Spec, output_var

MAX_LABELS = 14  # 2^14 orthants, two z3 calls each: a few seconds at most


@dataclass(frozen=True)
class MonotoneRule:
    """The outputs the rule mentions and its minimal sets of predicted labels (output indices, each sorted)."""

    outputs: tuple[int, ...]
    minimal_sets: tuple[tuple[int, ...], ...]


def _orthant(outputs: tuple[int, ...], positive: int) -> list[z3.BoolRef]:
    return [output_var(k) > 0 if positive >> i & 1 else output_var(k) <= 0 for i, k in enumerate(outputs)]


def recognise_monotone(spec: Spec, task: str | None) -> MonotoneRule:
    """The rule's minimal label sets, or ``NotApplicable`` with the reason in one line (``task`` None: the
    rule alone, as ``advise`` asks before a task is known)."""
    if task is not None and task not in ("binary", "multilabel"):
        raise NotApplicable(f"label-set repair takes binary and multi-label rules, not {task} ones")
    for a in spec.asserts:
        if a.inputs:
            raise NotApplicable(f"assert {a.index + 1} mentions an input: label-set repair takes rules on the "
                                "predicted labels only")
    outputs = tuple(sorted({k for a in spec.asserts for k in a.outputs}))
    if not outputs:
        raise NotApplicable("the rule mentions no output")
    if len(outputs) > MAX_LABELS:
        raise NotApplicable(f"the rule mentions {len(outputs)} outputs; label-set repair enumerates the label sets "
                            f"of at most {MAX_LABELS}")
    rule = z3.And(*[a.scaled for a in spec.asserts])
    holds = _truth_table(rule, outputs)
    n = len(outputs)
    for s in range(1 << n):
        for i in range(n):
            if holds[s] and not s >> i & 1 and not holds[s | 1 << i]:
                raise NotApplicable("the rule is not monotone in the predicted labels (predicting "
                                    f"{_names(spec, outputs, s | 1 << i)} breaks it where {_names(spec, outputs, s)} "
                                    "satisfies it): label-set repair can only add labels")
    if holds[0]:
        raise NotApplicable("the rule holds with no label predicted, so it never needs a label: nothing to repair")
    if not holds[(1 << n) - 1]:
        raise NotApplicable("no set of predicted labels satisfies the rule")
    minimal = [s for s in range(1 << n) if holds[s] and not any(holds[s & ~(1 << i)] for i in range(n) if s >> i & 1)]
    return MonotoneRule(outputs, tuple(tuple(outputs[i] for i in range(n) if s >> i & 1) for s in minimal))


def _truth_table(rule: z3.BoolRef, outputs: tuple[int, ...]) -> list[bool]:
    """Per orthant (bit i set: ``y_{outputs[i]} > 0``) whether the rule holds on it; refuses a rule that
    is true at some point of an orthant and false at another."""
    solver = z3.Solver()
    table = []
    for s in range(1 << len(outputs)):
        solver.push()
        solver.add(*_orthant(outputs, s))
        answers = []
        for claim in (rule, z3.Not(rule)):
            solver.push()
            solver.add(claim)
            answers.append(solver.check())
            solver.pop()
        solver.pop()
        if z3.unknown in answers:
            raise NotApplicable("z3 could not decide the rule on one set of predicted labels")
        if answers == [z3.sat, z3.sat]:
            raise NotApplicable("the rule depends on the scores' values, not only on which labels are predicted")
        table.append(answers[0] == z3.sat)
    return table


def _names(spec: Spec, outputs: tuple[int, ...], s: int) -> str:
    chosen = [spec.output_names[k] for i, k in enumerate(outputs) if s >> i & 1]
    return "{" + ", ".join(chosen) + "}"
