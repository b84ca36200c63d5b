"""Readers of the kernels autograd runs in a backward pass (the dispatch engine's training counts).

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations

from typing import Optional

from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall
from .registry import (OP_TABLE, Reader, aten_ops, bool_scalar, costs_nothing, counts)
from .elementwise import elementwise_reader

# ---------------------------------------------------------------- backward ops (training)
# Only the dispatch engine (fvcore_ext/dispatch.py) meets these: the kernels autograd runs in a
# backward pass (CONVENTIONS.md "Training: forward + backward"). Matmuls, sums and plain
# elementwise ops in a backward are counted by their forward rules above as they run.

# 1 × output numel each, full preset only: the derivative of an activation or softmax applied
# to the incoming gradient (threshold_backward is ReLU's).
ELEMENTWISE_BACKWARD_OPS = aten_ops(
    "gelu_backward", "silu_backward", "threshold_backward", "sigmoid_backward", "tanh_backward",
    "hardswish_backward", "hardsigmoid_backward", "hardtanh_backward", "leaky_relu_backward",
    "elu_backward", "softplus_backward", "mish_backward", "log_sigmoid_backward",
    "_softmax_backward_data", "_log_softmax_backward_data", "glu_backward",
    "_prelu_kernel_backward")
counts(*ELEMENTWISE_BACKWARD_OPS, family="elementwise")(elementwise_reader)


def _output_mask(call: OpCall, index, width: int = 3) -> list:
    mask = call.scalar(index, [True] * width)
    if not isinstance(mask, (list, tuple)) or len(mask) != width:
        raise CannotCount(f"output_mask is {mask!r}, expected {width} bools")
    return [bool(m) for m in mask]


@counts("aten::convolution_backward", family="convolution", name="conv_backward")
def _convolution_backward(call: OpCall) -> Cost:
    # convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
    # transposed, output_padding, groups, output_mask)
    input_grad, weight_grad, bias_grad = _output_mask(call, 10)
    return rules.conv_backward_macs(call.shape(1), call.shape(2), call.shape(0),
                                    bool_scalar(call, 7, False), input_grad, weight_grad,
                                    bias_grad)


@counts("aten::native_layer_norm_backward", family="normalization", name="layer_norm_backward")
def _layer_norm_backward(call: OpCall) -> Cost:
    # (grad_out, input, normalized_shape, mean, rstd, weight, bias, output_mask)
    input_grad, weight_grad, bias_grad = _output_mask(call, 7)
    return rules.norm_backward_macs(call.shape(1), call.has_tensor(5), input_grad,
                                    weight_grad and call.has_tensor(5),
                                    bias_grad and call.has_tensor(6))


@counts("aten::native_group_norm_backward", family="normalization", name="group_norm_backward")
def _group_norm_backward(call: OpCall) -> Cost:
    # (grad_out, input, mean, rstd, weight, N, C, HxW, group, output_mask)
    input_grad, weight_grad, bias_grad = _output_mask(call, 9)
    affine = call.has_tensor(4)
    return rules.norm_backward_macs(call.shape(1), affine, input_grad, weight_grad and affine,
                                    bias_grad and affine)


@counts("aten::native_batch_norm_backward", family="normalization", name="batch_norm_backward")
def _batch_norm_backward(call: OpCall) -> Cost:
    # (grad_out, input, weight, running_mean, running_var, save_mean, save_invstd, train, eps,
    # output_mask); instance norm arrives here too, as a training-mode batch norm
    input_grad, weight_grad, bias_grad = _output_mask(call, 9)
    affine = call.has_tensor(2)
    return rules.norm_backward_macs(call.shape(1), affine, input_grad, weight_grad and affine,
                                    bias_grad and affine,
                                    running_stats=not bool_scalar(call, 7, True))


def _upsample_backward_reader(mode: str) -> Reader:
    # upsample_*_backward(grad_output, output_size, input_size, ...): the forward's count, read
    # from the gradient of its output
    def read(call: OpCall) -> Cost:
        return rules.upsample_macs(mode, call.shape(0))
    return read


for _mode, _dims in (("nearest", "123"), ("linear", "1"), ("bilinear", "2"), ("bicubic", "2"),
                     ("trilinear", "3")):
    for _d in _dims:
        counts(f"aten::upsample_{_mode}{_d}d_backward", family="resampling")(
            _upsample_backward_reader(_mode))
for _d in "123":
    counts(f"aten::_upsample_nearest_exact{_d}d_backward", family="resampling")(
        _upsample_backward_reader("nearest_exact"))
counts("aten::_upsample_bilinear2d_aa_backward", family="resampling")(
    _upsample_backward_reader("bilinear"))
counts("aten::_upsample_bicubic2d_aa_backward", family="resampling")(
    _upsample_backward_reader("bicubic"))


@counts("aten::_adaptive_avg_pool2d_backward", family="resampling")
def _adaptive_avg_pool2d_backward(call: OpCall) -> Cost:
    # (grad_output, self): the forward's 1 × input numel, core as the forward is
    return Cost(core=rules.numel(call.shape(1)))


@counts(*aten_ops("avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
               "_adaptive_avg_pool3d_backward"), family="reduction")
def _avg_pool_backward(call: OpCall) -> Cost:
    # (grad_output, self, ...): the forward's 1 × input numel
    return rules.reduction_macs(call.shape(1))


@counts("aten::_weight_norm_interface_backward", family="normalization")
def _weight_norm_backward(call: OpCall) -> Cost:
    # (grad_w, saved_v, saved_g, saved_norms, dim)
    return rules.weight_norm_backward_macs(call.shape(1), call.shape(2))


@counts("aten::embedding_dense_backward", family="elementwise")
def _embedding_backward(call: OpCall) -> Cost:
    # (grad_output, indices, num_weights, padding_idx, scale_grad_by_freq): every gradient row
    # is added into its token's row of the weight gradient, as index_add_ (1 × source numel)
    return rules.elementwise_macs(call.shape(0))


def _sdpa_backward_reader(grad_mask_index: Optional[int]) -> Reader:
    # The SDPA kernels' backward ops (grad_out, query, key, value, ...); a kernel that takes a
    # grad_input_mask computes only the gradients it asks for, the others all three.
    def read(call: OpCall) -> Cost:
        needs = [True] * 3
        if grad_mask_index is not None:
            needs = _output_mask(call, grad_mask_index, width=4)[:3]
        return rules.sdpa_backward_macs(call.shape(1), call.shape(2), call.shape(3), *needs)
    return read


counts("aten::_scaled_dot_product_flash_attention_for_cpu_backward",
       "aten::_scaled_dot_product_flash_attention_backward",
       "aten::_scaled_dot_product_cudnn_attention_backward", family="attention",
       name="scaled_dot_product_attention_backward")(_sdpa_backward_reader(None))
counts("aten::_scaled_dot_product_efficient_attention_backward", family="attention",
       name="scaled_dot_product_attention_backward")(_sdpa_backward_reader(10))

# Ops only the dispatcher shows: views, copies and bookkeeping the tracer records under other
# names (or not at all), dropout's kernels (dropout costs 0) and the scatters that slicing's
# backward runs. Max pooling picks (0), also adaptively (timm's bat_resnext26ts).
DISPATCH_ZERO_COST_OPS = aten_ops(
    "_unsafe_view", "_reshape_alias", "_to_copy", "empty_strided", "new_empty_strided",
    "_local_scalar_dense", "select_backward", "slice_backward", "index_put", "_index_put_impl_",
    "as_strided_scatter", "slice_scatter", "select_scatter", "diagonal_scatter",
    "native_dropout", "native_dropout_backward", "bernoulli", "uniform_", "normal_",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward", "_unsafe_index",
    "unfold_backward", "_efficientzerotensor", "_assert_async", "_functional_assert_async",
    "sym_constrain_range_for_size", "_conj", "_neg_view", "set_", "resize_", "_unsafe_split",
    "masked_fill_", "index_put_", "copy", "_pin_memory", "is_same_size", "lift",
    "_has_compatible_shallow_copy_type", "squeeze_", "unsqueeze_", "t_", "transpose_",
    "as_strided_", "diag_embed", "diagonal", "diagonal_backward", "_unsafe_index_put",
    "expand_copy", "view_copy", "permute_copy", "split_with_sizes_copy", "unbind_copy",
    "_unsafe_masked_index", "native_dropout_", "aminmax",
    # a pad's backward gathers the gradient back (0, as the pad itself)
    "reflection_pad1d_backward", "reflection_pad2d_backward", "reflection_pad3d_backward",
    "replication_pad1d_backward", "replication_pad2d_backward", "replication_pad3d_backward")
counts(*(op for op in DISPATCH_ZERO_COST_OPS if op not in OP_TABLE),
       family="zero-cost")(costs_nothing)
