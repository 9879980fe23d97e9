"""Probe: do per-unit linear (CROWN-style) bounds of the last hidden layer make rules that bound the output
everywhere cheaper? (issue 13, failure mode 2)

For each problem of ``scripts/price_problems.py`` asked for (default: friedman, solar_plant, household_budget,
diabetes), on one 75/25 split: ffn and DeepSaDe with defaults; then, at the trained DeepSaDe weights,
(a) each conclusion row's worst case over its region through the trainer's IBP latent box against the same
    through the linear bounds (``deepsade.linear_bounds``, whole-domain and per-premise-region), both measured
    as the excess over the largest value sampled on the data and on random domain points;
(b) the last layer re-solved (``last_layer_solve.solve_last_layer``, same hidden layers) over the IBP-box
    polyhedron and over the linear-bound polyhedron; test MSE, violations, the exact linear-bound check
    (``linear_bound_rows.exact_check``) and the existing certificate (``certify_model``, IBP box).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python scripts/probe_linear_bounds.py --out results/linear_bounds_probe
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from price_problems import PROBLEMS  # noqa: E402

from deepsade.bounds import latent_box  # noqa: E402
from deepsade.certify import certify_model  # noqa: E402
from deepsade.estimator import DeepSaDe, split_validation  # noqa: E402
from deepsade.ingest import prepare  # noqa: E402
from deepsade.last_layer_polyhedron import polyhedron_from_duals  # noqa: E402
from deepsade.last_layer_solve import solve_last_layer  # noqa: E402
from deepsade.linear_bound_rows import exact_check, rows_from_duals  # noqa: E402
from deepsade.linear_bounds import linear_bounds  # noqa: E402
from deepsade.metrics import compute_metrics, predict_outputs  # noqa: E402
from deepsade.spec import parse_spec_text  # noqa: E402
from deepsade.training import DeepSaDeTrainer, TrainSettings  # noqa: E402


def splits(name: str, seed: int):
    problem = PROBLEMS[name]
    data = prepare(problem.build(), list(problem.targets), task=problem.task)
    order = np.random.default_rng(seed).permutation(data.n_rows)
    n_test = int(round(0.25 * data.n_rows))
    test, rest = data.subset(order[:n_test]), data.subset(order[n_test:])
    train, val = split_validation(rest, TrainSettings().val_fraction, 0)
    return problem, train, val, test


def quality(spec, model, data) -> tuple[float, int]:
    metrics = compute_metrics(spec, data, predict_outputs(model, data.inputs))
    return float(metrics["mse"]), int(metrics["violating_rows"])


def _last(model):
    return model.last.weight.detach().double().numpy().copy(), model.last.bias.detach().double().numpy().copy()


def _set_last(model, weights, biases) -> None:
    with torch.no_grad():
        model.last.weight.copy_(torch.as_tensor(weights, dtype=torch.float32))
        model.last.bias.copy_(torch.as_tensor(biases, dtype=torch.float32))


def tightness(trainer, model, duals, data_inputs: np.ndarray, log) -> list[dict]:
    """Per conclusion row: worst case through the IBP box, the linear bounds (domain / premise region), and the
    largest value sampled (data rows and 200k random domain points inside the row's region)."""
    low, high = trainer.domain_low, trainer.domain_high
    box = latent_box(model, low, high)
    n_out, n_lat = trainer.layout.n_out, trainer.layout.n_latent
    ibp = polyhedron_from_duals(duals, n_out, n_lat, box[0], box[1], 0.0)
    whole = rows_from_duals(model, duals, low, high, 0.0, per_region=False)
    region = rows_from_duals(model, duals, low, high, 0.0, per_region=True)
    weights, biases = _last(model)
    ibp_worst = ibp.worst_case(weights, biases)
    whole_worst = whole.best_split(weights, biases)[2]
    region_worst = region.best_split(weights, biases)[2]
    rng = np.random.default_rng(0)
    rows = []
    for r in range(region.n_rows):
        lo, hi = region.region_low[r], region.region_high[r]
        inside = data_inputs[np.all((data_inputs >= lo - 1e-12) & (data_inputs <= hi + 1e-12), axis=1)]
        x = np.vstack([inside, rng.uniform(lo, hi, (200_000, len(lo)))])
        with torch.no_grad():
            z = model.latent(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
        y = z @ weights.T + biases
        sampled = float((y @ region.out[r] + z @ region.lat[r]).max())
        row = {"row": r, "out": region.out[r].round(3).tolist(), "sampled_max": sampled,
               "ibp_worst": float(ibp_worst[r]), "linear_domain_worst": float(whole_worst[r]),
               "linear_region_worst": float(region_worst[r])}
        excess_ibp = row["ibp_worst"] - sampled
        row["excess_ibp"] = excess_ibp
        row["excess_linear_domain"] = row["linear_domain_worst"] - sampled
        row["excess_linear_region"] = row["linear_region_worst"] - sampled
        row["ratio_domain"] = row["excess_linear_domain"] / excess_ibp if excess_ibp > 0 else float("nan")
        row["ratio_region"] = row["excess_linear_region"] / excess_ibp if excess_ibp > 0 else float("nan")
        rows.append(row)
        log(f"    row {r} out {row['out']}: sampled {sampled:.4g}  ibp {row['ibp_worst']:.4g}  "
            f"linear {row['linear_domain_worst']:.4g} / region {row['linear_region_worst']:.4g}  "
            f"excess ratio {row['ratio_domain']:.3f} / {row['ratio_region']:.3f}")
    return rows


def unit_widths(trainer, model, train_inputs: np.ndarray) -> dict:
    """Summed widths of the last hidden layer's bounds over the domain: IBP box, linear bounds concretised
    per unit, and the training rows' own range."""
    h = trainer.layout.n_hidden
    box = latent_box(model, trainer.domain_low, trainer.domain_high)
    lin = linear_bounds(model, trainer.domain_low, trainer.domain_high)
    lin_low, lin_high = lin.concretised()
    with torch.no_grad():
        hid = model.latent(torch.as_tensor(train_inputs, dtype=torch.float32)).double().numpy()[:, :h]
    data = float((hid.max(0) - hid.min(0)).sum())
    x_low, x_high = trainer.domain_low, trainer.domain_high
    # the width of each unit's linear band (upper minus lower function) at its widest point of the domain
    band = np.maximum((lin.upper_coef - lin.lower_coef) * x_low, (lin.upper_coef - lin.lower_coef) * x_high).sum(1) \
        + lin.upper_const - lin.lower_const
    return {"ibp_width": float((box[1][:h] - box[0][:h]).sum()),
            "linear_concretised_width": float((np.maximum(lin_high, 0) - np.maximum(lin_low, 0)).sum()),
            "linear_band_width": float(band.sum()), "data_width": data}


def refit(trainer, model, duals, kind: str):
    """Re-solve the last layer over the IBP-box polyhedron (``kind`` = "ibp") or the linear-bound one
    ("linear"); returns (model, info). The model keeps the trained last layer when the solve fails."""
    refitted = copy.deepcopy(model)
    low, high = trainer.domain_low, trainer.domain_high
    margin = float(trainer.solve_margin)
    if kind == "ibp":
        box = latent_box(model, low, high)
        polyhedron = polyhedron_from_duals(duals, trainer.layout.n_out, trainer.layout.n_latent, box[0], box[1],
                                           margin)
    else:
        polyhedron = rows_from_duals(model, duals, low, high, margin, per_region=True)
    with torch.no_grad():
        latent = model.latent(torch.as_tensor(trainer.data.inputs, dtype=torch.float32)).double().numpy()
    t0 = time.perf_counter()
    fit = solve_last_layer(latent, np.asarray(trainer.data.targets, dtype=np.float64), "regression", polyhedron,
                           start=_last(model))
    info = {"status": fit.status if fit is not None else "none", "solver": fit.solver if fit else "",
            "refit_seconds": round(time.perf_counter() - t0, 2)}
    shares = None
    if fit is not None:
        _set_last(refitted, fit.weights, fit.biases)
        if kind == "linear":
            shares = polyhedron.best_split(fit.weights, fit.biases)[:2]
    return refitted, info, shares


def exact_verdicts(trainer, model, duals, spec, train, shares) -> dict:
    """The exact linear-bound check (per premise region; any share mix) and the existing certificate."""
    lo_exact, hi_exact = train.domain.scaled_exact(train.encoding)
    t0 = time.perf_counter()
    results = exact_check(model, duals, lo_exact, hi_exact, trainer.settings.output_margin, shares)
    linear_ok = all(r.holds for r in results)
    seconds = time.perf_counter() - t0
    certificate = certify_model(model, spec, train.encoding, train.domain, trainer.settings.output_margin)["verdict"]
    return {"exact_linear_check": "proven" if linear_ok else "not proven", "exact_check_seconds": round(seconds, 2),
            "certify_model (IBP box)": certificate}


def run_problem(name: str, settings: TrainSettings, seed: int, log) -> tuple[list[dict], list[dict], dict]:
    problem, train, val, test = splits(name, seed)
    text = problem.rule_file.read_text()
    spec = parse_spec_text(text, train.encoding)
    t0 = time.perf_counter()
    ffn = DeepSaDe(text, list(problem.targets), method="ffn", hidden=settings.hidden, epochs=settings.epochs,
                   batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed).fit_splits(train, val)
    ffn_test, ffn_viol = quality(spec, ffn.artifact_.model, test)
    quality_rows = [{"problem": name, "variant": "ffn", "test_mse": ffn_test, "test_violations": ffn_viol,
                     "seconds": round(time.perf_counter() - t0, 1)}]
    log(f"  ffn test MSE {ffn_test:.5g} viol {ffn_viol}")
    t0 = time.perf_counter()
    trainer = DeepSaDeTrainer(spec, train, settings)
    model = trainer.fit(val).model
    seconds = round(time.perf_counter() - t0, 1)
    kinds = set(trainer.encoder.kinds.values())
    if kinds != {"dual"}:
        log(f"  skipped: asserts served by {kinds}")
        return quality_rows, [], {}
    duals = list(trainer.encoder.duals.values())
    tight = [{"problem": name, **row} for row in tightness(trainer, model, duals, train.inputs, log)]
    widths = {"problem": name, **unit_widths(trainer, model, train.inputs)}
    log(f"  widths {widths}")
    variants = [("deepsade", model, {"seconds": seconds}, None)]
    for kind in ("ibp", "linear"):
        refitted, info, shares = refit(trainer, model, duals, kind)
        variants.append((f"deepsade + {kind} refit", refitted, info, shares))
    for variant, m, info, shares in variants:
        test_mse, viol = quality(spec, m, test)
        train_mse, _ = quality(spec, m, train)
        row = {"problem": name, "variant": variant, "train_mse": train_mse, "test_mse": test_mse,
               "test_violations": viol, **info, **exact_verdicts(trainer, m, duals, spec, train, shares)}
        quality_rows.append(row)
        log(f"  {variant:24s} train {train_mse:.5g} test {test_mse:.5g} viol {viol} {info} "
            f"{row['exact_linear_check']} / {row['certify_model (IBP box)']}")
    return quality_rows, tight, widths


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write(out: Path, quality_rows, tight_rows, width_rows, command: str, settings: TrainSettings) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, rows in (("", quality_rows), ("_rows", tight_rows), ("_widths", width_rows)):
        if rows:
            keys = list(dict.fromkeys(k for row in rows for k in row))
            with open(out.with_name(out.name + suffix + ".csv"), "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys)
                writer.writeheader()
                writer.writerows([{k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows])
    text = [
        "# Linear (CROWN-style) bounds of the last hidden layer: probe (issue 13, failure mode 2)\n",
        f"Command: `{command}`\n",
        f"Settings: DeepSaDe defaults (hidden {settings.hidden}, {settings.epochs} epochs, batch {settings.batch_size}, "
        f"lr {settings.lr}); ffn the same. One 75/25 split (seed 1). MSE in raw units.\n",
        "## (a) Worst case of each rule row at the trained weights\n",
        "excess = bound - largest sampled value (data rows in the row's region + 200k uniform points in it); "
        "ratio = linear excess / IBP excess (lower is tighter). `domain`: linear bounds over the whole domain, "
        "concretised over the premise's box; `region`: computed over the premise's box.\n",
        _table(tight_rows, ["problem", "row", "out", "sampled_max", "ibp_worst", "linear_domain_worst",
                            "linear_region_worst", "ratio_domain", "ratio_region"]), "",
        "## Last hidden layer: summed widths over the domain\n",
        _table(width_rows, ["problem", "ibp_width", "linear_concretised_width", "linear_band_width", "data_width"]), "",
        "## (b) Last layer refit over the IBP-box vs the linear-bound polyhedron (same hidden layers)\n",
        "`exact_linear_check`: exact rational check of every row through the linear bounds (the better of linear, "
        "box and the solver's mix, per premise region). `certify_model (IBP box)`: the existing certificate, which "
        "uses the whole-domain interval box: a model proven only through linear bounds reads `not certified` there.\n",
        _table(quality_rows, ["problem", "variant", "train_mse", "test_mse", "test_violations", "status",
                              "refit_seconds", "exact_linear_check", "certify_model (IBP box)", "seconds"]), ""]
    out.with_name(out.name + ".md").write_text("\n".join(text) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/linear_bounds_probe")
    parser.add_argument("--problems", default="friedman,solar_plant,household_budget,diabetes")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = TrainSettings() if args.epochs is None else replace(TrainSettings(), epochs=args.epochs)
    quality_rows, tight_rows, width_rows = [], [], []
    command = " ".join(["python", *sys.argv])
    for name in args.problems.split(","):
        print(name, flush=True)
        q, t, w = run_problem(name, settings, args.seed, lambda line: print(line, flush=True))
        quality_rows += q
        tight_rows += t
        width_rows += [w] if w else []
        write(Path(args.out), quality_rows, tight_rows, width_rows, command, settings)


if __name__ == "__main__":
    main()
