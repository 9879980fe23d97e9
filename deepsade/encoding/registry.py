"""The ordered registry of encoding strategies: ``auto`` walks it from the top, per assert.

Adding a strategy is one module with a ``Strategy`` subclass plus one ``register_strategy`` line here
(or, from outside the package, a call to ``register_strategy``)."""

from __future__ import annotations

from deepsade.encoding.base import Strategy
from deepsade.encoding.cegis import CegisStrategy
from deepsade.encoding.dual import DualStrategy
from deepsade.encoding.dual_or import DisjunctiveStrategy
from deepsade.encoding.qe import QeStrategy
from deepsade.encoding.quantified import QuantifiedStrategy
from deepsade.encoding.sign_pattern_strategy import SignPatternStrategy

AUTO = "auto"

_REGISTRY: list[type[Strategy]] = []


def register_strategy(strategy: type[Strategy], before: str | None = None) -> type[Strategy]:
    """Add ``strategy`` to the registry (at the end, or just before the one named ``before``)."""
    if any(s.name == strategy.name for s in _REGISTRY):
        raise ValueError(f"a strategy named {strategy.name!r} is already registered")
    position = len(_REGISTRY) if before is None else [s.name for s in _REGISTRY].index(before)
    _REGISTRY.insert(position, strategy)
    return strategy


def unregister_strategy(name: str) -> None:
    """Remove the strategy called ``name`` (for tests and plug-ins that registered one)."""
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != name]


def registered() -> tuple[type[Strategy], ...]:
    """Every registered strategy, in the order ``auto`` tries them."""
    return tuple(_REGISTRY)


def strategy_named(name: str) -> type[Strategy]:
    """The registered strategy called ``name`` (KeyError when there is none)."""
    for strategy in _REGISTRY:
        if strategy.name == name:
            return strategy
    raise KeyError(name)


def user_choices() -> tuple[str, ...]:
    """The values ``--strategy`` accepts: ``auto`` then every user-selectable strategy."""
    return (AUTO, *(s.name for s in _REGISTRY if s.user_selectable))


for _strategy in (DualStrategy, DisjunctiveStrategy, SignPatternStrategy, CegisStrategy, QeStrategy,
                  QuantifiedStrategy):
    register_strategy(_strategy)
