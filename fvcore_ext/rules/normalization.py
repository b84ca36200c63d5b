"""Normalisation layers: fvcore 0.1.5's formulas (``fvcore/nn/jit_handles.py``
``norm_flop_counter`` and ``batchnorm_flop_jit``). Counted under both presets, as plain fvcore
counts them."""
from __future__ import annotations

from typing import Sequence

from .cost import Cost, numel

__all__ = ["batch_norm_macs", "norm_macs"]


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
