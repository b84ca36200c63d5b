"""A tool-independent view of one traced op call: what every counting rule reads.

Each tool adapter turns its own graph node into an :class:`OpCall` (fvcore: ``torch._C.Value``
lists, see :mod:`fvcore_ext.engines.jit.reader`); the op table (:mod:`fvcore_ext.ops`) reads
shapes, scalars and flags from it and calls the pure rules in :mod:`fvcore_ext.rules`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

__all__ = ["CannotCount", "OpCall", "TensorArg", "UNKNOWN"]


class CannotCount(Exception):
    """Raised by a rule when the call lacks what the rule needs (a shape, an argument, a
    supported variant). The adapter turns it into a one-time warning and a count of 0, or into
    :class:`fvcore_ext.ops.diagnostics.UncountableOpError` in strict mode."""


class _Unknown:
    """A non-tensor argument whose value the trace does not record (a size computed at run time)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument or output.

    Attributes:
        shape: sizes, or ``None`` when the graph has no complete type (for example inside a
            scripted submodule).
        dtype: scalar type name as the JIT prints it (``"Float"``, ``"Bool"``, ``"ComplexFloat"``),
            or ``None`` if unknown.
        from_sizes: a 0-dim tensor computed only from traced sizes (``aten::size`` →
            ``prim::NumToTensor``) and constants, i.e. shape arithmetic, not compute.
        used: for an output, whether anything in the graph reads it (the trace drops the ops
            that would consume an unused output, so a fused op must not count them either).
    """

    shape: Optional[Tuple[int, ...]]
    dtype: Optional[str] = None
    from_sizes: bool = False
    used: bool = True

    @property
    def is_complex(self) -> bool:
        """Whether the dtype is complex (``ComplexFloat``, ...)."""
        return bool(self.dtype) and self.dtype.startswith("Complex")


@dataclass(frozen=True)
class OpCall:
    """One op call: ``kind`` (``"aten::mul"`` or ``"prim::PythonOp.<ClassName>"``), its
    arguments in call order (a :class:`TensorArg`, a Python scalar, string, list, ``None`` or
    :data:`UNKNOWN`), its outputs and the module scope it ran in."""

    kind: str
    args: Sequence[Any]
    outputs: Sequence[Any]
    scope: str = ""
    _names: Dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def with_signature(self, names: Sequence[str]) -> "OpCall":
        """The same call with its arguments named by ``names`` (a Function's ``forward``
        parameters after ``ctx``). Arguments left out of the call take their defaults.
        ``CannotCount`` if the call has more arguments than ``names``."""
        if len(self.args) > len(names):
            raise CannotCount(f"unknown argument layout: {len(self.args)} arguments, "
                              f"the known signature has {len(names)} ({', '.join(names)})")
        return OpCall(self.kind, self.args, self.outputs, self.scope,
                      {name: i for i, name in enumerate(names)})

    def arg(self, key, default: Any = None) -> Any:
        """Argument ``key`` (position or, after :meth:`with_signature`, name), ``default`` if the
        call does not pass it."""
        i = self._names.get(key, len(self.args)) if isinstance(key, str) else key
        return self.args[i] if i < len(self.args) else default

    def has_tensor(self, key) -> bool:
        """Whether argument ``key`` is a tensor (not ``None`` or absent)."""
        return isinstance(self.arg(key), TensorArg)

    def shape(self, key) -> Tuple[int, ...]:
        """Shape of tensor argument ``key``; ``CannotCount`` naming the argument if it is not a
        tensor or its shape was not recorded."""
        value = self.arg(key)
        if not isinstance(value, TensorArg):
            raise CannotCount(f"argument {key!r} is {value!r}, not a tensor")
        if value.shape is None:
            raise CannotCount(f"no shape recorded for argument {key!r} (incomplete tensor type)")
        return value.shape

    def scalar(self, key, default: Any = None) -> Any:
        """Non-tensor argument ``key``; ``CannotCount`` if the trace did not record its value."""
        value = self.arg(key, default)
        if value is UNKNOWN:
            raise CannotCount(f"argument {key!r} has no constant value in the trace")
        return value

    def output_shape(self, index: int = 0) -> Tuple[int, ...]:
        """Shape of output ``index``; ``CannotCount`` if missing."""
        value = self.outputs[index] if index < len(self.outputs) else None
        if not isinstance(value, TensorArg) or value.shape is None:
            raise CannotCount(f"no shape recorded for output {index}")
        return value.shape
