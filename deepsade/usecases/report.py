"""Reports of a use-case cross-validation: ``runs.csv``, ``report.md`` and PNG plots, beside the published figures.

The published figures are those of the DeepSaDe paper (Goyal, Dumancic & Blockeel, AAAI 2024), as
collected in ``shared/ANCHORS.md``: means over 5 repetitions x 5 folds, test metrics on the
"corrected" rows (true label satisfies the constraint), training wall time per fold on an Intel Xeon
Silver 4214. A hand-written ``notes.md`` in the output folder (why a figure differs, what would fix
it) is copied into ``report.md`` when present.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsade.atomic import write_text_atomically
from deepsade.usecases import USECASES
from deepsade.usecases import get as get_usecase
from deepsade.usecases.plots import write_plots
from deepsade.usecases.results import load_results, method_order, overrides

# metric key -> short label (the corrected variant is what the paper reports)
METRIC_LABELS = {"mse": "MSE", "accuracy": "accuracy", "coherent_accuracy": "coherent",
                 "flattened_accuracy": "flattened", "jaccard": "Jaccard"}

# ---- runs.csv --------------------------------------------------------------------------------------------


def flatten(result: dict[str, Any]) -> dict[str, Any]:
    """One CSV row: every scalar of a fold x method result (nested dicts joined with '.')."""
    row: dict[str, Any] = {}
    skip = {"config", "val_loss_curve", "lambda_curve", "test_hidden", "test_premise", "settings"}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            if all(not isinstance(v, (dict, list)) for v in value):
                row[prefix] = ";".join(str(v) for v in value)
        else:
            row[prefix] = value

    for key, value in result.items():
        if key in skip:
            continue
        if key == "adi" and value:
            row["adi.sample"] = value["sample"]
            row["adi.engine"] = value["engine"]
            row["adi.wall_seconds"] = value["wall_seconds"]
            for entry in value["per_epsilon"]:
                for name in ("adi", "counterexample", "verified", "unknown", "outside"):
                    row[f"adi_{entry['epsilon']:g}.{name}"] = entry[name]
            continue
        walk(key, value)
    settings = result.get("settings") or {}
    for key in ("hidden", "batch_size", "lr", "max_step", "margins"):
        if key in settings:
            row[f"settings.{key}"] = ",".join(map(str, settings[key])) if isinstance(settings[key], (list, tuple)) \
                else settings[key]
    return row


def write_runs_csv(out: str | Path) -> Path:
    """Rebuild ``runs.csv`` from the stored fold x method results (one row each)."""
    out = Path(out)
    rows = [flatten(r) for r in load_results(out)]
    return write_text_atomically(out / "runs.csv", pd.DataFrame(rows).to_csv(index=False))


# ---- summaries -------------------------------------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(kept)) if kept else None


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}g}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 3600:
        return f"{value:,.0f} s ({value / 3600:.1f} h)"
    return f"{value:,.1f} s" if value < 1000 else f"{value:,.0f} s"


def summarise(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Per method: folds, mean corrected metrics, violations, AdI, certificates, time; and time ratios."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return pd.DataFrame()
    case = get_usecase(ok[0]["usecase"])
    records = []
    for method in method_order({r["method"] for r in ok}):
        runs = [r for r in ok if r["method"] == method]
        if not runs:
            continue
        record: dict[str, Any] = {"method": method, "folds": len(runs)}
        for metric in case.metrics:
            record[metric] = _mean([r["test"].get(f"{metric}_corrected") for r in runs])
            record[f"{metric}_all_rows"] = _mean([r["test"].get(metric) for r in runs])
        record["test_violations"] = _mean([r["test"]["violating_rows"] for r in runs])
        record["train_violations"] = _mean([r["train_violating_rows"] for r in runs])
        for i, eps in enumerate(runs[0]["config"]["adi_epsilons"]):
            record[f"adi_{eps:g}"] = _mean([r["adi"]["per_epsilon"][i]["adi"] for r in runs if r.get("adi")])
            record[f"adi_{eps:g}_unknown"] = sum(r["adi"]["per_epsilon"][i]["unknown"] for r in runs if r.get("adi"))
        record["certified"] = sum(r["certificate"] == "certified" for r in runs)
        record["exact_check_holds"] = sum(r["exact_check"] == "certified" for r in runs)
        record["seconds"] = _mean([r["train_seconds"] for r in runs])
        records.append(record)
    table = pd.DataFrame(records)
    deepsade_time = {r["fold"]: r["train_seconds"] for r in ok if r["method"] == "deepsade"}
    ratios = []
    for method in table["method"]:
        pairs = [deepsade_time[r["fold"]] / r["train_seconds"] for r in ok
                 if r["method"] == method and r["fold"] in deepsade_time and r["train_seconds"]]
        ratios.append(_mean(pairs) if method != "deepsade" else None)
    table["deepsade_time_ratio"] = ratios
    return table


def _metric_text(record: dict[str, Any] | pd.Series, metrics: Sequence[str], multi: bool) -> str:
    parts = []
    for metric in metrics:
        value = record.get(metric) if isinstance(record, dict) else record[metric]
        parts.append(f"{METRIC_LABELS[metric]} {_fmt(value)}" if multi else _fmt(value))
    return ", ".join(parts)


def summary_rows(name: str, results: list[dict[str, Any]]) -> list[list[str]]:
    """The ANCHORS-layout rows (ours beside published) for one use case."""
    case = get_usecase(name)
    table = summarise(results)
    published = case.published
    ratio_method, ratio_published = case.published_ratio or (None, None)
    multi = len(case.metrics) > 1
    rows: list[list[str]] = []
    methods = list(table["method"]) if len(table) else []
    not_applicable = [m for m in method_order({r["method"] for r in results}) if m not in methods
                      and any(r["method"] == m and r["status"] != "ok" for r in results)]
    methods += [m for m in published if m not in methods and m not in not_applicable]
    for method in methods:
        ours = table[table["method"] == method].iloc[0].to_dict() if method in set(table.get("method", [])) else None
        pub = published.get(method)
        metric_ours = _metric_text(ours, case.metrics, multi) if ours else "not run"
        metric_pub = _metric_text(dict(pub.metrics), case.metrics, multi) if pub else "-"
        if ours:
            adi_keys = sorted((k for k in ours if k.startswith("adi_") and not k.endswith("_unknown")),
                              key=lambda k: -float(k[4:]))
            adi_ours = " / ".join(_fmt(ours[k], 3) for k in adi_keys)
            unknown = sum(int(ours[f"{k}_unknown"]) for k in adi_keys)
            if unknown:
                adi_ours += f" ({unknown} unknown)"
            certified = f"{int(ours['certified'])}/{int(ours['folds'])}"
            ratio = "-" if method == "deepsade" else _fmt(ours["deepsade_time_ratio"], 3) + "x"
        else:
            adi_ours, certified, ratio = "-", "-", "-"
        adi_pub = "n/a" if not pub or pub.adi is None else f"{pub.adi[0]:g} / {pub.adi[1]:g}"
        ratio_pub = f"{ratio_published:g}x" if method == ratio_method else "-"
        rows.append([
            name, method, str(int(ours["folds"])) if ours else "0", metric_ours, metric_pub,
            _fmt(ours["test_violations"], 3) if ours else "-", pub.violations if pub else "-",
            adi_ours, adi_pub, certified,
            _seconds(ours["seconds"]) if ours else "-", _seconds(pub.seconds) if pub else "-", ratio, ratio_pub,
        ])
    for method in not_applicable:
        rows.append([name, method, "0", "not applicable to this rule (see report)", *["-"] * 10])
    return rows


SUMMARY_HEADER = ["UC", "method", "folds", "metric (test, corrected), ours", "published",
                  "test violating rows, ours", "published", "AdI eps 0.1 / 0.01, ours", "published",
                  "certified", "training time, ours", "published", "DeepSaDe / method time, ours", "published"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


# ---- report.md -------------------------------------------------------------------------------------------


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in ("torch", "z3-solver", "maraboupy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {', '.join(versions)}; "
            "one torch thread per process; the machine is shared with other jobs, so times carry noise")


def _describe_run(results: list[dict[str, Any]]) -> list[str]:
    first = results[0]
    config, settings = first["config"], first["settings"]
    ok = [r for r in results if r["status"] == "ok"]
    folds = sorted({r["fold"] for r in results})
    changed = overrides(config)
    lines = [
        f"- Data: {first['data_source']}; {first['n_rows']} rows used. Folds run: {', '.join(map(str, folds))} of "
        f"a seeded {config['n_splits']}-fold split (seed {config['seed']}); each fold 70/20/10 train/test/validation "
        f"(fold 1: {first['n_train']} / {first['n_test']} / {first['n_val']} rows).",
        (f"- Rule broken on purpose in training: {first['injected_label_violations']} labels flipped "
         "(paper's injection, training part only) in fold 1"
         if get_usecase(first["usecase"]).inject_violations is not None
         else "- No labels flipped (the paper injects none for this use case)")
        + f"; training rows whose label breaks the rule, fold 1: {ok[0]['train_label_violating_rows'] if ok else '-'}.",
        f"- Settings (the paper's unless listed under overrides): hidden {'-'.join(map(str, settings['hidden']))}, "
        f"skip features {', '.join(first['mapped_features']) or 'none'}; DeepSaDe and the constructions {settings['epochs']} epochs, "
        f"batch {settings['batch_size']}, lr {settings['lr']}, max step {settings['max_step']}, margins "
        f"{', '.join(map(str, settings['margins']))}"
        + (" (x max label)" if settings.get("margin_relative_to_max_label") else "")
        + f"; baselines {settings['baseline_epochs']} epochs, same architecture, batch and lr, lambda grid "
          "0.1..0.9 trained side by side (smallest lambda with the fewest validation violations).",
        "- Overrides of the paper's protocol: "
        + (", ".join(f"{k} = {v}" for k, v in changed.items()) if changed else "none") + ".",
        f"- AdI: engine {config['adi_engine']} (z3 for asserts Marabou cannot express), a fixed seeded sample of "
        f"{config['adi_sample']} test rows per fold (the same rows for every method), eps "
        f"{', '.join(f'{e:g}' for e in config['adi_epsilons'])} in scaled units, {config['adi_timeout']:g} s per "
        "search; a timed-out search is 'unknown' and is left out of AdI (counted in brackets).",
        "- Training time: wall time of fit (DeepSaDe: initialisation + epochs, without the certificate; "
        "baselines: the whole lambda grid, 9 models side by side); the ratio is DeepSaDe / method on the same fold, "
        "averaged over folds.",
        f"- Machine: {machine_description()}.",
    ]
    return lines


def _solver_text(stats: dict[str, Any] | None) -> str:
    """DeepSaDe's last-layer statistics in one cell: how each update was found, and the time it took."""
    if not stats:
        return "-"
    parts = [f"{stats.get('iterations', 0)} updates"]
    for key, label in (("line_search_hits", "line search"), ("projection_hits", "projection")):
        if key in stats:
            parts.append(f"{label} {stats[key]}")
    if "maxsmt_calls" in stats:
        parts.append(f"MaxSMT {stats.get('maxsmt_successes', 0)} ok of {stats['maxsmt_calls']}")
    parts.append(f"restarts {stats.get('restarts', 0)}")
    if stats.get("cegis_points"):
        parts.append(f"CEGIS points {stats['cegis_points']}")
    parts.append(f"solver {stats.get('solver_seconds', 0.0):.1f} s, checks {stats.get('check_seconds', 0.0):.1f} s")
    return ", ".join(parts)


def fold_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    case = get_usecase(results[0]["usecase"])
    header = ["fold", "method", *[f"{METRIC_LABELS[m]} (corr. / all)" for m in case.metrics],
              "test viol.", "train viol.", "AdI per eps (cex/safe/unk)", "certificate", "exact check",
              "train s", "best epoch", "lambda", "DeepSaDe last-layer updates"]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([str(r["fold"]), r["method"], *["-"] * len(case.metrics), "-", "-", "-", "not applicable",
                         "-", "-", "-", "-", r.get("reason", "")[:120].replace("|", "/")])
            continue
        test = r["test"]
        adi = "-" if not r.get("adi") else "; ".join(
            f"{e['epsilon']:g}: {e['counterexample']}/{e['verified']}/{e['unknown']}" for e in r["adi"]["per_epsilon"])
        solver = _solver_text(r.get("solver"))
        rows.append([
            str(r["fold"]), r["method"],
            *[f"{_fmt(test.get(m + '_corrected'))} / {_fmt(test.get(m))}" for m in case.metrics],
            str(test["violating_rows"]), str(r["train_violating_rows"]), adi, r["certificate"], r["exact_check"],
            f"{r['train_seconds']:.1f}", str(r.get("best_epoch", "-")),
            "-" if r.get("lambda") is None else f"{r['lambda']:g}", solver,
        ])
    return header, rows


def write_report(out: str | Path) -> Path:
    """Write ``runs.csv``, the plots and ``report.md`` for the results stored under ``out``."""
    out = Path(out)
    results = load_results(out)
    write_runs_csv(out)
    if not results:
        raise FileNotFoundError(f"no fold results under {out / 'folds'}")
    name = results[0]["usecase"]
    case = get_usecase(name)
    plots = write_plots(out, results)
    lines = [f"# {name}: DeepSaDe and baselines beside the published figures", "",
             f"Constraint `{case.constraint}`, task {case.task}, targets "
             f"{', '.join(case.targets) if len(case.targets) <= 5 else f'{len(case.targets)} columns'}.", ""]
    lines += ["## What was run", "", *_describe_run(results), ""]
    lines += ["## Results (mean over the folds run) beside the published figures", ""]
    lines += markdown_table(SUMMARY_HEADER, summary_rows(name, results))
    lines += ["", "Published: DeepSaDe paper (AAAI 2024), mean of 5 x 5 folds, Intel Xeon Silver 4214, as in "
              "shared/ANCHORS.md. 'corrected': test rows whose true label satisfies the rule; 'certified': folds "
              "whose model carries a DeepSaDe certificate (baselines have none by construction).", ""]
    lines += ["## Per fold", ""]
    header, rows = fold_rows(results)
    lines += markdown_table(header, rows)
    lines += ["", "'exact check' re-checks every model (baselines too) over the whole domain box with the "
              "certificate's exact procedure: 'certified' means no input in the box breaks the rule.", ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"- `{p.name}`: {caption}" for p, caption in plots]
        lines += [""] + [f"![{p.stem}]({p.name})" for p, _ in plots] + [""]
    notes = out / "notes.md"
    if notes.is_file():
        lines += ["## Notes", "", notes.read_text(encoding="utf-8").strip(), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ---- the summary over use cases ----------------------------------------------------------------------------


def write_summary(root: str | Path, names: Sequence[str] | None = None, command: str | None = None) -> Path:
    """``root/README.md``: every use case folder under ``root`` in one table beside the published figures."""
    root = Path(root)
    names = list(names) if names else [n for n in USECASES if (root / n / "folds").is_dir()]
    all_rows: list[list[str]] = []
    runs: list[str] = []
    notes: list[str] = []
    for name in names:
        results = load_results(root / name)
        if not results:
            continue
        all_rows += summary_rows(name, results)
        runs.append(f"### {name}")
        runs += _describe_run(results)[:5]
        runs.append(f"- Full report: [{name}/report.md]({name}/report.md), per fold x method: "
                    f"[{name}/runs.csv]({name}/runs.csv).")
        runs.append("")
        note = root / name / "notes.md"
        if note.is_file():
            notes += [f"### {name}", "", note.read_text(encoding="utf-8").strip(), ""]
    lines = ["# Reproduction of the DeepSaDe paper's use cases", ""]
    if command:
        lines += ["Regenerate everything here with:", "", "```bash", command, "```", ""]
    lines += [f"Machine: {machine_description()}.", ""]
    lines += ["## Ours beside the published figures", ""]
    lines += markdown_table(SUMMARY_HEADER, all_rows)
    lines += ["", "Published: DeepSaDe paper (AAAI 2024), mean of 5 repetitions x 5 folds on an Intel Xeon Silver "
              "4214 (shared/ANCHORS.md). Ours: mean over the folds run here (see below). 'corrected': test rows "
              "whose true label satisfies the rule. Time ratio: DeepSaDe training time / the method's, on the same "
              "fold in the same run; the published ratio is against the baseline marked.", ""]
    lines += ["## What was run", "", *runs]
    if notes:
        lines += ["## Notes per use case", "", *notes]
    path = root / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
