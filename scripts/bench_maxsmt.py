"""Benchmark the MaxSMT methods on a trainer-like last-layer problem.

Problem (one per seed and margin): variables W (5x15) and b (5) of a last layer;
hard = a box |W - W0| <= 0.1, |b - b0| <= 0.1 around the current weights plus two linear
"translated constraint" rows that W0 satisfies with slack 0.05 (sum of the outputs at the
upper corner of the latent box bounded above; output 0 at the lower corner bounded below); soft = one constraint per batch
instance i, "every output k satisfies |W_k . z_i + b_k - y_ik| <= m", for 25 random
instances whose labels come from weights outside the box (so some soft constraints must
fail).  Margins 0.05, 0.1, 0.2 are run separately (25 soft each) and together (75 soft,
as the trainer builds them).

Methods compared: fu-malik (core.minimize off / on, plain Solver / SolverFor("QF_LRA"))
and z3-opt.  Writes results/bench_maxsmt.csv and results/bench_maxsmt.md.

    .venv/bin/python scripts/bench_maxsmt.py [--seeds 3] [--timeout 60]
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import z3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepsade.maxsmt import solve_maxsmt  # noqa: E402

N_OUT, N_IN, N_BATCH = 5, 15, 25
MARGINS = (0.05, 0.1, 0.2)
CONFIGS = {
    "fu-malik": dict(method="fu-malik"),
    "fu-malik+core.minimize": dict(method="fu-malik", core_minimize=True),
    "fu-malik QF_LRA": dict(method="fu-malik", logic="QF_LRA"),
    "z3-opt": dict(method="z3-opt"),
}


def _q(x: float) -> z3.RatNumRef:
    # Four decimals keep coefficients small, as the trainer's rounded weights do.
    return z3.RealVal(f"{x:.4f}")


def build(seed: int, margins: tuple[float, ...]) -> tuple[list, list]:
    """Hard and soft constraints of one benchmark instance."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(0, 0.3, (N_OUT, N_IN))
    b0 = rng.normal(0, 0.1, N_OUT)
    w_true = w0 + rng.normal(0, 0.15, (N_OUT, N_IN))
    b_true = b0 + rng.normal(0, 0.1, N_OUT)
    z = rng.uniform(0, 1, (N_BATCH, N_IN))
    y = z @ w_true.T + b_true + rng.normal(0, 0.05, (N_BATCH, N_OUT))

    w = [[z3.Real(f"W_{k}_{j}") for j in range(N_IN)] for k in range(N_OUT)]
    b = [z3.Real(f"b_{k}") for k in range(N_OUT)]

    def out(k: int, zi: np.ndarray) -> z3.ArithRef:
        return z3.Sum([_q(zi[j]) * w[k][j] for j in range(N_IN)]) + b[k]

    hard = []
    for k in range(N_OUT):
        for j in range(N_IN):
            hard += [w[k][j] >= _q(w0[k, j] - 0.1), w[k][j] <= _q(w0[k, j] + 0.1)]
        hard += [b[k] >= _q(b0[k] - 0.1), b[k] <= _q(b0[k] + 0.1)]
    # The current weights satisfy the translated constraint with a small slack, as in training.
    upper, lower = np.ones(N_IN), np.zeros(N_IN)
    sum_upper = float((w0 @ upper + b0).sum())
    hard.append(z3.Sum([out(k, upper) for k in range(N_OUT)]) <= _q(sum_upper + 0.05))
    hard.append(out(0, lower) >= _q(b0[0] - 0.05))

    soft = []
    for m in margins:
        for i in range(N_BATCH):
            rows = []
            for k in range(N_OUT):
                o = out(k, z[i])
                rows += [o - _q(y[i, k]) <= _q(m), _q(y[i, k]) - o <= _q(m)]
            soft.append(z3.And(rows))
    return hard, soft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    settings = [(f"m={m}", (m,)) for m in MARGINS] + [("all 3 margins", MARGINS)]
    rows = []
    for seed in range(args.seeds):
        for label, margins in settings:
            for name, cfg in CONFIGS.items():
                # Fresh formulas per run so no run benefits from another's hash-consing.
                hard, soft = build(seed, margins)
                r = solve_maxsmt(hard, soft, timeout_s=args.timeout, **cfg)
                rows.append(
                    dict(
                        seed=seed,
                        problem=label,
                        n_soft=len(soft),
                        method=name,
                        status=r.status,
                        n_satisfied=r.n_satisfied,
                        n_solver_calls=r.n_solver_calls,
                        seconds=round(r.seconds, 4),
                    )
                )
                print(rows[-1], flush=True)

    with open(args.out / "bench_maxsmt.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    lines = [
        "# MaxSMT benchmark (scripts/bench_maxsmt.py)",
        "",
        f"z3 {z3.get_version_string()}, Python {platform.python_version()}, "
        f"{platform.machine()}; {args.seeds} seeds, timeout {args.timeout:g} s per call.",
        "Last layer W (5x15), b (5); hard = box 0.1 around W0, b0 + 2 linear rows;",
        "soft = 25 batch instances per margin, all 5 outputs within the margin.",
        "",
        "| problem | method | median s | max s | satisfied (per seed) | calls (per seed) | status |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for label, _ in settings:
        for name in CONFIGS:
            sel = [r for r in rows if r["problem"] == label and r["method"] == name]
            secs = [r["seconds"] for r in sel]
            lines.append(
                f"| {label} ({sel[0]['n_soft']} soft) | {name} | {statistics.median(secs):.3f} "
                f"| {max(secs):.3f} | {', '.join(str(r['n_satisfied']) for r in sel)} "
                f"| {', '.join(str(r['n_solver_calls']) for r in sel)} "
                f"| {', '.join(sorted({r['status'] for r in sel}))} |"
            )
    (args.out / "bench_maxsmt.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
