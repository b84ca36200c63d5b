"""VMamba's VSS block with its SS2D mixer, ``forward_type="v05_noz"`` (MzeroMiko/VMamba
``vmamba.py``, ``forwardv2`` + ``forward_corev2`` with ``no_einsum=True``), channel-first as in
VMamba-T[s1l8]: in_proj and out_proj are 1x1 convolutions (``Linear2d``), a depthwise conv +
SiLU, ``CrossScan`` into K=4 directions folded into the channels, grouped 1-D convs for the
x and dt projections, one ``SelectiveScanCuda`` call with D and no z, ``CrossMerge``, a
channel-first LayerNorm (``ln2d``), then a GELU MLP."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import CrossMerge, CrossScan, SelectiveScanCuda


class LayerNorm2d(nn.LayerNorm):
    """VMamba's ``LayerNorm2d``: LayerNorm over the channels of ``(B, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SS2D(nn.Module):
    """Input and output ``(B, d_model, H, W)``."""

    K = 4

    def __init__(self, d_model: int, d_state: int = 1, ssm_ratio: float = 1.0, d_conv: int = 3):
        super().__init__()
        d_inner = int(ssm_ratio * d_model)
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = math.ceil(d_model / 16)
        K, R, N = self.K, self.dt_rank, d_state
        self.in_proj = nn.Conv2d(d_model, d_inner, 1)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=False)
        self.act = nn.SiLU()
        self.x_proj_weight = nn.Parameter(torch.randn(K, R + 2 * N, d_inner) * 0.02)
        self.dt_projs_weight = nn.Parameter(torch.randn(K, d_inner, R) * 0.02)
        self.dt_projs_bias = nn.Parameter(torch.zeros(K, d_inner))
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(K * d_inner, 1)
        self.A_logs = nn.Parameter(torch.log(A))
        self.Ds = nn.Parameter(torch.ones(K * d_inner))
        self.out_norm = LayerNorm2d(d_inner)
        self.out_proj = nn.Conv2d(d_inner, d_model, 1)

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        B, D, H, W = x.shape
        K, R, N, L = self.K, self.dt_rank, self.d_state, H * W
        xs = CrossScan.apply(x)
        x_dbl = F.conv1d(xs.view(B, -1, L), self.x_proj_weight.view(-1, D, 1), groups=K)
        dts, Bs, Cs = torch.split(x_dbl.view(B, K, -1, L), [R, N, N], dim=2)
        dts = F.conv1d(dts.contiguous().view(B, -1, L), self.dt_projs_weight.view(K * D, -1, 1),
                       groups=K)
        As = -self.A_logs.to(torch.float).exp()
        ys = SelectiveScanCuda.apply(
            xs.view(B, -1, L), dts.contiguous().view(B, -1, L), As,
            Bs.contiguous().view(B, K, N, L), Cs.contiguous().view(B, K, N, L),
            self.Ds.to(torch.float), self.dt_projs_bias.view(-1).to(torch.float), True, True,
            None).view(B, K, -1, H, W)
        y = CrossMerge.apply(ys)
        return self.out_norm(y.view(B, -1, H, W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv2d(self.in_proj(x)))
        return self.out_proj(self.forward_core(x))


class VSSBlock(nn.Module):
    """``x + SS2D(norm(x))``, ``x + MLP(norm(x))`` on ``(B, C, H, W)``."""

    def __init__(self, dim: int = 32, mlp_ratio: int = 4, **ssm_kwargs):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.op = SS2D(dim, **ssm_kwargs)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, mlp_ratio * dim, 1), nn.GELU(),
                                 nn.Conv2d(mlp_ratio * dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.op(self.norm(x))
        return x + self.mlp(self.norm2(x))


class VSSM(nn.Module):
    """VMamba's ``VSSM`` classifier, channel first, as ``vmamba_tiny_s1l8`` builds it (patch
    embedding v2, downsampling v3, ``ln2d`` norms, SS2D ``v05_noz``): input
    ``(B, 3, H, W)``, output ``(B, num_classes)``."""

    def __init__(self, depths=(2, 2, 8, 2), dims=96, num_classes=1000, d_state=1,
                 ssm_ratio=1.0, mlp_ratio=4):
        super().__init__()
        dims = [dims * 2 ** i for i in range(len(depths))]
        self.patch_embed = nn.Sequential(
            nn.Conv2d(3, dims[0] // 2, 3, stride=2, padding=1), LayerNorm2d(dims[0] // 2),
            nn.GELU(), nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1),
            LayerNorm2d(dims[0]))
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            blocks = [VSSBlock(dims[i], mlp_ratio=mlp_ratio, d_state=d_state,
                               ssm_ratio=ssm_ratio) for _ in range(depth)]
            if i + 1 < len(depths):
                blocks.append(nn.Sequential(
                    nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1),
                    LayerNorm2d(dims[i + 1])))
            self.layers.append(nn.Sequential(*blocks))
        self.norm = LayerNorm2d(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = F.adaptive_avg_pool2d(self.norm(x), 1).flatten(1)
        return self.head(x)
