"""``python -m fvcore_ext compare MODEL``: count one model with fvcore and torchprofile, each
alone and each with the pack, and explain every per-operator difference.

All four counts trace the model the same way: eval mode, ``torch.no_grad()``, positional or
named inputs through :class:`fvcore_ext.engines.jit.tracing.TraceAdapter`, each on a fresh copy of the
model. A model may keep something from its first forward (timm's ConViT caches
``rel_indices``): counted on one instance in turn, the first tool would pay for the cache and
the others not. fvcore + pack then counts its copy a second time, and the comparison says when
that second count differs.
"""
from __future__ import annotations

import copy
import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ..engines.analysis import count_model
from ..runtime.meta import copy_to_device, inputs_to_device, meta_error, meta_tracing
from ..ops import report_name
from ..engines.jit.tracing import TraceAdapter, eval_mode, exclusive_trace, unwrap_model

__all__ = ["ToolCount", "compare_tools", "format_comparison"]

TOOLS = ("fvcore", "fvcore+pack", "torchprofile", "torchprofile+pack", "dispatch+pack")


@dataclass
class ToolCount:
    """One tool's count: MACs in total and per operator, the ops it had no rule for, or the
    error that stopped it.

    ``fresh_copy``: the tool counted its own copy of the model (``False`` when the model could
    not be deep-copied and the tools counted the same instance in turn).
    ``second_total`` / ``second_by_operator``: fvcore + pack only, set when a second count of
    the same instance differs from the first (the model keeps something from its first
    forward); ``None`` / empty otherwise."""

    tool: str
    total: Optional[int] = None
    by_operator: Dict[str, int] = field(default_factory=dict)
    unsupported: List[str] = field(default_factory=list)
    error: Optional[str] = None
    fresh_copy: bool = True
    second_total: Optional[int] = None
    second_by_operator: Dict[str, int] = field(default_factory=dict)


def _plain_fvcore(adapter, inputs) -> ToolCount:
    analysis = FlopCountAnalysis(adapter, inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    total = int(analysis.total())
    return ToolCount("fvcore", total, {k: int(v) for k, v in analysis.by_operator().items() if v},
                     sorted({report_name(op) for op in analysis.unsupported_ops()}))


def _pack_fvcore(model, inputs, names, preset) -> ToolCount:
    report = count_model(model, inputs, names, preset)   # traces inside meta_tracing itself
    count = ToolCount("fvcore+pack", report.total_macs, report.by_operator,
                      sorted({report_name(op) for op in report.unsupported_ops}))
    try:
        again = count_model(model, inputs, names, preset)
    except Exception:  # noqa: BLE001 - the first count stands; the check is a bonus
        return count
    if (again.total_macs, again.by_operator) != (count.total, count.by_operator):
        count.second_total, count.second_by_operator = again.total_macs, again.by_operator
    return count


def _fresh_copy(model: nn.Module) -> Tuple[nn.Module, bool]:
    """A copy of ``model`` that shares its parameters (no weight is duplicated) but not its
    modules, buffers or other attributes, so whatever a forward stores on the copy (a cache,
    an attribute, a buffer written in place) never reaches ``model`` or another copy.
    ``(model, False)`` when it cannot be deep-copied (a lock or an open file in an attribute).
    """
    params = list(model.parameters())
    memo = {id(p): p for p in params}
    memo[id(memo)] = params   # deepcopy's keep-alive slot
    try:
        return copy.deepcopy(model, memo), True
    except Exception:  # noqa: BLE001 - any attribute may refuse to be copied
        return model, False


def _pack_dispatch(model, inputs, names, preset, backward: bool) -> ToolCount:
    report = count_model(model, inputs, names, preset, engine="dispatch", backward=backward)
    return ToolCount("dispatch+pack", report.total_macs, report.by_operator,
                     sorted({report_name(op) for op in report.unsupported_ops}))


def _torchprofile(adapter, inputs, preset, with_pack: bool) -> ToolCount:
    import torchprofile
    import torchprofile_ext

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if with_pack:
            results = torchprofile_ext.profile_macs(adapter, inputs, preset, reduction=None)
        else:
            results = torchprofile.profile_macs(adapter, inputs, reduction=None)
    unsupported = sorted({report_name(str(w.message).split('"')[1]) for w in caught
                          if str(w.message).startswith("No handlers found")})
    return ToolCount("torchprofile+pack" if with_pack else "torchprofile",
                     int(sum(results.values())), torchprofile_ext.macs_by_operator(results),
                     unsupported)


def compare_tools(model: nn.Module, inputs: Sequence[torch.Tensor],
                  input_names: Optional[Sequence[Optional[str]]] = None,
                  preset: str = "full", device: Optional[str] = None,
                  dispatch: bool = False, backward: bool = False) -> List[ToolCount]:
    """Count ``model`` with plain fvcore, fvcore + the pack (``preset``), plain torchprofile and
    torchprofile + the pack, and with ``dispatch`` the pack's dispatch engine too (a training
    count, forward + backward, with ``backward``). A tool that fails gets ``error`` set instead
    of raising (plain torchprofile, for one, crashes on PyTorch's fused attention under
    ``torch.no_grad()``). Counts are MACs.

    Each tool counts a fresh copy of ``model`` (sharing its parameters), so a model that caches
    on its first forward gives every tool the same first call, and ``model`` itself never runs.
    fvcore + pack counts its copy twice; ``second_total`` is set when the counts differ.

    ``device="meta"`` counts a meta copy of the model on meta inputs (``model`` is untouched).
    Every tool traces inside :func:`fvcore_ext.runtime.meta.meta_tracing`, so plain fvcore and plain
    torchprofile count a meta model's convolutions too: the fix is the tracer's, not the
    pack's rules."""
    model = unwrap_model(model)
    if device is not None:
        model = copy_to_device(model, device)
        inputs = inputs_to_device(inputs, device)
    inputs = tuple(inputs)
    runs: List[Callable[[nn.Module], ToolCount]] = [
        lambda m: _plain_fvcore(TraceAdapter(m, input_names), inputs),
        lambda m: _pack_fvcore(m, inputs, input_names, preset),
        lambda m: _torchprofile(TraceAdapter(m, input_names), inputs, preset, with_pack=False),
        lambda m: _torchprofile(TraceAdapter(m, input_names), inputs, preset, with_pack=True),
    ]
    if dispatch or backward:
        runs.append(lambda m: _pack_dispatch(m, inputs, input_names, preset, backward))
    counts = []
    with exclusive_trace(), eval_mode(model), torch.no_grad(), warnings.catch_warnings(), \
            meta_tracing():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for tool, run in zip(TOOLS, runs):
            instance, fresh = _fresh_copy(model)   # copied in eval mode
            try:
                count = run(instance)
            except Exception as error:  # a tool's own bug must not hide the others' numbers
                on_meta = meta_error(error)   # a model that reads data on meta: one line
                count = ToolCount(tool, error=f"{type(error).__name__}: {error}"
                                  if on_meta is None else str(on_meta))
            count.fresh_copy = fresh
            counts.append(count)
            del instance
    return counts


def _reason(op: str, counts: Dict[str, ToolCount]) -> str:
    if op == "pythonop":
        return "torchprofile's name for every autograd Function (the class name is dropped)"
    value = {t: c.by_operator.get(op, 0) for t, c in counts.items() if c.error is None}
    reasons = []
    for plain, pack in (("fvcore", "fvcore+pack"), ("torchprofile", "torchprofile+pack")):
        if plain not in value or pack not in value or value[plain] == value[pack]:
            continue
        if plain == "torchprofile" and op.startswith("PythonOp."):
            reasons.append("torchprofile has no rule for it: it sees every autograd Function "
                           "as the same prim::pythonop")
        elif op in counts[plain].unsupported:
            reasons.append(f"{plain} has no rule for it")
        elif value[plain] == 0:
            reasons.append(f"{plain} counts it as 0")
        else:
            reasons.append(f"{plain}'s convention differs")
    d, a = value.get("dispatch+pack"), value.get("fvcore+pack")
    if d is not None and a is not None and d != a:
        reasons.append("the dispatch engine runs this op under another name, or in the "
                       "backward, or runs work the trace leaves out" if d else
                       "the dispatch engine sees this op under another name")
    a, b = value.get("fvcore+pack"), value.get("torchprofile+pack")
    if a is not None and b is not None and a != b:
        if a and not b:
            reasons.append("only fvcore+pack's trace has this op (e.g. another attention path)")
        elif b and not a:
            reasons.append("only torchprofile+pack's trace has this op (e.g. a fused kernel)")
        else:
            reasons.append("the pack's two adapters differ: please report this")
    return "; ".join(reasons)


def _instance_notes(counts: List[ToolCount]) -> List[str]:
    lines = []
    if not all(c.fresh_copy for c in counts):
        lines.append("Note: the model could not be copied, so the four tools counted the same "
                     "instance in turn; a model that keeps something from its first forward "
                     "gives each tool a different call to count.")
    for c in counts:
        if c.second_total is None:
            continue
        ops = sorted(set(c.by_operator) | set(c.second_by_operator))
        changes = [(op, c.second_by_operator.get(op, 0) - c.by_operator.get(op, 0))
                   for op in ops]
        changes = ", ".join(f"{op} {d:+,}" for op, d in changes if d)
        lines.append(f"Note: a second count of the same instance differs: {c.tool} gives "
                     f"{c.second_total:,} ({c.second_total - c.total:+,}"
                     + (f": {changes}" if changes else "") + "). The model keeps something "
                     "from its first forward (a cache such as ConViT's rel_indices); each "
                     "total above is a first call, on a fresh copy.")
    return lines


def format_comparison(counts: List[ToolCount], fmt: str = "table") -> str:
    """The comparison as a table (per-operator MACs per tool, with the reason for each
    difference) or as JSON."""
    if fmt == "json":
        return json.dumps([asdict(c) for c in counts], indent=2)
    by_tool = {c.tool: c for c in counts}
    lines = ["Totals (MACs; FLOPs = 2 x MACs):"]
    for c in counts:
        lines.append(f"  {c.tool:18s} " + (f"{c.total:,}" if c.error is None else
                                           f"failed: {c.error.splitlines()[0]}"))
    lines += _instance_notes(counts)
    ops = sorted({op for c in counts for op in c.by_operator} |
                 {op for c in counts for op in c.unsupported},
                 key=lambda op: -max(c.by_operator.get(op, 0) for c in counts))
    header = ["operator"] + [c.tool for c in counts] + ["why they differ"]
    rows = []
    for op in ops:
        cells = [op]
        for c in counts:
            if c.error is not None:
                cells.append("-")
            elif op in c.unsupported and not c.by_operator.get(op):
                cells.append("unsupported")
            else:
                cells.append(f"{c.by_operator.get(op, 0):,}")
        cells.append(_reason(op, by_tool))
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines += ["", "Per operator (MACs):"]
    for row in [header, ["-" * w for w in widths]] + rows:
        lines.append("  ".join(str(c).ljust(w) if i in (0, len(row) - 1) else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(lines)
