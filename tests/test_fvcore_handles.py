"""fvcore + the pack's handles on traced reference models: exact per-operator integers derived
by hand from ../shared/CONVENTIONS.md, under both presets, and the contract's invariants."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext import make_handles, paper_handles, vmamba_handles
from fvcore_ext.jit_reader import read_node
from fvcore_ext.op_table import OP_TABLE
from fvcore_ext.reference_models import REFERENCE_MODELS, build

from tests.helpers import fvcore_count


def counts(name, preset, grad=False):
    model, inputs = build(name)
    return fvcore_count(model, inputs, preset, grad)


def test_handle_dicts():
    assert set(vmamba_handles) == set(paper_handles) == set(OP_TABLE)
    for op in ("aten::mul", "aten::add", "aten::gelu", "aten::scaled_dot_product_attention",
               "aten::upsample_bicubic2d", "aten::_upsample_bilinear2d_aa",
               "prim::PythonOp.SelectiveScanFn", "prim::PythonOp.SelectiveScanCuda",
               "prim::PythonOp.MambaInnerFn", "prim::PythonOp.MambaInnerFnNoOutProj",
               "prim::PythonOp.CausalConv1dFn", "prim::PythonOp.CrossMerge"):
        assert op in vmamba_handles
    with pytest.raises(ValueError, match="unknown preset"):
        make_handles("fast")


# ---------------------------------------------------------------- CNN (fvcore's own rules)

def test_cnn():
    # (2, 3, 16, 16), width 8
    stem = 2 * (8 * 3 * 9) * 16 * 16            # conv 3->8 k3, output 16x16
    down = 2 * (16 * 8 * 9) * 8 * 8             # conv 8->16 k3 s2, output 8x8
    up = 2 * (16 * 8 * 2 * 2) * 8 * 8           # transposed conv: over the 8x8 input
    bn = 2 * (2 * 8 * 16 * 16) + 1 * (2 * 16 * 8 * 8)   # affine (eval) 2x, not affine 1x
    pool = 2 * 8 * 16 * 16                      # adaptive_avg_pool2d: input numel
    head = 2 * 8 * 10
    expected = {"conv": stem + down + up, "batch_norm": bn, "adaptive_avg_pool2d": pool,
                "linear": head}
    for preset in ("full", "paper"):
        assert counts("cnn", preset) == (sum(expected.values()), expected)


def test_cnn_in_train_mode_uses_training_batch_norm():
    model, inputs = build("cnn")
    model.train()
    total, ops = fvcore_count(model, inputs, "full")
    assert ops["batch_norm"] == 5 * (2 * 8 * 16 * 16) + 4 * (2 * 16 * 8 * 8)


# ---------------------------------------------------------------- ViT and its twins

B, T, C, HEADS, HD, MLP = 2, 17, 64, 4, 16, 256     # the reference ViT: 16 patches + cls
TOKENS = B * T * C
SCORES = B * HEADS * T * T


def vit_expected(kv_heads=HEADS, float_mask=False):
    """Per-operator MACs of the reference ViT (SDPA version) under full and paper."""
    qkv = TOKENS * (HEADS + 2 * kv_heads) * HD
    sdpa_core = SCORES * (HD + HD)
    sdpa_elementwise = 2 * SCORES + (SCORES if float_mask else 0)
    core = {
        "conv": B * (C * 3 * 8 * 8) * 16,
        "linear": 2 * (qkv + TOKENS * C + TOKENS * MLP + B * T * MLP * C) + B * C * 10,
        "scaled_dot_product_attention": 2 * sdpa_core,
        "layer_norm": 5 * TOKENS * 5,               # 2 per block + final
    }
    full = dict(core)
    full["scaled_dot_product_attention"] += 2 * sdpa_elementwise
    full["add"] = TOKENS + 2 * 2 * TOKENS           # pos embed + 2 residuals per block
    full["gelu"] = 2 * B * T * MLP
    return full, core


@pytest.mark.parametrize("variant, kwargs", [
    ("vit", {}), ("vit_gqa", {"kv_heads": 2}), ("vit_causal", {}),
    ("vit_float_mask", {"float_mask": True}), ("vit_bool_mask", {})])
def test_vit_sdpa_variants(variant, kwargs):
    full, paper = vit_expected(**kwargs)
    assert counts(variant, "full") == (sum(full.values()), full)
    assert counts(variant, "paper") == (sum(paper.values()), paper)


def test_vit_explicit_twin_counts_its_ops():
    full_total, ops = counts("vit_explicit", "full")
    assert ops["matmul"] == 2 * SCORES * (HD + HD)
    assert ops["mul"] == 2 * SCORES                 # (q @ kᵀ) * scale
    assert ops["softmax"] == 2 * SCORES
    assert full_total == sum(vit_expected()[0].values())


@pytest.mark.parametrize("variant", ["vit", "vit_gqa", "vit_causal", "vit_float_mask",
                                     "vit_bool_mask"])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_sdpa_equals_explicit_twin(variant, preset):
    assert counts(variant, preset)[0] == counts(variant + "_explicit", preset)[0]


# ---------------------------------------------------------------- Swin stage

def test_swin_stage():
    # (1, 3, 32, 32): patch 4 -> 8x8 tokens of 32 channels, 4 windows of 16 tokens, 2 heads
    L, Cs, N, nW, H = 64, 32, 16, 4, 2
    scores = nW * H * N * N
    block_linear = L * Cs * 3 * Cs + L * Cs * Cs + L * Cs * 4 * Cs + L * 4 * Cs * Cs
    core = {
        "conv": 1 * (Cs * 3 * 16) * L,
        "layer_norm": 5 * L * Cs * (1 + 2 * 2) + 5 * 16 * 4 * Cs,   # patch norm, blocks, merging
        "linear": 2 * block_linear + 16 * 4 * Cs * 2 * Cs,
        "scaled_dot_product_attention": 2 * scores * (Cs // H) * 2,
    }
    full = dict(core)
    # relative position bias is a float mask: scale + softmax + mask add per block
    full["scaled_dot_product_attention"] += 2 * 3 * scores
    full["add"] = scores + 2 * 2 * L * Cs          # shift mask + bias, two residuals per block
    full["gelu"] = 2 * L * 4 * Cs
    assert counts("swin_stage", "full") == (sum(full.values()), full)
    assert counts("swin_stage", "paper") == (sum(core.values()), core)


# ---------------------------------------------------------------- upsampling

def test_unet_decoder_every_interpolate_mode():
    plane = 8 * 16 * 16                          # every 2-D/3-D resampled output: 2048 elements
    core = {
        "conv": (4 * 3 * 9) * 256 + (8 * 4 * 9) * 64 + (8 * 8 * 9) * 16 + 4 * 104 * 256
                + 3 * 4 * 256,
        "upsample_nearest2d": plane + 4 * 16 * 16,   # + the area branch brought back up
        "upsample_bilinear2d": 4 * plane,
        "upsample_bicubic2d": 16 * plane,
        "_upsample_nearest_exact2d": plane,
        "_upsample_bilinear2d_aa": 4 * plane,
        "_upsample_bicubic2d_aa": 16 * plane,
        "upsample_linear1d": 2 * plane,
        "upsample_nearest1d": 2 * plane,            # scale 4, and the area branch brought back
        "_upsample_nearest_exact1d": plane,
        "upsample_trilinear3d": 8 * plane,
        "upsample_nearest3d": plane,
        "_upsample_nearest_exact3d": plane,
        "adaptive_avg_pool2d": 4 * 16 * 16,          # area mode, fvcore's rule: input numel
    }
    full = dict(core, adaptive_avg_pool1d=8 * 64, add=4 * 16 * 16)
    assert counts("unet_decoder", "full") == (sum(full.values()), full)
    assert counts("unet_decoder", "paper") == (sum(core.values()), core)


class Resize(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return F.interpolate(x, **self.kwargs)


def test_contract_example_bilinear_2000_images():
    x = torch.randn(2000, 3, 10, 10)
    for preset in ("full", "paper"):
        total, ops = fvcore_count(Resize(scale_factor=2, mode="bilinear"), x, preset)
        assert total == 9_600_000 and type(total) is int


@pytest.mark.parametrize("shape, mode, size, scale", [
    ((1, 2, 7), "linear", 21, 3),
    ((1, 2, 7), "nearest", 14, 2.0),
    ((1, 2, 5, 6), "bicubic", (10, 18), (2, 3)),
    ((1, 2, 5, 6), "nearest-exact", (15, 12), (3.0, 2.0)),
    ((1, 2, 5, 6), "bilinear", (20, 24), 4),
    ((1, 2, 3, 4, 5), "trilinear", (6, 8, 10), 2),
    ((1, 2, 3, 4, 5), "nearest", (3, 8, 15), (1, 2, 3)),
])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_interpolate_size_equals_scale_factor(shape, mode, size, scale, preset):
    x = torch.randn(shape)
    by_size = fvcore_count(Resize(size=size, mode=mode), x, preset)
    by_scale = fvcore_count(Resize(scale_factor=scale, mode=mode), x, preset)
    assert by_size == by_scale
    assert by_size[0] > 0


# ---------------------------------------------------------------- PyTorch's fused attention

MHA_PROJ = 2 * 10 * 32 * 96 + 2 * 10 * 32 * 32     # in-projection + out-projection
MHA_ATTN = 2 * 2 * 10 * 10 * 32                    # q @ kᵀ and attn @ v
MHA_SCORES = 2 * 4 * 10 * 10


@pytest.mark.parametrize("name, elementwise", [
    ("mha", 2 * MHA_SCORES),                                   # SDPA: scale + softmax
    ("mha_weights", 2 * 10 * 32 + MHA_SCORES + MHA_SCORES),    # q scale, softmax, head mean
])
def test_native_mha_under_no_grad_equals_grad(name, elementwise):
    for preset, expected in (("full", MHA_PROJ + MHA_ATTN + elementwise),
                             ("paper", MHA_PROJ + MHA_ATTN)):
        fused_total, fused_ops = counts(name, preset, grad=False)
        assert fused_ops == {"_native_multi_head_attention": expected}
        assert counts(name, preset, grad=True)[0] == fused_total == expected


def test_transformer_encoder_layer_under_no_grad_equals_grad():
    # (2, 10, 32), 4 heads, feed-forward 64, GELU, post-norm
    tokens = 2 * 10 * 32
    core = MHA_PROJ + MHA_ATTN + 2 * 5 * tokens + 2 * tokens * 64
    elementwise = 2 * MHA_SCORES + 2 * 10 * 64 + 2 * tokens
    for preset, expected in (("full", core + elementwise), ("paper", core)):
        assert counts("transformer_encoder_layer", preset, grad=False)[0] == expected
        assert counts("transformer_encoder_layer", preset, grad=True)[0] == expected


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_transformer_encoder_layer_fused_kernel(preset):
    # fvcore's scope hooks keep nn.TransformerEncoderLayer off its fast path (it refuses
    # modules with hooks); a plain trace takes it, as torchprofile's does.
    model, (x,) = build("transformer_encoder_layer")
    with torch.no_grad():
        graph, _ = torch.jit._get_trace_graph(model, (x,))
    calls = [read_node(n) for n in graph.nodes()]
    assert [c.kind for c in calls if "transformer_encoder" in c.kind] == \
        ["aten::_transformer_encoder_layer_fwd"]
    total = sum(OP_TABLE[c.kind].read(c).macs(preset) for c in calls if c.kind in OP_TABLE)
    assert total == counts("transformer_encoder_layer", preset, grad=True)[0]


# ---------------------------------------------------------------- Mamba, Vim, VMamba

Bm, Lm, Dm, Nm, Rm, Wm, DMODEL = 2, 16, 64, 16, 2, 4, 32   # reference Mamba: d_model 32


def mamba_layer_terms():
    return dict(
        in_proj=2 * Dm * DMODEL * Bm * Lm, conv=Bm * Dm * Lm * Wm, silu=Bm * Dm * Lm,
        x_proj=Bm * Lm * Dm * (Rm + 2 * Nm), dt_proj=Bm * Lm * Dm * Rm,
        scan=9 * Bm * Lm * Dm * Nm + Bm * Dm * Lm + Bm * Dm * Lm,
        out_proj=Bm * Lm * Dm * DMODEL, A=Dm * Nm)


def test_mamba_fast_path():
    t = mamba_layer_terms()
    fused = t["conv"] + t["x_proj"] + t["dt_proj"] + t["scan"] + t["out_proj"]
    norms = 3 * 5 * Bm * Lm * DMODEL
    core = {"PythonOp.MambaInnerFn": 2 * fused, "matmul": 2 * t["in_proj"], "layer_norm": norms}
    full = dict(core, **{"PythonOp.MambaInnerFn": 2 * (fused + t["silu"]),
                         "exp": 2 * t["A"], "neg": 2 * t["A"], "add": 2 * Bm * Lm * DMODEL})
    assert counts("mamba", "full") == (sum(full.values()), full)
    assert counts("mamba", "paper") == (sum(core.values()), core)


def test_mamba_slow_path():
    t = mamba_layer_terms()
    full = {
        "PythonOp.CausalConv1dFn": 2 * (t["conv"] + t["silu"]),
        "PythonOp.SelectiveScanFn": 2 * t["scan"],
        "linear": 2 * (t["x_proj"] + t["out_proj"]),
        "matmul": 2 * (t["in_proj"] + t["dt_proj"]),
        "layer_norm": 3 * 5 * Bm * Lm * DMODEL,
        "exp": 2 * t["A"], "neg": 2 * t["A"], "add": 2 * Bm * Lm * DMODEL,
    }
    assert counts("mamba_slow", "full") == (sum(full.values()), full)


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_mamba_fast_path_equals_slow_path(preset):
    assert counts("mamba", preset)[0] == counts("mamba_slow", preset)[0]


def test_mamba_without_causal_conv1d_counts_the_padded_conv():
    t = mamba_layer_terms()
    padded_conv = Bm * Dm * Wm * (Lm + Wm - 1)       # nn.Conv1d(padding=W-1), then sliced
    assert counts("mamba_conv1d", "full")[0] == \
        counts("mamba_slow", "full")[0] + 2 * (padded_conv - t["conv"])
    assert counts("mamba_conv1d", "full")[1]["silu"] == 2 * t["silu"]


def test_vim_bidirectional_block():
    t = mamba_layer_terms()
    per_direction = t["conv"] + t["x_proj"] + t["dt_proj"] + t["scan"]
    core = {"PythonOp.MambaInnerFnNoOutProj": 2 * per_direction, "matmul": t["in_proj"],
            "linear": t["out_proj"], "layer_norm": 5 * Bm * Lm * DMODEL}
    full = dict(core, **{"PythonOp.MambaInnerFnNoOutProj": 2 * (per_direction + t["silu"]),
                         "exp": 2 * t["A"], "neg": 2 * t["A"],
                         "add": Bm * Dm * Lm + Bm * Lm * DMODEL,   # out + out_b, residual
                         "div": Bm * Lm * Dm})                      # / 2
    assert counts("vim_block", "full") == (sum(full.values()), full)
    assert counts("vim_block", "paper") == (sum(core.values()), core)


def test_vmamba_ss2d_block():
    # (2, 32, 8, 8): d_inner 32, d_state 1, dt_rank 2, K = 4 directions, L = 64
    b, d, L, K, N, R = 2, 32, 64, 4, 1, 2
    core = {
        "conv": (b * d * d * L) * 2                 # in_proj, out_proj (1x1)
                + b * d * 9 * L                     # depthwise 3x3
                + b * (K * (R + 2 * N) * d) * L     # x_proj, grouped conv1d
                + b * (K * d * R) * L               # dt_projs, grouped conv1d
                + 2 * b * (4 * d * d) * L,          # MLP
        "PythonOp.SelectiveScanCuda": 9 * b * L * (K * d) * N + b * (K * d) * L,   # with D
        "layer_norm": 3 * 5 * b * d * L,
    }
    full = dict(core, **{
        "PythonOp.CrossMerge": (K - 1) * b * d * L,
        "silu": b * d * L, "gelu": b * 4 * d * L, "exp": K * d * N, "neg": K * d * N,
        "add": 2 * b * d * L})
    assert counts("vmamba_block", "full") == (sum(full.values()), full)
    assert counts("vmamba_block", "paper") == (sum(core.values()), core)


def test_every_reference_model_is_fully_counted():
    for name in REFERENCE_MODELS:
        for preset in ("full", "paper"):
            counts(name, preset)   # fvcore_count asserts no unsupported op
