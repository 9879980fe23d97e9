"""The certificate of HardNet-Aff with ``A(x)``: what is checked exactly, what is by construction, what was sampled.

The layer solves ``A(x) A(x)^T w = c`` per input, so it is not piecewise linear and no exact engine here proves
the whole network. The certificate (DeepSaDe's format, verdict ``by construction``, never ``certified``) says:

- checked exactly (z3, nonlinear real arithmetic on the stored float32 numbers as rationals): the stored
  ``A(x)`` has full row rank at every input of the domain box; and the layer *in exact arithmetic* (ReLUs as
  ``ite``, the solve as polynomial equalities), applied to any base output in its exact interval box at any
  input of the box and moved by up to the margin, satisfies each assert;
- not checked, by construction only: the layer as computed (float64 solve, float32 base network) rounds;
  nothing here bounds that rounding (the bounds are tightened by twice the margin and the check uses one, so
  a rounding up to about one margin is absorbed, but nothing proves it);
- sampled: float32 and float64 forward passes on random inputs of the box (corners included), every output
  checked against the rule exactly (a failure there is a concrete, exact violation).
"""

from __future__ import annotations

import copy
import time
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import z3

from deepsade.constructions.base_box import base_output_box, stored_fractions
from deepsade.constructions.hcr_certificate import realisable_breaks, record_breaks, sample_inputs
from deepsade.constructions.input_enforced import InputEnforcedMLP
from deepsade.constructions.input_rule import coefficient_terms, rank_problem
from deepsade.data import Domain, Encoding
from deepsade.numbers import z3_rational
from deepsade.spec import Spec, input_var, output_var

BY_CONSTRUCTION, NOT_CERTIFIED, VIOLATED = "by construction", "not certified", "violated"
BY_CONSTRUCTION_PARTS = [
    "the rounding of the layer as computed (a float64 solve per input) is not bounded by any analysis here: the exact "
    "check covers the layer in exact arithmetic, with bounds tightened by twice the margin and checked with one; "
    "sampled outputs are checked exactly",
]


def layer_constraints(model: InputEnforcedMLP, low: list[Fraction], high: list[Fraction]
                      ) -> tuple[list[z3.ArithRef], list[z3.BoolRef]]:
    """The layer in exact arithmetic as z3 terms: (outputs ``y`` per output, constraints). The base output ``f``
    ranges over its exact interval box on the domain (``f`` and the inputs taken as independent, an
    over-approximation); ``w`` solves ``A(x) A(x)^T w = c`` exactly (polynomial equalities)."""
    mapped = model.mapped_features.tolist()
    xs = [input_var(j) for j in mapped]
    f_low, f_high = base_output_box(model, low, high)
    fs = [z3.Real(f"f!{k}") for k in range(model.n_outputs)]
    up_in, up_c, up_m = (stored_fractions(t) for t in (model.upper_inputs, model.upper_const, model.upper_mask))
    lo_in, lo_c, lo_m = (stored_fractions(t) for t in (model.lower_inputs, model.lower_const, model.lower_mask))
    rows = [coefficient_terms(a0, a1) for a0, a1 in model.stored_rows()]
    ws = [z3.Real(f"w!{i}") for i in range(len(rows))]
    constraints = [v for k, f in enumerate(fs) for v in (f >= z3_rational(f_low[k]), f <= z3_rational(f_high[k]))]

    def bound(weights: np.ndarray, const: Fraction) -> z3.ArithRef:
        return z3.Sum([z3_rational(const)] + [z3_rational(w) * x for w, x in zip(weights, xs, strict=True) if w != 0])

    for i, row in enumerate(rows):
        af = z3.Sum([c * f for c, f in zip(row, fs, strict=True)])
        over = z3.If(af > bound(up_in[i], up_c[i]), af - bound(up_in[i], up_c[i]), 0) if up_m[i] != 0 else 0
        under = z3.If(af < bound(lo_in[i], lo_c[i]), bound(lo_in[i], lo_c[i]) - af, 0) if lo_m[i] != 0 else 0
        gram = [z3.Sum([a * b for a, b in zip(row, other, strict=True)]) for other in rows]
        constraints.append(z3.Sum([g * w for g, w in zip(gram, ws, strict=True)]) == over - under)
    outputs = [fs[k] - z3.Sum([rows[i][k] * ws[i] for i in range(len(rows))]) for k in range(model.n_outputs)]
    return outputs, constraints


def _breaks(spec: Spec, index: int, scaled_input: np.ndarray, output: np.ndarray) -> bool:
    a = spec.asserts[index]
    pairs = [(input_var(j), z3_rational(Fraction(float(scaled_input[j])))) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(Fraction(float(output[k])))) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))


def exact_layer_check(model: InputEnforcedMLP, spec: Spec, low: list[Fraction], high: list[Fraction], margin: float,
                      timeout_s: float | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(a rank problem or None, per assert ``assert``, ``text``, ``proven`` (True / False / None: timeout),
    ``seconds``): z3 proves that the stored ``A(x)`` has full row rank on the box and that the layer in exact
    arithmetic, on base outputs in their exact interval box, moved by up to ``margin``, satisfies each assert."""
    problem = rank_problem(model.stored_rows(), low, high,
                           timeout_ms=int((timeout_s if timeout_s is not None else 60) * 1000))
    if problem is not None:
        return problem, []
    outputs, layer = layer_constraints(model, low, high)
    es = [z3.Real(f"e!{k}") for k in range(model.n_outputs)]
    exact_margin = z3_rational(Fraction(margin))
    box = [v for j in range(len(low)) for v in (input_var(j) >= z3_rational(low[j]), input_var(j) <= z3_rational(high[j]))]
    box += [v for e in es for v in (e >= -exact_margin, e <= exact_margin)]
    entries = []
    for assertion in spec.asserts:
        t0 = time.perf_counter()
        solver = z3.Solver()
        if timeout_s is not None:
            solver.set("timeout", int(timeout_s * 1000))
        solver.add(*box, *layer)
        solver.add(z3.Not(z3.substitute(assertion.scaled, *[(output_var(k), outputs[k] + es[k])
                                                             for k in range(len(outputs))])))
        answer = solver.check()
        entries.append({"assert": assertion.index + 1, "text": " ".join(assertion.text.split()),
                        "proven": True if answer == z3.unsat else (None if answer == z3.unknown else False),
                        "seconds": round(time.perf_counter() - t0, 4)})
    return None, entries


def certify_input_dependent(model: InputEnforcedMLP, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                            timeout_s: float | None, base: dict[str, Any], started: float) -> dict[str, Any]:
    """The certificate of a HardNet-Aff network with ``A(x)`` (see the module's docstring)."""
    low, high = domain.scaled_exact(encoding)
    base = {**base, "method": "HardNet-Aff with A(x): exact z3 (nonlinear real arithmetic) checks that A(x) has full "
                              "row rank on the box and that the layer in exact arithmetic, on base outputs in their "
                              "exact interval box, moved by the margin, satisfies each assert; its rounding is not "
                              "bounded (by construction only); sampled forward passes checked exactly",
            "construction": {"kind": model.kind, "rows": int(model.matrix_const.shape[0]),
                             "by_construction": BY_CONSTRUCTION_PARTS,
                             "checked": "exactly: A(x) of full row rank at every input of the domain box; the "
                                        "exact-arithmetic layer on base outputs in their interval box (moved by up to "
                                        "the margin) satisfies each assert; by sampling: float32 and float64 forward "
                                        "passes in the box"}}
    results: list[dict[str, Any]] = []
    problem, entries = exact_layer_check(model, spec, low, high, margin, timeout_s)
    if problem is not None:
        return {"verdict": NOT_CERTIFIED, **base, "reason": f"the stored A(x): {problem}", "asserts": results,
                "seconds": round(time.perf_counter() - started, 4)}
    verdict = BY_CONSTRUCTION
    for entry in entries:
        proven = entry.pop("proven")
        if proven is True:
            entry["result"] = "holds by construction (exact layer checked)"
        else:
            entry["result"] = "unknown (solver timeout)" if proven is None else "layer check failed"
            verdict = NOT_CERTIFIED
        results.append(entry)
    box_low, box_high = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    inside, _ = sample_inputs(box_low, box_high)
    inside = inside.astype(np.float32).astype(np.float64)

    def find(points: np.ndarray) -> dict[int, np.ndarray]:
        """Per assert, the first sampled input whose float32 or float64 forward pass breaks it exactly."""
        broken: dict[int, np.ndarray] = {}
        for dtype in (torch.float32, torch.float64):
            with torch.no_grad():
                outputs = copy.deepcopy(model).to(dtype)(torch.as_tensor(points, dtype=dtype)).double().numpy()
            with np.errstate(all="ignore"):
                truth = spec.evaluate_scaled(points, outputs)
            for index in range(len(spec.asserts)):
                for row in np.flatnonzero(~truth[:, index])[:8]:
                    if index not in broken and _breaks(spec, index, points[row], outputs[row]):
                        broken[index] = points[row]
        return broken

    broken, relaxed_only = realisable_breaks(encoding, inside, box_low, box_high, find(inside), find)
    verdict = record_breaks(results, base, verdict, encoding, broken, relaxed_only)
    violations = len(broken)
    base["sampling"] = {"in_domain_outputs": 2 * len(inside), "violations_in_domain": violations}
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - started, 4)}
