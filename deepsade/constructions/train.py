"""Which construction a method name trains (the registry in ``deepsade.methods`` points here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepsade.errors import UserInputError

if TYPE_CHECKING:  # pragma: no cover
    from deepsade.artifact import ModelArtifact


def train_construction(job: Any) -> ModelArtifact:
    """Train the construction named by ``job.method`` (hardnet, hcr); ``job`` is a ``deepsade.methods.TrainingJob``."""
    if job.method == "hardnet":
        from deepsade.constructions.hardnet import train_hardnet

        return train_hardnet(job)
    if job.method == "hcr":
        from deepsade.constructions.hcr_train import train_hcr

        return train_hcr(job)
    if job.method == "polytope":
        from deepsade.constructions.polytope_train import train_polytope

        return train_polytope(job)
    if job.method == "repair":
        from deepsade.constructions.repair_train import train_repair

        return train_repair(job)
    if job.method == "scoreclamp":
        from deepsade.constructions.score_clamp_train import train_score_clamps

        return train_score_clamps(job)
    raise UserInputError(f"no construction is called {job.method!r}")
