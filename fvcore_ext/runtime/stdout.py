"""Writing a result to stdout so that a reader who left early is one line, not a traceback.

Shared by every command (``python -m fvcore_ext``, ``census``, ``get_flops``). Imports nothing
from the package.
"""
from __future__ import annotations

import os
import sys

__all__ = ["BrokenPipe", "write_stdout"]


class BrokenPipe(Exception):
    """Whoever read stdout closed it early (``| head``), or it was closed before the run
    (``>&-``)."""


def write_stdout(text: str) -> None:
    """Print ``text`` and flush now.

    Raises:
        BrokenPipe: the reader left (``| head -c 10``) or stdout is closed (``>&-``): the
            caller prints one line and exits 2, where Python would print a ``BrokenPipeError``
            traceback here or at exit.
    """
    if sys.stdout is None:                 # `>&-`: Python starts with no stdout at all
        raise BrokenPipe("stdout is closed: nothing to write the result to")
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise BrokenPipe("stdout was closed before the output was written (broken pipe)"
                         ) from None
    except (OSError, ValueError) as error:  # a closed file object, EBADF
        raise BrokenPipe(f"stdout cannot be written: {error}") from None


def _silence_stdout() -> None:
    # Python's advice (signal docs, "Note on SIGPIPE"): point stdout at devnull, so the flush
    # at exit does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):   # stdout is no file (a test's capture)
        pass
