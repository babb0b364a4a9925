"""Shared command-line plumbing: one-line errors, exit codes, import path."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main_guard(fn, debug: bool) -> int:
    """Run ``fn``; turn a PTQError into one line on stderr and exit code 2 (1 for other errors)."""
    from ptqvision.errors import PTQError
    from ptqvision.utils.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    try:
        fn()
        return 0
    except PTQError as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun with --resume to continue", file=sys.stderr)
        return 130


def one_line(exc: BaseException) -> str:
    """Return the user-facing line of an error; a DataLoader worker wraps it in a whole traceback,
    whose last line is 'module.ErrorClass: message'."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(exc).__name__
    last = lines[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return last[len(prefix):] if last.startswith(prefix) else last
