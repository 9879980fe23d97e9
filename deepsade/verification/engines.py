"""The one registry of verifier engines, in the order the planner tries them.

Adding an engine is one module with an ``Engine`` subclass plus one ``register_engine`` line (here for
a built-in one, anywhere for a plug-in). The CLI's ``--engine`` choices are the names registered when
the CLI is imported; ``make_plan`` gives each assert to the engine asked for when it can express the
assert, else to the first registered engine that can. The plan carries the engine classes, so
worker processes (``adi --jobs``) get a plug-in engine defined at the top level of an importable module.
"""

from __future__ import annotations

from deepsade.errors import UserInputError
from deepsade.verification.engine import Engine
from deepsade.verification.marabou_engine import MarabouEngine
from deepsade.verification.z3_engine import Z3Engine

_REGISTRY: dict[str, type[Engine]] = {}


def register_engine(engine: type[Engine], *, replace: bool = False) -> type[Engine]:
    """Add an engine class under its ``name`` (after those already registered); usable as a decorator.

    Registering a name twice is an error unless ``replace`` (which keeps the name's place in the order)."""
    if not (isinstance(engine, type) and issubclass(engine, Engine)):
        raise TypeError(f"an engine must be an Engine subclass, got {engine!r}")
    name = getattr(engine, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{engine.__name__} needs a non-empty class attribute 'name'")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not engine:
        raise ValueError(f"an engine named {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = engine
    return engine


def unregister_engine(name: str) -> None:
    """Remove the engine registered under ``name`` (a KeyError if there is none)."""
    del _REGISTRY[name]


def engine_names() -> tuple[str, ...]:
    """The names of the registered engines, in registry order."""
    return tuple(_REGISTRY)


def engine_class(name: str) -> type[Engine]:
    """The engine registered under ``name``; a UserInputError naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserInputError(f"unknown engine {name!r}; choose one of {', '.join(_REGISTRY)}") from None


register_engine(MarabouEngine)  # the default: fast, double precision, linear-disjunct violations
register_engine(Z3Engine)  # exact, expresses every assert: settles what Marabou cannot
