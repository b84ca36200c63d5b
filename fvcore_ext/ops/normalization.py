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
    return rules.rms_norm_macs(call.shape(0), rules.numel(_normalized_shape(call, 1, 2)),
                               has_weight=call.has_tensor(2))


def _normalized_shape(call: OpCall, index: int, weight_index: int) -> list:
    # A shape computed from the input (F.rms_norm(x, (x.shape[-1],), w), common in model code)
    # is traced as values the JIT graph does not know (issue 26): the weight has the
    # normalized shape, and without a weight it is the input's trailing dimensions.
    shape = call.scalar(index)
    if isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                       for d in shape):
        return shape
    if call.has_tensor(weight_index):
        return list(call.shape(weight_index))
    if isinstance(shape, list) and 0 < len(shape) <= len(call.shape(0)):
        return list(call.shape(0)[-len(shape):])
    raise CannotCount(f"normalized_shape is {shape!r}, not a list of ints, and no weight "
                      f"gives it")


@counts("aten::_weight_norm", family="normalization")
def _weight_norm(call: OpCall) -> Cost:
    # Not in fvcore: wav2vec2, HuBERT and other speech models' weight-normed positional conv.
    return rules.weight_norm_macs(call.shape(0), call.shape(1))
