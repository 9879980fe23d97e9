"""Fingerprint what the trainer produces, so a restructuring can be shown to change nothing.

Runs seeded trainings through the public CLI (which a restructuring must not change) with ``--paper``
(the trainer as it was before the price-of-the-guarantee levers changed the defaults) and writes,
per case, the sha256 of every stored ``weights.safetensors`` and the certificate verdict. Cases:

- ``demo``, the two toy rule files on data this script generates itself;
- UC2 fold 1 at the paper's settings; UC3, UC4, UC5 fold 1 with reduced epochs (``usecase run``);
- with ``--no-projection`` (z3 in the loop): the toys and UC2's rule on its real data, recording the
  verdict and how many rows the model predicts right, since z3's answers may depend on term order.
  Each z3 call there has a wall-clock budget (``--solver-timeout``, 10 s by default), so on a loaded machine
  a call that runs out of time changes the path; a large ``--solver-timeout`` takes the load out of it.

Usage::

    python scripts/check_invariance.py --out results/invariance/before.json
    python scripts/check_invariance.py --out /tmp/after.json --compare results/invariance/before.json
    python scripts/check_invariance.py --out /tmp/after.json --compare results/invariance/before.json \
        --skip-hashes --solver-timeout 600      # the --no-projection part only, independent of the load
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEEPSADE = [sys.executable, "-m", "deepsade.cli"]


def toy_regression(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(1.0, 10.0, size=(n, 3))  # x1 >= 1: room for 0 <= y <= x1 beyond the margin
    y = x[:, 0] * np.clip(0.2 + 0.06 * x[:, 1] - 0.02 * x[:, 2] + 0.03 * rng.standard_normal(n), 0, 0.95)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y}).round(4)


def toy_binary(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 3))
    p = 1.0 / (1.0 + np.exp(-6.0 * (x[:, 0] + x[:, 1] - 0.5 * x[:, 2] - 0.75)))
    label = np.where(rng.random(n) < p, "yes", "no")
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]}).round(4).assign(label=label)


def run(args: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(DEEPSADE + args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"deepsade {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def fingerprint(folder: Path) -> dict:
    weights = sorted(folder.rglob("weights.safetensors"))
    if not weights:
        raise SystemExit(f"no weights.safetensors under {folder}")
    out = {}
    for path in weights:
        cert = json.loads((path.parent / "certificate.json").read_text())
        out[str(path.parent.relative_to(folder))] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "verdict": cert.get("verdict"),
        }
    return out


def correct_rows(model: Path, csv: Path, target: str, tmp: Path, positive: str | None) -> int:
    """Rows of ``csv`` predicted right (classification) or within 10% of the label's range (regression)."""
    pred_path = tmp / f"{model.name}.pred.csv"
    run(["predict", str(model), str(csv), "--out", str(pred_path)])
    pred = pd.read_csv(pred_path)
    data = pd.read_csv(csv)
    if positive is None:
        tol = 0.1 * float(data[target].max() - data[target].min())
        return int((np.abs(pred[f"predicted_{target}"].to_numpy() - data[target].to_numpy()) <= tol).sum())
    return int((pred[f"predicted_{target}"].astype(str).to_numpy() == data[target].astype(str).to_numpy()).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--compare", type=Path, help="an earlier output to compare against")
    parser.add_argument("--skip-no-projection", action="store_true")
    parser.add_argument("--skip-hashes", action="store_true", help="only the --no-projection runs")
    parser.add_argument("--solver-timeout", type=float, default=None,
                        help="seconds per solver call in the --no-projection runs (default: the trainer's)")
    opts = parser.parse_args()

    results: dict = {"hashes": {}, "no_projection": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        reg_csv, bin_csv = tmp / "toy_reg.csv", tmp / "toy_bin.csv"
        toy_regression().to_csv(reg_csv, index=False)
        toy_binary().to_csv(bin_csv, index=False)
        toys = {
            "toy_reg": [str(reg_csv), "--constraint", "deepsade/constraints/example_bounds.smt2", "--target", "y"],
            "toy_bin": [str(bin_csv), "--constraint", "deepsade/constraints/example_implication.smt2",
                        "--target", "label", "--positive", "yes"],
        }
        small = ["--hidden", "16,16", "--epochs", "10", "--batch-size", "10", "--seed", "0", "--quiet", "--paper"]

        if not opts.skip_hashes:
            run(["demo", "--out", str(tmp / "demo"), "--quiet", "--paper"])
            results["hashes"]["demo"] = fingerprint(tmp / "demo")
            for name, args in toys.items():
                run(["train", *args, *small, "--out", str(tmp / name)])
                results["hashes"][name] = fingerprint(tmp / name)
            for uc, epochs in (("UC2", None), ("UC3", 10), ("UC4", 5), ("UC5", 5)):
                out = tmp / uc
                args = ["usecase", "run", uc, "--methods", "deepsade", "--folds", "1", "--adi-sample", "0",
                        "--out", str(out), "--quiet", "--paper"]
                if epochs is not None:
                    args += ["--epochs", str(epochs)]
                run(args)
                results["hashes"][uc] = fingerprint(out)
                print(uc, "done", flush=True)

        if not opts.skip_no_projection:
            data_dir = Path(os.environ["DEEPSADE_DATA"]) if os.environ.get("DEEPSADE_DATA") else ROOT.parent / "shared" / "data"
            uc2_csv = data_dir / "uc2_loan.csv"
            cases = dict(toys)
            if uc2_csv.exists():
                cases["uc2_real"] = [str(uc2_csv), "--constraint", "deepsade/constraints/uc2_loan.smt2",
                                     "--target", "Loan_Status", "--positive", "Y"]
            for name, args in cases.items():
                model = tmp / f"{name}_noproj"
                extra = ["--hidden", "16,16", "--epochs", "3", "--batch-size", "10", "--seed", "0", "--quiet",
                         "--paper"]
                if opts.solver_timeout is not None:
                    extra += ["--solver-timeout", str(opts.solver_timeout)]
                run(["train", *args, *extra, "--no-projection", "--out", str(model)])
                csv = Path(args[0])
                target = args[args.index("--target") + 1]
                positive = args[args.index("--positive") + 1] if "--positive" in args else None
                verdict = json.loads((model / "certificate.json").read_text()).get("verdict")
                results["no_projection"][name] = {
                    "verdict": verdict, "correct_rows": correct_rows(model, csv, target, tmp, positive)}
                print(name, "no-projection done", flush=True)

    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    if opts.compare:
        before = json.loads(opts.compare.read_text())
        same = opts.skip_hashes or before["hashes"] == results["hashes"]
        if not opts.skip_hashes:
            print("weights identical:" if same else "WEIGHTS DIFFER:", same)
        for name, now in results["no_projection"].items():
            was = before["no_projection"].get(name)
            print(f"{name} --no-projection: before {was}, after {now}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
