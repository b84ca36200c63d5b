"""The bytes a count's ops move, as the dispatch engine sees them run (issue 29).

Every op that reaches the dispatch engine is measured with the op table's byte rules
(:func:`fvcore_ext.ops.bytes.op_bytes`: what it reads plus what it writes, each tensor at its own
dtype, a broadcast input read once, views 0, gathers the rows they take, in-place ops their
tensor once each way); a boundary (SDPA, an autograd Function the table counts) moves its
inputs and outputs only (:func:`fvcore_ext.ops.bytes.boundary_bytes`). Tensors are read at their
physical shapes: under ``vmap`` a boundary sees per-example wrappers, which are unwrapped.
:class:`Traffic` adds them up per operator, family, module and pass, and keeps each op as an
:class:`fvcore_ext.roofline.estimate.OpRecord` for a roofline time on any device.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import torch
from torch._C import _functorch

from ..ops.bytes import TensorBytes, boundary_bytes, op_bytes
from ..roofline.estimate import OpRecord

__all__ = ["Traffic", "boundary_traffic", "op_traffic"]


def _physical(tensor: torch.Tensor) -> torch.Tensor:
    while _functorch.is_functorch_wrapped_tensor(tensor):
        tensor = _functorch.get_unwrapped(tensor)
    return tensor


def _distinct_pairs(values: Iterable[Any]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    # (as given, physical) for each tensor once (x * x reads x once): nested lists flattened,
    # functorch wrappers unwrapped
    seen, out, stack = set(), [], list(values)[::-1]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            tensor = _physical(value)
            if id(tensor) not in seen:
                seen.add(id(tensor))
                out.append((value, tensor))
        elif isinstance(value, (list, tuple)):
            stack.extend(reversed(value))
    return out


def _distinct(values: Iterable[Any]) -> List[torch.Tensor]:
    return [physical for _, physical in _distinct_pairs(values)]


def _dtype(tensors: Sequence[torch.Tensor]) -> Optional[str]:
    for tensor in tensors:
        if tensor.is_floating_point() or tensor.is_complex():
            return str(tensor.dtype)
    return str(tensors[0].dtype) if tensors else None


def _check_concrete(tensors: Sequence[torch.Tensor]) -> None:
    # A symbolic count (fvcore_ext.laws.symbolic) has SymInt sizes: its bytes are not read
    # (reading them could guard the symbol); the caller reports the op as unreadable.
    for tensor in tensors:
        if any(isinstance(d, torch.SymInt) for d in tensor.shape) or \
                (tensor.layout == torch.strided
                 and any(isinstance(d, torch.SymInt) for d in tensor.stride())):
            raise ValueError("symbolic shape: bytes are not read on a symbolic count")


def op_traffic(name: str, args: Sequence[Any], kwargs: dict, out: Any
               ) -> Tuple[int, Optional[str]]:
    """``(bytes, dtype)`` of one dispatch-level op: ``name`` (``aten::add_``) run on ``args``
    and ``kwargs`` returning ``out``. An ``out=`` tensor counts as written, not read.

    Raises:
        ValueError, TypeError: a tensor the byte rules cannot read (the caller reports it).
    """
    written = kwargs.get("out")
    inputs = _distinct(list(args) + [v for k, v in kwargs.items() if k != "out"])
    outputs = _distinct([written if written is not None else out])
    _check_concrete(inputs + outputs)
    nbytes = op_bytes(name, [TensorBytes.of(t) for t in inputs],
                      [TensorBytes.of(t) for t in outputs], args=args)
    return nbytes, _dtype(outputs or inputs)


def boundary_traffic(inputs: Sequence[Any], out: Any) -> Tuple[int, int, Optional[str]]:
    """``(forward bytes, backward bytes, dtype)`` of a boundary.

    Forward: a fused kernel reads its inputs and writes its outputs, nothing in between (flash
    attention never writes the scores). Backward (if autograd runs it): the backward kernel
    reads the forward's inputs (saved) and the gradient of every output (the output's size),
    and writes the gradient of every input that requires one (the input's size).

    Raises:
        ValueError, TypeError: a tensor the byte rules cannot read (the caller reports it).
    """
    pairs = _distinct_pairs(inputs)
    _check_concrete([physical for _, physical in pairs])
    read = [TensorBytes.of(physical) for _, physical in pairs]
    outputs = _distinct([out])
    _check_concrete(outputs)
    written = [TensorBytes.of(t) for t in outputs]
    grads = sum(tb.own_bytes for tb, (given, _) in zip(read, pairs) if given.requires_grad)
    forward = boundary_bytes(read, written)
    return forward, forward + grads, _dtype(outputs or [p for _, p in pairs])


class Traffic:
    """Bytes moved per operator, family, module and pass, and the op log for a roofline.

    Attributes (bytes):
        forward_bytes, backward_bytes, total_bytes.
        by_operator, by_family, by_module: bytes, both passes.
        records: every op as an :class:`OpRecord` (MACs, bytes, dtype, modules, pass).
        unreadable: op name → calls whose bytes no rule could read (counted as 0).
    """

    def __init__(self) -> None:
        self.forward_bytes = 0
        self.backward_bytes = 0
        self.by_operator: Counter = Counter()
        self.by_family: Counter = Counter()
        self.by_module: Counter = Counter()
        self.records: List[OpRecord] = []
        self.unreadable: Counter = Counter()

    @property
    def total_bytes(self) -> int:
        """``forward_bytes + backward_bytes``."""
        return self.forward_bytes + self.backward_bytes

    def add(self, name: str, family: str, macs: int, nbytes: int, dtype: Optional[str],
            modules: Iterable[str], backward: bool) -> None:
        """Record one op (``modules``: every module it ran inside)."""
        modules = tuple(set(modules))
        if backward:
            self.backward_bytes += nbytes
        else:
            self.forward_bytes += nbytes
        self.by_operator[name] += nbytes
        self.by_family[family] += nbytes
        for module in modules:
            self.by_module[module] += nbytes
        self.records.append(OpRecord(name, macs, nbytes, dtype, modules, backward))
