"""Dense sampling of a stored model's domain: how many points break its rules (a check beside the certificate).

Draws N points uniformly in the domain box (raw units), a fifth of them on its faces (one input pinned to
its lower or upper bound), evaluates the stored float32 network in float64 as ``predict`` does, and
counts the points where an assert is false. A certified model must show 0; the sampling is only able to
find violations, never to prove their absence.

Usage::

    python scripts/sample_domain.py MODEL_DIR [MODEL_DIR ...] [--points 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from deepsade import artifact as artifact_io
from deepsade.prediction import forward_float64
from deepsade.spec import parse_spec_text


def sample_points(low: np.ndarray, high: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in the box [low, high]: uniform, and a fifth with one coordinate on a face."""
    points = low + rng.random((n, len(low))) * (high - low)
    on_face = rng.random(n) < 0.2
    rows = np.flatnonzero(on_face)
    columns = rng.integers(len(low), size=len(rows))
    upper = rng.random(len(rows)) < 0.5
    points[rows, columns] = np.where(upper, high[columns], low[columns])
    return points


def violations(model_dir: str, n: int, seed: int) -> dict:
    """Sampled points and how many break each assert (raw units, float64 forward pass)."""
    art = artifact_io.load(model_dir)
    enc = art.encoding
    spec = parse_spec_text(art.constraint_text, enc)
    rng = np.random.default_rng(seed)
    raw = sample_points(art.domain.lower.astype(np.float64), art.domain.upper.astype(np.float64), n, rng)
    outputs = enc.outputs_to_raw(forward_float64(art.model, enc.scale_inputs(raw)))
    holds = spec.evaluate_raw(raw, outputs)
    return {"model": model_dir, "points": n, "seed": seed, "certificate": art.certificate.get("verdict"),
            "violating_points": int((~holds.all(axis=1)).sum()),
            "per_assert": [int(v) for v in (~holds).sum(axis=0)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for model_dir in args.models:
        print(json.dumps(violations(model_dir, args.points, args.seed)))


if __name__ == "__main__":
    main()
