"""The ops today's models run beyond the first contract (CONVENTIONS.md, "Every other op a real
model runs"): rotary embeddings, T5 buckets, erf-GELU, MoE routing and grouped matmuls, BLOOM's
own gelu. Exact per-operator counts in both tools, derived by hand below."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bloom.modeling_bloom import GeLUFunction

import torchprofile_ext
from fvcore_ext import count_model
from fvcore_ext.census import census
from tests.helpers import fvcore_count


class RealWorldOps(nn.Module):
    """Each op the coverage issue found unsupported, at known shapes; input x (2, 8, 16)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, 16, 2).float() / 16))
        self.experts = nn.Parameter(torch.randn(4, 16, 24))

    def forward(self, x):
        pos = torch.arange(8, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]                # RoPE angles (8, 8)
        emb = torch.cat((freqs, freqs), dim=-1)
        rot = x * emb.cos() + x * emb.sin()
        buckets = (rot.abs().log1p() * rot.sign()).ceil()             # T5-style buckets
        erf_gelu = 0.5 * rot * (1 + torch.erf(rot / math.sqrt(2)))    # ESM's gelu
        steps = torch.diff(erf_gelu, dim=-1)                          # (2, 8, 15)
        norm = torch.linalg.vector_norm(steps, dim=-1)
        var = buckets.var(dim=-1)
        tokens = x.reshape(16, 16)
        expert_ids = torch.arange(16) % 4
        counts = torch.histc(tokens[:, 0], bins=4)
        onehot = F.one_hot(expert_ids, 4)
        combined = torch.zeros(4, 16).index_add_(0, expert_ids, tokens)
        offs = torch.tensor([4, 8, 12, 16], dtype=torch.int32)
        routed = F.grouped_mm(tokens, self.experts, offs=offs)       # (16, 24)
        either = (x > 0) | (x < 0)
        strided = x.as_strided((4, 4), (1, 4))
        bloom = GeLUFunction.apply(tokens.T.reshape_as(tokens))
        return norm, var, counts, onehot, combined, routed, either, strided, bloom


REAL_WORLD_PAPER = {"_grouped_mm": 16 * 16 * 24}
REAL_WORLD_FULL = dict(
    REAL_WORLD_PAPER,
    mul=8 * 8 + 2 * 256 + 256 + 2 * 256,       # angles; rot's two; buckets'; erf-gelu's two
    cos=8 * 16, sin=8 * 16,
    add=256 + 256,                             # rot; 1 + erf
    abs=256, log1p=256, sign=256, ceil=256,
    div=256, erf=256,
    diff=2 * 8 * 15,                           # the output of a difference along the last dim
    linalg_vector_norm=2 * 8 * 15,             # reductions: 1 x input numel
    var=256,
    index_add_=256,                            # 1 x source numel
    **{"PythonOp.GeLUFunction": 256},          # BLOOM's gelu counts as aten::gelu
)


@pytest.mark.parametrize("preset, expected", [("full", REAL_WORLD_FULL),
                                              ("paper", REAL_WORLD_PAPER)])
@pytest.mark.parametrize("grad", [False, True])
def test_real_world_ops_in_both_tools(preset, expected, grad):
    model, x = RealWorldOps(), torch.randn(2, 8, 16)
    assert fvcore_count(model, (x,), preset, grad) == (sum(expected.values()), expected)
    with torch.set_grad_enabled(grad):
        results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
    assert torchprofile_ext.macs_by_operator(results) == expected


def test_census_knows_every_real_world_op():
    result = census(RealWorldOps(), torch.randn(2, 8, 16))
    families = {o.op: o.family for o in result.ops}
    assert result.unknown == [] and result.uncounted == []
    assert families["aten::_grouped_mm"] == "matmul"
    assert families["prim::PythonOp.GeLUFunction"] == "elementwise"
    assert families["aten::linalg_vector_norm"] == families["aten::var"] == "reduction"
    for routing in ("aten::histc", "aten::one_hot", "aten::numpy_T", "aten::as_strided",
                    "aten::reshape_as", "aten::__or__"):
        assert families[routing] == "zero-cost", routing
