"""Mamba-2 from the real mamba-ssm 2.3.2 (installed without CUDA by .ci/run), counted on CPU with
the stand-in kernels: the SSD chunk scan, the fused split-conv1d layer, the gated RMSNorm and the
fused add + norm, with exact counts derived by hand, fused = unfused, and both tools agreeing."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext.runtime.standins import install_standin_kernels

install_standin_kernels()   # before importing mamba_ssm: no CUDA extensions, no Triton launches
pytest.importorskip("mamba_ssm", reason="mamba-ssm (the mamba extra) is not installed")

from mamba_ssm.models.config_mamba import MambaConfig  # noqa: E402
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: E402
from mamba_ssm.modules.mamba2 import Mamba2  # noqa: E402
from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn  # noqa: E402
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: E402

from fvcore_ext import UncountableOpError, count_model  # noqa: E402
from tests.helpers import count_in_both_tools as both_tools  # noqa: E402

# Mamba2(d_model=32, d_state=16, headdim=8, chunk_size=8) on (2, 20, 32): d_inner = 64,
# h = 8 heads of p = 8, g = 1 group, n = 16, conv over 64 + 2·16 = 96 channels of width 4,
# in_proj 32 -> 2·64 + 2·16 + 8 = 168. Chunks of 8 over 20 steps: c = 3, S = 8² + 8² + 4² = 144.
BATCH, LENGTH, D_MODEL = 2, 20, 32
HAND = dict(
    in_proj=2 * 20 * 32 * 168,                         # 215,040
    conv=2 * 96 * 20 * 4, conv_silu=2 * 96 * 20,       # 15,360 and 3,840
    # b·g·n·S + b·h·p·S + 2·b·h·p·n·l + b·h·p·n·c + D: b·l·h·p
    ssd=2 * 16 * 144 + 2 * 64 * 144 + 2 * 2 * 64 * 16 * 20 + 2 * 64 * 16 * 3 + 2 * 20 * 64,
    # dt: (bias, softplus, ·A, cumsum) per (b, l, h); exps: b·h·S + 2·b·l·h + b·h·c
    ssd_discretisation=2 * 20 * 8 * 4 + 2 * 8 * 144 + 2 * 2 * 20 * 8 + 2 * 8 * 3,
    # (3 + weight)·numel + 2 per group of 64 (40 rows), gate silu(z) and product 2·numel
    gated_norm=4 * 2560 + 2 * 40 + 2 * 2560,
    out_proj=2 * 20 * 64 * 32,                         # 81,920
    A=8,                                               # A = -exp(A_log): exp and neg, per head
)


def test_hand_derived_terms():
    assert HAND["ssd"] == 113_664 and HAND["ssd_discretisation"] == 4_272
    assert HAND["gated_norm"] == 15_440


def mamba2(**kwargs):
    torch.manual_seed(0)
    options = dict(d_state=16, headdim=8, chunk_size=8)
    options.update(kwargs)
    return Mamba2(d_model=D_MODEL, **options)


def inputs():
    return [torch.randn(BATCH, LENGTH, D_MODEL)]


def test_mem_eff_path_is_one_fused_op():
    h = HAND
    fused = h["conv"] + h["ssd"] + h["out_proj"]
    fused_elementwise = h["conv_silu"] + h["ssd_discretisation"] + h["gated_norm"]
    full = both_tools(mamba2(use_mem_eff_path=True), inputs(), "full")
    assert full.by_operator == {
        "PythonOp.MambaSplitConv1dScanCombinedFn": fused + fused_elementwise,
        "linear": h["in_proj"], "exp": h["A"], "neg": h["A"]}
    paper = both_tools(mamba2(use_mem_eff_path=True), inputs(), "paper")
    assert paper.by_operator == {"PythonOp.MambaSplitConv1dScanCombinedFn": fused,
                                 "linear": h["in_proj"]}


def test_unfused_path_is_conv_scan_norm_linear():
    h = HAND
    report = both_tools(mamba2(use_mem_eff_path=False), inputs(), "full")
    assert report.by_operator == {
        "PythonOp.CausalConv1dFn": h["conv"] + h["conv_silu"],
        "PythonOp.MambaChunkScanCombinedFn": h["ssd"] + h["ssd_discretisation"],
        "PythonOp.LayerNormFn": h["gated_norm"],
        "linear": h["in_proj"] + h["out_proj"], "exp": h["A"], "neg": h["A"]}


CONFIGS = {
    "default": {},
    "no_rmsnorm": dict(rmsnorm=False),                       # z gates inside the scan
    "norm_before_gate": dict(norm_before_gate=True),
    "groups": dict(ngroups=2),
    "D_has_hdim": dict(D_has_hdim=True),
    "gated_mlp": dict(d_ssm=32),                             # d_nonssm = 32: silu(z0)·x0
    "bias": dict(bias=True, conv_bias=False),
    "chunk_divides": dict(chunk_size=4),
    "one_chunk": dict(chunk_size=256),
    "no_rmsnorm_groups_mlp": dict(rmsnorm=False, ngroups=4, d_ssm=32),
}


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_mem_eff_path_equals_unfused_path(config, preset):
    x = inputs()
    fused = both_tools(mamba2(use_mem_eff_path=True, **CONFIGS[config]), x, preset)
    unfused = both_tools(mamba2(use_mem_eff_path=False, **CONFIGS[config]), x, preset)
    assert "PythonOp.MambaSplitConv1dScanCombinedFn" in fused.by_operator
    assert "PythonOp.MambaChunkScanCombinedFn" in unfused.by_operator
    assert fused.total_macs == unfused.total_macs


def ssd_by_hand(b, l, h, p, g, n, Q, D, z, dt_bias, softplus):
    """The SSD formula, written out again from the Mamba-2 paper's four steps."""
    chunks = -(-l // Q)
    lengths = [Q] * (chunks - 1) + [l - (chunks - 1) * Q]
    S = sum(q * q for q in lengths)
    diagonal_blocks = b * g * n * S + b * h * p * S
    states_in, passing, states_out = b * h * p * n * l, b * h * p * n * chunks, b * h * p * n * l
    core = diagonal_blocks + states_in + passing + states_out + b * l * h * p * (D + z)
    elementwise = b * l * h * (2 + dt_bias + softplus) + b * h * (S + 2 * l + chunks)
    return core, elementwise


class ChunkScan(nn.Module):
    def __init__(self, chunk_size, D, z, dt_bias, softplus):
        super().__init__()
        self.chunk_size, self.with_D, self.with_z = chunk_size, D, z
        self.with_dt_bias, self.softplus = dt_bias, softplus

    def forward(self, x, dt, A, B, C, D, z, dt_bias):
        return mamba_chunk_scan_combined(
            x, dt, A, B, C, self.chunk_size, D=D if self.with_D else None,
            z=z if self.with_z else None, dt_bias=dt_bias if self.with_dt_bias else None,
            dt_softplus=self.softplus)


@pytest.mark.parametrize("D", [False, True])
@pytest.mark.parametrize("z", [False, True])
@pytest.mark.parametrize("dt_bias,softplus", [(False, False), (True, True)])
@pytest.mark.parametrize("l,Q,g", [(20, 8, 1), (32, 16, 2), (5, 64, 4)])
def test_chunk_scan_optional_arguments(D, z, dt_bias, softplus, l, Q, g):
    b, h, p, n = 2, 4, 8, 16
    args = [torch.randn(b, l, h, p), torch.rand(b, l, h), -torch.rand(h),
            torch.randn(b, l, g, n), torch.randn(b, l, g, n), torch.ones(h),
            torch.randn(b, l, h, p), torch.zeros(h)]
    model = ChunkScan(Q, D, z, dt_bias, softplus)
    core, elementwise = ssd_by_hand(b, l, h, p, g, n, Q, D, z, dt_bias, softplus)
    assert both_tools(model, args, "paper").total_macs == core
    assert both_tools(model, args, "full").total_macs == core + elementwise


def test_chunk_scan_small_case_by_hand():
    # b=1, l=3, h=1, p=1, g=1, n=2, Q=2: chunks [2, 1], S = 5. Core: CBᵀ 1·1·2·5 = 10, (CBᵀ)·x
    # 5, states 2·3 = 6, passing 2·2 = 4, output 6, D 3 -> 34. Elementwise: dt 3·(2 + 1 + 1)
    # = 12, exps 5 + 6 + 2 = 13 -> 25.
    args = [torch.randn(1, 3, 1, 1), torch.rand(1, 3, 1), -torch.rand(1),
            torch.randn(1, 3, 1, 2), torch.randn(1, 3, 1, 2), torch.ones(1),
            torch.randn(1, 3, 1, 1), torch.zeros(1)]
    model = ChunkScan(2, D=True, z=False, dt_bias=True, softplus=True)
    assert both_tools(model, args, "paper").total_macs == 34
    assert both_tools(model, args, "full").total_macs == 34 + 25


class GatedRMSNorm(nn.Module):
    """Mamba-2's norm through the fused LayerNormFn, or written out with torch ops."""

    def __init__(self, dim, group_size, norm_before_gate, fused):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size, self.norm_before_gate, self.fused = group_size, norm_before_gate, fused

    def forward(self, x, z):
        if self.fused:
            return rmsnorm_fn(x, self.weight, None, z=z, group_size=self.group_size,
                              norm_before_gate=self.norm_before_gate)
        if not self.norm_before_gate:
            x = x * F.silu(z)
        groups = x.unflatten(-1, (-1, self.group_size))
        out = F.rms_norm(groups, (self.group_size,)).flatten(-2) * self.weight
        return out * F.silu(z) if self.norm_before_gate else out


@pytest.mark.parametrize("norm_before_gate", [False, True])
@pytest.mark.parametrize("group_size", [64, 16])
def test_gated_rms_norm_equals_its_torch_reference(norm_before_gate, group_size):
    x, z = torch.randn(2, 10, 64), torch.randn(2, 10, 64)
    fused = both_tools(GatedRMSNorm(64, group_size, norm_before_gate, True), [x, z], "full")
    written_out = both_tools(GatedRMSNorm(64, group_size, norm_before_gate, False), [x, z],
                             "full")
    groups = 2 * 10 * 64 // group_size
    assert fused.by_operator == {"PythonOp.LayerNormFn": 6 * 1280 + 2 * groups}
    assert written_out.total_macs == fused.total_macs
    assert both_tools(GatedRMSNorm(64, group_size, norm_before_gate, True), [x, z],
                      "paper").total_macs == 0


def lm_config(layer, fused_add_norm, rms_norm=True):
    ssm = dict(layer=layer)
    if layer == "Mamba2":
        ssm.update(d_state=16, headdim=8, chunk_size=8)
    return MambaConfig(d_model=D_MODEL, n_layer=2, vocab_size=64, ssm_cfg=ssm,
                       rms_norm=rms_norm, fused_add_norm=fused_add_norm)


def test_mamba2_lm_head_model_by_hand():
    torch.manual_seed(0)
    model = MambaLMHeadModel(lm_config("Mamba2", fused_add_norm=True))  # the default layout
    ids = torch.randint(0, 64, (BATCH, LENGTH))
    h = HAND
    mixer_paper = h["in_proj"] + h["conv"] + h["ssd"] + h["out_proj"]
    mixer_full = (mixer_paper + 2 * h["A"] + h["conv_silu"] + h["ssd_discretisation"]
                  + h["gated_norm"])
    numel = BATCH * LENGTH * D_MODEL
    rms_norms = 3 * (4 * numel + 2 * BATCH * LENGTH)    # two blocks and norm_f, weight only
    residual_adds = 2 * numel                           # block 1 and norm_f; block 0 has none
    lm_head = BATCH * LENGTH * D_MODEL * 64
    full = both_tools(model, [ids], "full")
    assert full.by_operator["PythonOp.LayerNormFn"] == rms_norms + residual_adds
    assert full.total_macs == 2 * mixer_full + rms_norms + residual_adds + lm_head
    assert both_tools(model, [ids], "paper").total_macs == 2 * mixer_paper + lm_head


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("layer", ["Mamba1", "Mamba2"])
@pytest.mark.parametrize("rms_norm", [True, False])
def test_fused_add_norm_equals_separate_add_and_norm(layer, rms_norm, preset):
    ids = torch.randint(0, 64, (BATCH, LENGTH))
    totals = []
    for fused_add_norm in (True, False):
        torch.manual_seed(0)
        model = MambaLMHeadModel(lm_config(layer, fused_add_norm, rms_norm))
        totals.append(both_tools(model, [ids], preset).total_macs)
    assert totals[0] == totals[1]


class VarlenScan(nn.Module):
    def forward(self, x, dt, A, B, C, cu_seqlens):
        return mamba_chunk_scan_combined(x, dt, A, B, C, 8, cu_seqlens=cu_seqlens,
                                         return_varlen_states=True)[0]


def test_varlen_states_are_reported_uncounted_not_guessed():
    args = [torch.randn(1, 16, 2, 4), torch.rand(1, 16, 2), -torch.rand(2),
            torch.randn(1, 16, 1, 8), torch.randn(1, 16, 1, 8), torch.tensor([0, 9, 16])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = count_model(VarlenScan(), args)
    assert report.total_macs == 0
    assert [(u.op, "return_varlen_states" in u.reason) for u in report.uncounted] == \
        [("prim::PythonOp.MambaChunkScanCombinedFn", True)]
    with pytest.raises(UncountableOpError, match="MambaChunkScanCombinedFn"):
        count_model(VarlenScan(), args, strict=True)


class LayerNormFn(torch.autograd.Function):
    """mamba-ssm 1.x's (and Vim's vendored mamba-1p1p1's) fused residual add + norm: the same
    name and argument layout as upstream ``mamba_ssm/ops/triton/layernorm.py``, a torch body."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual=None, eps=1e-6, prenorm=False,
                residual_in_fp32=False, is_rms_norm=False):
        residual = x if residual is None else x + residual
        return F.rms_norm(residual, (x.shape[-1],), weight, eps), residual


class AddNorm(nn.Module):
    def __init__(self, layout):
        super().__init__()
        self.weight, self.layout = nn.Parameter(torch.ones(32)), layout

    def forward(self, x, residual):
        if self.layout == "1.x":
            return LayerNormFn.apply(x, self.weight, None, residual, 1e-5, True, False, True)[0]
        from mamba_ssm.ops.triton.layer_norm import rms_norm_fn
        return rms_norm_fn(x, self.weight, None, residual=residual, prenorm=True)[0]


@pytest.mark.parametrize("layout", ["1.x", "2.x"])
def test_fused_add_rms_norm_both_upstream_layouts(layout):
    x, residual = torch.randn(2, 5, 32), torch.randn(2, 5, 32)
    report = both_tools(AddNorm(layout), [x, residual], "full")
    # RMSNorm with weight: 4 per element + 2 per row (10 rows); the residual add: 1 per element
    assert report.by_operator == {"PythonOp.LayerNormFn": 4 * 320 + 2 * 10 + 320}
