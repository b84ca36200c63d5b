"""Mamba kernels: selective scan, causal conv1d and the fused Mamba inner functions.

The scan formula is the one the Mamba authors gave for the CUDA kernel (state-spaces/mamba
issue #110) and that VMamba's ``flops_selective_scan_fn`` uses: ``9·B·L·D·N`` MACs, plus
``B·D·L`` for the skip term ``D·u`` and ``B·D·L`` for the gate ``y·silu(z)``. It is counted
under both presets (VMamba's published numbers include it). A fused function costs what its
unfused reference in ``mamba_ssm/ops/selective_scan_interface.py`` (``mamba_inner_ref``,
``bimamba_inner_ref``) costs under the same preset.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .cost import Cost

__all__ = [
    "bimamba_inner_macs",
    "causal_conv1d_macs",
    "mamba_inner_macs",
    "selective_scan_macs",
]

Shape = Sequence[int]


def selective_scan_macs(u: Shape, A: Shape, has_D: bool, has_z: bool,
                        complex_A: bool = False) -> Cost:
    """Selective scan (``SelectiveScanFn`` and VMamba's variants): u ``(B, D, L)``, A ``(D, N)``.

    ``9·B·L·D·N`` (state-spaces/mamba issue #110) ``+ B·D·L`` if D is given ``+ B·D·L`` if z is
    given, all ``core`` (counted in both presets). B and C may be ``(B, N, L)`` or grouped
    ``(B, G, N, L)``: the count does not depend on G. A complex A ``(D, N)`` holds N complex
    states, i.e. ``2N`` real ones, as mamba-ssm itself sizes it (``d_state = A.shape[-1] * 2``
    in ``mamba_inner_ref``); it counts as a real scan of state size ``2N``.

    Raises:
        ValueError: u is not 3-D or A is not 2-D.
    """
    if len(u) != 3 or len(A) != 2:
        raise ValueError(f"selective scan expects u (B, D, L) and A (D, N), "
                         f"got {tuple(u)}, {tuple(A)}")
    b, d, l = (int(x) for x in u)
    n = int(A[1]) * (2 if complex_A else 1)
    return Cost(core=9 * b * l * d * n + (b * d * l if has_D else 0) + (b * d * l if has_z else 0))


def causal_conv1d_macs(x: Shape, weight: Shape, silu: bool) -> Cost:
    """``CausalConv1dFn``: x ``(B, D, L)``, depthwise weight ``(D, W)``: ``B·D·L·W`` (core), plus
    ``B·D·L`` for a silu/swish activation (elementwise). ``ValueError`` on other ranks."""
    if len(x) != 3 or len(weight) != 2:
        raise ValueError(f"causal conv1d expects x (B, D, L) and weight (D, W), "
                         f"got {tuple(x)}, {tuple(weight)}")
    b, d, l = (int(s) for s in x)
    return Cost(core=b * d * l * int(weight[1]), elementwise=b * d * l if silu else 0)


def _inner_projections(xz: Shape, conv_weight: Shape, x_proj_weight: Shape,
                       dt_proj_weight: Shape, B_proj_bias: bool, C_proj_bias: bool,
                       complex_A: bool, n: int) -> tuple:
    """Shared part of the fused functions up to the scan: returns (cost, (B, D, L))."""
    batch, two_d, l = (int(s) for s in xz)
    d = two_d // 2
    conv = causal_conv1d_macs((batch, d, l), (int(conv_weight[0]), int(conv_weight[-1])), silu=True)
    x_proj = Cost(core=batch * l * d * int(x_proj_weight[0]))
    dt_proj = Cost(core=batch * l * d * int(dt_proj_weight[1]))
    # mamba_inner_ref: ``B = B + B_proj_bias`` on (B·L, d_state); d_state is 2N for complex A.
    d_state = n * (2 if complex_A else 1)
    biases = Cost(elementwise=batch * l * d_state * (int(B_proj_bias) + int(C_proj_bias)))
    return conv + x_proj + dt_proj + biases, (batch, d, l)


def mamba_inner_macs(xz: Shape, conv_weight: Shape, x_proj_weight: Shape,
                     dt_proj_weight: Shape, A: Shape, has_D: bool,
                     out_proj_weight: Optional[Shape], B_proj_bias: bool = False,
                     C_proj_bias: bool = False, complex_A: bool = False) -> Cost:
    """``MambaInnerFn`` (with ``out_proj_weight``) and Vim's ``MambaInnerFnNoOutProj`` (``None``).

    Shapes are read from the weights: xz ``(B, 2D, L)``, conv weight ``(D, 1, W)``, x_proj weight
    ``(R + 2N, D)``, dt_proj weight ``(D, R)``, A ``(D, N)``, out_proj weight ``(d_out, D)``.
    As ``mamba_inner_ref``: causal conv ``B·D·L·W`` + silu ``B·D·L`` (elementwise) + x_proj
    ``B·L·D·(R + 2N)`` + dt_proj ``B·L·D·R`` + selective scan with z (and D if given)
    + out_proj ``B·L·D·d_out``; a ``B_proj_bias`` / ``C_proj_bias`` add is ``B·L·N`` each
    (elementwise).
    """
    cost, u = _inner_projections(xz, conv_weight, x_proj_weight, dt_proj_weight,
                                 B_proj_bias, C_proj_bias, complex_A, int(A[1]))
    cost = cost + selective_scan_macs(u, A, has_D, has_z=True, complex_A=complex_A)
    if out_proj_weight is not None:
        batch, d, l = u
        cost = cost + Cost(core=batch * l * d * int(out_proj_weight[0]))
    return cost


def bimamba_inner_macs(xz: Shape, conv_weight: Shape, x_proj_weight: Shape,
                       dt_proj_weight: Shape, out_proj_weight: Shape, A: Shape, A_b: Shape,
                       has_D: bool, B_proj_bias: bool = False, C_proj_bias: bool = False,
                       complex_A: bool = False) -> Cost:
    """Vim's ``BiMambaInnerFn``, as its reference ``bimamba_inner_ref`` computes it: one causal
    conv + silu, one x_proj and one dt_proj (as :func:`mamba_inner_macs`), two selective scans
    (A forward, A_b on the flipped sequence, each with z and D), the add ``y + y_b.flip(-1)``
    (``B·D·L``, elementwise) and out_proj ``B·L·D·d_out``."""
    cost, u = _inner_projections(xz, conv_weight, x_proj_weight, dt_proj_weight,
                                 B_proj_bias, C_proj_bias, complex_A, int(A[1]))
    batch, d, l = u
    scans = (selective_scan_macs(u, A, has_D, True, complex_A)
             + selective_scan_macs(u, A_b, has_D, True, complex_A))
    merge = Cost(elementwise=batch * d * l)
    out_proj = Cost(core=batch * l * d * int(out_proj_weight[0]))
    return cost + scans + merge + out_proj
