"""PyTorch's own attention modules, whose eval-mode forward under ``torch.no_grad()`` takes a
fused fast path: ``nn.TransformerEncoderLayer`` (``aten::_transformer_encoder_layer_fwd``) and
``nn.MultiheadAttention`` self-attention (``aten::_native_multi_head_attention``), the way
torchvision's ViT calls it."""
from __future__ import annotations

import torch
from torch import nn


class EncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (batch first) on ``(B, L, d_model)``."""

    def __init__(self, d_model: int = 32, nhead: int = 4, dim_feedforward: int = 64,
                 activation: str = "gelu", norm_first: bool = False):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.1,
                                                activation=activation, batch_first=True,
                                                norm_first=norm_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention(x, x, x)`` (batch first) on ``(B, L, embed_dim)``, as
    torchvision's ``EncoderBlock`` calls it. With ``need_weights`` it returns the output and
    the head-averaged attention weights ``(B, L, L)``."""

    def __init__(self, embed_dim: int = 32, num_heads: int = 4, need_weights: bool = False):
        super().__init__()
        self.need_weights = need_weights
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)

    def forward(self, x: torch.Tensor):
        out, weights = self.attn(x, x, x, need_weights=self.need_weights)
        return (out, weights) if self.need_weights else out
