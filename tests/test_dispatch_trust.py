"""Issue 26: the dispatch engine reaches its rules the same way whatever the caller did: any
import style, only the counting thread, physical shapes under functorch transforms; a training
count with no side effects; ``counting()`` frozen after its block. Exact integers from
docs/conventions.md, on real graphs, compared with the JIT engine."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fvcore_ext import count_model


def _both(model, inputs, preset="full"):
    jit = count_model(model, inputs, preset=preset)
    dispatch = count_model(model, inputs, preset=preset, engine="dispatch")
    return jit, dispatch


# ---------------------------------------------------------------- item 9: ops one engine knew

class _BilinearAndPads(nn.Module):
    def __init__(self):
        super().__init__()
        self.bilinear = nn.Bilinear(3, 2, 5)
        self.reflect, self.replicate = nn.ReflectionPad2d(1), nn.ReplicationPad2d(1)

    def forward(self, x1, x2, image):
        return (self.bilinear(x1, x2), self.reflect(image), self.replicate(image),
                nn.functional.pad(image, (1, 1, 1, 1), mode="circular"))


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_bilinear_counts_and_pads_cost_nothing_in_both_engines(preset):
    model = _BilinearAndPads()
    inputs = (torch.randn(4, 3), torch.randn(4, 2), torch.randn(1, 2, 5, 5))
    jit, dispatch = _both(model, inputs, preset)
    # x1ᵀ·A_k·x2 for 4 rows and 5 outputs: one MAC per term, 4·5·3·2; the bias is not counted
    assert jit.total_macs == dispatch.total_macs == 4 * 5 * 3 * 2
    assert jit.by_family == dispatch.by_family == {"matmul": 120}
    assert not jit.unsupported_ops and not dispatch.unsupported_ops


def test_bilinear_and_reflection_pad_train():
    model = _BilinearAndPads()
    inputs = (torch.randn(4, 3, requires_grad=True), torch.randn(4, 2),
              torch.randn(1, 2, 5, 5, requires_grad=True))
    report = count_model(model, inputs, engine="dispatch", backward=True, preset="paper")
    # the weight's and x1's gradients are each a _trilinear of the forward's 120 MACs; the pads'
    # backward gathers (0)
    assert (report.forward_macs, report.backward_macs) == (120, 240)
    assert not report.unsupported_ops
