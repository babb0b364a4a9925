#!/usr/bin/env bash
# Run the test suite on CPU with one thread and no model-hub access (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q tests "$@"
