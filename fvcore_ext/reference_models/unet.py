"""A UNet-style decoder that resamples with every ``F.interpolate`` mode: 1-D (nearest, linear,
nearest-exact, area), 2-D (nearest, bilinear, bicubic, nearest-exact, area, antialiased
bilinear and bicubic) and 3-D (nearest, trilinear, nearest-exact), by ``size=`` and by
``scale_factor=`` (scalar and tuple)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UNetDecoder(nn.Module):
    """Input ``(B, 3, H, W)``, H and W divisible by 4; output ``(B, classes, H, W)``. Branch
    channels: six 2-D resamplings of ``2·width`` each, the 1-D branch ``8·width``, the 3-D
    branch ``6·width``."""

    def __init__(self, width: int = 4, classes: int = 3):
        super().__init__()
        self.enc1 = nn.Conv2d(3, width, 3, padding=1)
        self.enc2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.enc3 = nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1)
        self.fuse = nn.Conv2d(26 * width, width, 1)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        H, W = f1.shape[-2:]
        ups = [
            F.interpolate(f2, scale_factor=2, mode="nearest"),
            F.interpolate(f2, size=(H, W), mode="bilinear", align_corners=False),
            F.interpolate(f3, scale_factor=(4, 4), mode="bicubic", align_corners=True),
            F.interpolate(f3, size=(H, W), mode="nearest-exact"),
            F.interpolate(f2, scale_factor=2.0, mode="bilinear", antialias=True),
            F.interpolate(f3, size=(H, W), mode="bicubic", antialias=True),
            self._sequence_branch(f2, H * W),
            self._volume_branch(f3, H, W),
        ]
        y = self.fuse(torch.cat(ups, dim=1))
        y = y + F.interpolate(F.interpolate(y, scale_factor=0.5, mode="area"), size=(H, W))
        return self.head(y)

    @staticmethod
    def _sequence_branch(f: torch.Tensor, length: int) -> torch.Tensor:
        # 1-D resampling of the flattened feature map.
        s = f.flatten(2)
        a = F.interpolate(s, size=length, mode="linear", align_corners=False)
        b = F.interpolate(s, scale_factor=4, mode="nearest")
        c = F.interpolate(s, scale_factor=(4.0,), mode="nearest-exact")
        d = F.interpolate(F.interpolate(s, size=length // 2, mode="area"), size=length)
        out = torch.cat([a, b, c, d], dim=1)
        return out.reshape(f.shape[0], 4 * f.shape[1], 2 * f.shape[2], 2 * f.shape[3])

    @staticmethod
    def _volume_branch(f: torch.Tensor, H: int, W: int) -> torch.Tensor:
        # 3-D resampling with the channels split into a depth axis of 2.
        v = f.reshape(f.shape[0], f.shape[1] // 2, 2, f.shape[2], f.shape[3])
        a = F.interpolate(v, scale_factor=(1, 4, 4), mode="trilinear")
        b = F.interpolate(v, size=(2, H, W), mode="nearest")
        c = F.interpolate(v, scale_factor=(1.0, 4.0, 4.0), mode="nearest-exact")
        return torch.cat([a, b, c], dim=1).flatten(1, 2)
