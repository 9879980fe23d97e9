"""The exact certificate of a network with sequential clamps, alone or over a DeepSaDe-trained base.

Per assert, over the input region of its premise (the whole domain box when it has none): exact rational
interval bounds of the base network's latent vector ``[h; s]`` over that region, then z3 (QF_LRA, every ReLU
of the clamp layers exact as ``ite``) searches for a latent point in the box, mapped inputs in the region,
the base output ``f = W [h; x] + b`` they give, and an output perturbation of at most ``margin`` at which the
clamped output breaks the assert. None: *holds*. This one check covers the composition: the clamps' rows
(their output lies in the polytope whatever ``f`` is) and the asserts DeepSaDe trained (on their regions
``f`` lies in the tightened polytope, so the clamps leave it unchanged). Nothing is taken on trust.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import z3

from deepsade.bounds import exact_latent_box
from deepsade.boxes import max_over_box, min_over_box
from deepsade.constructions.certificate import (
    CERTIFIED,
    NOT_CERTIFIED,
    base_output_box,
    find_violation,
    settle_failed_check,
)
from deepsade.data import Domain, Encoding
from deepsade.encoding.exact import substitute_outputs
from deepsade.float_error import (
    affine_error,
    finite_bound,
    relu_error,
    relu_stack_error,
    rounding_warning,
    scaled_input_error,
)
from deepsade.numbers import z3_fraction, z3_rational
from deepsade.regions import input_regions
from deepsade.spec import Spec, input_var, output_var

_U32 = 2.0 ** -24
PIECE_KINKS = 4  # breakpoints of the clamp layer's input units inside one piece of a nonlinear assert's check


def _fractions(array: np.ndarray) -> np.ndarray:
    return np.array([Fraction(float(v)) for v in np.asarray(array, dtype=np.float64).ravel().tolist()],
                    dtype=object).reshape(np.shape(array))


def _affine(row: np.ndarray, variables: list[z3.ArithRef], const: Fraction = Fraction(0)) -> z3.ArithRef:
    terms = [z3_rational(c) * v for c, v in zip(row, variables, strict=True) if c != 0]
    if const != 0 or not terms:
        terms.append(z3_rational(const))
    return z3.Sum(terms) if len(terms) > 1 else terms[0]


def clamp_terms(model, fs: list[z3.ArithRef], xs: list[z3.ArithRef],
                x_box: tuple[Sequence[Fraction], Sequence[Fraction]] | None = None
                ) -> tuple[list[z3.ArithRef], list[z3.BoolRef]]:
    """The clamped outputs as z3 terms of the base outputs ``fs`` and the mapped inputs ``xs`` (exact, on the
    stored float32 values), with the definitions of the ReLU units they use.

    ``x_box`` (exact bounds of the mapped inputs): a first-layer unit that reads the inputs only and whose
    pre-activation keeps one sign over that box (exact interval arithmetic) is defined without its ``If``
    (its value there, exactly), which leaves the nonlinear checks fewer cases."""
    layers, out_weight, out_bias = model.clamp_layers()

    def relu(term: z3.ArithRef) -> z3.ArithRef:
        return z3.If(term > 0, term, z3.RealVal(0))

    n_f, m = len(fs), len(xs)
    current = [relu(v) for v in fs] + [relu(-v) for v in fs] + [relu(v) for v in xs] + [relu(-v) for v in xs]
    signs = _input_unit_signs(layers[0], n_f, m, x_box) if layers and x_box is not None else {}
    definitions = []
    for depth, (weight, bias) in enumerate(layers):
        w, b = _fractions(weight), _fractions(bias)
        units = [z3.Real(f"clamp!{depth}!{i}") for i in range(len(b))]
        for i, u in enumerate(units):
            sign = signs.get(i, 0) if depth == 0 else 0
            pre = _affine(w[i], current, b[i])
            definitions.append(u == (pre if sign > 0 else z3.RealVal(0) if sign < 0 else relu(pre)))
        current = units
    w, b = _fractions(out_weight), _fractions(out_bias)
    return [_affine(w[k], current, b[k]) for k in range(len(b))], definitions


def _input_unit_signs(layer: tuple[np.ndarray, np.ndarray], n_f: int, m: int,
                      x_box: tuple[Sequence[Fraction], Sequence[Fraction]]) -> dict[int, int]:
    """Per first-layer unit that reads no base output: +1 when its pre-activation is >= 0 over the box of the
    mapped inputs, -1 when <= 0 (exact interval bounds of ``relu(x)``, ``relu(-x)``); others are left out."""
    w, b = _fractions(layer[0]), _fractions(layer[1])
    lo = np.array([Fraction(v) for v in x_box[0]], dtype=object)
    hi = np.array([Fraction(v) for v in x_box[1]], dtype=object)
    zero = np.array([Fraction(0)] * m, dtype=object)
    z_low = np.concatenate([np.maximum(lo, zero), np.maximum(-hi, zero)])
    z_high = np.concatenate([np.maximum(hi, zero), np.maximum(-lo, zero)])
    signs = {}
    for i in range(w.shape[0]):
        if any(v != 0 for v in w[i, :2 * n_f]):
            continue
        row = w[i, 2 * n_f:]
        if min_over_box(row, z_low, z_high) + b[i] >= 0:
            signs[i] = 1
        elif max_over_box(row, z_low, z_high) + b[i] <= 0:
            signs[i] = -1
    return signs


def input_breakpoints(model, n_f: int) -> dict[int, list[Fraction]]:
    """Per mapped input (position), where a first-layer unit of the clamp layer that reads that input alone turns
    on: ``-bias / weight`` (exact, from the stored values); the nonlinear checks split the box there."""
    layers, _, _ = model.clamp_layers()
    if not layers:
        return {}
    w, b = _fractions(layers[0][0]), _fractions(layers[0][1])
    m = (w.shape[1] - 2 * n_f) // 2
    cuts: dict[int, set[Fraction]] = {}
    for i in range(w.shape[0]):
        if any(v != 0 for v in w[i, :2 * n_f]):
            continue
        reads = [p for p in range(m) if w[i, 2 * n_f + p] != 0 or w[i, 2 * n_f + m + p] != 0]
        if len(reads) == 1 and w[i, 2 * n_f + reads[0]] == -w[i, 2 * n_f + m + reads[0]]:
            p = reads[0]
            cuts.setdefault(p, {Fraction(0)}).add(-b[i] / w[i, 2 * n_f + p])
    return {p: sorted(c) for p, c in cuts.items()}


def _pieces(low: Fraction, high: Fraction, cuts: Sequence[Fraction]) -> list[tuple[Fraction, Fraction]]:
    """``[low, high]`` split at every ``PIECE_KINKS``-th cut inside it (consecutive closed intervals covering it)."""
    inside = [c for c in cuts if low < c < high][PIECE_KINKS - 1::PIECE_KINKS]
    points = [low, *inside, high]
    return list(zip(points[:-1], points[1:], strict=True))


def clamp_error_bound(model, f_error: float, f_low: np.ndarray, f_high: np.ndarray, x_low: np.ndarray,
                      x_high: np.ndarray, x_error: np.ndarray) -> float:
    """A bound on |float32 clamped output - exact clamped output| per output, given the base output's error and
    exact interval ``[f_low, f_high]`` and the mapped inputs' interval and error: interval bounds of each clamp
    layer's exact values carry the error through it (``deepsade.float_error.relu_stack_error``)."""
    layers, out_weight, out_bias = model.clamp_layers()
    f_error = np.full(len(f_low), f_error)
    low, high, error = relu_error(
        np.concatenate([f_low, -f_high, x_low, -x_high]), np.concatenate([f_high, -f_low, x_high, -x_low]),
        np.concatenate([f_error, f_error, x_error, x_error]))
    low, high, error = relu_stack_error(layers, low, high, error)
    *_, out_error = affine_error(out_weight, out_bias, low, high, error)
    return finite_bound(out_error)


def _solver(linear: bool, timeout_s: float | None) -> z3.Solver:
    """z3's default solver for a linear assert; nlsat (a decision procedure for nonlinear real arithmetic, after
    the ReLUs' ``If``s become cases) for a nonlinear one."""
    solver = z3.Solver() if linear else \
        z3.Then("simplify", "solve-eqs", "elim-term-ite", "simplify", "qfnra-nlsat").solver()
    if timeout_s is not None:
        solver.set("timeout", int(timeout_s * 1000))
    return solver


def certify_clamped(model, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                    timeout_s: float | None, base: dict[str, Any], started: float,
                    base_output_error: float) -> dict[str, Any]:
    """Exactly check every assert of the original rule on the whole network (base + sequential clamps);
    the certificate dict in DeepSaDe's format."""
    base = {**base, "method": "exact rational interval bounds of the base network's latent vector over each assert's "
                              "input region + z3 search per assert through the base's last layer and the "
                              "sequential clamps (ReLUs exact; QF_LRA, or nlsat on pieces of one input for an "
                              "assert that multiplies an output by an input)",
            "construction": {"kind": model.kind, "layer_sizes": list(model.layer_sizes), "by_construction": [],
                             "checked": "the whole rule, for every latent vector in its exact interval box over the "
                                        "assert's input region, through the base's last layer and the clamps"}}
    low, high = domain.scaled_exact(encoding)
    f_low, f_high = base_output_box(model, low, high)
    x_low, x_high, x_error = scaled_input_error(encoding, domain)
    mapped = model.mapped_features.numpy().tolist()
    pad = 1e-9 * (1 + np.array([float(max(abs(a), abs(b))) for a, b in zip(f_low, f_high, strict=True)]))
    rounding = clamp_error_bound(model, base_output_error, np.array([float(v) for v in f_low]) - pad,
                                 np.array([float(v) for v in f_high]) + pad, x_low[mapped], x_high[mapped],
                                 x_error[mapped])
    base["float32_error_bound"] = rounding
    if not rounding <= margin:
        base["warning"] = rounding_warning(rounding, margin)
    n_hidden = model.hidden_sizes[-1]
    weight, bias = _fractions(model.last.weight.detach().float().numpy()), \
        _fractions(model.last.bias.detach().float().numpy())
    hs = [z3.Real(f"h!{i}") for i in range(n_hidden)]
    xs = [input_var(j) for j in mapped]
    free = [z3.Real(f"f!{k}") for k in range(model.n_outputs)]  # the base output, free in its box
    linked = [_affine(weight[k], hs + xs, bias[k]) for k in range(model.n_outputs)]  # ... or through [h; x]
    outputs_free, definitions_free = clamp_terms(model, free, xs)
    outputs_linked, definitions_linked = clamp_terms(model, linked, xs)
    breakpoints = input_breakpoints(model, model.n_outputs)
    perturbations = [z3.Real(f"e!{k}") for k in range(model.n_outputs)]
    exact_margin = z3_rational(Fraction(margin))
    regions = input_regions(spec, low, high)
    boxes: dict[tuple, tuple[list[Fraction], list[Fraction]]] = {}
    results, verdict = [], CERTIFIED
    for a in spec.asserts:
        t0 = time.perf_counter()
        region = regions[a.index]
        own_low, own_high = (region.low, region.high) if region.restricts and not region.empty else (low, high)
        key = (tuple(own_low), tuple(own_high))
        if key not in boxes:
            boxes[key] = exact_latent_box(model, own_low, own_high)
        latent_low, latent_high = boxes[key]
        common = [c for j in mapped for c in (input_var(j) >= z3_rational(own_low[j]),
                                              input_var(j) <= z3_rational(own_high[j]))]
        common += [c for e in perturbations for c in (e >= -exact_margin, e <= exact_margin)]
        # first the clamps alone: the base output anywhere in its exact box over the region (what a clamped
        # assert needs); if that does not prove it, the base output tied to the latent box through the last
        # layer (what an assert DeepSaDe trained on the base needs)
        f_box = [(min_over_box(weight[k], np.array(latent_low, dtype=object), np.array(latent_high, dtype=object))
                  + bias[k], max_over_box(weight[k], np.array(latent_low, dtype=object),
                                          np.array(latent_high, dtype=object)) + bias[k])
                 for k in range(model.n_outputs)]
        f_constraints = [c for k, f in enumerate(free) for c in (f >= z3_rational(f_box[k][0]),
                                                                 f <= z3_rational(f_box[k][1]))]
        h_constraints = [c for i, h in enumerate(hs) for c in (h >= z3_rational(latent_low[i]),
                                                               h <= z3_rational(latent_high[i]))]
        # a nonlinear assert (an output times an input), or a layer whose input units break one input often (a
        # ratio bound): checked on consecutive pieces of that input (they cover its range), where most of those
        # units are fixed; nonlinear arithmetic by nlsat
        pieces: list[tuple[int, Fraction, Fraction] | None] = [None]
        busiest = max(breakpoints, key=lambda q: len(breakpoints[q])) if breakpoints else None
        if busiest is not None and (not a.linear or len(breakpoints[busiest]) > 2 * PIECE_KINKS):
            p = busiest
            j = mapped[p]
            pieces = [(p, left, right) for left, right in _pieces(Fraction(own_low[j]), Fraction(own_high[j]),
                                                                  breakpoints[p])]
        answer, how_checked = z3.unsat, set()
        for piece in pieces:
            if piece is None:
                x_box, bounds = None, []
            else:
                p, left, right = piece
                x_low = [Fraction(own_low[j]) for j in mapped]
                x_high = [Fraction(own_high[j]) for j in mapped]
                x_low[p], x_high[p] = left, right
                x_box, bounds = (x_low, x_high), [xs[p] >= z3_rational(left), xs[p] <= z3_rational(right)]
            attempts = [(f_constraints, free, (outputs_free, definitions_free), "base output in its box"),
                        (h_constraints, linked, (outputs_linked, definitions_linked),
                         "latent box through the last layer")]
            for constraints, base_outputs, whole_box, how in attempts:
                outputs, definitions = whole_box if x_box is None else clamp_terms(model, base_outputs, xs, x_box)
                solver = _solver(a.linear, timeout_s)
                solver.add(*common, *bounds, *constraints, *definitions)
                # equalities between numbers read the exact outputs (no margin holds one), the rest the
                # outputs moved by the margin
                solver.add(z3.Not(substitute_outputs(
                    a.scaled, [(output_var(k), outputs[k] + perturbations[k]) for k in range(model.n_outputs)],
                    [(output_var(k), outputs[k]) for k in range(model.n_outputs)])))
                answer = solver.check()
                if answer == z3.unsat:
                    how_checked.add(how)
                    break
            if answer != z3.unsat:
                break
        checked_with = " and ".join(sorted(how_checked))
        if len(pieces) > 1:
            checked_with += (f", {'nonlinear arithmetic ' if not a.linear else ''}on {len(pieces)} pieces of "
                             f"input {spec.input_names[mapped[pieces[0][0]]]}")
        entry: dict[str, Any] = {"assert": a.index + 1, "text": " ".join(a.text.split()),
                                 "input_region": "premise region" if region.restricts else "domain"}
        if answer == z3.unsat:
            entry["result"] = "holds"
            entry["checked_with"] = checked_with
        elif answer == z3.unknown:
            entry["result"] = "unknown (solver timeout)"
            verdict = NOT_CERTIFIED if verdict == CERTIFIED else verdict
        else:
            entry["result"] = "bound check failed"
            point = solver.model()
            hint = {j: z3_fraction(point.eval(input_var(j), model_completion=True)) for j in mapped}
            violation = find_violation(model, spec, encoding, list(own_low), list(own_high), a.index, hint)
            verdict = settle_failed_check(entry, violation, verdict)
        entry["seconds"] = round(time.perf_counter() - t0, 4)
        results.append(entry)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - started, 4)}
