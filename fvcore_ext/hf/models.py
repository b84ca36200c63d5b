"""``transformers`` models built from their default configs (random weights, nothing is
downloaded), as ``MODEL`` callables for the CLI: ``python -m fvcore_ext
fvcore_ext.hf_models:vit_base --input-shape 1 3 224 224 --input-name pixel_values``.

Each function returns an ``nn.Module``; ``ImportError`` if ``transformers`` is not installed.
"""
from __future__ import annotations

from torch import nn

__all__ = ["mamba_130m", "segformer_b0", "upernet_swin_tiny", "vit_base"]


def vit_base() -> nn.Module:
    """ViT-B/16 (``ViTModel(ViTConfig())``); input ``pixel_values`` ``(B, 3, 224, 224)``."""
    from transformers import ViTConfig, ViTModel

    return ViTModel(ViTConfig())


def segformer_b0() -> nn.Module:
    """SegFormer-B0 for ADE20K (150 classes); input ``pixel_values`` ``(B, 3, H, W)``."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    return SegformerForSemanticSegmentation(SegformerConfig(num_labels=150))


def upernet_swin_tiny() -> nn.Module:
    """UperNet with a Swin-T backbone for ADE20K (150 classes), no auxiliary head; input
    ``pixel_values`` ``(B, 3, H, W)``."""
    from transformers import SwinConfig, UperNetConfig, UperNetForSemanticSegmentation

    backbone = SwinConfig(out_features=["stage1", "stage2", "stage3", "stage4"])
    return UperNetForSemanticSegmentation(
        UperNetConfig(backbone_config=backbone, num_labels=150, use_auxiliary_head=False))


def mamba_130m() -> nn.Module:
    """Mamba-130m's shape (``MambaModel(MambaConfig(hidden_size=768, num_hidden_layers=24))``);
    input ``input_ids`` ``(B, L)`` of dtype long. Without mamba-ssm it runs transformers' pure
    PyTorch path."""
    from transformers import MambaConfig, MambaModel

    return MambaModel(MambaConfig(hidden_size=768, num_hidden_layers=24, vocab_size=50280))
