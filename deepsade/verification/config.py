"""A Verifier described as plain data (picklable, for worker processes), and built from a model directory."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from deepsade.data import Encoding
from deepsade.realisable import RealisableInputs
from deepsade.spec import Spec, parse_spec_text
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Outcome
from deepsade.verification.planner import Plan
from deepsade.verification.verifier import Verifier

if TYPE_CHECKING:  # torch stays out of worker processes that only verify
    from deepsade.artifact import ModelArtifact


@dataclass
class VerifierConfig:
    """Everything a worker process needs to build a Verifier (plain data: picklable)."""

    weights: NetworkWeights
    constraint_text: str
    encoding: dict[str, Any]
    domain_lower: list[Fraction]
    domain_upper: list[Fraction]
    engine: str = "marabou"
    timeout: float = 10.0
    presample: int = 64
    bound_check: bool = True
    seed: int = 0
    plan: Plan | None = None
    realisable: bool = True
    last_layers_first: bool | None = None  # the last layers alone first (``abstraction``); None: as bound_check

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, **options: Any) -> VerifierConfig:
        """Config for a model directory's network, constraint and domain box (scaled units)."""
        lower, upper = artifact.domain.scaled_exact(artifact.encoding)
        return cls(NetworkWeights.from_model(artifact.model), artifact.constraint_text, artifact.encoding.to_dict(),
                   lower, upper, **options)

    def build_spec(self) -> Spec:
        """The constraint parsed against the stored encoding."""
        return parse_spec_text(self.constraint_text, Encoding.from_dict(self.encoding))

    def build_realisable(self) -> RealisableInputs | None:
        """The realisable inputs of the stored encoding, or None when ``realisable`` is off (the relaxed box)."""
        return RealisableInputs.from_encoding(Encoding.from_dict(self.encoding)) if self.realisable else None

    def build(self) -> Verifier:
        """The Verifier this config describes (parses the constraint; cheap)."""
        return Verifier(self.weights, self.build_spec(), self.domain_lower, self.domain_upper, engine=self.engine,
                        timeout=self.timeout, presample=self.presample, bound_check=self.bound_check,
                        seed=self.seed, plan=self.plan, realisable=self.build_realisable(),
                        last_layers_first=self.last_layers_first)


def verifier_for(artifact: ModelArtifact, engine: str = "marabou", timeout: float = 10.0, presample: int = 64,
                 bound_check: bool = True, seed: int = 0, realisable: bool = True) -> Verifier:
    """A Verifier for a loaded model directory (network, constraint and domain box as stored);
    ``realisable``: only inputs a real row could have count (else the relaxed box)."""
    return VerifierConfig.from_artifact(artifact, engine=engine, timeout=timeout, presample=presample,
                                        bound_check=bound_check, seed=seed, realisable=realisable).build()


def verify_domain(artifact: ModelArtifact, engine: str = "marabou", timeout: float = 60.0,
                  presample: int = 1024, bound_check: bool = True, seed: int = 0,
                  realisable: bool = True) -> tuple[Outcome, Verifier]:
    """Search the model's whole domain box for a counterexample; the verifier is returned for its notes."""
    verifier = verifier_for(artifact, engine, timeout, presample, bound_check, seed, realisable)
    return verifier.check_domain(), verifier
