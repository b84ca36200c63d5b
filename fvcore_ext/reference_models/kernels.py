"""Pure-PyTorch stand-ins for the Mamba CUDA kernels, as ``torch.autograd.Function``s with the
upstream class names and ``forward`` argument orders, so a trace shows exactly the
``prim::PythonOp.<ClassName>`` nodes a GPU run shows.

Sources: state-spaces/mamba ``mamba_ssm/ops/selective_scan_interface.py`` (``SelectiveScanFn``,
``MambaInnerFn``, ``selective_scan_ref``, ``mamba_inner_ref``), Dao-AILab/causal-conv1d
``causal_conv1d_interface.py`` (``CausalConv1dFn``), hustvl/Vim ``mamba-1p1p1``
(``MambaInnerFnNoOutProj``) and MzeroMiko/VMamba (``SelectiveScanCuda``, ``CrossScan``,
``CrossMerge``). These models exist to be traced and counted: each ``backward`` returns zero
gradients of the inputs' shapes, so a training count (``count_model(..., backward=True)``)
runs, and the op table's backward rule counts it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "CausalConv1dFn",
    "CrossMerge",
    "CrossScan",
    "MambaInnerFn",
    "MambaInnerFnNoOutProj",
    "SelectiveScanCuda",
    "SelectiveScanFn",
    "causal_conv1d_ref",
    "selective_scan_ref",
]


_CHUNK = 64


class _ShapesOnlyFunction(torch.autograd.Function):
    """A Function whose backward returns zeros shaped like the tensors ``forward`` received
    (recorded by :meth:`remember`): the count reads shapes, never gradient values."""

    @staticmethod
    def remember(ctx, *inputs) -> None:
        ctx.input_like = [(t.shape, t.dtype, t.device) if isinstance(t, torch.Tensor) else None
                          for t in inputs]

    @staticmethod
    def backward(ctx, *grads):
        return tuple(None if like is None else torch.zeros(like[0], dtype=like[1],
                                                           device=like[2])
                     for like in ctx.input_like)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The selective scan of mamba-ssm's ``selective_scan_ref`` for real A, computed in chunks of
    64 steps instead of one Python step at a time (exact, and traceable in seconds at the
    lengths vision models use). u, delta ``(B, D, L)``, A ``(D, N)``, B, C ``(B, N, L)`` or
    ``(B, G, N, L)``, D ``(D,)``, z ``(B, D, L)``; returns ``(B, D, L)``.

    The state obeys ``x_t = exp(delta_t A) x_{t-1} + delta_t B_t u_t`` and ``y_t = C_t x_t``.
    Inside a chunk, with ``S_t = sum_{r<=t} delta_r A`` (non-increasing),
    ``x_t = exp(S_t) x_0 + sum_{s<=t} exp(S_t - S_s) delta_s B_s u_s``: every exponent is <= 0.
    """
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    B = B.float().repeat_interleave(dim // B.shape[1], dim=1)     # (batch, dim, N, L)
    C = C.float().repeat_interleave(dim // C.shape[1], dim=1)
    log_decay = delta.unsqueeze(-1) * A.float().unsqueeze(1)      # (batch, dim, L, N)
    inputs = (delta * u).unsqueeze(-1) * B.transpose(2, 3)        # (batch, dim, L, N)
    state = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    # A symbolic length (a SymInt of fvcore_ext.laws.symbolic's run, where only shapes are
    # computed) is one chunk: a Python loop over it would fix the symbol to its example value.
    symbolic = isinstance(length, torch.SymInt)
    chunk = length if symbolic else _CHUNK
    for start in [0] if symbolic else range(0, length, _CHUNK):
        S = log_decay[:, :, start:start + chunk].cumsum(dim=2)   # (batch, dim, Q, N)
        q = S.shape[2]
        causal = torch.ones(q, q, dtype=torch.bool, device=u.device).tril()
        gaps = (S.unsqueeze(3) - S.unsqueeze(2)).masked_fill(~causal[:, :, None], float("-inf"))
        states = torch.einsum("bdtsn,bdsn->bdtn", gaps.exp(), inputs[:, :, start:start + q])
        states = states + S.exp() * state.unsqueeze(2)
        ys.append(torch.einsum("bdtn,bdnt->bdt", states, C[..., start:start + q]))
        state = states[:, :, -1]
    y = torch.cat(ys, dim=2)
    out = y if D is None else y + u * D[..., None]
    if z is not None:
        out = out * F.silu(z)
    return out.to(dtype_in)


def causal_conv1d_ref(x, weight, bias=None, activation=None):
    """causal-conv1d's ``causal_conv1d_ref``: x ``(B, D, L)``, weight ``(D, W)``."""
    width = weight.shape[1]
    out = F.conv1d(x, weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[1])
    out = out[..., : x.shape[-1]]
    return F.silu(out) if activation in ("silu", "swish") else out


class SelectiveScanFn(_ShapesOnlyFunction):
    """mamba-ssm ``SelectiveScanFn``: same forward signature."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                return_last_state=False):
        SelectiveScanFn.remember(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                 return_last_state)
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


class CausalConv1dFn(_ShapesOnlyFunction):
    """causal-conv1d ``CausalConv1dFn``: same forward signature."""

    @staticmethod
    def forward(ctx, x, weight, bias=None, seq_idx=None, initial_states=None,
                return_final_states=False, final_states_out=None, activation=None):
        CausalConv1dFn.remember(ctx, x, weight, bias, seq_idx, initial_states,
                                return_final_states, final_states_out, activation)
        return causal_conv1d_ref(x, weight, bias, activation)


def _inner_scan(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A, D,
                delta_bias, delta_softplus):
    # mamba_inner_ref up to the scan, for input-dependent B and C.
    L = xz.shape[-1]
    delta_rank = delta_proj_weight.shape[1]
    d_state = A.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = causal_conv1d_ref(x, conv1d_weight.squeeze(1), conv1d_bias, activation="silu")
    x_dbl = F.linear(x.transpose(1, 2).reshape(-1, x.shape[1]), x_proj_weight)
    delta = delta_proj_weight @ x_dbl[:, :delta_rank].t()
    delta = delta.reshape(delta.shape[0], -1, L).transpose(0, 1)
    B = x_dbl[:, delta_rank:delta_rank + d_state].reshape(-1, L, d_state).transpose(1, 2)
    C = x_dbl[:, -d_state:].reshape(-1, L, d_state).transpose(1, 2)
    return selective_scan_ref(x, delta, A, B, C, D, z, delta_bias, delta_softplus)


class MambaInnerFn(_ShapesOnlyFunction):
    """mamba-ssm 2.x ``MambaInnerFn``: same forward signature, body of ``mamba_inner_ref``."""

    @staticmethod
    def forward(ctx, xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight,
                out_proj_weight, out_proj_bias, A, B=None, C=None, D=None, delta_bias=None,
                B_proj_bias=None, C_proj_bias=None, delta_softplus=True, checkpoint_lvl=1,
                b_rms_weight=None, c_rms_weight=None, dt_rms_weight=None, b_c_dt_rms_eps=1e-6):
        MambaInnerFn.remember(ctx, xz, conv1d_weight, conv1d_bias, x_proj_weight,
                              delta_proj_weight, out_proj_weight, out_proj_bias, A, B, C, D,
                              delta_bias, B_proj_bias, C_proj_bias, delta_softplus,
                              checkpoint_lvl, b_rms_weight, c_rms_weight, dt_rms_weight,
                              b_c_dt_rms_eps)
        y = _inner_scan(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A, D,
                        delta_bias, delta_softplus)
        return F.linear(y.transpose(1, 2), out_proj_weight, out_proj_bias)


class MambaInnerFnNoOutProj(_ShapesOnlyFunction):
    """Vim ``MambaInnerFnNoOutProj``: same forward signature; returns ``(B, D, L)``."""

    @staticmethod
    def forward(ctx, xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A,
                B=None, C=None, D=None, delta_bias=None, B_proj_bias=None, C_proj_bias=None,
                delta_softplus=True, checkpoint_lvl=1):
        MambaInnerFnNoOutProj.remember(ctx, xz, conv1d_weight, conv1d_bias, x_proj_weight,
                                       delta_proj_weight, A, B, C, D, delta_bias, B_proj_bias,
                                       C_proj_bias, delta_softplus, checkpoint_lvl)
        return _inner_scan(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, A,
                           D, delta_bias, delta_softplus)


class SelectiveScanCuda(_ShapesOnlyFunction):
    """VMamba ``SelectiveScanCuda`` (``csms6s.py``): no z; D always passed by SS2D."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False,
                oflex=True, backend=None):
        SelectiveScanCuda.remember(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus, oflex,
                                   backend)
        return selective_scan_ref(u, delta, A, B, C, D, None, delta_bias, delta_softplus)


class CrossScan(_ShapesOnlyFunction):
    """VMamba ``CrossScan``: ``(B, C, H, W)`` → ``(B, 4, C, H·W)``: row-major, column-major and
    both reversed."""

    @staticmethod
    def forward(ctx, x):
        CrossScan.remember(ctx, x)
        B, C, H, W = x.shape
        xs = x.new_empty((B, 4, C, H * W))
        xs[:, 0] = x.flatten(2, 3)
        xs[:, 1] = x.transpose(2, 3).flatten(2, 3)
        xs[:, 2:4] = torch.flip(xs[:, 0:2], dims=[-1])
        return xs


class CrossMerge(_ShapesOnlyFunction):
    """VMamba ``CrossMerge``: ``(B, 4, D, H, W)`` → ``(B, D, H·W)``, the sum of the four
    directions mapped back to row-major order."""

    @staticmethod
    def forward(ctx, ys):
        CrossMerge.remember(ctx, ys)
        B, K, D, H, W = ys.shape
        ys = ys.view(B, K, D, -1)
        ys = ys[:, 0:2] + ys[:, 2:4].flip(dims=[-1]).view(B, 2, D, -1)
        return ys[:, 0] + ys[:, 1].view(B, -1, W, H).transpose(2, 3).contiguous().view(B, D, -1)
