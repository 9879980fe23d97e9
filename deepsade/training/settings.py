"""What a DeepSaDe run is given and what it reports: settings, per-epoch statistics, the result."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsade.errors import UserInputError
from deepsade.network import SkipMLP

#: hidden-layer optimisers of ``TrainSettings.optimizer`` (the last layer always takes DeepSaDe's own step)
OPTIMIZERS = ("sgd", "adam")
#: Adam's step on the hidden layers: PyTorch's default. ``lr`` stays the line search's longest step (and SGD's)
ADAM_LR = 1e-3
#: rows per mini-batch: the paper's (``--paper``, and the baselines), and DeepSaDe's default otherwise. 32 with
#: patience 10 was not worse on the 4 problems of results/defaults_probe_optim and 3-5x faster, but on the whole
#: price benchmark it cost insurance 1.36-1.44x ffn's MSE (0.89x with 5) and credit 3 points on seed 2, so the
#: default stays the paper's 5; ``--batch-size 32 --patience 10`` is the faster choice (issue 13)
PAPER_BATCH_SIZE = 5
DEFAULT_BATCH_SIZE = 5


def default_batch_size(method: str, paper: bool) -> int:
    """The mini-batch a run gets when none is given: ``DEFAULT_BATCH_SIZE`` for DeepSaDe, the paper's
    ``PAPER_BATCH_SIZE`` under ``paper`` and for the baselines (their defaults were not re-measured)."""
    return DEFAULT_BATCH_SIZE if method == "deepsade" and not paper else PAPER_BATCH_SIZE


#: early stopping when none is given: off (every epoch, as the paper), see DEFAULT_BATCH_SIZE for why
DEFAULT_PATIENCE = 0


def default_patience(method: str, paper: bool) -> int:
    """The patience a run gets when none is given: ``DEFAULT_PATIENCE`` for DeepSaDe, 0 (off) under ``paper``."""
    return DEFAULT_PATIENCE if method == "deepsade" and not paper else 0


class NoModelExists(UserInputError):
    """No last-layer weights satisfy the constraints over the domain (they may contradict each other)."""


@dataclass
class TrainSettings:
    """Hyper-parameters of a DeepSaDe run (defaults: the paper's UC2 settings)."""

    hidden: tuple[int, ...] = (50, 30, 10)
    epochs: int = 50
    batch_size: int = 5
    lr: float = 0.1
    max_step: float = 0.1
    margins: tuple[float, ...] = (0.0, 1.0, 2.0)  # soft-clause margins (x max|label| for regression)
    line_search_steps: int = 5
    projection: bool = True  # project the gradient step onto the constraint (LP) before MaxSMT, where exact
    strategy: str = "auto"
    maxsmt: str = "fu-malik"
    solver_timeout: float = 10.0
    output_margin: float = 1e-4  # the certificate's slack on every output (network units)
    val_fraction: float = 0.1
    cegis_rounds: int = 25
    cube_warmup_epochs: int = 2  # sign patterns: epochs of an unconstrained copy that picks the first cube
    seed: int = 0
    threads: int = 1
    # the price of the guarantee (issue 13); ``paper=True`` turns all three off (the paper's trainer)
    region_boxes: bool = True  # check each assert over the latent box of its premise's input region
    premise_gates: bool | None = None  # gate units on premise regions; None: when >= 2 hidden layers and a premise narrows the domain
    refit: bool = True  # solve the last layer as a convex program after the first weights and for the final model
    paper: bool = False
    clause_sets: bool = True  # sign patterns: offer the rule's CNF as rows beside the cubes (off under ``paper``)
    optimizer: str = "sgd"  # hidden layers: "sgd" (the paper's, at ``lr``) or "adam" (at ADAM_LR)
    patience: int = 0  # stop after this many epochs without a lower validation loss (0: train every epoch)
    weight_average: bool = False  # constructions: judge and keep a moving average of SGD's weights (not under ``paper``)

    @property
    def uses_region_boxes(self) -> bool:
        return self.region_boxes and not self.paper

    def uses_gates(self, narrowing_premise: bool) -> bool:
        """Whether the trainer adds premise gates (``narrowing_premise``: some premise region narrows the domain)."""
        if self.paper or self.premise_gates is False or not narrowing_premise:
            return False
        return len(self.hidden) >= 2

    @property
    def uses_refit(self) -> bool:
        return self.refit and not self.paper

    @property
    def uses_weight_average(self) -> bool:
        return self.weight_average and not self.paper

    @property
    def uses_clause_sets(self) -> bool:
        return self.clause_sets and not self.paper


@dataclass
class EpochStats:
    """What one epoch did: how each iteration's last layer was found, losses, time."""

    epoch: int
    iterations: int = 0
    line_search_hits: int = 0
    projection_hits: int = 0
    maxsmt_calls: int = 0
    maxsmt_successes: int = 0
    restarts: int = 0
    solver_seconds: float = 0.0
    check_seconds: float = 0.0
    cegis_points: int = 0
    train_loss: float = 0.0
    val_loss: float = float("nan")
    val_violations: int = -1
    seconds: float = 0.0


@dataclass
class TrainResult:
    """The best valid model of a run, with its history."""

    model: SkipMLP
    history: list[EpochStats]
    best_epoch: int
    seconds: float
    init_seconds: float
    settings: TrainSettings
    notes: list[str] = field(default_factory=list)
    # what the price-of-the-guarantee levers did (gates added, each refit accepted or skipped and why);
    # kept apart from ``notes``, which the command line prints as warnings
    mechanisms: list[str] = field(default_factory=list)
