"""The stored results of a use-case cross-validation: one JSON file per fold x method under ``OUT/folds``.

Shared by the experiment runner (which writes them) and the report (which reads them), so that
neither imports the other for the format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deepsade.atomic import write_text_atomically
from deepsade.methods import method_names

N_SPLITS = 5
INJECTED_VIOLATIONS = 40  # labels flipped against the rule in each training part (the paper's injection)


def result_path(out: str | Path, fold: int, method: str) -> Path:
    """Where the result of ``method`` on fold ``fold`` (1-based) is stored."""
    return Path(out) / "folds" / f"fold{fold}_{method}.json"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a stopped run never leaves a half-written result that looks finished."""
    write_text_atomically(path, json.dumps(payload, indent=1, default=json_default))


def json_default(value: Any) -> Any:
    """numpy numbers and arrays, tuples and anything else as JSON (the last as its string)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def method_order(methods: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """``methods`` in the registry's order; methods no longer registered come last, by name."""
    known = method_names()
    return [m for m in known if m in methods] + sorted(m for m in methods if m not in known)


def load_results(out: str | Path) -> list[dict[str, Any]]:
    """Every fold x method result stored under ``out``, ordered by fold then method."""
    results = []
    for path in sorted((Path(out) / "folds").glob("fold*_*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    order = {m: i for i, m in enumerate(method_names())}
    return sorted(results, key=lambda r: (r["fold"], order.get(r["method"], len(order)), r["method"]))


def overrides(config: dict[str, Any]) -> dict[str, Any]:
    """Every departure of a stored experiment configuration from the paper's protocol and settings."""
    changed = {k: config[k] for k in ("rows", "epochs", "baseline_epochs", "batch_size", "solver_timeout")
               if config.get(k) is not None}
    if config.get("folds") is not None and config["folds"] < config["n_splits"]:
        changed["folds"] = f"{config['folds']} of {config['n_splits']}"
    if config["n_splits"] != N_SPLITS:
        changed["n_splits"] = config["n_splits"]
    if config["inject"] != INJECTED_VIOLATIONS:
        changed["inject"] = config["inject"]
    return changed
