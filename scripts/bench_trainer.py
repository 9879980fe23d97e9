"""Benchmark the DeepSaDe trainer against the same network trained without constraints, side by side.

For each use case (UC1, UC2 and UC5 on the real files when present, UC3 on its generator, UC4 on
scikit-learn's digits), one fold of the
paper's protocol: rows with a missing value dropped, a seeded shuffle, 70/20/10 train/test/validation,
UC2/UC3 labels of 40 premise rows of the training part flipped so the training data breaks the rule;
encoding and domain fitted on the training part; the paper's settings (ANCHORS.md). Then:

- DeepSaDe (one row per variant: ``projection`` = our default loop, line search -> LP projection ->
  MaxSMT; ``paper`` = line search -> MaxSMT as published) and ``ffn`` (the same network, plain SGD, same
  epochs, batch size and learning rate) are trained one after the other in this process; the ratio of
  their wall times is the figure the issue asks for;
- test metrics (corrected = rows whose true label satisfies the constraint), violations on the test
  data, the certificate's verdict, and the trainer's counts (line-search hits, projections, MaxSMT
  calls and successes, restarts, solver seconds);
- per strategy (dual / cegis / qe / quantified, where it applies, quantified with a short cap): the
  median time of one line-search check (5 candidates), of one projection step where the strategy has one,
  and of one MaxSMT step, and how often each step found weights, on ``--probe-batches`` training batches
  with the trained network's latent box.

Writes ``<out>.md`` and ``<out>.csv`` (and ``<out>_strategies.csv``).

    python scripts/bench_trainer.py [--data ../shared/data] [--usecases UC2 UC1 UC3] [--variants projection paper]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepsade import usecases  # noqa: E402
from deepsade.encoding.dual import to_dual  # noqa: E402
from deepsade.encoding.registry import user_choices  # noqa: E402
from deepsade.estimator import DeepSaDe  # noqa: E402
from deepsade.ingest import prepare  # noqa: E402
from deepsade.losses import data_loss  # noqa: E402
from deepsade.metrics import evaluate_model  # noqa: E402
from deepsade.smtlib import read_constraint_file  # noqa: E402
from deepsade.spec import parse_spec  # noqa: E402
from deepsade.training.last_layer import _as_float32, _last_layer, soft_clauses  # noqa: E402
from deepsade.training.loop import DeepSaDeTrainer  # noqa: E402
from deepsade.training.settings import EpochStats, TrainSettings  # noqa: E402
from deepsade.usecases.report import METRIC_LABELS  # noqa: E402

METRIC = {"UC1": "mse", "UC2": "accuracy", "UC3": "accuracy", "UC4": "jaccard", "UC5": "jaccard"}


def published_deepsade(name: str) -> tuple[str, float | str, str]:
    """The use case's published DeepSaDe figures: (metric, training seconds per fold, DeepSaDe / baseline time)."""
    case = usecases.get(name)
    pub = case.published.get("deepsade")
    if pub is None or name not in METRIC:
        return "-", "-", "-"
    key = METRIC[name]
    ratio = f"{case.published_ratio[1]:g}x" if case.published_ratio else "-"
    return f"{METRIC_LABELS[key]} {pub.metrics[key]:g}", pub.seconds, ratio


def split(frame: pd.DataFrame, case, seed: int):
    order = np.random.default_rng(seed).permutation(len(frame))
    n_train, n_test = int(round(0.7 * len(frame))), int(round(0.2 * len(frame)))
    parts = [frame.iloc[order[a:b]].reset_index(drop=True)
             for a, b in ((0, n_train), (n_train, n_train + n_test), (n_train + n_test, len(frame)))]
    if case.inject_violations is not None:
        parts[0] = case.inject_violations(parts[0], n=40, seed=seed)
    return parts


def load_case(name: str, data_dir, rows: int | None, seed: int):
    case = usecases.get(name)
    real = case.load_real(data_dir)
    source = f"real {case.real_file}" if real is not None else f"generator ({name}.generate)"
    if real is None and case.bundled_data is not None:  # UC4: built from scikit-learn's digits
        real, source = case.load(data_dir, rows, seed), f"{name}.load (scikit-learn digits)"
    frame = real if real is not None else case.generate(rows or 800, seed)
    frame = frame.dropna().reset_index(drop=True)
    if rows and len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).reset_index(drop=True)
        source += f", seeded sample of {rows} rows"
    return case, frame, source


def prepare_splits(case, frame: pd.DataFrame, seed: int):
    train_frame, test_frame, val_frame = split(frame, case, seed)
    kw = {"positive": case.positive} if case.positive else {}
    # UC4: a pixel can be blank in every training strip; such a column carries nothing and cannot be scaled
    features = [c for c in train_frame.columns if c not in case.targets and train_frame[c].nunique() > 1]
    train = prepare(train_frame, list(case.targets), features, task=case.task, **kw)
    test = prepare(test_frame, list(case.targets), features, encoding=train.encoding, domain=train.domain)
    val = prepare(val_frame, list(case.targets), features, encoding=train.encoding, domain=train.domain)
    return train, test, val


def estimator(case, method: str, epochs: int, seed: int, projection: bool = True) -> DeepSaDe:
    s = case.settings
    return DeepSaDe(case.constraint_path, list(case.targets), task=case.task, positive=case.positive,
                    method=method, hidden=tuple(s["hidden"]), epochs=epochs, batch_size=s["batch_size"], lr=s["lr"],
                    max_step=s["max_step"], margins=tuple(s["margins"]), projection=projection, seed=seed)


def run_method(case, name, method, variant, train, test, val, epochs, seed) -> tuple[dict, object]:
    est = estimator(case, method, epochs, seed, projection=(variant != "paper"))
    started = time.perf_counter()
    est.fit_splits(train, val)
    seconds = time.perf_counter() - started
    art = est.artifact_
    metrics = evaluate_model(art, test)
    key = METRIC[name]
    history = art.history or []
    total = lambda field: int(sum(h.get(field, 0) for h in history))  # noqa: E731
    row = {
        "usecase": name, "method": method, "variant": variant if method == "deepsade" else "-",
        "epochs": epochs, "batch_size": case.settings["batch_size"], "n_train": train.n_rows,
        "n_test": test.n_rows, "train_seconds": round(seconds, 2),
        "test_metric": key, "test_value": metrics[key], "test_value_corrected": metrics[f"{key}_corrected"],
        "test_violating_rows": metrics["violating_rows"], "certificate": metrics["certificate"],
        "iterations": total("iterations"), "line_search_hits": total("line_search_hits"),
        "projection_hits": total("projection_hits"), "maxsmt_calls": total("maxsmt_calls"),
        "maxsmt_successes": total("maxsmt_successes"), "restarts": total("restarts"),
        "solver_seconds": round(sum(h.get("solver_seconds", 0.0) for h in history), 2),
        "check_seconds": round(sum(h.get("check_seconds", 0.0) for h in history), 2),
    }
    print(f"{name} {method:>8} {row['variant']:>10}: {seconds:8.1f} s, {key} {metrics[key]:.4f} "
          f"(corrected {metrics[f'{key}_corrected']:.4f}), test violations {metrics['violating_rows']}, "
          f"certificate {metrics['certificate']}", flush=True)
    return row, art


def applicable_strategies(spec, layout) -> list[str]:
    every_dual = all(to_dual(a, layout) is not None for a in spec.asserts)
    # auto = dual where every assert is dual; listed on its own where it means dual-or / cegis
    return [s for s in user_choices() if (s != "dual" or every_dual) and (s != "auto" or not every_dual)]


def probe_strategies(case, name, train, art, batches: int, cap: float, seed: int) -> list[dict]:
    """Median time of one line-search check and one MaxSMT step per strategy, with the trained network."""
    spec = parse_spec(read_constraint_file(str(case.constraint_path)), train.encoding)
    s = case.settings
    rows = []
    rng = np.random.default_rng(seed)
    base = TrainSettings(hidden=tuple(s["hidden"]), batch_size=s["batch_size"], lr=s["lr"], max_step=s["max_step"],
                         margins=tuple(s["margins"]), seed=seed)
    probe = DeepSaDeTrainer(spec, train, base)
    for strategy in applicable_strategies(spec, probe.layout):
        settings = replace(base, strategy=strategy, solver_timeout=cap if strategy in ("qe", "quantified") else 10.0)
        trainer = DeepSaDeTrainer(spec, train, settings)
        trainer.model.load_state_dict(art.model.state_dict())
        check_times, step_times, successes = [], [], 0
        projection_times, projection_ok = [], 0
        x_all = torch.as_tensor(train.inputs, dtype=torch.float32)
        y_all = torch.as_tensor(train.targets)
        for _ in range(batches):
            batch = torch.as_tensor(rng.choice(train.n_rows, size=s["batch_size"], replace=False))
            trainer.model.zero_grad()
            data_loss(trainer.task, trainer.model(x_all[batch]), y_all[batch]).backward()
            weights, biases = _last_layer(trainer.model)
            grad_w = trainer.model.last.weight.grad.double().numpy()
            grad_b = trainer.model.last.bias.grad.double().numpy()
            box = trainer.box()
            fractions = np.arange(5, 0, -1) / 5
            cw = _as_float32(weights[None] - s["lr"] * fractions[:, None, None] * grad_w[None])
            cb = _as_float32(biases[None] - s["lr"] * fractions[:, None] * grad_b[None])
            t0 = time.perf_counter()
            trainer.encoder.check_candidates(cw, cb, box[0], box[1], trainer.check_margin, settings.solver_timeout,
                                             sufficient_only=trainer.can_project)  # as the trainer's line search
            check_times.append(time.perf_counter() - t0)
            if trainer.can_project:
                t0 = time.perf_counter()
                projected = trainer.project(cw[0], cb[0], box, (_as_float32(weights), _as_float32(biases)))
                ok = projected is not None and trainer.satisfied(_as_float32(projected[0]), _as_float32(projected[1]),
                                                                 box)
                projection_times.append(time.perf_counter() - t0)
                projection_ok += ok
            with torch.no_grad():
                latent = trainer.model.latent(x_all[batch]).double().numpy()
            targets = y_all[batch].numpy() if trainer.task == "multiclass" else y_all[batch].double().numpy()
            low, high = trainer.gradient_bounds(weights, biases, grad_w, grad_b)
            soft = soft_clauses(trainer.task, latent, targets, settings.margins, trainer.weights_vars,
                                trainer.bias_vars, trainer.label_scale, reachable=(low, high))
            t0 = time.perf_counter()
            found = trainer.solve_last_layer(box, trainer.gradient_box(low, high), soft, "fu-malik", EpochStats(0))
            step_times.append(time.perf_counter() - t0)
            successes += isinstance(found, tuple)
        label = strategy if strategy != "auto" else "auto (" + "+".join(sorted(set(trainer.encoder.kinds.values()))) + ")"
        rows.append({"usecase": name, "strategy": label, "probes": batches,
                     "cap_s": settings.solver_timeout,
                     "median_check_s": round(float(np.median(check_times)), 4),
                     "median_projection_s": round(float(np.median(projection_times)), 4) if projection_times else None,
                     "projection_success_rate": round(projection_ok / batches, 3) if projection_times else None,
                     "median_maxsmt_s": round(float(np.median(step_times)), 4),
                     "maxsmt_success_rate": round(successes / batches, 3)})
        projection = (f"projection {rows[-1]['median_projection_s']:.4f} s, success {projection_ok}/{batches}, "
                      if projection_times else "")
        print(f"{name} strategy {label:>10}: check {rows[-1]['median_check_s']:.4f} s, {projection}MaxSMT step "
              f"{rows[-1]['median_maxsmt_s']:.3f} s, success {successes}/{batches}", flush=True)
    return rows


def write_report(out: Path, rows: list[dict], strategy_rows: list[dict], sources: dict, args) -> None:
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    pd.DataFrame(strategy_rows).to_csv(out.parent / f"{out.name}_strategies.csv", index=False)
    lines = [
        "# DeepSaDe trainer benchmark (scripts/bench_trainer.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} (one thread), "
        f"load average at the end {os.getloadavg()[0]:.1f} (the machine is shared; times are wall clock). "
        f"Seed {args.seed}, one fold: seeded 70/20/10 train/test/validation split, encoding and domain fitted on "
        "the training part; UC2/UC3: 40 premise rows of the training part relabelled to break the rule.",
        "",
    ]
    for name, source in sources.items():
        lines.append(f"- {name}: {source}")
    lines += ["", "| use case | method | variant | epochs | train rows | training s | ratio vs ffn | test metric | "
              "corrected | test violating rows | certificate | line search / projection / MaxSMT ok / calls / "
              "restarts | solver s | published DeepSaDe (metric, s, ratio) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, group in table.groupby("usecase", sort=False):
        ffn = group[group.method == "ffn"]["train_seconds"]
        ffn_s = float(ffn.iloc[0]) if len(ffn) else float("nan")
        for r in group.itertuples():
            ratio = f"{r.train_seconds / ffn_s:.1f}x" if r.method == "deepsade" and ffn_s == ffn_s else "-"
            counts = (f"{r.line_search_hits} / {r.projection_hits} / {r.maxsmt_successes} / {r.maxsmt_calls} / "
                      f"{r.restarts}" if r.method == "deepsade" else "-")
            published = published_deepsade(name)
            lines.append(f"| {name} | {r.method} | {r.variant} | {r.epochs} | {r.n_train} | {r.train_seconds:.1f} | "
                         f"{ratio} | {r.test_metric} {r.test_value:.4f} | {r.test_value_corrected:.4f} | "
                         f"{r.test_violating_rows} | {r.certificate} | {counts} | "
                         f"{r.solver_seconds if r.method == 'deepsade' else '-'} | "
                         f"{published[0]}, {published[1]} s, {published[2]} |")
    if strategy_rows:
        lines += ["", "## Per strategy, with the trained network's latent box",
                  "", "| use case | strategy | probes | cap s | median line-search check s (5 candidates) | "
                  "median projection step s | projection success rate | median MaxSMT step s | MaxSMT success rate |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in strategy_rows:
            none = lambda value: "-" if value is None else value  # noqa: E731
            lines.append(f"| {r['usecase']} | {r['strategy']} | {r['probes']} | {r['cap_s']} | {r['median_check_s']} | "
                         f"{none(r['median_projection_s'])} | {none(r['projection_success_rate'])} | "
                         f"{r['median_maxsmt_s']} | {r['maxsmt_success_rate']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"report written to {out.with_suffix('.md')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with the real files (default ../shared/data)")
    parser.add_argument("--usecases", nargs="+", default=["UC2", "UC1", "UC3", "UC4", "UC5"])
    parser.add_argument("--variants", nargs="+", default=["projection", "paper"], choices=["projection", "paper"])
    parser.add_argument("--paper-variant-on", nargs="+", default=["UC2", "UC3"],
                        help="use cases where the 'paper' variant also runs (UC1 takes over an hour that way)")
    parser.add_argument("--epochs", type=int, default=None, help="override the paper's epochs (all use cases)")
    parser.add_argument("--rows", type=int, default=None, help="seeded sample of rows per use case")
    parser.add_argument("--probe-batches", type=int, default=10)
    parser.add_argument("--probe-cap", type=float, default=5.0, help="solver cap for qe/quantified probes (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "results" / "bench_trainer"))
    args = parser.parse_args()

    # torch imports its compiler stack the first time an optimizer is built (seconds): pay it here, not
    # inside whichever method happens to be timed first
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    rows, strategy_rows, sources = [], [], {}
    out = Path(args.out)
    for name in args.usecases:
        case, frame, source = load_case(name, args.data, args.rows, args.seed)
        train, test, val = prepare_splits(case, frame, args.seed)
        epochs = args.epochs or case.settings["epochs"]
        sources[name] = f"{source}; {train.n_rows}/{test.n_rows}/{val.n_rows} train/test/validation rows"
        art = None
        for variant in args.variants:
            if variant == "paper" and name not in args.paper_variant_on:
                continue
            row, trained = run_method(case, name, "deepsade", variant, train, test, val, epochs, args.seed)
            rows.append(row)
            art = art or trained
        row, _ = run_method(case, name, "ffn", "-", train, test, val, epochs, args.seed)
        rows.append(row)
        if art is not None and args.probe_batches:
            strategy_rows += probe_strategies(case, name, train, art, args.probe_batches, args.probe_cap, args.seed)
        write_report(out, rows, strategy_rows, sources, args)  # after every use case: nothing finished is lost


if __name__ == "__main__":
    main()
