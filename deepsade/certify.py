"""The certificate: an exact re-check of stored float32 weights, independent of how they were trained.

Steps: exact rational latent box from the domain box (``bounds.exact_latent_box``), then for every
assert an exact z3 search for a latent point and an output perturbation of at most ``margin`` where
the premise holds and the conclusion fails. No counterexample for any assert: certified.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import numpy as np

from deepsade.artifact import ModelArtifact, text_sha256, weights_sha256
from deepsade.bounds import exact_latent_box
from deepsade.data import Domain, Encoding
from deepsade.encode import Counterexample, LatentLayout, find_counterexample
from deepsade.network import SkipMLP
from deepsade.spec import Spec, parse_spec_text

CERTIFIED, VIOLATED, UNKNOWN = "certified", "violated", "unknown"


def certify_model(model: SkipMLP, spec: Spec, encoding: Encoding, domain: Domain, margin: float,
                  timeout_s: float | None = 60.0) -> dict[str, Any]:
    """Exactly re-check every assert over the domain for these weights; returns the certificate dict."""
    start = time.perf_counter()
    if list(model.mapped_features.tolist()) != list(spec.mapped_features):
        return {"verdict": VIOLATED, "reason": "the network's skip features differ from the constraint's mapped features"}
    low, high = domain.scaled_exact(encoding)
    latent_low, latent_high = exact_latent_box(model, low, high)
    layout = LatentLayout(model.hidden_sizes[-1], tuple(spec.mapped_features), model.n_outputs)
    weights = model.last.weight.detach().float().numpy().astype(np.float64)
    biases = model.last.bias.detach().float().numpy().astype(np.float64)
    results = []
    verdict = CERTIFIED
    for a in spec.asserts:
        t0 = time.perf_counter()
        found = find_counterexample(a, layout, weights, biases, latent_low, latent_high, Fraction(margin), timeout_s)
        entry: dict[str, Any] = {"assert": a.index + 1, "text": " ".join(a.text.split()),
                                 "seconds": round(time.perf_counter() - t0, 4)}
        if found is None:
            entry["result"] = "holds"
        elif found == "unknown":
            entry["result"] = UNKNOWN
            verdict = UNKNOWN if verdict == CERTIFIED else verdict
        else:
            entry["result"] = "counterexample"
            entry["latent_point"] = [float(v) for v in found.latent]
            entry["skip_inputs_raw"] = _skip_inputs_raw(found, layout, encoding)
            verdict = VIOLATED
        results.append(entry)
    return {
        "verdict": verdict,
        "margin": margin,
        "method": "exact rational interval bounds + z3 QF_LRA search per assert",
        "asserts": results,
        "domain_source": domain.source,
        "weights_sha256": weights_sha256(model),
        "seconds": round(time.perf_counter() - start, 4),
    }


def _skip_inputs_raw(found: Counterexample, layout: LatentLayout, encoding: Encoding) -> dict[str, float]:
    """The counterexample's skip inputs in raw units (hidden coordinates have no raw meaning)."""
    affine = encoding.input_affine()
    return {encoding.input_names[j]: float(affine[j][0] + affine[j][1] * found.latent[layout.coordinate(j)])
            for j in layout.mapped}


def certify_artifact(artifact: ModelArtifact, timeout_s: float | None = 60.0) -> dict[str, Any]:
    """Recompute the certificate of a stored model from scratch (constraint text, domain, weights)."""
    spec = parse_spec_text(artifact.constraint_text, artifact.encoding)
    margin = float(artifact.certificate.get("margin", artifact.training.get("output_margin", 1e-4)))
    certificate = certify_model(artifact.model, spec, artifact.encoding, artifact.domain, margin, timeout_s)
    certificate["constraint_sha256"] = text_sha256(artifact.constraint_text)
    return certificate
