"""A small ViT written two ways: attention through ``F.scaled_dot_product_attention`` and its
twin with explicit matmuls (``softmax((q @ kᵀ) * scale [+ mask]) @ v``), with options for
grouped-query attention, a causal mask, an additive float mask and a boolean mask. Layout
follows timm's ``VisionTransformer`` (pre-norm blocks, fused qkv, GELU MLP)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

MASKS = (None, "causal", "float", "bool")


class Attention(nn.Module):
    """Multi-head self-attention over ``(B, N, C)`` tokens.

    Args:
        explicit: write the attention out with matmuls instead of SDPA.
        num_kv_heads: fewer key/value heads than query heads (GQA); ``None`` for MHA.
        mask: one of ``MASKS``; "float" and "bool" masks are ``(N, N)`` buffers.
    """

    def __init__(self, dim: int, num_heads: int, tokens: int, explicit: bool = False,
                 num_kv_heads: Optional[int] = None, mask: Optional[str] = None):
        super().__init__()
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.num_kv_heads = num_kv_heads or num_heads
        self.scale = self.head_dim ** -0.5
        self.explicit, self.mask = explicit, mask
        self.qkv = nn.Linear(dim, (num_heads + 2 * self.num_kv_heads) * self.head_dim)
        self.proj = nn.Linear(dim, dim)
        generator = torch.Generator().manual_seed(0)
        if mask == "float":
            self.register_buffer("attn_mask", torch.randn(tokens, tokens, generator=generator))
        elif mask == "bool":
            keep = torch.rand(tokens, tokens, generator=generator) > 0.3
            self.register_buffer("attn_mask", keep | torch.eye(tokens, dtype=torch.bool))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, self.num_heads + 2 * self.num_kv_heads, self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(
            [self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=1)
        if self.explicit:
            x = self._explicit(q, k, v)
        else:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=self.attn_mask, is_causal=self.mask == "causal",
                enable_gqa=self.num_kv_heads != self.num_heads)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))

    def _explicit(self, q, k, v):
        if self.num_kv_heads != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
            v = v.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if self.mask == "float":
            attn = attn + self.attn_mask
        elif self.mask == "bool":
            attn = attn.masked_fill(~self.attn_mask, float("-inf"))
        elif self.mask == "causal":
            n, s = attn.shape[-2:]
            causal = torch.ones(n, s, dtype=torch.bool, device=attn.device).tril()
            attn = attn.masked_fill(~causal, float("-inf"))
        return attn.softmax(dim=-1) @ v


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, num_heads: int, tokens: int, mlp_ratio: int = 4, **attn_kwargs):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, tokens, **attn_kwargs)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """Input ``(B, 3, img, img)``; patch embedding, class token, learned positions, ``depth``
    blocks, final norm and a linear head on the class token."""

    def __init__(self, img_size: int = 32, patch: int = 8, dim: int = 64, depth: int = 2,
                 num_heads: int = 4, num_classes: int = 10, **attn_kwargs):
        super().__init__()
        tokens = (img_size // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, num_heads, tokens, **attn_kwargs)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])
