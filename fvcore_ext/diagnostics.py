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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List

__all__ = ["UncountableOpError", "UncountedOp", "collect_uncounted", "record_uncounted"]


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


class _Collector:
    """The uncounted ops of one analysis: first occurrence per op kind, and call counts."""

    def __init__(self):
        self.first: Dict[str, UncountedOp] = {}
        self.calls: Counter = Counter()


class _State(threading.local):
    def __init__(self):
        self.warned: set = set()
        self.collectors: List[_Collector] = []


_state = _State()


def record_uncounted(op: str, scope: str, reason: str, strict: bool) -> None:
    """Record that ``op`` (called in module ``scope``) was counted as 0 for ``reason``: warn the
    first time this op kind is seen in the process, or raise :class:`UncountableOpError` if
    ``strict``."""
    scope = scope.split("/")[-1]  # the innermost module of fvcore's "outer/outer.inner" scopes
    if strict:
        raise UncountableOpError(op, scope, reason)
    if op not in _state.warned:
        _state.warned.add(op)
        warnings.warn(f"{op} (in {scope or '<top>'}) was not counted (0 MACs): {reason}",
                      RuntimeWarning, stacklevel=2)
    for collector in _state.collectors:
        collector.first.setdefault(op, UncountedOp(op, scope, reason, 0))
        collector.calls[op] += 1


@contextmanager
def collect_uncounted() -> Iterator[List[UncountedOp]]:
    """Collect the uncounted ops of one analysis: the yielded list is filled on exit, one
    :class:`UncountedOp` per op kind with its number of calls."""
    collector = _Collector()
    _state.collectors.append(collector)
    result: List[UncountedOp] = []
    try:
        yield result
    finally:
        _state.collectors.remove(collector)
        result.extend(UncountedOp(o.op, o.scope, o.reason, collector.calls[o.op])
                      for o in collector.first.values())
