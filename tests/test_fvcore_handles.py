"""fvcore + the pack's handles on traced reference models: exact per-operator integers derived
by hand from docs/conventions.md, under both presets, and the contract's invariants."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext import make_handles, paper_handles, vmamba_handles
from fvcore_ext.engines.jit.reader import read_node
from fvcore_ext.ops import FVCORE_IGNORED_OPS, OP_TABLE
from fvcore_ext.reference_models import build

from tests.expected import EXPECTED
from tests.helpers import fvcore_count


def counts(name, preset, grad=False):
    model, inputs = build(name)
    return fvcore_count(model, inputs, preset, grad)


def test_handle_dicts():
    # fvcore skips its own ignored ops when they have no handle; the one it ignores but the
    # contract counts (aten::floor, elementwise) gets a handle, which fvcore prefers
    ignored_at_zero = set(FVCORE_IGNORED_OPS) - {"aten::floor"}
    assert set(vmamba_handles) == set(paper_handles) == set(OP_TABLE) - ignored_at_zero
    assert "aten::floor" in vmamba_handles
    for op in ("aten::mul", "aten::add", "aten::gelu", "aten::scaled_dot_product_attention",
               "aten::upsample_bicubic2d", "aten::_upsample_bilinear2d_aa",
               "prim::PythonOp.SelectiveScanFn", "prim::PythonOp.SelectiveScanCuda",
               "prim::PythonOp.MambaInnerFn", "prim::PythonOp.MambaInnerFnNoOutProj",
               "prim::PythonOp.CausalConv1dFn", "prim::PythonOp.CrossMerge"):
        assert op in vmamba_handles
    with pytest.raises(ValueError, match="unknown preset"):
        make_handles("fast")


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_reference_model_per_operator(name, preset):
    """Every reference model, traced with grad (PyTorch's attention slow paths), counts the
    hand-derived per-operator MACs of tests/expected.py."""
    expected = EXPECTED[name][preset]
    assert counts(name, preset, grad=True) == (sum(expected.values()), expected)


def test_cnn_in_train_mode_uses_training_batch_norm():
    model, inputs = build("cnn")
    model.train()
    total, ops = fvcore_count(model, inputs, "full")
    assert ops["batch_norm"] == 5 * (2 * 8 * 16 * 16) + 4 * (2 * 16 * 8 * 8)


@pytest.mark.parametrize("variant", ["vit", "vit_gqa", "vit_causal", "vit_float_mask",
                                     "vit_bool_mask"])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_sdpa_equals_explicit_twin(variant, preset):
    assert counts(variant, preset)[0] == counts(variant + "_explicit", preset)[0]


# ---------------------------------------------------------------- upsampling

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

@pytest.mark.parametrize("name", ["mha", "mha_weights", "transformer_encoder_layer"])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_fused_attention_under_no_grad_equals_grad(name, preset):
    fused_total, fused_ops = counts(name, preset, grad=False)
    assert "_native_multi_head_attention" in fused_ops        # the fast path was taken
    assert fused_total == sum(EXPECTED[name][preset].values()) == counts(name, preset, True)[0]


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
    assert total == sum(EXPECTED["transformer_encoder_layer"][preset].values())


# ---------------------------------------------------------------- Mamba

@pytest.mark.parametrize("preset", ["full", "paper"])
def test_mamba_fast_path_equals_slow_path(preset):
    assert counts("mamba", preset)[0] == counts("mamba_slow", preset)[0]


def test_vmamba_tiny_reproduces_the_published_numbers():
    # VMamba README: VMamba-T[s1l8], 224x224: 30M params, 4.9G "FLOPs" (fvcore's unit, MACs).
    model, inputs = build("vmamba_tiny")
    total, _ = fvcore_count(model, inputs, "paper")
    assert round(total / 1e9, 1) == 4.9
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 30


# ---------------------------------------------------------------- RMSNorm and its kin

class RMSNormAndKin(nn.Module):
    def __init__(self, elementwise_affine):
        super().__init__()
        self.norm = nn.RMSNorm((4, 6), elementwise_affine=elementwise_affine)

    def forward(self, x):
        return self.norm(x), x.square(), torch.cumsum(x, dim=1)


@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_square_and_cumsum(affine):
    x = torch.randn(3, 4, 6)                       # 72 elements; RMSNorm over (4, 6): 3 groups
    total, ops = fvcore_count(RMSNormAndKin(affine), x, "full")
    # pow, mean, normalising mul (+ weight mul) per element; add eps and rsqrt per group
    assert ops == {"rms_norm": (4 if affine else 3) * 72 + 2 * 3, "square": 72, "cumsum": 72}
    assert fvcore_count(RMSNormAndKin(affine), x, "paper") == (0, {})
