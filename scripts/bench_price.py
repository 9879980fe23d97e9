"""The price of the guarantee (issue 13): DeepSaDe with its defaults against an unconstrained network
(``--method ffn``) on problems that are not the paper's, through the command line only.

For each problem of ``scripts/price_problems.py`` and each seed: the rows (fixed, independent of the seed)
are split 75/25 with that seed; ``deepsade train`` runs with no hyper-parameter flag (defaults; only
``--seed``, the targets, the task and a problem's known domain ranges are passed, plus ``--extra-args``),
then ``deepsade train --method ffn`` on the same split; ``deepsade evaluate`` measures both on the held-out
rows and ``deepsade predict`` gives DeepSaDe's predicted classes (to catch "one class everywhere").
Optionally (``--adi``) ``deepsade adi`` measures ffn's Adversity Index on a small sample of test rows.

Everything goes through ``python -m deepsade.cli`` in a subprocess, so the script does not depend on the
package's internals. Each finished (problem, seed) is written at once to ``OUT/LABEL/runs/*.json``;
rerunning the same command skips what is finished. The report (``report.md``, ``runs.csv``,
``gap.png``) is rewritten after every run and checks the issue's "done means" per problem.

    OMP_NUM_THREADS=1 python scripts/bench_price.py --label baseline            # everything, seeds 1 2 3
    python scripts/bench_price.py --quick                                      # smoke test (~2 min)
    python scripts/bench_price.py --label newflag --extra-args "--some-flag" --problems breast_cancer,wine
    python scripts/bench_price.py --label baseline --report-only               # rewrite the report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from price_problems import PROBLEMS, REPO, Problem  # noqa: E402

ACCURACY_TOLERANCE = 0.02  # done means: within 2 accuracy points of ffn ...
MSE_TOLERANCE = 1.10  # ... or within 10% of its MSE
TIME_RATIO_LIMIT = 3.0  # at most 3x ffn's training time
GENERAL_PATH_TIME_RATIO_LIMIT = 10.0  # the general-path problems: within 10x
SINGLE_CLASS_SHARE = 0.99  # a model predicting one class on >= 99% of test rows predicts "a single class"
QUICK_ROWS = 150
CONSTRUCTIONS = ("hardnet", "hcr", "polytope", "repair", "scoreclamp")  # guarantees by construction (deepsade.constructions); exit 2: not applicable
QUICK_ARGS = ["--epochs", "2"]  # smoke test only: recorded in the report, never in a real run


@dataclass
class Settings:
    """What one benchmark run does; stored with every result so that a resumed run can check it."""

    label: str
    seeds: list[int]
    problems: list[str]
    extra_args: list[str]
    quick: bool
    adi: bool
    adi_sample: int
    adi_timeout: float
    timeout: float
    python: str
    methods: list[str] = field(default_factory=lambda: ["deepsade"])  # guaranteed methods; ffn always runs

    def fingerprint(self) -> dict[str, Any]:
        """The settings a finished result must share to be reused."""
        extra = {} if self.methods == ["deepsade"] else {"methods": self.methods}
        return {"extra_args": self.extra_args, "quick": self.quick, "adi": self.adi, **extra}


# ---------------------------------------------------------------- running the CLI

def cli(settings: Settings, args: list[str], timeout: float | None = None) -> tuple[int, float, str]:
    """Run ``python -m deepsade.cli ARGS``; return (exit code, wall seconds, stdout+stderr tail)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    process = subprocess.Popen([settings.python, "-m", "deepsade.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        text, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        process.terminate()  # SIGTERM: train writes a checkpoint (its progress is read from it) and exits
        try:
            text, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            text, _ = process.communicate()
        code, text = 124, (text or "") + f"\n(timed out after {timeout:.0f} s)"
    return code, time.perf_counter() - started, (text or "")[-3000:]


def checkpoint_progress(model_dir: Path) -> dict[str, Any]:
    """Best effort, for a run cut by the timeout: epochs done and where the time went, from its checkpoint."""
    try:
        payload = json.loads((model_dir.parent / f"{model_dir.name}.checkpoint" / "checkpoint.json").read_text())
        history = payload["payload"]["history"]
        if not history:
            return {"epochs_done": 0}
        return {"epochs_done": len(history),
                "seconds_per_epoch": round(float(np.mean([h["seconds"] for h in history])), 1),
                "solver_seconds_per_epoch": round(float(np.mean([h["solver_seconds"] for h in history])), 1),
                "maxsmt_calls_per_epoch": round(float(np.mean([h["maxsmt_calls"] for h in history])), 1)}
    except (OSError, KeyError, ValueError, TypeError):
        return {}


def split_rows(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded 75/25 train/test split."""
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train = int(round(0.75 * len(frame)))
    return (frame.iloc[order[:n_train]].reset_index(drop=True),
            frame.iloc[order[n_train:]].reset_index(drop=True))


def problem_args(problem: Problem, work: Path) -> list[str]:
    """The flags that state the problem (targets, task, positive class, known ranges): no hyper-parameters."""
    args = [f"--target={t}" for t in problem.targets] + ["--task", problem.task]
    if problem.positive:
        args += ["--positive", problem.positive]
    if problem.domain:
        domain_file = work / "domain.json"
        domain_file.write_text(json.dumps({k: list(v) for k, v in problem.domain.items()}), encoding="utf-8")
        args += ["--domain", str(domain_file)]
    return args


def training_seconds(model_dir: Path) -> float | None:
    """The trainer's own wall time as the model directory records it (no process start-up)."""
    try:
        return float(json.loads((model_dir / "model.json").read_text())["training"]["seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def predicted_label_share(predictions: Path, problem: Problem) -> float | None:
    """Share of rows on which the model predicts its most frequent class (label set for multi-label)."""
    if problem.task == "regression" or not predictions.exists():
        return None
    frame = pd.read_csv(predictions)
    columns = [f"predicted_{t}" for t in problem.targets]
    if not all(c in frame for c in columns):
        return None
    keys = frame[columns].astype(str).agg("|".join, axis=1)
    return float(keys.value_counts(normalize=True).iloc[0]) if len(keys) else None


def in_domain_rows(predictions: Path, test: pd.DataFrame) -> pd.DataFrame | None:
    """The test rows inside the model's domain box, from ``predict``'s ``in_domain`` column."""
    if not predictions.exists():
        return None
    flags = pd.read_csv(predictions)["in_domain"].astype(str).str.lower().eq("true").to_numpy()
    return test[flags] if len(flags) == len(test) else None


def true_label_share(test: pd.DataFrame, problem: Problem) -> float | None:
    """The same share for the true labels of the test rows (a rule may force one class; data rarely)."""
    if problem.task == "regression":
        return None
    keys = test[list(problem.targets)].astype(str).agg("|".join, axis=1)
    return float(keys.value_counts(normalize=True).iloc[0])


def run_one(problem: Problem, seed: int, settings: Settings, work_root: Path) -> dict[str, Any]:
    """Train, evaluate and measure DeepSaDe and ffn on one seeded split; return one result row."""
    work = work_root / f"{problem.name}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frame = problem.build()
    if settings.quick:
        frame = frame.sample(n=min(QUICK_ROWS, len(frame)), random_state=seed).reset_index(drop=True)
    train, test = split_rows(frame, seed)
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base = ["train", str(work / "train.csv"), "--constraint", str(problem.rule_file), *problem_args(problem, work),
            "--seed", str(seed), "--quiet"] + (QUICK_ARGS if settings.quick else [])
    row: dict[str, Any] = {"problem": problem.name, "seed": seed, "task": problem.task, "metric": problem.metric,
                           "general_path": problem.general_path, "train_rows": len(train), "test_rows": len(test),
                           "true_majority_share": true_label_share(test, problem)}
    runs = [(m, settings.extra_args if m == "deepsade" else ["--method", m]) for m in settings.methods]
    for method, flags in [*runs, ("ffn", ["--method", "ffn"])]:
        model = work / f"model_{method}"
        code, wall, text = cli(settings, [*base, *flags, "--out", str(model)], settings.timeout)
        row[f"{method}_train_exit"] = code
        if method in CONSTRUCTIONS and code == 2:  # the construction does not fit the rule: its one-line reason
            row[f"{method}_not_applicable"] = (text.strip().splitlines() or ["exit 2"])[-1].removeprefix("Error: ")
            continue
        row[f"{method}_wall_s"] = round(wall, 2)
        row[f"{method}_train_s"] = training_seconds(model) if code == 0 else None
        if code != 0:
            row[f"{method}_error"] = text.strip().splitlines()[-1] if text.strip() else f"exit {code}"
            if code == 124:
                row.update({f"{method}_timeout_{k}": v for k, v in checkpoint_progress(model).items()})
            continue
        metrics_file = work / f"eval_{method}.json"
        code, _, text = cli(settings, ["evaluate", str(model), str(work / "test.csv"), "--out", str(metrics_file)])
        if code != 0:
            row[f"{method}_error"] = "evaluate: " + (text.strip().splitlines() or [f"exit {code}"])[-1]
            continue
        metrics = json.loads(metrics_file.read_text())
        row[f"{method}_quality"] = metrics.get(f"{problem.metric}_corrected")
        row[f"{method}_quality_all_rows"] = metrics.get(problem.metric)
        if problem.task == "multilabel":
            row[f"{method}_jaccard"] = metrics.get("jaccard_corrected")
        row[f"{method}_violations"] = metrics.get("violating_rows")
        row[f"{method}_certificate"] = metrics.get("certificate")
        row["label_violating_test_rows"] = metrics.get("label_violating_rows")
        row["test_rows_outside_domain"] = metrics.get("rows_outside_domain")
        if method == "deepsade":  # no --method: the tool's default, 'auto', says which method trained
            stored = json.loads((model / "model.json").read_text())
            row["deepsade_trained_as"] = stored.get("method")
            row["deepsade_method_choice"] = stored.get("training", {}).get("method_choice")
            predictions = work / "predictions_deepsade.csv"
            cli(settings, ["predict", str(model), str(work / "test.csv"), "--out", str(predictions)])
            row["deepsade_majority_share"] = predicted_label_share(predictions, problem)
            in_domain = in_domain_rows(predictions, test)
            if in_domain is not None:
                in_domain.to_csv(work / "test_in_domain.csv", index=False)
        row[f"{method}_violations_in_domain"] = row[f"{method}_violations"]
        if row[f"{method}_violations"] and metrics.get("rows_outside_domain"):
            # the guarantee covers the domain box only: count the violations inside it apart
            inside_file = work / f"eval_{method}_in_domain.json"
            code, _, _ = cli(settings, ["evaluate", str(model), str(work / "test_in_domain.csv"),
                                        "--out", str(inside_file)])
            row[f"{method}_violations_in_domain"] = (json.loads(inside_file.read_text()).get("violating_rows")
                                                     if code == 0 else None)
    if settings.adi and row.get("ffn_train_exit") == 0:
        adi_file = work / "adi_ffn.csv"
        code, wall, _ = cli(settings, ["adi", str(work / "model_ffn"), str(work / "test.csv"), "--epsilon", "0.1",
                                       "--sample", str(settings.adi_sample), "--timeout", str(settings.adi_timeout),
                                       "--quiet", "--out", str(adi_file)],
                            timeout=settings.adi_sample * settings.adi_timeout * 3 + 120)
        row["ffn_adi_s"] = round(wall, 1)
        if code == 0 and adi_file.with_suffix(".json").exists():
            summary = json.loads(adi_file.with_suffix(".json").read_text())
            row.update(adi_fields(summary))
    if row.get("deepsade_train_s") and row.get("ffn_train_s"):
        row["time_ratio"] = row["deepsade_train_s"] / row["ffn_train_s"]
    return row


def constructions_section(runs: pd.DataFrame, methods: list[str]) -> list[str]:
    """Report lines: each construction beside DeepSaDe and ffn, or why it does not apply."""
    shown = [m for m in methods if m in CONSTRUCTIONS]
    if not shown:
        return []
    lines = ["", "## Guarantees by construction", "",
             "Same split and seed, `deepsade train --method M` with defaults (the baseline settings: plain SGD "
             "through the fixed enforcement layer); quality = corrected metric on the held-out rows. HardNet-Aff "
             "is certified exactly; HCR's verdict is `by construction` (region checked exactly, layer not "
             "piecewise linear).", "",
             "| problem | seed | method | quality | DeepSaDe | ffn | certificate | viol. | train s | or why not |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in runs.iterrows():
        for m in shown:
            if f"{m}_train_exit" not in r or pd.isna(r.get(f"{m}_train_exit")):
                continue
            why = r.get(f"{m}_not_applicable")
            if isinstance(why, str):
                lines.append(f"| {r['problem']} | {r['seed']} | {m} | - | {fmt(r.get('deepsade_quality'))} | "
                             f"{fmt(r.get('ffn_quality'))} | - | - | - | not applicable: {why} |")
                continue
            failed = "" if r.get(f"{m}_train_exit") == 0 else f"exit {r.get(f'{m}_train_exit')}: {r.get(f'{m}_error', '')}"
            lines.append(f"| {r['problem']} | {r['seed']} | {m} | {fmt(r.get(f'{m}_quality'))} | "
                         f"{fmt(r.get('deepsade_quality'))} | {fmt(r.get('ffn_quality'))} | "
                         f"{r.get(f'{m}_certificate', '-')} | {fmt(r.get(f'{m}_violations'), 0)} | "
                         f"{fmt(r.get(f'{m}_train_s'), 1)} | {failed} |")
    return lines


def adi_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """ffn's AdI at eps 0.1 and its unknown count from ``deepsade adi``'s JSON summary (any layout we know)."""
    per_eps = summary.get("epsilons", summary.get("per_epsilon", summary))
    entry = None
    if isinstance(per_eps, dict):
        entry = next((v for k, v in per_eps.items() if str(k).startswith("0.1")), None)
    elif isinstance(per_eps, list):
        entry = next((v for v in per_eps if abs(float(v.get("epsilon", -1)) - 0.1) < 1e-9), None)
    if not isinstance(entry, dict):
        return {"ffn_adi": None}
    return {"ffn_adi": entry.get("adi"), "ffn_adi_unknown": entry.get("unknown")}


# ---------------------------------------------------------------- report

def load_rows(runs_dir: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text())["row"] for p in sorted(runs_dir.glob("*.json"))]
    return pd.DataFrame(rows)


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers (NaN where missing or not a number; all NaN when the column is absent)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per problem over its seeds, with the issue's "done means" checked."""
    lines = []
    for name, group in runs.groupby("problem", sort=False):
        problem = PROBLEMS.get(name)
        d = numeric(group, "deepsade_quality")
        f = numeric(group, "ffn_quality")
        regression = group["task"].iloc[0] == "regression"
        d_mean, f_mean = d.mean(), f.mean()
        if regression:
            gap = d_mean / f_mean if f_mean else np.nan
            quality_ok = bool(d_mean <= MSE_TOLERANCE * f_mean)
        else:
            gap = 100.0 * (d_mean - f_mean)
            quality_ok = bool(d_mean >= f_mean - ACCURACY_TOLERANCE)
        n_ok = int((group["deepsade_train_exit"] == 0).sum())
        certified = int((group["deepsade_certificate"] == "certified").sum()) if "deepsade_certificate" in group else 0
        d_viol = numeric(group, "deepsade_violations_in_domain").fillna(0).sum()
        d_viol_all = numeric(group, "deepsade_violations").fillna(0).sum()
        f_viol = numeric(group, "ffn_violations")
        share = numeric(group, "deepsade_majority_share")
        true_share = numeric(group, "true_majority_share")
        single = bool(((share >= SINGLE_CLASS_SHARE) & (true_share < SINGLE_CLASS_SHARE)).any())
        ratio = numeric(group, "time_ratio").mean()
        limit = GENERAL_PATH_TIME_RATIO_LIMIT if bool(group["general_path"].iloc[0]) else TIME_RATIO_LIMIT
        all_ran = n_ok == len(group) and f.notna().all() and d.notna().all()
        line = {
            "problem": name, "seeds": len(group), "metric": group["metric"].iloc[0],
            "deepsade": d_mean, "deepsade_sd": d.std(ddof=0), "ffn": f_mean, "ffn_sd": f.std(ddof=0),
            "gap": gap, "gap_unit": "x MSE" if regression else "pp",
            "certified": f"{certified}/{len(group)}", "deepsade_violations": int(d_viol),
            "deepsade_violations_all_rows": int(d_viol_all),
            "ffn_violations": int(f_viol.fillna(0).sum()),
            "majority_share": share.max() if share.notna().any() else np.nan,
            "deepsade_s": numeric(group, "deepsade_train_s").mean(),
            "ffn_s": numeric(group, "ffn_train_s").mean(),
            "time_ratio": ratio, "time_limit": limit,
            "ok_quality": quality_ok and all_ran,
            "ok_certified": all_ran and certified == len(group) and d_viol == 0,
            "ok_not_single_class": not single,
            "ok_time": bool(ratio <= limit) if np.isfinite(ratio) else False,
            "ffn_breaks_rule": bool((f_viol > 0).any()),
            "covers": "; ".join(problem.covers) if problem else "",
        }
        if "ffn_adi" in group:
            line["ffn_adi"] = numeric(group, "ffn_adi").mean()
        line["done"] = all(line[k] for k in ("ok_quality", "ok_certified", "ok_not_single_class", "ok_time"))
        lines.append(line)
    return pd.DataFrame(lines)


def plot_gaps(summary: pd.DataFrame, runs: pd.DataFrame, path: Path) -> None:
    """Accuracy gap (pp) for classifiers and MSE ratio for regression, one bar per problem, seeds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classif = summary[summary["gap_unit"] == "pp"]
    regress = summary[summary["gap_unit"] != "pp"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [max(len(classif), 1),
                                                                                     max(len(regress), 1)]})
    for ax, part, unit in ((axes[0], classif, "pp"), (axes[1], regress, "ratio")):
        names = list(part["problem"])
        values = part["gap"].to_numpy(dtype=float)
        colours = ["tab:green" if ok else "tab:red" for ok in part["ok_quality"]]
        ax.bar(range(len(names)), values if unit == "pp" else values - 1.0,
               bottom=0.0 if unit == "pp" else 1.0, color=colours, alpha=0.7)
        for k, name in enumerate(names):
            seeds = runs[runs["problem"] == name]
            d, f = numeric(seeds, "deepsade_quality"), numeric(seeds, "ffn_quality")
            dots = 100.0 * (d - f) if unit == "pp" else d / f
            ax.scatter([k] * len(dots), dots, color="black", s=12, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        if unit == "pp":
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.axhline(-100 * ACCURACY_TOLERANCE, color="tab:blue", ls="--", lw=1, label="done: -2 pp")
            ax.set_ylabel("accuracy gap, DeepSaDe - ffn (points)")
            ax.set_title("classification (corrected accuracy)")
        else:
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.axhline(MSE_TOLERANCE, color="tab:blue", ls="--", lw=1, label="done: 1.1x")
            ax.set_ylabel("MSE ratio, DeepSaDe / ffn (log)")
            ax.set_title("regression (corrected MSE)")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("Price of the guarantee: DeepSaDe (defaults) against ffn, same splits; bars = mean, dots = seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def ratio(value: float) -> str:
    return f"{value:.1f}x" if np.isfinite(value) else "-"


def spread(line: pd.Series, method: str) -> str:
    """Mean over seeds, with the standard deviation when there are several."""
    mean = fmt(line[method])
    return f"{mean} ± {fmt(line[f'{method}_sd'])}" if line["seeds"] > 1 else mean


def write_report(out: Path, settings: Settings, command: str, notes: list[str]) -> pd.DataFrame | None:
    """Rewrite runs.csv, gap.png and report.md from the stored results; return the per-problem summary."""
    runs = load_rows(out / "runs")
    if runs.empty:
        return None
    order = {name: k for k, name in enumerate(PROBLEMS)}
    runs = runs.sort_values(["problem", "seed"], key=lambda s: s.map(order) if s.name == "problem" else s)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarise(runs)
    summary.to_csv(out / "summary.csv", index=False)
    plot_gaps(summary, runs, out / "gap.png")
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    mark = {True: "yes", False: "**no**"}
    lines = [
        f"# The price of the guarantee: DeepSaDe with defaults against ffn ({settings.label})",
        "",
        "Issue 13's benchmark: problems that are not the paper's, each with a rule a practitioner would write "
        "(`constraints/price/`, data built by `scripts/price_problems.py`). Per problem and seed: a seeded 75/25 "
        "split, `deepsade train` with no hyper-parameter flag, `deepsade train --method ffn` on the same split, "
        "`deepsade evaluate` on the held-out rows (corrected quality = rows whose true labels satisfy the rule).",
        "",
        "Command (several when the problems were run in parts into the same folder; each skips what is finished):",
        "",
        "```bash",
        *meta.get("commands", [command]),
        "```",
        "",
        f"- code: commit `{meta.get('commit', '?')}`{' (with uncommitted changes)' if meta.get('dirty') else ''}, "
        f"{meta.get('machine', '')}, OMP_NUM_THREADS={meta.get('omp_threads', '?')}"
        + (f"; packages: {', '.join(f'{k} {v}' for k, v in meta['packages'].items())}" if meta.get("packages") else ""),
        f"- seeds: {', '.join(map(str, sorted(runs['seed'].unique())))}; extra DeepSaDe train args: "
        f"`{' '.join(settings.extra_args) or '(none)'}`"
        + (f"; **quick mode** ({QUICK_ROWS} rows, `{' '.join(QUICK_ARGS)}` for both methods)" if settings.quick else ""),
        *(["- the 'deepsade' column is `deepsade train` without `--method` (its default, `auto`), which trained: "
           + "; ".join(f"{p} {', '.join(sorted(set(g.dropna())))}" for p, g in
                       runs.groupby("problem", sort=False)["deepsade_trained_as"])]
          if "deepsade_trained_as" in runs and runs["deepsade_trained_as"].notna().any() else []),
        "- time = the trainer's own seconds as `model.json` records them (no process start-up); ratio = "
        "DeepSaDe / ffn, mean over seeds.",
        *[f"- {note}" for note in notes],
        "",
        "## Gap per problem",
        "",
        "Gap: accuracy points (DeepSaDe - ffn) for classifiers (per-label accuracy for multi-label), MSE ratio "
        "(DeepSaDe / ffn) for regression; means over seeds. `majority` = the largest share of test rows on "
        "which DeepSaDe predicts one class (label set), worst seed. Violations: test rows whose prediction breaks "
        "the rule, summed over seeds; DeepSaDe's are counted inside the domain box (the guarantee covers the box "
        "only; rows outside it in parentheses when they differ), ffn's over all test rows.",
        "",
        "| problem | seeds | metric | DeepSaDe | ffn | gap | certified | viol. DeepSaDe / ffn | majority | "
        "time DeepSaDe / ffn (s) | ratio |" + (" ffn AdI |" if "ffn_adi" in summary else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if "ffn_adi" in summary else ""),
    ]
    for _, s in summary.iterrows():
        gap = ("-" if not np.isfinite(s["gap"]) else f"{s['gap']:+.1f} pp" if s["gap_unit"] == "pp"
               else f"{s['gap']:.2f}x")
        lines.append(
            f"| {s['problem']} | {s['seeds']} | {s['metric']} | {spread(s, 'deepsade')} | {spread(s, 'ffn')} | {gap} | {s['certified']} | {s['deepsade_violations']}"
            f"{'' if s['deepsade_violations_all_rows'] == s['deepsade_violations'] else ' (' + str(s['deepsade_violations_all_rows']) + ' all rows)'} / "
            f"{s['ffn_violations']} | {fmt(s['majority_share'], 2)} | {fmt(s['deepsade_s'], 1)} / {fmt(s['ffn_s'], 1)} "
            f"| {ratio(s['time_ratio'])} |" + (f" {fmt(s.get('ffn_adi'))} |" if "ffn_adi" in summary else ""))
    lines += [
        "",
        "![gap per problem](gap.png)",
        "",
        "## Done means (issue 13), per problem",
        "",
        f"quality: within {100 * ACCURACY_TOLERANCE:.0f} accuracy points of ffn or within "
        f"{100 * (MSE_TOLERANCE - 1):.0f}% of its MSE (means over seeds); certified: every model certified with "
        f"0 test violations; one class: no model predicts one class on >= {100 * SINGLE_CLASS_SHARE:.0f}% of test "
        f"rows while the true labels are mixed; time: at most {TIME_RATIO_LIMIT:.0f}x ffn "
        f"({GENERAL_PATH_TIME_RATIO_LIMIT:.0f}x for the general-path problems).",
        "",
        "| problem | covers | quality | certified, 0 viol. | not one class | time | all | ffn breaks the rule |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, s in summary.iterrows():
        lines.append(f"| {s['problem']} | {s['covers']} | {mark[s['ok_quality']]} | {mark[s['ok_certified']]} | "
                     f"{mark[s['ok_not_single_class']]} | {mark[s['ok_time']]} ({ratio(s['time_ratio'])}, "
                     f"limit {s['time_limit']:.0f}x) | {mark[s['done']]} | "
                     f"{'yes (' + str(s['ffn_violations']) + ' test rows)' if s['ffn_breaks_rule'] else 'no'} |")
    passed = int(summary["done"].sum())
    lines += ["", f"**{passed} of {len(summary)} problems meet every criterion.**", "",
              "## Problems", "", "| problem | data | rule in words | task |", "| --- | --- | --- | --- |"]
    for name in summary["problem"]:
        p = PROBLEMS[name]
        lines.append(f"| {name} | {p.source} | {p.rule_in_words} | {p.task}"
                     f"{' (general path)' if p.general_path else ''} |")
    failures = runs[(runs.get("deepsade_train_exit", 0) != 0) | (runs.get("ffn_train_exit", 0) != 0)]
    if len(failures):
        lines += ["", "## Runs that failed", ""]
        for _, r in failures.iterrows():
            for method in ("deepsade", "ffn"):
                if r.get(f"{method}_train_exit") != 0:
                    progress = ", ".join(f"{k.removeprefix(f'{method}_timeout_')} {r[k]}" for k in r.index
                                         if k.startswith(f"{method}_timeout_") and pd.notna(r[k]))
                    lines.append(f"- {r['problem']} seed {r['seed']} {method}: exit {r.get(f'{method}_train_exit')}: "
                                 f"{r.get(f'{method}_error', '')}" + (f" (at the timeout: {progress})" if progress else ""))
    lines += constructions_section(runs, list(meta.get("methods", ["deepsade"])))
    lines += ["", "## Every run", "", "See `runs.csv` (one row per problem and seed; `_quality` = corrected metric)."]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary


# ---------------------------------------------------------------- main

def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "deepsade"))}


def package_versions() -> dict[str, str]:
    """Versions of the packages a run's numbers depend on: the same commit gives other splits' models (ffn's
    too) under other releases."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "numpy", "pandas", "scikit-learn", "scipy", "highspy", "z3-solver"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="name of the run: results go to OUT/LABEL (default: baseline, "
                                        "or quick with --quick)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="split and training seeds (default 1 2 3)")
    parser.add_argument("--problems", default="", help="comma-separated problem names (default: all); "
                                                       f"known: {', '.join(PROBLEMS)}")
    parser.add_argument("--slow-seeds", type=int, nargs="+", default=None,
                        help="seeds for the general-path problems (default: --seeds)")
    parser.add_argument("--extra-args", default="", help="extra flags for the DeepSaDe train calls, one string, "
                                                        "e.g. \"--lr 0.05\" (ffn gets none)")
    parser.add_argument("--quick", action="store_true", help=f"smoke test: seed 1, {QUICK_ROWS} rows, "
                                                             f"{' '.join(QUICK_ARGS)} for both methods")
    parser.add_argument("--adi", action="store_true", help="also measure ffn's AdI (eps 0.1) with deepsade adi")
    parser.add_argument("--adi-sample", type=int, default=20, help="test rows for the AdI (default 20)")
    parser.add_argument("--adi-timeout", type=float, default=2.0, help="seconds per AdI search (default 2)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per train call (default 1800)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "price", help="results root")
    parser.add_argument("--work", type=Path, default=None, help="where models and splits go "
                                                                "(default: runs/price/LABEL, not committed)")
    parser.add_argument("--note", action="append", default=[], help="a line added to the report (repeatable)")
    parser.add_argument("--methods", default="deepsade",
                        help="comma-separated guaranteed methods, each beside ffn (always run): deepsade and the "
                             f"constructions {', '.join(CONSTRUCTIONS)} (a construction that does not fit the rule "
                             "gets a 'not applicable: reason' row); default deepsade")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from stored results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    label = args.label or ("quick" if args.quick else "baseline")
    names = [n.strip() for n in args.problems.split(",") if n.strip()] or list(PROBLEMS)
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        print(f"unknown problem(s): {', '.join(unknown)}; known: {', '.join(PROBLEMS)}", file=sys.stderr)
        return 2
    seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    settings = Settings(label=label, seeds=seeds, problems=names, extra_args=shlex.split(args.extra_args),
                        quick=args.quick, adi=args.adi, adi_sample=args.adi_sample, adi_timeout=args.adi_timeout,
                        timeout=args.timeout, python=sys.executable,
                        methods=[m.strip() for m in args.methods.split(",") if m.strip()])
    if settings.methods != ["deepsade"] and "deepsade" not in settings.methods:
        print("--methods must include deepsade (the report compares every method with it)", file=sys.stderr)
        return 2
    if any(m not in ("deepsade", *CONSTRUCTIONS) for m in settings.methods):
        print(f"--methods takes deepsade and {', '.join(CONSTRUCTIONS)}", file=sys.stderr)
        return 2
    out = args.out / label
    (out / "runs").mkdir(parents=True, exist_ok=True)
    work_root = args.work or REPO / "runs" / "price" / label
    command = "OMP_NUM_THREADS=1 python scripts/bench_price.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if (out / "meta.json").exists() and args.report_only:
        meta = json.loads((out / "meta.json").read_text())
        command = meta.get("command", command)
        settings.extra_args, settings.quick = meta.get("extra_args", []), meta.get("quick", False)
    if not args.report_only:
        previous = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
        commands = previous.get("commands", [previous["command"]] if "command" in previous else [])
        meta = {"command": command, "commands": [*[c for c in commands if c != command], command], **git_state(), "extra_args": settings.extra_args, "quick": settings.quick,
                "methods": settings.methods, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "packages": package_versions(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        env_path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = str(REPO) + (os.pathsep + env_path if env_path else "")
        # seed-major: every problem's first seed before any second seed, so a cut-short run covers all problems
        plan = [(name, seed) for seed in sorted(set(seeds) | set(args.slow_seeds or [])) for name in names
                if seed in ((args.slow_seeds or seeds) if PROBLEMS[name].general_path else seeds)]
        for name, seed in plan:
            problem = PROBLEMS[name]
            result_file = out / "runs" / f"{name}-s{seed}.json"
            if result_file.exists():
                stored = json.loads(result_file.read_text())
                if stored.get("settings") == settings.fingerprint():
                    continue
            started = time.perf_counter()
            row = run_one(problem, seed, settings, work_root)
            result_file.write_text(json.dumps({"settings": settings.fingerprint(), "row": row}, indent=1,
                                              default=str), encoding="utf-8")
            quality = (f"{fmt(row.get('deepsade_quality'))} vs {fmt(row.get('ffn_quality'))} "
                       f"({problem.metric})")
            print(f"{name} seed {seed}: {quality}, {row.get('deepsade_certificate')}, "
                  f"time {fmt(row.get('deepsade_train_s'), 1)} / {fmt(row.get('ffn_train_s'), 1)} s "
                  f"[{time.perf_counter() - started:.0f} s]", flush=True)
            write_report(out, settings, command, args.note)
    summary = write_report(out, settings, command, args.note)
    if summary is not None:
        print(f"report: {out / 'report.md'} ({int(summary['done'].sum())} of {len(summary)} problems done)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
