"""Readers of the convolution family: _convolution, _convolution_mode, conv_tbc.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall
from .registry import (counts)

@counts("aten::_convolution", family="convolution", name="conv")
def _convolution(call: OpCall) -> Cost:
    transposed = call.scalar(6)
    if not isinstance(transposed, bool):
        raise CannotCount("argument 6 (transposed) is not a bool: "
                          "unknown aten::_convolution layout")
    return rules.conv_macs(call.shape(0), call.shape(1), call.output_shape(), transposed)


@counts("aten::_convolution_mode", family="convolution", name="conv")
def _convolution_mode(call: OpCall) -> Cost:
    # conv with padding="same"/"valid" (SigLIP's patch embedding): a plain convolution.
    return rules.conv_macs(call.shape(0), call.shape(1), call.output_shape(), transposed=False)


@counts("aten::conv_tbc", family="convolution")
def _conv_tbc(call: OpCall) -> Cost:
    # Time-batch-channel convolution (fairseq's ConvTBC): x (T, B, C_in), weight
    # (K, C_in, C_out), out (T', B, C_out): every output element reads K·C_in inputs.
    kernel, in_channels, _ = call.shape(1)
    return Cost(core=rules.numel(call.output_shape()) * kernel * in_channels)
