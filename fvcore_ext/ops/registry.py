"""The op table's registry: :class:`OpRule`, :data:`OP_TABLE`, :func:`add_rule`, :func:`counts`,
the backward rules (:data:`BACKWARD_RULES`, :func:`backward_of`) and the small argument readers
the family modules share.

One entry per op name, registered with :func:`counts`; a second registration of a name is an
error. Each reader takes an :class:`OpCall`, reads shapes and flags, and calls a pure rule from
:mod:`fvcore_ext.rules`. The readers live by family beside this module (``linalg``,
``convolution``, ``normalization``, ...), mirroring :mod:`fvcore_ext.rules`. Every rule belongs
to a family (:data:`FAMILIES`), which the op census reports; users add rules of their own with
:func:`fvcore_ext.register_rule`.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations

import functools
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

from .diagnostics import record_uncounted, record_zero
from .opcall import CannotCount, OpCall, TensorArg
from ..rules import Cost, check_mac_count

__all__ = ["TABLE_LOCK", "BACKWARD_RULES", "BackwardReader", "BackwardRule", "FAMILIES", "OP_TABLE", "OpRule",
           "Reader", "add_rule", "aten_ops", "backward_of", "bool_scalar", "check_reader",
           "costs_nothing", "counts", "families_by_name", "int_scalar", "needs_by_name",
           "on_table_change", "output_used", "remove_rule", "report_name", "rule_result",
           "table_version", "with_inplace"]

# A built-in reader returns a Cost; a user rule may return a bare int (rule_result).
Reader = Callable[[OpCall], Union[Cost, int]]

# What a rule counts, as the census reports it. "zero-cost" ops compute nothing the contract
# counts (data movement, comparisons, routing); "custom" is the default of user rules.
FAMILIES = ("matmul", "convolution", "recurrent", "fft", "normalization", "resampling",
            "attention", "state-space scan", "elementwise", "reduction", "zero-cost", "custom")


@dataclass(frozen=True)
class OpRule:
    """How one op name is counted: ``read`` turns a call into a :class:`Cost`; ``name`` is the
    key in per-operator tables (fvcore's simplified name unless fvcore uses another one);
    ``family`` is one of :data:`FAMILIES`."""

    kind: str
    read: Reader
    name: str
    family: str

    @property
    def always_zero(self) -> bool:
        """Whether the op costs 0 whatever its arguments."""
        return self.read is costs_nothing

    def count(self, call: OpCall, preset: str, strict: bool = False) -> int:
        """MACs of ``call`` under ``preset``. What the rule returns passes :func:`rule_result`,
        the same check under every preset. A call the rule cannot read, or a result that is no
        count of MACs, is recorded and counted as 0
        (:func:`fvcore_ext.diagnostics.record_uncounted`), or raises
        :class:`fvcore_ext.diagnostics.UncountableOpError` if ``strict``; nothing else escapes,
        so a handle never crashes an analysis."""
        try:
            macs = rule_result(self.read(call), self.read).macs(preset)
        except Exception as error:  # a rule must never crash the analysis around it
            reason = str(error) if isinstance(error, CannotCount) else \
                f"{type(error).__name__}: {error}"
            record_uncounted(call.kind, call.scope, reason, strict)
            return 0
        if macs == 0:
            record_zero(call.kind)
        return macs


def rule_result(result: Union[Cost, int], read: Optional[Callable] = None) -> Cost:
    """What a rule returned, as a :class:`Cost`: the one check of rule results (issue 22),
    used by :meth:`OpRule.count` for built-in and user rules alike and whatever the preset.

    A :class:`Cost` was checked when it was built (:func:`fvcore_ext.rules.check_mac_count`); a bare
    integer (``int``, ``numpy.int64``, not ``bool``) >= 0 is ``Cost(core=result)``, counted under
    both presets.

    Raises:
        CannotCount: anything else (a float, a negative int, ``None``, a tensor), naming the
            rule ``read`` and the value.
    """
    if isinstance(result, Cost):
        return result
    try:
        return Cost(core=check_mac_count(result))
    except (TypeError, ValueError):
        rule = getattr(read, "__qualname__", None) or repr(read)
        raise CannotCount(f"the rule {rule!r} returned {result!r}; a rule returns MACs as an "
                          f"int >= 0 or a Cost") from None


def check_reader(read: Any, what: str = "a rule") -> None:
    """Refuse, at registration, a rule that cannot be called with one :class:`OpCall`.

    Raises:
        TypeError: ``read`` is not callable (``register_rule(op)(42)``), or its signature takes
            no single positional argument (``lambda: 5``, ``lambda call, extra: 5``).
    """
    if not callable(read):
        raise TypeError(f"{what} must be a function of one OpCall returning MACs, not "
                        f"{read!r} ({type(read).__name__})")
    try:
        signature = inspect.signature(read)
    except (TypeError, ValueError):    # a builtin or extension without a signature: trust it
        return
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(f"{what} must take one argument (an OpCall); "
                        f"{getattr(read, '__qualname__', read)!r} has the signature "
                        f"{signature}") from None


OP_TABLE: Dict[str, OpRule] = {}
# Held while the table changes (and its listeners rebuild what they built from it), so rules
# registered from two threads are all kept (issue 26). Readers iterate over a snapshot.
TABLE_LOCK = threading.RLock()
_version = 0
_listeners: List[Callable[[], None]] = []


def table_version() -> int:
    """A number that changes whenever a rule is added or removed, so an adapter that built its
    table earlier (a registered torchprofile) knows to rebuild it."""
    return _version


def on_table_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after every rule added or removed: how the tables adapters built
    earlier (``vmamba_handles``, ``paper_handles``, a registered torchprofile) pick up
    :func:`fvcore_ext.register_rule` at once."""
    _listeners.append(listener)


def _changed() -> None:
    global _version
    _version += 1
    for listener in _listeners:
        listener()


def costs_nothing(call: OpCall) -> Cost:
    """The reader of ops that cost 0 whatever their arguments (data movement, comparisons);
    adapters may skip reading such a call at all (:attr:`OpRule.always_zero`)."""
    return Cost()


def families_by_name() -> Dict[str, str]:
    """Per-operator name (:attr:`OpRule.name`, the keys of fvcore's ``by_operator()``) →
    family, for the current table."""
    return _families_by_name(_version)


@functools.lru_cache(maxsize=1)
def _families_by_name(version: int) -> Dict[str, str]:
    families: Dict[str, str] = {}
    for rule in list(OP_TABLE.values()):
        families.setdefault(rule.name, rule.family)
    return families


def report_name(kind: str) -> str:
    """fvcore's per-operator name: the op name without its namespace (``aten::mul`` → ``mul``,
    ``prim::PythonOp.SelectiveScanFn`` → ``PythonOp.SelectiveScanFn``)."""
    return kind.split("::", 1)[-1]


def add_rule(kind: str, read: Reader, family: str, name: Optional[str] = None,
             replace: bool = False) -> OpRule:
    """Put ``read`` in the table under op name ``kind`` and return the new :class:`OpRule`.

    Raises:
        ValueError: ``kind`` already has a rule and ``replace`` is false, or ``family`` is not
            one of :data:`FAMILIES`. TypeError: ``read`` cannot take one call
            (:func:`check_reader`).
    """
    check_reader(read)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    with TABLE_LOCK:
        if kind in OP_TABLE and not replace:
            raise ValueError(f"{kind} is registered twice")
        OP_TABLE[kind] = rule = OpRule(kind, read, name or report_name(kind), family)
        _changed()
    return rule


def remove_rule(kind: str) -> OpRule:
    """Take ``kind``'s rule out of the table and return it; ``KeyError`` if it has none."""
    with TABLE_LOCK:
        rule = OP_TABLE.pop(kind)
        _changed()
    return rule


def counts(*kinds: str, family: str, name: Optional[str] = None) -> Callable[[Reader], Reader]:
    """Register ``read`` for each op name in ``kinds`` in ``family``; ``ValueError`` on a
    duplicate name."""

    def register(read: Reader) -> Reader:
        for kind in kinds:
            add_rule(kind, read, family, name)
        return read

    return register


def aten_ops(*names: str) -> tuple:
    """``("mul", "add")`` → ``("aten::mul", "aten::add")``."""
    return tuple(f"aten::{n}" for n in names)


def with_inplace(*names: str) -> tuple:
    """The aten op names and their in-place forms (``aten::mul``, ``aten::mul_``)."""
    return aten_ops(*names) + aten_ops(*(n + "_" for n in names))


def bool_scalar(call: OpCall, index, default: bool) -> bool:
    """The call's argument ``index`` (position or signature name) as a bool; ``CannotCount``
    if it is anything else."""
    value = call.scalar(index, default)
    if not isinstance(value, bool):
        raise CannotCount(f"argument {index} is {value!r}, expected a bool")
    return value


def int_scalar(call: OpCall, index, default: Optional[int] = None) -> int:
    """The call's argument ``index`` as an int (not a bool); ``CannotCount`` otherwise."""
    value = call.scalar(index, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CannotCount(f"argument {index} is {value!r}, expected an int")
    return value


def output_used(call: OpCall, index: int) -> bool:
    """Whether output ``index`` of the call is a tensor the graph goes on to use."""
    out = call.outputs[index] if index < len(call.outputs) else None
    return isinstance(out, TensorArg) and out.used


BackwardReader = Callable[[OpCall, List[bool]], Cost]


@dataclass(frozen=True)
class BackwardRule:
    """The backward of a fused op: ``read(forward_call, needs)`` → :class:`Cost`, counted in
    ``family`` (``None``: the forward rule's family)."""

    read: BackwardReader
    family: Optional[str] = None


BACKWARD_RULES: Dict[str, BackwardRule] = {}


def backward_of(*kinds: str, family: Optional[str] = None
                ) -> Callable[[BackwardReader], BackwardReader]:
    """Register ``read`` as the backward of each op in ``kinds`` (the JIT-level name the
    forward is counted as), in ``family`` (default: the forward's).

    Raises:
        ValueError: a duplicate, an op without a forward rule, or an unknown family.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def register(read: BackwardReader) -> BackwardReader:
        for kind in kinds:
            if kind in BACKWARD_RULES or kind not in OP_TABLE:
                raise ValueError(f"{kind}: backward registered twice or without a forward rule")
            BACKWARD_RULES[kind] = BackwardRule(read, family)
        return read

    return register


def needs_by_name(names: tuple, needs: List[bool]) -> Dict[str, bool]:
    """A backward reader's "which arguments need a gradient", keyed by argument name."""
    return {name: bool(need) for name, need in zip(names, needs)}
