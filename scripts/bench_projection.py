"""The last-layer projection LP: scipy's ``linprog`` against HiGHS through ``highspy``, on the same LPs.

Trains DeepSaDe with its defaults on one or more problems of ``scripts/price_problems.py`` (seeded 75/25
split as ``bench_price.py`` makes it, a few epochs, through the CLI in this process) and records every LP
the trainer's projection builds (``deepsade.encoding.projection.projection_lp``). Then, per recorded LP
and interleaved (the machine is shared: both paths see the same load), it times

- ``scipy``: the LP as the projection built it before (``legacy_lp``, a per-row Python build into a
  ``coo_matrix``) solved by ``scipy.optimize.linprog(method="highs")``;
- ``highspy``: ``projection_lp`` (whole arrays, CSC) solved by ``projection.solve_lp`` (one reused HiGHS
  instance);

and compares the answers: the optimal objective (the L1 distance, unique) and the weights (an L1 projection
may have several optimal vertices; the two paths run different HiGHS versions, so they may pick different
ones). It also checks that the two builders give the same matrix, bounds and objective, and that reusing
one HiGHS instance gives the answers a fresh instance gives.

    OMP_NUM_THREADS=1 python scripts/bench_projection.py --problems pump_alarms --epochs 5
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import highspy
import numpy as np
import scipy
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csc_array

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_price import problem_args, split_rows  # noqa: E402
from price_problems import PROBLEMS, REPO  # noqa: E402

from deepsade.cli import main as deepsade_cli  # noqa: E402
from deepsade.encoding import projection  # noqa: E402


def legacy_lp(restricted, n_out: int, n_lat: int, target: np.ndarray, margin: float):
    """The projection LP as ``project_last_layer`` built it before this benchmark's change: per conclusion row
    and corner, Python lists of index arrays into a ``coo_matrix``. Returns (cost, A_ub as CSR, b_ub, bounds)."""
    n_w = n_out * n_lat
    n_theta = n_w + n_out
    eye = np.arange(n_theta)
    rows = [np.concatenate([eye, eye, n_theta + eye, n_theta + eye])]
    cols = [np.concatenate([eye, n_theta + eye, eye, n_theta + eye])]
    vals = [np.concatenate([np.ones(n_theta), -np.ones(n_theta), -np.ones(n_theta), -np.ones(n_theta)])]
    rhs = [target, -target]
    n_rows, n_vars = 2 * n_theta, 2 * n_theta
    for dual, box in restricted:
        if box is None:
            continue
        box_low, box_high = box
        moving = np.nonzero(box_low != box_high)[0]
        fixed = np.nonzero(box_low == box_high)[0]
        for row in dual.rows:
            out = row.out_float
            outs = np.nonzero(out)[0]
            lat = np.zeros(n_lat)
            for l, v in row.lat.items():
                lat[l] = float(v)
            t = n_vars + np.arange(len(moving))
            n_vars += len(moving)
            for corner in (box_low, box_high):
                r = n_rows + np.arange(len(moving))
                rows += [np.repeat(r, len(outs)), r]
                cols += [(outs[None, :] * n_lat + moving[:, None]).ravel(), t]
                vals += [(corner[moving][:, None] * out[outs][None, :]).ravel(), -np.ones(len(moving))]
                rhs.append(-lat[moving] * corner[moving])
                n_rows += len(moving)
            bound = -float(row.const) - float(lat[fixed] @ box_low[fixed])
            if row.with_margin:
                bound -= margin * float(row.margin_scale())
            rows += [np.full(len(moving) + len(outs) * (len(fixed) + 1), n_rows)]
            cols += [np.concatenate([t, (outs[None, :] * n_lat + fixed[:, None]).ravel(), n_w + outs])]
            vals += [np.concatenate([np.ones(len(moving)), (box_low[fixed][:, None] * out[outs][None, :]).ravel(),
                                     out[outs]])]
            rhs.append(np.array([bound]))
            n_rows += 1
    matrix = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n_rows, n_vars)).tocsr()
    cost = np.zeros(n_vars)
    cost[n_theta:2 * n_theta] = 1.0
    bounds = np.array([(-np.inf, np.inf)] * n_theta + [(0, np.inf)] * n_theta
                      + [(-np.inf, np.inf)] * (n_vars - 2 * n_theta))
    return cost, matrix, np.concatenate(rhs), bounds


def record_lps(problem_name: str, seed: int, epochs: int, work: Path) -> list[tuple]:
    """Train on the problem's seeded split (CLI defaults, ``epochs`` epochs) and keep every projection LP's
    inputs: (restricted duals, n_out, n_lat, target, margin)."""
    problem = PROBLEMS[problem_name]
    train, _ = split_rows(problem.build(), seed)
    train.to_csv(work / "train.csv", index=False)
    recorded: list[tuple] = []
    build = projection.projection_lp

    def recording(restricted, n_out, n_lat, target, margin):
        recorded.append((list(restricted), n_out, n_lat, np.array(target), margin))
        return build(restricted, n_out, n_lat, target, margin)

    projection.projection_lp = recording
    try:
        deepsade_cli.main(["train", str(work / "train.csv"), "--constraint", str(problem.rule_file),
                           *problem_args(problem, work), "--seed", str(seed), "--epochs", str(epochs), "--quiet",
                           "--out", str(work / f"model_{problem_name}")], standalone_mode=False)
    finally:
        projection.projection_lp = build
    return recorded


def fresh_solve(lp: projection.ProjectionLP) -> np.ndarray | None:
    """``solve_lp`` on a new HiGHS instance (to compare with the reused one)."""
    saved = getattr(projection._solvers, "highs", None)
    projection._solvers.highs = None
    try:
        return projection.solve_lp(lp)
    finally:
        projection._solvers.highs = saved


def compare(problem_name: str, recorded: list[tuple], repeats: int) -> list[dict]:
    """Per LP: both paths' time (best of ``repeats``, interleaved) and how their answers compare."""
    results = []
    for number, (restricted, n_out, n_lat, target, margin) in enumerate(recorded):
        n_theta = n_out * n_lat + n_out
        scipy_times, highspy_times, build_old, build_new = [], [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            cost, a_ub, b_ub, bounds = legacy_lp(restricted, n_out, n_lat, target, margin)
            t1 = time.perf_counter()
            old = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
            t2 = time.perf_counter()
            lp = projection.projection_lp(restricted, n_out, n_lat, target, margin)
            t3 = time.perf_counter()
            new = projection.solve_lp(lp)
            t4 = time.perf_counter()
            build_old.append(t1 - t0)
            scipy_times.append(t2 - t0)
            build_new.append(t3 - t2)
            highspy_times.append(t4 - t2)
        same_lp = (np.array_equal(lp.matrix().toarray(), csc_array(a_ub).toarray())
                   and np.array_equal(lp.row_upper, b_ub) and np.array_equal(lp.cost, cost)
                   and np.array_equal(lp.col_lower, bounds[:, 0]) and np.array_equal(lp.col_upper, bounds[:, 1]))
        fresh = fresh_solve(lp)
        old_ok = old.status == 0 and old.x is not None
        row = {"problem": problem_name, "lp": number, "rows": lp.n_rows, "cols": lp.n_cols, "nonzeros": len(lp.value),
               "same_lp": same_lp, "scipy_us": 1e6 * min(scipy_times), "scipy_build_us": 1e6 * min(build_old),
               "highspy_us": 1e6 * min(highspy_times), "highspy_build_us": 1e6 * min(build_new),
               "scipy_solved": old_ok, "highspy_solved": new is not None,
               "reused_equals_fresh": (new is None and fresh is None)
               or (new is not None and fresh is not None and np.array_equal(new, fresh))}
        if old_ok and new is not None:
            old_objective, new_objective = float(cost @ old.x), float(lp.cost @ new)
            row["objective_gap"] = abs(old_objective - new_objective) / max(1.0, abs(old_objective))
            row["theta_max_diff"] = float(np.abs(old.x[:n_theta] - new[:n_theta]).max())
            row["theta_identical"] = bool(np.array_equal(old.x[:n_theta], new[:n_theta]))
        results.append(row)
    return results


def write_report(rows: list[dict], out: Path, command: str, epochs: int, repeats: int, skipped: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fields = sorted({key for row in rows for key in row}, key=lambda k: list(rows[0]).index(k)
                    if k in rows[0] else len(rows[0]))
    with open(out / "lps.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    lines = ["# Projection LP: scipy linprog vs highspy", "",
             f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `{command}` at commit {commit} "
             f"(plus the working tree); python {platform.python_version()}, scipy {scipy.__version__} (bundles "
             f"HiGHS {_scipy_highs_version()}), highspy {_highspy_version()}. LPs recorded from DeepSaDe "
             f"training with defaults, {epochs} epochs, seed 1; each LP timed {repeats} times per path, "
             "interleaved, best time kept (a shared 2-core machine: the best is the least disturbed); load average "
             f"at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.", "",
             "| problem | LPs | rows x cols (median) | scipy build+solve µs (median) | of it build | "
             "highspy build+solve µs (median) | of it build | speed-up (total) | same LP | same optimum "
             "(rel. 1e-9) | identical weights | max weight diff | reused instance = fresh |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for problem in dict.fromkeys(row["problem"] for row in rows):
        mine = [row for row in rows if row["problem"] == problem]
        both = [row for row in mine if "objective_gap" in row]
        scipy_total = sum(row["scipy_us"] for row in mine)
        highspy_total = sum(row["highspy_us"] for row in mine)
        lines.append(
            f"| {problem} | {len(mine)} | {np.median([r['rows'] for r in mine]):.0f} x "
            f"{np.median([r['cols'] for r in mine]):.0f} | {np.median([r['scipy_us'] for r in mine]):.0f} | "
            f"{np.median([r['scipy_build_us'] for r in mine]):.0f} | {np.median([r['highspy_us'] for r in mine]):.0f} | "
            f"{np.median([r['highspy_build_us'] for r in mine]):.0f} | {scipy_total / highspy_total:.1f}x | "
            f"{sum(r['same_lp'] for r in mine)}/{len(mine)} | "
            f"{sum(r['objective_gap'] <= 1e-9 for r in both)}/{len(both)} | "
            f"{sum(r['theta_identical'] for r in both)}/{len(both)} | "
            f"{max((r['theta_max_diff'] for r in both), default=0):.3g} | "
            f"{sum(r['reused_equals_fresh'] for r in mine)}/{len(mine)} |")
        unsolved = [r["lp"] for r in mine if r["scipy_solved"] != r["highspy_solved"]]
        if unsolved:
            lines.append(f"\n{problem}: solved by one path only: LPs {unsolved[:20]}\n")
    if skipped:
        lines += ["", f"No projection LP was built while training {', '.join(skipped)} (line search or a closed "
                  "form took every step)."]
    lines += ["", "Columns: *same LP*: the vectorised builder gives the legacy builder's matrix, right-hand side, "
              "objective and bounds exactly; *same optimum*: the optimal L1 distances agree to 1e-9 relative; "
              "*identical weights*: the projected weights are bit-identical (an L1 projection can have several "
              "optimal vertices, and scipy bundles another HiGHS version); *reused instance = fresh*: the "
              "answer of the one HiGHS instance the trainer reuses equals a fresh instance's bit for bit.", "",
              "Per-LP figures: `lps.csv`."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _scipy_highs_version() -> str:
    try:
        from scipy.optimize._highspy import _core
        return _core._Highs().version()
    except (ImportError, AttributeError):  # private module of scipy: only for the report
        return "?"


def _highspy_version() -> str:
    return f"{highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}.{highspy.HIGHS_VERSION_PATCH}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", default="pump_alarms", help="comma-separated price problems")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs to record LPs from (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timings per LP and path (best kept)")
    parser.add_argument("--max-lps", type=int, default=2000, help="LPs compared per problem (evenly spaced)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "projection_speed")
    args = parser.parse_args()
    rows: list[dict] = []
    skipped: list[str] = []
    for name in [p for p in args.problems.split(",") if p]:
        with tempfile.TemporaryDirectory() as work:
            recorded = record_lps(name, args.seed, args.epochs, Path(work))
        if len(recorded) > args.max_lps:
            keep = np.linspace(0, len(recorded) - 1, args.max_lps).round().astype(int)
            recorded = [recorded[i] for i in keep]
        print(f"{name}: {len(recorded)} LPs recorded", flush=True)
        if not recorded:
            skipped.append(name)  # every step was a line-search hit or a closed-form projection
            continue
        rows += compare(name, recorded, args.repeats)
    if not rows:
        raise SystemExit("no projection LP was built: nothing to compare")
    write_report(rows, args.out, "python scripts/bench_projection.py " + " ".join(sys.argv[1:]), args.epochs,
                 args.repeats, skipped)
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
