"""The description of a use case: data, rule, task, the paper's settings, metrics and published figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Published:
    """One method's published figures on a use case (DeepSaDe paper, AAAI 2024; shared/ANCHORS.md)."""

    metrics: Mapping[str, float]  # metric key (as in ``UseCase.metrics``) -> mean test value, corrected rows
    violations: str  # test rows whose prediction breaks the rule, as the paper gives it
    adi: tuple[float, float] | None  # AdI at eps 0.1 and 0.01; None where the paper reports n/a
    seconds: float  # training wall time per fold


@dataclass(frozen=True)
class UseCase:
    """What a use case is: its data, its rule, how the paper trained on it and what the paper measured."""

    name: str
    constraint: str  # SMT-LIB rule file, relative to the deepsade package (shipped as package data)
    targets: tuple[str, ...]
    task: str
    positive: str | None
    metrics: tuple[str, ...]  # the quality metrics it reports: keys of deepsade.metrics
    settings: Mapping[str, Any]  # the paper's training settings (hidden, epochs, batch_size, ..., baseline_epochs)
    generate: Callable[[int, int], pd.DataFrame]  # (n_rows, seed) -> a generated frame with the real columns
    load: Callable[[str | Path | None, int | None, int], pd.DataFrame]  # (data_dir, n_rows, seed): real, else generated
    load_real: Callable[[str | Path | None], pd.DataFrame | None]  # (data_dir) -> the real data, or None
    real_file: str | None = None  # name of the real data file, None when there is no public copy
    bundled_data: str | None = None  # data that ships with a library instead of a file (short label)
    bundled_data_source: str | None = None  # ... and how an experiment report names it
    inject_violations: Callable[[pd.DataFrame, int, int], pd.DataFrame] | None = None  # the paper's label flips
    premise: Callable[[pd.DataFrame], pd.Series] | None = None  # rows the rule speaks about (t-SNE colouring)
    published: Mapping[str, Published] = field(default_factory=dict)  # method -> published figures
    published_ratio: tuple[str, float] | None = None  # (baseline, published DeepSaDe / baseline time ratio)
    paper_figures: Mapping[str, str] = field(default_factory=dict)  # plot file stem -> the paper's figure

    @property
    def constraint_path(self) -> Path:
        """The rule file, found through the installed package (a checkout or a wheel alike)."""
        return Path(str(resources.files("deepsade").joinpath(self.constraint)))
