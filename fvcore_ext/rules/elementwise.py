"""Elementwise ops, activations, softmax and reductions (new in ``docs/conventions.md``).

One MAC per output element for arithmetic, transcendental functions, activations and softmax;
one per input element for reductions and average pools. These count only under the **full**
preset. fvcore's own ``adaptive_avg_pool2d`` rule (1 x input numel) is the model for the
reduction rule.
"""
from __future__ import annotations

from typing import Sequence

from .cost import Cost, numel

__all__ = ["elementwise_macs", "reduction_macs", "sum_of_terms_macs"]


def elementwise_macs(out: Sequence[int]) -> Cost:
    """Elementwise op or activation with output (the broadcast shape) ``out``: ``numel(out)``
    MACs, full preset only."""
    return Cost(elementwise=numel(out))


def reduction_macs(x: Sequence[int]) -> Cost:
    """Reduction or average (``mean``, ``sum``, ``avg_pool*``) over an input of shape ``x``:
    ``numel(x)`` MACs, full preset only."""
    return Cost(elementwise=numel(x))


def sum_of_terms_macs(terms: Sequence[int], out: Sequence[int]) -> Cost:
    """Summing the ``numel(terms)`` values of ``terms`` into ``numel(out)`` sums (VMamba's
    ``CrossMerge``: K scan directions ``(B, K, D, H, W)`` into ``(B, D, H·W)``): one add per
    value beyond the first of each sum, ``numel(terms) - numel(out)`` = ``(K - 1)·numel(out)``
    MACs, full preset only. ``ValueError`` if ``out`` is larger than ``terms``."""
    extra = numel(terms) - numel(out)
    if extra < 0:
        raise ValueError(f"cannot sum {tuple(terms)} into the larger {tuple(out)}")
    return Cost(elementwise=extra)
