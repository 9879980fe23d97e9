"""``verify`` and ``adi`` on a constructed model that is not piecewise linear (HCR, HardNet-Aff with ``A(x)``):
what is proven exactly, what rests on the construction, what was sampled.

Neither Marabou nor z3 on ReLUs can search these layers. Instead of refusing, both commands report, per assert
(everything re-run here, nothing read from certificate.json):

- **proven exactly**: HCR: every point of the stored region, widened by the layer's float32 rounding bound and
  moved by the margin, satisfies the assert at every input of the box (z3 QF_LRA,
  ``hcr_certificate.region_check``); ``A(x)``: the stored ``A(x)`` has full row rank on the box and the layer in
  exact arithmetic, on base outputs in their exact interval box, satisfies the assert (z3 nonlinear,
  ``input_certificate.exact_layer_check``);
- **by construction** (not machine-checked): HCR: every output of the layer lies in that widened region (the
  gauge identity and the hand-derived rounding analysis of ``hcr.rounding_bound``); ``A(x)``: the layer as
  computed rounds like the exact one (no rounding analysis);
- **sampled**: random inputs (the box's corners, its faces, its inside; for AdI, each ball), float32 and
  float64 forward passes, every output checked against the rule exactly; a failure is a concrete
  counterexample, reported as such.

The overall status is never "verified": it is ``by construction`` when the region is proven for every
assert and no sample breaks the rule, ``counterexample`` when a sample does, ``not proven`` otherwise.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import z3

from deepsade.constructions.hcr import HyperSphericalMLP, rounding_bound
from deepsade.constructions.hcr_certificate import region_check
from deepsade.numbers import z3_rational
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, input_var, output_var, parse_spec_text

if TYPE_CHECKING:  # pragma: no cover
    from deepsade.artifact import ModelArtifact

BY_CONSTRUCTION, COUNTEREXAMPLE, NOT_PROVEN = "by construction", "counterexample", "not proven"
HCR_KIND, INPUT_KIND = "hcr", "hardnet-aff-x"
KINDS = (HCR_KIND, INPUT_KIND)
LAYER_CLAIM = ("every output of the HCR layer lies in the stored region, widened by its float32 rounding bound: by "
               "construction (gauge identity + hand-derived rounding analysis), not machine-checked")
REGION_CLAIM = "the stored region, widened by the rounding bound and moved by the margin, satisfies the assert"
CLAIMS = {  # kind: (what is proven exactly, what rests on the construction), per assert
    HCR_KIND: (REGION_CLAIM, LAYER_CLAIM),
    INPUT_KIND: ("A(x) has full row rank on the box, and the layer in exact arithmetic, on base outputs in their exact "
                 "interval box and moved by the margin, satisfies the assert",
                 "the layer as computed (a float64 solve per input) matches the exact one up to a rounding no "
                 "analysis here bounds: by construction, not machine-checked"),
}
ADI_BASIS = ("by construction: the layer is not piecewise linear, so no ball is searched by an exact engine; the "
             "exactly provable part is proven by z3 (see verify), the rest holds by construction (not "
             "machine-checked), and sampled points of each ball are checked exactly")


def is_checked_by_construction(model: object) -> bool:
    """Whether ``model`` is a constructed network that verify / adi report on as "by construction"."""
    return getattr(model, "kind", None) in KINDS


def exact_part(model, spec: Spec, low: list, high: list, margin: float, timeout: float | None
               ) -> list[dict[str, Any]]:
    """Per assert ``assert``, ``text``, ``proven`` (True / False / None), ``seconds``: the exactly provable part
    of the claim for this kind of layer (a rank problem of ``A(x)`` makes every assert unproven)."""
    unproven = [{"assert": a.index + 1, "text": " ".join(a.text.split()), "proven": False, "seconds": 0.0}
                for a in spec.asserts]
    if model.kind == HCR_KIND:
        a, b, c = model.stored()
        excess = rounding_bound(model)
        if not (np.all(np.isfinite(excess)) and np.all(b - a @ c > 0)):  # no interior point or no rounding bound
            return unproven
        return region_check(model, spec, low, high, margin, timeout, excess)
    from deepsade.constructions.input_certificate import exact_layer_check

    problem, entries = exact_layer_check(model, spec, low, high, margin, timeout)
    return unproven if problem is not None else entries


@dataclass
class AssertReport:
    """One assert: the exact check (True proven, False failed, None timeout) and the sampling."""

    index: int
    text: str
    region_proven: bool | None
    seconds: float
    kind: str = HCR_KIND
    sampled: int = 0
    counterexample: np.ndarray | None = None  # scaled input where a sampled output breaks the assert exactly


@dataclass
class ConstructedVerification:
    """What ``verify`` could and could not prove about a constructed, not piecewise-linear model over its box."""

    asserts: list[AssertReport]
    sampled_inputs: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if any(a.counterexample is not None for a in self.asserts):
            return COUNTEREXAMPLE
        if all(a.region_proven is True for a in self.asserts):
            return BY_CONSTRUCTION
        return NOT_PROVEN


def _breaks(spec: Spec, index: int, scaled_input: np.ndarray, output: np.ndarray) -> bool:
    a = spec.asserts[index]
    pairs = [(input_var(j), z3_rational(Fraction(float(scaled_input[j])))) for j in a.inputs]
    pairs += [(output_var(k), z3_rational(Fraction(float(output[k])))) for k in a.outputs]
    return z3.is_false(z3.simplify(z3.substitute(a.scaled, *pairs)))


def broken_by_sample(model: HyperSphericalMLP, spec: Spec, inputs: np.ndarray) -> dict[int, np.ndarray]:
    """Per assert (0-based), the first sampled input whose output (float32 or float64 forward pass) breaks it,
    decided exactly by z3 on rationals; the float evaluator only picks the candidates."""
    broken: dict[int, np.ndarray] = {}
    if len(inputs) == 0:
        return broken
    for dtype in (torch.float32, torch.float64):
        network = copy.deepcopy(model).to(dtype)
        with torch.no_grad():
            outputs = network(torch.as_tensor(inputs, dtype=dtype)).double().numpy()
        with np.errstate(all="ignore"):
            truth = spec.evaluate_scaled(inputs, outputs)
        for index in range(len(spec.asserts)):
            if index in broken:
                continue
            for row in np.flatnonzero(~truth[:, index])[:8]:
                if _breaks(spec, index, inputs[row], outputs[row]):
                    broken[index] = inputs[row]
                    break
    return broken


def _box_samples(low: np.ndarray, high: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Corners, face points and random points of the box (float32 values, as predict feeds the network)."""
    d = len(low)
    corners = np.where(rng.random((min(2 ** d, max(count // 4, 1)), d)) < 0.5, low, high)
    faces = low + (high - low) * rng.random((max(count // 4, 2 * d), d))
    pinned = rng.integers(0, d, len(faces))
    faces[np.arange(len(faces)), pinned] = np.where(rng.random(len(faces)) < 0.5, low[pinned], high[pinned])
    inside = low + (high - low) * rng.random((max(count - len(corners) - len(faces), 0), d))
    return np.vstack([corners, faces, inside]).astype(np.float32).astype(np.float64)


def verify_constructed(artifact: ModelArtifact, timeout: float | None = 60.0, presample: int = 1024, seed: int = 0,
                       realisable: bool = True) -> ConstructedVerification:
    """Re-prove the exactly provable part of ``artifact``'s claim (z3), then sample the domain box."""
    start = time.perf_counter()
    model, encoding = artifact.model, artifact.encoding
    spec = parse_spec_text(artifact.constraint_text, encoding)
    low, high = artifact.domain.scaled_exact(encoding)
    margin = float(artifact.certificate.get("margin", artifact.training.get("output_margin", 1e-4)))
    reports = [AssertReport(e["assert"] - 1, e["text"], e["proven"], e["seconds"], model.kind)
               for e in exact_part(model, spec, low, high, margin, timeout)]
    low_f, high_f = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    points = _box_samples(low_f, high_f, presample, np.random.default_rng(seed)) if presample else np.zeros((0, len(low)))
    if realisable and len(points):
        points = RealisableInputs.from_encoding(encoding).snap(points, low_f, high_f)
    for index, point in broken_by_sample(model, spec, points).items():
        reports[index].counterexample = point
    for report in reports:
        report.sampled = len(points)
    if model.kind == HCR_KIND:
        notes = [f"the HCR layer is not piecewise linear: no exact engine searches it; the region check is z3 QF_LRA "
                 f"on the stored rationals (margin {margin:g}, rounding bound up to "
                 f"{float(np.max(rounding_bound(model))):.3g})"]
    else:
        notes = [f"the HardNet-Aff layer with A(x) is not piecewise linear: no exact engine searches the network as "
                 f"computed; z3 (nonlinear real arithmetic) checks the layer in exact arithmetic (margin {margin:g})"]
    return ConstructedVerification(reports, len(points), time.perf_counter() - start, notes)


def describe_assert(report: AssertReport) -> list[str]:
    """The lines ``verify`` prints for one assert: proven, by construction, sampled."""
    text = report.text if len(report.text) <= 100 else report.text[:100] + "..."
    proven_claim, construction_claim = CLAIMS[report.kind]
    engine = "z3 QF_LRA" if report.kind == HCR_KIND else "z3 nonlinear real arithmetic"
    region = {True: f"proven exactly ({engine}, {report.seconds:.2f} s)",
              False: "NOT proven: the exact check failed",
              None: "not proven (solver timeout)"}[report.region_proven]
    sampled = (f"{report.sampled} sampled inputs of the box: " +
               ("no output breaks it (checked exactly)" if report.counterexample is None
                else "an output breaks it (checked exactly): counterexample below"))
    return [f"assert {report.index + 1}: {text}",
            f"    exact: {proven_claim}: {region}",
            f"    layer: {construction_claim}",
            f"    sampling: {sampled}"]


def constructed_adversity_index(artifact: ModelArtifact, inputs: np.ndarray, epsilons: list[float], presample: int = 64,
                        seed: int = 0, row_ids: list[int] | None = None, realisable: bool = True,
                        timeout: float | None = 60.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """AdI of a constructed, not piecewise-linear model: 0 by construction wherever the exact part is proven; each
    ball (cut to the domain box) sampled with ``presample`` points, checked exactly, so a concrete counterexample
    still counts. Returns the per instance x epsilon table and the summary (``deepsade.verification.adi`` wraps
    them in its AdiReport)."""
    start = time.perf_counter()
    model, encoding = artifact.model, artifact.encoding
    spec = parse_spec_text(artifact.constraint_text, encoding)
    low, high = artifact.domain.scaled_exact(encoding)
    margin = float(artifact.certificate.get("margin", artifact.training.get("output_margin", 1e-4)))
    proven = [e["proven"] for e in exact_part(model, spec, low, high, margin, timeout)]
    low_f, high_f = np.array([float(v) for v in low]), np.array([float(v) for v in high])
    snap = RealisableInputs.from_encoding(encoding)
    rng = np.random.default_rng(seed)
    row_ids = list(range(len(inputs))) if row_ids is None else list(row_ids)
    records = []
    for row, centre in zip(row_ids, inputs, strict=True):
        for eps in epsilons:
            t0 = time.perf_counter()
            ball_low, ball_high = np.maximum(centre - eps, low_f), np.minimum(centre + eps, high_f)
            if np.any(ball_low > ball_high):
                records.append({"row": row, "epsilon": eps, "status": "outside", "decided_by": "", "seconds": 0.0,
                                "broken_asserts": "", "note": "the ball misses the domain box"})
                continue
            points = np.vstack([np.clip(centre, ball_low, ball_high)[None, :],
                                ball_low + (ball_high - ball_low) * rng.random((max(presample, 0), len(centre)))])
            points = points.astype(np.float32).astype(np.float64)
            if realisable:
                points = snap.snap(points, ball_low, ball_high)
            broken = broken_by_sample(model, spec, points)
            if broken:
                status, by, note = "counterexample", "sampling (checked exactly)", ""
            elif all(p is True for p in proven):
                status, by, note = "by construction", "construction (exact part proven by z3)", ""
            else:
                status, by, note = "unknown", "", "the exact part is not proven for every assert"
            records.append({"row": row, "epsilon": eps, "status": status, "decided_by": by,
                            "seconds": round(time.perf_counter() - t0, 6),
                            "broken_asserts": ";".join(str(i + 1) for i in sorted(broken)), "note": note})
    table = pd.DataFrame.from_records(records, columns=["row", "epsilon", "status", "decided_by", "seconds",
                                                        "broken_asserts", "note"])
    per_epsilon = []
    for eps in epsilons:
        part = table[table["epsilon"] == eps]
        count = {s: int((part["status"] == s).sum()) for s in ("counterexample", "by construction", "unknown",
                                                               "outside")}
        cex, held, unknown = count["counterexample"], count["by construction"], count["unknown"]
        considered = cex + held + unknown
        per_epsilon.append({
            "epsilon": eps, "instances": int(len(part)), "counterexample": cex, "verified": 0,
            "by_construction": held, "unknown": unknown, "outside": count["outside"],
            "adi": cex / (cex + held) if cex + held else None,
            "adi_if_unknown_safe": cex / considered if considered else None,
            "adi_if_unknown_unsafe": (cex + unknown) / considered if considered else None,
            "basis": BY_CONSTRUCTION,
        })
    summary: dict[str, Any] = {
        "basis": ADI_BASIS, "engine": "none (by construction; z3 for the region)", "presample": presample,
        "instances": len(inputs), "realisable_only": realisable,
        "region_proven": [p is True for p in proven],
        "wall_seconds": round(time.perf_counter() - start, 3),
        "seconds_per_instance": float(table.groupby("row")["seconds"].sum().mean()) if len(inputs) else None,
        "notes": [ADI_BASIS], "epsilons": per_epsilon,
    }
    return table, summary
