"""The op table: every op name of ``docs/conventions.md`` mapped to the rule that counts it.

One entry per op name, registered with :func:`counts`; a second registration of a name is an
error. Each reader takes an :class:`OpCall`, reads shapes and flags, and calls a pure rule from
:mod:`fvcore_ext.rules`. Both tool adapters (fvcore handles, torchprofile handlers) are built
from :data:`OP_TABLE`, so a rule lives in exactly one place. Every rule belongs to a family
(:data:`FAMILIES`), which the op census (:mod:`fvcore_ext.census`) reports; users add rules of
their own with :func:`fvcore_ext.register_rule`.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

from . import rules
from .diagnostics import record_uncounted, record_zero
from .opcall import CannotCount, OpCall, TensorArg
from .rules import Cost, check_mac_count

__all__ = ["BACKWARD_RULES", "BackwardRule", "FAMILIES", "FVCORE_IGNORED_OPS", "OP_TABLE",
           "OpRule", "ZERO_COST_OPS", "add_rule", "backward_of", "check_reader", "families_by_name", "on_table_change", "remove_rule", "report_name",
           "rule_result", "table_version"]

# A built-in reader returns a Cost; a user rule may return a bare int (rule_result).
Reader = Callable[[OpCall], Union[Cost, int]]

# What a rule counts, as the census reports it. "zero-cost" ops compute nothing the contract
# counts (data movement, comparisons, routing); "custom" is the default of user rules.
FAMILIES = ("matmul", "convolution", "recurrent", "fft", "normalization", "resampling",
            "attention", "state-space scan", "elementwise", "reduction", "zero-cost", "custom")


@dataclass(frozen=True)
class OpRule:
    """How one op name is counted: ``read`` turns a call into a :class:`Cost`; ``name`` is the
    key in per-operator tables (fvcore's simplified name unless fvcore uses another one);
    ``family`` is one of :data:`FAMILIES`."""

    kind: str
    read: Reader
    name: str
    family: str

    @property
    def always_zero(self) -> bool:
        """Whether the op costs 0 whatever its arguments."""
        return self.read is costs_nothing

    def count(self, call: OpCall, preset: str, strict: bool = False) -> int:
        """MACs of ``call`` under ``preset``. What the rule returns passes :func:`rule_result`,
        the same check under every preset. A call the rule cannot read, or a result that is no
        count of MACs, is recorded and counted as 0
        (:func:`fvcore_ext.diagnostics.record_uncounted`), or raises
        :class:`fvcore_ext.diagnostics.UncountableOpError` if ``strict``; nothing else escapes,
        so a handle never crashes an analysis."""
        try:
            macs = rule_result(self.read(call), self.read).macs(preset)
        except Exception as error:  # a rule must never crash the analysis around it
            reason = str(error) if isinstance(error, CannotCount) else \
                f"{type(error).__name__}: {error}"
            record_uncounted(call.kind, call.scope, reason, strict)
            return 0
        if macs == 0:
            record_zero(call.kind)
        return macs


def rule_result(result: Union[Cost, int], read: Optional[Callable] = None) -> Cost:
    """What a rule returned, as a :class:`Cost`: the one check of rule results (issue 22),
    used by :meth:`OpRule.count` for built-in and user rules alike and whatever the preset.

    A :class:`Cost` was checked when it was built (:func:`fvcore_ext.rules.check_mac_count`); a bare
    integer (``int``, ``numpy.int64``, not ``bool``) >= 0 is ``Cost(core=result)``, counted under
    both presets.

    Raises:
        CannotCount: anything else (a float, a negative int, ``None``, a tensor), naming the
            rule ``read`` and the value.
    """
    if isinstance(result, Cost):
        return result
    try:
        return Cost(core=check_mac_count(result))
    except (TypeError, ValueError):
        rule = getattr(read, "__qualname__", None) or repr(read)
        raise CannotCount(f"the rule {rule!r} returned {result!r}; a rule returns MACs as an "
                          f"int >= 0 or a Cost") from None


def check_reader(read: Any, what: str = "a rule") -> None:
    """Refuse, at registration, a rule that cannot be called with one :class:`OpCall`.

    Raises:
        TypeError: ``read`` is not callable (``register_rule(op)(42)``), or its signature takes
            no single positional argument (``lambda: 5``, ``lambda call, extra: 5``).
    """
    if not callable(read):
        raise TypeError(f"{what} must be a function of one OpCall returning MACs, not "
                        f"{read!r} ({type(read).__name__})")
    try:
        signature = inspect.signature(read)
    except (TypeError, ValueError):    # a builtin or extension without a signature: trust it
        return
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(f"{what} must take one argument (an OpCall); "
                        f"{getattr(read, '__qualname__', read)!r} has the signature "
                        f"{signature}") from None


OP_TABLE: Dict[str, OpRule] = {}
_version = 0
_listeners: List[Callable[[], None]] = []


def table_version() -> int:
    """A number that changes whenever a rule is added or removed, so an adapter that built its
    table earlier (a registered torchprofile) knows to rebuild it."""
    return _version


def on_table_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after every rule added or removed: how the tables adapters built
    earlier (``vmamba_handles``, ``paper_handles``, a registered torchprofile) pick up
    :func:`fvcore_ext.register_rule` at once."""
    _listeners.append(listener)


def _changed() -> None:
    global _version
    _version += 1
    for listener in _listeners:
        listener()


def costs_nothing(call: OpCall) -> Cost:
    """The reader of ops that cost 0 whatever their arguments (data movement, comparisons);
    adapters may skip reading such a call at all (:attr:`OpRule.always_zero`)."""
    return Cost()


def families_by_name() -> Dict[str, str]:
    """Per-operator name (:attr:`OpRule.name`, the keys of fvcore's ``by_operator()``) →
    family, for the current table."""
    return _families_by_name(_version)


@functools.lru_cache(maxsize=1)
def _families_by_name(version: int) -> Dict[str, str]:
    families: Dict[str, str] = {}
    for rule in OP_TABLE.values():
        families.setdefault(rule.name, rule.family)
    return families


def report_name(kind: str) -> str:
    """fvcore's per-operator name: the op name without its namespace (``aten::mul`` → ``mul``,
    ``prim::PythonOp.SelectiveScanFn`` → ``PythonOp.SelectiveScanFn``)."""
    return kind.split("::", 1)[-1]


def add_rule(kind: str, read: Reader, family: str, name: Optional[str] = None,
             replace: bool = False) -> OpRule:
    """Put ``read`` in the table under op name ``kind`` and return the new :class:`OpRule`.

    Raises:
        ValueError: ``kind`` already has a rule and ``replace`` is false, or ``family`` is not
            one of :data:`FAMILIES`. TypeError: ``read`` cannot take one call
            (:func:`check_reader`).
    """
    check_reader(read)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if kind in OP_TABLE and not replace:
        raise ValueError(f"{kind} is registered twice")
    OP_TABLE[kind] = rule = OpRule(kind, read, name or report_name(kind), family)
    _changed()
    return rule


def remove_rule(kind: str) -> OpRule:
    """Take ``kind``'s rule out of the table and return it; ``KeyError`` if it has none."""
    rule = OP_TABLE.pop(kind)
    _changed()
    return rule


def counts(*kinds: str, family: str, name: Optional[str] = None) -> Callable[[Reader], Reader]:
    """Register ``read`` for each op name in ``kinds`` in ``family``; ``ValueError`` on a
    duplicate name."""

    def register(read: Reader) -> Reader:
        for kind in kinds:
            add_rule(kind, read, family, name)
        return read

    return register


def _aten(*names: str) -> tuple:
    return tuple(f"aten::{n}" for n in names)


def _with_inplace(*names: str) -> tuple:
    return _aten(*names) + _aten(*(n + "_" for n in names))


def _bool_scalar(call: OpCall, index, default: bool) -> bool:
    value = call.scalar(index, default)
    if not isinstance(value, bool):
        raise CannotCount(f"argument {index} is {value!r}, expected a bool")
    return value


def _int_scalar(call: OpCall, index, default: Optional[int] = None) -> int:
    value = call.scalar(index, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CannotCount(f"argument {index} is {value!r}, expected an int")
    return value


def _output_used(call: OpCall, index: int) -> bool:
    out = call.outputs[index] if index < len(call.outputs) else None
    return isinstance(out, TensorArg) and out.used


# ---------------------------------------------------------------- fvcore 0.1.5's own ops


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


@counts(*_aten("lstm", "gru", "rnn_tanh", "rnn_relu"), family="recurrent")
def _recurrent(call: OpCall) -> Cost:
    # lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    # batch_first) or, for packed sequences, lstm.data(data, batch_sizes, hx, params,
    # has_biases, num_layers, dropout, train, bidirectional); gru and rnn_* alike. params holds,
    # per layer and direction, w_ih, w_hh, [b_ih, b_hh], [w_hr].
    first = 2 if isinstance(call.arg(3), bool) else 3      # params, then has_biases
    params = call.scalar(first)
    if not isinstance(params, list) or not all(isinstance(p, TensorArg) and p.shape
                                               for p in params):
        raise CannotCount("the weights (params) are not a traced list of tensors")
    mode = call.kind.split("::")[1]
    groups = _int_scalar(call, first + 2) * (2 if _bool_scalar(call, first + 5, False) else 1)
    if len(params) % groups:
        raise CannotCount(f"{len(params)} weights do not split into {groups} layers and "
                          f"directions")
    per_group = len(params) // groups
    return rules.rnn_macs(mode, rules.numel(call.shape(0)[:-1]),
                          [p.shape for p in params if len(p.shape) == 2],
                          [params[g * per_group].shape for g in range(groups)])


@counts("aten::linalg_solve_triangular", family="matmul")
def _solve_triangular(call: OpCall) -> Cost:
    return rules.triangular_solve_macs(call.shape(0), call.output_shape(),
                                       _bool_scalar(call, 4, False))


def _fft_reader(dims_default, real_output: bool) -> Reader:
    # fft_fft(self, n, dim, norm), fft_fft2(self, s, dim, norm), fft_fftn(self, s, dim, norm)
    # and their i/r/ir forms. The transform length along a dim is the input's size there, or
    # n/s when given; a real-output (c2r) transform's lengths are its output's sizes.
    def read(call: OpCall) -> Cost:
        x = list(call.shape(0))
        lengths, dims = call.scalar(1), call.scalar(2, dims_default)
        if isinstance(dims, int):
            dims, lengths = [dims], None if lengths is None else [lengths]
        if dims is None:
            dims = list(range(len(x)))[-len(lengths):] if lengths else list(range(len(x)))
        if real_output:
            lengths = [call.output_shape()[d] for d in dims]
        for d, n in zip(dims, lengths or []):
            if n != -1:                                   # -1: the input's own size
                x[d] = n
        return rules.fft_macs(x, dims)
    return read


for _prefix in ("", "i", "r", "ir"):
    for _suffix, _default in (("", -1), ("2", [-2, -1]), ("n", None)):
        counts(f"aten::fft_{_prefix}fft{_suffix}", family="fft")(
            _fft_reader(_default, real_output=_prefix == "ir"))


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


@counts("aten::adaptive_avg_pool2d", family="resampling")
def _adaptive_avg_pool2d(call: OpCall) -> Cost:
    # fvcore counts it (1 x input numel) and so under both presets, unlike the new pools.
    return Cost(core=rules.numel(call.shape(0)))


@counts("aten::grid_sampler", family="resampling")
def _grid_sampler(call: OpCall) -> Cost:
    return rules.grid_sample_macs(call.output_shape())


# ---------------------------------------------------------------- resampling


def _upsample_reader(mode: str) -> Reader:
    def read(call: OpCall) -> Cost:
        return rules.upsample_macs(mode, call.output_shape())
    return read


for _mode, _dims in (("nearest", "123"), ("linear", "1"), ("bilinear", "2"), ("bicubic", "2"),
                     ("trilinear", "3")):
    for _d in _dims:
        counts(f"aten::upsample_{_mode}{_d}d", family="resampling")(_upsample_reader(_mode))
for _d in "123":
    counts(f"aten::_upsample_nearest_exact{_d}d", family="resampling")(_upsample_reader("nearest_exact"))
counts("aten::_upsample_bilinear2d_aa", family="resampling")(_upsample_reader("bilinear"))
counts("aten::_upsample_bicubic2d_aa", family="resampling")(_upsample_reader("bicubic"))


# ---------------------------------------------------------------- elementwise


def _is_shape_arithmetic(call: OpCall) -> bool:
    # `bsz * num_heads` inside F.multi_head_attention_forward: a 0-dim result computed from
    # traced sizes and constants only. Not compute (docs/conventions.md, "Shape arithmetic").
    out = call.outputs[0] if call.outputs else None
    return isinstance(out, TensorArg) and out.from_sizes


# docs/conventions.md "Elementwise ops" and "Every other op a real model runs": 1 x output numel
# (the broadcast shape), full preset only. glu, lerp, addcmul and addcdiv do two or three
# operations per output element; the contract counts each op once, as it counts gelu.
ELEMENTWISE_OPS = _with_inplace(
    "add", "sub", "mul", "div", "neg", "pow", "square", "sqrt", "rsqrt", "exp", "log",
    "reciprocal", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "leaky_relu",
    "elu", "mish",
    "sin", "cos", "tan", "atan", "atan2", "sinh", "cosh", "asin", "acos", "asinh", "acosh",
    "atanh", "erf", "erfc", "erfinv", "abs", "sign", "sgn", "ceil", "floor", "round", "trunc",
    "frac", "log1p", "log2", "log10", "expm1", "exp2", "logit", "lerp", "addcmul", "addcdiv",
    "relu6", "selu", "celu", "true_divide", "xlogy", "hypot",
) + _aten("rsub", "softplus", "softmax", "log_softmax", "glu", "logaddexp", "log_sigmoid",
          "polar", "prelu")      # prelu: CGNet's activation, a leaky_relu with learned slopes


@counts(*ELEMENTWISE_OPS, family="elementwise")
def _elementwise(call: OpCall) -> Cost:
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


@counts(*_with_inplace("index_add"), family="elementwise")
def _index_add(call: OpCall) -> Cost:
    # self.index_add_(dim, index, source, alpha): one add per source element (docs/conventions.md).
    return rules.elementwise_macs(call.shape(3))


@counts(*_with_inplace("scatter_add"), family="elementwise")
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


# Reductions and averages: 1 x input numel, full preset only.
REDUCTION_OPS = _aten(
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
FVCORE_IGNORED_OPS = _aten(
    "Int", "ScalarImplicit", "__and__", "arange", "bitwise_not", "cat", "chunk", "clamp",
    "clamp_", "constant_pad_nd", "contiguous", "copy_", "detach", "dropout", "empty", "eq",
    "expand", "flatten", "floor", "floor_divide", "full", "full_like", "gather", "ge", "gt",
    "index", "index_put_", "masked_fill", "max", "narrow", "new_empty", "new_full", "new_zeros",
    "nonzero", "ones", "permute", "relu", "relu_", "remainder", "reshape", "roll", "select",
    "size", "slice", "split", "squeeze", "stack", "t", "to", "transpose", "type_as", "unbind",
    "unsqueeze", "unsqueeze_", "view", "zeros", "zeros_like",
)
ZERO_COST_OPS = tuple(op for op in FVCORE_IGNORED_OPS if op not in ELEMENTWISE_OPS) + _aten(
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
)


counts(*ZERO_COST_OPS, family="zero-cost")(costs_nothing)
# SEW-D's StableDropout in train mode (transformers models/sew_d): a dropout, 0 like aten::dropout
counts("prim::PythonOp.XDropout", family="zero-cost")(costs_nothing)


# ---------------------------------------------------------------- attention


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
        call.shape(0), call.shape(1), num_heads=_int_scalar(call, 4),
        need_weights=_bool_scalar(call, 10, True),
        # The averaged weights are output 1; when nothing reads them the traced slow path
        # has no mean over heads to count either.
        average_attn_weights=_bool_scalar(call, 11, True) and _output_used(call, 1),
        has_mask=call.has_tensor(9))


@counts("aten::_transformer_encoder_layer_fwd", family="attention")
def _transformer_encoder_layer(call: OpCall) -> Cost:
    return rules.transformer_encoder_layer_macs(
        call.shape(0), num_heads=_int_scalar(call, 2), ffn_dim=call.shape(14)[0],
        use_gelu=_bool_scalar(call, 7, False), norm_affine=call.has_tensor(10),
        has_mask=call.has_tensor(18))


# ---------------------------------------------------------------- Mamba (prim::PythonOp)
# Arguments are named by each Function's forward signature (after ctx), as defined upstream;
# OpCall.with_signature rebuilds them from cconv/scalar_args, so None arguments keep their place.

SELECTIVE_SCAN_SIGNATURES = {
    # state-spaces/mamba mamba_ssm/ops/selective_scan_interface.py
    "SelectiveScanFn": ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "delta_softplus",
                        "return_last_state"),
    # MzeroMiko/VMamba: no z argument; D always passed.
    "SelectiveScanMamba": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                           "nrows", "backnrows", "oflex"),
    "SelectiveScanCore": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "nrows", "backnrows", "oflex"),
    "SelectiveScanOflex": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                           "nrows", "backnrows", "oflex"),
    "SelectiveScanCuda": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "oflex", "backend"),
    "SelectiveScan": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus", "nrows"),
    "SelectiveScanNRow": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "nrows", "backnrows"),
}


def _selective_scan_reader(signature: tuple) -> Reader:
    def read(call: OpCall) -> Cost:
        call = call.with_signature(signature)
        A = call.arg("A")
        return rules.selective_scan_macs(
            call.shape("u"), call.shape("A"), has_D=call.has_tensor("D"),
            has_z="z" in signature and call.has_tensor("z"),
            complex_A=isinstance(A, TensorArg) and A.is_complex)
    return read


for _name, _signature in SELECTIVE_SCAN_SIGNATURES.items():
    counts(f"prim::PythonOp.{_name}", family="state-space scan")(_selective_scan_reader(_signature))

# Dao-AILab/causal-conv1d causal_conv1d/causal_conv1d_interface.py
CAUSAL_CONV1D_SIGNATURE = ("x", "weight", "bias", "seq_idx", "initial_states",
                           "return_final_states", "final_states_out", "activation")


@counts("prim::PythonOp.CausalConv1dFn", family="state-space scan")
def _causal_conv1d(call: OpCall) -> Cost:
    call = call.with_signature(CAUSAL_CONV1D_SIGNATURE)
    activation = call.scalar("activation")
    if activation not in (None, "silu", "swish"):
        raise CannotCount(f"activation {activation!r} is not one causal-conv1d supports")
    return rules.causal_conv1d_macs(call.shape("x"), call.shape("weight"),
                                    silu=activation is not None)


MAMBA_INNER_SIGNATURE = (
    # mamba-ssm 2.x MambaInnerFn.forward; 1.x ends at checkpoint_lvl.
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight",
    "out_proj_weight", "out_proj_bias", "A", "B", "C", "D", "delta_bias", "B_proj_bias",
    "C_proj_bias", "delta_softplus", "checkpoint_lvl", "b_rms_weight", "c_rms_weight",
    "dt_rms_weight", "b_c_dt_rms_eps")
MAMBA_INNER_NO_OUT_PROJ_SIGNATURE = (
    # hustvl/Vim mamba-1p1p1 MambaInnerFnNoOutProj.forward
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight", "A", "B", "C",
    "D", "delta_bias", "B_proj_bias", "C_proj_bias", "delta_softplus", "checkpoint_lvl")
BIMAMBA_INNER_SIGNATURE = (
    # hustvl/Vim mamba-1p1p1 BiMambaInnerFn.forward
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight",
    "out_proj_weight", "out_proj_bias", "A", "A_b", "B", "C", "D", "delta_bias", "B_proj_bias",
    "C_proj_bias", "delta_softplus", "checkpoint_lvl")


def _inner_common(call: OpCall) -> dict:
    for name in ("b_rms_weight", "c_rms_weight", "dt_rms_weight"):
        if call.has_tensor(name):
            raise CannotCount(f"{name} is given: RMS-normed B/C/dt have no reference "
                              "implementation (mamba_inner_ref) to count against")
    A = call.arg("A")
    return dict(xz=call.shape("xz"), conv_weight=call.shape("conv1d_weight"),
                x_proj_weight=call.shape("x_proj_weight"),
                dt_proj_weight=call.shape("delta_proj_weight"), A=call.shape("A"),
                has_D=call.has_tensor("D"), B_proj_bias=call.has_tensor("B_proj_bias"),
                C_proj_bias=call.has_tensor("C_proj_bias"),
                complex_A=isinstance(A, TensorArg) and A.is_complex)


@counts("prim::PythonOp.MambaInnerFn", family="state-space scan")
def _mamba_inner(call: OpCall) -> Cost:
    call = call.with_signature(MAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_macs(out_proj_weight=call.shape("out_proj_weight"),
                                  **_inner_common(call))


@counts("prim::PythonOp.MambaInnerFnNoOutProj", family="state-space scan")
def _mamba_inner_no_out_proj(call: OpCall) -> Cost:
    call = call.with_signature(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE)
    return rules.mamba_inner_macs(out_proj_weight=None, **_inner_common(call))


@counts("prim::PythonOp.BiMambaInnerFn", family="state-space scan")
def _bimamba_inner(call: OpCall) -> Cost:
    call = call.with_signature(BIMAMBA_INNER_SIGNATURE)
    return rules.bimamba_inner_macs(out_proj_weight=call.shape("out_proj_weight"),
                                    A_b=call.shape("A_b"), **_inner_common(call))


# VMamba's cross scan moves data (0); its cross merge sums the K scan directions back into one
# map: (B, K, D, H, W) → (B, D, H·W) is (K - 1)·B·D·L adds (elementwise). The one-by-one
# variants keep the K maps apart, which the same rule counts as 0.
CROSS_SCAN_FUNCTIONS = ("CrossScan", "CrossScan_Ab_1direction", "CrossScan_Ab_2direction",
                        "CrossScanTriton", "CrossScanTriton1b1", "CrossScanF",
                        "CrossScanTritonF", "CrossScanTriton1b1F")
CROSS_MERGE_FUNCTIONS = ("CrossMerge", "CrossMerge_Ab_1direction", "CrossMerge_Ab_2direction",
                         "CrossMergeTriton", "CrossMergeTriton1b1", "CrossMergeF",
                         "CrossMergeTritonF", "CrossMergeTriton1b1F")


counts(*(f"prim::PythonOp.{name}" for name in CROSS_SCAN_FUNCTIONS),
       family="zero-cost")(costs_nothing)


@counts(*(f"prim::PythonOp.{name}" for name in CROSS_MERGE_FUNCTIONS), family="elementwise")
def _cross_merge(call: OpCall) -> Cost:
    return rules.sum_of_terms_macs(call.shape(0), call.output_shape())


# ---------------------------------------------------------------- Mamba-2 (prim::PythonOp)

# state-spaces/mamba mamba_ssm/ops/triton/ssd_combined.py; releases before 2.2.3 lack
# cu_seqlens and return_varlen_states.
MAMBA_CHUNK_SCAN_SIGNATURES = {
    16: ("x", "dt", "A", "B", "C", "chunk_size", "D", "z", "dt_bias", "initial_states",
         "seq_idx", "cu_seqlens", "dt_softplus", "dt_limit", "return_final_states",
         "return_varlen_states"),
    14: ("x", "dt", "A", "B", "C", "chunk_size", "D", "z", "dt_bias", "initial_states",
         "seq_idx", "dt_softplus", "dt_limit", "return_final_states"),
}
MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE = (
    "zxbcdt", "conv1d_weight", "conv1d_bias", "dt_bias", "A", "D", "chunk_size",
    "initial_states", "seq_idx", "dt_limit", "return_final_states", "activation",
    "rmsnorm_weight", "rmsnorm_eps", "outproj_weight", "outproj_bias", "headdim", "ngroups",
    "norm_before_gate")


def _chunk_scan_arguments(call: OpCall) -> tuple:
    """The call named by its layout's signature, and the scan's arguments as
    ``ssd_chunk_scan_macs`` takes them."""
    signature = MAMBA_CHUNK_SCAN_SIGNATURES.get(len(call.args))
    if signature is None:
        raise CannotCount(f"unknown argument layout: {len(call.args)} arguments, known layouts "
                          f"have {' or '.join(map(str, MAMBA_CHUNK_SCAN_SIGNATURES))}")
    call = call.with_signature(signature)
    if call.scalar("return_varlen_states", False):
        raise CannotCount("return_varlen_states=True: the extra varlen chunk states "
                          "(chunk_state_varlen) have no rule")
    return call, dict(
        x=call.shape("x"), B=call.shape("B"), chunk_size=_int_scalar(call, "chunk_size"),
        has_D=call.has_tensor("D"), has_z=call.has_tensor("z"),
        has_dt_bias=call.has_tensor("dt_bias"),
        dt_softplus=_bool_scalar(call, "dt_softplus", False))


@counts("prim::PythonOp.MambaChunkScanCombinedFn", family="state-space scan")
def _mamba_chunk_scan_combined(call: OpCall) -> Cost:
    return rules.ssd_chunk_scan_macs(**_chunk_scan_arguments(call)[1])


def _split_conv1d_scan_arguments(call: OpCall) -> tuple:
    """The call named by its signature, and the layer's arguments as
    ``mamba_split_conv1d_scan_macs`` takes them."""
    call = call.with_signature(MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE)
    D = call.shape("D")
    if len(D) == 2:
        nheads, headdim = D
    elif len(D) == 1:
        nheads, headdim = D[0], _int_scalar(call, "headdim")
    else:
        raise CannotCount(f"D has shape {D}, expected (nheads,) or (nheads, headdim)")
    activation = call.scalar("activation", "silu")
    if activation not in (None, "silu", "swish"):
        raise CannotCount(f"activation {activation!r} is not one mamba-ssm supports")
    outproj = call.shape("outproj_weight") if call.has_tensor("outproj_weight") else None
    return call, dict(
        zxbcdt=call.shape("zxbcdt"), conv_weight=call.shape("conv1d_weight"), nheads=nheads,
        headdim=headdim, ngroups=_int_scalar(call, "ngroups", 1),
        chunk_size=_int_scalar(call, "chunk_size"), silu=activation is not None,
        rmsnorm=call.has_tensor("rmsnorm_weight"), outproj_weight=outproj)


@counts("prim::PythonOp.MambaSplitConv1dScanCombinedFn", family="state-space scan")
def _mamba_split_conv1d_scan_combined(call: OpCall) -> Cost:
    return rules.mamba_split_conv1d_scan_macs(**_split_conv1d_scan_arguments(call)[1])


# Two mamba-ssm Functions share the name LayerNormFn; the argument layout tells them apart.
GATED_NORM_SIGNATURE = (
    # mamba_ssm/ops/triton/layernorm_gated.py: Mamba-2's RMSNormGated
    "x", "weight", "bias", "z", "eps", "group_size", "norm_before_gate", "is_rms_norm")
ADD_NORM_SIGNATURES = {
    # mamba_ssm/ops/triton/layer_norm.py: the fused residual add + norm of mamba-ssm 2.x blocks
    14: ("x", "weight", "bias", "residual", "x1", "weight1", "bias1", "eps", "dropout_p",
         "rowscale", "prenorm", "residual_in_fp32", "is_rms_norm", "return_dropout_mask"),
    # mamba-ssm 1.x (and hustvl/Vim's mamba-1p1p1)
    8: ("x", "weight", "bias", "residual", "eps", "prenorm", "residual_in_fp32", "is_rms_norm"),
}


def _layer_norm_fn_layout(call: OpCall) -> tuple:
    """``("gated", call)`` or ``("add", call)``, the call named by its layout's signature."""
    n = len(call.args)
    if n == 8 and not isinstance(call.scalar(5), bool):   # group_size, not prenorm
        call = call.with_signature(GATED_NORM_SIGNATURE)
        group_size = call.scalar("group_size")
        if group_size is not None and not isinstance(group_size, int):
            raise CannotCount(f"group_size is {group_size!r}, not an int")
        return "gated", call
    if n not in ADD_NORM_SIGNATURES:
        raise CannotCount(f"unknown argument layout: {n} arguments; known LayerNormFn layouts "
                          f"have 8 (layernorm_gated, or mamba-ssm 1.x layer_norm) or 14")
    call = call.with_signature(ADD_NORM_SIGNATURES[n])
    for name in ("x1", "weight1", "rowscale"):
        if call.has_tensor(name):
            raise CannotCount(f"{name} is given: the parallel norm and rowscale are not counted")
    return "add", call


@counts("prim::PythonOp.LayerNormFn", family="normalization")
def _mamba_layer_norm(call: OpCall) -> Cost:
    layout, call = _layer_norm_fn_layout(call)
    if layout == "gated":
        return rules.gated_norm_macs(
            call.shape("x"), call.scalar("group_size"),
            is_rms_norm=_bool_scalar(call, "is_rms_norm", False),
            has_bias=call.has_tensor("bias"), gated=call.has_tensor("z"))
    x = call.shape("x")
    if _bool_scalar(call, "is_rms_norm", False):
        norm = rules.rms_norm_macs(x, None, has_weight=call.has_tensor("weight"),
                                   has_bias=call.has_tensor("bias"))
    else:
        norm = rules.norm_macs(x, affine=call.has_tensor("weight"))
    residual = rules.elementwise_macs(x) if call.has_tensor("residual") else Cost()
    return norm + residual


# ---------------------------------------------------------------- backward of fused ops
# The dispatch engine counts an SDPA call and every autograd Function in this table once at its
# boundary; its backward (the autograd nodes the boundary created) is counted once by the
# reader here, given the forward call and which of its arguments need a gradient, in call
# order (CONVENTIONS.md "Training": a fused op's backward costs what the backward of its unfused
# reference costs). A Function missing here has its backward reported uncounted.

BackwardReader = Callable[[OpCall, List[bool]], Cost]


@dataclass(frozen=True)
class BackwardRule:
    """The backward of a fused op: ``read(forward_call, needs)`` → :class:`Cost`, counted in
    ``family`` (``None``: the forward rule's family)."""

    read: BackwardReader
    family: Optional[str] = None


BACKWARD_RULES: Dict[str, BackwardRule] = {}


def backward_of(*kinds: str, family: Optional[str] = None
                ) -> Callable[[BackwardReader], BackwardReader]:
    """Register ``read`` as the backward of each op in ``kinds`` (the JIT-level name the
    forward is counted as), in ``family`` (default: the forward's).

    Raises:
        ValueError: a duplicate, an op without a forward rule, or an unknown family.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    def register(read: BackwardReader) -> BackwardReader:
        for kind in kinds:
            if kind in BACKWARD_RULES or kind not in OP_TABLE:
                raise ValueError(f"{kind}: backward registered twice or without a forward rule")
            BACKWARD_RULES[kind] = BackwardRule(read, family)
        return read

    return register


def _needs(names: tuple, needs: List[bool]) -> Dict[str, bool]:
    return {name: bool(need) for name, need in zip(names, needs)}


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
            delta_softplus=_bool_scalar(call, "delta_softplus", False),
            complex_A=isinstance(A, TensorArg) and A.is_complex)
    return read


for _name, _signature in SELECTIVE_SCAN_SIGNATURES.items():
    backward_of(f"prim::PythonOp.{_name}")(_selective_scan_backward_reader(_signature))


@backward_of("prim::PythonOp.CausalConv1dFn")
def _causal_conv1d_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(CAUSAL_CONV1D_SIGNATURE)
    need = _needs(CAUSAL_CONV1D_SIGNATURE, needs)
    return rules.causal_conv1d_backward_macs(
        call.shape("x"), call.shape("weight"), silu=call.scalar("activation") is not None,
        input_grad=need["x"] or need.get("initial_states", False),
        weight_grad=need["weight"], bias_grad=need.get("bias", False))


@backward_of("prim::PythonOp.MambaInnerFn")
def _mamba_inner_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(MAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=call.shape("out_proj_weight"),
        needs=_needs(MAMBA_INNER_SIGNATURE, needs), **_inner_backward_common(call))


@backward_of("prim::PythonOp.MambaInnerFnNoOutProj")
def _mamba_inner_no_out_proj_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=None, needs=_needs(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE, needs),
        **_inner_backward_common(call))


@backward_of("prim::PythonOp.BiMambaInnerFn")
def _bimamba_inner_backward(call: OpCall, needs: List[bool]) -> Cost:
    call = call.with_signature(BIMAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_backward_macs(
        out_proj_weight=call.shape("out_proj_weight"), A_b=call.shape("A_b"),
        needs=_needs(BIMAMBA_INNER_SIGNATURE, needs), **_inner_backward_common(call))


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
    return dict(_inner_common(call), delta_softplus=_bool_scalar(call, "delta_softplus", True),
                **given)


@backward_of("prim::PythonOp.MambaChunkScanCombinedFn")
def _mamba_chunk_scan_combined_backward(call: OpCall, needs: List[bool]) -> Cost:
    return rules.ssd_chunk_scan_backward_macs(**_chunk_scan_arguments(call)[1])


@backward_of("prim::PythonOp.MambaSplitConv1dScanCombinedFn")
def _mamba_split_conv1d_scan_combined_backward(call: OpCall, needs: List[bool]) -> Cost:
    call, arguments = _split_conv1d_scan_arguments(call)
    return rules.mamba_split_conv1d_scan_backward_macs(
        needs=_needs(MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE, needs),
        norm_before_gate=_bool_scalar(call, "norm_before_gate", True), **arguments)


@backward_of("prim::PythonOp.LayerNormFn")
def _mamba_layer_norm_backward(call: OpCall, needs: List[bool]) -> Cost:
    layout, call = _layer_norm_fn_layout(call)
    is_rms = _bool_scalar(call, "is_rms_norm", False)
    if layout == "gated":
        need = _needs(GATED_NORM_SIGNATURE, needs)
        return rules.gated_norm_backward_macs(
            call.shape("x"), call.scalar("group_size"), is_rms_norm=is_rms,
            has_bias=call.has_tensor("bias"), gated=call.has_tensor("z"), input_grad=need["x"],
            weight_grad=need["weight"], bias_grad=need["bias"], gate_grad=need.get("z", False),
            norm_before_gate=_bool_scalar(call, "norm_before_gate", True))
    need = _needs(ADD_NORM_SIGNATURES[len(call.args)], needs)
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
    prenorm = _bool_scalar(call, "prenorm", False) and input_grad
    return norm + (rules.elementwise_macs(x) if prenorm else Cost())


# ---------------------------------------------------------------- backward ops (training)
# Only the dispatch engine (fvcore_ext/dispatch.py) meets these: the kernels autograd runs in a
# backward pass (CONVENTIONS.md "Training: forward + backward"). Matmuls, sums and plain
# elementwise ops in a backward are counted by their forward rules above as they run.

# 1 × output numel each, full preset only: the derivative of an activation or softmax applied
# to the incoming gradient (threshold_backward is ReLU's).
ELEMENTWISE_BACKWARD_OPS = _aten(
    "gelu_backward", "silu_backward", "threshold_backward", "sigmoid_backward", "tanh_backward",
    "hardswish_backward", "hardsigmoid_backward", "hardtanh_backward", "leaky_relu_backward",
    "elu_backward", "softplus_backward", "mish_backward", "log_sigmoid_backward",
    "_softmax_backward_data", "_log_softmax_backward_data", "glu_backward",
    "_prelu_kernel_backward")
counts(*ELEMENTWISE_BACKWARD_OPS, family="elementwise")(_elementwise)


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
                                    _bool_scalar(call, 7, False), input_grad, weight_grad,
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
                                    running_stats=not _bool_scalar(call, 7, True))


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


@counts(*_aten("avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
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
DISPATCH_ZERO_COST_OPS = _aten(
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
    "_unsafe_masked_index", "native_dropout_", "aminmax")
counts(*(op for op in DISPATCH_ZERO_COST_OPS if op not in OP_TABLE),
       family="zero-cost")(costs_nothing)
