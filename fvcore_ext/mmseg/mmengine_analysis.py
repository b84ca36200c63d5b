"""The pack in mmengine: ``get_model_complexity_info`` with mmengine's signature and result,
and context managers that make mmengine's own analysis use the pack's handles.

mmengine's ``FlopAnalyzer`` is an fvcore port: it takes the same handles, but reads the module
global ``mmengine.analysis.complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS`` when it is
constructed, and mmengine's ``get_model_complexity_info`` accepts no handles at all.
:func:`pack_in_mmengine` goes further and puts the pack's ``get_model_complexity_info`` where
scripts import mmengine's from; ``python -m fvcore_ext.run`` runs a script inside it.
"""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..ops.diagnostics import UncountedOp, collect_ops, unknown_op_error
from ..engines.jit import exclusive_trace, make_handles
from ..rules import check_preset

__all__ = ["ComplexityCall", "get_model_complexity_info", "pack_handles_in_mmengine",
           "pack_in_mmengine"]

# Where mmengine 0.10 exposes get_model_complexity_info: scripts import it from the package
# (mmseg's get_flops.py) or from the module that defines it. A name missing in some mmengine
# version is skipped.
_MMENGINE_NAMES = ("mmengine.analysis", "mmengine.analysis.print_helper",
                   "mmengine.analysis.complexity_analysis")


@contextmanager
def pack_handles_in_mmengine(preset: str = "full", strict: bool = False) -> Iterator[None]:
    """Inside the block, every ``mmengine.analysis.FlopAnalyzer`` constructed (and so mmengine's
    own ``get_model_complexity_info``) counts with the pack's handles under ``preset``. On exit
    mmengine's original handle table object is bound again. With ``strict`` a handle that
    cannot read its call raises :class:`fvcore_ext.UncountableOpError`; an op with no rule
    never reaches a handle, so check ``FlopAnalyzer.unsupported_ops()`` (the pack's
    :func:`get_model_complexity_info` does, and raises). ``ValueError`` on an unknown preset;
    ``ImportError`` without mmengine."""
    from mmengine.analysis import complexity_analysis

    original = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS = {**original,
                                                       **make_handles(preset, strict)}
    try:
        yield
    finally:
        complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS = original


def _dummy_inputs(model: nn.Module, input_shape) -> Tuple[torch.Tensor, ...]:
    device = next(model.parameters()).device
    if all(isinstance(d, int) for d in input_shape):
        return (torch.randn(1, *input_shape, device=device),)
    if all(isinstance(s, tuple) and all(isinstance(d, int) for d in s) for s in input_shape):
        return tuple(torch.randn(1, *s, device=device) for s in input_shape)
    raise ValueError('"input_shape" should be a tuple of int (one input) or a tuple of tuples '
                     'of int (several inputs)')


def get_model_complexity_info(
        model: nn.Module,
        input_shape: Union[Tuple[int, ...], Tuple[Tuple[int, ...], ...], None] = None,
        inputs: Union[torch.Tensor, Sequence[Any], None] = None,
        show_table: bool = True,
        show_arch: bool = True,
        preset: str = "full",
        strict: bool = False) -> Dict[str, Any]:
    """mmengine's ``get_model_complexity_info``, counting with the pack's handles.

    Differences from mmengine 0.10: ``input_shape`` and ``inputs`` may both be given (``inputs``
    is what the model runs on; mmseg 1.2.2's ``get_flops.py`` passes both and mmengine ≥ 0.7.3
    raises ``ValueError``); the model is analysed under ``torch.no_grad()``, which the pack's
    fused-attention handles count the same as the slow path; and ``preset``/``strict`` choose
    the counting rules.

    Args:
        model: the model; ``input_shape`` excludes the batch dimension (a batch of 1 is made).
        input_shape: ``(C, H, W)`` or a tuple of such shapes, used when ``inputs`` is None.
        inputs: a tensor or tuple of positional inputs.
        show_table, show_arch: build mmengine's ``out_table`` / ``out_arch`` strings.
        preset: "full" or "paper".
        strict: raise :class:`fvcore_ext.UncountableOpError` where an op is left out: an op
            no rule counts (``unknown=True``) or one whose rule cannot read the call.

    Returns:
        mmengine's dict: ``flops`` (MACs, fvcore's and mmengine's "flops"), ``flops_str``,
        ``activations``, ``activations_str``, ``params``, ``params_str``, ``out_table``,
        ``out_arch``, plus, from the pack, ``unsupported_ops`` (op name → calls, ops with no
        rule) and ``uncounted`` (:class:`fvcore_ext.ops.diagnostics.UncountedOp` per op kind a rule
        could not read, counted as 0).

    Raises:
        ValueError: neither ``input_shape`` nor ``inputs``, a malformed ``input_shape``, or an
            unknown preset.
    """
    return _complexity_info(model, input_shape, inputs, show_table, show_arch, preset,
                            strict)[0]


def _complexity_info(model, input_shape, inputs, show_table, show_arch, preset, strict):
    # get_model_complexity_info, also returning the inputs it ran (pack_in_mmengine records
    # their shapes).
    from mmengine.analysis import ActivationAnalyzer, FlopAnalyzer, parameter_count
    from mmengine.analysis.print_helper import (_format_size, complexity_stats_str,
                                                complexity_stats_table)

    check_preset(preset)
    if inputs is None:
        if input_shape is None:
            raise ValueError('One of "input_shape" and "inputs" should be set.')
        inputs = _dummy_inputs(model, input_shape)
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    flop_handler = FlopAnalyzer(model, inputs).set_op_handle(**make_handles(preset, strict))
    activation_handler = ActivationAnalyzer(model, inputs)
    # mmengine logs these to stdout, ahead of what a script prints; the pack reports ops it
    # did not count in the result instead, and an mmseg model never calls its data
    # preprocessor or losses in tensor mode.
    for handler in (flop_handler, activation_handler):
        handler.unsupported_ops_warnings(False)
        handler.uncalled_modules_warnings(False)
    with exclusive_trace(), torch.no_grad(), collect_ops() as log:
        flops = int(flop_handler.total())
        if strict and flop_handler.unsupported_ops():
            # handles never see an op with no rule; strict fails on those too
            raise unknown_op_error(dict(flop_handler.unsupported_ops()))
        activations = int(activation_handler.total())
        out_table = ("\n" + complexity_stats_table(flops=flop_handler,
                                                   activations=activation_handler,
                                                   show_param_shapes=True)
                     if show_table else "")
        out_arch = ("\n" + complexity_stats_str(flops=flop_handler,
                                                activations=activation_handler)
                    if show_arch else "")
    params = int(parameter_count(model)[""])
    return {
        "flops": flops, "flops_str": _format_size(flops),
        "activations": activations, "activations_str": _format_size(activations),
        "params": params, "params_str": _format_size(params),
        "out_table": out_table, "out_arch": out_arch,
        "unsupported_ops": dict(flop_handler.unsupported_ops()),
        "uncounted": log.uncounted,
    }, inputs


@dataclass
class ComplexityCall:
    """One call of ``get_model_complexity_info`` made inside :func:`pack_in_mmengine`.

    Attributes:
        preset: the preset it counted under.
        input_shape: the ``input_shape`` argument (``(C, H, W)`` without the batch), or None.
        counted_shapes: the shape of each input the model ran on, batch included
            (``(1, 3, 512, 512)``); ``None`` for an input that is not a tensor.
        macs: total MACs (mmengine's "flops"); FLOPs are ``2 * macs``.
        params: number of distinct parameters.
        unsupported_ops: op name → calls, for ops with no rule (counted as 0).
        uncounted: ops the pack has a rule for but could not read (counted as 0).
    """

    preset: str
    input_shape: Optional[Tuple[Any, ...]]
    counted_shapes: List[Optional[Tuple[int, ...]]]
    macs: int
    params: int
    unsupported_ops: Dict[str, int] = field(default_factory=dict)
    uncounted: List[UncountedOp] = field(default_factory=list)


@contextmanager
def pack_in_mmengine(preset: str = "paper", strict: bool = False
                     ) -> Iterator[List[ComplexityCall]]:
    """Inside the block, mmengine counts with the pack, for code that imports mmengine's names.

    ``get_model_complexity_info`` is replaced by the pack's (see
    :func:`get_model_complexity_info`: ``input_shape`` and ``inputs`` together are accepted,
    the model is counted under ``preset``) in ``mmengine.analysis`` and the mmengine modules that
    define it, and :func:`pack_handles_in_mmengine` is active, so a ``FlopAnalyzer`` built
    directly counts with the pack's handles too. Code that imported the name before the block
    keeps mmengine's function: import (or ``runpy``-run) the script inside the block.

    The default preset is ``paper``: it counts what mmengine's own handles count (fvcore's ops:
    matmuls, convolutions, norms, resampling), so a script written for mmengine gets the numbers
    it was written to report, plus the ops mmengine cannot count (SDPA, Mamba scans).

    Yields:
        A list that gets one :class:`ComplexityCall` per ``get_model_complexity_info`` call.

    On exit every replaced name is bound to mmengine's original function again and mmengine's
    handle table is restored, also when the block raises. ``ValueError`` on an unknown preset;
    ``ImportError`` without mmengine.
    """
    check_preset(preset)
    calls: List[ComplexityCall] = []

    def counting_get_model_complexity_info(model, input_shape=None, inputs=None,
                                           show_table=True, show_arch=True):
        """mmengine's signature; counts with ``fvcore_ext`` (``fvcore_ext.mmseg.mmengine_analysis.
        pack_in_mmengine``) and records the call."""
        result, ran = _complexity_info(model, input_shape, inputs, show_table, show_arch,
                                       preset, strict)
        calls.append(ComplexityCall(
            preset=preset,
            input_shape=tuple(input_shape) if input_shape is not None else None,
            counted_shapes=[tuple(x.shape) if isinstance(x, torch.Tensor) else None
                            for x in ran],
            macs=result["flops"], params=result["params"],
            unsupported_ops=result["unsupported_ops"], uncounted=list(result["uncounted"])))
        return result

    originals = []
    for name in _MMENGINE_NAMES:
        module = importlib.import_module(name)
        if hasattr(module, "get_model_complexity_info"):
            originals.append((module, module.get_model_complexity_info))
    try:
        for module, _ in originals:
            module.get_model_complexity_info = counting_get_model_complexity_info
        with pack_handles_in_mmengine(preset, strict):
            yield calls
    finally:
        for module, original in originals:
            module.get_model_complexity_info = original
