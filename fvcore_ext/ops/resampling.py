"""Readers of the resampling family: adaptive average pooling, grid sampling, every aten::upsample_* op.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import OpCall
from .registry import (Reader, counts)

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
