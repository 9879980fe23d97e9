"""Try to break certified models (issue 13: "if you add a mechanism, try to break it: sample, run PGD").

For every model directory given (or found under ``--runs``: each ``*/model_deepsade`` and ``*/model_ffn``
that ``scripts/bench_price.py`` keeps), loaded through the package's own API (``deepsade.artifact.load``,
the rules parsed by ``deepsade.spec.parse_spec_text`` from the text the model stores, outputs by
``deepsade.prediction.forward_float64``: what ``deepsade predict`` computes):

1. **Dense sampling**: seeded points of the domain box, most uniform inside, a share on its faces (one
   input at a bound) and on its corners (every input at a bound), each snapped onto an input a real row
   could have (one category per one-hot group, whole numbers in integer columns). Every assert is
   evaluated in float64, in scaled units and in raw units (the rule as the user wrote it, on ``predict``'s
   numbers).
2. **PGD** in torch float64 from many starts in the box (uniform, plus the sampling's worst points),
   per assert, on ``rho``, a formula's signed robustness (``b - a`` for ``a <= b``, min for ``and``, max for
   ``or``, negation for ``not``): outside the premise region a step reduces the hinge
   ``relu(depth - rho(premise))`` (into the region), inside it reduces ``rho(conclusion)`` (against the
   conclusion). Signed-gradient steps projected onto the box; every iterate is snapped onto a realisable
   input and scored there.
3. **Exact re-check** of the candidates (every float64 violation, and the lowest-robustness points even
   when float64 says the rule holds): the network evaluated in exact rationals on the stored float32
   weights and the assert decided by z3 (``deepsade.concrete_violation.exact_outputs`` / ``breaks_exactly``).

Reported per model: points sampled, PGD starts, the worst conclusion robustness found on realisable inputs
inside the premise (``best_violation`` = ``-rho``: positive means broken, a certified model should stay at
about ``-margin`` or below), float64 violations, and violations confirmed exactly. ffn models of the same
problems are the control that the attack finds violations where they exist.

    OMP_NUM_THREADS=1 python scripts/attack_certified.py --runs runs/price/defaults --out results/attacks
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import z3

from deepsade import artifact as artifact_io
from deepsade.baselines.formula import Batch, compile_crisp
from deepsade.concrete_violation import breaks_exactly, exact_outputs
from deepsade.network import SkipMLP
from deepsade.prediction import forward_float64
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, parse_spec_text

REPO = Path(__file__).resolve().parents[1]
BIG = 1e9  # robustness of a constant 'true' (and minus that of 'false')
EQUALITY_TOLERANCE = 1e-3  # PGD: an equality premise counts as holding this close (scaled units), before snapping
PREMISE_DEPTH = 5e-4  # PGD: how far inside the premise region (its robustness) before the conclusion is pushed
RobustnessFn = Any  # Callable[[Batch], torch.Tensor]


# ---------------------------------------------------------------- robustness (signed distance to the rule)

def robustness(expr: z3.BoolRef, equality_tolerance: float = 0.0) -> RobustnessFn:
    """A torch function of a ``Batch`` giving the signed robustness of a scaled formula per row: > 0 where it
    holds with room, < 0 where it is broken (0 on the boundary, where strictness decides; the exact
    re-check settles those). Differentiable in inputs and outputs almost everywhere.

    ``equality_tolerance`` counts ``a = b`` as holding within that distance (and ``distinct`` as broken), so
    that a search can stand inside an equality premise such as ``Credit_History = 0`` before its points
    are snapped onto whole numbers; 0 gives the exact sign."""
    if z3.is_true(expr):
        return lambda b: torch.full(b.inputs.shape[:1], BIG, dtype=torch.float64)
    if z3.is_false(expr):
        return lambda b: torch.full(b.inputs.shape[:1], -BIG, dtype=torch.float64)
    kind = expr.decl().kind()
    children = expr.children()
    if kind in (z3.Z3_OP_LE, z3.Z3_OP_LT, z3.Z3_OP_GE, z3.Z3_OP_GT) and len(children) == 2:
        left, right = compile_crisp(children[0]), compile_crisp(children[1])
        if kind in (z3.Z3_OP_LE, z3.Z3_OP_LT):
            return lambda b: right(b) - left(b)
        return lambda b: left(b) - right(b)
    if kind in (z3.Z3_OP_EQ, z3.Z3_OP_DISTINCT) and children and z3.is_arith(children[0]):
        terms = [compile_crisp(c) for c in children]

        def pairwise(b: Batch) -> torch.Tensor:  # '=': minus the largest gap; 'distinct': the smallest gap
            values = [t(b) for t in terms]
            gaps = torch.stack([broadcast_rows(torch.abs(values[i] - values[j]), b.inputs.shape[0])
                                for i in range(len(values)) for j in range(i + 1, len(values))])
            if kind == z3.Z3_OP_EQ:
                return equality_tolerance - gaps.amax(0)
            return gaps.amin(0) - equality_tolerance
        return pairwise
    parts = [robustness(c, equality_tolerance) for c in children] if all(z3.is_bool(c) for c in children) else []
    if kind == z3.Z3_OP_NOT:
        return lambda b: -parts[0](b)
    if kind == z3.Z3_OP_AND:
        return lambda b: torch.stack([p(b) for p in parts]).amin(0)
    if kind == z3.Z3_OP_OR:
        return lambda b: torch.stack([p(b) for p in parts]).amax(0)
    if kind == z3.Z3_OP_IMPLIES:
        return lambda b: torch.maximum(-parts[0](b), parts[1](b))
    if kind == z3.Z3_OP_ITE and parts:
        return lambda b: torch.maximum(torch.minimum(parts[0](b), parts[1](b)), torch.minimum(-parts[0](b), parts[2](b)))
    if kind in (z3.Z3_OP_EQ, z3.Z3_OP_XOR, z3.Z3_OP_DISTINCT) and len(parts) == 2:
        def iff(b: Batch) -> torch.Tensor:
            p, q = parts[0](b), parts[1](b)
            same = torch.maximum(torch.minimum(p, q), torch.minimum(-p, -q))
            return same if kind == z3.Z3_OP_EQ else -same
        return iff
    # anything else (a Boolean the table knows but that has no distance): crisp truth as +-1
    crisp = compile_crisp(expr)
    return lambda b: torch.where(torch.broadcast_to(crisp(b), b.inputs.shape[:1]), 1.0, -1.0).to(torch.float64)


def broadcast_rows(value: torch.Tensor, n: int) -> torch.Tensor:
    return torch.broadcast_to(torch.as_tensor(value, dtype=torch.float64), (n,))


# ---------------------------------------------------------------- the model under attack

@dataclass
class Target:
    """A stored model with what the attack needs: the rules, the box in scaled units, realisable structure."""

    directory: Path
    art: artifact_io.ModelArtifact
    spec: Spec
    low: np.ndarray  # the domain box, scaled float64
    high: np.ndarray
    low_exact: list[Fraction]
    high_exact: list[Fraction]
    realisable: RealisableInputs
    network: torch.nn.Module  # a float64 copy of the stored float32 network

    @classmethod
    def load(cls, directory: str | Path, whole_asserts: bool = False) -> Target:
        """Load a model directory through the package's API and parse the rules it stores (``whole_asserts``:
        every assert as written, without ``deepsade.cases``' split into cases, which the certificate reads)."""
        art = artifact_io.load(directory)
        spec = parse_spec_text(art.constraint_text, art.encoding, cases=not whole_asserts)
        low, high = art.domain.scaled(art.encoding)
        low_exact, high_exact = art.domain.scaled_exact(art.encoding)
        network = copy.deepcopy(art.model).double().eval()
        for p in network.parameters():
            p.requires_grad_(False)
        return cls(Path(directory), art, spec, np.asarray(low, float), np.asarray(high, float), low_exact,
                   high_exact, RealisableInputs.from_encoding(art.encoding), network)

    @property
    def margin(self) -> float | None:
        value = self.art.certificate.get("margin", self.art.training.get("output_margin"))
        return float(value) if value is not None else None

    def outputs(self, scaled: np.ndarray) -> np.ndarray:
        """What ``deepsade predict`` computes (network units): the stored network evaluated in float64."""
        return forward_float64(self.art.model, scaled)

    def truth(self, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row and assert: the rule in scaled units on the network's outputs, and in raw units on predict's."""
        outputs = self.outputs(scaled)
        scaled_truth = self.spec.evaluate_scaled(scaled, outputs)
        offsets = np.array([float(o) for o in self.realisable.offsets])
        scales = np.array([float(s) for s in self.realisable.scales])
        raw_truth = self.spec.evaluate_raw(offsets + scales * scaled, self.art.encoding.outputs_to_raw(outputs))
        return scaled_truth, raw_truth

    def snap(self, points: np.ndarray) -> np.ndarray:
        return self.realisable.snap(points, self.low, self.high)


# ---------------------------------------------------------------- 1. sampling

def sample_box(low: np.ndarray, high: np.ndarray, n: int, face_share: float, corner_share: float,
               rng: np.random.Generator) -> np.ndarray:
    """``n`` seeded points of the box: uniform inside, ``face_share`` with one random input at a random bound,
    ``corner_share`` with every input at a random bound."""
    d = len(low)
    points = low + (high - low) * rng.random((n, d))
    n_faces, n_corners = int(round(face_share * n)), int(round(corner_share * n))
    axis = rng.integers(0, d, n_faces)
    at_high = rng.random(n_faces) < 0.5
    points[np.arange(n_faces), axis] = np.where(at_high, high[axis], low[axis])
    corners = slice(n_faces, n_faces + n_corners)
    points[corners] = np.where(rng.random((n_corners, d)) < 0.5, low, high)
    return points


# ---------------------------------------------------------------- 2. PGD

@dataclass
class AssertObjective:
    """The PGD objective of one assert: first into its premise region, then against its conclusion."""

    premise: RobustnessFn  # equalities within EQUALITY_TOLERANCE
    conclusion: RobustnessFn
    premise_holds: RobustnessFn  # crisp truth
    has_premise: bool

    @classmethod
    def of(cls, spec: Spec, index: int) -> AssertObjective:
        a = spec.asserts[index]
        return cls(robustness(a.premise, EQUALITY_TOLERANCE), robustness(a.conclusion), compile_crisp(a.premise),
                   a.has_premise)

    def parts(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the premise's robustness (equalities with tolerance) and the conclusion's."""
        batch = Batch(x, y)
        n = x.shape[0]
        return broadcast_rows(self.premise(batch), n), broadcast_rows(self.conclusion(batch), n)

    def inside(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Whether each row satisfies the premise exactly as written (float64, crisp)."""
        return broadcast_rows(self.premise_holds(Batch(x, y)), x.shape[0]).numpy().astype(bool) \
            if self.has_premise else np.ones(x.shape[0], dtype=bool)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Lexicographic, per row: outside the premise (short of PREMISE_DEPTH) the distance to it, inside the
        conclusion's robustness. Rows are independent and PGD steps by the gradient's sign, so the two
        scales never compete: the rule's region first, then the violation."""
        premise, conclusion = self.parts(x, y)
        if not self.has_premise:
            return conclusion
        return torch.where(premise >= PREMISE_DEPTH, conclusion, PREMISE_DEPTH - premise)

    def score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """For ranking points: inside the premise (exactly as written) the conclusion's robustness, outside it
        the distance to the premise after every inside point. Lower is more promising."""
        premise, conclusion = self.parts(x, y)
        return torch.where(torch.as_tensor(self.inside(x, y)), conclusion, BIG - premise)


def pgd(network: torch.nn.Module, objective: AssertObjective, starts: np.ndarray, low: np.ndarray,
        high: np.ndarray, steps: int, snap: Callable[[np.ndarray], np.ndarray], step_share: float = 0.05) -> np.ndarray:
    """Projected signed-gradient descent on the objective's loss from every start (scaled float64 points),
    steps shrinking linearly from ``step_share`` of each input's range. Every iterate is snapped onto a
    realisable input (``snap``) and scored there; returns each start's best snapped iterate, so that a point
    the search found just inside a premise is not lost to rounding (a whole number at the premise's edge)."""
    low_t, high_t = torch.as_tensor(low), torch.as_tensor(high)
    width = (high_t - low_t).clamp(min=1e-12)
    x = torch.as_tensor(starts, dtype=torch.float64).clone()
    best = np.array(snap(starts), dtype=np.float64)
    best_score = torch.full((len(x),), float("inf"), dtype=torch.float64)
    for step in range(steps + 1):
        with torch.no_grad():
            snapped = snap(x.numpy())
            snapped_t = torch.as_tensor(snapped)
            score = objective.score(snapped_t, network(snapped_t))
            better = score < best_score
            best[better.numpy()], best_score[better] = snapped[better.numpy()], score[better]
        if step == steps:
            break
        x.requires_grad_(True)
        loss = objective.loss(x, network(x))
        if not loss.requires_grad:  # a rule on counts of labels (ite) is flat in x: the sampled points stand
            break
        (gradient,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            size = step_share * (1 - step / steps) + 1e-4
            x = torch.minimum(torch.maximum(x - size * width * torch.sign(gradient), low_t), high_t)
    return best


# ---------------------------------------------------------------- 3. exact re-check

def exact_violation(target: Target, index: int, point: np.ndarray) -> dict[str, float] | None:
    """The realisable input next to ``point`` (exact) if the network, evaluated exactly on the stored float32
    weights, breaks assert ``index`` there (decided by z3); in raw units. None otherwise."""
    if type(target.art.model) is not SkipMLP:  # a constructed network: exact_outputs does not cover its layers
        return None
    exact = target.realisable.snap_exact([Fraction(float(v)) for v in point], target.low_exact, target.high_exact)
    if exact is None or not target.realisable.contains(exact):
        return None
    if not breaks_exactly(target.spec, index, exact, exact_outputs(target.art.model, exact)):
        return None
    return {name: float(target.realisable.raw(j, exact[j])) for j, name in enumerate(target.art.encoding.input_names)}


# ---------------------------------------------------------------- the attack on one model

@dataclass
class AttackSettings:
    samples: int = 200_000
    face_share: float = 0.2
    corner_share: float = 0.05
    starts: int = 1000  # PGD starts per assert
    steps: int = 150
    exact_checks: int = 24  # candidates re-checked exactly per assert (violations first, then lowest robustness)
    seed: int = 0


def attack(target: Target, settings: AttackSettings) -> list[dict[str, Any]]:
    """Sampling, PGD and exact re-checks on one model; one result row per assert."""
    rng = np.random.default_rng(settings.seed)
    points = target.snap(sample_box(target.low, target.high, settings.samples, settings.face_share,
                                    settings.corner_share, rng))
    scaled_truth, raw_truth = target.truth(points)
    sample_outputs = torch.as_tensor(target.outputs(points))
    rows = []
    for index, a in enumerate(target.spec.asserts):
        started = time.perf_counter()
        objective = AssertObjective.of(target.spec, index)
        x = torch.as_tensor(points)
        conclusion = objective.parts(x, sample_outputs)[1].numpy()
        in_premise = objective.inside(x, sample_outputs)
        sample_worst = float((-conclusion[in_premise]).max()) if in_premise.any() else float("nan")
        # PGD starts: uniform points, and the sampled points with the lowest objective (the most promising)
        n_seeded = settings.starts // 4
        ranked = np.argsort(objective.score(x, sample_outputs).numpy(), kind="stable")[:n_seeded]
        uniform = target.low + (target.high - target.low) * rng.random((settings.starts - n_seeded, len(target.low)))
        snapped = pgd(target.network, objective, np.vstack([points[ranked], uniform]), target.low, target.high,
                      settings.steps, target.snap)
        y = torch.as_tensor(target.outputs(snapped))
        c_pgd = objective.parts(torch.as_tensor(snapped), y)[1].numpy()
        pgd_scaled, pgd_raw = target.truth(snapped)
        inside = objective.inside(torch.as_tensor(snapped), y)
        pgd_worst = float((-c_pgd[inside]).max()) if inside.any() else float("nan")
        # exact re-check: float64 violations first (sampling and PGD), then the lowest robustness inside the premise
        candidates = np.vstack([points, snapped])
        broken = ~np.concatenate([scaled_truth[:, index] & raw_truth[:, index], pgd_scaled[:, index] & pgd_raw[:, index]])
        robust = np.concatenate([np.where(in_premise, conclusion, np.inf), np.where(inside, c_pgd, np.inf)])
        order = list(np.flatnonzero(broken)[np.argsort(robust[broken], kind="stable")][: settings.exact_checks // 2])
        order += [i for i in np.argsort(robust, kind="stable")[: settings.exact_checks] if i not in order]
        order = order[: settings.exact_checks]
        confirmed = [v for v in (exact_violation(target, index, candidates[i]) for i in order) if v is not None]
        rows.append({
            "assert": index, "assert_text": " ".join(a.text.split())[:120],
            "samples": len(points), "samples_in_premise": int(in_premise.sum()),
            "sample_violations_scaled": int((~scaled_truth[:, index]).sum()),
            "sample_violations_raw": int((~raw_truth[:, index]).sum()),
            "sample_best_violation": sample_worst,
            "pgd_starts": len(snapped), "pgd_steps": settings.steps, "pgd_in_premise": int(inside.sum()),
            "pgd_violations_scaled": int((~pgd_scaled[:, index]).sum()),
            "pgd_violations_raw": int((~pgd_raw[:, index]).sum()),
            "pgd_best_violation": pgd_worst,
            "best_violation": float(np.nanmax([sample_worst, pgd_worst])) if inside.any() or in_premise.any()
            else float("nan"),
            "exact_checked": len(order), "exact_violations": len(confirmed),
            "example": json.dumps(confirmed[0]) if confirmed else "",
            "seconds": round(time.perf_counter() - started, 2),
        })
    return rows


# ---------------------------------------------------------------- the report

def model_dirs(runs: Path | None, explicit: list[Path]) -> list[Path]:
    found = list(explicit)
    if runs is not None:
        found += sorted(p for p in runs.glob("*/model_*") if (p / "model.json").exists())
    return found


def describe(directory: Path) -> dict[str, Any]:
    run = directory.parent.name
    problem, _, seed = run.rpartition("-s")
    return {"run": run, "problem": problem or run, "seed": seed, "model": directory.name.removeprefix("model_")}


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "deepsade", "scripts/attack_certified.py"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (dirty)" if dirty else "")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if not np.isfinite(value) else f"{value:.3g}"
    return str(value)


def write_report(rows: pd.DataFrame, out: Path, command: str, settings: AttackSettings, runs: Path | None,
                 notes: list[str]) -> None:
    """Write attacks.csv (one row per model and assert) and report.md (per model)."""
    rows.to_csv(out / "attacks.csv", index=False)
    per_model = rows.groupby(["run", "model"], sort=False).agg(
        problem=("problem", "first"), seed=("seed", "first"), verdict=("verdict", "first"),
        margin=("margin", "first"), asserts=("assert", "count"), samples=("samples", "first"),
        pgd_starts=("pgd_starts", "sum"),
        sample_violations=("sample_violations_raw", "sum"), pgd_violations=("pgd_violations_raw", "sum"),
        best_violation=("best_violation", "max"), exact_violations=("exact_violations", "sum"),
        seconds=("seconds", "sum")).reset_index()
    certified = per_model[per_model.verdict == "certified"]
    controls = per_model[per_model.verdict != "certified"]
    lines = [
        "# Attacks on the certified models (issue 13)",
        "",
        "Issue 13: \"If you add a mechanism, try to break it: sample, run PGD, run the other verifier.\" "
        "Every model below was loaded through the package's API, its rules parsed from the text it stores, its "
        "outputs computed as `deepsade predict` does (float32 weights evaluated in float64). Per model and "
        "assert: dense sampling of the domain box (faces and corners included, snapped onto realisable inputs), "
        "PGD in float64 maximising the assert's violation (a hinge into the premise plus the conclusion's "
        "signed robustness), and an exact re-check (rationals on the stored weights, z3 decides) of every "
        "float64 violation and of the lowest-robustness points. `best violation` is the largest `-rho` of the "
        "conclusion over realisable inputs inside the premise: positive means the rule is broken there; a "
        "certified model should stay at about `-margin` or below. ffn models (no guarantee) on the same "
        "problems are the control that the attack finds violations where they exist.",
        "",
        "Units: `best violation` is in the units of the assert as the network sees it (`rho` of the scaled "
        "formula: scores for classifiers, scaled targets for regression, inputs scaled to [0, 1]), the units "
        "of the certificate's margin when the conclusion compares one output with a constant; for a relation "
        "between outputs and inputs it is that relation's own slack.",
        "",
        f"- Command: `{command}`",
        f"- Code: commit {git_commit()}; {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        f"- Models: {runs if runs is not None else 'given on the command line'} (not committed; their weights' "
        "sha256 prefixes are in `attacks.csv`)",
        f"- Per model: {settings.samples:,} sampled points ({settings.face_share:.0%} on faces, "
        f"{settings.corner_share:.0%} on corners), per assert {settings.starts} PGD starts "
        f"({settings.starts // 4} from the worst sampled points) x {settings.steps} steps, "
        f"up to {settings.exact_checks} exact re-checks; seed {settings.seed}.",
        "",
        "## Summary",
        "",
        *[f"- {note}" for note in notes],
        f"- Certified models attacked: {len(certified)}; with a float64 violation (sampling or PGD, raw units): "
        f"{int(((certified.sample_violations + certified.pgd_violations) > 0).sum())}; with a violation confirmed "
        f"exactly: {int((certified.exact_violations > 0).sum())}; largest best violation: "
        f"{fmt(float(certified.best_violation.max()) if len(certified) else float('nan'))}.",
        f"- Control (models without a certificate): {len(controls)}; with a violation confirmed exactly: "
        f"{int((controls.exact_violations > 0).sum())}.",
        "",
        "## Per model",
        "",
        "| run | model | verdict | margin | asserts | points sampled | PGD starts | sampled violations "
        "| PGD violations | best violation | exact violations | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in per_model.itertuples():
        lines.append(f"| {r.run} | {r.model} | {r.verdict} | {fmt(r.margin)} | {r.asserts} | {r.samples:,} "
                     f"| {r.pgd_starts:,} | {r.sample_violations:,} | {r.pgd_violations:,} | {fmt(r.best_violation)} "
                     f"| {r.exact_violations} | {r.seconds:.0f} |")
    lines += ["", "Violation counts are points (of the sample, of the PGD end points) where float64 evaluation in raw "
              "units breaks the assert; `exact violations` counts re-checked candidates confirmed by exact "
              "evaluation (at most the re-check budget). Per assert, with an example input of each confirmed "
              "violation: `attacks.csv`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path, help="model directories")
    parser.add_argument("--runs", type=Path, default=None,
                        help="a bench_price work folder: every */model_* in it is attacked")
    parser.add_argument("--only", default="", help="comma-separated problem names to keep (default: all)")
    parser.add_argument("--samples", type=int, default=AttackSettings.samples, help="sampled points per model")
    parser.add_argument("--starts", type=int, default=AttackSettings.starts, help="PGD starts per assert")
    parser.add_argument("--steps", type=int, default=AttackSettings.steps, help="PGD steps")
    parser.add_argument("--exact-checks", type=int, default=AttackSettings.exact_checks,
                        help="candidates re-checked exactly per assert")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling and the starts")
    parser.add_argument("--out", type=Path, default=None, help="write report.md and attacks.csv here")
    parser.add_argument("--whole-asserts", action="store_true",
                        help="attack every assert as written, not the cases deepsade.cases splits it into (the "
                             "certificate's reading): a check of the split that does not rely on it")
    parser.add_argument("--note", action="append", default=[], help="a line added to the report's summary (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = AttackSettings(samples=args.samples, starts=args.starts, steps=args.steps,
                              exact_checks=args.exact_checks, seed=args.seed)
    keep = {n.strip() for n in args.only.split(",") if n.strip()}
    dirs = [d for d in model_dirs(args.runs, args.models) if not keep or describe(d)["problem"] in keep]
    if not dirs:
        print("no model directories found", file=sys.stderr)
        return 2
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    rows = []
    for directory in dirs:
        target = Target.load(directory, args.whole_asserts)
        verdict = target.art.certificate.get("verdict", "none")
        info = {**describe(directory), "verdict": verdict, "margin": target.margin,
                "weights_sha256": str(target.art.certificate.get("weights_sha256")
                                      or artifact_io.weights_sha256(target.art.model))[:16]}
        for row in attack(target, settings):
            rows.append({**info, **row})
            print(f"{info['run']} {info['model']} ({verdict}) assert {row['assert']}: sampled {row['sample_violations_raw']}, "
                  f"PGD {row['pgd_violations_raw']}, best violation {row['best_violation']:.4g}, exact "
                  f"{row['exact_violations']}/{row['exact_checked']} [{row['seconds']:.0f} s]", flush=True)
    frame = pd.DataFrame(rows)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "OMP_NUM_THREADS=1 python scripts/attack_certified.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        write_report(frame, args.out, command, settings, args.runs, args.note)
        print(f"report: {args.out / 'report.md'}")
    broken = frame[(frame.verdict == "certified") & (frame.exact_violations > 0)]
    return 1 if len(broken) else 0


if __name__ == "__main__":
    raise SystemExit(main())
