"""Probe: rule forms a practitioner writes that the fast paths did not take: equalities on the outputs (and
the band ``train``'s hint suggests instead), and a tolerance written with ``abs``.

Four generated problems, each trained as a new user would (``deepsade train`` with no hyper-parameter flag,
then ``--method ffn`` on the same 75/25 split) and compared with ``deepsade evaluate`` on the held-out rows:

- ``budget``: a household's housing, food and other spending from its income and size; the rule
  ``housing + food + other = income`` with housing and food >= 0, then the same with the equality as a band of
  3x the half-width the hint names;
- ``store``: a store's daily revenue from its status (open, closed, holiday), temperature and floor area; the
  rule "a closed store's revenue is 0", then the band ``revenue <= tol`` under the same premise (``tol`` 3x the
  half-width the hint names) with ``revenue >= 0`` everywhere;
- ``sales``: today's sales from yesterday's, the weekday and a promotion; the rule "within 50 of yesterday's
  value" written with ``abs``, and the same band written as two inequalities;
- ``speed``: an advised speed from an urban flag (0/1), lanes, curvature and traffic; the cap "50 in town,
  130 elsewhere" written with ``ite`` in one assert, and as one assert per case with its own premise (what
  auto's hint says), both with ``speed >= 0``.

Writes ``<out>/report.md`` and ``<out>/runs.csv``.

    OMP_NUM_THREADS=1 python scripts/probe_rule_forms.py --out results/rule_forms
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

BUDGET_RULE = """(declare-const income Real)
(declare-const housing Real)
(declare-const food Real)
(declare-const other Real)
{sum}
(assert (>= housing 0.0))
(assert (>= food 0.0))
"""
STORE_RULE = """(declare-const |status=closed| Real)
(declare-const revenue_eur Real)
(assert (=> (= |status=closed| 1.0) {conclusion}))
"""


def budget_rows(rng: np.random.Generator, n: int = 1200) -> pd.DataFrame:
    income = rng.uniform(1500, 9000, n).round(0)
    size = rng.integers(1, 6, n)
    housing = (0.3 * income + rng.normal(0, 150, n)).clip(200)
    food = (150 * size + 0.05 * income + rng.normal(0, 60, n)).clip(50)
    return pd.DataFrame({"income": income, "household_size": size, "housing": housing.round(2),
                         "food": food.round(2), "other": (income - housing - food).round(2)})


def store_rows(rng: np.random.Generator, n: int = 1500) -> pd.DataFrame:
    status = rng.choice(["open", "closed", "holiday"], n, p=[0.75, 0.15, 0.10])
    temperature = rng.normal(15, 9, n).round(1)
    area = rng.uniform(200, 2000, n).round(0)
    footfall = np.where(status == "closed", 0, rng.poisson(area * np.where(status == "holiday", 0.9, 0.5)))
    revenue = np.where(status == "closed", 0.0, (footfall * rng.gamma(4, 6, n)).round(0))
    return pd.DataFrame({"status": status, "temperature_c": temperature, "floor_area_m2": area,
                         "revenue_eur": revenue})


SALES_RULE = """(declare-const sales_yesterday Real)
(declare-const sales_today Real)
{band}
"""


def sales_rows(rng: np.random.Generator, n: int = 1500) -> pd.DataFrame:
    yesterday = rng.uniform(100, 1000, n).round(0)
    weekday = rng.integers(0, 7, n)
    promotion = rng.binomial(1, 0.2, n)
    today = (yesterday + rng.normal(0, 15, n) + 25 * promotion - 10 * (weekday >= 5)).round(0)
    return pd.DataFrame({"sales_yesterday": yesterday, "day_of_week": weekday, "promotion": promotion,
                         "sales_today": np.clip(today, yesterday - 50, yesterday + 50)})


SPEED_RULE = """(declare-const urban Real)
(declare-const advised_speed Real)
{cap}
(assert (>= advised_speed 0.0))
"""


def speed_rows(rng: np.random.Generator, n: int = 1500) -> pd.DataFrame:
    urban = rng.binomial(1, 0.4, n)
    lanes = rng.integers(1, 5, n)
    curvature = rng.uniform(0, 1, n).round(3)
    traffic = rng.uniform(0, 1, n).round(3)
    speed = np.where(urban == 1, 50 - 15 * traffic - 10 * curvature,
                     130 - 40 * traffic - 30 * curvature + 5 * lanes) + rng.normal(0, 5, n)
    return pd.DataFrame({"urban": urban, "lanes": lanes, "curvature": curvature, "traffic": traffic,
                         "advised_speed": np.minimum(speed, np.where(urban == 1, 50, 130)).round(1)})


def deepsade(*args: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepsade.cli", *args], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


def run(work: Path, name: str, rule: str, targets: str, method: str) -> dict:
    (work / f"{name}.smt2").write_text(rule, encoding="utf-8")
    model = work / f"{name}_{method}"
    code, output, seconds = deepsade("train", str(work / "train.csv"), "--constraint", str(work / f"{name}.smt2"),
                                     "--target", targets, "--task", "regression", "--method", method,
                                     "--out", str(model), "--force")
    row = {"problem": name, "method": method, "train_exit": code, "seconds": round(seconds, 1)}
    chosen = re.search(r"method auto: (\w+)", output)
    row["trained_as"] = chosen.group(1) if chosen else method
    verdict = re.search(r"certificate: (\w+)", output)
    row["certificate"] = verdict.group(1) if verdict else "none"
    floor = re.search(r"must exceed ([0-9.e+-]+) ", output)
    row["hint_band_floor"] = float(floor.group(1)) if floor else None
    row["error"] = output.strip().splitlines()[-1][:160] if code else ""
    if code == 0:
        deepsade("evaluate", str(model), str(work / "test.csv"), "--out", str(model / "evaluation.json"))
        metrics = json.loads((model / "evaluation.json").read_text(encoding="utf-8"))
        row["mse"] = metrics.get("mse")
        row["violations"] = metrics.get("violating_rows")
    return row


def split(frame: pd.DataFrame, work: Path) -> None:
    order = np.random.default_rng(1).permutation(len(frame))
    k = int(0.75 * len(frame))
    frame.iloc[order[:k]].to_csv(work / "train.csv", index=False)
    frame.iloc[order[k:]].to_csv(work / "test.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/probe_rule_forms"))
    args = parser.parse_args()
    rows = []
    for name, frame in (("budget", budget_rows(np.random.default_rng(3))),
                        ("store", store_rows(np.random.default_rng(11))),
                        ("sales", sales_rows(np.random.default_rng(5))),
                        ("speed", speed_rows(np.random.default_rng(9)))):
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        split(frame, work)
        if name == "budget":
            targets = "housing,food,other"
            equality = run(work, "budget_equality", BUDGET_RULE.format(sum="(assert (= (+ housing food other) "
                                                                           "income))"), targets, "auto")
            tol = 3 * equality["hint_band_floor"] if equality["hint_band_floor"] else 20.0
            band = BUDGET_RULE.format(sum=f"(assert (<= (- (+ housing food other) income) {tol:g}))\n"
                                          f"(assert (>= (- (+ housing food other) income) (- {tol:g})))")
            rows += [equality, run(work, f"budget_band_{tol:g}", band, targets, "auto"),
                     run(work, "budget_equality", BUDGET_RULE.format(sum="(assert (= (+ housing food other) "
                                                                         "income))"), targets, "ffn")]
        elif name == "speed":
            targets = "advised_speed"
            with_ite = SPEED_RULE.format(cap="(assert (<= advised_speed (ite (= urban 1.0) 50.0 130.0)))")
            rows += [run(work, "speed_ite", with_ite, targets, "auto"),
                     run(work, "speed_two_premises", SPEED_RULE.format(
                         cap="(assert (=> (= urban 1.0) (<= advised_speed 50.0)))\n"
                             "(assert (=> (= urban 0.0) (<= advised_speed 130.0)))"), targets, "auto"),
                     run(work, "speed_ite", with_ite, targets, "ffn")]
        elif name == "sales":
            targets = "sales_today"
            written_with_abs = SALES_RULE.format(band="(assert (<= (abs (- sales_today sales_yesterday)) 50.0))")
            rows += [run(work, "sales_abs", written_with_abs, targets, "auto"),
                     run(work, "sales_two_inequalities", SALES_RULE.format(
                         band="(assert (<= (- sales_today sales_yesterday) 50.0))\n"
                              "(assert (>= (- sales_today sales_yesterday) (- 50.0)))"), targets, "auto"),
                     run(work, "sales_abs", written_with_abs, targets, "ffn")]
        else:
            targets = "revenue_eur"
            equality = run(work, "store_equality", STORE_RULE.format(conclusion="(= revenue_eur 0.0)"), targets, "auto")
            tol = 3 * equality["hint_band_floor"] if equality["hint_band_floor"] else 100.0
            rows += [equality, run(work, f"store_band_{tol:g}", STORE_RULE.format(conclusion=f"(<= revenue_eur {tol:g})")
                                   + "(assert (>= revenue_eur 0.0))\n", targets, "auto"),
                     run(work, "store_equality", STORE_RULE.format(conclusion="(= revenue_eur 0.0)"), targets, "ffn")]
        print(pd.DataFrame(rows).tail(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "runs.csv", index=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    lines = ["# Rule forms: equalities on outputs (and the band the hint suggests), a tolerance written with abs, "
             "a bound chosen with ite", "",
             f"Command: `OMP_NUM_THREADS=1 python scripts/probe_rule_forms.py --out {args.out}` (commit {commit})",
             "",
             "The data, rules and split are built by the script (see its docstring). `mse` is on the held-out "
             "quarter (raw units, mean over targets); `violations` counts held-out rows whose prediction breaks "
             "the rule (ffn's against the equality itself).", "",
             "| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row)
              + " |" for row in table.itertuples(index=False)]
    (args.out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
