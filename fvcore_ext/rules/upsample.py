"""Resampling: every ``aten::upsample_*`` / ``aten::_upsample_*`` op and ``aten::grid_sampler``.

Counted from the **output** shape, so ``size=`` and ``scale_factor=`` agree. MACs per output
element are the number of input taps each output interpolates: nearest 1, linear 2, bilinear 4,
bicubic 16 (4 x 4 taps), trilinear 8. fvcore 0.1.5 has only ``upsample_nearest2d`` (1) and
``upsample_bilinear2d`` (4); the rest extend the same rule. Counted under both presets.
"""
from __future__ import annotations

from typing import Sequence

from .cost import Cost, numel

__all__ = ["MACS_PER_OUTPUT", "grid_sample_macs", "upsample_macs"]

MACS_PER_OUTPUT = {
    "nearest": 1,
    "nearest_exact": 1,
    "linear": 2,
    "bilinear": 4,
    "bicubic": 16,
    "trilinear": 8,
}


def upsample_macs(mode: str, out: Sequence[int]) -> Cost:
    """``F.interpolate`` in ``mode`` (a key of ``MACS_PER_OUTPUT``; antialiased ``_aa`` variants
    use their base mode) with output shape ``out``: ``MACS_PER_OUTPUT[mode] · numel(out)``.
    ``KeyError`` for an unknown mode."""
    return Cost(core=MACS_PER_OUTPUT[mode] * numel(out))


def grid_sample_macs(out: Sequence[int]) -> Cost:
    """``aten::grid_sampler`` with output ``out``: ``4 · numel(out)``, fvcore's rule (it assumes
    bilinear sampling whatever the mode)."""
    return Cost(core=4 * numel(out))
