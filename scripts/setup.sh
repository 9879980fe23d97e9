#!/usr/bin/env bash
# One-time set-up into ./.venv: the CPU build of torch first (so pip never pulls a multi-GB CUDA
# build), then deepsade with its test, plot and dask extras. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet torch==2.13.0
fi
if ! .venv/bin/python -c "import deepsade, pytest, hypothesis, matplotlib, dask.distributed" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.deepsade-installed ]; then
  .venv/bin/python -m pip install --quiet -e ".[test,plots,dask]"  # dask: CI runs the Dask cluster test
  touch .venv/.deepsade-installed
fi
