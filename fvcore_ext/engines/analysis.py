"""Count one model with one of the pack's engines, and collect everything a report needs.

Two engines run the same op table: ``"jit"`` traces the model and counts with fvcore and the
pack's handles; ``"dispatch"`` counts at PyTorch's dispatcher (:mod:`fvcore_ext.engines.dispatch`), and
can also count a backward pass. A forward count runs in eval mode under ``torch.no_grad()``
(the fused attention handles make the fast paths count the same as the slow ones); a training
count (``backward=True``) runs in train mode. Every module's mode is restored after.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from fvcore.nn import FlopCountAnalysis, parameter_count
from torch import nn

from . import dispatch
from ..ops.diagnostics import UncountedOp, collect_ops, unknown_op_error
from .jit.handles import make_handles
from ..runtime.meta import copy_to_device, inputs_to_device, meta_tracing
from ..ops import families_by_name
from .jit.tracing import (TraceAdapter, eval_mode, flatten_tensors, module_mode,
                      parameter_consumers, recording_trace_graph, unwrap_model, unwrap_name,
                          without_fast_paths, exclusive_trace)
from ..roofline import Hardware, arithmetic_intensity, describe, parse_hardware
from ..roofline.estimate import estimate
from ..ops import OP_TABLE
from ..rules import check_preset
from .jit.traffic import graph_bytes

__all__ = ["ENGINES", "CountReport", "count_model"]

ENGINES = ("jit", "dispatch")

@dataclass
class CountReport:
    """The result of :func:`count_model`. Counts are MACs (``total_flops`` is ``2 · total_macs``).

    Attributes:
        preset: "full" or "paper".
        inputs: ``(name, shape)`` per model input (name ``None`` for positional inputs).
        total_macs: total MACs.
        params: number of distinct parameters.
        by_operator: MACs per operator name (``conv``, ``linear``, ``PythonOp.SelectiveScanFn``).
        by_module: MACs per module name (``""`` is the whole model).
        unsupported_ops: op name → calls, for ops neither fvcore nor the pack counts.
        uncounted: ops the pack has a rule for but could not count (counted as 0).
        zero_by_design: op name → calls that cost 0 by the contract (data movement,
            comparisons, shape arithmetic; elementwise ops under the paper preset).
        fused_weight_modules: modules the trace never entered whose weights another op
            computes with (a fused kernel such as ``MambaInnerFn`` reading ``x_proj.weight``),
            with those ops' names. Their MACs are in that op's count.
        unused_modules: modules the trace never entered that have weights, none of which any
            op uses. Modules without parameters are never listed: an ``nn.Identity``,
            ``DropPath`` or eval-mode dropout leaves no node in a trace even when it runs.
        was_training: the model was in train mode before counting (it is counted in eval mode).
        train_mode_effects: what counting in eval mode changed, one line per affected kind of
            layer (empty if the model was in eval mode).
        trace_warnings: the JIT tracer's warnings, once each. A trace records the path these
            inputs take: data-dependent control flow (``if x.sum() > 0``) is frozen, so the
            count holds for inputs that take the same path.
        device: the device type the model was traced on (``"meta"``: shapes only, no
            arithmetic; the counts are the CPU counts).
        engine: ``"jit"`` (fvcore's trace) or ``"dispatch"`` (PyTorch's dispatcher).
        by_family: rule family (:data:`fvcore_ext.ops.FAMILIES`: matmul, attention,
            elementwise, ...) → MACs.
        forward_macs, backward_macs: the two passes; ``total_macs`` is their sum.
            ``backward_macs`` is 0 unless the count ran a backward pass (``backward=True``).
        forward_by_family, backward_by_family: a training count's families per pass (the
            forward in train mode); ``None`` for a forward count.
        total_bytes, forward_bytes, backward_bytes: bytes the ops read and wrote
            (``docs/conventions.md``, "Bytes moved"): what ran (the dispatch engine) or the
            trace's nodes with their complete tensor types (the JIT engine).
        bytes_by_operator, bytes_by_family, bytes_by_module: the same per operator, family and
            module (``""`` is the whole model).
        bytes_unread: op name → calls whose bytes no rule could read (counted as 0), as
            ``unsupported_ops`` lists the ops no MAC rule counts.
        hardware: the device the roofline times are for (``count_model(..., hardware=...)``),
            described in one line; ``None`` without one.
        estimated_seconds: the roofline time of the whole count on that device: per op
            ``max(2·MACs / peak, bytes / bandwidth)``, summed.
        seconds_by_operator, seconds_by_module: that time per operator and module.
        bound_by_operator, bound_by_module: ``"compute"`` or ``"memory"``, the ceiling most
            of that operator's or module's time sits under.
    """

    preset: str
    inputs: List[Tuple[Optional[str], Tuple[int, ...]]]
    total_macs: int
    params: int
    by_operator: Dict[str, int]
    by_module: Dict[str, int]
    unsupported_ops: Dict[str, int]
    uncounted: List[UncountedOp] = field(default_factory=list)
    zero_by_design: Dict[str, int] = field(default_factory=dict)
    fused_weight_modules: Dict[str, List[str]] = field(default_factory=dict)
    unused_modules: List[str] = field(default_factory=list)
    was_training: bool = False
    train_mode_effects: List[str] = field(default_factory=list)
    trace_warnings: List[str] = field(default_factory=list)
    device: str = "cpu"
    engine: str = "jit"
    by_family: Dict[str, int] = field(default_factory=dict)
    forward_macs: Optional[int] = None
    backward_macs: int = 0
    forward_by_family: Optional[Dict[str, int]] = None
    backward_by_family: Optional[Dict[str, int]] = None
    total_bytes: Optional[int] = None
    forward_bytes: Optional[int] = None
    backward_bytes: Optional[int] = None
    bytes_by_operator: Dict[str, int] = field(default_factory=dict)
    bytes_by_family: Dict[str, int] = field(default_factory=dict)
    bytes_by_module: Dict[str, int] = field(default_factory=dict)
    bytes_unread: Dict[str, int] = field(default_factory=dict)
    hardware: Optional[str] = None
    estimated_seconds: Optional[float] = None
    seconds_by_operator: Dict[str, float] = field(default_factory=dict)
    seconds_by_module: Dict[str, float] = field(default_factory=dict)
    bound_by_operator: Dict[str, str] = field(default_factory=dict)
    bound_by_module: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.forward_macs is None:
            self.forward_macs = self.total_macs - self.backward_macs

    @property
    def total_flops(self) -> int:
        """FLOPs = 2 x MACs (``docs/conventions.md``)."""
        return 2 * self.total_macs

    @property
    def intensity(self) -> Optional[float]:
        """Arithmetic intensity of the whole count: FLOPs per byte moved (2 · MACs / bytes);
        ``None`` without bytes."""
        return arithmetic_intensity(self.total_macs, self.total_bytes) \
            if self.total_bytes else None

    def intensity_by_operator(self) -> Dict[str, Optional[float]]:
        """FLOPs per byte of every operator with bytes (2 · its MACs / its bytes)."""
        return {name: arithmetic_intensity(self.by_operator.get(name, 0), nbytes)
                for name, nbytes in self.bytes_by_operator.items() if nbytes}

    def intensity_by_module(self) -> Dict[str, Optional[float]]:
        """FLOPs per byte of every module with bytes (2 · its MACs / its bytes)."""
        return {name: arithmetic_intensity(self.by_module.get(name, 0), nbytes)
                for name, nbytes in self.bytes_by_module.items() if nbytes}

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict of every field plus ``total_flops``."""
        out = dataclasses.asdict(self)
        out["total_flops"] = self.total_flops
        out["intensity"] = self.intensity
        out["inputs"] = [{"name": n, "shape": list(s)} for n, s in self.inputs]
        return out


def count_model(model: nn.Module, inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
                input_names: Optional[Sequence[Optional[str]]] = None, preset: str = "full",
                strict: bool = False, device: Optional[Union[str, torch.device]] = None,
                engine: str = "jit", backward: bool = False,
                hardware: Optional[Union[str, Hardware]] = None) -> CountReport:
    """Count ``model`` on ``inputs`` with the pack's rules, by tracing (fvcore and the pack's
    handles) or at PyTorch's dispatcher.

    Args:
        model: any ``nn.Module``; its output may be a tensor, tuple, list, dict or dataclass.
        inputs: a tensor or a sequence of tensors, passed positionally unless named.
        input_names: per input, the keyword to pass it as (``"pixel_values"``) or ``None``.
        preset: "full" or "paper".
        strict: raise :class:`fvcore_ext.UncountableOpError` instead of counting 0 when any
            op is left out: an op no rule counts (``unknown=True``; the report would list it
            under ``unsupported_ops``) or an op whose rule cannot read the call (the report's
            ``uncounted``).
        device: where to trace. ``None`` (the default): where the model and inputs are.
            ``"meta"``: on a meta copy of the model and meta inputs (shapes only: no weights
            allocated, no arithmetic, the same counts as on CPU); ``model`` itself is never
            moved (:func:`fvcore_ext.runtime.meta.copy_to_device`). A model already on meta is
            counted as it is either way.
        engine: ``"jit"`` (trace with ``torch.jit``, count with fvcore) or ``"dispatch"``
            (run the model under :func:`fvcore_ext.engines.dispatch.counting`: no trace, so
            data-dependent models, dict or ``Cache`` inputs and ``torch.compile``d models
            count too). Both give the same totals on every model both can run
            (``docs/conventions.md``, "The dispatch engine").
        backward: also run the backward pass from the sum of the floating outputs and count
            it (``engine="dispatch"`` only), in train mode; ``CountReport.backward_macs``.
            A count, not a training step: parameters, buffers, ``.grad``, the RNG and the
            hooks on parameters are as they were (it runs on fresh leaves and cloned buffers).
        hardware: a device name (``"h100"``, ``"a100"``, ...) or spec
            (``"peak_tflops=100,bandwidth_gbs=900"``, :func:`fvcore_ext.roofline.parse_hardware`)
            or a :class:`fvcore_ext.roofline.Hardware`: fill the report's roofline times
            (``estimated_seconds``, per operator and module, with their bound). Needs the
            dispatch engine (bytes are read at the dispatcher).

    Returns:
        A :class:`CountReport` (MACs).

    Raises:
        ValueError: unknown preset or engine, ``backward`` with the JIT engine, the model
            returned no tensor, or (``backward``) no output that requires grad.
        fvcore_ext.UncountableOpError: ``strict`` and some op is unknown or uncounted; it
            names the first such op, its innermost module and the reason.
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data (``.item()``,
            ``nonzero``) or runs an op without a meta kernel; one line, count on CPU instead.
        RuntimeError (and whatever the model raises): the model cannot be traced.
    """
    check_preset(preset)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if backward and engine != "dispatch":
        raise ValueError("backward=True needs engine='dispatch': a JIT trace records no "
                         "backward pass")
    if hardware is not None and engine != "dispatch":
        raise ValueError("hardware= needs engine='dispatch': bytes are read at the dispatcher")
    device_hw = parse_hardware(hardware) if isinstance(hardware, str) else hardware
    model = unwrap_model(model)
    if device is not None:
        model = copy_to_device(model, device)
        inputs = inputs_to_device(inputs, device)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    names = list(input_names or [None] * len(inputs))
    adapter = TraceAdapter(model, names)
    if engine == "dispatch":
        return _count_dispatch(model, adapter, inputs, names, preset, strict, backward, device_hw)
    analysis = FlopCountAnalysis(adapter, inputs)
    analysis.set_op_handle(**make_handles(preset, strict))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("all")
    # meta_tracing: a meta model's convolutions trace as on CPU (fvcore_ext/meta.py says why)
    with exclusive_trace(), eval_mode(model) as was_training, torch.no_grad(), \
            meta_tracing(), without_fast_paths():
        with collect_ops() as log, warnings.catch_warnings(record=True) as caught, \
                recording_trace_graph(adapter) as graphs:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            total = analysis.total()
        if strict and analysis.unsupported_ops():
            unknown = dict(analysis.unsupported_ops())
            raise unknown_op_error(unknown, _innermost_scope(analysis, next(iter(unknown))))
        for warning in caught:   # hand the others back to the caller
            if not issubclass(warning.category, torch.jit.TracerWarning):
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        uncalled = sorted(unwrap_name(m) for m in analysis.uncalled_modules())
        fused, unused = _classify_uncalled(model, adapter, inputs, uncalled,
                                           graphs[-1] if graphs else None)
    traffic = _graph_traffic(graphs[-1]) if graphs else {}
    return CountReport(
        preset=preset,
        inputs=[(n, tuple(x.shape)) for n, x in zip(names, inputs)],
        total_macs=int(total),
        params=int(parameter_count(model)[""]),
        by_operator={k: int(v) for k, v in analysis.by_operator().most_common()},
        by_module={unwrap_name(k): int(v) for k, v in analysis.by_module().items()},
        unsupported_ops=dict(analysis.unsupported_ops().most_common()),
        uncounted=[dataclasses.replace(u, scope=unwrap_name(u.scope)) for u in log.uncounted],
        zero_by_design=dict(log.zero_by_design.most_common()),
        fused_weight_modules=fused,
        unused_modules=unused,
        was_training=was_training,
        train_mode_effects=_train_mode_effects(model) if was_training else [],
        trace_warnings=_trace_warnings(caught),
        device=_device_type(model, inputs),
        by_family=_families(analysis.by_operator()),
        **traffic,
    )


def _graph_traffic(graph) -> Dict[str, Any]:
    """The JIT engine's byte fields of a report, from the trace (engines/jit/traffic.py)."""
    total = 0
    by_operator: Counter = Counter()
    by_family: Counter = Counter()
    by_module: Counter = Counter()
    unread: Counter = Counter()
    for kind, record in graph_bytes(graph):
        if record is None:
            unread[kind] += 1
            continue
        rule = OP_TABLE.get(kind)
        total += record.bytes
        by_operator[record.name] += record.bytes
        by_family[rule.family if rule else "unknown"] += record.bytes
        for module in set(record.modules):
            by_module[module] += record.bytes
    return dict(total_bytes=total, forward_bytes=total, backward_bytes=0,
                bytes_by_operator=_nonzero(by_operator), bytes_by_family=_nonzero(by_family),
                bytes_by_module=dict(sorted(by_module.items())), bytes_unread=dict(unread))


def _families(by_operator) -> Dict[str, int]:
    families = families_by_name()
    out: Dict[str, int] = {}
    for name, macs in by_operator.items():
        if macs:
            family = families.get(name, "other")
            out[family] = out.get(family, 0) + int(macs)
    return dict(sorted(out.items(), key=lambda item: -item[1]))


@contextmanager
def _training_state(module: nn.Module, inputs: Sequence[Any]):
    """What a training count runs on instead of the user's tensors (issue 26: a count is not
    a training step): every parameter as a fresh leaf (a detached alias, with the same
    ``requires_grad``: autograd accumulates into it, and no hook of the user's runs), every
    buffer cloned (BatchNorm updates the clone's running statistics), tensor inputs that
    require grad as fresh leaves, and the RNG forked (dropout draws from a copy of the stream).
    Yields ``(parameters and buffers by name, inputs)`` for ``torch.func.functional_call``."""
    state = {name: p.detach().requires_grad_(p.requires_grad)
             for name, p in module.named_parameters()}
    state.update((name, b.clone()) for name, b in module.named_buffers())
    fresh = tuple(x.detach().requires_grad_() if isinstance(x, torch.Tensor) and x.requires_grad
                  else x for x in inputs)
    devices = sorted({t.device.index or 0 for t in list(state.values()) + list(fresh)
                      if isinstance(t, torch.Tensor) and t.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        yield state, fresh


def _graph_leaves(outputs) -> List[torch.Tensor]:
    """The leaf tensors the backward of ``outputs`` accumulates a ``.grad`` into."""
    variables = (getattr(node, "variable", None) for node in dispatch.autograd_nodes(outputs))
    return ([t for t in outputs if t.grad_fn is None]
            + [v for v in variables if isinstance(v, torch.Tensor)])


@contextmanager
def _grads_kept(tensors):
    saved = [(t, t.grad) for t in tensors if t.requires_grad]
    try:
        for t, _ in saved:
            t.grad = None
        yield
    finally:
        for t, grad in saved:
            t.grad = grad


def _count_dispatch(model: nn.Module, adapter: TraceAdapter, inputs, names, preset: str,
                    strict: bool, backward: bool, hardware: Optional[Hardware]) -> CountReport:
    # Under the count's torch-function mode nn.MultiheadAttention and
    # nn.TransformerEncoderLayer take their Python paths, as in the JIT engine
    # (engines/jit/tracing.py, without_fast_paths).
    with module_mode(model, training=backward) as was_training, \
            torch.set_grad_enabled(backward), meta_tracing(), collect_ops() as log:
        if not backward:
            with dispatch.counting(preset, strict) as counter:
                adapter(*inputs)
        else:
            with _training_state(adapter, inputs) as (state, fresh), \
                    dispatch.counting(preset, strict) as counter:
                outputs = torch.func.functional_call(adapter, state, fresh)
                floats = [t for t in flatten_tensors(outputs)
                          if t.requires_grad and (t.is_floating_point() or t.is_complex())]
                if not floats:
                    raise ValueError("backward=True: no output of the model requires grad")
                with counter.uncounted():     # seeding the gradient costs 0 (CONVENTIONS.md)
                    loss = sum(t.real.sum() if t.is_complex() else t.sum() for t in floats)
                    seed = torch.ones_like(loss)
                # Tensors the model captured outside its parameters and buffers (a closure
                # that requires grad) get their .grad back as it was.
                with _grads_kept(_graph_leaves(floats)):
                    loss.backward(seed)
    root = type(adapter).__name__

    def by_module(values) -> Dict[str, Any]:
        # ModuleTracker's names (the adapter's class name first) as the JIT engine names them
        return dict(sorted((unwrap_name(name[len(root) + 1:]), value)
                           for name, value in values.items()
                           if name == root or name.startswith(root + ".")))

    traffic = counter.traffic
    roofline = estimate(traffic.records, hardware, describe(hardware)) if hardware else None
    return CountReport(
        preset=preset,
        inputs=[(n, tuple(x.shape)) for n, x in zip(names, inputs)],
        total_macs=counter.total_macs,
        params=int(parameter_count(model)[""]),
        by_operator={k: int(v) for k, v in counter.by_operator.most_common()},
        by_module={k: int(v) for k, v in by_module(counter.by_module).items()},
        unsupported_ops=dict(counter.unknown_ops.most_common()),
        uncounted=list(log.uncounted),
        zero_by_design=dict(log.zero_by_design.most_common()),
        was_training=was_training and not backward,
        train_mode_effects=_train_mode_effects(model) if was_training and not backward else [],
        device=_device_type(model, inputs),
        engine="dispatch",
        by_family={k: int(v) for k, v in counter.by_family.most_common() if v},
        forward_macs=counter.forward_macs,
        backward_macs=counter.backward_macs,
        forward_by_family=_nonzero(counter.forward_by_family) if backward else None,
        backward_by_family=_nonzero(counter.backward_by_family) if backward else None,
        total_bytes=traffic.total_bytes,
        forward_bytes=traffic.forward_bytes,
        backward_bytes=traffic.backward_bytes,
        bytes_by_operator={k: int(v) for k, v in traffic.by_operator.most_common() if v},
        bytes_by_family={k: int(v) for k, v in traffic.by_family.most_common() if v},
        bytes_by_module=by_module(traffic.by_module),
        bytes_unread=dict(traffic.unreadable),
        hardware=roofline.hardware if roofline else None,
        estimated_seconds=roofline.seconds if roofline else None,
        seconds_by_operator=roofline.by_operator if roofline else {},
        seconds_by_module=by_module(roofline.by_module) if roofline else {},
        bound_by_operator=roofline.bound_by_operator if roofline else {},
        bound_by_module=by_module(roofline.bound_by_module) if roofline else {},
    )


def _nonzero(counts) -> Dict[str, int]:
    return {k: int(v) for k, v in counts.most_common() if v}


def _innermost_scope(analysis: FlopCountAnalysis, op: str) -> str:
    # fvcore counts an unsupported op in every module around it: the deepest one ran it.
    scopes = [name for name in analysis.by_module() if analysis.unsupported_ops(name)[op]]
    return unwrap_name(max(scopes, key=lambda name: (name.count("."), len(name)), default=""))


def _device_type(model: nn.Module, inputs: Sequence[torch.Tensor]) -> str:
    for tensor in list(inputs) + list(model.parameters()) + list(model.buffers()):
        return tensor.device.type
    return "cpu"


def _trace_warnings(caught) -> List[str]:
    messages = []
    for warning in caught:
        if issubclass(warning.category, torch.jit.TracerWarning):
            text = str(warning.message).strip().splitlines()[0]
            if text not in messages:
                messages.append(text)
    return messages


def _classify_uncalled(model: nn.Module, adapter: TraceAdapter, inputs, uncalled: List[str],
                       graph: Optional[torch._C.Graph] = None):
    """Sort the modules the trace never entered into those whose weights an op uses
    (name → ops) and those with weights that nothing uses (names).

    A module without parameters is in neither: the tracer records no node for an
    ``nn.Identity``, a ``DropPath`` or dropout in eval mode, or an activation that a fused
    kernel applies itself, so its absence from the trace says nothing about dead code. Only
    weights that no op reads do.

    ``graph``: fvcore's trace of ``adapter`` (:func:`fvcore_ext.engines.jit.tracing.recording_trace_graph`),
    read for the weights' consumers; the model is traced again only when it is missing.
    """
    modules = dict(model.named_modules())
    weighted = {name: [f"{name}.{p}" if name else p
                       for p, _ in modules[name].named_parameters(remove_duplicate=False)]
                for name in uncalled if name in modules}
    weighted = {name: params for name, params in weighted.items() if params}
    if not weighted:
        return {}, []
    consumers = parameter_consumers(adapter, inputs, graph) or {}
    fused, unused = {}, []
    for name, params in weighted.items():
        ops = sorted({op for p in params for op in consumers.get(p, ())})
        if ops:
            fused[name] = ops
        else:
            unused.append(name)
    return fused, unused


def _train_mode_effects(model: nn.Module) -> List[str]:
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    effects = []
    if norms:
        effects.append(f"{len(norms)} BatchNorm layer(s) use running statistics: 2 x numel "
                       f"with affine (1 x without) instead of training's 5 x (4 x)")
    if dropouts:
        effects.append(f"{len(dropouts)} dropout layer(s) are off (0 MACs either way)")
    if any(isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer))
           for m in model.modules()):
        effects.append("PyTorch's fused attention kernels run; the pack counts them as their "
                       "slow paths, so the total does not change")
    return effects
