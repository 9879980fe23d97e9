"""Two runs of ``scripts/bench_price.py`` side by side, problem by problem (the same problems and seeds).

Reads each run's finished (problem, seed) records (``OUT/LABEL/runs/*.json``), keeps the pairs both runs
finished, summarises each run over those pairs with ``bench_price.summarise`` (the issue's bars as the benchmark
judges them) and writes ``compare.md`` and ``compare.csv``: for each problem, the mean gap to ffn (accuracy points,
or the MSE ratio) and whether it meets the quality bar, in the first run and in the second; then the gaps per
seed.

    python scripts/compare_price_runs.py --before results/price/A --after results/price/B --out results/price/B
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_price import load_rows, summarise  # noqa: E402 (the benchmark's own summary)


def _gap(row: pd.Series) -> float:
    """Accuracy points above ffn, or the MSE ratio to ffn's, of one (problem, seed) run."""
    quality, ffn = float(row["deepsade_quality"]), float(row["ffn_quality"])
    return quality / ffn if "mse" in row["metric"] else 100.0 * (quality - ffn)


def compare(before: Path, after: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = ["problem", "seed"]
    runs = [load_rows(folder / "runs") for folder in (before, after)]
    both = runs[0][keys].merge(runs[1][keys], on=keys)
    runs = [r.merge(both, on=keys) for r in runs]
    paired = runs[0].merge(runs[1], on=keys, suffixes=("_before", "_after"))
    per_seed = pd.DataFrame({
        "problem": paired["problem"], "seed": paired["seed"], "metric": paired["metric_before"],
        "trained_as_before": paired["deepsade_trained_as_before"], "trained_as_after": paired["deepsade_trained_as_after"],
        "gap_before": [_gap(r.rename(lambda c: c.removesuffix("_before"))) for _, r in paired.iterrows()],
        "gap_after": [_gap(r.rename(lambda c: c.removesuffix("_after"))) for _, r in paired.iterrows()],
        "certified_after": paired["deepsade_certificate_after"], "violations_after": paired["deepsade_violations_after"],
    })
    summaries = [summarise(r).set_index("problem") for r in runs]
    problems = list(summaries[1].index)
    per_problem = pd.DataFrame({
        "problem": problems,
        "seeds": [int(summaries[1].loc[p, "seeds"]) for p in problems],
        "unit": [summaries[1].loc[p, "gap_unit"] for p in problems],
        "gap_before": [float(summaries[0].loc[p, "gap"]) for p in problems],
        "gap_after": [float(summaries[1].loc[p, "gap"]) for p in problems],
        "quality_bar_before": [bool(summaries[0].loc[p, "ok_quality"]) for p in problems],
        "quality_bar_after": [bool(summaries[1].loc[p, "ok_quality"]) for p in problems],
        "time_ratio_before": [float(summaries[0].loc[p, "time_ratio"]) for p in problems],
        "time_ratio_after": [float(summaries[1].loc[p, "time_ratio"]) for p in problems],
        "done_before": [bool(summaries[0].loc[p, "done"]) for p in problems],
        "done_after": [bool(summaries[1].loc[p, "done"]) for p in problems],
    })
    return per_problem, per_seed


def _markdown(per_problem: pd.DataFrame, per_seed: pd.DataFrame, before: Path, after: Path) -> str:
    lines = [f"# {after.name} against {before.name}", "",
             "Gap to ffn on the same splits: accuracy points (classifiers, higher is better) or DeepSaDe's MSE over "
             "ffn's (regression, lower is better), each run summarised over the (problem, seed) pairs both finished. "
             "'bar': within 2 accuracy points of ffn or within 10% of its MSE, as scripts/bench_price.py judges "
             "it.", "",
             "| problem | seeds | unit | gap before | gap after | bar before | bar after | time before | time after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in per_problem.iterrows():
        lines.append(f"| {r.problem} | {r.seeds} | {r.unit} | {r.gap_before:.3f} | {r.gap_after:.3f} | "
                     f"{'yes' if r.quality_bar_before else '**no**'} | {'yes' if r.quality_bar_after else '**no**'} | "
                     f"{r.time_ratio_before:.2f}x | {r.time_ratio_after:.2f}x |")
    for unit, label in (("pp", "classifiers, accuracy points"), ("x", "regression, MSE ratio")):
        part = per_problem[per_problem.unit.str.startswith(unit)]
        if len(part):
            lines += ["", f"Mean over the {label} problems: before {part.gap_before.mean():.3f}, after "
                          f"{part.gap_after.mean():.3f}; bars met before {int(part.quality_bar_before.sum())}/{len(part)}, "
                          f"after {int(part.quality_bar_after.sum())}/{len(part)}."]
    lines += ["", "## Per seed", "", "| problem | seed | trained as | gap before | gap after | certified | violations |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in per_seed.sort_values(["problem", "seed"]).iterrows():
        lines.append(f"| {r.problem} | {r.seed} | {r.trained_as_after} | {r.gap_before:.3f} | {r.gap_after:.3f} | "
                     f"{r.certified_after} | {r.violations_after} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the first run's folder (OUT/LABEL)")
    parser.add_argument("--after", type=Path, required=True, help="the second run's folder (OUT/LABEL)")
    parser.add_argument("--out", type=Path, required=True, help="where compare.md and compare.csv go")
    args = parser.parse_args()
    per_problem, per_seed = compare(args.before, args.after)
    args.out.mkdir(parents=True, exist_ok=True)
    per_problem.to_csv(args.out / "compare.csv", index=False)
    (args.out / "compare.md").write_text(_markdown(per_problem, per_seed, args.before, args.after))
    print((args.out / "compare.md").read_text())


if __name__ == "__main__":
    main()
