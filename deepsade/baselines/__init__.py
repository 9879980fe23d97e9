"""Baselines trained in the same tool as DeepSaDe, without guarantee.

- ``ffn``: the plain network (data loss only);
- ``reg``: data loss + lambda x hinge penalty compiled from the linear asserts (``penalty``);
- ``sbr``: data loss + lambda x (1 - fuzzy truth of the constraint) (``fuzzy``);
- ``sl``: data loss + lambda x semantic loss, exact over the label events (``semantic``).

All read the same constraint file and data, train the same SkipMLP architecture and write the same
model directory (``deepsade.artifact``), with certificate ``{"verdict": "none"}``.
"""

from deepsade.baselines.train import (
    CONSTRAINT_LOSSES,
    DEFAULT_LAMBDAS,
    make_constraint_loss,
    select_lambda,
    train_baseline,
)

__all__ = ["DEFAULT_LAMBDAS", "CONSTRAINT_LOSSES", "make_constraint_loss", "select_lambda", "train_baseline"]
