"""Mamba kernels: selective scan, causal conv1d and the fused Mamba inner functions.

The scan formula is the one the Mamba authors gave for the CUDA kernel (state-spaces/mamba
issue #110) and that VMamba's ``flops_selective_scan_fn`` uses: ``9·B·L·D·N`` MACs, plus
``B·D·L`` for the skip term ``D·u`` and ``B·D·L`` for the gate ``y·silu(z)``. It is counted
under both presets (VMamba's published numbers include it). A fused function costs what its
unfused reference in ``mamba_ssm/ops/selective_scan_interface.py`` (``mamba_inner_ref``,
``bimamba_inner_ref``) costs under the same preset.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .cost import Cost, numel, size_int

__all__ = [
    "bimamba_inner_macs",
    "causal_conv1d_backward_macs",
    "causal_conv1d_macs",
    "mamba_inner_backward_macs",
    "mamba_inner_macs",
    "SCAN_BACKWARD_PER_POSITION",
    "SCAN_BACKWARD_PER_STATE",
    "selective_scan_backward_macs",
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
    b, d, l = (size_int(x) for x in u)
    n = size_int(A[1]) * (2 if complex_A else 1)
    return Cost(core=9 * b * l * d * n + (b * d * l if has_D else 0) + (b * d * l if has_z else 0))


def causal_conv1d_macs(x: Shape, weight: Shape, silu: bool) -> Cost:
    """``CausalConv1dFn``: x ``(B, D, L)``, depthwise weight ``(D, W)``: ``B·D·L·W`` (core), plus
    ``B·D·L`` for a silu/swish activation (elementwise). ``ValueError`` on other ranks."""
    if len(x) != 3 or len(weight) != 2:
        raise ValueError(f"causal conv1d expects x (B, D, L) and weight (D, W), "
                         f"got {tuple(x)}, {tuple(weight)}")
    b, d, l = (size_int(s) for s in x)
    return Cost(core=b * d * l * size_int(weight[1]), elementwise=b * d * l if silu else 0)


def _inner_projections(xz: Shape, conv_weight: Shape, x_proj_weight: Shape,
                       dt_proj_weight: Shape, B_proj_bias: bool, C_proj_bias: bool,
                       complex_A: bool, n: int) -> tuple:
    """Shared part of the fused functions up to the scan: returns (cost, (B, D, L))."""
    batch, two_d, l = (size_int(s) for s in xz)
    d = two_d // 2
    conv = causal_conv1d_macs((batch, d, l), (size_int(conv_weight[0]), size_int(conv_weight[-1])), silu=True)
    x_proj = Cost(core=batch * l * d * size_int(x_proj_weight[0]))
    dt_proj = Cost(core=batch * l * d * size_int(dt_proj_weight[1]))
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
                                 B_proj_bias, C_proj_bias, complex_A, size_int(A[1]))
    cost = cost + selective_scan_macs(u, A, has_D, has_z=True, complex_A=complex_A)
    if out_proj_weight is not None:
        batch, d, l = u
        cost = cost + Cost(core=batch * l * d * size_int(out_proj_weight[0]))
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
                                 B_proj_bias, C_proj_bias, complex_A, size_int(A[1]))
    batch, d, l = u
    scans = (selective_scan_macs(u, A, has_D, True, complex_A)
             + selective_scan_macs(u, A_b, has_D, True, complex_A))
    merge = Cost(elementwise=batch * d * l)
    out_proj = Cost(core=batch * l * d * size_int(out_proj_weight[0]))
    return cost + scans + merge + out_proj


# ---------------------------------------------------------------- backward (training counts)


# Per (b, d, l, n), by whether B and C vary along the sequence (``(B, G, N, L)``) or are
# constant (``(D, N)``): 20 + 5·vB + 4·vC − 4·vB·vC. See selective_scan_backward_macs.
SCAN_BACKWARD_PER_STATE = {(False, False): 20, (False, True): 24, (True, False): 25,
                           (True, True): 25}
# Per (b, d, l): the skip term's two products, the gate's five, softplus's chain-rule product.
SCAN_BACKWARD_PER_POSITION = {"D": 2, "z": 5, "delta_softplus": 1}


def selective_scan_backward_macs(u: Shape, A: Shape, B: Shape, C: Shape, has_D: bool,
                                 has_z: bool, delta_softplus: bool,
                                 complex_A: bool = False) -> Cost:
    """Backward of the selective scan (``SelectiveScanFn``, VMamba's ``SelectiveScan*``; the
    ``selective_scan_cuda.bwd`` kernel): u ``(B, D, L)``, A ``(D, N)``, B and C ``(B, N, L)`` /
    ``(B, G, N, L)`` (variable) or ``(D, N)`` (constant). All ``core``, as the forward.

    The CUDA kernel has no differentiable reference (CONVENTIONS.md "Training"), so the formula
    is its code (state-spaces/mamba ``csrc/selective_scan/selective_scan_bwd_kernel.cuh``),
    counted as the forward's ``9·B·L·D·N`` counts ``selective_scan_fwd_kernel.cuh``: every
    multiply or fused multiply-add 1, every ``exp2f`` 1, adds and softplus/SiLU evaluations
    free. Per (b, d, l, n), both B and C variable: ``exp2f(delta·A)`` 2, ``delta·u·B`` 2, the
    forward scan recomputed 4 (two ``SSMScanOp`` passes of 2 products), ``dout·C`` 1, the
    reverse scan 4, ``dx·B`` 1, ``du += ·delta`` 1, the state before the step recomputed 2,
    ``ddelta`` 3, ``dA`` 2, ``dB = dx·delta·u`` 2, ``dC = dout·x`` 1: 25
    (:data:`SCAN_BACKWARD_PER_STATE` for constant B or C: a constant B loses ``·B`` from
    ``delta·u·B`` and the state recomputation (2) and ``dx·B`` (1) and gains ``dBC += dout·x``
    (1 or 2): 24 with C varying; with both constant ``B·C`` is one product per state, not per
    step, and ``dC`` is accumulated with ``dB``: 20). Per (b, d, l)
    (:data:`SCAN_BACKWARD_PER_POSITION`): with D, ``du = D·dout`` and ``dD += dout·u`` (2);
    with z, ``dz = dout·out·σ(z)·(1 + z·(1 − σ(z)))`` (4) and ``dout·silu(z)`` (1); with
    ``delta_softplus``, its derivative's product (1). ``delta_bias`` costs adds only.
    Recomputing ``out·silu(z)`` (``MambaInnerFn``'s ``recompute_out_z``) is not counted: the
    fused function costs what its reference does. A complex A counts as a real scan of ``2N``
    states, as the forward (:func:`selective_scan_macs`).

    Raises:
        ValueError: u is not 3-D, A is not 2-D, or B or C is not 2-, 3- or 4-D.
    """
    if len(u) != 3 or len(A) != 2 or not all(len(s) in (2, 3, 4) for s in (B, C)):
        raise ValueError(f"selective scan expects u (B, D, L), A (D, N), B and C (D, N), "
                         f"(B, N, L) or (B, G, N, L); got {tuple(u)}, {tuple(A)}, {tuple(B)}, "
                         f"{tuple(C)}")
    b, d, l = (size_int(x) for x in u)
    n = size_int(A[1]) * (2 if complex_A else 1)
    per_state = SCAN_BACKWARD_PER_STATE[len(B) > 2, len(C) > 2]
    per_position = (SCAN_BACKWARD_PER_POSITION["D"] * int(has_D)
                    + SCAN_BACKWARD_PER_POSITION["z"] * int(has_z)
                    + SCAN_BACKWARD_PER_POSITION["delta_softplus"] * int(delta_softplus))
    return Cost(core=b * d * l * (per_state * n + per_position))


def causal_conv1d_backward_macs(x: Shape, weight: Shape, silu: bool, input_grad: bool,
                                weight_grad: bool, bias_grad: bool) -> Cost:
    """Backward of ``CausalConv1dFn`` on x ``(B, D, L)``, weight ``(D, W)``: what the backward of
    its reference ``causal_conv1d_ref`` (a depthwise ``F.conv1d`` then ``F.silu``) computes, at
    the forward's ``B·D·L·W`` (:func:`causal_conv1d_macs`):

    - ``silu_backward`` ``B·D·L`` (elementwise) when there is an activation;
    - the input gradient (also when only ``initial_states`` needs one) and the weight gradient,
      a convolution of ``B·D·L·W`` each (core), only those needed;
    - the bias gradient, a sum of the output gradient over batch and length, ``B·D·L``
      (elementwise, as ``convolution_backward``'s).

    ``ValueError`` on other ranks.
    """
    forward = causal_conv1d_macs(x, weight, silu)
    return Cost(core=forward.core * (int(input_grad) + int(weight_grad)),
                elementwise=numel(x) * (int(silu) + int(bias_grad)))


def mamba_inner_backward_macs(xz: Shape, conv_weight: Shape, x_proj_weight: Shape,
                              dt_proj_weight: Shape, A: Shape, has_D: bool,
                              out_proj_weight: Optional[Shape], needs: Mapping[str, bool],
                              B_proj_bias: bool = False, C_proj_bias: bool = False,
                              complex_A: bool = False, delta_softplus: bool = True,
                              B: Optional[Shape] = None, C: Optional[Shape] = None,
                              A_b: Optional[Shape] = None) -> Cost:
    """Backward of ``MambaInnerFn`` (with ``out_proj_weight``) and ``MambaInnerFnNoOutProj``
    (``None``): what autograd runs for the backward of their reference ``mamba_inner_ref``
    (``mamba_ssm/ops/selective_scan_interface.py``), i.e. of Mamba's slow path, with the same
    shapes as :func:`mamba_inner_macs`: xz ``(B, 2D, L)``, x_proj weight ``(R + 2N, D)``,
    dt_proj weight ``(D, R)``, A ``(D, N)``, out_proj weight ``(d_out, D)``.

    ``needs`` names the inputs that need a gradient (the Function's argument names: ``xz``,
    ``conv1d_weight``, ``conv1d_bias``, ``x_proj_weight``, ``delta_proj_weight``,
    ``out_proj_weight``, ``out_proj_bias``, ``A``, ``D``, ``delta_bias``, ``B_proj_bias``,
    ``C_proj_bias``, ``B``, ``C``; missing names need none). B and C: as passed to the
    Function, ``None`` when they come from x_proj (the case of every Mamba block; the
    projection biases are used only then). In the reference's backward order:

    - out_proj: ``dY = dO @ W`` if the scan's output needs a gradient, ``dW = dOᵀ @ Y`` if
      the weight trains, ``B·L·D·d_out`` core each; the bias gradient ``B·L·d_out``
      (elementwise, a reduction);
    - the selective scan's backward (:func:`selective_scan_backward_macs`, B and C variable,
      with z, D if given, ``delta_softplus`` as passed) if any of its inputs needs a gradient;
    - x_proj's output split once into dt, B and C (``torch.split``, as Mamba's slow path does;
      ``mamba_inner_ref``'s three slices would add two full-size gradients that compute
      nothing), then dt_proj (``W_dt @ dtᵀ``): ``B·L·D·R`` core for each side that needs one;
      ``B_proj_bias``/``C_proj_bias`` gradients ``B·L·N`` each (elementwise, reductions);
    - x_proj: ``B·L·D·(R + 2N)`` core for each side that needs one;
    - the conv output feeds both x_proj and the scan: its two gradients are added, ``B·D·L``
      (elementwise), then the causal conv's backward (:func:`causal_conv1d_backward_macs`,
      with silu).

    With ``A_b`` (Vim's ``BiMambaInnerFn``, reference ``bimamba_inner_ref``): a second scan on
    the flipped sequence with ``A_b``, the gradients of the inputs both scans share added
    (x: twice with x_proj's; delta, z: ``B·D·L`` each; B, C: ``B·N·L`` each; D, delta_bias:
    ``D`` each; elementwise), ``needs`` also naming ``A_b``.

    An input that needs no gradient costs nothing upstream of it, as in autograd. ``ValueError``
    on shapes that do not fit.
    """
    batch, two_d, length = (size_int(s) for s in xz)
    d = two_d // 2
    rows = batch * length
    rank, width = size_int(dt_proj_weight[1]), size_int(conv_weight[-1])
    d_state = size_int(A[1]) * (2 if complex_A else 1)
    need = lambda name: bool(needs.get(name, False))   # noqa: E731
    conv_out = need("xz") or need("conv1d_weight") or need("conv1d_bias")
    x_dbl = conv_out or need("x_proj_weight")
    b_bias, c_bias = B is None and need("B_proj_bias"), C is None and need("C_proj_bias")
    scan = (x_dbl or need("delta_proj_weight") or need("xz") or need("A") or need("A_b")
            or need("B") or need("C") or need("D") or need("delta_bias") or b_bias or c_bias)
    cost = Cost()
    if out_proj_weight is not None:
        d_out = size_int(out_proj_weight[0])
        cost = cost + Cost(core=rows * d * d_out * (int(scan) + int(need("out_proj_weight"))),
                           elementwise=rows * d_out if need("out_proj_bias") else 0)
    if scan:
        varying = (batch, d_state, length)          # B and C from x_proj: (B, N, L)
        for scan_A in (A,) if A_b is None else (A, A_b):
            cost = cost + selective_scan_backward_macs(
                (batch, d, length), scan_A, B or varying, C or varying, has_D, has_z=True,
                delta_softplus=delta_softplus, complex_A=complex_A)
    if A_b is not None:
        # bimamba_inner_ref feeds x, delta, B, C, z, D and delta_bias to both scans (flipped for
        # the second; a flip costs 0): each needing a gradient has two added; x has three
        # consumers with x_proj, counted below.
        cost = cost + Cost(elementwise=(
            rows * d * (int(x_dbl or need("delta_proj_weight")) + int(need("xz")))
            + rows * d_state * (int(B is None and (x_dbl or b_bias))
                                + int(C is None and (x_dbl or c_bias)))
            + d * (int(has_D and need("D")) + int(need("delta_bias")))))
    cost = cost + Cost(core=rows * d * rank * (int(x_dbl) + int(need("delta_proj_weight"))),
                       elementwise=rows * d_state * (int(B_proj_bias and b_bias)
                                                     + int(C_proj_bias and c_bias)))
    cost = cost + Cost(core=rows * d * size_int(x_proj_weight[0])
                       * (int(conv_out) + int(need("x_proj_weight"))))
    if conv_out:
        consumers = 2 if A_b is None else 3         # x_proj and the scan(s)
        cost = cost + Cost(elementwise=(consumers - 1) * batch * d * length)
        cost = cost + causal_conv1d_backward_macs(
            (batch, d, length), (d, width), silu=True, input_grad=need("xz"),
            weight_grad=need("conv1d_weight"), bias_grad=need("conv1d_bias"))
    return cost
