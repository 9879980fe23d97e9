"""Old import path, kept while other branches move over: see ``deepsade.encoding.encoder``."""

from deepsade.encoding.encoder import Encoder  # noqa: F401
