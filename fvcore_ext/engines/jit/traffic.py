"""The bytes a traced graph's ops move (issue 29: "the JIT engine where its graph has the
dtypes"). Every node of the trace with complete tensor types (shape, strides, dtype) is measured
with the op table's byte rules, as the dispatch engine measures what runs
(:func:`fvcore_ext.ops.bytes.op_bytes`; an autograd Function, ``prim::PythonOp``, moves its
inputs and outputs, :func:`fvcore_ext.ops.bytes.boundary_bytes`). A node whose tensor types are
incomplete is reported unread. The trace names ops before decomposition (``aten::linear``, not
``t`` + ``addmm``), and drops work whose output nothing reads: its bytes can differ from the
dispatch engine's where the two see different ops (docs/roofline.md).
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import torch

from ...ops import OP_TABLE, report_name
from ...ops.bytes import TensorBytes, boundary_bytes, op_bytes
from ...roofline.estimate import OpRecord
from .reader import op_kind, read_value
from .tracing import unwrap_name

__all__ = ["graph_bytes"]

# JIT scalar type → bytes per element
_ITEMSIZE = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4,
             "Short": 2, "Char": 1, "Byte": 1, "Bool": 1, "ComplexFloat": 8,
             "ComplexDouble": 16, "ComplexHalf": 4, "Float8_e4m3fn": 1, "Float8_e5m2": 1}


class _Unreadable(Exception):
    """A tensor whose type the trace left incomplete."""


def _tensor(value: "torch._C.Value") -> Optional[TensorBytes]:
    jit_type = value.type()
    if not isinstance(jit_type, torch._C.TensorType):
        return None
    if not value.isCompleteTensor() or jit_type.scalarType() not in _ITEMSIZE:
        raise _Unreadable
    return TensorBytes(tuple(jit_type.sizes()), tuple(jit_type.strides()),
                       _ITEMSIZE[jit_type.scalarType()])


def _distinct(values) -> List["torch._C.Value"]:
    seen, out = set(), []
    for value in values:
        if value.unique() not in seen:
            seen.add(value.unique())
            out.append(value)
    return out


def _dtype(values) -> Optional[str]:
    for value in values:
        jit_type = value.type()
        if isinstance(jit_type, torch._C.TensorType) and jit_type.scalarType():
            return jit_type.scalarType().lower()
    return None


def graph_bytes(graph: "torch._C.Graph") -> Iterator[Tuple[str, Optional[OpRecord]]]:
    """``(op name, record)`` per op node of ``graph`` (``prim::`` bookkeeping nodes skipped):
    the node's bytes, dtype and modules (the scope the tracer recorded, the adapter's prefix
    removed), under its per-operator name (``OpRecord.macs`` is 0: the MACs are fvcore's).
    ``record`` is ``None`` for a node whose tensor types are incomplete (its bytes unknown)."""
    for node in graph.nodes():
        kind = op_kind(node)
        if kind.startswith("prim::") and not kind.startswith("prim::PythonOp."):
            continue
        inputs = _distinct(node.inputs())
        outputs = list(node.outputs())
        try:
            read = [_tensor(v) for v in inputs]
            written = [_tensor(v) for v in outputs]
            if kind.startswith("prim::PythonOp."):
                nbytes = boundary_bytes(read, written)
            else:
                scalars = [read_value(v) for v, t in zip(inputs, read) if t is None]
                nbytes = op_bytes(kind, read, written, args=scalars)
        except Exception:         # a node the byte rules cannot read: reported, never raised
            yield kind, None
            continue
        rule = OP_TABLE.get(kind)
        scope = [unwrap_name(part) for part in node.scopeName().split("/") if part]
        modules = ("",) + tuple(name for name in scope if name)
        yield kind, OpRecord(rule.name if rule else report_name(kind), 0, nbytes,
                             _dtype(outputs or inputs), modules)
