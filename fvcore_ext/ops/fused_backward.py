"""Backward rules of the fused ops (:data:`BACKWARD_RULES`): SDPA and every autograd Function the table counts.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations

from typing import List

from .. import rules
from ..rules import Cost
from .opcall import OpCall, TensorArg
from .registry import (BackwardReader, backward_of,
                       bool_scalar, needs_by_name)
from .mamba import (BIMAMBA_INNER_SIGNATURE, CAUSAL_CONV1D_SIGNATURE, CROSS_MERGE_FUNCTIONS,
                    CROSS_SCAN_FUNCTIONS, MAMBA_INNER_NO_OUT_PROJ_SIGNATURE,
                    MAMBA_INNER_SIGNATURE, SELECTIVE_SCAN_SIGNATURES, inner_common)
from .ssd import (ADD_NORM_SIGNATURES, GATED_NORM_SIGNATURE, MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE,
                  chunk_scan_arguments, layer_norm_fn_layout, split_conv1d_scan_arguments)

# ---------------------------------------------------------------- backward of fused ops
# The dispatch engine counts an SDPA call and every autograd Function in this table once at its
# boundary; its backward (the autograd nodes the boundary created) is counted once by the
# reader here, given the forward call and which of its arguments need a gradient, in call
# order (CONVENTIONS.md "Training": a fused op's backward costs what the backward of its unfused
# reference costs). A Function missing here has its backward reported uncounted.

@backward_of("aten::scaled_dot_product_attention")
def _sdpa_backward(call: OpCall, needs: List[bool]) -> Cost:
    return rules.sdpa_backward_macs(call.shape(0), call.shape(1), call.shape(2), *needs[:3])


# BLOOM's GeLUFunction is a gelu, SEW-D's XSoftmax a softmax: their backward is gelu_backward's
# and _softmax_backward_data's 1 × output numel.
@backward_of("prim::PythonOp.GeLUFunction", "prim::PythonOp.XSoftmax")
def _elementwise_function_backward(call: OpCall, needs: List[bool]) -> Cost:
    return rules.elementwise_macs(call.output_shape())


def _selective_scan_backward_reader(signature: tuple) -> BackwardReader:
    def read(call: OpCall, needs: List[bool]) -> Cost:
        call = call.with_signature(signature)
        A = call.arg("A")
        return rules.selective_scan_backward_macs(
            call.shape("u"), call.shape("A"), call.shape("B"), call.shape("C"),
            has_D=call.has_tensor("D"), has_z="z" in signature and call.has_tensor("z"),
            delta_softplus=bool_scalar(call, "delta_softplus", False),
            complex_A=isinstance(A, TensorArg) and A.is_complex)
    return read


for _name, _signature in SELECTIVE_SCAN_SIGNATURES.items():
    backward_of(f"prim::PythonOp.{_name}")(_selective_scan_backward_reader(_signature))


@backward_of("prim::PythonOp.CausalConv1dFn")
def _causal_conv1d_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(CAUSAL_CONV1D_SIGNATURE)
    need = needs_by_name(CAUSAL_CONV1D_SIGNATURE, needs)
    return rules.causal_conv1d_backward_macs(
        call.shape("x"), call.shape("weight"), silu=call.scalar("activation") is not None,
        input_grad=need["x"] or need.get("initial_states", False),
        weight_grad=need["weight"], bias_grad=need.get("bias", False))


@backward_of("prim::PythonOp.MambaInnerFn")
def _mamba_inner_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(MAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=call.shape("out_proj_weight"),
        needs=needs_by_name(MAMBA_INNER_SIGNATURE, needs), **_inner_backward_common(call))


@backward_of("prim::PythonOp.MambaInnerFnNoOutProj")
def _mamba_inner_no_out_proj_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=None, needs=needs_by_name(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE, needs),
        **_inner_backward_common(call))


@backward_of("prim::PythonOp.BiMambaInnerFn")
def _bimamba_inner_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(BIMAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=call.shape("out_proj_weight"), A_b=call.shape("A_b"),
        needs=needs_by_name(BIMAMBA_INNER_SIGNATURE, needs), **_inner_backward_common(call))


# VMamba's cross scan copies x into K directions: its backward adds the K gradients back,
# (K - 1)·B·D·L (the cross merge's forward count), elementwise; the cross merge's backward
# copies one gradient into K directions (0).
@backward_of(*(f"prim::PythonOp.{name}" for name in CROSS_SCAN_FUNCTIONS), family="elementwise")
def _cross_scan_backward(call: OpCall, needs: List[bool]) -> Cost:
    return rules.sum_of_terms_macs(call.output_shape(), call.shape(0))


@backward_of(*(f"prim::PythonOp.{name}" for name in CROSS_MERGE_FUNCTIONS), family="zero-cost")
def _cross_merge_backward(call: OpCall, needs: List[bool]) -> Cost:
    return Cost()


@backward_of("prim::PythonOp.XDropout")
def _xdropout_backward(call: OpCall, needs: List[bool]) -> Cost:
    return Cost()         # DeBERTa's dropout: its backward masks and scales, 0 like dropout's


@backward_of("prim::PythonOp.YosoCumulation")
def _yoso_cumulation_backward(call: OpCall, needs: List[bool]) -> Cost:
    # transformers' YosoCumulation.backward (models/yoso/modeling_yoso.py): YOSO's surrogate
    # gradient, not the derivative of its forward, so its own code is the formula:
    # (grad @ vᵀ) · expectation, dQ = that @ (h/2 · k), dK = thatᵀ @ (h/2 · q),
    # dV = expectationᵀ @ grad: four matmuls (core); the product with the expectation (1 per
    # score) and the two scalings (numel q + numel k), elementwise.
    query, key, value = call.shape(2), call.shape(3), call.shape(4)
    scores = rules.matmul_macs(query, tuple(key[:-2]) + (key[-1], key[-2]))
    attend = rules.matmul_macs(tuple(query[:-1]) + (key[-2],), value)
    per_score = scores.core // query[-1]
    return (scores + scores + attend + attend
            + Cost(elementwise=per_score + rules.numel(query) + rules.numel(key)))


def _inner_backward_common(call: OpCall) -> dict:
    given = {name: call.shape(name) for name in ("B", "C") if call.has_tensor(name)}
    return dict(inner_common(call), delta_softplus=bool_scalar(call, "delta_softplus", True),
                **given)


@backward_of("prim::PythonOp.MambaChunkScanCombinedFn")
def _mamba_chunk_scan_combined_backward(call: OpCall, needs: List[bool]) -> Cost:
    return rules.ssd_chunk_scan_backward_macs(**chunk_scan_arguments(call)[1])


@backward_of("prim::PythonOp.MambaSplitConv1dScanCombinedFn")
def _mamba_split_conv1d_scan_combined_backward(call: OpCall, needs: List[bool]) -> Cost:
    call, arguments = split_conv1d_scan_arguments(call)
    return rules.mamba_split_conv1d_scan_backward_macs(
        needs=needs_by_name(MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE, needs),
        norm_before_gate=bool_scalar(call, "norm_before_gate", True), **arguments)


@backward_of("prim::PythonOp.LayerNormFn")
def _mamba_layer_norm_backward(call: OpCall, needs: List[bool]) -> Cost:
    layout, call = layer_norm_fn_layout(call)
    is_rms = bool_scalar(call, "is_rms_norm", False)
    if layout == "gated":
        need = needs_by_name(GATED_NORM_SIGNATURE, needs)
        return rules.gated_norm_backward_macs(
            call.shape("x"), call.scalar("group_size"), is_rms_norm=is_rms,
            has_bias=call.has_tensor("bias"), gated=call.has_tensor("z"), input_grad=need["x"],
            weight_grad=need["weight"], bias_grad=need["bias"], gate_grad=need.get("z", False),
            norm_before_gate=bool_scalar(call, "norm_before_gate", True))
    need = needs_by_name(ADD_NORM_SIGNATURES[len(call.args)], needs)
    x, affine = call.shape("x"), call.has_tensor("weight")
    input_grad = need["x"] or need.get("residual", False)
    bias_grad = need.get("bias", False) and call.has_tensor("bias")
    if is_rms:
        norm = rules.rms_norm_backward_macs(x, affine, input_grad, need["weight"], bias_grad)
    else:
        norm = rules.norm_backward_macs(x, affine, input_grad, need["weight"] and affine,
                                        bias_grad)
    # prenorm returns the residual stream too: its gradient is added to the norm's input
    # gradient, as autograd adds the two gradients of the reference's x + residual.
    prenorm = bool_scalar(call, "prenorm", False) and input_grad
    return norm + (rules.elementwise_macs(x) if prenorm else Cost())
