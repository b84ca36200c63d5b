"""Real third-party models from ``transformers`` (built from configs, nothing downloaded)."""
import pytest
import torch

import torchprofile_ext

from fvcore_ext import count_model
from fvcore_ext.hf.models import segformer_b0, upernet_swin_tiny, vit_base
from tests.hf_small import vit_tiny


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_vit_sdpa_equals_eager_attention(preset):
    x = torch.randn(1, 3, 32, 32)
    torch.manual_seed(0)
    sdpa = count_model(vit_tiny("sdpa"), [x], ["pixel_values"], preset)
    torch.manual_seed(0)
    eager = count_model(vit_tiny("eager"), [x], ["pixel_values"], preset)
    assert "scaled_dot_product_attention" in sdpa.by_operator
    assert "matmul" in eager.by_operator
    assert ("softmax" in eager.by_operator) == (preset == "full")
    assert sdpa.total_macs == eager.total_macs


@pytest.mark.parametrize("build, shape", [
    (vit_base, (1, 3, 224, 224)),
    (segformer_b0, (1, 3, 128, 128)),
    (upernet_swin_tiny, (1, 3, 128, 128)),
])
def test_no_unsupported_op_under_either_preset(build, shape):
    model = build()
    for preset in ("full", "paper"):
        report = count_model(model, [torch.randn(shape)], ["pixel_values"], preset)
        assert report.unsupported_ops == {}, report.unsupported_ops
        assert report.uncounted == []
        assert report.total_macs > 0


def test_vit_base_total():
    # ViT-B/16 at 224: 197 tokens, 12 layers of width 768 and MLP 3072, 12 heads of 64.
    report = count_model(vit_base(), [torch.randn(1, 3, 224, 224)], ["pixel_values"], "paper")
    T, C, M, L, H = 197, 768, 3072, 12, 12
    per_layer = T * C * 3 * C + T * C * C + 2 * T * C * M + H * T * T * 128 + 2 * 5 * T * C
    patch = (C * 3 * 16 * 16) * 196
    pooler = C * C
    assert report.total_macs == L * per_layer + patch + 5 * T * C + pooler


@pytest.mark.parametrize("build, shape", [
    (vit_base, (1, 3, 224, 224)),
    (segformer_b0, (1, 3, 128, 128)),
    (upernet_swin_tiny, (1, 3, 128, 128)),
])
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_fvcore_and_torchprofile_agree(build, shape, preset):
    model = build().eval()
    x = torch.randn(shape)
    fvcore = count_model(model, [x], preset=preset)
    with torch.no_grad():
        results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
    assert sum(results.values()) == fvcore.total_macs
    assert torchprofile_ext.macs_by_operator(results) == fvcore.by_operator
