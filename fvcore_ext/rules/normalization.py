"""Normalisation layers: fvcore 0.1.5's formulas (``fvcore/nn/jit_handles.py``
``norm_flop_counter`` and ``batchnorm_flop_jit``), counted under both presets as plain fvcore
counts them; and RMSNorm, which fvcore does not count, costed as the elementwise ops it is made
of (so 0 under the paper preset, as plain fvcore reports it)."""
from __future__ import annotations

from typing import Optional, Sequence

from .cost import Cost, numel, size_int

__all__ = ["batch_norm_macs", "check_group", "norm_macs", "rms_norm_macs", "weight_norm_macs"]


def norm_macs(x: Sequence[int], affine: bool) -> Cost:
    """``layer_norm``, ``group_norm``, ``instance_norm`` (and ``batch_norm`` in training) on an
    input of shape ``x``: ``5 · numel(x)`` MACs with an affine weight, ``4 · numel(x)`` without.
    fvcore's comment calls 5 "just a rough estimate" (mean, variance, normalise, scale, shift)."""
    return Cost(core=numel(x) * (5 if affine else 4))


def batch_norm_macs(x: Sequence[int], affine: bool, training: bool) -> Cost:
    """``aten::batch_norm`` on an input of shape ``x``. Eval: ``2 · numel(x)`` MACs with an affine
    weight, ``1 · numel(x)`` without (running statistics fold into one scale and shift).
    Training: as :func:`norm_macs`, since batch statistics are computed."""
    if training:
        return norm_macs(x, affine)
    return Cost(core=numel(x) * (2 if affine else 1))


def check_group(x: Sequence[int], group_size: Optional[int]) -> int:
    """Elements per normalised group: ``group_size``, or the last dimension of ``x`` if
    ``None``. ``ValueError`` if ``x`` is a scalar or ``group_size`` does not divide its last
    dimension."""
    if len(x) == 0:
        raise ValueError("a norm needs at least one dimension")
    last = size_int(x[-1])
    size = last if group_size is None else size_int(group_size)
    if size <= 0 or last % size:
        raise ValueError(f"group size {group_size} does not divide the last dimension "
                         f"of {tuple(x)}")
    return size


def rms_norm_macs(x: Sequence[int], group_numel: Optional[int], has_weight: bool,
                  has_bias: bool = False) -> Cost:
    """RMSNorm of ``x`` over groups of ``group_numel`` trailing elements (the last dimension if
    ``None``), as the ops of its reference decomposition, ``aten::rms_norm``'s composite kernel
    (``aten/src/ATen/native/layer_norm.cpp``, ``rms_norm_symint``):
    ``x · rsqrt(pow(x, 2).mean(-1) + eps) · weight``. Per element: ``pow``, ``mean``, the
    normalising ``mul``, and one each for the weight and a bias; per group: ``add`` eps and
    ``rsqrt``. All elementwise (the contract's 1 MAC per output element).

    Raises:
        ValueError: ``group_numel`` does not divide ``numel(x)``.
    """
    size = size_int(x[-1]) if group_numel is None else size_int(group_numel)
    total = numel(x)
    if len(x) == 0 or size <= 0 or total % size:
        raise ValueError(f"RMSNorm groups of {group_numel} do not tile {tuple(x)}")
    per_element = 3 + int(has_weight) + int(has_bias)
    return Cost(elementwise=per_element * total + 2 * (total // size))


def weight_norm_macs(v: Sequence[int], g: Sequence[int]) -> Cost:
    """``aten::_weight_norm(v, g, dim)``, the weight reparametrisation of
    ``nn.utils.weight_norm`` / ``parametrizations.weight_norm`` (wav2vec2's positional
    convolution): ``w = v · (g / ‖v‖)``, the norm over every dim but ``dim``. Costed as that
    decomposition (``torch._weight_norm``'s composite path, ``norm_except_dim``): the norm reads
    every element of v (``numel(v)``, a reduction), the quotient ``numel(g)``, the product
    ``numel(v)``. All of it is elementwise work on weights: full preset only, as plain fvcore
    does not count it."""
    return Cost(elementwise=2 * numel(v) + numel(g))
