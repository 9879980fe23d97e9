"""Train a price problem's `auto` model with the constructions' weight decay at 1e-3 and at 0, on the split a
``bench_price.py`` run left in its work folder, and print the test MSE (raw units, mean over the targets) of
each: the side-by-side check behind ``hardnet.CONSTRUCTION_WEIGHT_DECAY`` (session 10).

    python scripts/compare_construction_decay.py --work /tmp/s10/bw_holdout --problem rlc_phase --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from price_problems import PROBLEMS  # noqa: E402

from deepsade.constructions import hardnet  # noqa: E402
from deepsade.estimator import DeepSaDe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="bench_price.py's --work folder (PROBLEM-sSEED/train.csv, test.csv)")
    parser.add_argument("--problem", required=True, choices=sorted(PROBLEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    problem = PROBLEMS[args.problem]
    if problem.task != "regression":
        raise SystemExit("this comparison reports MSE: pick a regression problem")
    for seed in args.seeds:
        folder = Path(args.work) / f"{args.problem}-s{seed}"
        train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
        for decay in (1e-3, 0.0):
            hardnet.CONSTRUCTION_WEIGHT_DECAY = decay
            model = DeepSaDe(str(problem.rule_file), list(problem.targets), task=problem.task, seed=seed).fit(train)
            predicted = model.predict(test)
            mse = np.mean([np.mean((predicted[f"predicted_{t}"].to_numpy() - test[t].to_numpy()) ** 2)
                           for t in problem.targets])
            print(args.problem, seed, "decay", decay, "mse", round(float(mse), 2), model.artifact_.method, flush=True)


if __name__ == "__main__":
    main()
