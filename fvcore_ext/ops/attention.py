"""Readers of the attention family: SDPA, the fused multi-head attention and encoder-layer kernels, YOSO's cumulation.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import OpCall, TensorArg
from .registry import (bool_scalar, counts, int_scalar, output_used)

@counts("aten::scaled_dot_product_attention", family="attention")
def _sdpa(call: OpCall) -> Cost:
    mask = call.arg(3)
    if isinstance(mask, TensorArg):
        mask_kind = "bool" if mask.dtype == "Bool" else "float"
    else:
        mask_kind = None
    return rules.sdpa_macs(call.shape(0), call.shape(1), call.shape(2), mask_kind)


@counts("aten::_native_multi_head_attention", family="attention")
def _native_mha(call: OpCall) -> Cost:
    return rules.native_mha_macs(
        call.shape(0), call.shape(1), num_heads=int_scalar(call, 4),
        need_weights=bool_scalar(call, 10, True),
        # The averaged weights are output 1; when nothing reads them the traced slow path
        # has no mean over heads to count either.
        average_attn_weights=bool_scalar(call, 11, True) and output_used(call, 1),
        has_mask=call.has_tensor(9))


@counts("aten::_transformer_encoder_layer_fwd", family="attention")
def _transformer_encoder_layer(call: OpCall) -> Cost:
    return rules.transformer_encoder_layer_macs(
        call.shape(0), num_heads=int_scalar(call, 2), ffn_dim=call.shape(14)[0],
        use_gelu=bool_scalar(call, 7, False), norm_affine=call.has_tensor(10),
        has_mask=call.has_tensor(18))


@counts("prim::PythonOp.YosoCumulation", family="attention")
def _yoso_cumulation(call: OpCall) -> Cost:
    # transformers' YOSO (models/yoso/modeling_yoso.py), forward(query_mask, key_mask, query,
    # key, value, config): ((1 - acos(q kᵀ) / π) ** h) · masks, then @ v. The two matmuls are
    # core; acos, the divide, the subtraction, the power and the two mask products are six
    # elementwise ops per score.
    query, key, value = call.shape(2), call.shape(3), call.shape(4)
    scores = rules.matmul_macs(query, tuple(key[:-2]) + (key[-1], key[-2]))
    return (scores + rules.matmul_macs(tuple(query[:-1]) + (key[-2],), value)
            + Cost(elementwise=6 * scores.core // query[-1]))
