"""Benchmark: Adversity Index of unconstrained models on the real UC1 and UC2 data, per engine.

Trains an unconstrained SkipMLP per use case with plain torch (MSE / logistic loss, no constraint,
the paper's architectures), then measures AdI at eps 0.1 and 0.01 (scaled units) on a seeded
random sample of held-out rows (500 by default), with

- ``marabou``: the full pipeline (random points first, then the sound bound pre-check, then Marabou),
- ``marabou-solver``: Marabou on every ball (no sampling, no bound pre-check), as in the paper,
- ``z3``: the full pipeline with the exact z3 engine, on the first ``--z3-sample`` rows of the sample,
- ``z3-solver``: z3 alone on every ball, on the first ``--z3-solver-sample`` rows,

and checks that the engines agree wherever both decided. Any model directory passed with ``--model``
is measured the same way on its use case's data. Writes ``results/bench_adi.md`` and ``.csv``.

    python scripts/bench_adi.py [--data ../shared/data] [--sample 500] [--z3-sample 100] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepsade.artifact import ModelArtifact, load  # noqa: E402
from deepsade.ingest import prepare, read_csv  # noqa: E402
from deepsade.network import SkipMLP  # noqa: E402
from deepsade.spec import parse_spec_text  # noqa: E402
from deepsade.verification.adi import adversity_index  # noqa: E402

UC1_TARGETS = ["All_Food_Expenses", "Going_Out_Expenses", "Shopping_Expenses", "Necessary_Expenses",
               "Miscellaneous_Expenses"]
UC1_INLINE = """(declare-const |Total Household Income| Real)
(declare-const All_Food_Expenses Real)(declare-const Going_Out_Expenses Real)(declare-const Shopping_Expenses Real)
(declare-const Necessary_Expenses Real)(declare-const Miscellaneous_Expenses Real)
(assert (<= (+ All_Food_Expenses Going_Out_Expenses Shopping_Expenses Necessary_Expenses Miscellaneous_Expenses)
            |Total Household Income|))
(assert (<= Going_Out_Expenses (* 0.05 |Total Household Income|)))
"""
UC2_INLINE = """(declare-const ApplicantIncome Real)(declare-const Credit_History Real)(declare-const Loan_Status Real)
(assert (=> (and (< ApplicantIncome 5000.0) (= Credit_History 0.0)) (< Loan_Status 0.0)))
"""
USE_CASES = {
    "UC1": {"file": "uc1_expenses.csv", "targets": UC1_TARGETS, "positive": None, "hidden": [50, 50, 14],
            "constraint": "deepsade/constraints/uc1_expenses.smt2", "inline": UC1_INLINE, "epochs": 10},
    "UC2": {"file": "uc2_loan.csv", "targets": ["Loan_Status"], "positive": "Y", "hidden": [50, 30, 10],
            "constraint": "deepsade/constraints/uc2_loan.smt2", "inline": UC2_INLINE, "epochs": 400},
}


def constraint_text(case: dict) -> tuple[str, str]:
    path = REPO / case["constraint"]
    if path.exists():
        return path.read_text(encoding="utf-8"), case["constraint"]
    return case["inline"], "inline copy (constraint file absent)"


def train_unconstrained(data, hidden: list[int], mapped: list[int], epochs: int, seed: int,
                        train_rows: np.ndarray) -> tuple[SkipMLP, float]:
    """Plain torch: Adam, mini-batches of 64, MSE (regression, scaled units) or logistic loss (binary)."""
    torch.manual_seed(seed)
    model = SkipMLP(len(data.encoding.input_names), hidden, len(data.encoding.output_names), mapped)
    x = torch.tensor(data.inputs[train_rows], dtype=torch.float32)
    y = torch.tensor(np.asarray(data.targets, dtype=np.float64).reshape(len(data.inputs), -1)[train_rows],
                     dtype=torch.float32)
    loss_fn = torch.nn.MSELoss() if data.encoding.task == "regression" else torch.nn.BCEWithLogitsLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model, time.perf_counter() - start


def measure(name: str, model_label: str, artifact: ModelArtifact, inputs: np.ndarray, rows: np.ndarray,
            args: argparse.Namespace) -> tuple[list[dict], dict[str, pd.DataFrame]]:
    modes = {
        "marabou": dict(engine="marabou", presample=64, bound_check=True, n=len(inputs)),
        "marabou-solver": dict(engine="marabou", presample=0, bound_check=False, n=len(inputs)),
        "z3": dict(engine="z3", presample=64, bound_check=True, n=min(args.z3_sample, len(inputs))),
        "z3-solver": dict(engine="z3", presample=0, bound_check=False, n=min(args.z3_solver_sample, len(inputs))),
    }
    records, tables = [], {}
    for mode in args.modes:
        setting = modes[mode]
        n = setting["n"]
        if n == 0:
            continue
        print(f"[{name} / {model_label}] {mode}: {n} instances, eps {args.epsilon}", flush=True)
        report = adversity_index(artifact, inputs[:n], args.epsilon, engine=setting["engine"], timeout=args.timeout,
                                 jobs=args.jobs, presample=setting["presample"], bound_check=setting["bound_check"],
                                 seed=args.seed, progress=not args.quiet, row_ids=rows[:n].tolist())
        tables[mode] = report.table
        for part in report.summary["epsilons"]:
            records.append({
                "use_case": name, "model": model_label, "mode": mode, "engine": setting["engine"],
                "epsilon": part["epsilon"], "instances": part["instances"], "adi": part["adi"],
                "counterexample": part["counterexample"], "verified": part["verified"], "unknown": part["unknown"],
                "outside": part["outside"], "adi_if_unknown_unsafe": part["adi_if_unknown_unsafe"],
                "s_per_instance_mean": part["seconds_mean"], "s_per_instance_max": part["seconds_max"],
                "decided_by": " ".join(f"{k}:{v}" for k, v in sorted(part["decided_by"].items())),
                "wall_s": report.summary["wall_seconds"], "jobs": args.jobs,
            })
    return records, tables


def agreement(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Instances where two modes both decided but disagree (there should be none)."""
    lines = []
    names = list(tables)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            merged = tables[a].merge(tables[b], on=["row", "epsilon"], suffixes=("_a", "_b"))
            decided = merged[merged.status_a.isin(["verified", "counterexample"])
                             & merged.status_b.isin(["verified", "counterexample"])]
            clash = decided[decided.status_a != decided.status_b]
            lines.append(f"{a} vs {b}: {len(decided)} instance x epsilon pairs decided by both, "
                         f"{len(clash)} disagreements")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder with the CSV files")
    parser.add_argument("--use-cases", nargs="+", default=["UC1", "UC2"], choices=list(USE_CASES))
    parser.add_argument("--sample", type=int, default=500, help="held-out rows checked per use case")
    parser.add_argument("--z3-sample", type=int, default=100, help="rows of that sample also checked with z3")
    parser.add_argument("--z3-solver-sample", type=int, default=30,
                        help="rows of that sample checked with z3 alone (no sampling, no bound pre-check)")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.1, 0.01])
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per search")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["marabou", "marabou-solver", "z3", "z3-solver"],
                        choices=["marabou", "marabou-solver", "z3", "z3-solver"])
    parser.add_argument("--model", action="append", default=[],
                        help="also measure this model directory (UC found from its targets)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply the training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "results"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # training is small; idle OpenMP threads spinning slow the solver workers

    records, notes = [], []
    extra = [(Path(m), load(m)) for m in args.model]
    for name in args.use_cases:
        case = USE_CASES[name]
        path = Path(args.data) / case["file"]
        if not path.exists():
            notes.append(f"{name}: {path} not found, skipped")
            print(notes[-1])
            continue
        data = prepare(read_csv(path), case["targets"], positive=case["positive"])
        text, source = constraint_text(case)
        spec = parse_spec_text(text, data.encoding)
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(data.n_rows)
        cut = int(0.7 * data.n_rows)
        train_rows, held_out = order[:cut], order[cut:]
        sample = np.sort(rng.choice(held_out, size=min(args.sample, len(held_out)), replace=False))
        epochs = max(1, round(case["epochs"] * args.epochs_scale))
        model, seconds = train_unconstrained(data, case["hidden"], spec.mapped_features, epochs, args.seed,
                                             train_rows)
        with torch.no_grad():
            outputs = model(torch.tensor(data.inputs[held_out], dtype=torch.float32)).double().numpy()
        truth = spec.evaluate_scaled(data.inputs[held_out], outputs)
        notes.append(f"{name}: {data.n_rows} rows ({data.rows_dropped} dropped for missing values), constraint "
                     f"{source}; unconstrained SkipMLP {case['hidden']} trained {epochs} epochs in {seconds:.1f} s; "
                     f"it breaks the constraint on {int((~truth.all(axis=1)).sum())} of {len(held_out)} held-out rows; "
                     f"AdI on a random sample of {len(sample)} held-out rows (seed {args.seed})")
        print(notes[-1], flush=True)
        artifact = ModelArtifact(model, data.encoding, data.domain, text, method="unconstrained")
        found, tables = measure(name, "unconstrained", artifact, data.inputs[sample], sample, args)
        records += found
        notes += [f"{name} / unconstrained: {line}" for line in agreement(tables)]
        for directory, other in extra:
            if other.encoding.target_columns != case["targets"]:
                continue
            inputs = other.encoding.scale_inputs(other.encoding.encode_inputs(data.frame.iloc[sample]))
            found, tables = measure(name, directory.name, other, inputs, sample, args)
            records += found
            notes += [f"{name} / {directory.name}: {line}" for line in agreement(tables)]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(records)
    table.to_csv(out / "bench_adi.csv", index=False)
    write_markdown(out / "bench_adi.md", table, notes, args)
    print(f"wrote {out / 'bench_adi.md'} and {out / 'bench_adi.csv'}")


def write_markdown(path: Path, table: pd.DataFrame, notes: list[str], args: argparse.Namespace) -> None:
    lines = [
        "# Adversity Index: unconstrained models on UC1 / UC2, per engine",
        "",
        f"Command: `python scripts/bench_adi.py {' '.join(sys.argv[1:])}`",
        f"Machine: {os.cpu_count()} cores, {args.jobs} worker processes; timeout {args.timeout:g} s "
        "per search. AdI = counterexamples / (counterexamples + verified); unknown (timeout) rows are counted "
        "apart, never as safe. Epsilon in scaled units. Times are search seconds per instance and epsilon "
        "(one process; an epsilon answered from another epsilon's result costs ~0).",
        "",
        "Published for comparison (penalty model REG on UC1, paper): AdI 0.978 at eps 0.1, 0.678 at eps 0.01.",
        "",
    ]
    if len(table):
        shown = table[["use_case", "model", "mode", "epsilon", "instances", "adi", "counterexample", "verified",
                       "unknown", "s_per_instance_mean", "s_per_instance_max", "decided_by", "wall_s"]].copy()
        shown["adi"] = shown["adi"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
        for column in ("s_per_instance_mean", "s_per_instance_max"):
            shown[column] = shown[column].map(lambda v: f"{v:.4f}")
        header = "| " + " | ".join(shown.columns) + " |"
        lines += [header, "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
