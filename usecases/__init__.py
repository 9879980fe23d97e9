"""The DeepSaDe paper's five use cases: generators with the real files' columns, and real-data loaders.

Every use case (a module here, or a ``toy.ToyCase``) exposes ``NAME``, ``CONSTRAINT`` (an SMT-LIB
file relative to the repository root), ``TARGETS``, ``TASK``, ``POSITIVE``, ``REAL_FILE``,
``SETTINGS`` (the paper's training settings), ``METRICS`` (the quality metrics it reports, keys of
``deepsade.metrics``), ``generate(n_rows, seed)``, ``load_real(data_dir)``
(None when the file is absent) and ``load(data_dir, n_rows, seed)`` (real data when present, else
generated). UC2 and UC3 also have ``inject_violations(df, n, seed)``, the paper's label-flipping.
Real data is looked up in ``$DEEPSADE_DATA`` or else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

from types import ModuleType

from . import toy, uc1_expenses, uc2_loan, uc3_music, uc4_digits, uc5_sushi
from ._common import DATA_ENV, default_data_dir

USECASES: dict[str, ModuleType] = {
    "UC1": uc1_expenses,
    "UC2": uc2_loan,
    "UC3": uc3_music,
    "UC4": uc4_digits,
    "UC5": uc5_sushi,
}
# The paper's cases plus the two toys that go with the example constraint files.
ALL_CASES: dict[str, ModuleType | toy.ToyCase] = {**USECASES, **toy.CASES}


def get(name: str) -> ModuleType | toy.ToyCase:
    """The use case called ``name`` ("uc2", "UC2", "toy_reg", ...), or a ValueError listing the known ones."""
    case = ALL_CASES.get(name.strip().upper())
    if case is None:
        raise ValueError(f"unknown use case {name!r}; known: {', '.join(ALL_CASES)}")
    return case


__all__ = ["ALL_CASES", "DATA_ENV", "USECASES", "default_data_dir", "get", "toy"]
