#!/usr/bin/env bash
# Run the test suite on CPU, one thread per pytest worker, no model-hub access (minutes on 2 cores).
# Workers: one per core, at most 4 (pytest-xdist); PTQV_TEST_WORKERS=0 runs them in this process.
# 704 tests in 8 min 25 s on 2 idle cores (14 min 44 s on one worker).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1)  # nproc obeys OMP_NUM_THREADS
workers=${PTQV_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}
exec .venv/bin/python -m pytest -q -n "$workers" --dist worksteal tests "$@"
