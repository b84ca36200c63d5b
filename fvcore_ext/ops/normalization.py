"""Readers of the normalization family: batch, layer, group, instance and RMS norms, weight norm.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall
from .registry import (Reader, counts)

@counts("aten::batch_norm", family="normalization")
def _batch_norm(call: OpCall) -> Cost:
    training = call.scalar(5)
    if not isinstance(training, bool):
        raise CannotCount("argument 5 (training) is not a bool: unknown aten::batch_norm layout")
    return rules.batch_norm_macs(call.shape(0), call.has_tensor(1), training)


def _norm_reader(affine_index: int) -> Reader:
    def read(call: OpCall) -> Cost:
        return rules.norm_macs(call.shape(0), call.has_tensor(affine_index))
    return read


counts("aten::group_norm", "aten::layer_norm", family="normalization")(_norm_reader(2))
counts("aten::instance_norm", family="normalization")(_norm_reader(1))


@counts("aten::rms_norm", family="normalization")
def _rms_norm(call: OpCall) -> Cost:
    # Not in fvcore (nn.RMSNorm, F.rms_norm): costed as its composite kernel's ops.
    normalized_shape = call.scalar(1)
    if not isinstance(normalized_shape, list) or not all(isinstance(d, int)
                                                         for d in normalized_shape):
        raise CannotCount(f"normalized_shape is {normalized_shape!r}, not a list of ints")
    return rules.rms_norm_macs(call.shape(0), rules.numel(normalized_shape),
                               has_weight=call.has_tensor(2))


@counts("aten::_weight_norm", family="normalization")
def _weight_norm(call: OpCall) -> Cost:
    # Not in fvcore: wav2vec2, HuBERT and other speech models' weight-normed positional conv.
    return rules.weight_norm_macs(call.shape(0), call.shape(1))
