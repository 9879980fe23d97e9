"""Hand a model to the verification world: ``model.onnx`` + one VNN-LIB property per assert.

(An HCR model, whose layer is not piecewise linear, gets its own graph, ``deepsade.constructions.hcr_onnx``,
and no VNN-LIB files: ``export.json`` says why, per assert, under ``skipped`` and ``guarantee``.)

``model.onnx`` computes, from the *raw* encoded inputs (the order of ``model.json``'s ``input_names``),
the *raw* outputs ``deepsade predict`` reports before any thresholding: regression targets in their own
units, classifier scores (logits). It uses only ``MatMul``, ``Add`` and ``Relu``, which every ONNX
reader of the verification tools takes (Marabou 2.0 rejects ``Gather``):

    scaled   = X @ diag(1 / (max - min)) + (-min / (max - min))      input scaling
    h        = Relu(Relu(scaled @ W1^T + b1) ... )                    hidden layers
    skip     = scaled @ S                                             S: constant 0/1 selection matrix
    Y        = h @ Wh^T + skip @ Ws^T + b                             last layer sees [h; skip]

For regression the target scaling ``min + range * y`` is folded into the last layer (``Wh, Ws, b``
multiplied by the range in float64, then rounded once to the graph's precision).

Each ``.vnnlib`` file states where the rule is *broken* (the VNN-LIB convention: ``sat`` is a
counterexample, ``unsat`` a proof): the domain box on ``X_i`` in raw units, then ``premise and not
conclusion`` as a disjunction of conjunctions of linear atoms, built exactly (rationals) from the
assert as written in raw units (``deepsade.verification.violation_disjuncts``).

VNN-LIB has no strict inequalities and solvers compute in floating point. Every atom of the violation
is widened by ``tolerance`` (default ``deepsade.verification.STRICT_MARGIN``) on its normalised form (largest
coefficient magnitude 1, raw units): ``a.v > b`` and ``a.v >= b`` both become ``a.v >= b - tolerance``,
``a.v == b`` becomes ``b - tolerance <= a.v <= b + tolerance``, and every bound is rounded outwards to a
float64. The written region therefore *contains* every violation: ``unsat`` proves the rule holds on the
whole box for the function ``model.onnx`` computes, and a ``sat`` witness may lie within ``tolerance`` of
the rule's boundary, so it must be re-checked (``recheck_counterexample``). A negative tolerance narrows
instead: witnesses then break the rule by at least ``|tolerance|``, but ``unsat`` proves nothing about
smaller violations. The domain box itself is never widened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepsade.atomic import write_bytes_atomically, write_text_atomically
from deepsade.errors import UserInputError
from deepsade.onnx_graph import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, build_onnx
from deepsade.spec import parse_spec_text
from deepsade.verification import STRICT_MARGIN, NetworkWeights
from deepsade.vnnlib import raw_violation, vnnlib_text

if TYPE_CHECKING:
    from deepsade.artifact import ModelArtifact

FORMAT = "deepsade-export/1"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "export.json"


@dataclass
class Property:
    """One exported assert: its file, how many disjuncts it has, whether Marabou 2.0 reads it."""

    assert_index: int
    file: str
    text: str
    disjuncts: int
    marabou_readable: bool


@dataclass
class ExportResult:
    """What ``export_model`` wrote."""

    directory: Path
    properties: list[Property] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "float32"  # model.onnx's tensor type, and why it was chosen (``choose_precision``)
    precision_reason: str = ""


# ---- the graph's precision -------------------------------------------------------------------------

#: tensor types of ``model.onnx``; "auto" picks one from the certificate (``choose_precision``)
PRECISIONS = ("auto", "float32", "float64")


def float32_not_covered(artifact: ModelArtifact) -> str | None:
    """Why the certificate does not cover a float32 forward pass of this model (its float32 error bound over
    the domain exceeds the output perturbation its check allowed: the margin, or the wider
    ``checked_perturbation`` of a check widened by the bound, as the score clamps' is), or None when it does or
    says nothing about rounding (no certificate)."""
    certificate = artifact.certificate or {}
    bound, margin = certificate.get("float32_error_bound"), certificate.get("margin")
    if not isinstance(bound, (int, float)) or not isinstance(margin, (int, float)):
        return None
    allowed = max(margin, certificate.get("checked_perturbation") or 0.0)
    if bound <= allowed:
        return None
    return (f"the certificate's float32 error bound over the domain, {bound:.3g} per output, exceeds its margin "
            f"{allowed:g} (the output perturbation its check allowed): float32 outputs within that distance of a rule's boundary are not covered")


def choose_precision(artifact: ModelArtifact, precision: str = "auto") -> tuple[str, str]:
    """The tensor type of ``model.onnx`` and why. "auto": float64 when the certificate does not cover float32
    rounding (``float32_not_covered``; float64's error bound is about 2^-29 of float32's, far inside any
    margin), float32 otherwise."""
    if precision not in PRECISIONS:
        raise UserInputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    uncovered = float32_not_covered(artifact)
    if precision != "auto":
        return precision, "asked for" + (f" ({uncovered})" if precision == "float32" and uncovered else "")
    if uncovered:
        return "float64", uncovered
    return "float32", "the certificate covers float32 rounding, or the model has no certificate"


# ---- the export ------------------------------------------------------------------------------------

def export_model(artifact: ModelArtifact, directory: str | Path, tolerance: float = STRICT_MARGIN,
                 precision: str = "auto") -> ExportResult:
    """Write ``model.onnx``, ``assert_N.vnnlib`` per linear assert and ``export.json`` into ``directory``;
    ``precision``: one of ``PRECISIONS`` (``choose_precision``)."""
    import onnx  # noqa: F401  (fail early with the install hint below)

    precision, precision_reason = choose_precision(artifact, precision)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"cannot write the export to {directory}: a file of that name exists")
    directory.mkdir(parents=True, exist_ok=True)
    enc, domain = artifact.encoding, artifact.domain
    regression = enc.task == "regression"
    scaling = (np.asarray(enc.input_min), np.asarray(enc.input_max),
               np.asarray(enc.target_min) if regression else None, np.asarray(enc.target_max) if regression else None)
    hcr = getattr(artifact.model, "kind", None) == "hcr"
    if hcr:  # not piecewise linear: the graph uses Sigmoid, Div, ReduceMax; no VNN-LIB proof applies
        from deepsade.constructions.hcr_onnx import build_hcr_onnx

        model = build_hcr_onnx(artifact.model, *scaling, precision)
    elif getattr(artifact.model, "kind", None) == "label-set-repair":  # exact min/max, not the ReLU form
        from deepsade.constructions.repair_onnx import build_repair_onnx

        model = build_repair_onnx(artifact.model, scaling[0], scaling[1], precision)
    else:
        model = build_onnx(NetworkWeights.from_model(artifact.model), *scaling, precision)
    write_bytes_atomically(directory / ONNX_FILE, model.SerializeToString())

    spec = parse_spec_text(artifact.constraint_text, enc)
    lower, upper = np.asarray(domain.lower, dtype=np.float64), np.asarray(domain.upper, dtype=np.float64)
    exact_tolerance = Fraction(tolerance)
    result = ExportResult(directory)
    for assert_ in spec.asserts:
        if hcr:
            from deepsade.constructions.hcr_onnx import NO_VNNLIB

            result.skipped.append({"assert": assert_.index + 1, "reason": NO_VNNLIB})
            continue
        disjuncts, reason = raw_violation(assert_, spec)
        if disjuncts is None:
            result.skipped.append({"assert": assert_.index + 1, "reason": reason})
            continue
        if not disjuncts:
            result.skipped.append({"assert": assert_.index + 1,
                                   "reason": "no output value breaks it (its negation is unsatisfiable)"})
            continue
        text, readable = vnnlib_text(spec, assert_, disjuncts, lower, upper, exact_tolerance)
        name = f"assert_{assert_.index + 1}.vnnlib"
        write_text_atomically(directory / name, text)
        result.properties.append(Property(assert_.index + 1, name, " ".join(assert_.text.split()), len(disjuncts),
                                          readable))
    result.precision, result.precision_reason = precision, precision_reason
    write_text_atomically(directory / MANIFEST_FILE, json.dumps(_manifest(artifact, result, tolerance, precision),
                                                                indent=1))
    return result


def _manifest(artifact: ModelArtifact, result: ExportResult, tolerance: float, precision: str) -> dict[str, Any]:
    enc, domain = artifact.encoding, artifact.domain
    from deepsade.artifact import weights_sha256

    if enc.task == "regression":
        output_units = [f"raw units of target {name!r}" for name in enc.output_names]
    elif enc.task == "binary":
        output_units = [f"score (logit): > 0 means {enc.target_columns[0]} = {enc.classes[1]!r}"]
    elif enc.task == "multiclass":
        output_units = ["score (logit) of the class; the largest score is the prediction"] * len(enc.output_names)
    else:
        output_units = ["score (logit): > 0 means label 1"] * len(enc.output_names)
    categorical = {f"{c}={v}" for c, levels in enc.categorical_levels.items() for v in levels}
    operators = ["MatMul", "Add", "Relu"]
    graph = ("raw inputs -> input scaling -> hidden ReLU layers -> last layer on [hidden; skip features (constant "
             "selection matrix)]" + (" with the target scaling folded in" if enc.task == "regression" else ""))
    extra: dict[str, Any] = {}
    if getattr(artifact.model, "kind", None) == "hcr":
        from deepsade.constructions.hcr_onnx import GRAPH, NO_VNNLIB, OPERATORS

        operators, graph = OPERATORS, GRAPH + (" -> target scaling" if enc.task == "regression" else "")
        extra["guarantee"] = {"vnnlib": NO_VNNLIB, "piecewise_linear": False,
                              "certificate": "by construction: the region is proven exactly (z3); that every output "
                                             "lies in it rests on the construction, not on an exact engine"}
    if getattr(artifact.model, "kind", None) == "label-set-repair":
        from deepsade.constructions.repair_onnx import GRAPH, OPERATORS

        operators, graph = OPERATORS, GRAPH
    return {
        "format": FORMAT,
        "model": ONNX_FILE,
        "onnx": {"opset": OPSET, "ir_version": IR_VERSION, "precision": precision,
                 "precision_reason": result.precision_reason,
                 "operators": operators, "graph": graph},
        **extra,
        "task": enc.task,
        "method": artifact.method,
        "certificate": artifact.certificate.get("verdict", "none"),
        "weights_sha256": weights_sha256(artifact.model),
        "input": {
            "name": INPUT_NAME, "shape": ["N", len(enc.input_names)],
            "features": [{"index": j, "vnnlib": f"X_{j}", "name": name,
                          "units": "one-hot (0/1)" if name in categorical else "raw",
                          "domain": [float(domain.lower[j]), float(domain.upper[j])]}
                         for j, name in enumerate(enc.input_names)],
            "domain_source": domain.source,
        },
        "output": {
            "name": OUTPUT_NAME, "shape": ["N", len(enc.output_names)],
            "outputs": [{"index": k, "vnnlib": f"Y_{k}", "name": name, "units": output_units[k]}
                        for k, name in enumerate(enc.output_names)],
        },
        "tolerance": {
            "value": tolerance,
            "units": "raw units, on each atom normalised to largest coefficient magnitude 1",
            "direction": ("widened: strict and non-strict atoms of the violation relaxed by the tolerance and bounds "
                          "rounded outwards, so the written region contains every violation; unsat is a proof, a sat "
                          "witness must be re-checked (it may lie within the tolerance of the rule's boundary)")
            if tolerance >= 0 else
            ("narrowed: atoms tightened by |tolerance| and bounds rounded inwards, so every witness breaks the rule by "
             "at least that much; unsat does not rule out smaller violations"),
        },
        "properties": [{"assert": p.assert_index, "file": p.file, "text": p.text, "disjuncts": p.disjuncts,
                        "marabou_2_readable": p.marabou_readable} for p in result.properties],
        "skipped": result.skipped,
    }


# ---- re-checking a witness -------------------------------------------------------------------------------

@dataclass
class Recheck:
    """A witness re-evaluated by deepsade itself: the point (clipped to the box), the outputs ``predict``
    gives there (raw units) and the 1-based asserts they break."""

    inputs: np.ndarray
    outputs: np.ndarray
    broken: list[int]
    clipped: bool

    @property
    def confirmed(self) -> bool:
        return bool(self.broken)


def recheck_counterexample(artifact: ModelArtifact, raw_inputs: np.ndarray) -> Recheck:
    """Evaluate a witness (raw encoded inputs, e.g. Marabou's ``X_i`` values) the way ``predict`` does once a
    row is encoded (scale in float64, run the stored network in float32, outputs to raw units), then the
    spec's evaluator on raw units. One-hot inputs are taken as given (the box, and the guarantee, cover
    values between 0 and 1 too). Points a solver placed just outside the box are clipped into it."""
    import torch

    enc = artifact.encoding
    point = np.asarray(raw_inputs, dtype=np.float64).reshape(-1)
    if point.shape[0] != len(enc.input_names):
        raise UserInputError(f"a witness needs {len(enc.input_names)} inputs, got {point.shape[0]}")
    inside = np.clip(point, artifact.domain.lower, artifact.domain.upper)
    with torch.no_grad():  # the same steps as prediction.predictions_frame after encode_inputs
        network = artifact.model(torch.as_tensor(enc.scale_inputs(inside[None, :]), dtype=torch.float32))
    outputs = enc.outputs_to_raw(network.double().numpy())
    spec = parse_spec_text(artifact.constraint_text, enc)
    truth = spec.evaluate_raw(inside[None, :], outputs)[0]
    return Recheck(inside, outputs[0], [int(i) + 1 for i in np.flatnonzero(~truth)], bool(np.any(inside != point)))
