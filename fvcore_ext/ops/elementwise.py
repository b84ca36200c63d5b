"""Readers of the elementwise and reduction families, and the zero-cost ops (data movement, comparisons, routing).

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall, TensorArg
from .registry import (aten_ops, costs_nothing, counts, with_inplace)

def _is_shape_arithmetic(call: OpCall) -> bool:
    # `bsz * num_heads` inside F.multi_head_attention_forward: a 0-dim result computed from
    # traced sizes and constants only. Not compute (docs/conventions.md, "Shape arithmetic").
    out = call.outputs[0] if call.outputs else None
    return isinstance(out, TensorArg) and out.from_sizes


# docs/conventions.md "Elementwise ops" and "Every other op a real model runs": 1 x output numel
# (the broadcast shape), full preset only. glu, lerp, addcmul and addcdiv do two or three
# operations per output element; the contract counts each op once, as it counts gelu.
ELEMENTWISE_OPS = with_inplace(
    "add", "sub", "mul", "div", "neg", "pow", "square", "sqrt", "rsqrt", "exp", "log",
    "reciprocal", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu",
    "elu", "mish",
    "sin", "cos", "tan", "atan", "atan2", "sinh", "cosh", "asin", "acos", "asinh", "acosh",
    "atanh", "erf", "erfc", "erfinv", "abs", "sign", "sgn", "ceil", "floor", "round", "trunc",
    "frac", "log1p", "log2", "log10", "expm1", "exp2", "logit", "lerp", "addcmul", "addcdiv",
    "relu6", "selu", "celu", "true_divide", "xlogy", "hypot",
) + aten_ops("rsub", "softplus", "softmax", "log_softmax", "glu", "logaddexp", "log_sigmoid",
          "polar", "prelu")      # prelu: CGNet's activation, a leaky_relu with learned slopes


@counts(*ELEMENTWISE_OPS, family="elementwise")
def elementwise_reader(call: OpCall) -> Cost:
    if _is_shape_arithmetic(call):
        return Cost()
    return rules.elementwise_macs(call.output_shape())


@counts("aten::diff", family="elementwise")
def _diff(call: OpCall) -> Cost:
    # diff(self, n, dim, prepend, append): n passes of a subtraction (docs/conventions.md: "a
    # subtraction"); pass k of a signal of length L along dim (prepend and append included)
    # leaves L - k differences, one subtraction each.
    out = call.output_shape()
    n, dim = call.scalar(1, 1), call.scalar(2, -1)
    if not isinstance(n, int) or not isinstance(dim, int):
        raise CannotCount("n (argument 1) or dim (argument 2) is not an int")
    length = sum(call.shape(i)[dim] for i in (0, 3, 4) if call.has_tensor(i))
    rows = rules.numel(out[:dim % len(out)] + out[dim % len(out) + 1:])
    return Cost(elementwise=rows * sum(max(length - k, 0) for k in range(1, n + 1)))


@counts(*with_inplace("index_add"), family="elementwise")
def _index_add(call: OpCall) -> Cost:
    # self.index_add_(dim, index, source, alpha): one add per source element (docs/conventions.md).
    return rules.elementwise_macs(call.shape(3))


@counts(*with_inplace("scatter_add"), family="elementwise")
def _scatter_add(call: OpCall) -> Cost:
    # self.scatter_add_(dim, index, src): one add per index element; src may be larger than
    # index and its extra elements are never read (torch.Tensor.scatter_add_ docs).
    return rules.elementwise_macs(call.shape(2))


@counts("aten::scatter_reduce", family="reduction")
def _scatter_reduce(call: OpCall) -> Cost:
    # self.scatter_reduce(dim, index, src, reduce): each indexed source element is accumulated
    # once (TAPAS's segment means), so index numel, as for scatter_add; "amax"/"amin" pick
    # instead, which costs 0 like amax.
    reduce = call.scalar(4)
    if reduce in ("amax", "amin"):
        return Cost()
    if reduce not in ("sum", "prod", "mean"):
        raise CannotCount(f"reduce {reduce!r} is not one scatter_reduce supports")
    return rules.reduction_macs(call.shape(2))


# Known autograd Functions of popular libraries, counted as what they compute.
@counts("prim::PythonOp.GeLUFunction", "prim::PythonOp.XSoftmax", family="elementwise")
def _python_elementwise(call: OpCall) -> Cost:
    # transformers' BLOOM (models/bloom/modeling_bloom.py): GeLUFunction.apply(x) computes the
    # tanh approximation of gelu in a custom autograd Function; it is counted as aten::gelu.
    # SEW-D's XSoftmax.apply(x, mask, dim) is a softmax between two masked_fills (0): as
    # aten::softmax.
    return rules.elementwise_macs(call.output_shape())


# Reductions and averages: 1 x input numel, full preset only.
REDUCTION_OPS = aten_ops(
    "mean", "sum", "cumsum", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool3d", "linalg_vector_norm", "norm", "frobenius_norm", "var", "std",
    "var_mean", "std_mean", "prod", "logsumexp", "cumprod", "nansum", "nanmean", "cumsum_",
    "linalg_norm",
    # F.fold (MobileViTv2): sums the overlapping patches of its input
    "col2im")


@counts(*REDUCTION_OPS, family="reduction")
def _reduction(call: OpCall) -> Cost:
    return rules.reduction_macs(call.shape(0))


# Data movement, comparisons, ReLU/clamp, routing and constructors: 0 in both presets.
# FVCORE_IGNORED_OPS is fvcore 0.1.5's _IGNORED_OPS (jit_analysis.py), which fvcore skips
# unless a handle is registered: every one of them costs 0 here too, except aten::floor, which
# the contract counts as an elementwise op (a handle takes precedence over fvcore's list).
FVCORE_IGNORED_OPS = aten_ops(
    "Int", "ScalarImplicit", "__and__", "arange", "bitwise_not", "cat", "chunk", "clamp",
    "clamp_", "constant_pad_nd", "contiguous", "copy_", "detach", "dropout", "empty", "eq",
    "expand", "flatten", "floor", "floor_divide", "full", "full_like", "gather", "ge", "gt",
    "index", "index_put_", "masked_fill", "max", "narrow", "new_empty", "new_full", "new_zeros",
    "nonzero", "ones", "permute", "relu", "relu_", "remainder", "reshape", "roll", "select",
    "size", "slice", "split", "squeeze", "stack", "t", "to", "transpose", "type_as", "unbind",
    "unsqueeze", "unsqueeze_", "view", "zeros", "zeros_like",
)
ZERO_COST_OPS = tuple(op for op in FVCORE_IGNORED_OPS if op not in ELEMENTWISE_OPS) + aten_ops(
    "alias", "argmax", "argmin", "bitwise_and", "bitwise_or", "bitwise_xor", "channel_shuffle",
    "clamp_min", "clamp_max", "clone", "expand_as", "feature_dropout", "dropout_", "embedding",
    "fill_", "flip", "hardtanh", "hardtanh_", "index_select", "le", "lift_fresh", "logical_and",
    "logical_not", "logical_or", "lt", "masked_fill_", "max_pool1d", "max_pool2d", "max_pool3d",
    "min", "movedim", "ne", "new_ones", "ones_like", "pad", "pixel_shuffle", "pixel_unshuffle",
    "repeat", "repeat_interleave", "scalar_tensor", "scatter", "sort", "tensor_split",
    "topk", "tril", "triu", "unflatten", "unfold", "view_as", "where", "zero_", "linspace",
    "empty_like", "split_with_sizes", "rand", "rand_like", "randn", "randn_like", "bernoulli_",
    # comparisons and logic: amax/amin/max/min/argmax pick, they do not accumulate
    "amax", "amin", "__or__", "__xor__", "__iand__", "__ior__", "__ixor__", "bitwise_and_",
    "bitwise_or_", "bitwise_xor_", "logical_xor", "any", "all", "isnan", "isinf", "isfinite",
    "isin", "eq_", "ne_", "ge_", "gt_", "le_", "lt_", "logical_and_", "logical_or_",
    "logical_xor_", "logical_not_",
    # MoE routing and data movement (docs/conventions.md "Routing and data movement")
    "histc", "bincount", "one_hot", "scatter_", "argsort", "numpy_T", "as_strided",
    "reshape_as", "unique", "_unique2", "unique_dim", "unique_consecutive", "searchsorted",
    # F.unfold (Swin's patch merging in mmseg): copies patches into columns
    "im2col",
    # views, constants, copies and picks found by the census of the transformers zoo
    "tile", "meshgrid", "eye", "view_as_complex", "view_as_real", "real", "imag", "conj",
    "resolve_conj", "resolve_neg", "bucketize", "masked_scatter", "masked_select",
    "nan_to_num", "maximum", "minimum", "multinomial",
    # in-place views and clamps (issue 21): the same zero cost as their out-of-place forms;
    # diag (CCNet's criss-cross attention masks its diagonal with it) copies a diagonal
    "transpose_", "t_", "squeeze_", "as_strided_", "clamp_min_", "clamp_max_", "diag",
    # torch.tensor(x.shape) under tracing (mmdet's MaskFormer heads): a shape, not compute
    "_shape_as_tensor",
    # max pooling picks, as max_pool2d does (SAN's side adapter)
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    # padding copies (issue 26): reflection, replication and circular pads, as constant_pad_nd
    "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
    "replication_pad2d", "replication_pad3d", "_pad_circular", "_pad_enum",
)


counts(*ZERO_COST_OPS, family="zero-cost")(costs_nothing)
# SEW-D's StableDropout in train mode (transformers models/sew_d): a dropout, 0 like aten::dropout
counts("prim::PythonOp.XDropout", family="zero-cost")(costs_nothing)
