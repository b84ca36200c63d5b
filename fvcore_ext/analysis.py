"""Count one model with fvcore and the pack's handles, and collect everything a report needs.

The model is counted in eval mode under ``torch.no_grad()`` (the fused attention handles make
the fast paths count the same as the slow ones) and every module's mode is restored after.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from fvcore.nn import FlopCountAnalysis, parameter_count
from torch import nn

from .diagnostics import UncountedOp, collect_ops
from .handles import make_handles
from .meta import copy_to_device, inputs_to_device, meta_tracing
from .tracing import (TraceAdapter, eval_mode, parameter_consumers, recording_trace_graph,
                      unwrap_model, unwrap_name)
from .rules import check_preset

__all__ = ["CountReport", "count_model"]

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

    @property
    def total_flops(self) -> int:
        """FLOPs = 2 x MACs (``../shared/CONVENTIONS.md``)."""
        return 2 * self.total_macs

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict of every field plus ``total_flops``."""
        out = dataclasses.asdict(self)
        out["total_flops"] = self.total_flops
        out["inputs"] = [{"name": n, "shape": list(s)} for n, s in self.inputs]
        return out


def count_model(model: nn.Module, inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
                input_names: Optional[Sequence[Optional[str]]] = None, preset: str = "full",
                strict: bool = False, device: Optional[Union[str, torch.device]] = None
                ) -> CountReport:
    """Count ``model`` on ``inputs`` with fvcore and the pack's handles.

    Args:
        model: any ``nn.Module``; its output may be a tensor, tuple, list, dict or dataclass.
        inputs: a tensor or a sequence of tensors, passed positionally unless named.
        input_names: per input, the keyword to pass it as (``"pixel_values"``) or ``None``.
        preset: "full" or "paper".
        strict: raise :class:`fvcore_ext.diagnostics.UncountableOpError` instead of warning
            when an op cannot be counted.
        device: where to trace. ``None`` (the default): where the model and inputs are.
            ``"meta"``: on a meta copy of the model and meta inputs (shapes only: no weights
            allocated, no arithmetic, the same counts as on CPU); ``model`` itself is never
            moved (:func:`fvcore_ext.meta.copy_to_device`). A model already on meta is
            counted as it is either way.

    Returns:
        A :class:`CountReport` (MACs).

    Raises:
        ValueError: unknown preset, or the model returned no tensor.
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data (``.item()``,
            ``nonzero``) or runs an op without a meta kernel; one line, count on CPU instead.
        RuntimeError (and whatever the model raises): the model cannot be traced.
    """
    check_preset(preset)
    model = unwrap_model(model)
    if device is not None:
        model = copy_to_device(model, device)
        inputs = inputs_to_device(inputs, device)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    names = list(input_names or [None] * len(inputs))
    adapter = TraceAdapter(model, names)
    analysis = FlopCountAnalysis(adapter, inputs)
    analysis.set_op_handle(**make_handles(preset, strict))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("all")
    # meta_tracing: a meta model's convolutions trace as on CPU (fvcore_ext/meta.py says why)
    with eval_mode(model) as was_training, torch.no_grad(), meta_tracing():
        with collect_ops() as log, warnings.catch_warnings(record=True) as caught, \
                recording_trace_graph(adapter) as graphs:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            total = analysis.total()
        for warning in caught:   # hand the others back to the caller
            if not issubclass(warning.category, torch.jit.TracerWarning):
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
        uncalled = sorted(unwrap_name(m) for m in analysis.uncalled_modules())
        fused, unused = _classify_uncalled(model, adapter, inputs, uncalled,
                                           graphs[-1] if graphs else None)
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
    )


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

    ``graph``: fvcore's trace of ``adapter`` (:func:`fvcore_ext.tracing.recording_trace_graph`),
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
