"""The pack in mmengine: ``get_model_complexity_info`` with mmengine's signature and result,
and a context manager that makes mmengine's own analysis use the pack's handles.

mmengine's ``FlopAnalyzer`` is an fvcore port: it takes the same handles, but reads the module
global ``mmengine.analysis.complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS`` when it is
constructed, and mmengine's ``get_model_complexity_info`` accepts no handles at all.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator, Sequence, Tuple, Union

import torch
from torch import nn

from .handles import make_handles
from .rules import check_preset

__all__ = ["get_model_complexity_info", "pack_handles_in_mmengine"]


@contextmanager
def pack_handles_in_mmengine(preset: str = "full", strict: bool = False) -> Iterator[None]:
    """Inside the block, every ``mmengine.analysis.FlopAnalyzer`` constructed (and so mmengine's
    own ``get_model_complexity_info``) counts with the pack's handles under ``preset``. On exit
    mmengine's original handle table object is bound again. ``ValueError`` on an unknown
    preset; ``ImportError`` without mmengine."""
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
        strict: raise :class:`fvcore_ext.UncountableOpError` where an op cannot be counted.

    Returns:
        mmengine's dict: ``flops`` (MACs, fvcore's and mmengine's "flops"), ``flops_str``,
        ``activations``, ``activations_str``, ``params``, ``params_str``, ``out_table``,
        ``out_arch``, plus ``unsupported_ops`` (op name → calls) from the pack.

    Raises:
        ValueError: neither ``input_shape`` nor ``inputs``, a malformed ``input_shape``, or an
            unknown preset.
    """
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
    for handler in (flop_handler, activation_handler):
        handler.unsupported_ops_warnings(False)
    with torch.no_grad():
        flops = int(flop_handler.total())
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
    }
