"""MoE expert matmuls (``aten::_grouped_mm``) count from shapes only, and equal an explicit
per-expert loop, in both tools and both presets; transformers' Mixtral counts its experts the
same whichever experts implementation it runs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchprofile_ext
from fvcore_ext import count_model
from fvcore_ext.ops import OP_TABLE
from fvcore_ext.ops.opcall import OpCall, TensorArg
from tests.helpers import fvcore_count, tiny_mixtral

E, K, N, TOP_K, TOKENS = 4, 16, 24, 2, 10


class TinyMoE(nn.Module):
    """Top-2 routing over E experts (up, silu, down). The experts run as two grouped matmuls,
    or as a loop that multiplies each expert's rows by its weights (``x[idx_e] @ w[e]``)."""

    def __init__(self, grouped: bool):
        super().__init__()
        self.grouped = grouped
        self.router = nn.Linear(K, E, bias=False)
        self.up = nn.Parameter(torch.randn(E, K, N))
        self.down = nn.Parameter(torch.randn(E, N, K))

    def forward(self, x):                                   # (TOKENS, K)
        weights, chosen = self.router(x).softmax(-1).topk(TOP_K, dim=-1)
        expert_ids, order = chosen.reshape(-1).sort()
        rows = x[order // TOP_K]                            # (TOKENS·TOP_K, K), by expert
        offs = torch.histc(expert_ids.float(), bins=E, min=0, max=E - 1).cumsum(0).int()
        if self.grouped:
            out = F.grouped_mm(F.silu(F.grouped_mm(rows, self.up, offs=offs)), self.down,
                               offs=offs)
        else:
            per_expert = rows.tensor_split(offs[:-1].long())   # expert e's rows: x[idx_e]
            out = torch.cat([F.silu(rows_e @ self.up[e]) @ self.down[e]
                             for e, rows_e in enumerate(per_expert)])
        return out * weights.reshape(-1)[order, None]


T = TOKENS * TOP_K
MOE_PAPER = TOKENS * K * E                                 # the router (linear)
MOE_PAPER_EXPERTS = T * K * N + T * N * K                  # up and down over every routed row
MOE_FULL_EXTRA = TOKENS * E + E + T * N + T * K            # softmax, cumsum, silu, weighting


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_grouped_mm_equals_the_per_expert_loop_in_both_tools(preset):
    expected = MOE_PAPER + MOE_PAPER_EXPERTS + (MOE_FULL_EXTRA if preset == "full" else 0)
    x = torch.randn(TOKENS, K)
    totals = {}
    for grouped in (True, False):
        torch.manual_seed(0)
        model = TinyMoE(grouped)
        fvcore_total, by_op = fvcore_count(model, (x,), preset)
        with torch.no_grad():
            torchprofile_total = torchprofile_ext.profile_macs(model, (x,), preset)
        assert fvcore_total == torchprofile_total
        totals[grouped] = fvcore_total
        expert_op = "_grouped_mm" if grouped else "matmul"
        assert by_op[expert_op] == MOE_PAPER_EXPERTS
    assert totals[True] == totals[False] == expected


def test_grouped_mm_count_does_not_depend_on_the_routing():
    x = torch.randn(TOKENS, K)
    torch.manual_seed(0)
    model = TinyMoE(grouped=True)
    counts, experts_used = [], []
    for skewed in (False, True):
        if skewed:
            with torch.no_grad():    # all logits tie: the same two experts take every token
                model.router.weight.zero_()
        experts_used.append(model.router(x).topk(TOP_K).indices.unique().numel())
        counts.append(count_model(model, [x], preset="paper").by_operator["_grouped_mm"])
    assert experts_used == [E, TOP_K]
    assert counts == [MOE_PAPER_EXPERTS, MOE_PAPER_EXPERTS]


def test_scaled_grouped_mm_counts_its_matmul():
    # FP8 grouped matmuls need a GPU to run: check the rule on the op's argument layout
    # (mat_a, mat_b, scale_a, scale_b, offs, ...), as the JIT would record it.
    call = OpCall("aten::_scaled_grouped_mm",
                  [TensorArg((T, K), "Float8_e4m3fn"), TensorArg((E, K, N), "Float8_e4m3fn"),
                   TensorArg((T,), "Float"), TensorArg((E, N), "Float"), TensorArg((E,), "Int"),
                   None, None, None, False],
                  [TensorArg((T, N), "BFloat16")])
    rule = OP_TABLE["aten::_scaled_grouped_mm"]
    assert rule.count(call, "paper") == rule.count(call, "full") == T * K * N


def test_mixtral_counts_its_experts_whatever_the_implementation():
    # 2 layers, 16 tokens routed to 2 experts each: gate_up (32 -> 2·48) and down (48 -> 32).
    ids = torch.randint(0, 100, (2, 8))
    experts = 2 * (16 * 2) * (32 * 96 + 48 * 32)
    reports = {implementation: count_model(tiny_mixtral(implementation), [ids], preset="paper")
               for implementation in ("grouped_mm", "batched_mm", "eager")}
    for report in reports.values():
        assert report.unsupported_ops == {} and report.uncounted == []
    assert reports["grouped_mm"].by_operator["_grouped_mm"] == experts
    assert reports["batched_mm"].by_operator["bmm"] == experts
    # the eager loop runs each expert as aten::linear, beside the attention and router linears
    assert reports["eager"].by_operator["linear"] == \
        reports["grouped_mm"].by_operator["linear"] + experts
    assert len({report.total_macs for report in reports.values()}) == 1
