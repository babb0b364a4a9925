"""Test settings: one CPU thread, no hub access, ptqvision imported before torchvision."""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ptqvision  # noqa: E402,F401  (installs the torchvision shim first)
import pytest  # noqa: E402
import torch  # noqa: E402

from ptqvision.utils.runtime import tune_cpu_allocator  # noqa: E402

torch.set_num_threads(1)
tune_cpu_allocator()

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


@pytest.fixture
def repo_root() -> str:
    return ROOT
