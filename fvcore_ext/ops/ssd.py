"""Readers of Mamba-2's fused kernels (prim::PythonOp.<ClassName>): the chunk scan, the split-conv1d scan, mamba-ssm's LayerNormFn.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall
from .registry import (bool_scalar, counts, int_scalar)

# ---------------------------------------------------------------- Mamba-2 (prim::PythonOp)

# state-spaces/mamba mamba_ssm/ops/triton/ssd_combined.py; releases before 2.2.3 lack
# cu_seqlens and return_varlen_states.
MAMBA_CHUNK_SCAN_SIGNATURES = {
    16: ("x", "dt", "A", "B", "C", "chunk_size", "D", "z", "dt_bias", "initial_states",
         "seq_idx", "cu_seqlens", "dt_softplus", "dt_limit", "return_final_states",
         "return_varlen_states"),
    14: ("x", "dt", "A", "B", "C", "chunk_size", "D", "z", "dt_bias", "initial_states",
         "seq_idx", "dt_softplus", "dt_limit", "return_final_states"),
}
MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE = (
    "zxbcdt", "conv1d_weight", "conv1d_bias", "dt_bias", "A", "D", "chunk_size",
    "initial_states", "seq_idx", "dt_limit", "return_final_states", "activation",
    "rmsnorm_weight", "rmsnorm_eps", "outproj_weight", "outproj_bias", "headdim", "ngroups",
    "norm_before_gate")


def chunk_scan_arguments(call: OpCall) -> tuple:
    """The call named by its layout's signature, and the scan's arguments as
    ``ssd_chunk_scan_macs`` takes them."""
    signature = MAMBA_CHUNK_SCAN_SIGNATURES.get(len(call.args))
    if signature is None:
        raise CannotCount(f"unknown argument layout: {len(call.args)} arguments, known layouts "
                          f"have {' or '.join(map(str, MAMBA_CHUNK_SCAN_SIGNATURES))}")
    call = call.with_signature(signature)
    if call.scalar("return_varlen_states", False):
        raise CannotCount("return_varlen_states=True: the extra varlen chunk states "
                          "(chunk_state_varlen) have no rule")
    return call, dict(
        x=call.shape("x"), B=call.shape("B"), chunk_size=int_scalar(call, "chunk_size"),
        has_D=call.has_tensor("D"), has_z=call.has_tensor("z"),
        has_dt_bias=call.has_tensor("dt_bias"),
        dt_softplus=bool_scalar(call, "dt_softplus", False))


@counts("prim::PythonOp.MambaChunkScanCombinedFn", family="state-space scan")
def _mamba_chunk_scan_combined(call: OpCall) -> Cost:
    return rules.ssd_chunk_scan_macs(**chunk_scan_arguments(call)[1])


def split_conv1d_scan_arguments(call: OpCall) -> tuple:
    """The call named by its signature, and the layer's arguments as
    ``mamba_split_conv1d_scan_macs`` takes them."""
    call = call.with_signature(MAMBA_SPLIT_CONV1D_SCAN_SIGNATURE)
    D = call.shape("D")
    if len(D) == 2:
        nheads, headdim = D
    elif len(D) == 1:
        nheads, headdim = D[0], int_scalar(call, "headdim")
    else:
        raise CannotCount(f"D has shape {D}, expected (nheads,) or (nheads, headdim)")
    activation = call.scalar("activation", "silu")
    if activation not in (None, "silu", "swish"):
        raise CannotCount(f"activation {activation!r} is not one mamba-ssm supports")
    outproj = call.shape("outproj_weight") if call.has_tensor("outproj_weight") else None
    return call, dict(
        zxbcdt=call.shape("zxbcdt"), conv_weight=call.shape("conv1d_weight"), nheads=nheads,
        headdim=headdim, ngroups=int_scalar(call, "ngroups", 1),
        chunk_size=int_scalar(call, "chunk_size"), silu=activation is not None,
        rmsnorm=call.has_tensor("rmsnorm_weight"), outproj_weight=outproj)


@counts("prim::PythonOp.MambaSplitConv1dScanCombinedFn", family="state-space scan")
def _mamba_split_conv1d_scan_combined(call: OpCall) -> Cost:
    return rules.mamba_split_conv1d_scan_macs(**split_conv1d_scan_arguments(call)[1])


# Two mamba-ssm Functions share the name LayerNormFn; the argument layout tells them apart.
GATED_NORM_SIGNATURE = (
    # mamba_ssm/ops/triton/layernorm_gated.py: Mamba-2's RMSNormGated
    "x", "weight", "bias", "z", "eps", "group_size", "norm_before_gate", "is_rms_norm")
ADD_NORM_SIGNATURES = {
    # mamba_ssm/ops/triton/layer_norm.py: the fused residual add + norm of mamba-ssm 2.x blocks
    14: ("x", "weight", "bias", "residual", "x1", "weight1", "bias1", "eps", "dropout_p",
         "rowscale", "prenorm", "residual_in_fp32", "is_rms_norm", "return_dropout_mask"),
    # mamba-ssm 1.x (and hustvl/Vim's mamba-1p1p1)
    8: ("x", "weight", "bias", "residual", "eps", "prenorm", "residual_in_fp32", "is_rms_norm"),
}


def layer_norm_fn_layout(call: OpCall) -> tuple:
    """``("gated", call)`` or ``("add", call)``, the call named by its layout's signature."""
    n = len(call.args)
    if n == 8 and not isinstance(call.scalar(5), bool):   # group_size, not prenorm
        call = call.with_signature(GATED_NORM_SIGNATURE)
        group_size = call.scalar("group_size")
        if group_size is not None and not isinstance(group_size, int):
            raise CannotCount(f"group_size is {group_size!r}, not an int")
        return "gated", call
    if n not in ADD_NORM_SIGNATURES:
        raise CannotCount(f"unknown argument layout: {n} arguments; known LayerNormFn layouts "
                          f"have 8 (layernorm_gated, or mamba-ssm 1.x layer_norm) or 14")
    call = call.with_signature(ADD_NORM_SIGNATURES[n])
    for name in ("x1", "weight1", "rowscale"):
        if call.has_tensor(name):
            raise CannotCount(f"{name} is given: the parallel norm and rowscale are not counted")
    return "add", call


@counts("prim::PythonOp.LayerNormFn", family="normalization")
def _mamba_layer_norm(call: OpCall) -> Cost:
    layout, call = layer_norm_fn_layout(call)
    if layout == "gated":
        return rules.gated_norm_macs(
            call.shape("x"), call.scalar("group_size"),
            is_rms_norm=bool_scalar(call, "is_rms_norm", False),
            has_bias=call.has_tensor("bias"), gated=call.has_tensor("z"))
    x = call.shape("x")
    if bool_scalar(call, "is_rms_norm", False):
        norm = rules.rms_norm_macs(x, None, has_weight=call.has_tensor("weight"),
                                   has_bias=call.has_tensor("bias"))
    else:
        norm = rules.norm_macs(x, affine=call.has_tensor("weight"))
    residual = rules.elementwise_macs(x) if call.has_tensor("residual") else Cost()
    return norm + residual
