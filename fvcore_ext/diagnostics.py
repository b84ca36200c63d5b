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

__all__ = ["OpLog", "UncountableOpError", "UncountedOp", "collect_ops", "record_uncounted",
           "record_zero"]


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


class OpLog:
    """What one analysis saw beyond its counts, filled by :func:`collect_ops`.

    Attributes:
        uncounted: one :class:`UncountedOp` per op kind a rule could not count.
        zero_by_design: op name → calls that cost 0 by the contract (data movement,
            comparisons, shape arithmetic, elementwise ops under the paper preset).
    """

    def __init__(self):
        self.uncounted: List[UncountedOp] = []
        self.zero_by_design: Counter = Counter()
        self._first: Dict[str, UncountedOp] = {}
        self._calls: Counter = Counter()

    def _finish(self) -> None:
        self.uncounted = [UncountedOp(o.op, o.scope, o.reason, self._calls[o.op])
                          for o in self._first.values()]


class _State(threading.local):
    def __init__(self):
        self.warned: set = set()
        self.logs: List[OpLog] = []


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
    for log in _state.logs:
        log._first.setdefault(op, UncountedOp(op, scope, reason, 0))
        log._calls[op] += 1


def record_zero(op: str) -> None:
    """Record a call of ``op`` that costs 0 by the contract."""
    for log in _state.logs:
        log.zero_by_design[op] += 1


@contextmanager
def collect_ops() -> Iterator[OpLog]:
    """Collect what the analyses run inside the block saw: the yielded :class:`OpLog` is
    complete on exit."""
    log = OpLog()
    _state.logs.append(log)
    try:
        yield log
    finally:
        _state.logs.remove(log)
        log._finish()
