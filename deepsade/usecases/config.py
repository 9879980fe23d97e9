"""What a use-case cross-validation runs: the use case, folds, methods, and any departure from the paper's settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepsade.errors import UserInputError
from deepsade.methods import CONSTRUCTION, DEEPSADE, get_method, method_names
from deepsade.usecases import get as get_usecase
from deepsade.usecases.results import INJECTED_VIOLATIONS, N_SPLITS, overrides

# Settings whose value changes a result: a stored result is reused only when these match.
_RESULT_KEYS = ("usecase", "n_splits", "data_dir", "rows", "epochs", "baseline_epochs", "batch_size",
                "adi_sample", "adi_epsilons", "adi_timeout", "adi_engine", "inject", "seed", "solver_timeout")
# ... except those that only one kind of method reads: more DeepSaDe epochs do not retrain a baseline.
_DEEPSADE_ONLY = {"epochs", "solver_timeout"}
_BASELINE_ONLY = {"baseline_epochs"}
# ... per family: what its results do not depend on (a construction reads DeepSaDe's epochs and no solver timeout)
_IGNORED_BY_FAMILY = {DEEPSADE: _BASELINE_ONLY, CONSTRUCTION: _BASELINE_ONLY | {"solver_timeout"}}


def reads_deepsade_epochs(method: str) -> bool:
    """Whether ``method`` trains for the use case's DeepSaDe ``epochs`` rather than ``baseline_epochs``: DeepSaDe,
    and the constructions, which ``auto`` trains in its place (``deepsade train`` gives them ``--epochs``)."""
    return get_method(method).family in (DEEPSADE, CONSTRUCTION)


@dataclass
class ExperimentConfig:
    """What to run: a use case, its folds and methods, and any departure from the paper's settings.

    ``None`` means the use case's default (the paper's setting, or all rows / all folds)."""

    usecase: str
    out: str
    folds: int | None = None  # how many of the N_SPLITS folds to run, first ones first
    n_splits: int = N_SPLITS
    methods: tuple[str, ...] = field(default_factory=method_names)  # every registered method
    data_dir: str | None = None
    rows: int | None = None  # a seeded subset of the data (real or generated)
    epochs: int | None = None  # DeepSaDe epochs
    baseline_epochs: int | None = None
    batch_size: int | None = None
    adi_sample: int = 100  # test rows per fold on which AdI is measured (a fixed seeded sample)
    adi_epsilons: tuple[float, ...] = (0.1, 0.01)
    adi_timeout: float = 10.0
    adi_engine: str = "marabou"  # z3 takes the asserts Marabou cannot express
    inject: int = INJECTED_VIOLATIONS
    seed: int = 0
    solver_timeout: float | None = None
    jobs: int = 1
    save_models: bool = True
    quiet: bool = False
    # hyper-parameters set by a sweep (``usecase run --grid``): keys of the use case's settings
    params: dict[str, Any] = field(default_factory=dict)
    # DeepSaDe as the paper trains it (one whole-domain latent box, no gates, no refit): the trainer that
    # produced every result stored before the price-of-the-guarantee levers existed
    paper: bool = False

    def __post_init__(self) -> None:
        self.usecase = get_usecase(self.usecase).name
        known = get_usecase(self.usecase).settings
        unknown_params = sorted(set(self.params) - set(known))
        if unknown_params:
            raise UserInputError(f"unknown setting(s) {', '.join(unknown_params)} in --grid; choose among "
                                 f"{', '.join(k for k in known if k != 'skip_features')}")
        self.methods = tuple(self.methods)
        unknown = [m for m in self.methods if m not in method_names()]
        if unknown or not self.methods:
            raise UserInputError(f"unknown method(s) {unknown}; choose among {', '.join(method_names())}")
        if not 2 <= self.n_splits:
            raise UserInputError("cross-validation needs at least 2 splits")
        if self.folds is not None and not 1 <= self.folds <= self.n_splits:
            raise UserInputError(f"--folds must be between 1 and {self.n_splits}, got {self.folds}")
        for name in ("rows", "epochs", "baseline_epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.adi_sample < 0:
            raise UserInputError("--adi-sample must be 0 (no AdI) or more")
        if self.jobs < 1:
            raise UserInputError("--jobs must be at least 1")
        if self.data_dir is not None:
            self.data_dir = str(Path(self.data_dir).expanduser().resolve())

    def settings(self) -> dict[str, Any]:
        """The training settings used: the paper's, with this run's overrides applied."""
        settings = dict(get_usecase(self.usecase).settings)
        for name in ("epochs", "baseline_epochs", "batch_size"):
            if getattr(self, name) is not None:
                settings[name] = getattr(self, name)
        settings.update(self.params)
        return settings

    def overrides(self) -> dict[str, Any]:
        """Every departure from the paper's protocol and settings, for the report."""
        return overrides(self.to_dict())

    def result_key(self, method: str) -> str:
        """Fingerprint of the settings that ``method``'s result depends on."""
        ignored = _IGNORED_BY_FAMILY.get(get_method(method).family, _DEEPSADE_ONLY)
        values = {k: getattr(self, k) for k in _RESULT_KEYS if k not in ignored}
        if self.params:  # absent when empty, so results stored before sweeps existed keep their key
            values["params"] = self.params
        if get_method(method).family == DEEPSADE and not self.paper:
            # results stored before the levers came from the paper's trainer and keep their key (absent
            # field); today's default trainer differs, so its results get a key of their own
            values["trainer"] = "regions+gates+refit"
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
