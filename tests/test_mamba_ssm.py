"""Real mamba-ssm 2.3.2 and causal-conv1d 1.7.0 (installed without CUDA by .ci/run) counted on
CPU with the stand-in kernels: exact counts in both tools, fast path = slow path."""
import pytest
import torch
from torch import nn

from fvcore_ext.runtime.standins import install_standin_kernels

install_standin_kernels()   # before importing mamba_ssm: selective_scan_cuda is missing here

import mamba_ssm  # noqa: E402
import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402
from mamba_ssm.models.config_mamba import MambaConfig  # noqa: E402
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: E402

from tests.helpers import count_in_both_tools as both_tools  # noqa: E402

assert mamba_ssm.__version__ == "2.3.2.post1"

B, L, DM = 2, 16, 32                          # batch, length, d_model
D, N, R, W = 2 * DM, 16, 2, 4                 # d_inner, d_state, dt_rank = ceil(32/16), d_conv
TERMS = dict(
    in_proj=2 * D * DM * B * L, conv=B * D * L * W, silu=B * D * L,
    x_proj=B * L * D * (R + 2 * N), dt_proj=B * L * D * R,
    scan=9 * B * L * D * N + B * D * L + B * D * L,      # with D and z
    out_proj=B * L * D * DM, A=D * N)                     # A = -exp(A_log): exp and neg


def mamba(**kwargs):
    torch.manual_seed(0)
    return mamba_simple.Mamba(d_model=DM, d_state=N, d_conv=W, expand=2, **kwargs)


def test_fast_path_is_mamba_inner_fn():
    t = TERMS
    fused = t["conv"] + t["x_proj"] + t["dt_proj"] + t["scan"] + t["out_proj"]
    full = both_tools(mamba(use_fast_path=True), [torch.randn(B, L, DM)], "full")
    assert full.by_operator == {"PythonOp.MambaInnerFn": fused + t["silu"],
                                "matmul": t["in_proj"], "exp": t["A"], "neg": t["A"]}
    paper = both_tools(mamba(use_fast_path=True), [torch.randn(B, L, DM)], "paper")
    assert paper.by_operator == {"PythonOp.MambaInnerFn": fused, "matmul": t["in_proj"]}


def test_slow_path_is_causal_conv1d_and_selective_scan():
    t = TERMS
    report = both_tools(mamba(use_fast_path=False), [torch.randn(B, L, DM)], "full")
    assert report.by_operator == {
        "PythonOp.CausalConv1dFn": t["conv"] + t["silu"],
        "PythonOp.SelectiveScanFn": t["scan"],
        "linear": t["x_proj"] + t["out_proj"],
        "matmul": t["in_proj"] + t["dt_proj"],
        "exp": t["A"], "neg": t["A"]}


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("bias", [False, True])
def test_fast_path_equals_slow_path(preset, bias):
    x = torch.randn(B, L, DM)
    fast = both_tools(mamba(use_fast_path=True, bias=bias), [x], preset).total_macs
    slow = both_tools(mamba(use_fast_path=False, bias=bias), [x], preset).total_macs
    assert fast == slow
    if bias and preset == "full":   # in_proj bias is an add; out_proj's bias is not counted
        assert fast == both_tools(mamba(), [x], preset).total_macs + B * 2 * D * L


def test_without_causal_conv1d_the_nn_conv1d_path(monkeypatch):
    monkeypatch.setattr(mamba_simple, "causal_conv1d_fn", None)
    t = TERMS
    report = both_tools(mamba(use_fast_path=True), [torch.randn(B, L, DM)], "full")
    padded = B * D * W * (L + W - 1)        # nn.Conv1d(padding=W-1), sliced to L afterwards
    assert report.by_operator == {
        "conv": padded, "silu": t["silu"], "PythonOp.SelectiveScanFn": t["scan"],
        "linear": t["x_proj"] + t["out_proj"], "matmul": t["in_proj"] + t["dt_proj"],
        "exp": t["A"], "neg": t["A"]}


class Scan(nn.Module):
    def __init__(self, with_D, with_z, with_delta_bias):
        super().__init__()
        self.with_D, self.with_z, self.with_delta_bias = with_D, with_z, with_delta_bias

    def forward(self, u, delta, A, Bm, Cm, Dv, z, delta_bias):
        return selective_scan_fn(u, delta, A, Bm, Cm, Dv if self.with_D else None,
                                 z if self.with_z else None,
                                 delta_bias if self.with_delta_bias else None, True)


@pytest.mark.parametrize("with_D", [False, True])
@pytest.mark.parametrize("with_z", [False, True])
@pytest.mark.parametrize("with_delta_bias", [False, True])
def test_selective_scan_fn_optional_arguments(with_D, with_z, with_delta_bias):
    args = [torch.randn(B, D, L), torch.randn(B, D, L), -torch.rand(D, N),
            torch.randn(B, N, L), torch.randn(B, N, L), torch.ones(D), torch.randn(B, D, L),
            torch.zeros(D)]
    report = both_tools(Scan(with_D, with_z, with_delta_bias), args, "paper")
    assert report.total_macs == 9 * B * L * D * N + (B * D * L) * (with_D + with_z)


def test_mamba_lm_head_model():
    config = MambaConfig(d_model=DM, n_layer=2, vocab_size=64, ssm_cfg={"layer": "Mamba1"},
                         rms_norm=False, fused_add_norm=False)
    torch.manual_seed(0)
    model = MambaLMHeadModel(config)
    ids = torch.randint(0, 64, (B, L))
    t = TERMS
    mixer = {"full": t["in_proj"] + 2 * t["A"] + t["conv"] + t["silu"] + t["x_proj"]
             + t["dt_proj"] + t["scan"] + t["out_proj"]}
    mixer["paper"] = mixer["full"] - 2 * t["A"] - t["silu"]
    norms = 3 * 5 * B * L * DM                 # one LayerNorm per block, and norm_f
    residual_adds = 2 * B * L * DM             # block 1's and the final one (block 0 has none)
    lm_head = B * L * DM * 64
    for preset in ("full", "paper"):
        expected = 2 * mixer[preset] + norms + lm_head + (residual_adds if preset == "full" else 0)
        assert both_tools(model, [ids], preset).total_macs == expected


@pytest.mark.parametrize("grouped", [False, True])
def test_reference_kernels_scan_equals_mamba_ssm_selective_scan_ref(grouped):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref as upstream
    from fvcore_ext.reference_models.kernels import selective_scan_ref as chunked
    torch.manual_seed(0)
    b, d, length, n = 2, 8, 150, 4
    shape = (b, 2, n, length) if grouped else (b, n, length)
    args = (torch.randn(b, d, length), torch.randn(b, d, length), -torch.rand(d, n) * 4,
            torch.randn(shape), torch.randn(shape), torch.randn(d), torch.randn(b, d, length),
            torch.randn(d), True)
    torch.testing.assert_close(chunked(*args), upstream(*args), rtol=1e-4, atol=1e-4)
