"""Trace any model: positional or named inputs, outputs of any nesting.

The JIT tracer accepts only tensors, tuples and lists as outputs, and positional inputs.
:class:`TraceAdapter` wraps a model so that both fvcore and torchprofile can trace it; the
wrapped model's module names gain a ``model.`` prefix, which :func:`unwrap_name` removes.
"""
from __future__ import annotations

import dataclasses
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set

import torch
from torch.overrides import TorchFunctionMode
from torch import nn

from ...runtime.meta import meta_tracing

__all__ = ["TraceAdapter", "eval_mode", "flatten_tensors", "module_mode", "parameter_consumers",
           "recording_trace_graph", "unwrap_model", "unwrap_name"]

_WRAPPED = "model"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The eager module inside ``nn.DataParallel`` / ``DistributedDataParallel`` (``.module``)
    and ``torch.compile`` (``._orig_mod``) wrappers, which the JIT tracer cannot see through.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: ``model`` is a TorchScript module, which neither fvcore nor torchprofile
            can trace: count the eager module it was scripted from.
    """
    while True:
        if isinstance(model, torch.jit.ScriptModule):
            raise ValueError(f"{type(model).__name__} is a TorchScript module; fvcore and "
                             f"torchprofile trace eager modules only: count the nn.Module it "
                             f"was scripted from")
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and type(model).__name__ == "OptimizedModule":
            model = model._orig_mod
        else:
            return model


def flatten_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj``, depth first."""
    # Outputs may be tensors, tuples, lists, dicts or dataclasses (transformers' ModelOutput).
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from flatten_tensors(value)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from flatten_tensors(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from flatten_tensors(value)


class TraceAdapter(nn.Module):
    """Calls the model with positional or named inputs and flattens its output to a tuple of
    tensors, which is all the JIT tracer accepts."""

    def __init__(self, model: nn.Module, input_names: Optional[Sequence[Optional[str]]]):
        super().__init__()
        setattr(self, _WRAPPED, unwrap_model(model))
        self.input_names = list(input_names or [])

    def forward(self, *args: torch.Tensor):
        model = getattr(self, _WRAPPED)
        positional = [a for a, n in zip(args, self.input_names + [None] * len(args)) if n is None]
        named = {n: a for a, n in zip(args, self.input_names) if n is not None}
        outputs = tuple(flatten_tensors(model(*positional, **named)))
        if not outputs:
            raise ValueError("the model returned no tensor")
        return outputs


def unwrap_name(name: str) -> str:
    """A module or scope name inside :class:`TraceAdapter` as the user's model names it."""
    if name == _WRAPPED:
        return ""
    return name[len(_WRAPPED) + 1:] if name.startswith(_WRAPPED + ".") else name




@contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[bool]:
    """Put every module of ``model`` in train (``training``) or eval mode and restore each
    one's own mode on exit. Yields whether ``model`` itself was in train mode."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.train(training)
        yield modes.get(model, False)
    finally:
        for module, mode in modes.items():
            module.training = mode


def eval_mode(model: nn.Module):
    """:func:`module_mode` in eval mode: yields whether ``model`` was in train mode."""
    return module_mode(model, training=False)


# Ops that only reshape or move a weight on its way to the op that computes with it.
_PASS_THROUGH = {"aten::t", "aten::view", "aten::reshape", "aten::squeeze", "aten::unsqueeze",
                 "aten::to", "aten::contiguous", "aten::transpose", "aten::permute",
                 "aten::flatten", "aten::float", "aten::detach", "aten::select", "aten::slice"}


def _consumers(value, depth: int = 0) -> Set[str]:
    kinds = set()
    for use in value.uses():
        node = use.user
        kind = node.kind()
        if kind in _PASS_THROUGH and depth < 8:
            for out in node.outputs():
                kinds |= _consumers(out, depth + 1)
        elif kind == "prim::PythonOp":
            kinds.add(f"{kind}.{node.pyname()}")
        elif not kind.startswith("prim::"):
            kinds.add(kind)
    return kinds


_recording: "weakref.WeakKeyDictionary[nn.Module, List[torch._C.Graph]]" = \
    weakref.WeakKeyDictionary()
_recording_lock = threading.Lock()


def _install_graph_recorder() -> None:
    from fvcore.nn import jit_analysis

    with _recording_lock:
        original = jit_analysis._get_scoped_trace_graph
        if getattr(original, "_keeps_graphs", False):
            return

        def scoped_trace_graph(module, inputs, aliases):
            graph = original(module, inputs, aliases)
            graphs = _recording.get(module)
            if graphs is not None:
                graphs.append(graph)
            return graph

        scoped_trace_graph._keeps_graphs = True
        jit_analysis._get_scoped_trace_graph = scoped_trace_graph


@contextmanager
def recording_trace_graph(module: nn.Module) -> Iterator[List[torch._C.Graph]]:
    """Keep the graph that fvcore traces for ``module`` inside the block.

    ``FlopCountAnalysis`` traces in ``_analyze`` (``fvcore.nn.jit_analysis.
    _get_scoped_trace_graph``), counts the graph's nodes and drops it. The first block wraps
    that function, for good and transparently (it returns what fvcore's returns), so the caller
    can read the same graph again (which ops use which weights) instead of tracing the model a
    second time. Yields a list that receives the graph of each trace of ``module`` made inside
    the block; other modules' traces (another analysis) are not kept.
    """
    _install_graph_recorder()
    graphs: List[torch._C.Graph] = []
    with _recording_lock:
        _recording[module] = graphs
    try:
        yield graphs
    finally:
        with _recording_lock:
            _recording.pop(module, None)


def parameter_consumers(adapter: TraceAdapter, inputs: Sequence[torch.Tensor],
                        graph: Optional[torch._C.Graph] = None
                        ) -> Optional[Dict[str, List[str]]]:
    """For each parameter of the adapted model (by its name in the user's model), the ops of a
    plain trace that compute with it, looking through reshapes and casts. ``None`` when the
    trace's inputs cannot be matched to the parameters.

    ``graph``: a trace of ``adapter`` on ``inputs`` already made (fvcore's, kept by
    :func:`recording_trace_graph`); without it the model is traced here. A weight shared by
    several modules appears under each of its names.

    The tracer appends the module's state (``torch.jit._trace._unique_state_dict``) to the
    graph's inputs after the model inputs; that order is what maps a graph input to a name.
    """
    if graph is None:
        with exclusive_trace(), meta_tracing():   # a meta model traces as on CPU
            graph, _ = torch.jit._get_trace_graph(adapter, tuple(inputs))
    state = torch.jit._trace._unique_state_dict(adapter, keep_vars=True)
    graph_inputs = list(graph.inputs())[len(inputs):]
    if len(graph_inputs) != len(state):
        return None
    by_tensor = {id(tensor): sorted(_consumers(value))
                 for tensor, value in zip(state.values(), graph_inputs)}
    named = list(adapter.named_parameters(remove_duplicate=False)) + \
        list(adapter.named_buffers(remove_duplicate=False))
    return {unwrap_name(name): by_tensor[id(tensor)] for name, tensor in named
            if id(tensor) in by_tensor}


_TRACE_LOCK = threading.RLock()


@contextmanager
def exclusive_trace() -> Iterator[None]:
    """Hold the process's JIT-trace lock for the block. ``torch.jit`` tracing is not safe in
    two threads at once (a JIT engine count beside a torchprofile count aborts the process
    with an internal assert): every trace the pack makes (the JIT engine, ``torchprofile_ext``,
    ``compare``, the census, mmengine's analyzer) runs inside this lock, so a second one waits.
    Reentrant: a trace inside a traced count does not deadlock. (The dispatch engine traces
    nothing and takes no lock.)"""
    with _TRACE_LOCK:
        yield


class _NoFastPaths(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@contextmanager
def without_fast_paths() -> Iterator[None]:
    """Run the block in this thread with PyTorch's attention fast paths off:
    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` take their fused kernels
    (``aten::_native_multi_head_attention``, ``aten::_transformer_encoder_layer_fwd``) only when
    no torch-function mode is active (``torch.overrides.has_torch_function``), so under an empty
    one they run the ``F.multi_head_attention_forward`` path the dispatch engine counts: both
    engines then report the same family table for them (issue 26: linear in matmul, SDPA in
    attention). The totals are the same either way (docs/conventions.md, "Attention"). Changes
    no process-wide flag: a mode is per thread."""
    with _NoFastPaths():
        yield
