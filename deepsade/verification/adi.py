"""Adversity Index (AdI): how often a model breaks the constraint right next to real data.

For each instance x and radius eps (scaled units, as in the paper), the box ``{x' : |x' - x|_inf <= eps}``
cut to the domain box is searched for a counterexample (``deepsade.verification``). AdI at eps is the
fraction of instances with one. A search that times out is *unknown*: it is never counted as safe.
The AdI reported is over decided instances (counterexample / (counterexample + verified)); the
summary also gives the count of unknowns and the AdI they would give if all were safe / all unsafe.
Instances whose ball misses the domain box entirely (``outside``) are left out of AdI.

An HCR or A(x) HardNet-Aff model (not piecewise linear) is not searched: its AdI is 0 *by construction* where
its exact part is proven, with each ball sampled and checked exactly (``deepsade.constructions.constructed_verify``).

Only inputs a real row could have count (``deepsade.realisable``: one category per one-hot group, whole
numbers in integer columns): a point of the ball with fractional one-hot values is no counterexample.
A ball that holds no such input at all (a row with a category the model never saw, at eps < 1) is
``outside``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepsade.data import Encoding
from deepsade.errors import UserInputError
from deepsade.parallel import Backend, new_token, run_isolating_crashes
from deepsade.verification.config import VerifierConfig
from deepsade.verification.outcome import Outcome, Status, counterexample_raw_inputs
from deepsade.verification.planner import make_plan
from deepsade.verification.verifier import Verifier

if TYPE_CHECKING:  # torch stays out of the worker processes
    from deepsade.artifact import ModelArtifact

ADI_RULE = ("AdI = counterexamples / (counterexamples + verified); unknown (timeout) instances are not "
            "counted as safe and are reported apart, with the AdI they would give if all were safe / unsafe; "
            "'outside' instances (ball misses the domain box) are left out")


@dataclasses.dataclass
class AdiReport:
    """Per instance x epsilon outcomes (``table``) and per-epsilon counts and AdI (``summary``)."""

    epsilons: list[float]
    table: pd.DataFrame
    summary: dict[str, Any]

    def write(self, csv_path: str | Path) -> tuple[Path, Path]:
        """Write the table as CSV and the summary as JSON beside it (same name, ``.json``)."""
        csv_path = Path(csv_path)
        json_path = csv_path.with_suffix(".json")
        try:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            self.table.to_csv(csv_path, index=False)
            json_path.write_text(json.dumps(self.summary, indent=1), encoding="utf-8")
        except OSError as exc:
            raise UserInputError(f"cannot write the AdI results to {csv_path}: {exc.strerror}") from None
        return csv_path, json_path


def instances_from_frame(frame: pd.DataFrame, encoding: Encoding, sample: int | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Scaled inputs of the rows of ``frame`` (rows with a missing input dropped), optionally a seeded
    random sample of ``sample`` rows. Returns (row numbers in the file, scaled inputs, rows dropped)."""
    missing = [c for c in encoding.feature_columns if c not in frame.columns]
    if missing:
        raise UserInputError(f"input column(s) missing from the data: {', '.join(map(repr, missing))}")
    complete = frame[encoding.feature_columns].notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(complete)
    if len(rows) == 0:
        raise UserInputError("no row of the data has all the model's inputs")
    if sample is not None:
        if sample < 1:
            raise UserInputError(f"--sample must be at least 1, got {sample}")
        if sample < len(rows):
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=sample, replace=False))
    scaled = encoding.scale_inputs(encoding.encode_inputs(frame.iloc[rows]))
    return rows, scaled, int((~complete).sum())


# ---- scale-out (issue 16): one task per instance, through deepsade.parallel (loky / Dask / Ray) ----

_WORKER: tuple[str, Verifier] | None = None  # (run token, verifier) cached per worker process


def _check_instance(position: int, token: str, config: VerifierConfig, center: np.ndarray,
                    epsilons: list[float]) -> tuple[int, list[Outcome]]:
    """One instance's outcomes; the worker builds the verifier once per run (Marabou and z3 objects
    cannot be pickled, so each worker builds its own from the plain config)."""
    global _WORKER
    if _WORKER is None or _WORKER[0] != token:
        _WORKER = (token, config.build())
    return position, _WORKER[1].check_balls(center, epsilons, key=position)


def _outcomes(config: VerifierConfig, inputs: np.ndarray, epsilons: list[float],
              backend: Backend) -> Iterator[tuple[int, list[Outcome]]]:
    """Outcomes per instance, in completion order, on ``backend``. An instance that kills its worker
    (a solver crash) twice is reported as unknown; the run goes on."""
    token = new_token()
    tasks = [(i, token, config, inputs[i], epsilons) for i in range(len(inputs))]
    note = "the solver process crashed on this instance; not decided"
    yield from run_isolating_crashes(_check_instance, tasks, backend,
                                     lambda _i: [Outcome(Status.UNKNOWN, "", note=note) for _ in epsilons])

# ---- end of scale-out ----


def adversity_index(artifact: ModelArtifact, inputs: np.ndarray, epsilons: Sequence[float], *,
                    engine: str = "marabou", timeout: float = 10.0, jobs: int = 1, presample: int = 64,
                    bound_check: bool = True, seed: int = 0, progress: bool = True,
                    row_ids: Sequence[int] | None = None, realisable: bool = True,
                    backend: Backend | None = None) -> AdiReport:
    """AdI of the model on ``inputs`` (scaled units, shape (n, d)) for every radius in ``epsilons``.

    Every instance x epsilon gets a status (verified / counterexample / unknown / outside); a
    counterexample comes with its inputs and the model's outputs in raw units and the asserts it
    breaks (1-based numbers, as in the constraint file). ``realisable``: only inputs a real row could
    have count (the default); False searches the relaxed balls (fractional one-hot values allowed).
    ``backend`` says where the searches run (default: ``jobs`` local processes)."""
    epsilons = [float(e) for e in epsilons]
    if not epsilons:
        raise UserInputError("give at least one --epsilon")
    bad = [e for e in epsilons if not (np.isfinite(e) and e > 0)]
    if bad:
        raise UserInputError(f"epsilon must be a positive number (scaled units, e.g. 0.1), got {bad[0]}")
    if jobs < 1:
        raise UserInputError(f"--jobs must be at least 1, got {jobs}")
    inputs = np.atleast_2d(np.asarray(inputs, dtype=np.float64))
    encoding = artifact.encoding
    if inputs.shape[1] != len(encoding.input_names):
        raise UserInputError(f"instances have {inputs.shape[1]} inputs, the model takes {len(encoding.input_names)}")
    row_ids = list(range(len(inputs))) if row_ids is None else list(row_ids)
    if getattr(artifact.model, "kind", None) in ("hcr", "hardnet-aff-x"):  # not PL: AdI 0 by construction, sampled
        from deepsade.constructions.constructed_verify import constructed_adversity_index

        table, summary = constructed_adversity_index(artifact, inputs, epsilons, presample=presample, seed=seed,
                                                     row_ids=row_ids, realisable=realisable, timeout=timeout)
        summary = {"rule": ADI_RULE + "; for this model 'by construction' takes the place of 'verified'", **summary}
        return AdiReport(epsilons, table, summary)
    backend = backend if backend is not None else Backend("loky", jobs)
    config = VerifierConfig.from_artifact(artifact, engine=engine, timeout=timeout, presample=presample,
                                          bound_check=bound_check, seed=seed, realisable=realisable)
    config.plan = make_plan(config.build_spec(), engine)  # once here, not once per worker

    start = time.perf_counter()
    results: list[list[Outcome] | None] = [None] * len(inputs)
    counts = {e: dict.fromkeys(Status, 0) for e in epsilons}
    with tqdm(total=len(inputs), desc="AdI", unit="inst", disable=None if progress else True, dynamic_ncols=True) as bar:
        for position, outcomes in _outcomes(config, inputs, epsilons, backend):
            results[position] = outcomes
            for eps, outcome in zip(epsilons, outcomes, strict=True):
                counts[eps][outcome.status] += 1
            bar.set_postfix_str("  ".join(f"eps={e:g}: cex {c[Status.COUNTEREXAMPLE]} safe {c[Status.VERIFIED]}"
                                          + (f" unk {c[Status.UNKNOWN]}" if c[Status.UNKNOWN] else "")
                                          for e, c in counts.items()), refresh=False)
            bar.update()
    wall = time.perf_counter() - start
    table = _table(results, row_ids, epsilons, encoding)
    summary = _summary(table, epsilons, config, jobs, wall, len(inputs))
    return AdiReport(epsilons, table, summary)


def _table(results: list[list[Outcome] | None], row_ids: list[int], epsilons: list[float],
           encoding: Encoding) -> pd.DataFrame:
    records = []
    points, outputs = [], []
    for row, outcomes in zip(row_ids, results, strict=True):
        assert outcomes is not None
        for eps, outcome in zip(epsilons, outcomes, strict=True):
            records.append({
                "row": row, "epsilon": eps, "status": outcome.status.value, "decided_by": outcome.decided_by,
                "seconds": round(outcome.seconds, 6),
                "broken_asserts": ";".join(str(i + 1) for i in outcome.broken),
                "float_confirmed": outcome.float_confirmed if outcome.status is Status.COUNTEREXAMPLE else None,
                "note": outcome.note,
            })
            points.append(counterexample_raw_inputs(encoding, outcome))
            outputs.append(outcome.outputs if outcome.outputs is not None
                           else np.full(len(encoding.output_names), np.nan))
    table = pd.DataFrame.from_records(records, columns=["row", "epsilon", "status", "decided_by", "seconds",
                                                        "broken_asserts", "float_confirmed", "note"])
    if records:
        raw_points = np.vstack(points)
        raw_outputs = encoding.outputs_to_raw(np.vstack(outputs))
        extra = pd.DataFrame(np.hstack([raw_points, raw_outputs]),
                             columns=[f"cex:{n}" for n in encoding.input_names]
                             + [f"pred:{n}" for n in encoding.output_names])
        table = pd.concat([table, extra], axis=1)
    return table


def _summary(table: pd.DataFrame, epsilons: list[float], config: VerifierConfig, jobs: int, wall: float,
             n: int) -> dict[str, Any]:
    per_epsilon = []
    for eps in epsilons:
        part = table[table["epsilon"] == eps]
        count = {s.value: int((part["status"] == s.value).sum()) for s in Status}
        cex, safe, unknown = count[Status.COUNTEREXAMPLE], count[Status.VERIFIED], count[Status.UNKNOWN]
        considered = cex + safe + unknown
        per_epsilon.append({
            "epsilon": eps, "instances": int(len(part)), **count,
            "adi": cex / (cex + safe) if cex + safe else None,
            "adi_if_unknown_safe": cex / considered if considered else None,
            "adi_if_unknown_unsafe": (cex + unknown) / considered if considered else None,
            "decided_by": {str(k): int(v) for k, v in part["decided_by"].value_counts().items()},
            "seconds_mean": float(part["seconds"].mean()) if len(part) else 0.0,
            "seconds_max": float(part["seconds"].max()) if len(part) else 0.0,
        })
    plan = config.plan
    return {
        "rule": ADI_RULE,
        "engine": config.engine, "timeout_s": config.timeout, "presample": config.presample,
        "bound_check": config.bound_check, "jobs": jobs, "instances": n,
        "realisable_only": config.realisable,
        "wall_seconds": round(wall, 3),
        # search time per instance, all epsilons together, as one process spent it
        "seconds_per_instance": float(table.groupby("row")["seconds"].sum().mean()) if n else None,
        "notes": config.build().notes if plan else [],
        "epsilons": per_epsilon,
    }
