"""A model that imports a Mamba CUDA extension at import time, as Vim's and VMamba's model files
do: ``import selective_scan_cuda`` fails without the extension or fvcore_ext's stand-ins. The
CLI and get_flops tests count it with ``--standins``."""
import selective_scan_cuda  # noqa: F401  (what Vim's mamba-1p1p1 imports first)
import torch
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
from torch import nn

SCAN_STATES = 4


class TinyScanBackbone(nn.Module):
    """conv 3->8 stride 2 + BN, then one selective scan over the H/2·W/2 positions with A
    ``(8, 4)``, grouped B and C ``(1, 4, L)`` and D; returns ``[features]`` (mmseg's backbone
    layout)."""

    def __init__(self, channels=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        self.A_log = nn.Parameter(torch.zeros(channels, SCAN_STATES))
        self.D = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        x = self.stem(x)
        batch, channels, height, width = x.shape
        u = x.flatten(2)                                       # (B, D, L)
        bc = u[:, :SCAN_STATES]                                # (B, N, L)
        y = selective_scan_fn(u, u, -torch.exp(self.A_log), bc, bc, self.D)
        return [y.view(batch, channels, height, width)]


def build():
    """``TinyScanBackbone()`` for ``python -m fvcore_ext tests.scan_model:build``."""
    return TinyScanBackbone()
