"""The DeepSaDe paper's five use cases, two toys, and the experiments and reports built on them.

This package sits beside the core library and uses it; the core never imports it. Each use case is
one :class:`UseCase` description (data loader, rule file, task, targets, the paper's settings, the
metrics it reports, the published figures), defined as ``CASE`` in its module (``uc1_expenses`` ..
``uc5_sushi``, ``toy``), which also holds the generator and real-data loader. Adding a use case is
one module and one :func:`register` call. ``experiment`` cross-validates every method on a use case,
``report`` writes its report beside the published figures.

Real data is looked up in ``$DEEPSADE_DATA`` or else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

from ._common import DATA_ENV, default_data_dir
from .case import Published, UseCase

# The paper's cases (``usecase list``, ``reproduce.py --all``) and every case ``get`` knows, toys included.
USECASES: dict[str, UseCase] = {}
ALL_CASES: dict[str, UseCase] = {}


def register(case: UseCase, *, paper: bool = False) -> UseCase:
    """Make ``case`` known to ``get`` (and, with ``paper``, to the list of the paper's use cases)."""
    key = case.name.strip().upper()
    if key in ALL_CASES:
        raise ValueError(f"a use case called {key!r} is already registered")
    ALL_CASES[key] = case
    if paper:
        USECASES[key] = case
    return case


def unregister(name: str) -> None:
    """Forget the use case called ``name`` (unknown names are ignored)."""
    key = name.strip().upper()
    ALL_CASES.pop(key, None)
    USECASES.pop(key, None)


def get(name: str) -> UseCase:
    """The use case called ``name`` ("uc2", "UC2", "toy_reg", ...), or a ValueError listing the known ones."""
    case = ALL_CASES.get(name.strip().upper())
    if case is None:
        raise ValueError(f"unknown use case {name!r}; known: {', '.join(ALL_CASES)}")
    return case


from . import toy, uc1_expenses, uc2_loan, uc3_music, uc4_digits, uc5_sushi  # noqa: E402  (they build UseCase)

for _module in (uc1_expenses, uc2_loan, uc3_music, uc4_digits, uc5_sushi):
    register(_module.CASE, paper=True)
for _toy in toy.CASES.values():
    register(_toy)

__all__ = ["ALL_CASES", "DATA_ENV", "USECASES", "Published", "UseCase", "default_data_dir", "get", "register",
           "toy", "unregister"]
