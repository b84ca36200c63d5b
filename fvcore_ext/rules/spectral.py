"""Fourier transforms (``aten::fft_*``): FNet's token mixing (``torch.fft.fftn`` over sequence
and hidden dims), FFT long convolutions.

There is no fvcore or torchprofile rule to follow, so the count is a documented choice: a
radix-2 FFT of length n runs ⌈log2 n⌉ stages of butterflies, each touching every element once,
so a transform along a dim of length n costs ``n · ⌈log2 n⌉`` complex MACs, and a transform over
several dims costs ``numel(signal) · Σ_d ⌈log2 n_d⌉``. Real-input and real-output transforms
(``rfft``, ``irfft``) are counted as complex transforms of the same length. Counted under both
presets: in FNet the transform replaces attention. (FFTW's convention, 5·n·log2 n real FLOPs,
gives about 2.5× this in FLOPs.)

The ``norm`` argument ("forward", "ortho", or "backward" on an inverse transform) scales the
output by a constant; like the 1/n of an inverse transform, that scaling is not counted: it is
one multiply per output element that implementations fold into the last butterfly stage.
"""
from __future__ import annotations

from typing import Sequence

from .cost import Cost, numel

__all__ = ["fft_macs"]


def fft_macs(signal: Sequence[int], dims: Sequence[int]) -> Cost:
    """A discrete Fourier transform over ``dims`` of a signal of shape ``signal`` (the transform
    lengths in place of the input sizes along ``dims``): ``numel(signal) · Σ_d ⌈log2 n_d⌉``
    MACs, core. ``ValueError`` on a dim outside the signal or a transform length below 1."""
    rank = len(signal)
    stages = 0
    for d in dims:
        if not -rank <= d < rank:
            raise ValueError(f"dim {d} is outside a signal of shape {tuple(signal)}")
        if int(signal[d]) < 1:
            raise ValueError(f"transform length {signal[d]} along dim {d} is not positive")
        stages += (int(signal[d]) - 1).bit_length()      # ⌈log2 n⌉, 0 for n = 1
    return Cost(core=numel(signal) * stages)
