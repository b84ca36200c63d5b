"""What could not be counted: one warning per op kind, a record for the report, strict mode.

A handle never raises inside an analysis and never guesses (``../shared/CONVENTIONS.md``,
"Where a handle cannot count"): it warns once per op kind, naming the op, its module scope and
what was missing, counts 0 and records the op here. In strict mode it raises
:class:`UncountableOpError` instead.
"""
from __future__ import annotations

import threading
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List

from contextlib import contextmanager

__all__ = ["UncountableOpError", "UncountedOp", "record_uncounted", "uncounted_ops",
           "collect_uncounted"]


class UncountableOpError(RuntimeError):
    """Strict mode: an op the pack has a rule for could not be counted.

    Attributes: ``op`` (op name), ``scope`` (module scope in the trace), ``reason``.
    """

    def __init__(self, op: str, scope: str, reason: str):
        self.op, self.scope, self.reason = op, scope, reason
        super().__init__(f"{op} (in {scope or '<top>'}) cannot be counted: {reason}")


@dataclass(frozen=True)
class UncountedOp:
    """One op kind that was counted as 0 because a rule could not read what it needs."""

    op: str
    scope: str
    reason: str
    calls: int


class _Log(threading.local):
    def __init__(self):
        self.first: Dict[str, UncountedOp] = {}
        self.calls: Counter = Counter()
        self.warned: set = set()
        self.collectors: List["_Log"] = []


_log = _Log()


def record_uncounted(op: str, scope: str, reason: str, strict: bool) -> None:
    """Record that ``op`` (called in ``scope``) was counted as 0 for ``reason``: warn the first
    time this op kind is seen in the process, or raise :class:`UncountableOpError` if ``strict``."""
    if strict:
        raise UncountableOpError(op, scope, reason)
    if op not in _log.warned:
        _log.warned.add(op)
        warnings.warn(f"{op} (in {scope or '<top>'}) was not counted (0 MACs): {reason}",
                      RuntimeWarning, stacklevel=2)
    for log in [_log] + _log.collectors:
        log.first.setdefault(op, UncountedOp(op, scope, reason, 0))
        log.calls[op] += 1


def uncounted_ops() -> List[UncountedOp]:
    """Every op kind recorded as uncounted in this thread so far, with its call count."""
    return [UncountedOp(o.op, o.scope, o.reason, _log.calls[o.op]) for o in _log.first.values()]


@contextmanager
def collect_uncounted() -> Iterator[List[UncountedOp]]:
    """Collect the uncounted ops of one analysis: the yielded list is filled on exit."""
    collector = _Log()
    _log.collectors.append(collector)
    result: List[UncountedOp] = []
    try:
        yield result
    finally:
        _log.collectors.remove(collector)
        result.extend(UncountedOp(o.op, o.scope, o.reason, collector.calls[o.op])
                      for o in collector.first.values())
