"""Issue 29: the bytes each op moves, measured by the dispatch engine on real graphs, and the
roofline time on a named device. Every byte count is derived by hand (docs/conventions.md,
"Bytes moved"): what an op reads plus what it writes, each tensor at its own dtype."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext import count_model, counting
from fvcore_ext.roofline import HARDWARE

H100 = HARDWARE["h100"]


def _dispatch(model, inputs, **kw):
    return count_model(model, inputs, engine="dispatch", **kw)


def test_linear_reads_input_weight_bias_and_writes_output():
    # x (8, 16), W (32, 16), b (32,), y (8, 32), fp32: (128 + 512 + 32 + 256) · 4
    report = _dispatch(nn.Linear(16, 32), torch.randn(8, 16))
    assert report.total_bytes == (128 + 512 + 32 + 256) * 4 == 3712
    assert report.bytes_by_operator == {"linear": 3712}
    assert report.bytes_by_module == {"": 3712}


def test_bf16_moves_half_the_bytes():
    report = _dispatch(nn.Linear(16, 32).to(torch.bfloat16),
                       torch.randn(8, 16, dtype=torch.bfloat16))
    assert report.total_bytes == (128 + 512 + 32 + 256) * 2


def test_convolution():
    # x (1, 3, 8, 8) 192 elements, W (4, 3, 3, 3) 108, b 4, y (1, 4, 6, 6) 144; fp32
    report = _dispatch(nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8))
    assert report.total_bytes == (192 + 108 + 4 + 144) * 4 == 1792


def test_embedding_reads_the_rows_it_takes():
    # 10 ids (int64, 80 bytes) take 10 rows of 64 fp16 (1,280 bytes) from a 1000-row table,
    # and write 10 × 64 fp16
    report = _dispatch(nn.Embedding(1000, 64).to(torch.float16), torch.arange(10))
    assert report.total_bytes == 10 * 64 * 2 + 10 * 8 + 10 * 64 * 2 == 2640


def test_fused_attention_never_writes_the_scores_explicit_attention_does():
    q, k, v = (torch.randn(1, 2, 8, 4) for _ in range(3))
    with counting() as fused:
        F.scaled_dot_product_attention(q, k, v)
    # q, k, v read, the output written: 4 × 64 floats
    assert fused.traffic.total_bytes == 4 * 64 * 4 == 1024
    with counting() as explicit:
        scores = (q @ k.transpose(-2, -1)) * 0.5     # kᵀ is a view: 0
        (scores.softmax(-1) @ v)
    # q @ kᵀ reads 64 + 64, writes the 2·8·8 = 128 scores; the scale and the softmax each
    # read and write the scores; @ v reads scores + v (128 + 64) and writes 64
    assert explicit.traffic.total_bytes == 4 * ((64 + 64 + 128) + 2 * (128 + 128)
                                                + (128 + 64 + 64)) == 4096


def test_a_broadcast_input_is_read_once_and_views_move_nothing():
    x = torch.randn(4, 8)
    with counting() as c:
        y = x + torch.ones(8).expand(4, 8)    # the expanded ones are 8 distinct floats
        y.view(32).t()
    # ones writes 8; add reads 32 + 8, writes 32; expand, view and t: 0
    assert c.traffic.total_bytes == 4 * (8 + 32 + 8 + 32)


def test_a_selective_scan_moves_its_inputs_and_output():
    from fvcore_ext.reference_models.kernels import SelectiveScanFn
    b, d, n, length = 2, 8, 4, 16
    u, delta = torch.randn(b, d, length), torch.randn(b, d, length)
    A, B, C = -torch.rand(d, n), torch.randn(b, n, length), torch.randn(b, n, length)
    D, z = torch.randn(d), torch.randn(b, d, length)
    with counting() as c:
        SelectiveScanFn.apply(u, delta, A, B, C, D, z, None, True)
    # read u, delta, z (3 · 256), A (32), B, C (2 · 128), D (8); write y (256): fp32
    assert c.traffic.by_operator["PythonOp.SelectiveScanFn"] == 4 * (3 * 256 + 32 + 256 + 8
                                                                     + 256)


def test_a_decode_step_reads_its_kv_cache():
    # one new token (B=1, H=4, E=16) attends to a cache of N=63 tokens plus itself
    n, h, e = 63, 4, 16
    q = torch.randn(1, h, 1, e, dtype=torch.bfloat16)
    cache_k, cache_v = (torch.randn(1, h, n + 1, e, dtype=torch.bfloat16) for _ in range(2))
    with counting() as c:
        F.scaled_dot_product_attention(q, cache_k, cache_v)
    # q and the output: 2 · h · e; the cache: 2 · h · (n + 1) · e; bf16
    assert c.traffic.total_bytes == 2 * (2 * h * e + 2 * h * (n + 1) * e) == 16640


def test_training_reports_forward_and_backward_bytes_apart():
    report = _dispatch(nn.Linear(16, 32), torch.randn(8, 16), backward=True)
    assert report.forward_bytes == 3712
    assert report.backward_bytes > 0
    assert report.total_bytes == report.forward_bytes + report.backward_bytes


def test_roofline_time_on_h100():
    # a decode-shaped linear in bf16 (one token, 4096 → 4096): 16.8 M MACs, 32 MiB of weight:
    # intensity ≈ 1 FLOP/byte, far under the H100's ridge (989.4e12 / 3.35e12 ≈ 295)
    model = nn.Linear(4096, 4096, bias=False).to(torch.bfloat16)
    x = torch.randn(1, 4096, dtype=torch.bfloat16)
    report = _dispatch(model, x, hardware="h100", device="meta")
    nbytes = (4096 + 4096 * 4096 + 4096) * 2
    assert report.total_bytes == nbytes
    assert report.estimated_seconds == pytest.approx(nbytes / 3.35e12, rel=1e-12)
    assert report.bound_by_module[""] == "memory"
    # the same at batch 4096 is compute-bound: 2 · 4096³ FLOPs at the bf16 peak
    big = _dispatch(model, torch.randn(4096, 4096, dtype=torch.bfloat16), hardware="h100",
                    device="meta")
    assert big.bound_by_operator["linear"] == "compute"
    assert big.estimated_seconds == pytest.approx(2 * 4096 ** 3 / 989.4e12, rel=1e-12)


def test_the_jit_engine_refuses_hardware():
    with pytest.raises(ValueError, match="engine='dispatch'"):
        count_model(nn.Linear(2, 2), torch.randn(1, 2), hardware="h100")


def test_mamba_selective_scan_has_lower_intensity_than_the_linears_around_it():
    import importlib.util

    from fvcore_ext.runtime.standins import standin_kernels
    if importlib.util.find_spec("mamba_ssm") is None:
        pytest.skip("mamba-ssm not installed")
    torch.manual_seed(0)
    with standin_kernels():      # mamba_ssm imports its CUDA extension: the CPU stand-ins
        import mamba_ssm.modules.mamba_simple as mamba_simple
        # a VMamba/Vim-sized block: d_model 256 (d_inner 512), 512 tokens
        block = mamba_simple.Mamba(d_model=256, d_state=16, use_fast_path=False)
        report = _dispatch(block, torch.randn(1, 512, 256), hardware="h100", device="meta")
    intensity = report.intensity_by_operator()
    assert intensity["PythonOp.SelectiveScanFn"] < intensity["linear"]
    assert report.bound_by_operator["PythonOp.SelectiveScanFn"] == "memory"


# ---------------------------------------------------------------- a decode step, from its config

TINY_LLAMA = {"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
              "head_dim": 16}


def _decode_step(cache_len):
    pytest.importorskip("transformers")
    from fvcore_ext.hf import count_decode
    return count_decode("llama", seq_len=cache_len, new_tokens=1, overrides=TINY_LLAMA,
                        head="causal-lm", hardware="h100", dtype=torch.bfloat16).step


def test_a_decode_step_is_weights_plus_kv_cache_plus_activations_at_the_bandwidth():
    """docs/roofline.md, "A decode step": one token (h = 64), a cache of N = 32 tokens, bf16.
    Every linear reads its weight (and its one-token input) and writes one row; the cache
    update (transformers' DynamicCache: torch.cat) reads N cached tokens and the new one and
    writes N + 1, for K and for V; SDPA reads q, the N + 1 keys and values, writes one row."""
    step = _decode_step(32)
    linears = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64),
               (64, 100)]                          # q, k, v, o, gate, up, down, lm_head
    weights = sum(i * o for i, o in linears) * 2
    assert weights == 86528
    assert step.bytes_by_operator["linear"] == weights + sum(i + o for i, o in linears) * 2
    kv = 2 * 16 * 2                                # a token's K (or V): 2 heads · 16 · bf16
    assert step.bytes_by_operator["scaled_dot_product_attention"] == \
        2 * 64 + 2 * 33 * kv + 2 * 64              # q, K and V of 33 tokens, the output
    # memory-bound throughout: the time is the bytes over the H100's 3.35 TB/s
    assert step.bound_by_module[""] == "memory"
    assert step.estimated_seconds == pytest.approx(step.total_bytes / 3.35e12, rel=1e-12)
    # each further cache token: the cat reads it and writes it again, SDPA reads it; K and V
    assert _decode_step(33).total_bytes - step.total_bytes == 3 * 2 * kv == 384


@pytest.mark.parametrize("name", ["cnn", "vit", "swin_stage", "unet_decoder", "mha",
                                  "transformer_encoder_layer", "mamba", "mamba_slow",
                                  "vim_block", "vmamba_block"])
def test_every_op_of_the_reference_models_has_its_bytes(name):
    """Issue 29: every op the dispatch engine meets in the reference models is measured (an
    op whose bytes cannot be read would be listed in bytes_unread), forward and backward."""
    from fvcore_ext.reference_models import build
    model, inputs = build(name)
    for backward in (False, True):
        report = _dispatch(model, inputs, backward=backward, hardware="h100")
        assert report.bytes_unread == {} and report.total_bytes > 0
        assert sum(report.bytes_by_operator.values()) == report.total_bytes
        assert report.bytes_by_module[""] == report.total_bytes


def test_the_jit_engine_reads_bytes_from_the_trace():
    """The JIT engine measures the trace's nodes with the same byte rules: a linear moves what
    the dispatch engine measures; on the reference CNN every family agrees."""
    from fvcore_ext.reference_models import build
    linear = count_model(nn.Linear(16, 32), torch.randn(8, 16))
    assert linear.engine == "jit" and linear.total_bytes == 3712
    assert linear.bytes_by_module == {"": 3712}
    model, inputs = build("cnn")
    jit, dispatch = count_model(model, inputs), _dispatch(model, inputs)
    assert jit.bytes_by_family == dispatch.bytes_by_family and jit.bytes_unread == {}
    # where the two see different ops they may differ: native_layer_norm also writes its mean
    # and rstd, a trace has fewer copies; the matmul family's bytes agree
    model, inputs = build("vit")
    jit, dispatch = count_model(model, inputs), _dispatch(model, inputs)
    assert jit.bytes_by_family["matmul"] == dispatch.bytes_by_family["matmul"]
