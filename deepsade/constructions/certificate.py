"""The exact certificate of a constructed network, in the format of DeepSaDe's (``deepsade.certify``).

The check does not trust the construction: it proves the rule on the stored float32 numbers. Exact
rational interval bounds give a box that holds the base network's output ``f`` for every input of the
domain (``f`` and the mapped inputs ``x`` are then treated as independent, an over-approximation); per
assert, z3 (QF_LRA, ReLUs as ``ite``) searches for ``x`` in the box, ``f`` in its box and an output
perturbation of at most ``margin`` where the enforced output breaks the assert. None: *holds*. The layer
is piecewise linear, so nothing is left "by construction" for HardNet-Aff with constant ``A``: every part
of the claim is checked. A failed search gives *violated* only when a concrete input, evaluated exactly
on the plain ReLU form of the network, breaks the rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import z3

from deepsade.constructions.base_box import base_output_box, stored_fractions
from deepsade.data import Domain, Encoding
from deepsade.float_error import rounding_warning, scaled_input_error
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, input_var, output_var

# The verdicts of deepsade.certify.Verdict, by value (that module imports this one).
CERTIFIED, NOT_CERTIFIED, VIOLATED = "certified", "not certified", "violated"
_U32 = 2.0 ** -24
_U64 = 2.0 ** -53
_RANDOM_CANDIDATES = 256


def _enforced_terms(model, fs: list[z3.ArithRef]) -> list[z3.ArithRef]:
    """The enforced outputs as z3 terms of ``f`` (``fs``) and the mapped inputs (``input_var``), exactly."""
    mapped = model.mapped_features.tolist()
    xs = [input_var(j) for j in mapped]

    def affine(row: np.ndarray, variables: list[z3.ArithRef]) -> z3.ArithRef:
        terms = [z3_rational(c) * v for c, v in zip(row, variables, strict=True) if c != 0]
        return z3.Sum(terms) if terms else z3.RealVal(0)

    def relu(term: z3.ArithRef) -> z3.ArithRef:
        return z3.If(term > 0, term, z3.RealVal(0))

    a_u, b_u, c_u = (stored_fractions(t) for t in (model.upper_matrix, model.upper_inputs, model.upper_const))
    a_l, b_l, c_l = (stored_fractions(t) for t in (model.lower_matrix, model.lower_inputs, model.lower_const))
    p_u, p_l = stored_fractions(model.upper_lift), stored_fractions(model.lower_lift)
    over = [z3.Real(f"over!{i}") for i in range(len(c_u))]
    under = [z3.Real(f"under!{i}") for i in range(len(c_l))]
    definitions = [o == relu(affine(a_u[i], fs) - affine(b_u[i], xs) - z3_rational(c_u[i]))
                   for i, o in enumerate(over)]
    definitions += [u == relu(affine(b_l[i], xs) + z3_rational(c_l[i]) - affine(a_l[i], fs))
                    for i, u in enumerate(under)]
    outputs = [fs[k] - affine(p_u[k], over) + affine(p_l[k], under) for k in range(len(fs))]
    return outputs, definitions


def enforcement_error_bound(model, f_error: float, f_size: np.ndarray, x_size: np.ndarray,
                            x_error: np.ndarray) -> float:
    """A bound on |float32 enforced output - exact enforced output| per output, given the base output's error
    ``f_error`` and magnitude ``f_size``, and the mapped inputs' magnitude and error (same model as
    ``deepsade.float_error.float32_error_bound``: gamma(n) per dot product, errors propagated through |W|)."""
    def gamma(n: int) -> float:
        return n * _U32 / (1 - n * _U32)

    def absolute(t: torch.Tensor) -> np.ndarray:
        return np.abs(t.detach().to(torch.float32).numpy().astype(np.float64))

    n_out, m = model.n_outputs, len(model.mapped_features)
    errors, sizes, lifts = [], [], []
    for matrix, inputs, const, lift in ((model.upper_matrix, model.upper_inputs, model.upper_const, model.upper_lift),
                                        (model.lower_matrix, model.lower_inputs, model.lower_const, model.lower_lift)):
        a, b, c = absolute(matrix), absolute(inputs), absolute(const)
        size = a @ (f_size + f_error) + b @ (x_size + x_error) + c
        error = a @ np.full(n_out, f_error) + b @ x_error + gamma(n_out + m + 3) * size
        errors.append(error)
        sizes.append(size + error)
        lifts.append(absolute(lift))
    k = sum(len(e) for e in errors)
    total = f_error + sum(lift @ e for lift, e in zip(lifts, errors, strict=True)) \
        + gamma(k + 3) * (f_size + f_error + sum(lift @ s for lift, s in zip(lifts, sizes, strict=True)))
    bound = float(np.max(total)) * (1 + 1e-6) if np.size(total) else 0.0
    return bound if math.isfinite(bound) else math.inf


def _input_error(encoding: Encoding, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and rounding error of the scaled inputs as ``predict`` computes them (float64 then float32):
    ``deepsade.float_error.scaled_input_error``'s box as magnitudes."""
    low, high, error = scaled_input_error(encoding, domain)
    with np.errstate(all="ignore"):
        return np.maximum(np.abs(low), np.abs(high)), error


def certify_constructed(model, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                        timeout_s: float | None, base: dict[str, Any], started: float,
                        base_output_error: float) -> dict[str, Any]:
    """Exactly check every assert over the domain for a network with an enforcement layer; returns the
    certificate dict in DeepSaDe's format. ``base`` holds what ``deepsade.certify.certify_model`` binds for
    every model (margin, hashes, digest); ``base_output_error`` is its float32 error bound of the base output.
    An HCR network goes to ``deepsade.constructions.hcr_certificate`` (its layer is not piecewise linear)."""
    from deepsade.constructions.hcr import is_hcr

    if is_hcr(model):
        from deepsade.constructions.hcr_certificate import certify_hcr

        return certify_hcr(model, spec, encoding, domain, margin, timeout_s, base, started)
    if getattr(model, "kind", None) == "hardnet-aff-x":  # A(x): not piecewise linear either
        from deepsade.constructions.input_certificate import certify_input_dependent

        return certify_input_dependent(model, spec, encoding, domain, margin, timeout_s, base, started)
    start = started
    base = {**base, "method": "exact rational interval bounds of the base output + z3 QF_LRA search per assert "
                              "through the enforcement layer (ReLUs exact)",
            "construction": {"kind": model.kind, "upper_rows": int(model.upper_const.shape[0]),
                             "lower_rows": int(model.lower_const.shape[0]),
                             "by_construction": [],  # every part of the claim is checked below
                             "checked": "the rule, for every output the enforcement layer can produce from base "
                                        "outputs in their exact interval box and mapped inputs in the domain box"}}
    low, high = domain.scaled_exact(encoding)
    f_low, f_high = base_output_box(model, low, high)
    x_size, x_error = _input_error(encoding, domain)
    mapped = model.mapped_features.numpy()
    f_size = np.array([float(max(abs(a), abs(b))) for a, b in zip(f_low, f_high, strict=True)]) * (1 + 1e-9)
    rounding = enforcement_error_bound(model, base_output_error, f_size,
                                       x_size[mapped], x_error[mapped])
    base["float32_error_bound"] = rounding
    if not rounding <= margin:
        base["warning"] = rounding_warning(rounding, margin)
    fs = [z3.Real(f"f!{k}") for k in range(model.n_outputs)]
    outputs, definitions = _enforced_terms(model, fs)
    perturbations = [z3.Real(f"e!{k}") for k in range(model.n_outputs)]
    box = [v for j in mapped.tolist() for v in (input_var(j) >= z3_rational(low[j]), input_var(j) <= z3_rational(high[j]))]
    box += [v for k, f in enumerate(fs) for v in (f >= z3_rational(f_low[k]), f <= z3_rational(f_high[k]))]
    exact_margin = z3_rational(Fraction(margin))
    box += [v for e in perturbations for v in (e >= -exact_margin, e <= exact_margin)]
    results, verdict = [], CERTIFIED
    for a in spec.asserts:
        t0 = time.perf_counter()
        solver = z3.Solver()
        if timeout_s is not None:
            solver.set("timeout", int(timeout_s * 1000))
        solver.add(*box, *definitions)
        pairs = [(output_var(k), outputs[k] + perturbations[k]) for k in range(model.n_outputs)]
        solver.add(z3.Not(z3.substitute(a.scaled, *pairs)))
        answer = solver.check()
        entry: dict[str, Any] = {"assert": a.index + 1, "text": " ".join(a.text.split())}

        def search(a=a, solver=solver) -> Any:
            point = solver.model()
            hint = {j: z3_fraction(point.eval(input_var(j), model_completion=True)) for j in mapped.tolist()}
            return find_violation(model, spec, encoding, low, high, a.index, hint)

        verdict = settle_answer(entry, answer, verdict, search)
        entry["seconds"] = round(time.perf_counter() - t0, 4)
        results.append(entry)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - start, 4)}


def settle_answer(entry: dict, answer: z3.CheckSatResult, verdict: str,
                  search: Callable[[], Any] | None = None, failed: str = "bound check failed") -> str:
    """An assert's result in ``entry`` and the running verdict, from z3's answer to "can the assert break":
    unsat holds; unknown makes it at most *not certified*; sat is ``failed``, then *violated* when ``search``
    finds a concrete input (``settle_failed_check``), at most *not certified* otherwise."""
    if answer == z3.unsat:
        entry["result"] = "holds"
        return verdict
    if answer == z3.unknown:
        entry["result"] = "unknown (solver timeout)"
        return NOT_CERTIFIED if verdict == CERTIFIED else verdict
    entry["result"] = failed
    return settle_failed_check(entry, search() if search is not None else None, verdict)


def settle_failed_check(entry: dict, violation: Any, verdict: str) -> str:
    """The verdict once an assert's bound check failed: *violated* (the concrete input, raw units, goes into
    ``entry``) when one was found and re-evaluated exactly, otherwise at most *not certified*."""
    if violation is not None:
        entry["result"] = "violated"
        entry["violating_input_raw"] = violation
        return VIOLATED
    return NOT_CERTIFIED if verdict == CERTIFIED else verdict


def find_violation(model, spec: Spec, encoding: Encoding, low: list[Fraction], high: list[Fraction],
                   assert_index: int, hint: dict[int, Fraction] | None = None, seed: int = 0) -> dict[str, float] | None:
    """A domain input at which the enforced network, evaluated exactly (plain ReLU form), breaks the assert;
    raw units, or None when no candidate does (which proves nothing)."""
    from deepsade.verification.network import NetworkWeights

    plain = NetworkWeights.from_model(model)
    low_f, high_f = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    rng = np.random.default_rng(seed)
    candidates = [low_f + (high_f - low_f) * rng.random((_RANDOM_CANDIDATES, len(low_f)))]
    if hint:
        centre = (low_f + high_f) / 2
        for j, value in hint.items():
            centre[j] = float(value)
        candidates.insert(0, centre[None, :])
    points = np.clip(np.vstack(candidates), low_f, high_f)
    realisable = RealisableInputs.from_encoding(encoding)
    if realisable.constrained:  # only an input a real row could have is called a violation (deepsade.realisable)
        points = realisable.snap(points, low_f, high_f)
    with np.errstate(all="ignore"):
        suspicious = ~spec.evaluate_scaled(points, plain.forward(points))[:, assert_index]
    order = list(np.flatnonzero(suspicious)[:16]) + ([0] if hint else [])
    affine = encoding.input_affine()
    for i in dict.fromkeys(order):
        exact_input = [Fraction(float(v)) for v in points[i]]
        if realisable.constrained:
            exact_input = realisable.snap_exact(exact_input, low, high)
            if exact_input is None:
                return None
        if _breaks_exactly(spec, assert_index, exact_input, plain.forward_exact(exact_input)):
            return {encoding.input_names[j]: float(off + scale * exact_input[j]) for j, (off, scale) in enumerate(affine)}
    return None


def _breaks_exactly(spec: Spec, assert_index: int, scaled_input: list[Fraction], outputs: list[Fraction]) -> bool:
    """Whether the assert is false at this input and these outputs, decided exactly by z3 (no margin)."""
    a = spec.asserts[assert_index]
    pairs = [(input_var(j), z3_rational(scaled_input[j])) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(outputs[k])) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))
