"""The exact certificate of a network with label-set repair (``repair_layer``).

The rule mentions no input, so the check needs no bound on the base network at all: per assert, z3 (linear
real arithmetic, every ``min``/``max``/``relu`` of the layer an exact ``ite`` on the stored sets and level)
searches for base scores ``f`` anywhere in R^n and an output perturbation of at most ``margin`` at which the
repaired scores break the assert. None: *holds*, for every input and whatever the base network is. The sets
and the level are read from the stored network, and the sets are re-checked against the rule: nothing of
the construction is taken on trust. The float forward pass computes the same guarantee exactly (see
``repair_layer``: ``min``/``max`` are exact and the cheapest set's lift is exactly the level).
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import z3

from deepsade.constructions.certificate import CERTIFIED, settle_answer
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, output_var


def _minimum(terms: list[z3.ArithRef]) -> z3.ArithRef:
    out = terms[0]
    for t in terms[1:]:
        out = z3.If(t < out, t, out)
    return out


def repaired_terms(model, fs: list[z3.ArithRef]) -> list[z3.ArithRef]:
    """The repaired scores as exact z3 terms of the base scores ``fs`` (the stored sets and level)."""
    level = z3_rational(Fraction(model.level))
    zero = z3.RealVal(0)
    need = []
    for s in model.sets:
        gap = level - _minimum([fs[k] for k in s])
        need.append(z3.If(gap > 0, gap, zero))
    cheapest = _minimum(need)
    outputs = list(fs)
    for k in model.repaired:
        lift = level - (_minimum([need[i] for i, s in enumerate(model.sets) if k in s]) - cheapest)
        outputs[k] = z3.If(fs[k] >= lift, fs[k], lift)
    return outputs


def certify_repaired(model, spec: Spec, margin: float, timeout_s: float | None, base: dict[str, Any],
                     started: float) -> dict[str, Any]:
    """Exactly check every assert on the repaired scores of any base output; DeepSaDe's certificate format."""
    base = {**base, "method": "z3 QF_LRA search per assert over every base output (the layer's min/max exact as "
                              "ite on the stored sets and level); the float forward pass keeps the cheapest set's "
                              "lift exactly (repair_layer)",
            "float32_error_bound": 0.0,
            "construction": {"kind": model.kind, "sets": [list(s) for s in model.sets], "level": model.level,
                             "by_construction": [],
                             "checked": "the whole rule, for every base output in R^n (so for every input)"}}
    fs = [z3.Real(f"f!{k}") for k in range(model.n_outputs)]
    perturbations = [z3.Real(f"e!{k}") for k in range(model.n_outputs)]
    exact_margin = z3_rational(Fraction(margin))
    outputs = repaired_terms(model, fs)
    results, verdict = [], CERTIFIED
    for a in spec.asserts:
        t0 = time.perf_counter()
        solver = z3.Solver()
        if timeout_s is not None:
            solver.set("timeout", max(1, int(timeout_s * 1000)))
        solver.add(*[c for e in perturbations for c in (e >= -exact_margin, e <= exact_margin)])
        solver.add(z3.Not(z3.substitute(a.scaled, *[(output_var(k), outputs[k] + perturbations[k])
                                                    for k in range(model.n_outputs)])))
        answer = solver.check()
        entry: dict[str, Any] = {"assert": a.index + 1, "text": " ".join(a.text.split()), "input_region": "domain"}
        # scores that break it: whether the base reaches them is not searched, so never 'violated'
        verdict = settle_answer(entry, answer, verdict, None,
                                "bound check failed: the repair layer lets some base scores break the assert")
        if answer == z3.unsat:
            entry["checked_with"] = "every base output"
        entry["seconds"] = round(time.perf_counter() - t0, 4)
        results.append(entry)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - started, 4)}

