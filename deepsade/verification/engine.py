"""The interface every verifier engine implements: what it can express, and one query on a box.

An engine answers one question for the network and a box of scaled inputs: is there an input in the
box where one of the given asserts breaks? It says up front which asserts it can express
(``cannot_express``), and it answers a ``Query`` with an ``Answer``: no violation, a witness (which
the verifier re-checks in exact arithmetic before it is reported), or unknown. Engines are
registered by name in ``deepsade.verification.engines``; the planner assigns each assert to the
first engine, in order, that can express it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from deepsade.realisable import RealisableInputs
from deepsade.spec import Assert
from deepsade.verification.network import NetworkWeights
from deepsade.verification.outcome import Answer
from deepsade.verification.violation import Disjunct


@dataclass(frozen=True)
class ViolationForm:
    """One assert with its violation as linear disjuncts (``None`` with ``reason`` when it has no such form)."""

    assert_: Assert
    disjuncts: list[Disjunct] | None
    reason: str = ""


@dataclass(frozen=True)
class Query:
    """One search: is there an input in ``[lower, upper]`` (scaled units, exact) breaking one of ``asserts``?

    ``disjuncts`` is the union of the violation disjuncts of those asserts that have them (what a
    linear-disjunct engine such as Marabou sends); ``timeout`` is in seconds. ``realisable``, when
    given, restricts the search to inputs a real row could have (one category per one-hot group,
    whole numbers in integer columns); the box is then already its realisable hull. An engine that
    cannot express part of that restriction may search a superset, since the verifier snaps and
    re-checks every witness; it must never search less."""

    lower: Sequence[Fraction]
    upper: Sequence[Fraction]
    asserts: Sequence[Assert]
    disjuncts: Sequence[Disjunct]
    timeout: float
    realisable: RealisableInputs | None = None


class Engine(ABC):
    """A counterexample search over boxes for one network.

    Subclasses set ``name`` (the registry key, the CLI's ``--engine`` value and the ``decided_by``
    label), ``label`` (how notes name it) and ``exact``; they are built once per verifier with the
    network and may keep what they prepare from it.

    ``exact``: a witness the engine returns holds in exact arithmetic unless the engine has a bug. A
    witness from an engine that is not exact (floating point) that fails the exact re-check is
    settled by the next exact engine that can express the asserts."""

    name: ClassVar[str]
    label: ClassVar[str]
    exact: ClassVar[bool] = True

    def __init__(self, weights: NetworkWeights):
        self.weights = weights

    @classmethod
    def cannot_express(cls, form: ViolationForm) -> str | None:
        """``None`` when this engine can check the assert; otherwise why not (shown in a note)."""
        return None

    @abstractmethod
    def check(self, query: Query) -> Answer:
        """Search the box of ``query`` for an input that breaks one of its asserts."""

    def retry(self, query: Query) -> Answer | None:
        """Asked after this engine's witness failed the exact re-check: another try (for instance one
        that keeps off boundaries), or ``None`` to hand the asserts over at once."""
        return None
