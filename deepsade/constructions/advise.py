"""Which registered methods can guarantee a rule, and why not where they cannot.

One ``Advice`` per method of the registry (``deepsade.methods``), in its order. A method that builds
its guarantee into the network (HardNet-Aff, HCR) is asked whether the parsed rule fits it; DeepSaDe
takes every rule z3 decides; a method that does not certify its models cannot guarantee anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from deepsade.constructions.exact_equalities import for_clamps
from deepsade.constructions.polytope import recognise_polytope
from deepsade.constructions.recognise import (
    HARDNET,
    InputDependent,
    NotApplicable,
    OverDetermined,
    compile_affine_rule,
    compile_polytope,
)
from deepsade.data import Domain, Encoding
from deepsade.methods import CONSTRUCTION, get_method, method_names
from deepsade.spec import Spec, vacuous_asserts


@dataclass(frozen=True)
class Advice:
    """Whether ``method`` can guarantee the rule, how (or why not), in one line."""

    method: str
    guarantees: bool
    reason: str


Box = tuple[list[Fraction], list[Fraction]]


def _deepsade(spec: Spec, box: Box) -> tuple[bool, str]:
    vacuous = vacuous_asserts(spec, *box)
    if len(vacuous) == spec.n_written:
        return False, "no assert's premise holds anywhere in the domain box: the rule constrains nothing there"
    note = "" if not vacuous else f" (assert(s) {', '.join(str(i + 1) for i in vacuous)} never apply in the box)"
    linear = all(a.linear for a in spec.asserts)
    return True, ("exact certificate from training the last layer under the rule"
                  + ("" if linear else "; nonlinear terms take the slower exact encodings") + note)


def _hardnet(spec: Spec, box: Box) -> tuple[bool, str]:
    try:
        rule = compile_affine_rule(spec, *box, HARDNET)
    except InputDependent:
        from deepsade.constructions.input_rule import compile_input_dependent_rule

        try:
            input_rule = compile_input_dependent_rule(spec, *box)
        except NotApplicable as exc:
            return False, str(exc)
        return True, (f"by construction, not certified: {input_rule.describe()}; rank and the exact-arithmetic layer "
                      "checked exactly, its rounding not bounded")
    except OverDetermined as exc:
        others = [n for n in method_names() if n != "hardnet" and get_method(n).family == CONSTRUCTION
                  and (n not in RECOGNISERS or RECOGNISERS[n](spec, box)[0])]  # those that take this rule
        hint = f"; A has more rows than outputs: try --method {' or '.join(others)}" if others else ""
        return False, f"{exc}{hint}"
    except NotApplicable as exc:
        return False, str(exc)
    return True, f"by construction, exactly certified: {rule.describe()}"


def _hcr(spec: Spec, box: Box) -> tuple[bool, str]:
    try:
        polytope = compile_polytope(spec, *box)
    except NotApplicable as exc:
        return False, str(exc)
    return True, (f"by construction: a bounded polytope of {len(polytope.rule.rows)} row(s) on "
                  f"{polytope.rule.n_outputs} output(s), independent of the inputs (hyperspherical coordinates "
                  "are not piecewise linear: checked exactly only where stated)")


def _repair(spec: Spec, box: Box, task: str | None = None) -> tuple[bool, str]:
    from deepsade.constructions.monotone_rule import recognise_monotone

    try:
        rule = recognise_monotone(spec, task)
    except NotApplicable as exc:
        return False, str(exc)
    return True, (f"by construction, exactly certified (binary and multi-label models): a fixed layer adds the "
                  f"cheapest of the rule's {len(rule.minimal_sets)} minimal label set(s) where the network's own "
                  "labels break it")


def _scoreclamp(spec: Spec, box: Box, task: str | None = None) -> tuple[bool, str]:
    if task is None:
        return False, "score clamps are for classifier scores (the task is not known here)"
    from deepsade.constructions.score_clamp_train import recognise_score_clamps

    return recognise_score_clamps(spec, box, task)


# The methods that can guarantee a rule and the test that says whether they apply to it.
RECOGNISERS: dict[str, Callable[[Spec, Box], tuple[bool, str]]] = {
    "deepsade": _deepsade,
    "hardnet": _hardnet,
    "hcr": _hcr,
    "polytope": recognise_polytope,  # deepsade.constructions.polytope: sequential clamps (+ DeepSaDe for the rest)
    "repair": _repair,  # deepsade.constructions.repair_layer: label-set repair of a monotone label rule
    "scoreclamp": _scoreclamp,  # deepsade.constructions.score_clamp: max/min after a classifier's scores
}


def advise(spec: Spec, encoding: Encoding, domain: Domain) -> list[Advice]:
    """One Advice per registered method (registry order); ``hcr``'s test is listed even when the method is not
    registered, so the answer says whether the construction would apply."""
    box = domain.scaled_exact(encoding)
    advice = []
    names = list(method_names()) + [name for name in RECOGNISERS if name not in method_names()]
    for name in names:
        if name in RECOGNISERS:
            if name in ("repair", "scoreclamp"):
                fits, reason = RECOGNISERS[name](spec, box, encoding.task)
            elif name == "polytope":  # in the output scaling that makes the rule's equalities exact, if any
                fits, reason = RECOGNISERS[name](for_clamps(spec, encoding)[0], box)
            else:
                fits, reason = RECOGNISERS[name](spec, box)
            if name not in method_names():
                reason = f"(not available in this version) {reason}"
                fits = False
            advice.append(Advice(name, fits, reason))
            continue
        method = get_method(name)
        if method.certifies:
            advice.append(Advice(name, True, f"certifies its models: {method.description}"))
        else:
            advice.append(Advice(name, False, f"no guarantee: {method.description}"))
    return advice
