"""Hand a model to the verification world: ``model.onnx`` + one VNN-LIB property per assert.

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
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import z3

from deepsade.atomic import write_bytes_atomically, write_text_atomically
from deepsade.errors import UserInputError
from deepsade.spec import Assert, Spec, parse_spec_text, split_implication
from deepsade.verification import STRICT_MARGIN, Atom, NetworkWeights, violation_disjuncts

if TYPE_CHECKING:
    from deepsade.artifact import ModelArtifact

FORMAT = "deepsade-export/1"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "export.json"
INPUT_NAME = "X"
OUTPUT_NAME = "Y"
OPSET = 13  # MatMul / Add / Relu have been stable since opset 13; Marabou 2.0 and onnxruntime read it
IR_VERSION = 8  # the IR that goes with opset 13: older runtimes refuse newer IR versions
PRECISIONS = ("float32", "float64")


# ---- the network as an ONNX graph -------------------------------------------------------------------

def build_onnx(weights: NetworkWeights, input_min: np.ndarray, input_max: np.ndarray,
               output_min: np.ndarray | None = None, output_max: np.ndarray | None = None,
               precision: str = "float32") -> Any:
    """The ONNX model ``raw inputs -> raw outputs`` (see the module docstring for the graph).

    ``output_min``/``output_max`` are the regression targets' scaling (None for classifier scores).
    The hidden layers' float32 weights are stored as they are; the scaling constants and the last
    layer with the target scaling folded in are computed in float64 and rounded once to ``precision``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in PRECISIONS:
        raise UserInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = np.float32 if precision == "float32" else np.float64
    elem = TensorProto.FLOAT if precision == "float32" else TensorProto.DOUBLE
    nodes: list[Any] = []
    constants: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output))
        return output

    def affine(source: str, matrix: np.ndarray, bias: np.ndarray | None, name: str, output: str | None = None) -> str:
        product = node("MatMul", [source, constant(f"{name}_matrix", matrix)], f"{name}_product" if bias is not None
                       else (output or name))
        if bias is None:
            return product
        return node("Add", [product, constant(f"{name}_bias", bias)], output or name)

    low, high = np.asarray(input_min, dtype=np.float64), np.asarray(input_max, dtype=np.float64)
    span = high - low
    scaled = affine(INPUT_NAME, np.diag(1.0 / span), -low / span, "scaled_inputs")
    hidden = scaled
    for i, (weight, bias) in enumerate(weights.hidden):
        hidden = node("Relu", [affine(hidden, weight.T, bias, f"hidden{i + 1}_pre")], f"hidden{i + 1}")
    n_hidden = weights.hidden[-1][1].shape[0]
    last_weight, last_bias = weights.last_weight, weights.last_bias
    if output_min is not None:
        # raw = min + span * (W z + b): folded into the last layer (computed in float64, rounded once to
        # ``precision``); as a separate MatMul + Add after it, Marabou 2.0 returned witnesses that broke that
        # very equation (measured: a wrong 'sat' for a certified model)
        out_low = np.asarray(output_min, dtype=np.float64)
        out_span = np.asarray(output_max, dtype=np.float64) - out_low
        last_weight, last_bias = out_span[:, None] * last_weight, out_span * last_bias + out_low
    last_hidden = last_weight[:, :n_hidden]
    if len(weights.mapped):
        selection = np.zeros((weights.n_inputs, len(weights.mapped)))
        selection[weights.mapped, np.arange(len(weights.mapped))] = 1.0
        skip = affine(scaled, selection, None, "skip_features")
        from_hidden = affine(hidden, last_hidden.T, None, "last_from_hidden")
        from_skip = affine(skip, last_weight[:, n_hidden:].T, None, "last_from_skip")
        summed = node("Add", [from_hidden, from_skip], "last_sum")
        node("Add", [summed, constant("last_bias", last_bias)], OUTPUT_NAME)
    else:
        affine(hidden, last_hidden.T, last_bias, "last", OUTPUT_NAME)
    graph = helper.make_graph(
        nodes, "deepsade",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", weights.n_inputs])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["N", weights.n_outputs])],
        constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deepsade")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


# ---- the negated rule as VNN-LIB ----------------------------------------------------------------------

def _vnnlib_names(spec: Spec) -> dict[str, str]:
    """Column name -> VNN-LIB variable (``X_i`` in the order of the inputs, ``Y_j`` of the outputs)."""
    names = {name: f"X_{j}" for j, name in enumerate(spec.input_names)}
    names.update({name: f"Y_{k}" for k, name in enumerate(spec.output_names)})
    return names


def raw_violation(assert_: Assert, spec: Spec) -> tuple[list[tuple[Atom, ...]] | None, str]:
    """``premise and not conclusion`` of one assert, in raw units over ``X_i``/``Y_j``, as linear disjuncts.

    Built from the assert as written (raw units, exact rationals); returns (None, reason) when it is
    not linear or too large to enumerate."""
    if not assert_.linear:
        return None, "it is not linear (VNN-LIB properties are linear)"
    names = _vnnlib_names(spec)
    renaming = [(z3.Real(column), z3.Real(var)) for column, var in names.items()]
    premise, conclusion = split_implication(assert_.raw, set(spec.output_names))
    raw = replace(assert_, premise=z3.substitute(premise, *renaming), conclusion=z3.substitute(conclusion, *renaming))
    return violation_disjuncts(raw)


def _number(value: float) -> str:
    """A float as a plain decimal (no exponent), exact for float64 readers."""
    return np.format_float_positional(float(value), unique=True, trim="0")


def _rounded(value: Fraction, down: bool) -> float:
    """The float64 next to ``value`` on the requested side (down: <= value; up: >= value)."""
    result = float(value)
    if down and Fraction(result) > value:
        result = math.nextafter(result, -math.inf)
    elif not down and Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


@dataclass
class Comparison:
    """``sum(terms) op bound`` with op ``<=`` or ``>=`` (what VNN-LIB has), the bound exact; ``outward``: when
    written as floats, round so that the set grows (else so that it shrinks)."""

    terms: tuple[tuple[str, Fraction], ...]
    op: str
    bound: Fraction
    outward: bool

    def variable_bound(self) -> tuple[str, str, Fraction] | None:
        """A one-variable comparison as (variable, '<=' | '>=', value); None for several variables."""
        if len(self.terms) != 1:
            return None
        (var, coefficient), = self.terms
        op = self.op if coefficient > 0 else _FLIP_SIDE[self.op]
        return var, op, self.bound / coefficient


_FLIP_SIDE = {"<=": ">=", ">=": "<="}


def widen(atom: Atom, tolerance: Fraction) -> list[Comparison]:
    """One violation atom as non-strict comparisons whose set contains the atom's set when ``tolerance >= 0``
    (widened by ``tolerance``) and lies inside it when ``tolerance < 0`` (narrowed by ``|tolerance|``)."""
    outward = tolerance >= 0
    upper = Comparison(atom.terms, "<=", atom.bound + tolerance, outward)
    lower = Comparison(atom.terms, ">=", atom.bound - tolerance, outward)
    if atom.op in ("<=", "<"):
        return [upper]
    if atom.op in (">=", ">"):
        return [lower]
    if atom.op == "==":
        return [lower, upper]
    raise ValueError(f"unexpected atom operator {atom.op!r}")


def _float_bound(value: Fraction, op: str, outward: bool) -> str:
    """``value`` as the float64 next to it on the side that grows (outward) or shrinks the set ``. op value``."""
    return _number(_rounded(value, down=(op == ">=") == outward))


def _signed(var: str, coefficient: Fraction) -> str:
    return var if coefficient > 0 else f"(- {var})"


def comparison_text(comparison: Comparison) -> tuple[str, bool]:
    """The comparison in VNN-LIB and whether Marabou 2.0's reader takes it.

    Marabou 2.0 reads sums of variables with unit coefficients and a constant, compared with at most
    one scaled variable ``(* c v)``; it throws on ``(* c v)`` inside ``+``. The atom is divided
    (exactly, by a positive factor) by its most frequent coefficient magnitude; when more than one
    coefficient is not +-1 after that, the standard weighted sum is written. Bounds are rounded once,
    in the direction ``comparison.outward`` asks; coefficients other than +-1 are the nearest float64."""
    variable_bound = comparison.variable_bound()
    if variable_bound is not None:
        var, op, value = variable_bound
        return f"({op} {var} {_float_bound(value, op, comparison.outward)})", True
    terms, op = comparison.terms, comparison.op
    magnitudes = [abs(c) for _, c in terms]
    unit = max(set(magnitudes), key=lambda m: (magnitudes.count(m), m))
    scaled = [(var, c / unit) for var, c in terms]
    bound = _float_bound(comparison.bound / unit, op, comparison.outward)
    units = [(var, c) for var, c in scaled if abs(c) == 1]
    others = [(var, c) for var, c in scaled if abs(c) != 1]
    if not others:
        return f"({op} (+ {' '.join(_signed(v, c) for v, c in units)}) {bound})", True
    if len(others) == 1:  # sum(units) + c v op bound  as  (+ units -bound) op (* -c v)
        var, coefficient = others[0]
        negated = bound[1:] if bound.startswith("-") else f"-{bound}"
        left = " ".join([*(_signed(v, c) for v, c in units), negated])
        return f"({op} (+ {left}) (* {_number(float(-coefficient))} {var}))", True
    weighted = " ".join(f"(* {_number(float(c))} {v})" for v, c in scaled)
    return f"({op} (+ {weighted}) {bound})", False


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


def vnnlib_text(spec: Spec, assert_: Assert, disjuncts: list[tuple[Atom, ...]], lower: np.ndarray,
                upper: np.ndarray, tolerance: Fraction) -> tuple[str, bool]:
    """The VNN-LIB file for one assert (its violation over the domain box) and whether Marabou 2.0 reads it."""
    lines = [f"; deepsade export: the VIOLATION of assert {assert_.index + 1} (sat = counterexample, "
             "unsat = the rule holds on the whole box)",
             *(f";   {line}" for line in " ".join(assert_.text.split()).splitlines()),
             "; inputs X_i: raw encoded inputs in model.json order; outputs Y_j: raw outputs (regression units, "
             "classifier scores); names in export.json",
             f"; strict and non-strict atoms are widened by tolerance {_number(float(tolerance))} (normalised atom, "
             "raw units), bounds rounded outwards:" if tolerance >= 0 else
             f"; atoms are narrowed by {_number(float(-tolerance))} (normalised atom, raw units), bounds rounded "
             "inwards:",
             "; " + ("the region contains every violation, so unsat is a proof; a sat witness must be re-checked"
                     if tolerance >= 0 else "witnesses break the rule by at least that much; unsat proves nothing "
                     "about smaller violations"),
             ""]
    lines += [f"(declare-const X_{j} Real)" for j in range(len(spec.input_names))]
    lines += [f"(declare-const Y_{k} Real)" for k in range(len(spec.output_names))]
    lines += ["", "; the domain box (raw units)"]
    for j in range(len(spec.input_names)):
        lines.append(f"(assert (>= X_{j} {_number(lower[j])}))")
        lines.append(f"(assert (<= X_{j} {_number(upper[j])}))")
    readable = True
    conjuncts = [[c for atom in d for c in widen(atom, tolerance)] for d in disjuncts]
    if len(conjuncts) == 1:
        lines.append("; premise and negated conclusion")
        for comparison in _tighter_than_box(conjuncts[0], lower, upper):
            text, ok = comparison_text(comparison)
            readable &= ok
            lines.append(f"(assert {text})")
    elif conjuncts:
        lines.append("; the violation: one conjunction per way of breaking the rule")
        lines.append("(assert (or")
        for conjunct in conjuncts:
            parts = []
            for comparison in conjunct:
                text, ok = comparison_text(comparison)
                readable &= ok
                parts.append(text)
            lines.append(f"  (and {' '.join(parts)})")
        lines.append("))")
    return "\n".join(lines) + "\n", readable


def _tighter_than_box(conjunct: list[Comparison], lower: np.ndarray, upper: np.ndarray) -> list[Comparison]:
    """One bound per variable and side, the tightest, and none that the box already implies.

    Marabou's reader *sets* (does not tighten) a variable's bound from a one-variable assert, so a
    looser bound written after the box, or after a tighter premise bound, would widen the region."""
    box = {f"X_{j}": (Fraction(float(lower[j])), Fraction(float(upper[j]))) for j in range(len(lower))}
    tightest: dict[tuple[str, str], tuple[Fraction, Comparison]] = {}
    others = []
    for comparison in conjunct:
        variable_bound = comparison.variable_bound()
        if variable_bound is None:
            others.append(comparison)
            continue
        var, op, value = variable_bound
        low, high = box.get(var, (None, None))
        if (op == ">=" and low is not None and value <= low) or (op == "<=" and high is not None and value >= high):
            continue
        previous = tightest.get((var, op))
        if previous is None or (value > previous[0] if op == ">=" else value < previous[0]):
            tightest[(var, op)] = (value, comparison)
    return [comparison for _, comparison in tightest.values()] + others


# ---- the export ------------------------------------------------------------------------------------

def export_model(artifact: ModelArtifact, directory: str | Path, tolerance: float = STRICT_MARGIN,
                 precision: str = "float32") -> ExportResult:
    """Write ``model.onnx``, ``assert_N.vnnlib`` per linear assert and ``export.json`` into ``directory``."""
    import onnx  # noqa: F401  (fail early with the install hint below)

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserInputError(f"cannot write the export to {directory}: a file of that name exists")
    directory.mkdir(parents=True, exist_ok=True)
    enc, domain = artifact.encoding, artifact.domain
    weights = NetworkWeights.from_model(artifact.model)
    regression = enc.task == "regression"
    model = build_onnx(weights, np.asarray(enc.input_min), np.asarray(enc.input_max),
                       np.asarray(enc.target_min) if regression else None,
                       np.asarray(enc.target_max) if regression else None, precision)
    write_bytes_atomically(directory / ONNX_FILE, model.SerializeToString())

    spec = parse_spec_text(artifact.constraint_text, enc)
    lower, upper = np.asarray(domain.lower, dtype=np.float64), np.asarray(domain.upper, dtype=np.float64)
    exact_tolerance = Fraction(tolerance)
    result = ExportResult(directory)
    for assert_ in spec.asserts:
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
    return {
        "format": FORMAT,
        "model": ONNX_FILE,
        "onnx": {"opset": OPSET, "ir_version": IR_VERSION, "precision": precision,
                 "operators": ["MatMul", "Add", "Relu"],
                 "graph": "raw inputs -> input scaling -> hidden ReLU layers -> last layer on [hidden; skip "
                          "features (constant selection matrix)]" + (" with the target scaling folded in"
                                                                     if enc.task == "regression" else "")},
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
    with torch.no_grad():  # the same steps as estimator.predictions_frame after encode_inputs
        network = artifact.model(torch.as_tensor(enc.scale_inputs(inside[None, :]), dtype=torch.float32))
    outputs = enc.outputs_to_raw(network.double().numpy())
    spec = parse_spec_text(artifact.constraint_text, enc)
    truth = spec.evaluate_raw(inside[None, :], outputs)[0]
    return Recheck(inside, outputs[0], [int(i) + 1 for i in np.flatnonzero(~truth)], bool(np.any(inside != point)))
