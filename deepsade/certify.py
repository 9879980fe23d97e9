"""The certificate: an exact re-check of stored float32 weights, independent of how they were trained.

Steps: for every assert, an exact rational latent box (``bounds.exact_latent_box``) over the input
region its premise implies (``regions.input_region``: the domain box cut by the premise's single-input
bounds, derived from the rules and the domain, never read from the model directory), then for every
assert an exact z3 search for a latent point and an output perturbation of at most ``margin`` where
the premise holds and the conclusion fails. No such point for any assert: *certified*. A latent point
is an over-approximation (the latent box holds points no input reaches), so a failed check alone says
*not certified*; the verdict is *violated* only when a concrete input of the domain, evaluated exactly
in rationals, breaks the rule.

``recheck_artifact`` is what ``deepsade certify`` runs: it trusts nothing in a model directory that it
can derive (the constraint's hash, the skip features, the verdict), checks what it cannot derive
(margin, scaling, domain) against fixed policy, and compares one digest over everything that
determines the function and the claim.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import z3

from deepsade.artifact import ModelArtifact, text_sha256, weights_sha256
from deepsade.bounds import exact_latent_box
from deepsade.data import TASKS, Domain, Encoding
from deepsade.encoding.exact import Counterexample, find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.errors import UserInputError
from deepsade.network import SkipMLP
from deepsade.numbers import z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.regions import InputRegion, input_regions
from deepsade.smtlib import read_constraint_text
from deepsade.spec import Spec, input_var, output_var, parse_spec_text


class Verdict(str, Enum):
    """The three answers of a certificate, written to disk as their values."""

    CERTIFIED = "certified"  # proven for every input of the domain box
    NOT_CERTIFIED = "not certified"  # the exact bound check failed or timed out: a violation is not known
    VIOLATED = "violated"  # a concrete input of the domain, evaluated exactly, breaks the rule

    def __str__(self) -> str:
        return self.value


CERTIFIED, NOT_CERTIFIED, VIOLATED = Verdict.CERTIFIED.value, Verdict.NOT_CERTIFIED.value, Verdict.VIOLATED.value

# The smallest output margin a certificate may claim, whatever certificate.json says (network units).
MIN_MARGIN = 1e-6
# Random inputs tried, besides the counterexample's own, when looking for a concrete violation.
_VIOLATION_SAMPLES = 256


def certify_model(model: SkipMLP, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                  timeout_s: float | None = 60.0) -> dict[str, Any]:
    """Exactly re-check every assert over the domain for these weights; returns the certificate dict
    (verdict, per-assert results, and the digest that binds everything the claim depends on)."""
    start = time.perf_counter()
    base = {"margin": margin, "method": "exact rational interval bounds + z3 QF_LRA search per assert",
            "domain_source": domain.source, "weights_sha256": weights_sha256(model),
            "bound": bound_components(model, encoding, domain, spec.source.text, margin)}
    base["digest"] = digest_of(base["bound"])
    if list(model.mapped_features.tolist()) != list(spec.mapped_features):
        return {"verdict": NOT_CERTIFIED, **base,
                "reason": f"the network's skip features {model.mapped_features.tolist()} differ from the "
                          f"features the constraint mentions {list(spec.mapped_features)}",
                "asserts": [], "seconds": round(time.perf_counter() - start, 4)}
    # --- constructions: a network with an enforcement layer has its own exact check ---
    if getattr(model, "kind", None) == "sequential-clamp":  # deepsade.constructions.sequential_clamp
        from deepsade.constructions.polytope_certificate import certify_clamped

        return certify_clamped(model, spec, encoding, domain, margin, timeout_s, base, start,
                               float32_error_bound(model, encoding, domain))
    if hasattr(model, "plain_layers"):
        from deepsade.constructions.certificate import certify_constructed

        return certify_constructed(model, spec, encoding, domain, margin, timeout_s, base=base, started=start,
                                   base_output_error=float32_error_bound(model, encoding, domain))
    # --- end constructions ---
    low, high = domain.scaled_exact(encoding)
    rounding = float32_error_bound(model, encoding, domain)
    base["float32_error_bound"] = rounding
    if not rounding <= margin:
        base["warning"] = (f"on this domain a float32 forward pass (an exported float32 ONNX model, a float32 "
                           f"runtime) may differ from the certified network by up to {rounding:.3g} per output, more "
                           f"than the margin {margin:g}: its predictions within that distance of a rule's boundary "
                           "are not covered (deepsade predict evaluates in float64; narrow the domain, or train with a "
                           "larger --margin)")
    layout = LatentLayout(model.hidden_sizes[-1], tuple(spec.mapped_features), model.n_outputs)
    weights = model.last.weight.detach().float().numpy().astype(np.float64)
    biases = model.last.bias.detach().float().numpy().astype(np.float64)
    results = []
    verdict = CERTIFIED
    regions = input_regions(spec, low, high)
    latent_boxes: dict[tuple, tuple[list[Fraction], list[Fraction]]] = {}  # by input box: one propagation each
    for a in spec.asserts:
        t0 = time.perf_counter()
        region = regions[a.index]
        # the premise's input region (the domain cut by its single-input bounds) holds every input the assert
        # constrains, so exact interval bounds over it are a sound latent box for this assert
        own_low, own_high = (region.low, region.high) if region.restricts and not region.empty else (low, high)
        key = (tuple(own_low), tuple(own_high))
        if key not in latent_boxes:
            latent_boxes[key] = exact_latent_box(model, own_low, own_high)
        latent_low, latent_high = latent_boxes[key]
        found = find_counterexample(a, layout, weights, biases, latent_low, latent_high, Fraction(margin), timeout_s)
        entry: dict[str, Any] = {"assert": a.index + 1, "text": " ".join(a.text.split()),
                                 "input_region": _region_entry(region, encoding)}
        if found is None:
            entry["result"] = "holds"
        elif found == "unknown":
            entry["result"] = "unknown (solver timeout)"
            verdict = NOT_CERTIFIED if verdict == CERTIFIED else verdict
        else:
            entry["result"] = "bound check failed"
            entry["latent_point"] = [float(v) for v in found.latent]
            entry["skip_inputs_raw"] = _skip_inputs_raw(found, layout, encoding)
            violation = find_concrete_violation(model, spec, encoding, list(own_low), list(own_high), a.index, found,
                                                layout)
            if violation is not None:
                entry["result"] = "violated"
                entry["violating_input_raw"] = violation
                verdict = VIOLATED
            elif verdict == CERTIFIED:
                verdict = NOT_CERTIFIED
        entry["seconds"] = round(time.perf_counter() - t0, 4)
        results.append(entry)
    return {"verdict": verdict, **base, "asserts": results, "seconds": round(time.perf_counter() - start, 4)}


def _region_entry(region: InputRegion, encoding: Encoding) -> dict[str, Any]:
    """Which input box the assert was checked over: the whole domain, or the inputs its premise narrows,
    in raw units (the certificate's exact check ran on the scaled, exact bounds)."""
    if region.empty:
        return {"kind": "empty (the premise never holds in the domain box)"}
    if not region.restricts:
        return {"kind": "domain"}
    affine = encoding.input_affine()
    narrowed = {}
    for j in region.narrowed:
        offset, scale = affine[j]
        narrowed[encoding.input_names[j]] = [float(offset + scale * region.low[j]),
                                             float(offset + scale * region.high[j])]
    return {"kind": "premise region", "units": "raw", "narrowed_inputs": narrowed}


def _skip_inputs_raw(found: Counterexample, layout: LatentLayout, encoding: Encoding) -> dict[str, float]:
    """The counterexample's skip inputs in raw units (hidden coordinates have no raw meaning)."""
    affine = encoding.input_affine()
    return {encoding.input_names[j]: float(affine[j][0] + affine[j][1] * found.latent[layout.coordinate(j)])
            for j in layout.mapped}


# ---- float32 rounding of the forward pass ------------------------------------------------------------

_UNIT_ROUNDOFF_32 = 2.0 ** -24
_UNIT_ROUNDOFF_64 = 2.0 ** -53


def float32_error_bound(model: SkipMLP, encoding: Encoding, domain: Domain) -> float:
    """A rigorous bound, over the whole domain, on |float32 forward pass - exact network| per output
    (network units), for inputs scaled in float64 and rounded to float32. ``predict`` evaluates in float64,
    whose error obeys the same analysis with a smaller unit roundoff, so this bounds it too.

    Per layer, for any summation order: |fl(W x' + b) - (W x + b)| <= |W| e + g(n+1) (|W| (m + e) + |b|),
    with e the incoming error, m a bound on |x| over the domain and g(n) = n u / (1 - n u); ReLU passes the
    error unchanged. The bound is evaluated in float64 and padded outwards by a relative 1e-6."""
    lower, upper = np.asarray(domain.lower, np.float64), np.asarray(domain.upper, np.float64)
    offset, span = np.asarray(encoding.input_min, np.float64), np.asarray(encoding.input_max, np.float64)
    span = span - offset
    with np.errstate(all="ignore"):
        scaled_low, scaled_high = (lower - offset) / span, (upper - offset) / span
        magnitude = np.maximum(np.abs(scaled_low), np.abs(scaled_high))
        raw_magnitude = (np.maximum(np.abs(lower), np.abs(upper)) + np.abs(offset)) / span
        error = _UNIT_ROUNDOFF_32 * magnitude + 4 * _UNIT_ROUNDOFF_64 * (raw_magnitude + magnitude)

    def gamma(n: int) -> float:
        return n * _UNIT_ROUNDOFF_32 / (1 - n * _UNIT_ROUNDOFF_32)

    def layer_error(layer: torch.nn.Linear, incoming: np.ndarray, size: np.ndarray) -> np.ndarray:
        weight = np.abs(layer.weight.detach().to(torch.float32).numpy().astype(np.float64))
        bias = np.abs(layer.bias.detach().to(torch.float32).numpy().astype(np.float64))
        return weight @ incoming + gamma(weight.shape[1] + 1) * (weight @ (size + incoming) + bias)

    mapped = model.mapped_features.numpy()
    skip_error, skip_size = error[mapped], magnitude[mapped]
    low, high = scaled_low, scaled_high
    for layer in model.hidden:
        error = layer_error(layer, error, magnitude)
        weight = layer.weight.detach().to(torch.float64).numpy()
        centre = weight @ ((high + low) / 2) + layer.bias.detach().to(torch.float64).numpy()
        spread = np.abs(weight) @ ((high - low) / 2)
        pad = 1e-9 * (np.abs(centre) + spread) + 1e-12  # float64 rounding of these bounds, outwards
        low, high = np.maximum(centre - spread - pad, 0.0), np.maximum(centre + spread + pad, 0.0)
        magnitude = high
    error = layer_error(model.last, np.concatenate([error, skip_error]), np.concatenate([magnitude, skip_size]))
    bound = float(np.max(error)) * (1 + 1e-6) if error.size else 0.0
    return bound if math.isfinite(bound) else math.inf


# ---- what the certificate binds ----------------------------------------------------------------------

def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, allow_nan=True).encode()).hexdigest()


def bound_components(model: SkipMLP, encoding: Encoding, domain: Domain, admitted_text: str,
                     margin: float) -> dict[str, Any]:
    """One hash per thing that determines the function or the claim (the margin as its value)."""
    return {
        "weights": weights_sha256(model),
        "architecture": _sha(model.architecture()),
        "encoding": _sha(encoding.to_dict()),
        "domain": _sha({"lower": np.asarray(domain.lower, dtype=np.float64).tolist(),
                        "upper": np.asarray(domain.upper, dtype=np.float64).tolist()}),
        "constraint": text_sha256(admitted_text),
        "margin": float(margin),
    }


def digest_of(components: dict[str, Any]) -> str:
    """The single digest the certificate binds: a hash over every component."""
    return _sha(components)


# ---- a concrete violation, evaluated exactly ----------------------------------------------------------

def exact_outputs(model: SkipMLP, scaled_input: Sequence[Fraction]) -> list[Fraction]:
    """The network's outputs at one scaled input, in exact rationals on the stored float32 weights."""
    def fractions(tensor: torch.Tensor) -> np.ndarray:
        values = tensor.detach().to(torch.float32).numpy().astype(np.float64)
        return np.vectorize(Fraction, otypes=[object])(values)

    x = np.array([Fraction(v) for v in scaled_input], dtype=object)
    h = x
    zero = Fraction(0)
    for layer in model.hidden:
        h = fractions(layer.weight).dot(h) + fractions(layer.bias)
        h = np.array([max(v, zero) for v in h], dtype=object)
    latent = np.concatenate([h, x[model.mapped_features.numpy()]])
    return list(fractions(model.last.weight).dot(latent) + fractions(model.last.bias))


def breaks_exactly(spec: Spec, assert_index: int, scaled_input: Sequence[Fraction],
                   outputs: Sequence[Fraction]) -> bool:
    """Whether the assert is false at this input and these outputs, decided exactly by z3 (no margin)."""
    a = spec.asserts[assert_index]
    pairs = [(input_var(j), z3_rational(scaled_input[j])) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(outputs[k])) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))


def find_concrete_violation(model: SkipMLP, spec: Spec, encoding: Encoding, low: Sequence[Fraction],
                            high: Sequence[Fraction], assert_index: int, found: Counterexample | None = None,
                            layout: LatentLayout | None = None, seed: int = 0) -> dict[str, float] | None:
    """A realisable input of the domain box at which the network, evaluated exactly, breaks the assert;
    returned in raw units, or None when none of the candidates does (which proves nothing).

    Candidates: the bound check's skip inputs with the other inputs at the box's centre, and random
    points of the box; each is snapped onto an input a real row could have (one category per one-hot
    group, whole numbers in integer columns: ``deepsade.realisable``). Screened in float64, confirmed exactly."""
    low_f = np.array([float(v) for v in low])
    high_f = np.array([float(v) for v in high])
    rng = np.random.default_rng(seed)
    candidates = [low_f + (high_f - low_f) * rng.random((_VIOLATION_SAMPLES, len(low_f)))]
    if found is not None and layout is not None:
        centre = (low_f + high_f) / 2
        for j in layout.mapped:
            centre[j] = float(found.latent[layout.coordinate(j)])
        candidates.insert(0, centre[None, :])
    realisable = RealisableInputs.from_encoding(encoding)
    points = realisable.snap(np.vstack(candidates), low_f, high_f)
    with torch.no_grad():
        outputs = model(torch.as_tensor(points, dtype=torch.float64).to(torch.float32)).double().numpy()
    with np.errstate(all="ignore"):
        suspicious = ~spec.evaluate_scaled(points, outputs)[:, assert_index]
    order = list(np.flatnonzero(suspicious)[:16]) + ([0] if found is not None else [])
    affine = encoding.input_affine()
    for i in dict.fromkeys(order):  # screened points first; the counterexample's own point last
        exact_input = realisable.snap_exact([Fraction(float(v)) for v in points[i]], low, high)
        if exact_input is None or not realisable.contains(exact_input):
            return None  # the box holds no input a real row could have
        if breaks_exactly(spec, assert_index, exact_input, exact_outputs(model, exact_input)):
            return {encoding.input_names[j]: float(off + scale * exact_input[j])
                    for j, (off, scale) in enumerate(affine)}
    return None


# ---- the re-check of a model directory ----------------------------------------------------------------

@dataclass
class Recheck:
    """The outcome of ``deepsade certify``: a fresh certificate and every difference found."""

    certificate: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.certificate.get("verdict") == CERTIFIED


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def encoding_problems(encoding: Encoding) -> list[str]:
    """What is wrong with a stored encoding: names that do not follow from the columns, scaling factors
    that are not finite and positive."""
    problems = []
    if encoding.task not in TASKS:
        problems.append(f"unknown task {encoding.task!r}")
    derived_inputs = []
    for column in encoding.feature_columns:
        levels = encoding.categorical_levels.get(column)
        derived_inputs += [f"{column}={level}" for level in levels] if levels is not None else [column]
    if list(encoding.input_names) != derived_inputs:
        problems.append("the input names do not follow from the feature columns and their categories")
    for name in encoding.categorical_levels:
        if name not in encoding.feature_columns:
            problems.append(f"categories are stored for {name!r}, which is not a feature column")
    numeric = [c for c in encoding.feature_columns if c not in encoding.categorical_levels]
    for name in encoding.integer_inputs or []:
        if name not in numeric:
            problems.append(f"{name!r} is stored as an integer input, but it is not a numeric feature column")
    if encoding.task == "multiclass":
        derived_outputs = [f"{encoding.target_columns[0]}={c}" for c in encoding.classes or []]
    else:
        derived_outputs = list(encoding.target_columns)
    if list(encoding.output_names) != derived_outputs:
        problems.append("the output names do not follow from the target columns and classes")
    if encoding.task == "binary" and len(encoding.classes or []) != 2:
        problems.append("a binary target needs exactly two classes")
    if encoding.task in ("regression", "multilabel") and encoding.classes is not None:
        problems.append(f"a {encoding.task} encoding has no classes")
    problems += _scaling_problems("input", encoding.input_names, encoding.input_min, encoding.input_max)
    if encoding.task == "regression":
        problems += _scaling_problems("target", encoding.output_names, encoding.target_min or [],
                                      encoding.target_max or [])
    return problems


def _scaling_problems(kind: str, names: Sequence[str], lows: Sequence[Any], highs: Sequence[Any]) -> list[str]:
    if len(lows) != len(names) or len(highs) != len(names):
        return [f"{len(names)} {kind}s but {len(lows)} minima and {len(highs)} maxima for their scaling"]
    bad = []
    for name, lo, hi in zip(names, lows, highs, strict=True):
        if not (_finite_number(lo) and _finite_number(hi) and hi > lo and math.isfinite(float(hi) - float(lo))):
            bad.append(f"{name} [{lo}, {hi}]")
    return [f"the scaling factor (max - min) of {kind}(s) {', '.join(bad)} is not finite and positive"] if bad else []


def domain_problems(domain: Domain, encoding: Encoding) -> list[str]:
    """What is wrong with a domain box: wrong length, a bound that is not finite, lower above upper."""
    lower, upper = np.asarray(domain.lower, dtype=np.float64), np.asarray(domain.upper, dtype=np.float64)
    n = len(encoding.input_names)
    if lower.shape != (n,) or upper.shape != (n,):
        return [f"the domain box has {lower.size} lower and {upper.size} upper bounds for {n} inputs"]
    bad = [f"{encoding.input_names[j]} [{lower[j]}, {upper[j]}]" for j in range(n)
           if not (np.isfinite(lower[j]) and np.isfinite(upper[j]) and lower[j] <= upper[j])]
    return [f"the domain box must be finite with lower <= upper: {', '.join(bad)}"] if bad else []


def _domain_differences(stored: Domain, yours: Domain, encoding: Encoding) -> list[str]:
    return [f"{name}: stored [{stored.lower[j]:.9g}, {stored.upper[j]:.9g}], yours [{yours.lower[j]:.9g}, "
            f"{yours.upper[j]:.9g}]" for j, name in enumerate(encoding.input_names)
            if stored.lower[j] != yours.lower[j] or stored.upper[j] != yours.upper[j]]


def recheck_margin(stored: dict[str, Any], training: dict[str, Any]) -> tuple[float, list[str]]:
    """The margin the re-check uses (never below ``MIN_MARGIN``) and the problems with the stored one."""
    claimed = stored.get("margin", training.get("output_margin"))
    if claimed is None:
        return MIN_MARGIN, []
    if not _finite_number(claimed):
        return MIN_MARGIN, [f"the stored margin {claimed!r} is not a finite number"]
    if claimed < MIN_MARGIN:
        return MIN_MARGIN, [f"the stored margin {claimed:g} is below the policy minimum {MIN_MARGIN:g}"]
    return float(claimed), []


def recheck_artifact(artifact: ModelArtifact, constraint_text: str | None = None, domain: Domain | None = None,
                     timeout_s: float | None = 60.0) -> Recheck:
    """Re-check a stored model from first principles, against its own rules and domain or against the
    caller's (``constraint_text``, ``domain`` in raw units), and list every difference from what is stored."""
    stored = artifact.certificate if isinstance(artifact.certificate, dict) else {"verdict": "corrupted"}
    problems: list[str] = []
    notes: list[str] = []
    empty = {"verdict": NOT_CERTIFIED, "asserts": []}
    problems += encoding_problems(artifact.encoding)
    problems += domain_problems(artifact.domain, artifact.encoding)
    if domain is not None:
        problems += [f"your domain: {p}" for p in domain_problems(domain, artifact.encoding)]
    arch = artifact.model.architecture()
    if arch["n_inputs"] != len(artifact.encoding.input_names) or arch["n_outputs"] != len(artifact.encoding.output_names):
        problems.append(f"the network has {arch['n_inputs']} inputs and {arch['n_outputs']} outputs, the encoding "
                        f"{len(artifact.encoding.input_names)} and {len(artifact.encoding.output_names)}")
    if not all(torch.isfinite(p).all() for p in artifact.model.parameters()):
        problems.append("the weights hold NaN or infinite values")
    margin, margin_problems = recheck_margin(stored, artifact.training)
    problems += margin_problems
    if problems:  # nothing below can be computed soundly on these numbers
        return Recheck(empty, problems, notes)

    stored_admitted = _admitted(artifact.constraint_text, "the stored constraint", problems)
    rules_text = artifact.constraint_text
    if constraint_text is not None:
        rules_text = constraint_text
        yours = _admitted(constraint_text, "your constraint file", problems)
        if yours is not None and stored_admitted is not None and yours != stored_admitted:
            notes.append("your rules differ from the rules stored in the model directory: checked against yours")
    try:
        spec = parse_spec_text(rules_text, artifact.encoding)
    except UserInputError as exc:
        problems.append(f"the constraint does not parse against the model's encoding: {exc}")
        return Recheck(empty, problems, notes)
    check_domain = artifact.domain
    if domain is not None:
        differences = _domain_differences(artifact.domain, domain, artifact.encoding)
        if differences:
            notes.append("your domain differs from the stored one (checked on yours): " + "; ".join(differences))
        check_domain = domain
    if list(artifact.model.mapped_features.tolist()) != list(spec.mapped_features):
        problems.append(f"the network's skip features {artifact.model.mapped_features.tolist()} differ from the "
                        f"features the constraint mentions {list(spec.mapped_features)}")
        return Recheck(empty, problems, notes)

    fresh = certify_model(artifact.model, spec, artifact.encoding, check_domain, margin, timeout_s)
    fresh["constraint_sha256"] = text_sha256(artifact.constraint_text)
    stored_verdict = stored.get("verdict")
    if stored_verdict in (None, "none"):
        notes.append(f"the model directory holds no certificate (method {artifact.method}); the check above is "
                     "the only evidence")
        return Recheck(fresh, problems, notes)
    if stored.get("weights_sha256") != fresh["weights_sha256"]:
        problems.append("the weights differ from the ones the stored certificate covers (altered after training)")
    if stored.get("constraint_sha256") != text_sha256(artifact.constraint_text):
        problems.append("the constraint text differs from the one certified (its hash does not match)")
    if stored_verdict != fresh["verdict"]:
        problems.append(f"stored verdict {stored_verdict!r} but the re-check says {fresh['verdict']!r}")
    problems += _binding_problems(stored, artifact, stored_admitted, margin)
    return Recheck(fresh, problems, notes)


def _admitted(text: str, what: str, problems: list[str]) -> str | None:
    try:
        return read_constraint_text(text, what).text
    except UserInputError as exc:
        problems.append(f"{what} cannot be read: {exc}")
        return None


def _binding_problems(stored: dict[str, Any], artifact: ModelArtifact, admitted: str | None,
                      margin: float) -> list[str]:
    """Compare the stored digest with one recomputed over the directory as it is, naming what differs."""
    bound = stored.get("bound")
    if not isinstance(bound, dict) or "digest" not in stored:
        return ["the certificate binds no digest of the model, domain, constraint and margin"]
    current = bound_components(artifact.model, artifact.encoding, artifact.domain, admitted or "", margin)
    differing = sorted(k for k in current if bound.get(k) != current[k])
    differing += sorted(k for k in bound if k not in current)
    if differing:
        return [f"the certificate was issued for a different {', '.join(differing)} than the model directory holds"]
    if stored["digest"] != digest_of(current):
        return ["the certificate's digest does not match its own components"]
    return []


def certify_artifact(artifact: ModelArtifact, timeout_s: float | None = 60.0) -> dict[str, Any]:
    """Recompute the certificate of a stored model from scratch (constraint text, domain, weights)."""
    return recheck_artifact(artifact, timeout_s=timeout_s).certificate
