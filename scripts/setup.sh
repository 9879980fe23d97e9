#!/usr/bin/env bash
# One-time set-up into ./.venv: torch first, then deepsade with the extras the test suite uses.
# Safe to run again: it skips what is already there.
#
# Which torch: on an ordinary machine (no NVIDIA GPU) the CPU build is what you want. PyPI's default
# Linux wheel bundles CUDA (several GB of nvidia-* packages); PyTorch's CPU index holds the same version
# without it (about 200 MB), e.g. torch 2.13.0+cpu. This script uses the CPU index by default:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu     (default: CPU build)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126   (a CUDA 12.6 build, for a GPU machine)
#   TORCH_INDEX_URL=https://pypi.org/simple                  (PyPI's default wheel)
# By hand, in any environment:  pip install torch --index-url https://download.pytorch.org/whl/cpu
# then:                          pip install deepsade            (or pip install -e . in a checkout)
# The optional extras: [marabou] (adi, verify --engine marabou), [plots], [onnx] (export),
# [solvers] (cvxpy), [dask], [ray]; a command that needs a missing one says which in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
EXTRAS=${EXTRAS:-test,plots,marabou,onnx}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # PyPI stays reachable for torch's own dependencies (and as the fallback when the index is not)
  .venv/bin/python -m pip install --quiet "torch==$TORCH_VERSION" \
    --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple
fi
if ! .venv/bin/python -c "import deepsade, pytest, hypothesis, matplotlib, maraboupy" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.deepsade-installed ]; then
  .venv/bin/python -m pip install --quiet -e ".[$EXTRAS]"
  touch .venv/.deepsade-installed
fi
