"""Small transformers models for the tests (built from configs, no download)."""
from transformers import ViTConfig, ViTModel

LAST = None


def vit_tiny(attn_implementation="sdpa"):
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=128)
    config._attn_implementation = attn_implementation
    return ViTModel(config)


def last():
    return LAST
