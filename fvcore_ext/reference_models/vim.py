"""Vim's bidirectional Mamba block (hustvl/Vim ``mamba-1p1p1/mamba_ssm/modules/mamba_simple.py``,
``bimamba_type="v2"``): two ``MambaInnerFnNoOutProj`` calls per layer, the second on the
flipped sequence with its own conv, projections, A and D, then ``out_proj`` on the averaged
sum (``if_divide_out=True``)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import MambaInnerFnNoOutProj


class BiMambaV2(nn.Module):
    """Input and output ``(B, L, d_model)``."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.d_inner = expand * d_model
        dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        A_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1))
        for suffix in ("", "_b"):
            setattr(self, "conv1d" + suffix, nn.Conv1d(self.d_inner, self.d_inner, d_conv,
                                                       groups=self.d_inner, padding=d_conv - 1))
            setattr(self, "x_proj" + suffix, nn.Linear(self.d_inner, dt_rank + 2 * d_state,
                                                       bias=False))
            setattr(self, "dt_proj" + suffix, nn.Linear(dt_rank, self.d_inner, bias=True))
            setattr(self, "A" + suffix + "_log", nn.Parameter(A_log.clone()))
            setattr(self, "D" + suffix, nn.Parameter(torch.ones(self.d_inner)))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _direction(self, xz, suffix: str):
        A = -torch.exp(getattr(self, "A" + suffix + "_log").float())
        conv, dt_proj = getattr(self, "conv1d" + suffix), getattr(self, "dt_proj" + suffix)
        # mamba_inner_fn_no_out_proj(xz, conv1d_weight, conv1d_bias, x_proj_weight,
        #     delta_proj_weight, A, B, C, D, delta_bias, B_proj_bias, C_proj_bias, delta_softplus)
        return MambaInnerFnNoOutProj.apply(
            xz, conv.weight, conv.bias, getattr(self, "x_proj" + suffix).weight, dt_proj.weight,
            A, None, None, getattr(self, "D" + suffix).float(), dt_proj.bias.float(), None, None,
            True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seqlen, dim = hidden_states.shape
        xz = self.in_proj.weight @ hidden_states.reshape(-1, dim).t()
        xz = xz.reshape(xz.shape[0], batch, seqlen).transpose(0, 1)
        out = self._direction(xz, "")
        out_b = self._direction(xz.flip([-1]), "_b")
        return F.linear((out + out_b.flip([-1])).transpose(1, 2) / 2, self.out_proj.weight,
                        self.out_proj.bias)


class VimBlock(nn.Module):
    """Vim's ``Block``: ``x + mixer(norm(x))`` with a LayerNorm (Vim's fused add-norm, unfused)."""

    def __init__(self, d_model: int = 32, **mixer_kwargs):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = BiMambaV2(d_model, **mixer_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))
