"""The worked examples of docs/laws.md ("Worked examples"), each law derived by hand from the
model's definition and compared exactly: transformers' ViT-B/16 over its image side, Swin-T
with its window fixed and scaled with the image, a Mamba block over its length, and GPT-2's
prefill and decode laws against the Megatron-LM form."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from fvcore_ext.laws import count_law

transformers = pytest.importorskip("transformers")


def vit_b16(S):
    # ViT-B/16 as transformers builds it (hidden 768, 12 layers of 12 heads, MLP 3,072,
    # patch 16), at image side S, without the pooler
    config = transformers.ViTConfig(image_size=S)
    model = transformers.ViTModel(config, add_pooling_layer=False).eval()
    return model, {"pixel_values": torch.zeros(1, 3, S, S)}


def test_vit_b16_law_by_hand():
    report = count_law(vit_b16, None, [224, 320, 384, 448, 512, 640], label="ViT-B/16")
    # ViTConfig is a strict dataclass: image_size must be an int, so there is no symbolic
    # run; the law is fitted to counts, and the report says why
    assert report.route == "counts" and "needs an int" in report.route_note
    # P = (S/16)² = S²/256 patches, N = P + 1 tokens, h = 768, 12 layers, 12 heads
    laws = {name: law.coefficients for name, law in report.by_family.items()}
    # convolution: the patch embedding, P · 768 · 3·16·16 = 589,824·P
    assert laws["convolution"] == (0, 0, Fraction(589_824, 256))              # 2,304·S²
    # matmul: 12 layers · 12·h² per token (q, k, v, out: 4h²; MLP 2·h·4h) = 84,934,656·N
    assert laws["matmul"] == (84_934_656, 0, Fraction(84_934_656, 256))        # + 331,776·S²
    # attention: 12 layers · (2·h (q·kᵀ, attn·v) + 2·heads (scale, softmax)) · N² = 18,720·N²
    # N² = S⁴/65,536 + S²/128 + 1
    assert laws["attention"] == (18_720, 0, Fraction(18_720, 128), 0, Fraction(18_720, 65_536))
    # normalization: 25 LayerNorms of N × 768, 5 MACs an element = 96,000·N
    assert laws["normalization"] == (96_000, 0, Fraction(96_000, 256))
    # elementwise: per layer 2 residual adds (2·768) and the GELU (1 an element of 3,072),
    # and the position add (768): 12·4,608 + 768 = 56,064·N
    assert laws["elementwise"] == (56_064, 0, Fraction(56_064, 256))
    assert str(report.law) == "MACs(S) = 585/2,048·S⁴ + 1,339,281/4·S² + 85,105,440"
    assert report.predict(224) == 17_604_193_824


def swin_t(S, window):
    config = transformers.SwinConfig(image_size=S, window_size=window)
    model = transformers.SwinModel(config, add_pooling_layer=False).eval()
    return model, {"pixel_values": torch.zeros(1, 3, S, S)}


def test_swin_t_window_fixed_is_linear_in_pixels_and_scaled_quadratic():
    # Swin-T (C = 96, depths 2, 2, 6, 2, heads 3, 6, 12, 24), paper preset. Stage i has
    # T_i = S²/4^(i+2) tokens of C_i = 96·2^i features.
    fixed = count_law(lambda S: swin_t(S, 7), None, [448, 672, 896, 1120, 1344, 1568, 1792],
                      preset="paper", label="window 7", square_name="pixels")
    scaled = count_law(lambda S: swin_t(S, S // 32), None, [448, 896, 1344, 1792, 2240, 2688],
                       preset="paper", label="window S/32", square_name="pixels")
    # matmul, either way: per block 12·C_i²·T_i, Σ_i depth_i·12·C_i²/4^(i+2) = 82,944, and the
    # patch merging linears 8·C_i²·T_(i+1), 3 × 1,152: 86,400·S²
    for report in (fixed, scaled):
        assert report.by_family["matmul"].coefficients == (0, 0, 86_400)
        assert report.by_family["convolution"].coefficients == (0, 0, 288)   # 4608·S²/16
    # attention (q·kᵀ and attn·v over w² keys a token): Σ_i depth_i·2·C_i·T_i·w²
    # = S²·w²·Σ_i depth_i·2·C_i/4^(i+2) = 57·w²·S²
    assert fixed.by_family["attention"].coefficients == (0, 0, 57 * 49)          # w = 7
    assert scaled.by_family["attention"].coefficients == (0, 0, 0, 0, Fraction(57, 1024))
    assert fixed.law.degree == 2 and scaled.law.degree == 4
    assert fixed.degree_text() == "degree 2 in S (degree 1 in pixels)"
    assert scaled.degree_text() == "degree 4 in S (degree 2 in pixels)"


def test_mamba_block_law_by_hand():
    from fvcore_ext.reference_models.mamba import Mamba
    # Mamba-130M's block: d_model 768, d_inner 1,536, d_state 16, conv width 4, dt_rank 48
    d, D, N, W, R = 768, 1536, 16, 4, 48
    per_token = (d * 2 * D          # in_proj
                 + D * W            # depthwise causal conv
                 + D * (R + 2 * N)  # x_proj
                 + R * D            # dt_proj
                 + 9 * D * N        # the selective scan (mamba-ssm's flop model)
                 + D + D            # its D skip and z gate
                 + D * d)           # out_proj
    for path in ("fast", "slow"):
        report = count_law(lambda L: Mamba(d_model=d, path=path), (1, "L", d),
                           [64, 128, 256, 512, 1024, 2048], variable="L", preset="paper")
        assert report.route == "symbolic", report.route_note
        assert report.law.coefficients == (0, per_token) == (0, 3_965_952)
        # the full preset adds the conv's SiLU (D a token) and A = -exp(A_log) once (2·D·N)
        full = count_law(lambda L: Mamba(d_model=d, path=path), (1, "L", d),
                         [64, 128, 256, 512, 1024, 2048], variable="L")
        assert full.law.coefficients == (2 * D * N, per_token + D)


def test_gpt2_prefill_and_decode_laws_are_megatron_lms():
    from fvcore_ext.cli.hf_command import hf_law
    l, h, heads, V = 12, 768, 12, 50257
    lengths = [128, 256, 384, 512, 640, 768]
    prefill = hf_law("gpt2", lengths, head="causal-lm", preset="paper")
    assert prefill.route == "symbolic", prefill.route_note
    # Megatron-LM: 12·l·h²·L + 2·l·h·L² + h·V·L MACs (the LM head's h·V·L included)
    assert prefill.by_family["matmul"].coefficients == (0, 12 * l * h * h + h * V)
    assert prefill.by_family["attention"].coefficients == (0, 0, 2 * l * h)
    # the 2·l + 1 LayerNorms, 5 MACs an element, are the rest
    assert prefill.law.coefficients == (0, 12 * l * h * h + h * V + 5 * h * (2 * l + 1),
                                        2 * l * h)
    decode = hf_law("gpt2", lengths, head="causal-lm", preset="paper", decode=True)
    assert decode.route == "counts"          # a decode step is counted at every length
    # one new token: every matmul once, attention over the L cached keys and itself
    assert decode.by_family["matmul"].coefficients == (12 * l * h * h + h * V,)
    assert decode.by_family["attention"].coefficients == (2 * l * h, 2 * l * h)
