"""Tiny configurations of real transformers architectures, built from configs (no download):
decoder LLMs dense and MoE, encoders, encoder–decoders, vision, audio and state-space models.

``ZOO`` maps a name to an :class:`Arch`; ``arch.build()`` returns ``(model, inputs, names)``
ready for ``count_model(model, inputs, names)``. Sizes are the smallest that keep each
architecture's structure (several heads, grouped KV heads, at least two experts of which each
token takes two, two layers where layers alternate kinds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch

from fvcore_ext.runtime.standins import install_standin_kernels

# transformers binds mamba-ssm's kernels, or else its torch path, when one of its Mamba modules
# is first imported (integrations/hub_kernels.py, use_kernel_func_from_hub_with_fallback).
# Install the stand-ins before that, as tests/test_mamba2.py does, so the Mamba, Mamba2,
# FalconMamba, Jamba and Zamba2 models run mamba-ssm's own autograd Functions whatever order
# the test modules run in.
install_standin_kernels()

import transformers  # noqa: E402

VOCAB = 96
TOKENS = 12

DECODER = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
MOE = dict(DECODER, num_experts_per_tok=2)
ENCODER = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
               num_attention_heads=4, max_position_embeddings=64)
VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=48,
              num_hidden_layers=2, num_attention_heads=4)


@dataclass(frozen=True)
class Arch:
    """One architecture: ``model`` is the transformers class name, ``config`` its config class
    name and keyword arguments, ``inputs`` the model's keyword inputs as ``(shape, dtype)``
    (long inputs are token ids below ``VOCAB``), ``family`` the kind of model."""

    model: str
    config: str
    family: str
    kwargs: Dict = field(default_factory=dict)
    inputs: Dict[str, Tuple[Tuple[int, ...], torch.dtype]] = field(
        default_factory=lambda: {"input_ids": ((1, TOKENS), torch.long)})
    attributes: Dict = field(default_factory=dict)

    def build(self) -> Tuple[torch.nn.Module, List[torch.Tensor], List[str]]:
        """``(model, inputs, input names)``, seeded, so two builds give the same weights."""
        torch.manual_seed(0)
        config = getattr(transformers, self.config)(**self.kwargs)
        for name, value in self.attributes.items():
            setattr(config, name, value)
        model = getattr(transformers, self.model)(config)
        generator = torch.Generator().manual_seed(0)
        inputs = [torch.randint(0, VOCAB, shape, generator=generator) if dtype == torch.long
                  else torch.randn(shape, generator=generator, dtype=dtype)
                  for shape, dtype in self.inputs.values()]
        return model, inputs, list(self.inputs)


def text(**extra):
    return {"input_ids": ((1, TOKENS), torch.long), **extra}


SEQ2SEQ = text(decoder_input_ids=((1, 6), torch.long))
IMAGE = {"pixel_values": ((1, 3, 32, 32), torch.float32)}

ZOO: Dict[str, Arch] = {
    # ---- decoder LLMs, dense
    "llama": Arch("LlamaModel", "LlamaConfig", "decoder", DECODER),
    "mistral": Arch("MistralModel", "MistralConfig", "decoder", DECODER),
    "qwen2": Arch("Qwen2Model", "Qwen2Config", "decoder", DECODER),
    "qwen3": Arch("Qwen3Model", "Qwen3Config", "decoder", dict(DECODER, head_dim=8)),
    "gemma": Arch("GemmaModel", "GemmaConfig", "decoder", dict(DECODER, head_dim=8)),
    "gemma2": Arch("Gemma2Model", "Gemma2Config", "decoder", dict(DECODER, head_dim=8)),
    "phi3": Arch("Phi3Model", "Phi3Config", "decoder", dict(DECODER, pad_token_id=0)),
    "phi": Arch("PhiModel", "PhiConfig", "decoder", DECODER),
    "gpt2": Arch("GPT2Model", "GPT2Config", "decoder",
                 dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "gpt_neox": Arch("GPTNeoXModel", "GPTNeoXConfig", "decoder", ENCODER),
    "falcon": Arch("FalconModel", "FalconConfig", "decoder",
                   dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4)),
    "bloom": Arch("BloomModel", "BloomConfig", "decoder",
                  dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4)),
    "opt": Arch("OPTModel", "OPTConfig", "decoder",
                dict(vocab_size=VOCAB, hidden_size=32, ffn_dim=48, num_hidden_layers=2,
                     num_attention_heads=4, word_embed_proj_dim=32,
                     max_position_embeddings=64)),
    "starcoder2": Arch("Starcoder2Model", "Starcoder2Config", "decoder", DECODER),
    "olmo2": Arch("Olmo2Model", "Olmo2Config", "decoder", DECODER),
    "cohere": Arch("CohereModel", "CohereConfig", "decoder", DECODER),
    "qwen3_5": Arch("Qwen3_5Model", "Qwen3_5Config", "decoder",    # gated delta rule
                    dict(text_config=dict(DECODER, head_dim=8, model_type="qwen3_5_text",
                                          layer_types=["linear_attention", "full_attention"]),
                         vision_config=dict(depth=1, hidden_size=32, intermediate_size=48,
                                            num_heads=4, model_type="qwen3_5_vision"))),
    # ---- decoder LLMs, mixture of experts
    "mixtral": Arch("MixtralModel", "MixtralConfig", "moe", dict(MOE, num_local_experts=4)),
    "qwen2_moe": Arch("Qwen2MoeModel", "Qwen2MoeConfig", "moe",
                      dict(MOE, num_experts=4, moe_intermediate_size=16,
                           shared_expert_intermediate_size=24)),
    "qwen3_moe": Arch("Qwen3MoeModel", "Qwen3MoeConfig", "moe",
                      dict(MOE, num_experts=4, moe_intermediate_size=16, head_dim=8)),
    "olmoe": Arch("OlmoeModel", "OlmoeConfig", "moe", dict(MOE, num_experts=4)),
    "granitemoe": Arch("GraniteMoeModel", "GraniteMoeConfig", "moe",
                       dict(MOE, num_local_experts=4)),
    "deepseek_v3": Arch("DeepseekV3Model", "DeepseekV3Config", "moe",
                        dict(MOE, n_routed_experts=4, n_shared_experts=1,
                             moe_intermediate_size=16, first_k_dense_replace=1, n_group=2,
                             topk_group=1, kv_lora_rank=16, q_lora_rank=24,
                             qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8)),
    "gpt_oss": Arch("GptOssModel", "GptOssConfig", "moe",
                    dict(MOE, num_local_experts=4, head_dim=8, sliding_window=8)),
    "deepseek_v2": Arch("DeepseekV2Model", "DeepseekV2Config", "moe",     # complex RoPE
                        dict(MOE, n_routed_experts=4, n_shared_experts=1,
                             moe_intermediate_size=16, first_k_dense_replace=1, n_group=1,
                             topk_group=1, kv_lora_rank=16, q_lora_rank=24,
                             qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8)),
    "dbrx": Arch("DbrxModel", "DbrxConfig", "moe",
                 dict(d_model=32, n_heads=4, n_layers=2, max_seq_len=64, vocab_size=VOCAB,
                      attn_config=dict(kv_n_heads=2, clip_qkv=8.0, rope_theta=10000.0),
                      ffn_config=dict(ffn_hidden_size=48, moe_num_experts=4, moe_top_k=2))),
    # ---- encoders
    "bert": Arch("BertModel", "BertConfig", "encoder", ENCODER),
    "roberta": Arch("RobertaModel", "RobertaConfig", "encoder", ENCODER),
    "deberta_v2": Arch("DebertaV2Model", "DebertaV2Config", "encoder", ENCODER),
    "esm": Arch("EsmModel", "EsmConfig", "encoder",
                dict(ENCODER, position_embedding_type="rotary", pad_token_id=1)),
    "modernbert": Arch("ModernBertModel", "ModernBertConfig", "encoder",
                       dict(ENCODER, global_attn_every_n_layers=2, local_attention=8,
                            pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                            sep_token_id=2)),
    "longformer": Arch("LongformerModel", "LongformerConfig", "encoder",
                       dict(ENCODER, attention_window=4), text()),
    "funnel": Arch("FunnelModel", "FunnelConfig", "encoder",
                   dict(vocab_size=VOCAB, block_sizes=[1, 1], d_model=32, n_head=4,
                        d_head=8, d_inner=48)),
    "roformer": Arch("RoFormerModel", "RoFormerConfig", "encoder", ENCODER),
    "electra": Arch("ElectraModel", "ElectraConfig", "encoder", dict(ENCODER, embedding_size=32)),
    "albert": Arch("AlbertModel", "AlbertConfig", "encoder", dict(ENCODER, embedding_size=16)),
    "distilbert": Arch("DistilBertModel", "DistilBertConfig", "encoder",
                       dict(vocab_size=VOCAB, dim=32, hidden_dim=48, n_layers=2, n_heads=4)),
    "fnet": Arch("FNetModel", "FNetConfig", "encoder",                  # FFT token mixing
                 dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                      intermediate_size=48, max_position_embeddings=64)),
    "yoso": Arch("YosoModel", "YosoConfig", "encoder",             # YosoCumulation PythonOp
                 dict(ENCODER, max_position_embeddings=64)),
    "tapas": Arch("TapasModel", "TapasConfig", "encoder", ENCODER),  # scatter_reduce
    "convbert": Arch("ConvBertModel", "ConvBertConfig", "encoder", dict(ENCODER, embedding_size=32)),
    # ---- encoder–decoders
    "t5": Arch("T5Model", "T5Config", "seq2seq",
               dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4),
               SEQ2SEQ),
    "mt5": Arch("MT5Model", "MT5Config", "seq2seq",
                dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4),
                SEQ2SEQ),
    "longt5": Arch("LongT5Model", "LongT5Config", "seq2seq",
                   dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                        num_heads=4, local_radius=4), SEQ2SEQ),
    "bart": Arch("BartModel", "BartConfig", "seq2seq",
                 dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4,
                      encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64),
                 SEQ2SEQ),
    "pegasus": Arch("PegasusModel", "PegasusConfig", "seq2seq",
                    dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=4, decoder_attention_heads=4,
                         encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64),
                    SEQ2SEQ),
    # ---- vision
    "vit": Arch("ViTModel", "ViTConfig", "vision", VISION, IMAGE),
    "deit": Arch("DeiTModel", "DeiTConfig", "vision", VISION, IMAGE),
    "dinov2": Arch("Dinov2Model", "Dinov2Config", "vision", VISION, IMAGE),
    "swin": Arch("SwinModel", "SwinConfig", "vision",
                 dict(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2],
                      num_heads=[2, 4], window_size=4), IMAGE),
    "convnext": Arch("ConvNextModel", "ConvNextConfig", "vision",
                     dict(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2), IMAGE),
    "segformer": Arch("SegformerForSemanticSegmentation", "SegformerConfig", "vision",
                      dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                           hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                           patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
                           decoder_hidden_size=32, num_labels=4), IMAGE),
    "resnet": Arch("ResNetModel", "ResNetConfig", "vision",
                   dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]), IMAGE),
    "siglip": Arch("SiglipVisionModel", "SiglipVisionConfig", "vision",   # padding="valid"
                   VISION, IMAGE),
    "mobilevitv2": Arch("MobileViTV2Model", "MobileViTV2Config", "vision",  # fold / unfold
                        dict(image_size=64, width_multiplier=0.25),
                        {"pixel_values": ((1, 3, 64, 64), torch.float32)}),
    "owlvit": Arch("OwlViTModel", "OwlViTConfig", "vision",               # linalg_norm
                   dict(text_config=dict(ENCODER, model_type="owlvit_text_model"),
                        vision_config=dict(VISION, model_type="owlvit_vision_model"),
                        projection_dim=32),
                   dict(text(), **IMAGE)),
    # ---- audio
    "wav2vec2": Arch("Wav2Vec2Model", "Wav2Vec2Config", "audio",
                     dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=48, conv_dim=(16, 16), conv_stride=(5, 2),
                          conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                          num_conv_pos_embedding_groups=4),
                     {"input_values": ((1, 400), torch.float32)}),
    "whisper": Arch("WhisperModel", "WhisperConfig", "audio",
                    dict(vocab_size=VOCAB, num_mel_bins=16, d_model=32, encoder_layers=2,
                         decoder_layers=2, encoder_attention_heads=4,
                         decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48,
                         max_source_positions=16, max_target_positions=32, pad_token_id=0,
                         bos_token_id=1, eos_token_id=2, decoder_start_token_id=1),
                    {"input_features": ((1, 16, 32), torch.float32),
                     "decoder_input_ids": ((1, 4), torch.long)}),
    "parakeet_rnnt": Arch("ParakeetForRNNT", "ParakeetRNNTConfig", "audio",   # LSTM
                          dict(vocab_size=VOCAB, decoder_hidden_size=32,
                               encoder_config=dict(hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=48,
                                                   max_position_embeddings=64,
                                                   model_type="parakeet_encoder")),
                          {"input_features": ((1, 64, 80), torch.float32),
                           "decoder_input_ids": ((1, 6), torch.long)}),
    # ---- state-space and hybrids
    "mamba": Arch("MambaModel", "MambaConfig", "state-space",
                  dict(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2)),
    "mamba2": Arch("Mamba2Model", "Mamba2Config", "state-space",
                   dict(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2,
                        num_heads=8, head_dim=8, n_groups=1, chunk_size=8)),
    "falcon_mamba": Arch("FalconMambaModel", "FalconMambaConfig", "state-space",
                         dict(vocab_size=VOCAB, hidden_size=32, state_size=8,
                              num_hidden_layers=2)),
    "jamba": Arch("JambaModel", "JambaConfig", "state-space",
                  dict(MOE, num_experts=2, mamba_d_state=8, mamba_expand=2,
                       attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
                       expert_layer_offset=1, use_mamba_kernels=False)),
    "zamba2": Arch("Zamba2Model", "Zamba2Config", "state-space",
                   dict(DECODER, num_key_value_heads=4, mamba_d_state=8,
                        layers_block_type=["mamba", "hybrid"])),
}
