"""Training: the loop (``loop``), the last-layer step (``last_layer``), the resumable train state
(``state``), settings and results (``settings``), and the checkpoint lifecycle of a run (``lifecycle``)."""

from deepsade.training.last_layer import NoLastLayer, output_ranges, soft_clauses
from deepsade.training.loop import DeepSaDeTrainer
from deepsade.training.settings import EpochStats, NoModelExists, TrainResult, TrainSettings

__all__ = ["DeepSaDeTrainer", "EpochStats", "NoLastLayer", "NoModelExists", "TrainResult", "TrainSettings",
           "output_ranges", "soft_clauses"]
