"""What could not be counted: one warning per op kind, a record for the report, strict mode.

A handle never raises inside an analysis and never guesses (``docs/conventions.md``, "Where a
handle cannot count"): it warns once per op kind, naming the op, its module scope and what was
missing, counts 0 and records the op here. In strict mode it raises
:class:`UncountableOpError` instead.

An op with no rule at all (neither the host tool nor the pack counts it: "unknown") never
reaches a handle; each engine checks for those after its count and, in strict mode, raises
the same error (:func:`unknown_op_error`).
"""
from __future__ import annotations

import threading
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List

__all__ = ["NO_RULE", "OpLog", "UncountableOpError", "UncountedOp", "collect_ops",
           "record_uncounted", "record_zero", "unknown_op_error"]

NO_RULE = ("no rule for this op in the tool or the pack (it would count 0); add one with "
           "fvcore_ext.register_rule")


class UncountableOpError(RuntimeError):
    """Strict mode: an op was left out of the count. Either the op has no rule at all
    (``unknown`` is True: neither the host tool nor the pack counts it) or the pack has a rule
    that could not read this call (a missing shape, an unknown argument layout).

    Attributes: ``op`` (op name, ``"prim::PythonOp.MyKernel"``), ``scope`` (the innermost
    module scope in the trace, ``""`` for the top level), ``reason``, ``unknown``.
    """

    def __init__(self, op: str, scope: str, reason: str, unknown: bool = False):
        self.op, self.scope, self.reason, self.unknown = op, scope, reason, unknown
        super().__init__(f"{op} (in {scope or '<top>'}) cannot be counted: {reason}")


def unknown_op_error(unknown: Dict[str, int], scope: str = "") -> UncountableOpError:
    """The strict-mode error for ops no rule counts.

    Args:
        unknown: op name → calls, in the order the trace met them (fvcore's
            ``unsupported_ops()``); must not be empty.
        scope: the module the first op ran in (``""``: top level or not known).

    Returns:
        An :class:`UncountableOpError` (``unknown=True``) naming the first op, its calls and
        the other unknown ops, for the caller to raise.
    """
    (first, calls), *others = unknown.items()
    reason = f"{NO_RULE}; {calls} call(s)"
    if others:
        reason += "; also without a rule: " + ", ".join(f"{op} x{n}" for op, n in others)
    return UncountableOpError(first, scope, reason, unknown=True)


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
