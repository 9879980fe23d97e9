#!/usr/bin/env bash
# One-time set-up into ./.venv: torch first, then deepsade with the extras the test suite uses.
# Safe to run again: it skips what is already there.
#
# Which torch. On an ordinary machine without an NVIDIA GPU you want torch's CPU build: PyPI's default
# Linux wheel bundles CUDA (several GB of nvidia-* packages), while PyTorch's own CPU-only wheel index
# serves the same version without it (about 200 MB). Point TORCH_INDEX_URL at that index (see the
# install selector on PyTorch's site) to get it; by default this script asks the configured package
# index for torch==$TORCH_VERSION, which on the project's machines is the CPU build.
#   TORCH_INDEX_URL=<PyTorch's CPU wheel index>  bash scripts/setup.sh
# By hand: pip install torch --index-url <that index>, then pip install deepsade (or -e . in a checkout).
# Optional extras: [marabou] (adi, verify --engine marabou), [plots], [onnx] (export), [solvers] (cvxpy),
# [dask], [ray]; a command that needs a missing one says which in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
EXTRAS=${EXTRAS:-test,plots,marabou,onnx,dask}  # dask: CI runs the Dask cluster test
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -n "$TORCH_INDEX_URL" ]; then
    .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  else
    .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION"
  fi
fi
if ! .venv/bin/python -c "import deepsade, pytest, hypothesis, matplotlib, maraboupy, onnx, dask.distributed" \
     2>/dev/null || [ pyproject.toml -nt .venv/.deepsade-installed ]; then
  .venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
  touch .venv/.deepsade-installed
fi
