"""The exact certificate of a network with score clamps: every assert checked with the base scores FREE.

Per assert, z3 (QF_LRA, ``max``/``min`` and ReLUs exact as ``ite``, on the stored float32 numbers as
rationals) searches for mapped inputs in the assert's input region (its premise's box of single-input
bounds, the domain otherwise), ANY base scores ``f`` (unbounded reals: nothing about the base network is
used) and an output perturbation of at most ``eps`` at which the clamped scores break the assert. None:
*holds*. ``eps`` is the larger of the certificate's margin and a rigorous bound on how far the float32
layer (gates, sums; ``max``/``min`` are exact) can move a score from the exact layer on the base scores it
is given, for base scores within their exact interval box over the domain widened by the base's float32
error bound; so the claim covers ``predict``'s forward pass (float64, a smaller roundoff) and float32 too.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Any

import z3

from deepsade.constructions.base_box import base_output_box
from deepsade.constructions.certificate import (
    CERTIFIED,
    NOT_CERTIFIED,
    _input_error,
    find_violation,
    settle_answer,
)
from deepsade.constructions.linear_gate import side_term
from deepsade.constructions.score_clamp_rule import ScoreProgram
from deepsade.data import Domain, Encoding
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.regions import input_regions
from deepsade.spec import Spec, input_var, output_var

_U32 = 2.0 ** -24


def _max(values: list) -> z3.ArithRef:
    result = values[0]
    for v in values[1:]:
        result = z3.If(v > result, v, result)
    return result


def _min(values: list) -> z3.ArithRef:
    result = values[0]
    for v in values[1:]:
        result = z3.If(v < result, v, result)
    return result


def program_terms(program: ScoreProgram, fs: list[z3.ArithRef]) -> list[z3.ArithRef]:
    """The clamped scores as z3 terms of the base scores ``fs`` and the inputs (``input_var``), exactly."""
    def relu(term: z3.ArithRef) -> z3.ArithRef:
        return z3.If(term > 0, term, z3.RealVal(0))

    h = []
    for gate in program.gates:
        sides = [relu(side_term(side)) for side in gate.sides]
        g = relu(1 - z3.Sum(sides)) if sides else z3.RealVal(1)
        h.append(z3_rational(gate.scale) * g - z3_rational(gate.offset))
    final: dict[int, z3.ArithRef] = {}

    def score(k: int) -> z3.ArithRef:
        return final.get(k, fs[k])

    for step in program.steps:
        value, lows = fs[step.output], []
        for t in step.terms:
            parts = [h[p.index] if p.kind == "gate" else p.sign * score(p.index) + z3_rational(p.offset)
                     for p in t.parts] or [z3_rational(program.mu)]
            v = _min(parts)
            anchor = _max([score(k) for k in t.anchor_outputs]) if t.anchor_outputs else z3_rational(t.anchor_const)
            if t.raises:
                value = _max([value, anchor + v])
            else:
                lows.append(anchor - v)
        final[step.output] = _min([value, *lows]) if lows else value
    return [score(k) for k in range(len(fs))]


def layer_error_bound(program: ScoreProgram, n_outputs: int, f_size: float, x_size: dict[int, float],
                      x_error: dict[int, float]) -> float:
    """A bound on |float32 layer(f, x') - exact layer(f, x)| per score, for base scores ``|f| <= f_size`` and
    float32 inputs ``x'`` within ``x_error`` of ``x`` (gamma(n) per sum; max/min exact and 1-Lipschitz)."""
    def gamma(n: int) -> float:
        return n * _U32 / (1 - n * _U32)

    h = []  # (error, magnitude)
    for gate in program.gates:
        error, size = 0.0, 1.0
        for side in gate.sides:  # sum_j w_j x'_j + b: input error, then gamma(k + 1) of the k + 1 terms
            ab = abs(float(side.bias))
            moved = sum(abs(float(w)) * x_error[j] for j, w in side.terms)
            reach = sum(abs(float(w)) * (x_size[j] + x_error[j]) for j, w in side.terms) + ab
            error += moved + gamma(len(side.terms) + 1) * reach
            size += sum(abs(float(w)) * x_size[j] for j, w in side.terms) + ab
        g_error = error + gamma(len(gate.sides) + 1) * (size + error)
        scale, offset = float(gate.scale), float(gate.offset)
        h.append((scale * g_error + gamma(2) * (scale * (1 + g_error) + offset), scale + offset))
    final: dict[int, tuple[float, float]] = {}

    def score(k: int) -> tuple[float, float]:
        return final.get(k, (0.0, f_size))

    for step in program.steps:
        error, size = score(step.output)
        for t in step.terms:
            parts = []
            for p in t.parts:
                if p.kind == "gate":
                    parts.append(h[p.index])
                else:
                    e, s = score(p.index)
                    parts.append((e + _U32 * (s + e + abs(float(p.offset))), s + abs(float(p.offset))))
            if not parts:
                parts = [(0.0, float(program.mu))]
            v_error, v_size = max(e for e, _ in parts), max(s for _, s in parts)
            if t.anchor_outputs:
                a_error = max(score(k)[0] for k in t.anchor_outputs)
                a_size = max(score(k)[1] for k in t.anchor_outputs)
            else:
                a_error, a_size = 0.0, abs(float(t.anchor_const))
            error = max(error, a_error + v_error + _U32 * (a_size + v_size + a_error + v_error))
            size = max(size, a_size + v_size)
        final[step.output] = (error, size)
    bound = max((final[k][0] for k in final), default=0.0) * (1 + 1e-6)
    return bound if math.isfinite(bound) else math.inf


def check_program(program: ScoreProgram, spec: Spec, low: list[Fraction], high: list[Fraction], eps: Fraction,
                  timeout_s: float | None) -> list[tuple[int, z3.CheckSatResult, z3.ModelRef | None, float]]:
    """Per assert: z3's answer to "inputs in its region, any base scores, a perturbation of at most ``eps``,
    and the clamped scores break it" (unsat: holds), the model when sat, and the seconds."""
    n_out = len(spec.output_names)
    fs = [z3.Real(f"f!{k}") for k in range(n_out)]
    outputs = program_terms(program, fs)
    perturbations = [z3.Real(f"e!{k}") for k in range(n_out)]
    exact = z3_rational(eps)
    regions = input_regions(spec, low, high)
    answers = []
    for a in spec.asserts:
        t0 = time.perf_counter()
        region = regions[a.index]
        own_low, own_high = (region.low, region.high) if region.restricts and not region.empty else (low, high)
        solver = z3.Solver()
        if timeout_s is not None:
            solver.set("timeout", int(timeout_s * 1000))
        solver.add(*[c for j in range(len(own_low)) for c in (input_var(j) >= z3_rational(own_low[j]),
                                                               input_var(j) <= z3_rational(own_high[j]))])
        solver.add(*[c for e in perturbations for c in (e >= -exact, e <= exact)])
        solver.add(z3.Not(z3.substitute(a.scaled, *[(output_var(k), outputs[k] + perturbations[k])
                                                    for k in range(n_out)])))
        answer = solver.check()
        answers.append((a.index, answer, solver.model() if answer == z3.sat else None,
                        time.perf_counter() - t0))
    return answers


def certify_score_clamped(model, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                          timeout_s: float | None, base: dict[str, Any], started: float,
                          base_output_error: float) -> dict[str, Any]:
    """Exactly check every assert of the original rule on the score-clamped network with the base scores
    free; the certificate dict in DeepSaDe's format."""
    program = model.program
    base = {**base, "method": "z3 QF_LRA search per assert through the score clamps (max/min and ReLUs exact) "
                              "with the base scores free (any real value) and inputs in the assert's region",
            "construction": {"kind": model.kind, "clamped_scores": [s.output for s in program.steps],
                             "premise_gates": len(program.gates), "mu": float(program.mu), "by_construction": [],
                             "checked": "the whole rule, for every base score whatsoever, through the stored "
                                        "score clamps"}}
    low, high = domain.scaled_exact(encoding)
    f_low, f_high = base_output_box(model, low, high)
    f_size = float(max((max(abs(a), abs(b)) for a, b in zip(f_low, f_high, strict=True)), default=0)) * (1 + 1e-9) \
        + base_output_error
    x_size, x_error = _input_error(encoding, domain)
    mapped = model.mapped_features.numpy().tolist()
    rounding = layer_error_bound(program, model.n_outputs, f_size, {j: float(x_size[j]) for j in mapped},
                                 {j: float(x_error[j]) for j in mapped})
    base["float32_error_bound"] = rounding
    eps = max(Fraction(margin), Fraction(rounding)) if math.isfinite(rounding) else None
    results, verdict = [], CERTIFIED
    if eps is None:
        base["warning"] = "no finite float32 error bound for the layer on this domain"
        eps = Fraction(margin)
        verdict = NOT_CERTIFIED
    base["checked_perturbation"] = float(eps)
    for index, answer, point, seconds in check_program(program, spec, low, high, eps, timeout_s):
        a = spec.asserts[index]
        entry: dict[str, Any] = {"assert": index + 1, "text": " ".join(a.text.split())}

        def search(index=index, point=point) -> Any:
            hint = {j: z3_fraction(point.eval(input_var(j), model_completion=True)) for j in mapped}
            return find_violation(model, spec, encoding, list(low), list(high), index, hint)

        verdict = settle_answer(entry, answer, verdict, search)
        entry["seconds"] = round(seconds, 4)
        results.append(entry)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - started, 4)}


def program_holds(program: ScoreProgram, spec: Spec, low: list[Fraction], high: list[Fraction], margin: float,
                  timeout_s: float | None = 30.0) -> list[int]:
    """The asserts (0-based) the program does not provably keep for every base score (empty: all kept)."""
    eps = Fraction(4 * margin)  # the stored layer's eps is checked again on the trained model
    return [i for i, answer, _, _ in check_program(program, spec, low, high, eps, timeout_s) if answer != z3.unsat]

