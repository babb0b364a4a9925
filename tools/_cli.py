"""Shared command-line plumbing: one-line errors, exit codes, import path."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main_guard(fn, debug: bool) -> int:
    """Run ``fn``; turn a PTQError into one line on stderr and exit code 2 (1 for other errors)."""
    from ptqvision.errors import PTQError

    try:
        fn()
        return 0
    except PTQError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun with --resume to continue", file=sys.stderr)
        return 130
