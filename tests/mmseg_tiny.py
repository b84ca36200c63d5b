"""A tiny backbone registered in mmseg's MODELS, imported through a config's custom_imports
(VMamba registers its own with `import model` instead: tests/mmseg_imported.py)."""
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn


@MODELS.register_module()
class TinyAttentionBackbone(nn.Module):
    """conv 3->16 stride 2 + BN + ReLU, one-head self-attention (SDPA) with a residual,
    bilinear x2 upsampling; returns ``[features]``."""

    def __init__(self, channels=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False),
                                  nn.SyncBatchNorm(channels), nn.ReLU())

    def forward(self, x):
        x = self.stem(x)
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2).unsqueeze(1)
        tokens = tokens + F.scaled_dot_product_attention(tokens, tokens, tokens)
        x = tokens.squeeze(1).transpose(1, 2).reshape(B, C, H, W)
        return [F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)]
