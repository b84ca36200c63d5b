"""Read ``torch._C.Value``s and ``torch._C.Node``s of a traced graph into an :class:`OpCall`.

The single place that touches the JIT graph. fvcore hands each handle the node's input and
output Values; the node itself is ``outputs[0].node()``. For ``prim::PythonOp`` (a
``torch.autograd.Function``), the arguments of ``Function.apply`` are rebuilt in call order from
``node.cconv()`` (``'d'``: the next tensor input, ``'c'``: the next of ``node.scalar_args()``),
so ``None`` and scalar arguments keep their positions; debug names are never read.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch

from ...ops.opcall import UNKNOWN, OpCall, TensorArg

__all__ = ["op_kind", "read_call", "read_node", "read_value"]

_MAX_SIZE_CHAIN = 32


def op_kind(node: "torch._C.Node") -> str:
    """The op name a handle is registered under: ``node.kind()``, or
    ``"prim::PythonOp.<ClassName>"`` for an autograd Function, as fvcore names it."""
    kind = node.kind()
    if kind == "prim::PythonOp":
        kind = kind + "." + node.pyname()
    return kind


def _size_origin(value: "torch._C.Value", depth: int = 0):
    """``"size"`` if a 0-dim tensor is computed from traced sizes only (and constants),
    ``"const"`` if from constants only, ``None`` otherwise."""
    node = value.node()
    kind = node.kind()
    if kind == "prim::NumToTensor":
        return "size"
    if kind == "prim::Constant":
        return "const"
    if depth > _MAX_SIZE_CHAIN:
        return None
    tensor_inputs = [v for v in node.inputs() if isinstance(v.type(), torch._C.TensorType)]
    if not tensor_inputs:
        return None
    origins = set()
    for v in tensor_inputs:
        if not (v.isCompleteTensor() and v.type().dim() == 0):
            return None
        origins.add(_size_origin(v, depth + 1))
    if None in origins:
        return None
    return "size" if "size" in origins else "const"


def read_value(value: "torch._C.Value") -> Any:
    """A JIT Value as a :class:`TensorArg`, a constant (int, float, bool, str, ``None``, list),
    a list rebuilt from ``prim::ListConstruct``, or :data:`UNKNOWN`."""
    jit_type = value.type()
    if isinstance(jit_type, torch._C.TensorType):
        if not value.isCompleteTensor():
            return TensorArg(None, jit_type.scalarType())
        shape = tuple(jit_type.sizes())
        from_sizes = len(shape) == 0 and _size_origin(value) == "size"
        return TensorArg(shape, jit_type.scalarType(), from_sizes)
    node = value.node()
    kind = node.kind()
    if kind == "prim::Constant":
        return value.toIValue()
    if kind == "prim::ListConstruct":
        return [read_value(v) for v in node.inputs()]
    if isinstance(jit_type, torch._C.NoneType):
        return None
    return UNKNOWN


def _read_output(value: "torch._C.Value") -> Any:
    out = read_value(value)
    if isinstance(out, TensorArg) and not value.uses():
        out = dataclasses.replace(out, used=False)
    return out


class _LazyValues(Sequence):
    """Arguments or outputs read from the graph only when a rule asks for them: most rules
    read two or three of an op's arguments, and reading constants and lists is most of the
    cost of a handle."""

    def __init__(self, items: Sequence[Any], read: Callable[[Any], Any]):
        self._items, self._read, self._done = list(items), read, {}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if index not in self._done:
            self._done[index] = self._read(self._items[index])
        return self._done[index]

    def __repr__(self) -> str:
        return repr(tuple(self))


def _read_argument(item: Any) -> Any:
    return read_value(item) if isinstance(item, torch._C.Value) else item


def read_node(node: "torch._C.Node", lazy: bool = True) -> OpCall:
    """Read a whole node: its op name, arguments in call order, outputs and scope. With
    ``lazy`` (for a rule run while the graph is alive, as fvcore's handles are) arguments and
    outputs are read from the graph on first access; without, all are read now."""
    kind = op_kind(node)
    inputs = list(node.inputs())
    if node.kind() == "prim::PythonOp":
        scalars = iter(node.scalar_args())
        tensors = iter(inputs)
        items = [next(tensors) if code == "d" else next(scalars) for code in node.cconv()]
    else:
        items = inputs
    args = _LazyValues(items, _read_argument)
    outputs = _LazyValues(list(node.outputs()), _read_output)
    if not lazy:
        args, outputs = tuple(args), tuple(outputs)
    return OpCall(kind, args, outputs, node.scopeName())


def read_call(inputs: Sequence["torch._C.Value"], outputs: Sequence["torch._C.Value"]) -> OpCall:
    """What an fvcore handle receives, ``(inputs, outputs)``, as an :class:`OpCall`."""
    if not outputs:
        return OpCall("<no outputs>", tuple(read_value(v) for v in inputs), ())
    return read_node(outputs[0].node())
