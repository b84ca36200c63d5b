"""fvcore (and mmengine ``FlopAnalyzer``) handles built from the op table.

A handle receives the node's input and output ``torch._C.Value`` lists, reads them into an
:class:`OpCall` (:mod:`fvcore_ext.engines.jit.reader`) and returns ``Counter({name: MACs})``. fvcore
counts one fused multiply-add as one "flop", so its totals are MACs.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Dict, List

from ...ops.diagnostics import record_zero
from .reader import read_call
from ...ops import FVCORE_IGNORED_OPS, OP_TABLE, OpRule, on_table_change
from ...rules import check_preset

__all__ = ["make_handles", "paper_handles", "vmamba_handles"]

Handle = Callable[[List, List], Counter]


def _make_handle(rule: OpRule, preset: str, strict: bool) -> Handle:
    if rule.always_zero:
        # Data movement is most of a graph's nodes: do not read their arguments.
        def handle(inputs: List, outputs: List) -> Counter:
            record_zero(rule.kind)
            return Counter()
    else:
        def handle(inputs: List, outputs: List) -> Counter:
            return Counter({rule.name: rule.count(read_call(inputs, outputs), preset, strict)})

    handle.__name__ = handle.__qualname__ = f"{rule.name}_handle"
    return handle


def make_handles(preset: str = "full", strict: bool = False) -> Dict[str, Handle]:
    """Handles for every op of ``docs/conventions.md`` under ``preset``, keyed by op name
    (``"aten::mul"``, ``"prim::PythonOp.SelectiveScanFn"``), for
    ``FlopCountAnalysis(model, x).set_op_handle(**make_handles(...))`` or
    ``mmengine.analysis.FlopAnalyzer``. Counts are MACs (fvcore's "flops").

    Args:
        preset: ``"full"`` (every op counted) or ``"paper"`` (elementwise ops registered at 0,
            fused ops count their matmul, conv and scan parts).
        strict: raise :class:`fvcore_ext.ops.diagnostics.UncountableOpError` when a rule cannot
            read its call, instead of warning once and counting 0. fvcore never calls a handle
            for an op that has none, so strict handles cannot see unknown ops: check
            ``analysis.unsupported_ops()``, or use :func:`fvcore_ext.count_model`
            (``strict=True`` raises on those too).

    Raises:
        ValueError: unknown preset.
    """
    check_preset(preset)
    # fvcore (and mmengine) skip their own ignored ops when no handle is registered; a zero
    # handle there would only make fvcore add an empty count to every enclosing module. An
    # ignored op the contract counts (aten::floor) gets its handle, which fvcore prefers.
    return {kind: _make_handle(rule, preset, strict) for kind, rule in list(OP_TABLE.items())
            if not (kind in FVCORE_IGNORED_OPS and rule.always_zero)}


vmamba_handles = make_handles("full")
paper_handles = make_handles("paper")


def _follow_the_table() -> None:
    # A rule was added or removed (fvcore_ext.register_rule): users hold on to these two
    # dicts, so they are updated in place.
    for preset, table in (("full", vmamba_handles), ("paper", paper_handles)):
        fresh = make_handles(preset)
        table.clear()
        table.update(fresh)


on_table_change(_follow_the_table)
