"""``hf:`` specs (``fvcore_ext.hf``): exact counts derived by hand from the configs shipped in
``tests/hf_configs/`` (no network), counted on the meta device.

Counts are MACs. The formulas are those of ``../shared/CONVENTIONS.md``: a linear is
``rows · in · out`` (bias not counted); SDPA with q ``(B, Hq, L, E)`` and k/v of ``S`` tokens is
``B·Hq·L·S·(E + Ev)``, plus ``B·Hq·L·S`` for the scale and ``B·Hq·L·S`` for the softmax under
**full** (a causal or boolean mask costs 0); elementwise ops 1 per output element and
reductions 1 per input element under full, 0 under paper; grouped matmul (MoE experts)
``T · K · N`` over the routed rows.
"""
import json
import os

import pytest
import torch

from fvcore_ext.cli.hf_command import main
from fvcore_ext.hf import (HFSpecError, count_decode, count_hf, families, load_hf, parse_overrides,
                           pass_families, resolve_config, sweep_hf)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CONFIGS = os.path.join(os.path.dirname(__file__), "hf_configs")
LLAMA3_8B = os.path.join(CONFIGS, "llama3_8b")
MIXTRAL = os.path.join(CONFIGS, "mixtral_8x7b", "config.json")
VIT = os.path.join(CONFIGS, "vit_base")
WHISPER = os.path.join(CONFIGS, "whisper_tiny")
LLAVA = os.path.join(CONFIGS, "llava_tiny")

# ---------------------------------------------------------------- Llama-3-8B at 8192 tokens
# hidden H, FFN F, query heads Hq, KV heads Hkv, head dim E, layers N, norms (2 per layer + 1)
H, F, HQ, HKV, E, N = 4096, 14336, 32, 8, 128, 32
NORMS = 2 * N + 1
KV = HKV * E                                            # 1024: k and v projections' width


def llama_linear(tokens: int) -> int:
    # q and o: H -> H; k and v: H -> 1024 (GQA); gate, up: H -> F; down: F -> H
    return N * tokens * H * (2 * H + 2 * KV + 3 * F)


def llama_sdpa(queries: int, keys: int, full: bool) -> int:
    core = N * HQ * queries * keys * (E + E)
    return core + (N * 2 * HQ * queries * keys if full else 0)   # scale and softmax


def llama_elementwise(tokens: int, keys: int, decode: bool) -> int:
    """transformers' Llama under full, per op (tests measure them separately below)."""
    rope_q, rope_k = HQ * E, HKV * E
    return (
        # RMSNorm: x·x (pow), + eps, rsqrt, x · rsqrt, weight · x
        NORMS * tokens * H                              # pow
        + NORMS * tokens                                # + eps
        + NORMS * tokens                                # rsqrt
        + 2 * NORMS * tokens * H                        # the two muls
        # RoPE: q·cos + rotate_half(q)·sin (neg of half the dims, two muls, one add), same for k
        + N * tokens * 3 * (rope_q + rope_k) + N * tokens * (rope_q + rope_k) // 2
        # the rotary table, once: inv_freq (64) x positions outer product, cos, sin, and both
        # times attention_scaling
        + tokens * E // 2 + 2 * tokens * E + 2 * tokens * E
        + N * tokens * F * 2                            # silu(gate) and silu(gate) · up
        + N * 2 * tokens * H                            # two residual adds per layer
        + tokens                                        # position ids: arange + past length
        # traced, a decode step builds a boolean mask (cost 0) from index vectors: q index +
        # offset (1 token) and kv index + offset (all keys); a prefill takes SDPA's is_causal
        # and builds none. (Run eagerly, as the dispatch engine runs it, transformers skips
        # that mask: the dispatch step is 1 + keys MACs smaller.)
        + ((1 + keys) if decode else 0)
    )


def llama_reduction(tokens: int) -> int:
    return NORMS * tokens * H                           # RMSNorm's mean of x²


def test_llama3_8b_prefill_at_8192_tokens_exactly():
    L = 8192
    model = load_hf(LLAMA3_8B)
    paper = count_hf(model, seq_len=L, preset="paper")
    assert paper.by_operator == {"linear": llama_linear(L),
                                 "scaled_dot_product_attention": llama_sdpa(L, L, False)}
    assert paper.total_macs == 74_766_790_688_768
    full = count_hf(model, seq_len=L)
    assert families(full) == {"matmul": llama_linear(L), "attention": llama_sdpa(L, L, True),
                              "elementwise": llama_elementwise(L, L, False),
                              "reduction": llama_reduction(L)}
    assert full.total_macs == 74_927_320_883_200
    assert full.device == "meta" and full.inputs == [("input_ids", (1, L))]
    assert full.params == 7_504_924_672                # Llama-3-8B without its LM head


def test_llama3_8b_one_decode_step_at_8192_tokens_exactly():
    # one new token attends to the 8192 cached tokens and itself: S = 8193 keys
    L, S = 8192, 8193
    model = load_hf(LLAMA3_8B)
    paper = count_decode(model, seq_len=L, new_tokens=1, preset="paper")
    assert paper.step.by_operator == {"linear": llama_linear(1),
                                      "scaled_dot_product_attention": llama_sdpa(1, S, False)}
    assert paper.step.total_macs == 9_127_067_648
    cost = count_decode(model, seq_len=L, new_tokens=3)
    step = cost.step
    assert families(step) == {"matmul": llama_linear(1), "attention": llama_sdpa(1, S, True),
                              "elementwise": llama_elementwise(1, S, True),
                              "reduction": llama_reduction(1)}
    assert step.inputs[0] == ("input_ids", (1, 1))
    assert step.inputs[1][1] == (1, HKV, L, E)          # the cache, one layer's keys
    # each further cached token adds its attention (E + Ev, scale, softmax) and its mask index
    assert cost.per_cache_token == N * HQ * (2 * E + 2) + 1
    assert cost.exact
    assert cost.generate_macs == 3 * step.total_macs + 3 * cost.per_cache_token


def test_dispatch_engine_counts_the_same_prefill_and_decode_step():
    sets = {"num_hidden_layers": 1, "hidden_size": 128, "intermediate_size": 256,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000}
    model = load_hf("llama", sets)
    jit = count_hf(model, 64)
    dispatch = count_hf(model, 64, engine="dispatch")
    assert dispatch.engine == "dispatch" and dispatch.by_family == jit.by_family
    steps = [count_decode(model, 64, new_tokens=1, engine=e) for e in ("jit", "dispatch")]
    assert "dispatch engine" in steps[1].how and "cache wrapped" in steps[0].how
    fams = [s.step.by_family for s in steps]
    assert fams[0]["matmul"] == fams[1]["matmul"] and fams[0]["attention"] == fams[1]["attention"]
    # the traced step's mask index vectors (see llama_elementwise): 1 + 65 keys
    assert fams[0]["elementwise"] - fams[1]["elementwise"] == 1 + 65


def test_causal_lm_head_adds_the_logits():
    base = count_hf(LLAMA3_8B, seq_len=64, preset="paper")
    lm = count_hf(LLAMA3_8B, seq_len=64, preset="paper", head="causal-lm")
    assert lm.total_macs - base.total_macs == 64 * H * 128256


# ---------------------------------------------------------------- Mixtral: routed top-k experts
def test_mixtral_counts_the_routed_top_k_experts_not_all():
    L, k, experts = 1024, 2, 8
    report = count_hf(MIXTRAL, seq_len=L, preset="paper")
    attention = N * L * H * (2 * H + 2 * KV)
    router = N * L * H * experts
    # every token row meets only its k experts: (L·k) rows through gate+up (H -> 2F), down
    expert_mlp = N * (L * k) * (H * 2 * F + F * H)
    assert report.by_operator == {"linear": attention + router, "_grouped_mm": expert_mlp,
                                  "scaled_dot_product_attention": llama_sdpa(L, L, False)}
    all_experts = N * (L * experts) * 3 * H * F
    assert expert_mlp * experts // k == all_experts


# ---------------------------------------------------------------- ViT-B/16 at 224
def test_vit_base_exactly():
    P, T, D, FF, LAYERS, HEADS = 196, 197, 768, 3072, 12, 12   # patches, tokens (+ CLS)
    full = count_hf(VIT)
    paper = count_hf(VIT, preset="paper")
    conv = P * D * (3 * 16 * 16)                        # the 16x16 patch embedding
    linear = LAYERS * (4 * T * D * D + 2 * T * D * FF) + D * D   # + the pooler on CLS
    sdpa = LAYERS * HEADS * T * T * (64 + 64)
    norms = (2 * LAYERS + 1) * 5 * T * D               # LayerNorm with affine: 5 x numel,
    assert paper.by_operator == {"linear": linear, "conv": conv,   # in both presets
                                 "scaled_dot_product_attention": sdpa, "layer_norm": norms}
    assert full.inputs == [("pixel_values", (1, 3, 224, 224))]
    assert families(full) == {
        "matmul": linear, "convolution": conv,
        "attention": sdpa + LAYERS * 2 * HEADS * T * T,
        "normalization": norms,
        # gelu, two residual adds per layer; + position embeddings; pooler tanh
        "elementwise": LAYERS * (T * FF + 2 * T * D) + T * D + D,
    }


# ---------------------------------------------------------------- Whisper-tiny
def test_whisper_tiny_paper_exactly():
    T = 64                                              # decoder tokens
    D, FF, LAYERS, HEADS, FRAMES = 384, 1536, 4, 6, 3000
    S = FRAMES // 2                                     # 1500 encoder positions
    report = count_hf(WHISPER, seq_len=T, preset="paper")
    assert report.inputs == [("input_features", (1, 80, FRAMES)), ("decoder_input_ids", (1, T))]
    conv = FRAMES * D * 80 * 3 + S * D * D * 3          # conv1 (k3), conv2 (k3, stride 2)
    encoder = LAYERS * (4 * S * D * D + 2 * S * D * FF)
    decoder = LAYERS * (4 * T * D * D                   # self-attention
                        + 2 * T * D * D + 2 * S * D * D  # cross: q, o; k, v over the audio
                        + 2 * T * D * FF)
    sdpa = LAYERS * HEADS * 128 * (S * S + T * T + T * S)   # E + Ev = 64 + 64
    # LayerNorm (5 x numel, both presets): encoder 2 per layer + final, decoder 3 + final
    norms = 5 * D * ((2 * LAYERS + 1) * S + (3 * LAYERS + 1) * T)
    assert report.by_operator == {"linear": encoder + decoder, "conv": conv,
                                  "scaled_dot_product_attention": sdpa, "layer_norm": norms}


def test_whisper_decode_reuses_the_cross_attention_cache():
    T, D, LAYERS, HEADS, S, FF = 64, 384, 4, 6, 1500, 1536
    cost = count_decode(WHISPER, seq_len=T, new_tokens=1, preset="paper")
    # one token: self-attention q, k, v, o; cross-attention q, o only (k, v cached); the MLP
    linear = LAYERS * (4 * D * D + 2 * D * D + 2 * D * FF)
    sdpa = LAYERS * HEADS * 128 * ((T + 1) + S)
    norms = 5 * D * (3 * LAYERS + 1)
    assert cost.step.by_operator == {"linear": linear, "scaled_dot_product_attention": sdpa,
                                     "layer_norm": norms}


# ---------------------------------------------------------------- a vision–language model
def test_llava_places_its_image_tokens_and_counts_both_towers():
    L = 32
    report = count_hf(LLAVA, seq_len=L, preset="paper")
    patches, V, VF, VH = 16, 32, 64, 4                  # 56/14 squared; CLIP width, FFN, heads
    ids, pixels = report.inputs
    assert ids == ("input_ids", (1, L + patches)) and pixels == ("pixel_values", (1, 3, 56, 56))
    T = L + patches                                     # the language model's sequence
    vision_layers = 3                                   # LLaVA reads layer -2's output, but
    # CLIP runs its whole encoder (returning every hidden state), so all 3 layers count
    vision = vision_layers * (4 * (patches + 1) * V * V + 2 * (patches + 1) * V * VF)
    projector = patches * V * 64 + patches * 64 * 64
    text = 2 * T * 64 * (2 * 64 + 2 * 32 + 3 * 128)
    sdpa = vision_layers * VH * (patches + 1) ** 2 * 16 + 2 * 4 * T * T * 32
    # LayerNorm (5 x numel, both presets): CLIP's pre-norm and 2 per layer over 17 tokens;
    # the Llama text model's RMSNorms are elementwise ops and a mean (0 under paper)
    norms = 5 * (1 + 2 * vision_layers) * (patches + 1) * V
    assert report.by_operator == {"linear": vision + projector + text,
                                  "conv": patches * V * 3 * 14 * 14,
                                  "scaled_dot_product_attention": sdpa, "layer_norm": norms}


def test_llava_image_tokens_are_where_the_processor_puts_them():
    from fvcore_ext.hf.inputs import make_inputs

    model = load_hf(LLAVA, device="cpu")
    tensors, names, desc = make_inputs(model.model, model.config, seq_len=8)
    ids = tensors[names.index("input_ids")][0].tolist()
    assert desc["image_tokens"] == 16
    assert ids[1:17] == [500] * 16 and 500 not in ids[:1] + ids[17:]


# ---------------------------------------------------------------- specs, overrides, heads
def test_spec_kinds_resolve_to_the_same_config(tmp_path):
    by_dir, _ = resolve_config(LLAMA3_8B)
    by_file, _ = resolve_config(os.path.join(LLAMA3_8B, "config.json"))
    assert by_dir.to_dict() == by_file.to_dict()
    default, source = resolve_config("llama", {"num_hidden_layers": 2})
    assert default.num_hidden_layers == 2 and "model type" in source
    nested, _ = resolve_config(LLAVA, {"text_config.num_hidden_layers": 1,
                                       "vision_config.image_size": 112})
    assert nested.text_config.num_hidden_layers == 1 and nested.vision_config.image_size == 112


def test_overrides_parse_as_json():
    assert parse_overrides(["a=2", "b.c=1.5", "d=true", "e=null", "f=silu", "g=[1,2]"]) == \
        {"a": 2, "b.c": 1.5, "d": True, "e": None, "f": "silu", "g": [1, 2]}
    with pytest.raises(HFSpecError, match="key=value"):
        parse_overrides(["nonsense"])


@pytest.mark.parametrize("spec, overrides, head, message", [
    ("no_such_model_type_or_file", None, None, "not a config.json"),
    ("llama", {"no_such_key": 1}, None, "no attribute 'no_such_key'"),
    ("llama", None, "image-classification", "no image-classification class"),
    ("llama", None, "not-a-head", "unknown head"),
])
def test_bad_specs_get_one_line(spec, overrides, head, message):
    with pytest.raises(HFSpecError, match=message) as error:
        load_hf(spec, overrides, head)
    assert "\n" not in str(error.value)


def test_an_input_that_cannot_be_made_names_what_is_missing():
    from fvcore_ext.hf.inputs import InputSynthesisError, make_inputs

    class Odd(torch.nn.Module):
        main_input_name = "point_cloud"

        def forward(self, point_cloud):
            return point_cloud

    with pytest.raises(InputSynthesisError, match="'point_cloud'"):
        make_inputs(Odd(), type("C", (), {})())


def test_sweep_rows_and_layer_count_override():
    rows = sweep_hf("llama", [256, 512], overrides={"num_hidden_layers": 1,
                                                    "hidden_size": 256,
                                                    "intermediate_size": 512,
                                                    "num_attention_heads": 4,
                                                    "num_key_value_heads": 4,
                                                    "vocab_size": 1000})
    assert [r.seq_len for r in rows] == [256, 512]
    for row in rows:
        assert sum(row.by_family.values()) == row.prefill.total_macs
    # attention grows with L², the rest with L
    assert rows[1].by_family["attention"] == 4 * rows[0].by_family["attention"]
    assert rows[1].by_family["matmul"] == 2 * rows[0].by_family["matmul"]


# ---------------------------------------------------------------- the command line
def test_cli_table_with_decode(capsys):
    status = main(["hf:llama", "--set", "num_hidden_layers=1", "--set", "hidden_size=128",
                   "--set", "intermediate_size=256", "--set", "num_attention_heads=4",
                   "--set", "num_key_value_heads=2", "--set", "vocab_size=1000",
                   "--seq-len", "64,128", "--decode", "--new-tokens", "8"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Prefill" in out and "Decode" in out and "cache wrapped" in out
    assert "attention share" in out and "generate 8 tokens" in out


def test_cli_through_python_m(capsys):
    from fvcore_ext.cli.main import main as cli_main

    status = cli_main(["hf:" + VIT, "--preset", "paper", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["device"] == "meta"
    assert report["total_macs"] == count_hf(VIT, preset="paper").total_macs


def test_cli_bad_spec_exits_2(capsys):
    assert main(["hf:no_such_thing_at_all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from fvcore_ext.cli.hf_command import plot_sweep

    rows = sweep_hf("llama", [64, 128], overrides={"num_hidden_layers": 1,
                                                  "hidden_size": 64,
                                                  "intermediate_size": 128,
                                                  "num_attention_heads": 4,
                                                  "num_key_value_heads": 4,
                                                  "vocab_size": 100})
    path = tmp_path / "flops.png"
    plot_sweep(rows, str(path), title="tiny llama")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_the_census_feeds_models_with_the_package_input_synthesis():
    import importlib.util

    import fvcore_ext.hf.inputs

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "census_zoo.py")
    spec = importlib.util.spec_from_file_location("census_zoo", path)
    census_zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(census_zoo)
    assert census_zoo.hf_make_inputs is fvcore_ext.hf.inputs.make_inputs
    model = load_hf(LLAVA, device="cpu")
    tensors, names, desc = census_zoo.make_inputs(model.model, model.config, "llava")
    assert names == ["input_ids", "pixel_values"] and desc["image_tokens"] == 16
    assert desc["input_ids"]["shape"] == [1, census_zoo.SEQ + 16]


QWEN2_VL_TINY = {"text_config.hidden_size": 256, "text_config.num_attention_heads": 2,
                 "text_config.num_key_value_heads": 2, "text_config.intermediate_size": 512,
                 "text_config.num_hidden_layers": 1, "text_config.vocab_size": 512,
                 "vision_config.depth": 1, "vision_config.embed_dim": 64,
                 "vision_config.num_heads": 2, "vision_config.hidden_size": 256,
                 "image_token_id": 300, "video_token_id": 301, "vision_start_token_id": 302,
                 "vision_end_token_id": 303}


def test_qwen2_vl_gets_its_processor_inputs():
    # head_dim stays 128, so the default M-RoPE sections (16, 24, 24) still fit.
    # Qwen2-VL reads its image grid as Python numbers: on CPU.
    from fvcore_ext.hf.inputs import make_inputs

    model = load_hf("qwen2_vl", QWEN2_VL_TINY, device="cpu")
    tensors, names, desc = make_inputs(model.model, model.config, seq_len=16, image_size=56)
    inputs = dict(zip(names, tensors))
    # 56 x 56 at patch 14: a 4 x 4 grid of patches of 3·2·14·14 values (two frames);
    # 2 x 2 merging gives 4 image tokens, between vision_start and vision_end
    assert inputs["pixel_values"].shape == (16, 3 * 2 * 14 * 14)
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    ids = inputs["input_ids"][0].tolist()
    assert len(ids) == 16 + 4 + 2 and ids[1:7] == [302, 300, 300, 300, 300, 303]
    assert inputs["mm_token_type_ids"][0].tolist() == [int(i == 300) for i in ids]
    report = count_hf(model, seq_len=16, image_size=56, preset="paper")
    assert report.unsupported_ops == {} and report.total_macs > 0


def test_mllama_cross_attends_to_its_tiles():
    # Llama-3.2-Vision's default shape with 2 vision layers (1 global, features of layer 0)
    # and 2 text layers, the second one cross-attending; counted on meta
    overrides = {"vision_config.num_hidden_layers": 2, "vision_config.num_global_layers": 1,
                 "vision_config.intermediate_layers_indices": [0],
                 "vision_config.vision_output_dim": 2 * 1280,
                 "text_config.num_hidden_layers": 2, "text_config.cross_attention_layers": [1]}
    report = count_hf("mllama", seq_len=32, overrides=overrides, preset="paper")
    shapes = dict(report.inputs)
    assert shapes["input_ids"] == (1, 33)                 # the image token after bos
    assert shapes["pixel_values"] == (1, 1, 4, 3, 448, 448)  # one image, 4 tile slots
    assert shapes["cross_attention_mask"] == (1, 33, 1, 4)
    assert report.unsupported_ops == {} and report.uncounted == []
    # the vision tower runs every tile slot: (448 / 14)² = 1024 patches + CLS per tile
    assert report.by_operator["conv"] == 4 * 1024 * 1280 * 3 * 14 * 14


def test_llava_decode_step_attends_to_text_and_image_tokens():
    # the cache holds 32 text + 16 image tokens; the new token attends to them and itself
    cost = count_decode(LLAVA, seq_len=32, new_tokens=4, preset="paper")
    assert cost.step.by_operator == {"linear": 2 * 64 * (2 * 64 + 2 * 32 + 3 * 128),
                                     "scaled_dot_product_attention": 2 * 4 * (48 + 1) * 32}
    assert cost.per_cache_token == 2 * 4 * 32 and cost.exact


# ---------------------------------------------------------------- training (--backward)
# Megatron-LM (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU
# Clusters", eq. 3 without recomputation): a GPT step of B sequences of s tokens, l layers,
# hidden h, vocabulary V costs 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)) FLOPs in its matmuls:
# 24·B·s·h² per layer for the QKV, output and 4h MLP projections, 4·B·s²·h for the two
# attention matmuls, 2·B·s·h·V for the logits, each three times (forward, input gradient,
# weight gradient; the attention matmuls' two gradients). MACs are half.
from fractions import Fraction  # noqa: E402


def megatron_training_macs(B: int, s: int, l: int, h: int, V: int) -> int:
    flops = 72 * B * s * l * h * h * (1 + Fraction(s, 6 * h) + Fraction(V, 12 * l * h))
    assert flops.denominator == 1 and flops.numerator % 2 == 0
    return flops.numerator // 2


GPT2 = dict(h=768, V=50257)


@pytest.mark.parametrize("layers,batch,seq", [(2, 1, 1024), (12, 1, 1024), (2, 2, 512)])
def test_gpt2_training_matmul_and_attention_are_megatron_exactly(layers, batch, seq):
    # GPT-2's head is tied to the token embedding, which trains: the LM head's weight
    # gradient (s·h·V MACs) is computed, as in Megatron's 3 x 2·B·s·h·V. The embedding's
    # own backward (embedding_dense_backward, a scatter-add) is not a matmul: outside the form.
    report = count_hf("gpt2", seq, batch, overrides={"n_layer": layers}, head="causal-lm",
                      preset="paper", backward=True)
    fams = families(report)
    want = megatron_training_macs(batch, seq, layers, **GPT2)
    assert fams["matmul"] + fams["attention"] == want
    assert report.total_macs == report.forward_macs + report.backward_macs
    # the rest is the norms' forward and backward (counted in both presets)
    assert set(fams) == {"matmul", "attention", "normalization"}
    forward, backward = pass_families(report)
    assert backward["matmul"] == 2 * forward["matmul"]          # "6·N·D" at MAC resolution
    assert backward["attention"] == 2 * forward["attention"]
    assert forward["matmul"] + forward["attention"] == want // 3


def test_gpt2_small_command_line_prints_the_megatron_number(capsys):
    # `python -m fvcore_ext hf:gpt2 --head causal-lm --seq-len 1024 --backward --preset paper`
    # (GPT-2 small, l=12: 437,472,460,800 MACs = 874,944,921,600 FLOPs in matmul + attention)
    assert main(["hf:gpt2", "--head", "causal-lm", "--seq-len", "1024", "--backward",
                 "--preset", "paper", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = megatron_training_macs(1, 1024, 12, **GPT2)
    assert want == 437_472_460_800
    assert out["by_family"]["matmul"] + out["by_family"]["attention"] == want
    assert out["backward_by_family"]["matmul"] == 2 * out["forward_by_family"]["matmul"]
    assert out["forward_by_family"]["matmul"] + out["forward_by_family"]["attention"] == want // 3


def test_training_exceptions_frozen_tied_embedding_and_untied_head():
    L, layers, h, V = 256, 2, 768, 50257
    want = megatron_training_macs(1, L, layers, h, V)
    matmul = lambda r: families(r)["matmul"] + families(r)["attention"]  # noqa: E731
    # an untied head (its own weight) trains as the tied one: the same matmuls
    untied = load_hf("gpt2", {"n_layer": layers, "tie_word_embeddings": False}, "causal-lm")
    assert matmul(count_hf(untied, L, preset="paper", backward=True)) == want
    # a frozen embedding tied to the head freezes the head's weight: no weight gradient for
    # the logits' matmul, s·h·V MACs less
    tied = load_hf("gpt2", {"n_layer": layers}, "causal-lm")
    tied.model.get_input_embeddings().weight.requires_grad_(False)
    assert matmul(count_hf(tied, L, preset="paper", backward=True)) == want - L * h * V
    # frozen embeddings with an untied head: the matmuls are Megatron's (the embeddings'
    # gradient is no matmul); only the first layer norm's input gradient goes
    untied.model.get_input_embeddings().weight.requires_grad_(False)
    untied.model.transformer.wpe.weight.requires_grad_(False)
    assert matmul(count_hf(untied, L, preset="paper", backward=True)) == want


def test_training_sweep_has_one_row_per_length(capsys, tmp_path):
    lengths = [128, 256, 512]
    rows = sweep_hf("gpt2", lengths, overrides={"n_layer": 2}, head="causal-lm",
                    preset="paper", backward=True)
    assert [r.seq_len for r in rows] == lengths and all(r.training for r in rows)
    for r in rows:
        assert r.by_family["matmul"] + r.by_family["attention"] == \
            megatron_training_macs(1, r.seq_len, 2, **GPT2)
    plot = tmp_path / "train.png"
    argv = ["hf:gpt2", "--head", "causal-lm", "--seq-len", "128,256,512", "--backward",
            "--preset", "paper", "--set", "n_layer=2"]
    assert main(argv + ["--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["seq_len"] for r in out["rows"]] == lengths
    assert [r["total_macs"] for r in out["rows"]] == [r.prefill.total_macs for r in rows]
    assert all(r["forward_macs"] + r["backward_macs"] == r["total_macs"] for r in out["rows"])
    assert main(argv + ["--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "Training step (forward + backward)" in text and "backward MACs" in text
    assert plot.stat().st_size > 1000


def test_backward_refuses_the_jit_engine_and_decode(capsys):
    with pytest.raises(HFSpecError, match="dispatch"):
        count_hf("gpt2", 16, overrides={"n_layer": 1}, engine="jit", backward=True)
    for extra in (["--engine", "jit"], ["--decode"]):
        assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "16", "--backward"]
                    + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ")


# ---------------------------------------------------------------- every failure: one line, exit 2
def _one_line_exit_2(capsys, argv, *needles):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err
    return err


@pytest.mark.parametrize("text,needle", [("[1, 2]", "holds a JSON list, not a config"),
                                         ("null", "holds JSON null, not a config"),
                                         ('"llama"', "holds a JSON string"),
                                         ('{"model_type": ["llama"]}',
                                          'model_type is ["llama"], not a string')])
def test_a_config_that_is_no_json_object_is_one_line(capsys, tmp_path, text, needle):
    path = tmp_path / "config.json"
    path.write_text(text)
    _one_line_exit_2(capsys, [f"hf:{path}"], needle)
    _one_line_exit_2(capsys, [f"hf:{tmp_path}"], needle)
    with pytest.raises(HFSpecError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        count_hf(str(path))


@pytest.mark.parametrize("text", ["²", "1,²", "-4", "0", "1e3", "", "١٢"])
def test_seq_len_takes_ascii_positive_integers_only(capsys, text):
    _one_line_exit_2(capsys, ["hf:gpt2", "--seq-len", text], "bad --seq-len")


@pytest.mark.parametrize("target,needle", [
    ("missing/a.png", "does not exist"), ("a.xyz", "unknown extension 'xyz'"),
    ("noext", "no extension"), (".", "is a directory")])
def test_plot_target_refused_before_counting(capsys, monkeypatch, tmp_path, target, needle):
    from fvcore_ext.cli import hf_command
    monkeypatch.setattr(hf_command, "sweep_hf", lambda *a, **k: pytest.fail("counted"))
    path = str(tmp_path / target) if target != "." else str(tmp_path)
    _one_line_exit_2(capsys, ["hf:gpt2", "--seq-len", "8,16", "--plot", path], needle)
    assert not os.path.exists(str(tmp_path) + ".png")


def test_plot_to_a_read_only_folder_is_refused(capsys, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(str(folder), os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        _one_line_exit_2(capsys, ["hf:gpt2", "--seq-len", "8,16", "--plot",
                                  str(folder / "a.png")], "not writable")
    finally:
        folder.chmod(0o700)


def test_a_plot_that_fails_after_the_table_leaves_the_table(capsys, monkeypatch, tmp_path):
    from fvcore_ext.cli import hf_command

    def broken(rows, path, title=""):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hf_command, "plot_sweep", broken)
    assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8,16", "--plot",
                 str(tmp_path / "a.png")]) == 2
    out, err = capsys.readouterr()
    assert "Prefill:" in out and err.count("\n") == 1 and "No space left on device" in err


def test_a_model_that_prints_keeps_json_stdout_pure(capsys, monkeypatch):
    import transformers
    forward = transformers.GPT2Model.forward

    def chatty(self, *args, **kwargs):
        print("hello from forward")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(transformers.GPT2Model, "forward", chatty)
    assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["total_macs"] > 0 and "hello from forward" in err


def test_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch):
    from fvcore_ext.cli import hf_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hf_command, "count_hf", interrupted)
    assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8"]) == 130
    assert capsys.readouterr() == ("", "interrupted (Ctrl-C)\n")


def test_a_hub_id_not_cached_fails_fast_and_quietly_with_no_network(tmp_path):
    # no network in the test: huggingface_hub would retry for 30 s and warn; the id is looked
    # up in the (empty) cache only, unless --online or HF_HUB_OFFLINE=0
    import subprocess
    import sys
    import time
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hub"))
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fvcore_ext", "hf:nobody/not-a-cached-model"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "in the local cache; pass a local config.json" in done.stderr
    assert "--online" in done.stderr
    assert time.perf_counter() - t0 < 25


# ---------------------------------------------------------------- no global state changed
def _global_state():
    import logging
    loggers = {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    filters = {name: list(logger.filters)
               for name, logger in logging.Logger.manager.loggerDict.items()
               if isinstance(logger, logging.Logger) and logger.filters}
    return {"rng": torch.get_rng_state(), "dtype": torch.get_default_dtype(),
            "grad": torch.is_grad_enabled(), "root": logging.getLogger().level,
            "loggers": loggers, "filters": filters,
            "inference": torch.is_inference_mode_enabled(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "function modes": torch._C._len_torch_function_stack(),
            "dispatch modes": torch._C._len_torch_dispatch_stack(),
            "device": torch.get_default_device()}


def _same(before, after):
    assert torch.equal(before.pop("rng"), after.pop("rng")), "the RNG state changed"
    # loggers first made during the call start at NOTSET; one that existed keeps its level
    loggers, old = after.pop("loggers"), before.pop("loggers")
    assert {k: v for k, v in loggers.items() if k not in old and v} == {}
    assert {k: loggers[k] for k in old} == old
    assert after == before


@pytest.mark.parametrize("entry", ["load_hf", "load_hf_cpu", "count_hf", "count_hf_backward",
                                   "count_decode", "sweep_hf", "cli_hf", "cli_hf_backward",
                                   "cli_model", "cli_model_backward", "cli_hub_id",
                                   "cli_census", "count_law", "count_law_fallback",
                                   "cli_law", "hf_law"])
def test_no_entry_point_changes_global_state(capsys, entry):
    import logging

    from fvcore_ext.laws import count_law
    from tests.test_laws_symbolic import Attention, CountsTwiceWhenFake
    from fvcore_ext.cli.census import main as census_main
    from fvcore_ext.cli.main import main as cli
    small = {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 64}
    sets = [f"--set={k}={v}" for k, v in small.items()]
    calls = {
        "load_hf": lambda: load_hf("gpt2", small),
        "load_hf_cpu": lambda: load_hf("gpt2", small, device="cpu"),
        "count_hf": lambda: count_hf("gpt2", 8, overrides=small, device="cpu"),
        "count_hf_backward": lambda: count_hf("gpt2", 8, overrides=small, head="causal-lm",
                                              device="cpu", backward=True),
        "count_decode": lambda: count_decode("gpt2", 8, 3, overrides=small, device="cpu"),
        "sweep_hf": lambda: sweep_hf("gpt2", [8, 16], overrides=small, decode=True,
                                     new_tokens=2),
        "cli_hf": lambda: cli(["hf:gpt2", "--seq-len", "8,16", "--device", "cpu"] + sets),
        "cli_hf_backward": lambda: cli(["hf:gpt2", "--seq-len", "8", "--backward",
                                        "--head", "causal-lm"] + sets),
        "cli_model": lambda: cli(["cnn"]),
        "cli_model_backward": lambda: cli(["cnn", "--backward"]),
        "cli_hub_id": lambda: cli(["hf:nobody/not-a-cached-model"]),
        "cli_census": lambda: census_main(["cnn", "vit"]),
        # the symbolic route (a FakeTensorMode, a ShapeEnv, a log filter), and its fallback
        "count_law": lambda: count_law(lambda L: Attention(), (1, "L", 64), [8, 16, 24],
                                       variable="L", backward=True),
        "count_law_fallback": lambda: count_law(lambda L: CountsTwiceWhenFake(),
                                                (1, "L", 16), [8, 16, 24], variable="L"),
        "cli_law": lambda: cli(["vit", "--input-shape", "1", "3", "S", "S", "--sizes",
                                "S=32,48,64,80,96"]),
        "hf_law": lambda: cli(["hf:gpt2", "--seq-len", "8,16,24", "--law"] + sets),
    }
    torch.manual_seed(1234)
    logging.getLogger("transformers").setLevel(logging.INFO)
    logging.getLogger("huggingface_hub").setLevel(logging.DEBUG)
    try:
        before = _global_state()
        expected = torch.rand(3)
        torch.set_rng_state(before["rng"])
        calls[entry]()
        after = _global_state()
        _same(before, after)
        assert torch.equal(torch.rand(3), expected)   # the caller's stream goes on
    finally:
        logging.getLogger("transformers").setLevel(logging.NOTSET)
        logging.getLogger("huggingface_hub").setLevel(logging.NOTSET)
    capsys.readouterr()


@pytest.mark.parametrize("extra,bar", [([], True), (["--quiet"], False),
                                       (["--format", "json"], False)])
def test_sweep_progress_bar_per_length_only_on_a_terminal(capsys, monkeypatch, extra, bar):
    from tests.test_cli import TTY
    import sys
    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8,16,32"] + extra) == 0
    assert ("/3 " in tty.text and "counting (prefill)" in tty.text) == bar, tty.text
    assert ("building hf:gpt2" in tty.text) == bar
    shown = capsys.readouterr().out
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    assert main(["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8,16,32"] + extra) == 0
    assert capsys.readouterr().out == shown          # the bar changes nothing counted


@pytest.mark.parametrize("online,env,allowed", [(False, None, False), (False, "1", False),
                                                (False, "0", True), (True, "1", True),
                                                (True, None, True)])
def test_hub_ids_go_online_only_when_asked(monkeypatch, online, env, allowed):
    from transformers import PretrainedConfig
    seen = {}

    def get_config_dict(spec, **kwargs):
        seen.update(kwargs)
        return {"model_type": "gpt2", "n_layer": 1}, {}

    monkeypatch.setattr(PretrainedConfig, "get_config_dict", staticmethod(get_config_dict))
    if env is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", env)
    config, source = resolve_config("someone/some-model", online=online)
    assert seen["local_files_only"] is (not allowed)
    assert config.n_layer == 1 and source == "Hub config someone/some-model"


# ---------------------------------------------------------------- cost laws (--law)
# A 1-layer GPT-2, h = 64, 4 heads, V = 100, with its causal-LM head, preset paper:
#   matmul: per token qkv 3h², proj h², MLP 8h² (12·h²) and the LM head h·V: (12·h² + h·V)·L
#     = (49,152 + 6,400)·L = 55,552·L;
#   attention: q·kᵀ and attn·v, 4 heads · L² · (16 + 16) = 2·h·L² = 128·L² (dense: the causal
#     mask costs 0 and counts the full square; no scale or softmax under paper);
#   normalization (counted under both presets): ln_1, ln_2, ln_f, 5 MACs an element: 960·L.
# Megatron-LM's 12·l·h²·L + 2·l·h·L² + h·V·L with l = 1 is matmul + attention exactly.
GPT2_TINY = ["--set", "n_layer=1", "--set", "n_embd=64", "--set", "n_head=4",
             "--set", "vocab_size=100", "--set", "bos_token_id=0", "--set", "eos_token_id=0",
             "--head", "causal-lm", "--preset", "paper", "--format", "json", "--law",
             "--seq-len", "8,16,24,32,40,48"]
TINY_VIT = ["--set", "hidden_size=32", "--set", "num_hidden_layers=1",
            "--set", "num_attention_heads=2", "--set", "intermediate_size=64",
            "--set", "patch_size=16"]


def _law(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_gpt2_prefill_law_is_megatron_plus_the_norms(capsys):
    h, V, l = 64, 100, 1
    data = _law(capsys, "hf:gpt2", *GPT2_TINY)
    assert data["variable"] == "L" and data["law"]["exact"]
    laws = {f: law["coefficients"] for f, law in data["by_family"].items()}
    assert laws == {"matmul": [0, 12 * l * h * h + h * V], "attention": [0, 0, 2 * l * h],
                    "normalization": [0, 3 * 5 * h]}
    assert data["law"]["coefficients"] == [0, 12 * l * h * h + h * V + 960, 2 * l * h]
    # from one symbolic run at L = 48, checked by counts at 8 and 32; the fitted route agrees
    assert data["route"] == "symbolic" and data["law"]["conditions"] == ["L >= 2"]
    assert data["law"]["checked_on"] == [8, 32]
    counted = _law(capsys, "hf:gpt2", *GPT2_TINY, "--route", "counts")
    assert counted["route"] == "counts" and counted["law"]["fitted_on"] == [8, 16, 24]
    assert counted["law"]["coefficients"] == data["law"]["coefficients"]
    assert {f: law["coefficients"] for f, law in counted["by_family"].items()} == laws
    # the law predicts a length it never saw: 64 tokens, counted
    from fvcore_ext.cli.hf_command import hf_law
    report = hf_law("gpt2", [8, 16, 24, 32, 40], head="causal-lm", preset="paper",
                    overrides=parse_overrides(GPT2_TINY[1:10:2]))
    counted = count_hf("gpt2", 64, head="causal-lm", preset="paper",
                       overrides=parse_overrides(GPT2_TINY[1:10:2])).total_macs
    assert report.predict(64) == counted == 128 * 64 ** 2 + 56_512 * 64


def test_gpt2_decode_law_is_linear_in_the_cache_and_backward_is_three_forwards(capsys):
    data = _law(capsys, "hf:gpt2", *GPT2_TINY, "--decode")
    # one new token against a cache of L: the projections and head once (55,552), attention
    # over L + 1 keys, 2·h·(L + 1), the norms 960
    assert data["law"]["degree"] == 1
    assert data["law"]["coefficients"] == [55_552 + 128 + 960, 128]
    assert data["by_family"]["attention"]["coefficients"] == [128, 128]
    assert data["route"] == "counts" and "runs no decode step" in data["route_note"]
    data = _law(capsys, "hf:gpt2", *GPT2_TINY, "--backward")
    assert data["route"] == "symbolic"
    laws = {f: law["coefficients"] for f, law in data["by_family"].items()}
    # matmuls: forward, input gradient, weight gradient (the attention matmuls too)
    assert laws["matmul"] == [0, 3 * 55_552] and laws["attention"] == [0, 0, 3 * 128]


def test_vision_config_law_over_image_sizes(capsys, tmp_path):
    plot = tmp_path / "vit.png"
    status = main(["hf:vit", *TINY_VIT, "--image-size", "32,48,64,80,96,112", "--law",
                   "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert status == 0, err
    # hidden 32, 1 layer, 2 heads of 16, MLP 64, patch 16: P = S²/256 patches, N = P + 1
    # tokens; conv 24,576·P; matmul 8,192·N + the pooler 1,024; attention 68·N² (full: 64·N²
    # for the two matmuls, 4·N² scale and softmax); 3 LayerNorms 480·N
    assert "total          MACs(S) = 17/16,384·S⁴ + 4,193/32·S² + 9,956, degree 4 in S " \
           "(degree 2 in pixels)" in out
    assert "convolution    MACs(S) = 96·S²," in out
    assert "matmul         MACs(S) = 32·S² + 9,216," in out
    assert plot.stat().st_size > 10000
    counted = count_hf("vit", image_size=128, overrides={
        **parse_overrides([a for a in TINY_VIT if a != "--set"]), "image_size": 128})
    n = (128 // 16) ** 2 + 1
    assert counted.total_macs == 24_576 * (n - 1) + 8_192 * n + 1_024 + 68 * n * n \
        + 480 * n + 160 * n + 32 == 2_435_300


@pytest.mark.parametrize("argv, message", [
    (["hf:gpt2", "--seq-len", "8,16", "--law"], "--law needs a --seq-len list of 3 or more"),
    (["hf:gpt2", "--seq-len", "8,16,16,24", "--law"], "distinct"),
    (["hf:vit", "--image-size", "32,48,64"], "needs --law"),
    (["hf:gpt2", "--image-size", "32,48,64", "--law"], "has no image_size"),
    (["hf:vit", "--image-size", "32,48,64", "--law", "--decode"], "over the cache length"),
    (["hf:gpt2", "--seq-len", "8,16,24", "--law", "--decode", "--route", "symbolic"],
     "no symbolic law: the symbolic route runs no decode step"),
])
def test_law_errors_are_one_line(capsys, argv, message):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
