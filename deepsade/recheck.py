"""The re-check of a model directory (``deepsade certify``), from first principles.

It trusts nothing in a model directory that it can derive (the constraint's hash, the skip features,
the verdict: a fresh certificate by ``certify.certify_model``), checks what it cannot derive (margin,
scaling, domain) against fixed policy, and compares one digest over everything that determines the
function and the claim. Rules and a domain of the caller's own may replace the stored ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from deepsade.artifact import ModelArtifact, text_sha256
from deepsade.certify import CERTIFIED, MIN_MARGIN, NOT_CERTIFIED, bound_components, certify_model, digest_of
from deepsade.data import TASKS, Domain, Encoding
from deepsade.errors import UserInputError
from deepsade.smtlib import read_constraint_text
from deepsade.spec import parse_spec_text


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
        problems += _exact_output_problems(encoding)
    elif encoding.output_affine_exact is not None:
        problems.append(f"a {encoding.task} encoding has no exact output scaling")
    return problems


def _exact_output_problems(encoding: Encoding) -> list[str]:
    """What is wrong with ``output_affine_exact``: not one (offset, scale) pair of rationals per output, a scale
    that is not positive, or pairs whose nearest floats are not ``target_min`` and ``target_max``."""
    pairs = encoding.output_affine_exact
    if pairs is None:
        return []
    if not isinstance(pairs, list) or len(pairs) != len(encoding.output_names):
        return ["the exact output scaling does not hold one (offset, scale) pair per output"]
    try:
        exact = [(Fraction(offset), Fraction(scale)) for offset, scale in pairs]
    except (TypeError, ValueError, ZeroDivisionError):
        return ["the exact output scaling holds a value that is not a rational number"]
    if any(scale <= 0 for _, scale in exact):
        return ["the exact output scaling has a scale that is not positive"]
    try:
        nearest = ([float(o) for o, _ in exact], [float(o + s) for o, s in exact])
    except OverflowError:
        return ["the exact output scaling holds a value beyond the float64 range"]
    if [float(v) for v in encoding.target_min or []] != nearest[0] or \
            [float(v) for v in encoding.target_max or []] != nearest[1]:
        return ["target_min / target_max are not the nearest floats of the exact output scaling"]
    return []


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
