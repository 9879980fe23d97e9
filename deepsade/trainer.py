"""Old import path, kept while other branches move over: everything lives in ``deepsade.training``."""

from deepsade.encoding.encoder import Encoder  # noqa: F401
from deepsade.training.last_layer import (  # noqa: F401
    _as_float32,
    _last_layer,
    _set_last_layer,
    output_ranges,
    soft_clauses,
)
from deepsade.training.loop import DeepSaDeTrainer  # noqa: F401
from deepsade.training.settings import EpochStats, NoModelExists, TrainResult, TrainSettings  # noqa: F401
