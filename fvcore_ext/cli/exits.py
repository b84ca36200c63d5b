"""How every command ends: one line on stderr and a status, never a traceback.

Shared by ``python -m fvcore_ext`` (MODEL, ``compare``, ``hf:``), ``census`` and ``law``.
"""
from __future__ import annotations

import json
import sys
from typing import Callable

import torch

from ..runtime.stdout import BrokenPipe, write_stdout

__all__ = ["fail", "guarded"]


def guarded(run: Callable[[], int]) -> int:
    """``run()``'s exit status, with the caller's RNG stream kept (a model built with random
    weights draws from a fork of it) and Ctrl-C as one line on stderr and status 130."""
    try:
        with torch.random.fork_rng(devices=[]):
            return run()
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return 130


def fail(error: Exception, json_format: bool, stdout_used: bool = False) -> int:
    """Report ``error`` as one line on stderr and return status 2. Under ``--format json`` a
    script reading stdout also gets ``{"error": ..., "status": 2}`` there, unless the error
    is stdout itself (:class:`BrokenPipe`) or a result was already written to it."""
    print(f"error: {error}", file=sys.stderr)
    if json_format and not isinstance(error, BrokenPipe) and not stdout_used:
        try:
            write_stdout(json.dumps({"error": str(error), "status": 2}))
        except BrokenPipe:
            pass
    return 2
