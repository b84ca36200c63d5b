"""Readers of Mamba's fused kernels (prim::PythonOp.<ClassName>): selective scans, CausalConv1dFn, MambaInnerFn and its variants, VMamba's cross scan/merge.

May import from :mod:`fvcore_ext.rules` and the rest of :mod:`fvcore_ext.ops` only.
"""
from __future__ import annotations


from .. import rules
from ..rules import Cost
from .opcall import CannotCount, OpCall, TensorArg
from .registry import (Reader, costs_nothing, counts)

# ---------------------------------------------------------------- Mamba (prim::PythonOp)
# Arguments are named by each Function's forward signature (after ctx), as defined upstream;
# OpCall.with_signature rebuilds them from cconv/scalar_args, so None arguments keep their place.

SELECTIVE_SCAN_SIGNATURES = {
    # state-spaces/mamba mamba_ssm/ops/selective_scan_interface.py
    "SelectiveScanFn": ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "delta_softplus",
                        "return_last_state"),
    # MzeroMiko/VMamba: no z argument; D always passed.
    "SelectiveScanMamba": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                           "nrows", "backnrows", "oflex"),
    "SelectiveScanCore": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "nrows", "backnrows", "oflex"),
    "SelectiveScanOflex": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                           "nrows", "backnrows", "oflex"),
    "SelectiveScanCuda": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "oflex", "backend"),
    "SelectiveScan": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus", "nrows"),
    "SelectiveScanNRow": ("u", "delta", "A", "B", "C", "D", "delta_bias", "delta_softplus",
                          "nrows", "backnrows"),
}


def _selective_scan_reader(signature: tuple) -> Reader:
    def read(call: OpCall) -> Cost:
        call = call.with_signature(signature)
        A = call.arg("A")
        return rules.selective_scan_macs(
            call.shape("u"), call.shape("A"), has_D=call.has_tensor("D"),
            has_z="z" in signature and call.has_tensor("z"),
            complex_A=isinstance(A, TensorArg) and A.is_complex)
    return read


for _name, _signature in SELECTIVE_SCAN_SIGNATURES.items():
    counts(f"prim::PythonOp.{_name}", family="state-space scan")(_selective_scan_reader(_signature))

# Dao-AILab/causal-conv1d causal_conv1d/causal_conv1d_interface.py
CAUSAL_CONV1D_SIGNATURE = ("x", "weight", "bias", "seq_idx", "initial_states",
                           "return_final_states", "final_states_out", "activation")


@counts("prim::PythonOp.CausalConv1dFn", family="state-space scan")
def _causal_conv1d(call: OpCall) -> Cost:
    call = call.with_signature(CAUSAL_CONV1D_SIGNATURE)
    activation = call.scalar("activation")
    if activation not in (None, "silu", "swish"):
        raise CannotCount(f"activation {activation!r} is not one causal-conv1d supports")
    return rules.causal_conv1d_macs(call.shape("x"), call.shape("weight"),
                                    silu=activation is not None)


MAMBA_INNER_SIGNATURE = (
    # mamba-ssm 2.x MambaInnerFn.forward; 1.x ends at checkpoint_lvl.
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight",
    "out_proj_weight", "out_proj_bias", "A", "B", "C", "D", "delta_bias", "B_proj_bias",
    "C_proj_bias", "delta_softplus", "checkpoint_lvl", "b_rms_weight", "c_rms_weight",
    "dt_rms_weight", "b_c_dt_rms_eps")
MAMBA_INNER_NO_OUT_PROJ_SIGNATURE = (
    # hustvl/Vim mamba-1p1p1 MambaInnerFnNoOutProj.forward
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight", "A", "B", "C",
    "D", "delta_bias", "B_proj_bias", "C_proj_bias", "delta_softplus", "checkpoint_lvl")
BIMAMBA_INNER_SIGNATURE = (
    # hustvl/Vim mamba-1p1p1 BiMambaInnerFn.forward
    "xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight",
    "out_proj_weight", "out_proj_bias", "A", "A_b", "B", "C", "D", "delta_bias", "B_proj_bias",
    "C_proj_bias", "delta_softplus", "checkpoint_lvl")


def inner_common(call: OpCall) -> dict:
    for name in ("b_rms_weight", "c_rms_weight", "dt_rms_weight"):
        if call.has_tensor(name):
            raise CannotCount(f"{name} is given: RMS-normed B/C/dt have no reference "
                              "implementation (mamba_inner_ref) to count against")
    A = call.arg("A")
    return dict(xz=call.shape("xz"), conv_weight=call.shape("conv1d_weight"),
                x_proj_weight=call.shape("x_proj_weight"),
                dt_proj_weight=call.shape("delta_proj_weight"), A=call.shape("A"),
                has_D=call.has_tensor("D"), B_proj_bias=call.has_tensor("B_proj_bias"),
                C_proj_bias=call.has_tensor("C_proj_bias"),
                complex_A=isinstance(A, TensorArg) and A.is_complex)


@counts("prim::PythonOp.MambaInnerFn", family="state-space scan")
def _mamba_inner(call: OpCall) -> Cost:
    call = call.with_signature(MAMBA_INNER_SIGNATURE)
    return rules.mamba_inner_macs(out_proj_weight=call.shape("out_proj_weight"),
                                  **inner_common(call))


@counts("prim::PythonOp.MambaInnerFnNoOutProj", family="state-space scan")
def _mamba_inner_no_out_proj(call: OpCall) -> Cost:
    call = call.with_signature(MAMBA_INNER_NO_OUT_PROJ_SIGNATURE)
    return rules.mamba_inner_macs(out_proj_weight=None, **inner_common(call))


@counts("prim::PythonOp.BiMambaInnerFn", family="state-space scan")
def _bimamba_inner(call: OpCall) -> Cost:
    call = call.with_signature(BIMAMBA_INNER_SIGNATURE)
    return rules.bimamba_inner_macs(out_proj_weight=call.shape("out_proj_weight"),
                                    A_b=call.shape("A_b"), **inner_common(call))


# VMamba's cross scan moves data (0); its cross merge sums the K scan directions back into one
# map: (B, K, D, H, W) → (B, D, H·W) is (K - 1)·B·D·L adds (elementwise). The one-by-one
# variants keep the K maps apart, which the same rule counts as 0.
CROSS_SCAN_FUNCTIONS = ("CrossScan", "CrossScan_Ab_1direction", "CrossScan_Ab_2direction",
                        "CrossScanTriton", "CrossScanTriton1b1", "CrossScanF",
                        "CrossScanTritonF", "CrossScanTriton1b1F")
CROSS_MERGE_FUNCTIONS = ("CrossMerge", "CrossMerge_Ab_1direction", "CrossMerge_Ab_2direction",
                         "CrossMergeTriton", "CrossMergeTriton1b1", "CrossMergeF",
                         "CrossMergeTritonF", "CrossMergeTriton1b1F")


counts(*(f"prim::PythonOp.{name}" for name in CROSS_SCAN_FUNCTIONS),
       family="zero-cost")(costs_nothing)


@counts(*(f"prim::PythonOp.{name}" for name in CROSS_MERGE_FUNCTIONS), family="elementwise")
def _cross_merge(call: OpCall) -> Cost:
    return rules.sum_of_terms_macs(call.shape(0), call.output_shape())
