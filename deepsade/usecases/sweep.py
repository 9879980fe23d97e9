"""Sweeps over seeds and hyper-parameters: one cross-validation (``deepsade.usecases.experiment``) per seed x
grid combination, each in its own folder ``OUT/seed<s>_<key><value>/``, and ``OUT/sweep.csv`` over all."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepsade.atomic import write_text_atomically
from deepsade.errors import UserInputError
from deepsade.usecases import get as get_usecase
from deepsade.usecases.config import ExperimentConfig


def combination_name(seed: int, params: dict[str, Any]) -> str:
    """The folder of one sweep combination: ``seed<s>`` then ``<key><value>`` per hyper-parameter."""
    parts = [f"seed{seed}"] + [f"{key}{_value_text(value)}" for key, value in sorted(params.items())]
    return "_".join(parts)


def _value_text(value: Any) -> str:
    return "-".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
        if isinstance(value, (list, tuple)) else (f"{value:g}" if isinstance(value, float) else str(value))


def parse_grid(items: Sequence[str], usecase: str) -> dict[str, list[Any]]:
    """``["lr=0.05,0.1", "hidden=32-16,64"]`` -> ``{"lr": [0.05, 0.1], "hidden": [(32, 16), (64,)]}``.

    Values take the type of the use case's setting; list settings (hidden, margins) separate their
    items with '-'. Keys are the use case's settings (see ``deepsade usecase list``)."""
    settings = get_usecase(usecase).settings
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values.strip():
            raise UserInputError(f"--grid takes KEY=V1,V2,..., got {item!r}")
        if key not in settings or key == "skip_features":
            raise UserInputError(f"unknown setting {key!r} in --grid; choose among "
                                 f"{', '.join(k for k in settings if k != 'skip_features')}")
        default = settings[key]
        try:
            grid[key] = [_parse_value(v.strip(), default) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UserInputError(f"--grid {key}: cannot read {values!r} as {type(default).__name__} "
                                 "values") from None
    return grid


def _parse_value(text: str, default: Any) -> Any:
    if isinstance(default, (list, tuple)):
        kind = type(default[0]) if default else float
        return tuple(kind(v) for v in text.split("-") if v)
    if isinstance(default, bool):
        raise ValueError(text)
    return type(default)(text) if isinstance(default, (int, float)) else text


def sweep_configs(base: ExperimentConfig, seeds: Sequence[int], grid: dict[str, list[Any]]) -> list[ExperimentConfig]:
    """One experiment per seed x grid combination, each in its own folder under ``base.out``."""
    keys = list(grid)
    configs = []
    for seed in seeds:
        for values in itertools.product(*(grid[k] for k in keys)):
            params = {**base.params, **dict(zip(keys, values, strict=True))}
            out = Path(base.out) / combination_name(seed, params)
            configs.append(dataclasses.replace(base, seed=seed, params=params, out=str(out)))
    return configs


def write_sweep_table(out: str | Path, configs: Sequence[ExperimentConfig]) -> Path:
    """``OUT/sweep.csv``: every combination's runs.csv rows, with its seed and hyper-parameters."""
    frames = []
    for config in configs:
        runs = Path(config.out) / "runs.csv"
        if not runs.is_file() or runs.stat().st_size == 0:
            continue
        frame = pd.read_csv(runs)
        frame.insert(0, "combination", Path(config.out).name)
        frame.insert(1, "sweep.seed", config.seed)
        for i, (key, value) in enumerate(sorted(config.params.items())):
            frame.insert(2 + i, f"sweep.{key}", _value_text(value))
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return write_text_atomically(Path(out) / "sweep.csv", table.to_csv(index=False))
