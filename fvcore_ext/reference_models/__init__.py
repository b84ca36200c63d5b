"""Reference models: small but faithful definitions shared by the CLI, the tests and the
cross-tool consistency suite.

``REFERENCE_MODELS`` maps a name to a :class:`ReferenceModel`; ``build(name)`` returns the
module (in eval mode) and its example inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Tuple

import torch
from torch import nn

from .cnn import SmallCNN
from .mamba import MambaStack
from .swin import SwinStage
from .transformer import EncoderLayer, SelfAttention
from .unet import UNetDecoder
from .vim import VimBlock
from .vit import SmallViT
from .vmamba import VSSM, VSSBlock

__all__ = ["REFERENCE_MODELS", "ReferenceModel", "build"]


@dataclass(frozen=True)
class ReferenceModel:
    """A named model: ``make()`` builds it, ``input_shape`` is its example input's shape."""

    name: str
    make: Callable[[], nn.Module]
    input_shape: Tuple[int, ...]
    description: str


def _vit(**kwargs) -> nn.Module:
    return SmallViT(img_size=32, patch=8, dim=64, depth=2, num_heads=4, **kwargs)


_MODELS = [
    ReferenceModel("cnn", SmallCNN, (2, 3, 16, 16),
                   "conv + BatchNorm (affine and not) + ReLU, strided and transposed convs"),
    ReferenceModel("vit", _vit, (2, 3, 32, 32), "ViT, 2 blocks, attention through SDPA"),
    ReferenceModel("vit_explicit", partial(_vit, explicit=True), (2, 3, 32, 32),
                   "the same ViT with explicit attention matmuls"),
    ReferenceModel("vit_gqa", partial(_vit, num_kv_heads=2), (2, 3, 32, 32),
                   "ViT with grouped-query attention (4 query, 2 key/value heads), SDPA"),
    ReferenceModel("vit_gqa_explicit", partial(_vit, num_kv_heads=2, explicit=True),
                   (2, 3, 32, 32), "the GQA ViT with explicit matmuls"),
    ReferenceModel("vit_causal", partial(_vit, mask="causal"), (2, 3, 32, 32),
                   "ViT with causal SDPA"),
    ReferenceModel("vit_causal_explicit", partial(_vit, mask="causal", explicit=True),
                   (2, 3, 32, 32), "causal ViT with explicit matmuls and masked_fill"),
    ReferenceModel("vit_float_mask", partial(_vit, mask="float"), (2, 3, 32, 32),
                   "ViT with an additive float attention mask, SDPA"),
    ReferenceModel("vit_float_mask_explicit", partial(_vit, mask="float", explicit=True),
                   (2, 3, 32, 32), "float-mask ViT with explicit matmuls"),
    ReferenceModel("vit_bool_mask", partial(_vit, mask="bool"), (2, 3, 32, 32),
                   "ViT with a boolean attention mask, SDPA"),
    ReferenceModel("vit_bool_mask_explicit", partial(_vit, mask="bool", explicit=True),
                   (2, 3, 32, 32), "boolean-mask ViT with explicit matmuls and masked_fill"),
    ReferenceModel("swin_stage", SwinStage, (1, 3, 32, 32),
                   "Swin stage: window attention (SDPA + relative bias), shifted windows, "
                   "patch merging"),
    ReferenceModel("unet_decoder", UNetDecoder, (1, 3, 16, 16),
                   "UNet-style decoder using every interpolate mode (1-D, 2-D, 3-D)"),
    ReferenceModel("transformer_encoder_layer", EncoderLayer, (2, 10, 32),
                   "nn.TransformerEncoderLayer (fused fast path under no_grad)"),
    ReferenceModel("mha", SelfAttention, (2, 10, 32),
                   "nn.MultiheadAttention self-attention, need_weights=False"),
    ReferenceModel("mha_weights", partial(SelfAttention, need_weights=True), (2, 10, 32),
                   "nn.MultiheadAttention self-attention, need_weights=True"),
    ReferenceModel("mamba", partial(MambaStack, d_model=32, depth=2, path="fast"), (2, 16, 32),
                   "2 Mamba blocks on the fast path (MambaInnerFn)"),
    ReferenceModel("mamba_slow", partial(MambaStack, d_model=32, depth=2, path="slow"),
                   (2, 16, 32), "the same on the slow path (CausalConv1dFn + SelectiveScanFn)"),
    ReferenceModel("mamba_conv1d", partial(MambaStack, d_model=32, depth=2, path="conv1d"),
                   (2, 16, 32), "the same without causal-conv1d (nn.Conv1d + SelectiveScanFn)"),
    ReferenceModel("vim_block", partial(VimBlock, d_model=32), (2, 16, 32),
                   "Vim bidirectional block: two MambaInnerFnNoOutProj calls"),
    ReferenceModel("vmamba_block", partial(VSSBlock, dim=32), (2, 32, 8, 8),
                   "VMamba VSS block, SS2D v05_noz: CrossScan, SelectiveScanCuda, CrossMerge"),
    ReferenceModel("vmamba_tiny", VSSM, (1, 3, 224, 224),
                   "VMamba-T[s1l8] classifier (published: 4.9 G, 30 M params)"),
]

REFERENCE_MODELS: Dict[str, ReferenceModel] = {m.name: m for m in _MODELS}


def build(name: str, seed: int = 0) -> Tuple[nn.Module, Tuple[torch.Tensor, ...]]:
    """Build reference model ``name`` in eval mode with deterministic weights, and its example
    inputs (a 1-tuple). ``KeyError`` naming the known models for an unknown name."""
    if name not in REFERENCE_MODELS:
        raise KeyError(f"unknown reference model {name!r}; known: {', '.join(REFERENCE_MODELS)}")
    spec = REFERENCE_MODELS[name]
    torch.manual_seed(seed)
    model = spec.make().eval()
    return model, (torch.randn(*spec.input_shape),)
