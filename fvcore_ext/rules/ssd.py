"""Mamba-2's state-space duality (SSD) kernels: the chunked scan and the fused Mamba-2 layer.

The chunked scan is counted as the Mamba-2 paper computes it (Dao & Gu 2024, "Transformers are
SSMs", arXiv:2405.21060, section 6, "Hardware-Efficient Algorithm for SSD Models") and as
mamba-ssm's Triton kernels implement it (``mamba_ssm/ops/triton/ssd_combined.py``
``_mamba_chunk_scan_combined_fwd``). With x ``(b, l, h, p)``, B and C ``(b, l, g, n)``, chunk
size Q, ``c = ceil(l / Q)`` chunks and ``S = Σ q_k²`` over the chunk lengths ``q_k`` (Q, the last
one ``l - (c - 1)·Q``), the matmul work (``core``, both presets) is

====================================  ==================  ==========================
step                                  MACs                kernel
====================================  ==================  ==========================
C·Bᵀ inside each chunk, per group     ``b·g·n·S``         ``_bmm_chunk_fwd``
(decay ∘ C·Bᵀ)·(dt·x), per head       ``b·h·p·S``         ``_chunk_scan_fwd``
chunk states Bᵀ·(decay·dt·x)          ``b·h·p·n·l``       ``_chunk_state_fwd``
state passing between chunks          ``b·h·p·n·c``       ``_state_passing_fwd``
C·state, the inter-chunk output       ``b·h·p·n·l``       ``_chunk_scan_fwd``
====================================  ==================  ==========================

plus, as for the selective scan, ``b·l·h·p`` for the skip ``D·x`` and ``b·l·h·p`` for the gate
``y·silu(z)``, also ``core``. The causal mask inside a chunk is counted dense, as the contract
counts causal attention. The scalar-per-head discretisation is ``elementwise`` (full preset
only), one MAC per value the kernels produce: ``dt + dt_bias`` and ``softplus(dt)`` when asked
for, ``dt·A`` and its in-chunk cumulative sum (``_chunk_cumsum_fwd``), and the decay factors
``exp(·)``: ``b·h·S`` inside chunks, ``b·l·h`` for the chunk states, ``b·l·h`` for the output and
``b·h·c`` for state passing. ``dt_limit`` clamps (0, as ``clamp``).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

from .backward import norm_backward_macs, rms_norm_backward_macs
from .cost import Cost, numel, size_int
from .mamba import SCAN_BACKWARD_PER_POSITION, causal_conv1d_backward_macs, causal_conv1d_macs
from .normalization import check_group, norm_macs, rms_norm_macs

__all__ = ["gated_norm_backward_macs", "gated_norm_macs", "mamba_split_conv1d_scan_backward_macs",
           "mamba_split_conv1d_scan_macs", "ssd_chunk_scan_backward_macs", "ssd_chunk_scan_macs",
           "ssd_layout"]

Shape = Sequence[int]


def _sum_of_squared_chunks(length: int, chunk_size: int) -> tuple:
    """``(c, Σ q_k²)`` for a sequence of ``length`` split into chunks of ``chunk_size``."""
    chunks = math.ceil(length / chunk_size)
    last = length - (chunks - 1) * chunk_size
    return chunks, (chunks - 1) * chunk_size * chunk_size + last * last


def ssd_chunk_scan_macs(x: Shape, B: Shape, chunk_size: int, has_D: bool, has_z: bool,
                        has_dt_bias: bool, dt_softplus: bool) -> Cost:
    """``MambaChunkScanCombinedFn`` (mamba-ssm's ``mamba_chunk_scan_combined``): x ``(b, l, h, p)``,
    B and C ``(b, l, g, n)``, ``chunk_size`` Q. The formula and its sources are in this module's
    docstring: ``b·g·n·S + b·h·p·S + 2·b·h·p·n·l + b·h·p·n·c`` (+ ``b·l·h·p`` each for D and z)
    ``core``, and ``b·l·h·(2 + bias + softplus) + b·h·S + 2·b·l·h + b·h·c`` ``elementwise``.

    Raises:
        ValueError: x or B is not 4-D, their batch or length differ, h is not a multiple of g,
            or ``chunk_size`` is not a positive int.
    """
    if len(x) != 4 or len(B) != 4:
        raise ValueError(f"SSD scan expects x (b, l, h, p) and B (b, l, g, n), got {tuple(x)}, "
                         f"{tuple(B)}")
    b, l, h, p = (size_int(s) for s in x)
    _, _, g, n = (size_int(s) for s in B)
    if tuple(size_int(s) for s in B[:2]) != (b, l) or g <= 0 or h % g:
        raise ValueError(f"SSD scan: B {tuple(B)} does not match x {tuple(x)} "
                         f"(same batch and length, heads a multiple of groups)")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"SSD scan: chunk_size {chunk_size!r} is not a positive int")
    c, s = _sum_of_squared_chunks(l, chunk_size)
    core = (b * g * n * s + b * h * p * s + 2 * b * h * p * n * l + b * h * p * n * c
            + b * l * h * p * (int(has_D) + int(has_z)))
    discretisation = b * l * h * (2 + int(has_dt_bias) + int(dt_softplus))
    decays = b * h * s + 2 * b * l * h + b * h * c
    return Cost(core=core, elementwise=discretisation + decays)


def ssd_layout(zxbcdt: Shape, conv_weight: Shape, nheads: int, headdim: int,
               ngroups: int) -> dict:
    """How ``MambaSplitConv1dScanCombinedFn`` splits its input, as its ``forward`` derives it:
    zxbcdt ``(b, l, 2·d_nonssm + 2·dim + 2·g·n + h)`` with ``dim = h·p``, conv weight
    ``(dim + 2·g·n, W)``. Returns ``dict(batch, length, dim, dstate, d_nonssm, width)``.

    Raises:
        ValueError: the sizes do not split that way.
    """
    if len(zxbcdt) != 3 or len(conv_weight) != 2:
        raise ValueError(f"expected zxbcdt (b, l, d) and conv1d weight (d_conv, W), got "
                         f"{tuple(zxbcdt)}, {tuple(conv_weight)}")
    batch, length, width_in = (size_int(s) for s in zxbcdt)
    conv_dim, width = (size_int(s) for s in conv_weight)
    dim = nheads * headdim
    dstate = (conv_dim - dim) // ngroups // 2
    d_nonssm = (width_in - 2 * dim - 2 * ngroups * dstate - nheads) // 2
    if (ngroups <= 0 or nheads % ngroups or dstate <= 0 or d_nonssm < 0
            or conv_dim != dim + 2 * ngroups * dstate
            or width_in != 2 * d_nonssm + 2 * dim + 2 * ngroups * dstate + nheads):
        raise ValueError(f"zxbcdt {tuple(zxbcdt)} and conv1d weight {tuple(conv_weight)} do not "
                         f"split into {nheads} heads of {headdim} and {ngroups} groups")
    return dict(batch=batch, length=length, dim=dim, dstate=dstate, d_nonssm=d_nonssm,
                width=width)


def mamba_split_conv1d_scan_macs(zxbcdt: Shape, conv_weight: Shape, nheads: int, headdim: int,
                                 ngroups: int, chunk_size: int, silu: bool, rmsnorm: bool,
                                 outproj_weight: Optional[Shape]) -> Cost:
    """``MambaSplitConv1dScanCombinedFn`` (``mamba_split_conv1d_scan_combined``, the fused layer of
    ``mamba_ssm.modules.mamba2.Mamba2``), costed as the unfused path of ``Mamba2.forward``
    computes the same thing (contract: a fused op costs what its unfused reference costs):

    - causal conv1d over ``dim + 2·g·n`` channels (:func:`causal_conv1d_macs`, silu if asked);
    - the SSD scan (:func:`ssd_chunk_scan_macs`) with D, ``dt_bias`` and softplus, and z inside
      the scan unless ``rmsnorm``;
    - if ``rmsnorm``: the gated RMSNorm over groups of ``dim / g`` (:func:`gated_norm_macs`);
    - the gated MLP on the ``d_nonssm`` channels, ``silu(z0)·x0``: ``2·b·l·d_nonssm``
      (elementwise);
    - out_proj ``b·l·(d_nonssm + dim)·out_dim`` when its weight is given (bias not counted,
      as fvcore's ``linear``).

    Shapes as :func:`ssd_layout`; ``ValueError`` when they do not split.
    """
    layout = ssd_layout(zxbcdt, conv_weight, nheads, headdim, ngroups)
    b, l, dim, n = layout["batch"], layout["length"], layout["dim"], layout["dstate"]
    d_nonssm = layout["d_nonssm"]
    conv_dim = dim + 2 * ngroups * n
    cost = causal_conv1d_macs((b, conv_dim, l), (conv_dim, layout["width"]), silu)
    cost = cost + ssd_chunk_scan_macs((b, l, nheads, headdim), (b, l, ngroups, n), chunk_size,
                                      has_D=True, has_z=not rmsnorm, has_dt_bias=True,
                                      dt_softplus=True)
    if rmsnorm:
        cost = cost + gated_norm_macs((b, l, dim), dim // ngroups, is_rms_norm=True,
                                      has_bias=False, gated=True)
    cost = cost + Cost(elementwise=2 * b * l * d_nonssm)
    if outproj_weight is not None:
        cost = cost + Cost(core=b * l * (d_nonssm + dim) * size_int(outproj_weight[0]))
    return cost


def gated_norm_macs(x: Shape, group_size: Optional[int], is_rms_norm: bool, has_bias: bool,
                    gated: bool) -> Cost:
    """mamba-ssm's gated norm (``mamba_ssm/ops/triton/layernorm_gated.py`` ``LayerNormFn``, the
    ``RMSNorm`` / ``LayerNorm`` modules of Mamba-2) on x ``(..., N)`` with a weight ``(N,)``,
    normalised over groups of ``group_size`` channels (all N if ``None``).

    - RMSNorm: :func:`rms_norm_macs` with the weight (and bias), elementwise;
    - LayerNorm: fvcore's ``group_norm`` / ``layer_norm`` rule, ``5·numel`` (core);
    - the gate ``silu(z)`` and its product: ``2·numel`` elementwise, before or after the norm
      alike (``rms_norm_ref`` in the same file).

    Raises:
        ValueError: ``group_size`` does not divide N.
    """
    group_size = check_group(x, group_size)
    if is_rms_norm:
        cost = rms_norm_macs(x, group_size, has_weight=True, has_bias=has_bias)
    else:
        cost = norm_macs(x, affine=True)
    return cost + Cost(elementwise=2 * numel(x) if gated else 0)


# ---------------------------------------------------------------- backward (training counts)


def ssd_chunk_scan_backward_macs(x: Shape, B: Shape, chunk_size: int, has_D: bool, has_z: bool,
                                 has_dt_bias: bool, dt_softplus: bool) -> Cost:
    """Backward of ``MambaChunkScanCombinedFn``, shapes as :func:`ssd_chunk_scan_macs`. The
    Triton kernels have no differentiable reference the forward is counted by, so the formula is
    their code (``ssd_combined._mamba_chunk_scan_combined_bwd``), matmuls counted as the forward
    counts them (``tl.dot`` shapes, in-chunk pairs dense). Core:

    ==========================================  =============  ==============================
    step                                        MACs           kernel
    ==========================================  =============  ==============================
    recomputed: C·Bᵀ, chunk states, passing     ``b·g·n·S + b·h·p·n·l + b·h·p·n·c``  fwd kernels
    dstates from dout·C                         ``b·h·p·n·l``  ``_chunk_scan_bwd_dstates``
    state passing backward (ds and ddA)         ``2·b·h·p·n·c``  ``_state_passing_bwd``
    dx: B·dstates, (CBᵀ∘decay)ᵀ·dout            ``b·h·p·n·l + b·h·p·S``  ``..._bwd_dx``
    dB from x·dstates                           ``b·h·p·n·l``  ``_chunk_state_bwd_db``
    dC from dout·states                         ``b·h·p·n·l``  ``_chunk_scan_bwd_dC``
    d(CBᵀ) = dout·xᵀ                            ``b·h·p·S``    ``_chunk_scan_bwd_dcb``
    dB, dC from d(CBᵀ)                          ``2·b·g·n·S``  ``_bmm_chunk_bwd`` (twice)
    ddA: dout·xᵀ again, per head                ``b·h·p·S``    ``_chunk_scan_bwd_ddAcs_stable``
    ==========================================  =============  ==============================

    that is ``3·b·g·n·S + 3·b·h·p·S + 5·b·h·p·n·l + 3·b·h·p·n·c``; plus per ``(b, l, h, p)``,
    as the selective scan's backward counts them (:data:`SCAN_BACKWARD_PER_POSITION`), 2 with
    D (``dx += D·dout``, ``dD += dout·x``) and 5 with z (``_chunk_scan_bwd_dz``). Elementwise
    (full preset only): the forward's discretisation and decay terms again, one chain-rule
    product for every value they produced.

    Raises:
        ValueError: as :func:`ssd_chunk_scan_macs`.
    """
    forward = ssd_chunk_scan_macs(x, B, chunk_size, has_D, has_z, has_dt_bias, dt_softplus)
    b, l, h, p = (size_int(s) for s in x)
    g, n = size_int(B[2]), size_int(B[3])
    c, s = _sum_of_squared_chunks(l, chunk_size)
    core = (3 * b * g * n * s + 3 * b * h * p * s + 5 * b * h * p * n * l + 3 * b * h * p * n * c
            + b * l * h * p * (SCAN_BACKWARD_PER_POSITION["D"] * int(has_D)
                               + SCAN_BACKWARD_PER_POSITION["z"] * int(has_z)))
    return Cost(core=core, elementwise=forward.elementwise)


def gated_norm_backward_macs(x: Shape, group_size: Optional[int], is_rms_norm: bool,
                             has_bias: bool, gated: bool, input_grad: bool, weight_grad: bool,
                             bias_grad: bool, gate_grad: bool,
                             norm_before_gate: bool = True) -> Cost:
    """Backward of the gated norm (:func:`gated_norm_macs`; ``layernorm_gated.LayerNormFn``) on
    x ``(..., N)``, in MACs, as the backward of its reference ``rms_norm_ref`` /
    ``layer_norm_ref`` (``mamba_ssm/ops/triton/layernorm_gated.py``) computes it:

    - the norm: :func:`fvcore_ext.rules.rms_norm_backward_macs` (elementwise) or, for a
      LayerNorm, :func:`fvcore_ext.rules.norm_backward_macs` (core), for the gradients needed;
      its input needs one when x does, or, with the gate first, z does;
    - the gate ``· silu(z)``, elementwise: with ``norm_before_gate`` (``norm(x)·silu(z)``),
      ``dy·silu(z)`` (1 per element) when the norm's side needs a gradient; with the gate first
      (``norm(x·silu(z))``), ``·silu(z)`` (1) when x needs one; and when z needs one, the
      product with the other factor and ``silu_backward`` (2).

    ``input_grad``, ``weight_grad``, ``bias_grad``, ``gate_grad``: x, the weight, the bias, z
    need a gradient. ``ValueError`` when ``group_size`` does not divide N.
    """
    check_group(x, group_size)
    bias_grad = bias_grad and has_bias
    gate_grad = gate_grad and gated
    norm_input = input_grad or (gate_grad and not norm_before_gate)
    if is_rms_norm:
        cost = rms_norm_backward_macs(x, True, norm_input, weight_grad, bias_grad)
    else:
        cost = norm_backward_macs(x, True, norm_input, weight_grad, bias_grad)
    if gated:
        scaled = (norm_input or weight_grad or bias_grad) if norm_before_gate else input_grad
        cost = cost + Cost(elementwise=numel(x) * (int(scaled) + 2 * int(gate_grad)))
    return cost


def mamba_split_conv1d_scan_backward_macs(zxbcdt: Shape, conv_weight: Shape, nheads: int,
                                          headdim: int, ngroups: int, chunk_size: int,
                                          silu: bool, rmsnorm: bool,
                                          outproj_weight: Optional[Shape],
                                          needs: Mapping[str, bool],
                                          norm_before_gate: bool = True) -> Cost:
    """Backward of ``MambaSplitConv1dScanCombinedFn``: what autograd runs for the backward of
    ``Mamba2``'s unfused path (the reference :func:`mamba_split_conv1d_scan_macs` costs), with
    ``needs`` naming the Function's arguments that need a gradient (``zxbcdt``,
    ``conv1d_weight``, ``conv1d_bias``, ``dt_bias``, ``A``, ``D``, ``initial_states``,
    ``rmsnorm_weight``, ``outproj_weight``, ``outproj_bias``) and ``norm_before_gate`` as
    passed. In the reference's backward order:

    - out_proj: ``b·l·(d_nonssm + dim)·out_dim`` core for its input gradient and for its weight
      gradient, each if needed; the bias gradient ``b·l·out_dim`` (elementwise);
    - the gated MLP ``silu(z0)·x0`` when zxbcdt needs a gradient: the product's two gradients
      and ``silu_backward``, ``3·b·l·d_nonssm`` (elementwise);
    - the gated RMSNorm (:func:`gated_norm_backward_macs`) if ``rmsnorm``;
    - the SSD scan (:func:`ssd_chunk_scan_backward_macs`, D, ``dt_bias`` and softplus, z inside
      unless ``rmsnorm``) if any of its inputs needs a gradient;
    - the causal conv1d (:func:`causal_conv1d_backward_macs`) over ``dim + 2·g·n`` channels.

    Shapes as :func:`ssd_layout`; ``ValueError`` when they do not split.
    """
    layout = ssd_layout(zxbcdt, conv_weight, nheads, headdim, ngroups)
    b, l, dim, n = layout["batch"], layout["length"], layout["dim"], layout["dstate"]
    d_nonssm, rows = layout["d_nonssm"], b * l
    need = lambda name: bool(needs.get(name, False))   # noqa: E731
    inputs = need("zxbcdt")
    conv_out = inputs or need("conv1d_weight") or need("conv1d_bias")
    scan = (conv_out or inputs or need("dt_bias") or need("A") or need("D")
            or need("initial_states"))
    normed = scan or (rmsnorm and need("rmsnorm_weight"))
    cost = Cost()
    if outproj_weight is not None:
        out_dim = size_int(outproj_weight[0])
        projected = normed or (d_nonssm > 0 and inputs)
        cost = cost + Cost(core=rows * (d_nonssm + dim) * out_dim
                           * (int(projected) + int(need("outproj_weight"))),
                           elementwise=rows * out_dim if need("outproj_bias") else 0)
    if d_nonssm and inputs:
        cost = cost + Cost(elementwise=3 * rows * d_nonssm)
    if rmsnorm and (normed or inputs):
        cost = cost + gated_norm_backward_macs(
            (b, l, dim), dim // ngroups, is_rms_norm=True, has_bias=False, gated=True,
            input_grad=scan, weight_grad=need("rmsnorm_weight"), bias_grad=False,
            gate_grad=inputs, norm_before_gate=norm_before_gate)
    if scan:
        cost = cost + ssd_chunk_scan_backward_macs(
            (b, l, nheads, headdim), (b, l, ngroups, n), chunk_size, has_D=True,
            has_z=not rmsnorm, has_dt_bias=True, dt_softplus=True)
    if conv_out:
        conv_dim = dim + 2 * ngroups * n
        cost = cost + causal_conv1d_backward_macs(
            (b, conv_dim, l), (conv_dim, layout["width"]), silu, input_grad=inputs,
            weight_grad=need("conv1d_weight"), bias_grad=need("conv1d_bias"))
    return cost
