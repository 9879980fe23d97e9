"""Old import path, kept while other branches move over: see ``deepsade.encoding.projection``."""

from deepsade.encoding.projection import project_last_layer, projectable  # noqa: F401
