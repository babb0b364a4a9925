#!/usr/bin/env bash
# Set everything up: a virtual environment in .venv with the pinned CPU stack (torch 2.13.0+cpu,
# torchvision 0.28.0, timm, segment-anything, pycocotools, mmengine-lite, ...) and ptqvision itself
# in editable mode. The constraints file stays active for every pip call so that no dependency can
# pull a newer, CUDA-enabled torch. On a GPU machine, install your CUDA torch and `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_CONSTRAINT="$PWD/requirements/constraints-cpu.txt"
.venv/bin/python -m pip install --quiet -r requirements/cpu.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -c "import ptqvision, torchvision, timm, segment_anything, pycocotools, mmengine, scipy; print('ptqvision', ptqvision.__version__, 'ready: torch', __import__('torch').__version__, 'torchvision', torchvision.__version__)"
