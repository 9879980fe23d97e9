"""Optional extras: which ``pip install 'deepsade[EXTRA]'`` brings a missing optional package, in one line.

The core (train, certify, predict, check, export's rule side) needs none of them. ``require`` is for
code that needs one; the CLI turns any ``ModuleNotFoundError`` for these packages into the same line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from deepsade.errors import UserInputError

# top-level module -> (extra, what needs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "maraboupy": ("marabou", "the Marabou verifier (deepsade adi, deepsade verify --engine marabou)"),
    "matplotlib": ("plots", "the plots of deepsade usecase run / report"),
    "onnx": ("onnx", "deepsade export (ONNX + VNN-LIB)"),
    "onnxruntime": ("onnx", "running exported ONNX models"),
    "cvxpy": ("solvers", "the cvxpy solvers of the last-layer solve"),
    "dask": ("dask", "running work on a Dask cluster (--backend dask)"),
    "distributed": ("dask", "running work on a Dask cluster (--backend dask)"),
    "ray": ("ray", "running work on a Ray cluster (--backend ray)"),
}


def install_hint(module: str) -> str | None:
    """The one line saying which extra brings ``module`` (None when it is not an optional package)."""
    top = module.split(".")[0]
    if top not in EXTRAS:
        return None
    extra, purpose = EXTRAS[top]
    return f"{purpose} needs the {top} package, which is not installed: pip install 'deepsade[{extra}]'"


def require(module: str) -> ModuleType:
    """Import an optional package, or raise a UserInputError with its install line."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        hint = install_hint(exc.name or module)
        if hint is None:
            raise
        raise UserInputError(hint) from None
