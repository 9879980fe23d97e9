"""The certificate of an HCR network: what is checked exactly, what is by construction, what was sampled.

HCR's layer (normalisation, division, sigmoid) is not piecewise linear, so no exact engine here proves the
whole network. The certificate (DeepSaDe's format, verdict ``by construction``, never ``certified``) says
what holds for which reason:

- checked exactly (rationals, z3 QF_LRA): the stored interior point ``c`` is strictly inside the stored
  region, and every point of the stored region, widened by the layer's float32 rounding bound per row and
  moved by up to the output margin, satisfies each assert;
- by construction: every output of the layer lies in the stored region up to that rounding bound (the
  gauge identity ``A (y - c) <= t (b - A c)``, ``t <= 1``, and a hand-derived rounding analysis,
  ``deepsade.constructions.hcr.rounding_bound``); this holds for every input, inside the domain box or not;
- sampled: the float32 and float64 forward passes on random inputs of the domain box and far outside it,
  each output checked against the rule exactly (a failure there is a concrete, exact violation).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import z3

from deepsade.constructions.hcr import HyperSphericalMLP, region_extent, rounding_bound
from deepsade.data import Domain, Encoding
from deepsade.numbers import z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, input_var, output_var

BY_CONSTRUCTION, NOT_CERTIFIED, VIOLATED = "by construction", "not certified", "violated"
# an assert broken by a sampled forward pass only at inputs no real row could have (a one-hot group not 0/1, a
# fraction in a whole-number column): the relaxed box the certificate covers, so not certified; not a violation
RELAXED_BREAK = "broken at a relaxed input only (no real row could have it)"
RELAXED_REASON = "a sampled forward pass breaks an assert at a relaxed input (none a real row could have)"
SAMPLES_IN_DOMAIN = 4096
SAMPLES_OUTSIDE = 1024
OUTSIDE_FACTOR = 10.0  # the far samples reach this many domain widths beyond the box, on each side


def _exact(values: np.ndarray) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.asarray(values, dtype=np.float64).ravel()]


def sample_inputs(low: np.ndarray, high: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random scaled inputs: in the domain box (corners included), and far outside it."""
    rng = np.random.default_rng(seed)
    width = np.where(high > low, high - low, 1.0)
    inside = low + (high - low) * rng.random((SAMPLES_IN_DOMAIN, len(low)))
    inside[: min(len(inside), 2 ** min(len(low), 10))] = np.where(
        rng.random((min(len(inside), 2 ** min(len(low), 10)), len(low))) < 0.5, low, high)
    outside = low - OUTSIDE_FACTOR * width + (1 + 2 * OUTSIDE_FACTOR) * width * rng.random((SAMPLES_OUTSIDE, len(low)))
    return inside, outside


def realisable_breaks(encoding: Encoding, inside: np.ndarray, low: np.ndarray, high: np.ndarray,
                      broken: dict[int, np.ndarray],
                      find: Callable[[np.ndarray], dict[int, np.ndarray]]) -> tuple[dict[int, np.ndarray],
                                                                                   dict[int, np.ndarray]]:
    """Sampled breaks split into those at inputs a real row could have and those only relaxed inputs show.

    ``broken``: per assert, a sampled input of the relaxed box that breaks it; ``find``: the same search on other
    inputs; ``inside``: the samples of the scaled box [low, high]. When the encoding restricts inputs (one-hot groups, whole numbers), the samples are snapped onto
    realisable inputs (``RealisableInputs.snap``) and searched again: a break there is a *violation*; an assert
    broken only at relaxed inputs is returned apart (the certificate covers the relaxed box, so it is not
    certified, but no real row is known to break it)."""
    realisable = RealisableInputs.from_encoding(encoding)
    if not broken or not realisable.constrained:
        return broken, {}
    real = find(realisable.snap(inside, low, high))
    return real, {index: point for index, point in broken.items() if index not in real}


def record_breaks(results: list[dict[str, Any]], base: dict[str, Any], verdict: str, encoding: Encoding,
                  broken: dict[int, np.ndarray], relaxed_only: dict[int, np.ndarray]) -> str:
    """Per-assert entries for sampled breaks (``realisable_breaks``): a violation at a realisable input, or a break at
    relaxed inputs only (not certified); returns the verdict they leave."""
    for index, point in relaxed_only.items():
        results[index]["result"] = RELAXED_BREAK
        results[index]["relaxed_input_raw"] = raw_point(encoding, point)
        if verdict == BY_CONSTRUCTION:
            verdict = NOT_CERTIFIED
            base["reason"] = RELAXED_REASON
    for index, point in broken.items():
        results[index]["result"] = "violated"
        results[index]["violating_input_raw"] = raw_point(encoding, point)
        verdict = VIOLATED
    return verdict


def raw_point(encoding: Encoding, point: np.ndarray) -> dict[str, float]:
    """A scaled input in raw units, by column name."""
    return {encoding.input_names[j]: float(off + scale * point[j]) for j, (off, scale) in enumerate(encoding.input_affine())}


def _sample_check(model: HyperSphericalMLP, spec: Spec, inputs: np.ndarray, excess: np.ndarray
                  ) -> tuple[int, int, dict[int, np.ndarray]]:
    """(outputs checked, outputs outside the widened region, per assert the first input that breaks it
    exactly), over float32 and float64 forward passes."""
    a, b, _ = model.stored()
    checked, outside, broken = 0, 0, {}
    for dtype in (torch.float32, torch.float64):
        wide = copy.deepcopy(model).to(dtype)
        with torch.no_grad():
            outputs = wide(torch.as_tensor(inputs, dtype=dtype)).double().numpy()
        checked += len(outputs)
        with np.errstate(all="ignore"):
            outside += int((~np.all(outputs @ a.T <= b + excess, axis=1)).sum())
            truth = spec.evaluate_scaled(inputs, outputs)
        for index in range(len(spec.asserts)):
            for row in np.flatnonzero(~truth[:, index])[:8]:
                if index not in broken and _breaks(spec, index, inputs[row], outputs[row]):
                    broken[index] = inputs[row]
    return checked, outside, broken


def _breaks(spec: Spec, index: int, scaled_input: np.ndarray, output: np.ndarray) -> bool:
    a = spec.asserts[index]
    pairs = [(input_var(j), z3_rational(Fraction(float(scaled_input[j])))) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(Fraction(float(output[k])))) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))


def region_check(model: HyperSphericalMLP, spec: Spec, low: list[Fraction], high: list[Fraction], margin: float,
                 timeout_s: float | None, excess: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per assert, whether every point of the stored region ``A y <= b`` (each row widened by the layer's float32
    rounding bound ``excess``, default ``rounding_bound(model)``), moved by up to ``margin`` per output, satisfies
    the assert for every input of the scaled box [low, high]: z3 QF_LRA on exact rationals. Each entry holds
    ``assert`` (1-based), ``text``, ``proven`` (True, False: a region point breaks it, None: solver timeout) and
    ``seconds``. This is the part of HCR's claim that is proven exactly; that the layer's outputs lie in the
    region is by construction."""
    a, b, _ = model.stored()
    exact_a = [_exact(row) for row in a]
    exact_b = _exact(b)
    excess = rounding_bound(model) if excess is None else excess
    ys = [output_var(k) for k in range(model.n_outputs)]
    es = [z3.Real(f"e!{k}") for k in range(model.n_outputs)]
    exact_margin = z3_rational(Fraction(margin))
    region = [z3.Sum([z3_rational(v) * y for v, y in zip(row, ys, strict=True) if v != 0] or [z3.RealVal(0)])
              <= z3_rational(bi + Fraction(float(ei))) for row, bi, ei in zip(exact_a, exact_b, excess, strict=True)]
    region += [v for e in es for v in (e >= -exact_margin, e <= exact_margin)]
    entries = []
    for assertion in spec.asserts:
        t0 = time.perf_counter()
        solver = z3.Solver()
        if timeout_s is not None:
            solver.set("timeout", int(timeout_s * 1000))
        solver.add(*region)
        solver.add(*[v for j in assertion.inputs for v in (input_var(j) >= z3_rational(low[j]),
                                                           input_var(j) <= z3_rational(high[j]))])
        solver.add(z3.Not(z3.substitute(assertion.scaled, *[(ys[k], ys[k] + es[k]) for k in range(len(ys))])))
        answer = solver.check()
        entries.append({"assert": assertion.index + 1, "text": " ".join(assertion.text.split()),
                        "proven": True if answer == z3.unsat else (None if answer == z3.unknown else False),
                        "seconds": round(time.perf_counter() - t0, 4)})
    return entries


def certify_hcr(model: HyperSphericalMLP, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                timeout_s: float | None, base: dict[str, Any], started: float) -> dict[str, Any]:
    """The certificate of an HCR network (see the module's docstring); ``base`` holds what
    ``deepsade.certify.certify_model`` binds for every model."""
    a, b, c = model.stored()
    exact_a = [_exact(row) for row in a]
    exact_b, exact_c = _exact(b), _exact(c)
    excess = rounding_bound(model)
    by_construction = ["every output of the layer lies in the stored region A y <= b, up to the float32 "
                       "rounding bound per row (the gauge identity A (y - c) <= sigmoid(s) (b - A c) and a "
                       "hand-derived rounding analysis; for every input, inside the domain box or not)"]
    base = {**base, "method": "HCR: exact z3 QF_LRA check that the stored region, widened by the rounding bound "
                              "and moved by the margin, satisfies each assert; the layer keeping its outputs in "
                              "the region is by construction; sampled forward passes checked exactly",
            "construction": {"kind": model.kind, "rows": int(len(b)), "by_construction": by_construction,
                             "checked": "exactly: the interior point is strictly inside the stored region, and "
                                        "every point of the region (widened by the rounding bound, moved by up to "
                                        "the margin) satisfies each assert; by sampling: the float32 and float64 "
                                        "forward passes on random inputs in and far outside the domain box",
                             "rounding_bound": [float(v) for v in excess],
                             "region_extent": region_extent(model)}}
    results: list[dict[str, Any]] = []
    slack = [bi - sum((x * y for x, y in zip(row, exact_c, strict=True)), Fraction(0))
             for row, bi in zip(exact_a, exact_b, strict=True)]
    if not all(s > 0 for s in slack) or not np.all(np.isfinite(excess)):
        reason = ("the stored interior point is not strictly inside the stored region" if not all(s > 0 for s in slack)
                  else "the layer's rounding bound is not finite (the stored region is unbounded or ill-conditioned)")
        return {"verdict": NOT_CERTIFIED, **base, "reason": reason, "asserts": results,
                "seconds": round(time.perf_counter() - started, 4)}
    low, high = domain.scaled_exact(encoding)
    verdict = BY_CONSTRUCTION
    for entry in region_check(model, spec, low, high, margin, timeout_s, excess):
        proven = entry.pop("proven")
        if proven is True:
            entry["result"] = "holds by construction (region checked exactly)"
        else:
            entry["result"] = "unknown (solver timeout)" if proven is None else "region check failed"
            verdict = NOT_CERTIFIED
        results.append(entry)
    box_low, box_high = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    inside, outside = sample_inputs(box_low, box_high)
    checked_in, off_in, broken_in = _sample_check(model, spec, inside, excess)
    checked_out, off_out, broken_out = _sample_check(model, spec, outside, excess)
    base["sampling"] = {"in_domain_outputs": checked_in, "far_outside_outputs": checked_out,
                        "outside_widened_region": off_in + off_out,
                        "violations_in_domain": len(broken_in), "violations_far_outside": len(broken_out)}
    if off_in + off_out and verdict == BY_CONSTRUCTION:
        verdict = NOT_CERTIFIED
        base["reason"] = "a sampled output lies outside the stored region widened by the rounding bound"
    broken_in, relaxed_only = realisable_breaks(encoding, inside, box_low, box_high, broken_in,
                                                lambda points: _sample_check(model, spec, points, excess)[2])
    verdict = record_breaks(results, base, verdict, encoding, broken_in, relaxed_only)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - started, 4)}
