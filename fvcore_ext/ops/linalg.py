"""Readers of the matmul family: matmul, mm, addmm, bmm, baddbmm, linear, einsum, grouped matmuls, triangular solves.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall, TensorArg
from .registry import (bool_scalar, counts)

@counts("aten::matmul", "aten::mm", family="matmul")
def _matmul(call: OpCall) -> Cost:
    return rules.matmul_macs(call.shape(0), call.shape(1))


@counts("aten::addmm", family="matmul")
def _addmm(call: OpCall) -> Cost:
    return rules.addmm_macs(call.shape(1), call.shape(2))


@counts("aten::bmm", family="matmul")
def _bmm(call: OpCall) -> Cost:
    return rules.bmm_macs(call.shape(0), call.shape(1))


@counts("aten::baddbmm", family="matmul")
def _baddbmm(call: OpCall) -> Cost:
    # Not in fvcore. nn.MultiheadAttention's need_weights path adds its float mask this way
    # (torch.baddbmm(attn_mask, q, kᵀ)): the bmm is core, the add one MAC per output element.
    return (rules.bmm_macs(call.shape(1), call.shape(2))
            + rules.elementwise_macs(call.output_shape()))


@counts("aten::bilinear", family="matmul")
def _bilinear(call: OpCall) -> Cost:
    # bilinear(input1, input2, weight, bias)
    return rules.bilinear_macs(call.shape(0), call.shape(2))


@counts("aten::_trilinear", family="matmul", name="bilinear")
def _trilinear(call: OpCall) -> Cost:
    # Only the dispatcher shows it: nn.Bilinear's kernel, forward and backward.
    return rules.trilinear_macs([call.shape(0), call.shape(1), call.shape(2)],
                                [call.scalar(3), call.scalar(4), call.scalar(5)])


@counts("aten::linear", family="matmul")
def _linear(call: OpCall) -> Cost:
    return rules.linear_macs(call.shape(0), call.shape(1))


@counts("aten::einsum", family="matmul")
def _einsum(call: OpCall) -> Cost:
    equation, operands = call.scalar(0), call.scalar(1)
    if not isinstance(operands, list):
        raise CannotCount("einsum operands are not a traced list")
    shapes = []
    for i, operand in enumerate(operands):
        if not isinstance(operand, TensorArg) or operand.shape is None:
            raise CannotCount(f"no shape recorded for einsum operand {i}")
        shapes.append(operand.shape)
    return rules.einsum_macs(equation, shapes)


@counts("aten::_grouped_mm", "aten::_scaled_grouped_mm", family="matmul")
def _grouped_mm(call: OpCall) -> Cost:
    # The MoE expert matmuls (torch.nn.functional.grouped_mm), and their FP8 form
    # (mat_a, mat_b, scale_a, scale_b, offs, ...) whose scales are applied in the kernel's
    # epilogue. Offsets are data: the rule reads shapes only, so it holds for any routing
    # (docs/conventions.md "Grouped matmul").
    return rules.grouped_mm_macs(call.shape(0), call.shape(1))


@counts("aten::linalg_solve_triangular", family="matmul")
def _solve_triangular(call: OpCall) -> Cost:
    return rules.triangular_solve_macs(call.shape(0), call.output_shape(),
                                       bool_scalar(call, 4, False))
