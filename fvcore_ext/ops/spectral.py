"""Readers of the FFT family: every aten::fft_* op.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import OpCall
from .registry import (Reader, counts)

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
