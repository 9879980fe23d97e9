"""Training time with one torch thread against torch's default, on an idle machine and under load.

A new-user probe saw the sequential clamps at 4-43x ffn's time on a 2-core machine busy with other jobs,
against 1.0-1.6x on the benchmark (run with OMP_NUM_THREADS=1). This script trains the same splits with
``deepsade train`` (method auto and ffn) twice: OMP_NUM_THREADS set to the core count (torch's default), and
unset (the package then trains on one thread, ``deepsade.threads``); each once on an idle machine and once
with one busy process per core beside it. It writes ``report.md`` and ``runs.csv``.

    python scripts/bench_threads.py --out results/threads --problems energy_parts,friedman,wine
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from price_problems import PROBLEMS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _split(name: str, work: Path) -> Path:
    problem = PROBLEMS[name]
    frame = problem.build()
    train, _ = train_test_split(frame, test_size=0.25, random_state=1)
    path = work / f"{name}.csv"
    train.to_csv(path, index=False)
    return path


def _train(name: str, csv: Path, method: str, threads: str | None, out: Path) -> dict:
    problem = PROBLEMS[name]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    args = [sys.executable, "-m", "deepsade.cli", "train", str(csv), "--constraint", str(problem.rule_file),
            "--target", ",".join(problem.targets), "--method", method, "--out", str(out), "--force", "--quiet"]
    if problem.positive:
        args += ["--positive", problem.positive]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - start
    found = re.search(r"^trained (\S+) on .* in ([0-9.]+)s", done.stdout, re.MULTILINE)
    return {"exit": done.returncode, "trained": found.group(1) if found else None,
            "train_s": float(found.group(2)) if found else None, "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--problems", default="energy_parts,friedman,wine")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    cores = os.cpu_count() or 1
    rows = []
    for load in ("idle", "loaded"):
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)] \
            if load == "loaded" else []
        try:
            for name in args.problems.split(","):
                csv = _split(name, work)
                for threads, label in ((str(cores), f"OMP_NUM_THREADS={cores} (torch's default)"),
                                       (None, "unset (deepsade: 1 thread)")):
                    for method in ("auto", "ffn"):
                        result = _train(name, csv, method, threads, work / f"m_{name}_{method}")
                        rows.append({"load": load, "problem": name, "threads": label, "method": method, **result})
                        print(rows[-1], flush=True)
        finally:
            for process in busy:
                process.kill()
    runs = pd.DataFrame(rows)
    runs.to_csv(args.out / "runs.csv", index=False)
    lines = ["# Training time: one torch thread against torch's default", "",
             f"`python scripts/bench_threads.py --out {args.out} --problems {args.problems}` on a {cores}-core "
             "machine; 'loaded': one busy Python process per core beside the training. Times are the trainer's "
             "own seconds (`trained ... in Xs`); each run once, so single runs are noisy.", "",
             "| load | problem | method (trained) | default threads (s) | 1 thread (s) | default / 1 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (load, problem, method), group in runs.groupby(["load", "problem", "method"], sort=False):
        default = group[group["threads"].str.startswith("OMP")]["train_s"].iloc[0]
        single = group[group["threads"].str.startswith("unset")]["train_s"].iloc[0]
        trained = group["trained"].iloc[0]
        ratio = f"{default / single:.2f}x" if default and single else "-"
        lines.append(f"| {load} | {problem} | {method} ({trained}) | {default} | {single} | {ratio} |")
    (args.out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
