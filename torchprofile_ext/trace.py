"""A replacement for torchprofile's ``trace`` that keeps what counting needs.

It returns torchprofile's own ``Graph``/``Node``/``Variable`` objects, so every torchprofile
handler still works, with three differences:

- each node whose rule reads arguments carries ``node.call``, the
  :class:`fvcore_ext.ops.opcall.OpCall` that the pack's rules read (arguments in call order,
  scalars, PythonOp arguments rebuilt from ``cconv``), the same reader fvcore's handles use;
  other nodes carry ``None``;
- a ``prim::PythonOp`` node keeps its class name (``prim::PythonOp.SelectiveScanFn``), where
  torchprofile reduces every autograd Function to ``prim::pythonop``;
- a tensor whose dtype the trace does not know gets ``"undefined"`` instead of crashing
  torchprofile (``'NoneType' object has no attribute 'lower'``, e.g. the attention weights
  output of ``aten::_native_multi_head_attention`` under ``torch.no_grad()``).

It traces inside :func:`fvcore_ext.runtime.meta.meta_tracing`, so a model on the meta device traces as
on CPU (convolutions included) and one that reads tensor data there raises a one-line
:class:`fvcore_ext.runtime.meta.MetaDeviceError`.

Outputs may be tensors, tuples, lists, dicts or dataclasses.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional

import torch

from fvcore_ext.engines.jit import (TraceAdapter, exclusive_trace, op_kind, read_node,
                                    unwrap_name)
from fvcore_ext.ops import OP_TABLE
from fvcore_ext.runtime.meta import meta_tracing

from ._compat import Graph, Node, Variable, set_operator

__all__ = ["trace"]


def _scope(jit_node) -> str:
    return "/".join(unwrap_name(part) for part in jit_node.scopeName().split("/")).strip("/")


def trace(model: torch.nn.Module, args: Any = (), kwargs: Optional[dict] = None):
    """Trace ``model`` on ``args`` (a tensor or a tuple of tensors) into torchprofile's IR.

    Returns:
        A torchprofile ``Graph`` whose nodes have ``operator`` and ``call`` as described above.

    Raises:
        ValueError: ``kwargs`` given (torchprofile does not support them either).
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data.
    """
    if kwargs is not None:
        raise ValueError("Keyword arguments are not supported for now. "
                         "Please use positional arguments instead.")
    if isinstance(args, torch.Tensor):
        args = (args,)
    with exclusive_trace(), warnings.catch_warnings(record=True), meta_tracing():
        jit_graph, _ = torch.jit._get_trace_graph(TraceAdapter(model, None), tuple(args))

    variables = {}
    for jit_node in jit_graph.nodes():
        for value in list(jit_node.inputs()) + list(jit_node.outputs()):
            jit_type = value.type()
            if isinstance(jit_type, torch._C.TensorType):
                shape = jit_type.sizes() if value.isCompleteTensor() else None
                variables[value] = Variable(name=value.debugName(),
                                            dtype=jit_type.scalarType() or "undefined",
                                            shape=shape)
            else:
                variables[value] = Variable(name=value.debugName(), dtype=str(jit_type))

    nodes = []
    for jit_node in jit_graph.nodes():
        scope = _scope(jit_node)
        node = Node(
            operator=jit_node.kind(),
            attributes={s: getattr(jit_node, jit_node.kindOf(s))(s)
                        for s in jit_node.attributeNames()},
            inputs=[variables[v] for v in jit_node.inputs()],
            outputs=[variables[v] for v in jit_node.outputs()],
            scope=scope,
        )
        kind = op_kind(jit_node)
        if jit_node.kind() == "prim::PythonOp":
            set_operator(node, kind)
        rule = OP_TABLE.get(kind)
        # Only a rule that reads arguments needs them; most nodes move data.
        # Read now: the JIT graph does not outlive this function.
        node.call = (dataclasses.replace(read_node(jit_node, lazy=False), scope=scope)
                     if rule is not None and not rule.always_zero else None)
        nodes.append(node)

    return Graph(
        name=f"{type(model).__module__}.{type(model).__name__}",
        variables=list(variables.values()),
        inputs=[variables[v] for v in jit_graph.inputs() if v in variables],
        outputs=[variables[v] for v in jit_graph.outputs() if v in variables],
        nodes=nodes,
    )
