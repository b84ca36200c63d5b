"""A small CNN: conv + BatchNorm (affine and not) + ReLU, a strided conv, a transposed conv,
global average pooling and a linear classifier."""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Input ``(B, 3, H, W)`` with H, W divisible by 2; output ``(B, num_classes)``."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                                  nn.BatchNorm2d(2 * width, affine=False), nn.ReLU())
        self.up = nn.ConvTranspose2d(2 * width, width, kernel_size=2, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.down(self.stem(x)))
        return self.head(self.pool(x).flatten(1))
