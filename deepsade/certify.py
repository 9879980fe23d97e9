"""The certificate: an exact re-check of stored float32 weights, independent of how they were trained.

Steps: for every assert, an exact rational latent box (``bounds.exact_latent_box``) over the input
region its premise implies (``regions.input_region``: the domain box cut by the premise's single-input
bounds, derived from the rules and the domain, never read from the model directory), then for every
assert an exact z3 search for a latent point and an output perturbation of at most ``margin`` where
the premise holds and the conclusion fails. No such point for any assert: *certified*. A latent point
is an over-approximation (the latent box holds points no input reaches), so a failed check alone says
*not certified*; the verdict is *violated* only when a concrete input of the domain, evaluated exactly
in rationals, breaks the rule (``deepsade.concrete_violation``). The certificate records a rigorous
bound on float32 rounding (``deepsade.float_error``) and one digest over everything the claim depends on.

``deepsade.recheck`` is what ``deepsade certify`` runs on a model directory.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import Enum
from fractions import Fraction
from typing import Any

import numpy as np

from deepsade.artifact import text_sha256, weights_sha256
from deepsade.bounds import exact_latent_box
from deepsade.concrete_violation import find_concrete_violation
from deepsade.data import Domain, Encoding
from deepsade.encoding.exact import Counterexample, find_counterexample
from deepsade.encoding.layout import LatentLayout
from deepsade.float_error import float32_error_bound, rounding_warning
from deepsade.network import SkipMLP
from deepsade.regions import InputRegion, input_regions
from deepsade.spec import Spec


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
    if getattr(model, "kind", None) == "label-set-repair":  # deepsade.constructions.repair_layer
        from deepsade.constructions.repair_certificate import certify_repaired

        return certify_repaired(model, spec, margin, timeout_s, base, start)
    if getattr(model, "kind", None) == "sequential-clamp":  # deepsade.constructions.sequential_clamp
        from deepsade.constructions.polytope_certificate import certify_clamped

        return certify_clamped(model, spec, encoding, domain, margin, timeout_s, base, start,
                               float32_error_bound(model, encoding, domain))
    if getattr(model, "kind", None) == "score-clamp":  # deepsade.constructions.score_clamp
        from deepsade.constructions.score_clamp_certificate import certify_score_clamped

        return certify_score_clamped(model, spec, encoding, domain, margin, timeout_s, base, start,
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
        base["warning"] = rounding_warning(rounding, margin)
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
