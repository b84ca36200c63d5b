"""Backward passes: what a training count adds after the forward (``docs/conventions.md``,
"Training: forward + backward").

The dispatch engine (:mod:`fvcore_ext.engines.dispatch`) sees the backward as aten ops. Matmuls
(``mm``, ``bmm``, ``addmm``) and plain elementwise ops in the backward are counted by their
forward rules as they run; the ops here are the backward kernels with no forward twin. Every
result is MACs as a :class:`Cost`: matmul, convolution, normalisation, resampling and attention
matmul work is ``core`` (kept under the paper preset, as the forward op is); the rest is
``elementwise`` (0 under paper).
"""
from __future__ import annotations

from typing import Sequence

from .attention import _batch
from .cost import Cost, numel, size_int
from .linalg import conv_macs

__all__ = ["NORM_BACKWARD_PER_ELEMENT", "RMS_NORM_BACKWARD_PER_ELEMENT",
           "WEIGHT_NORM_BACKWARD_PER_ELEMENT", "conv_backward_macs", "norm_backward_macs",
           "rms_norm_backward_macs", "sdpa_backward_macs", "weight_norm_backward_macs"]

Shape = Sequence[int]

# Per element of the normalised input x, from the reference backward of
# y = x̂·γ + β, x̂ = (x − μ)·r (Ioffe & Szegedy 2015, §3; PyTorch's CPU kernel
# aten/src/ATen/native/cpu/layer_norm_kernel.cpp, LayerNormBackwardKernelImplInternal):
#   input gradient with batch statistics, dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ:
#     x̂ recomputed from the saved mean and rstd (2), g·x̂ (1), the two means (2),
#     x̂·mean(g·x̂) (1), two subtractions (2), the product with r (1): 9, plus g = dy·γ with
#     affine weights (1);
#   input gradient with running statistics (BatchNorm in eval): dx = dy·(γ·r), 1 per element
#     (γ·r is per channel);
#   weight gradient dγ = Σ dy·x̂: 2 (the product and its accumulation; x̂ as above);
#   bias gradient dβ = Σ dy: 1.
NORM_BACKWARD_PER_ELEMENT = {"input": 9, "input_affine": 1, "input_running_stats": 1,
                             "weight": 2, "bias": 1}


# The same derivation for an RMSNorm, y = x̂·γ (+ β), x̂ = x·r, r = rsqrt(mean(x²) + ε):
#   input gradient dx = r·(g − x̂·mean(g·x̂)), g = dy·γ: x̂ recomputed (1), g·x̂ (1), its mean
#     (1), x̂·mean(g·x̂) (1), the subtraction (1), the product with r (1): 6, plus g = dy·γ
#     with a weight (1);
#   weight gradient dγ = Σ dy·x̂: 2; bias gradient dβ = Σ dy: 1.
RMS_NORM_BACKWARD_PER_ELEMENT = {"input": 6, "input_affine": 1, "weight": 2, "bias": 1}


# The weight-norm reparametrisation w = v·s, s = g / ‖v‖ (per slice along dim), as autograd
# runs the backward of torch._weight_norm's composite path v * (g / norm_except_dim(v, 2, dim)):
#   per element of v: dv = dw·s (1), ds = Σ dw·v (the product and its sum, 2), the norm's
#     gradient v/‖v‖ and its product with d‖v‖ (2), the two gradients of v added (1): 6;
#   per element of g (one per slice): dg = ds/‖v‖ (1), d‖v‖ = −ds·g/‖v‖² (a negation and two
#     quotients, 3), the product with the incoming gradient (1): 5.
WEIGHT_NORM_BACKWARD_PER_ELEMENT = {"v": 6, "g": 5}


def conv_backward_macs(x: Shape, weight: Shape, grad_out: Shape, transposed: bool,
                       input_grad: bool, weight_grad: bool, bias_grad: bool) -> Cost:
    """``aten::convolution_backward`` of a convolution with input ``x``, ``weight`` and output
    gradient ``grad_out`` (the forward output's shape). The input gradient and the weight
    gradient are each a convolution with the forward's MACs (:func:`conv_macs`), counted only
    when computed; the bias gradient sums ``grad_out`` over batch and space: 1 × its numel,
    elementwise (``docs/conventions.md``, "Training")."""
    forward = conv_macs(x, weight, grad_out, transposed).core
    return Cost(core=forward * (int(input_grad) + int(weight_grad)),
                elementwise=numel(grad_out) if bias_grad else 0)


def norm_backward_macs(x: Shape, affine: bool, input_grad: bool, weight_grad: bool,
                       bias_grad: bool, running_stats: bool = False) -> Cost:
    """Backward of a layer, group, instance or batch norm of input ``x``
    (``native_layer_norm_backward``, ``native_group_norm_backward``,
    ``native_batch_norm_backward``): per element of ``x``, the counts of
    :data:`NORM_BACKWARD_PER_ELEMENT` for each gradient computed. ``running_stats``: a
    BatchNorm in eval mode, whose statistics are constants. Core, as the forward norm is
    (counted under both presets)."""
    if input_grad and running_stats:
        per_element = NORM_BACKWARD_PER_ELEMENT["input_running_stats"] + _per_element(
            NORM_BACKWARD_PER_ELEMENT, False, affine, weight_grad, bias_grad)
    else:
        per_element = _per_element(NORM_BACKWARD_PER_ELEMENT, input_grad, affine, weight_grad,
                                   bias_grad)
    return Cost(core=per_element * numel(x))


def _per_element(counts: dict, input_grad: bool, affine: bool, weight_grad: bool,
                 bias_grad: bool) -> int:
    # a norm backward's MACs per element of x, from a table of NORM_BACKWARD_PER_ELEMENT's keys
    return ((counts["input"] + (counts["input_affine"] if affine else 0) if input_grad else 0)
            + (counts["weight"] if weight_grad else 0) + (counts["bias"] if bias_grad else 0))


def sdpa_backward_macs(q: Shape, k: Shape, v: Shape, query_grad: bool = True,
                       key_grad: bool = True, value_grad: bool = True) -> Cost:
    """The backward of ``scaled_dot_product_attention`` (every backend) with q ``(B, Hq, L, E)``,
    k ``(B, Hkv, S, E)``, v ``(B, Hkv, S, Ev)``: what the backward of its explicit
    implementation ``P = softmax((q @ kᵀ) · scale); O = P @ v`` computes
    (``docs/conventions.md``, "Training"), at the query head count as the forward:

    - ``dV = Pᵀ @ dO`` if v needs a gradient: ``B·Hq·L·S·Ev`` core;
    - if q or k needs one: ``dP = dO @ vᵀ`` (``B·Hq·L·S·Ev`` core), the softmax gradient and
      the scale gradient (``B·Hq·L·S`` elementwise each), then ``dQ = dS @ k`` and
      ``dK = dSᵀ @ q`` (``B·Hq·L·S·E`` core each, only those needed).

    With all three gradients that is four matmuls of the forward's size. A float mask's
    gradient and the sum of a broadcast (GQA) key/value gradient over query heads are not
    counted; dropout costs 0.
    """
    length, source = size_int(q[-2]), size_int(k[-2])
    scores = _batch(q, k) * length * source
    attend = _batch(q, k, v) * length * source * size_int(v[-1])
    core = attend if value_grad else 0
    elementwise = 0
    if query_grad or key_grad:
        core += attend + scores * size_int(q[-1]) * (int(query_grad) + int(key_grad))
        elementwise = 2 * scores
    return Cost(core=core, elementwise=elementwise)


def rms_norm_backward_macs(x: Shape, has_weight: bool, input_grad: bool, weight_grad: bool,
                           bias_grad: bool) -> Cost:
    """Backward of a fused RMSNorm of input ``x`` (mamba-ssm's Triton ``LayerNormFn`` with
    ``is_rms_norm``), in MACs: per element of ``x``, the counts of
    :data:`RMS_NORM_BACKWARD_PER_ELEMENT` (derived above from the reference formula
    ``dx = r·(g − x̂·mean(g·x̂))``, ``g = dy·γ``) for each gradient computed, elementwise (full
    preset only), as the forward RMSNorm is
    (:func:`fvcore_ext.rules.rms_norm_macs`). An unfused RMSNorm (``nn.RMSNorm``, Llama's) is
    counted by the ops autograd runs for its decomposition instead."""
    return Cost(elementwise=numel(x) * _per_element(RMS_NORM_BACKWARD_PER_ELEMENT, input_grad,
                                                    has_weight, weight_grad, bias_grad))


def weight_norm_backward_macs(v: Shape, g: Shape) -> Cost:
    """``aten::_weight_norm_interface_backward`` (the fused kernel behind
    ``nn.utils.weight_norm`` / ``parametrizations.weight_norm``, wav2vec2's positional
    convolution), in MACs: what autograd runs for the backward of the composite path it
    replaces, ``v * (g / norm_except_dim(v, 2, dim))``: per element,
    :data:`WEIGHT_NORM_BACKWARD_PER_ELEMENT` (6 for v, 5 for g), elementwise as the forward
    (:func:`fvcore_ext.rules.weight_norm_macs`) is."""
    return Cost(elementwise=WEIGHT_NORM_BACKWARD_PER_ELEMENT["v"] * numel(v)
                + WEIGHT_NORM_BACKWARD_PER_ELEMENT["g"] * numel(g))
