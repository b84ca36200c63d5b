"""mamba-ssm's ``Mamba`` block (``mamba_ssm/modules/mamba_simple.py``), with the same fast path
(``MambaInnerFn``) and slow paths (``CausalConv1dFn`` + linear + ``SelectiveScanFn`` + linear,
or ``nn.Conv1d`` when causal-conv1d is absent), calling the stand-in kernels of
:mod:`.kernels`."""
from __future__ import annotations

import math

import torch
from torch import nn

from .kernels import CausalConv1dFn, MambaInnerFn, SelectiveScanFn

PATHS = ("fast", "slow", "conv1d")


class Mamba(nn.Module):
    """Input and output ``(B, L, d_model)``. ``path`` is one of ``PATHS``: "fast"
    (``MambaInnerFn``), "slow" (``CausalConv1dFn`` + ``SelectiveScanFn``) or "conv1d"
    (``nn.Conv1d`` + ``SelectiveScanFn``, mamba-ssm without causal-conv1d)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 conv_bias: bool = True, bias: bool = False, path: str = "fast"):
        super().__init__()
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}")
        self.path, self.d_state = path, d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seqlen, dim = hidden_states.shape
        # mamba_simple: matmul and transpose BLH -> HBL at the same time.
        xz = self.in_proj.weight @ hidden_states.reshape(-1, dim).t()
        xz = xz.reshape(xz.shape[0], batch, seqlen).transpose(0, 1)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.unsqueeze(-1)
        A = -torch.exp(self.A_log.float())
        if self.path == "fast":
            return MambaInnerFn.apply(
                xz, self.conv1d.weight, self.conv1d.bias, self.x_proj.weight,
                self.dt_proj.weight, self.out_proj.weight, self.out_proj.bias, A, None, None,
                self.D.float(), self.dt_proj.bias.float(), None, None, True, 1, None, None,
                None, 1e-6)
        x, z = xz.chunk(2, dim=1)
        if self.path == "conv1d":
            x = self.act(self.conv1d(x)[..., :seqlen])
        else:
            x = CausalConv1dFn.apply(x, self.conv1d.weight.squeeze(1), self.conv1d.bias, None,
                                     None, False, None, "silu")
        x_dbl = self.x_proj(x.transpose(1, 2).reshape(-1, self.d_inner))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = self.dt_proj.weight @ dt.t()
        dt = dt.reshape(self.d_inner, batch, seqlen).transpose(0, 1)
        B = B.reshape(batch, seqlen, self.d_state).transpose(1, 2).contiguous()
        C = C.reshape(batch, seqlen, self.d_state).transpose(1, 2).contiguous()
        y = SelectiveScanFn.apply(x, dt, A, B, C, self.D.float(), z, self.dt_proj.bias.float(),
                                  True, False)
        return self.out_proj(y.transpose(1, 2))


class MambaStack(nn.Module):
    """Embedding-free Mamba LM body: ``depth`` pre-norm residual Mamba blocks and a final norm,
    as ``MixerModel`` arranges them. Input and output ``(B, L, d_model)``."""

    def __init__(self, d_model: int = 32, depth: int = 2, **mamba_kwargs):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(depth))
        self.mixers = nn.ModuleList(Mamba(d_model, **mamba_kwargs) for _ in range(depth))
        self.norm_f = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, mixer in zip(self.norms, self.mixers):
            x = x + mixer(norm(x))
        return self.norm_f(x)
