"""Property-based tests (hypothesis) of the counting rules and of both tool adapters.

Part 1 checks every public rule of :mod:`fvcore_ext.rules` as a pure function of shapes. Each
rule is described by a :class:`RuleSpec`: named free sizes (every shape the rule receives is
built from them, so the shapes are always consistent with each other), flags, and an
*independent* expected ``(core, elementwise)`` written here from docs/conventions.md with
Python ints (never by calling another rule). On random points the tests check:

1. every result (``core``, ``elementwise``, ``macs("full")``, ``macs("paper")``) is a Python
   ``int`` and non-negative;
2. monotonicity: growing any one free size (which grows the matching dimension of every shape
   that has it), or switching on an optional part (a bias, a mask, D, z, ...), never lowers
   ``macs("full")`` nor ``macs("paper")``;
3. exactness against the independent formula (and, for the linear-algebra rules, against a
   brute-force count: the sum of ``ones @ ones`` is exactly the number of multiply-adds);
4. exact big integers: sizes whose totals pass 2**63 still give the exact Python-int product;
5. ``paper <= full`` (paper is ``core``, full is ``core + elementwise``) and the
   elementwise-only rules cost 0 under paper.

Part 2 traces tiny ``nn.Module``s built on random shapes and checks that fvcore (with the pack's
handles) and torchprofile (with the pack's handlers) give the same total and the same
per-operator table, equal to the rule's expected value, under both presets.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import torchprofile_ext
from fvcore_ext import rules
from fvcore_ext.rules import Cost
from tests.helpers import fvcore_count

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")

PRESETS = ("full", "paper")
INT64_MAX = 2 ** 63 - 1

# Pure rules are cheap: more examples. Traced models cost a JIT trace each: few, small shapes.
PURE = settings(max_examples=60, deadline=None, database=None)
TRACED = settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])

Point = dict[str, object]


# ================================================================ Part 1: the pure rules


@dataclass(frozen=True)
class RuleSpec:
    """One rule under test.

    Attributes:
        sizes: names of the free sizes (positive ints) all shapes are built from.
        flags: name -> the values that flag may take.
        call: point -> the rule's :class:`Cost` (builds consistent shapes, calls the rule).
        expected: point -> ``(core, elementwise)``, written independently of the pack.
        monotone_flags: name -> values ordered from cheapest to dearest: moving a flag to a
            later value adds work (an optional bias, a mask, a dimension growing from 1).
        huge: upper bound of the sizes in the big-integer tests; sizes just under it (with
            every optional part in use) make the total pass 2**63.
        elementwise_only: the rule counts only under the full preset (at every point, or at
            the points where this callable says so).
    """

    sizes: tuple[str, ...]
    flags: Mapping[str, Sequence[object]]
    call: Callable[[Point], Cost]
    expected: Callable[[Point], tuple[int, int]]
    monotone_flags: Mapping[str, Sequence[object]] = field(default_factory=dict)
    huge: int = 10 ** 5
    elementwise_only: bool | Callable[[Point], bool] = False


def prod(values) -> int:
    """Exact product of Python ints (independent of ``rules.numel``)."""
    return math.prod(int(v) for v in values)


# ---------------------------------------------------------------- linear algebra

MATMUL_BATCH = ("b0", "b1", "b2")


def _matmul_shapes(p: Point):
    """a (..., M, K) @ b (..., K, N) with up to three broadcast batch dims; where a flag
    ``a_one{i}``/``b_one{i}`` is set that operand has a 1 there; ``a_vec``/``b_vec`` make the
    operand 1-D (K,)."""
    def batch(rank, prefix):
        return tuple(1 if p[f"{prefix}_one{i}"] else p[MATMUL_BATCH[i]]
                     for i in range(3 - rank, 3))
    a = (p["K"],) if p["a_vec"] else batch(p["a_rank"], "a") + (p["M"], p["K"])
    b = (p["K"],) if p["b_vec"] else batch(p["b_rank"], "b") + (p["K"], p["N"])
    return a, b


def _matmul_expected(p: Point):
    # Independent: a batch position costs its size if either operand holds it at full size;
    # a 1-D operand contributes no M (or N) and no batch.
    batch = 1
    for i in range(3):
        a_full = not p["a_vec"] and i >= 3 - p["a_rank"] and not p[f"a_one{i}"]
        b_full = not p["b_vec"] and i >= 3 - p["b_rank"] and not p[f"b_one{i}"]
        if a_full or b_full:
            batch *= p[MATMUL_BATCH[i]]
    m = 1 if p["a_vec"] else p["M"]
    n = 1 if p["b_vec"] else p["N"]
    return batch * m * p["K"] * n, 0


_one_flags = {f"{side}_one{i}": (True, False) for side in "ab" for i in range(3)}

MATMUL = RuleSpec(
    sizes=MATMUL_BATCH + ("M", "K", "N"),
    flags={"a_rank": (0, 1, 2, 3), "b_rank": (0, 1, 2, 3), "a_vec": (False, True),
           "b_vec": (False, True), **_one_flags},
    call=lambda p: rules.matmul_macs(*_matmul_shapes(p)),
    expected=_matmul_expected,
    # A dimension growing from 1 to its full size, a 1-D operand becoming 2-D, or an operand
    # gaining leading batch dims never lowers the count.
    monotone_flags={"a_rank": (0, 1, 2, 3), "b_rank": (0, 1, 2, 3), "a_vec": (True, False),
                    "b_vec": (True, False), **_one_flags},
    huge=2 ** 11,
)

ADDMM = RuleSpec(
    sizes=("n", "k", "m"), flags={},
    call=lambda p: rules.addmm_macs((p["n"], p["k"]), (p["k"], p["m"])),
    expected=lambda p: (p["n"] * p["k"] * p["m"], 0),
    huge=2 ** 22,
)

BMM = RuleSpec(
    sizes=("n", "c", "t", "d"), flags={},
    call=lambda p: rules.bmm_macs((p["n"], p["c"], p["t"]), (p["n"], p["t"], p["d"])),
    expected=lambda p: (p["n"] * p["c"] * p["t"] * p["d"], 0),
    huge=2 ** 16,
)


def _linear_shapes(p: Point):
    x = (p["l0"], p["l1"])[2 - p["lead"]:] + (p["in"],)
    w = (p["in"],) if p["w_vec"] else (p["out"], p["in"])
    return x, w


LINEAR = RuleSpec(
    sizes=("l0", "l1", "in", "out"),
    flags={"lead": (0, 1, 2), "w_vec": (False, True)},
    call=lambda p: rules.linear_macs(*_linear_shapes(p)),
    # numel(x) * out_features; a 1-D weight (in,) has one output feature.
    expected=lambda p: (prod((p["l0"], p["l1"])[2 - p["lead"]:]) * p["in"]
                        * (1 if p["w_vec"] else p["out"]), 0),
    monotone_flags={"lead": (0, 1, 2), "w_vec": (True, False)},
    huge=2 ** 16,
)

BILINEAR = RuleSpec(
    sizes=("l0", "l1", "in1", "in2", "out"),
    flags={"lead": (0, 1, 2)},
    call=lambda p: rules.bilinear_macs((p["l0"], p["l1"])[2 - p["lead"]:] + (p["in1"],),
                                       (p["out"], p["in1"], p["in2"])),
    # one MAC per term x1_i·A_kij·x2_j of each output of each row
    expected=lambda p: (prod((p["l0"], p["l1"])[2 - p["lead"]:]) * p["out"] * p["in1"]
                        * p["in2"], 0),
    monotone_flags={"lead": (0, 1, 2)},
    huge=2 ** 13,
)

TRILINEAR = RuleSpec(
    sizes=("n", "in1", "in2", "out"), flags={},
    # nn.Bilinear's forward kernel: _trilinear(x1 (n, in1), A (out, in1, in2), x2 (n, in2),
    # [1, 3], [0], [1, 2], sumdim [2, 3]): the broadcast (n, out, in1, in2)
    call=lambda p: rules.trilinear_macs(
        [(p["n"], p["in1"]), (p["out"], p["in1"], p["in2"]), (p["n"], p["in2"])],
        [[1, 3], [0], [1, 2]]),
    expected=lambda p: (p["n"] * p["out"] * p["in1"] * p["in2"], 0),
    huge=2 ** 16,
)

# Two-operand contractions (at least one summed index): MACs = product of the sizes of all
# distinct indices. Index c has size p["idx_c"].
EINSUM_EQUATIONS = ("ij,jk->ik", "bij,bjk->bik", "bhld,bhsd->bhls", "bkdl,kcd->bkcl",
                    "ij,ij->i", "i,i->")


def _einsum_operands(p: Point):
    equation = p["equation"]
    inputs = equation.split("->")[0].split(",")
    return [tuple(p["idx_" + c] for c in term) for term in inputs]


def _einsum_expected(p: Point):
    letters = set(p["equation"].replace(",", "").replace("->", ""))
    return prod(p["idx_" + c] for c in letters), 0


EINSUM = RuleSpec(
    sizes=tuple("idx_" + c for c in "bcdhijkls"),
    flags={"equation": EINSUM_EQUATIONS},
    call=lambda p: rules.einsum_macs(p["equation"], _einsum_operands(p)),
    expected=_einsum_expected,
    huge=2 ** 16,
)


def _conv_shapes(p: Point):
    """x (B, C_in, *S_in), weight (C_out, C_in/g, *k) or, transposed, (C_in, C_out/g, *k),
    out (B, C_out, *S_out), for 1-, 2- and 3-D convolutions."""
    nd, g = p["nd"], p["g"]
    c_in, c_out = g * p["cin_g"], g * p["cout_g"]
    k = (p["k0"], p["k1"], p["k2"])[:nd]
    s_in = (p["s0"], p["s1"], p["s2"])[:nd]
    s_out = (p["o0"], p["o1"], p["o2"])[:nd]
    weight = (c_in, p["cout_g"]) + k if p["transposed"] else (c_out, p["cin_g"]) + k
    return (p["B"], c_in) + s_in, weight, (p["B"], c_out) + s_out


def _conv_expected(p: Point):
    nd, g = p["nd"], p["g"]
    k = prod((p["k0"], p["k1"], p["k2"])[:nd])
    if p["transposed"]:  # over the input's spatial size
        return p["B"] * g * p["cin_g"] * p["cout_g"] * k * prod((p["s0"], p["s1"], p["s2"])[:nd]), 0
    return p["B"] * g * p["cout_g"] * p["cin_g"] * k * prod((p["o0"], p["o1"], p["o2"])[:nd]), 0


CONV = RuleSpec(
    sizes=("B", "g", "cin_g", "cout_g", "k0", "k1", "k2", "s0", "s1", "s2", "o0", "o1", "o2"),
    flags={"nd": (1, 2, 3), "transposed": (False, True)},
    call=lambda p: rules.conv_macs(*_conv_shapes(p), p["transposed"]),
    expected=_conv_expected,
    monotone_flags={"nd": (1, 2, 3)},
    huge=2 ** 7,
)

# ---------------------------------------------------------------- normalisation, elementwise

DIMS4 = ("d0", "d1", "d2", "d3")


def _dims(p: Point, rank_key: str = "rank") -> tuple:
    return tuple(p[d] for d in DIMS4[:p[rank_key]])


NORM = RuleSpec(
    sizes=DIMS4, flags={"rank": (1, 2, 3, 4), "affine": (False, True)},
    call=lambda p: rules.norm_macs(_dims(p), p["affine"]),
    expected=lambda p: ((5 if p["affine"] else 4) * prod(_dims(p)), 0),
    monotone_flags={"rank": (1, 2, 3, 4), "affine": (False, True)},
    huge=2 ** 16,
)


def _batch_norm_expected(p: Point):
    if p["training"]:  # batch statistics: as layer norm
        per = 5 if p["affine"] else 4
    else:  # running statistics fold into one scale (and shift)
        per = 2 if p["affine"] else 1
    return per * prod(_dims(p)), 0


BATCH_NORM = RuleSpec(
    sizes=DIMS4,
    flags={"rank": (2, 3, 4), "affine": (False, True), "training": (False, True)},
    call=lambda p: rules.batch_norm_macs(_dims(p), p["affine"], p["training"]),
    expected=_batch_norm_expected,
    monotone_flags={"rank": (2, 3, 4), "affine": (False, True), "training": (False, True)},
    huge=2 ** 16,
)

def _one_per_element(rule) -> RuleSpec:
    """A rule costing 1 elementwise MAC per element of its one shape, of rank 0 to 4."""
    return RuleSpec(
        sizes=DIMS4, flags={"rank": (0, 1, 2, 3, 4)},
        call=lambda p: rule(_dims(p)),
        expected=lambda p: (0, prod(_dims(p))),
        monotone_flags={"rank": (0, 1, 2, 3, 4)},
        huge=2 ** 16, elementwise_only=True,
    )


ELEMENTWISE = _one_per_element(rules.elementwise_macs)
REDUCTION = _one_per_element(rules.reduction_macs)

SUM_OF_TERMS = RuleSpec(
    # VMamba's CrossMerge: K maps (B, K, D, H, W) summed into (B, D, H*W).
    sizes=("B", "K", "D", "H", "W"), flags={},
    call=lambda p: rules.sum_of_terms_macs((p["B"], p["K"], p["D"], p["H"], p["W"]),
                                           (p["B"], p["D"], p["H"] * p["W"])),
    expected=lambda p: (0, (p["K"] - 1) * p["B"] * p["D"] * p["H"] * p["W"]),
    huge=2 ** 13, elementwise_only=True,
)

# ---------------------------------------------------------------- resampling

# Input taps per output element: nearest 1, (bi/tri)linear 2**spatial dims, bicubic 4 x 4.
UPSAMPLE_TAPS = {"nearest": 1, "nearest_exact": 1, "linear": 2 ** 1, "bilinear": 2 ** 2,
                 "trilinear": 2 ** 3, "bicubic": 4 ** 2}


def _upsample_out(p: Point) -> tuple:
    return (p["N"], p["C"]) + (p["o0"], p["o1"], p["o2"])[:p["nd"]]


UPSAMPLE = RuleSpec(
    sizes=("N", "C", "o0", "o1", "o2"), flags={"mode": tuple(UPSAMPLE_TAPS), "nd": (1, 2, 3)},
    call=lambda p: rules.upsample_macs(p["mode"], _upsample_out(p)),
    expected=lambda p: (UPSAMPLE_TAPS[p["mode"]] * prod(_upsample_out(p)), 0),
    monotone_flags={"nd": (1, 2, 3)},
    huge=2 ** 13,
)

GRID_SAMPLE = RuleSpec(
    sizes=("N", "C", "o0", "o1", "o2"), flags={"volumetric": (False, True)},
    call=lambda p: rules.grid_sample_macs(
        (p["N"], p["C"], p["o0"], p["o1"]) + ((p["o2"],) if p["volumetric"] else ())),
    expected=lambda p: (4 * p["N"] * p["C"] * p["o0"] * p["o1"]
                        * (p["o2"] if p["volumetric"] else 1), 0),
    monotone_flags={"volumetric": (False, True)},
    huge=2 ** 15,
)

# ---------------------------------------------------------------- attention


def _sdpa_shapes(p: Point):
    """q (B, Hkv*G, L, E), k (B, Hkv, S, E), v (B, Hkv, S, Ev) with ``lead`` leading dims
    (0: none, 1: heads only, 2: batch and heads); ``q_b1`` / ``kv_b1`` broadcast q's or k/v's
    batch dim (size 1). G > 1 is GQA, Hkv = 1 MQA."""
    def lead(heads, batch_one):
        dims = (1 if batch_one else p["B"], heads)
        return dims[2 - p["lead"]:]
    q = lead(p["Hkv"] * p["G"], p["q_b1"]) + (p["L"], p["E"])
    k = lead(p["Hkv"], p["kv_b1"]) + (p["S"], p["E"])
    v = lead(p["Hkv"], p["kv_b1"]) + (p["S"], p["Ev"])
    return q, k, v


def _sdpa_expected(p: Point):
    heads = p["Hkv"] * p["G"] if p["lead"] >= 1 else 1
    batch = p["B"] if p["lead"] == 2 and not (p["q_b1"] and p["kv_b1"]) else 1
    scores = batch * heads * p["L"] * p["S"]
    core = scores * p["E"] + scores * p["Ev"]             # q @ kᵀ, then attn @ v
    elementwise = scores + scores + (scores if p["mask"] == "float" else 0)  # scale, softmax, +mask
    return core, elementwise


SDPA = RuleSpec(
    sizes=("B", "Hkv", "G", "L", "S", "E", "Ev"),
    flags={"mask": (None, "bool", "float"), "lead": (0, 1, 2), "q_b1": (False, True),
           "kv_b1": (False, True)},
    call=lambda p: rules.sdpa_macs(*_sdpa_shapes(p), mask=p["mask"]),
    expected=_sdpa_expected,
    monotone_flags={"mask": (None, "bool", "float"), "lead": (0, 1, 2), "q_b1": (True, False),
                    "kv_b1": (True, False)},
    huge=2 ** 11,
)


def _mha_expected_parts(b, l, s, h, hd, need_weights, average, has_mask):
    """What F.multi_head_attention_forward computes, term by term (E = H * head_dim)."""
    e = h * hd
    in_proj = b * l * e * e + b * s * e * e + b * s * e * e      # q, k, v projections
    attention = b * h * l * s * hd + b * h * l * s * hd          # q @ kᵀ and attn @ v per head
    out_proj = b * l * e * e
    scores = b * h * l * s
    if need_weights:  # q scaled explicitly, softmax, optional mean over heads
        elementwise = b * l * e + scores + (scores if average else 0)
    else:             # SDPA: scale and softmax
        elementwise = scores + scores
    if has_mask:      # any mask becomes an additive float mask
        elementwise += scores
    return in_proj + attention + out_proj, elementwise


def _mha_call(p: Point) -> Cost:
    e = p["H"] * p["hd"]
    s = p["L"] if p["self_attn"] else p["S"]
    return rules.native_mha_macs((p["B"], p["L"], e), (p["B"], s, e), p["H"],
                                 p["need_weights"], p["average"], p["has_mask"])


NATIVE_MHA = RuleSpec(
    sizes=("B", "L", "S", "H", "hd"),
    flags={"need_weights": (False, True), "average": (False, True), "has_mask": (False, True),
           "self_attn": (False, True)},
    call=_mha_call,
    expected=lambda p: _mha_expected_parts(p["B"], p["L"], p["L"] if p["self_attn"] else p["S"],
                                           p["H"], p["hd"], p["need_weights"], p["average"],
                                           p["has_mask"]),
    monotone_flags={"average": (False, True), "has_mask": (False, True)},
    huge=2 ** 11,
)


def _encoder_layer_expected(p: Point):
    b, l, e, f = p["B"], p["L"], p["H"] * p["hd"], p["F"]
    attn_core, attn_elementwise = _mha_expected_parts(b, l, l, p["H"], p["hd"], False, False,
                                                      p["has_mask"])
    norms = 2 * (5 if p["norm_affine"] else 4) * b * l * e   # two LayerNorms (core, as fvcore)
    ffn = b * l * e * f + b * l * f * e                      # linear1, linear2
    gelu = b * l * f if p["use_gelu"] else 0                 # ReLU costs 0
    residuals = 2 * b * l * e
    return attn_core + norms + ffn, attn_elementwise + gelu + residuals


TRANSFORMER_ENCODER_LAYER = RuleSpec(
    sizes=("B", "L", "H", "hd", "F"),
    flags={"use_gelu": (False, True), "norm_affine": (False, True), "has_mask": (False, True)},
    call=lambda p: rules.transformer_encoder_layer_macs(
        (p["B"], p["L"], p["H"] * p["hd"]), p["H"], p["F"], p["use_gelu"], p["norm_affine"],
        p["has_mask"]),
    expected=_encoder_layer_expected,
    monotone_flags={"use_gelu": (False, True), "norm_affine": (False, True),
                    "has_mask": (False, True)},
    huge=2 ** 12,
)

# ---------------------------------------------------------------- Mamba


def _scan_expected(b, d, l, n, has_D, has_z, complex_A):
    states = 2 * n if complex_A else n          # N complex states are 2N real ones
    return 9 * b * l * d * states + (b * d * l if has_D else 0) + (b * d * l if has_z else 0)


SELECTIVE_SCAN = RuleSpec(
    sizes=("B", "D", "L", "N"),
    flags={"has_D": (False, True), "has_z": (False, True), "complex_A": (False, True)},
    call=lambda p: rules.selective_scan_macs((p["B"], p["D"], p["L"]), (p["D"], p["N"]),
                                             p["has_D"], p["has_z"], p["complex_A"]),
    expected=lambda p: (_scan_expected(p["B"], p["D"], p["L"], p["N"], p["has_D"], p["has_z"],
                                       p["complex_A"]), 0),
    monotone_flags={"has_D": (False, True), "has_z": (False, True),
                    "complex_A": (False, True)},
    huge=2 ** 15,
)

CAUSAL_CONV1D = RuleSpec(
    sizes=("B", "D", "L", "W"), flags={"silu": (False, True)},
    call=lambda p: rules.causal_conv1d_macs((p["B"], p["D"], p["L"]), (p["D"], p["W"]),
                                            p["silu"]),
    expected=lambda p: (p["B"] * p["D"] * p["L"] * p["W"],
                        p["B"] * p["D"] * p["L"] if p["silu"] else 0),
    monotone_flags={"silu": (False, True)},
    huge=2 ** 16,
)

INNER_SIZES = ("B", "D", "L", "N", "R", "W", "d_out")
INNER_FLAGS = {"has_D": (False, True), "B_bias": (False, True), "C_bias": (False, True),
               "complex_A": (False, True)}


def _inner_weights(p: Point) -> dict:
    """Shapes as mamba_inner_ref reads them: xz (B, 2D, L), conv (D, 1, W),
    x_proj (R + 2·d_state, D) with d_state = 2N for a complex A (D, N), dt_proj (D, R)."""
    d_state = p["N"] * (2 if p["complex_A"] else 1)
    return {"xz": (p["B"], 2 * p["D"], p["L"]), "conv_weight": (p["D"], 1, p["W"]),
            "x_proj_weight": (p["R"] + 2 * d_state, p["D"]), "dt_proj_weight": (p["D"], p["R"]),
            "A": (p["D"], p["N"]), "has_D": p["has_D"], "B_proj_bias": p["B_bias"],
            "C_proj_bias": p["C_bias"], "complex_A": p["complex_A"]}


def _inner_expected_parts(p: Point, scans: int, out_proj: bool):
    b, d, l, n, r, w = (p[k] for k in ("B", "D", "L", "N", "R", "W"))
    d_state = n * (2 if p["complex_A"] else 1)
    core = (b * d * l * w                                    # causal conv1d
            + b * l * d * (r + 2 * d_state)                  # x_proj
            + b * l * d * r                                  # dt_proj
            + scans * _scan_expected(b, d, l, n, p["has_D"], True, p["complex_A"])
            + (b * l * d * p["d_out"] if out_proj else 0))   # out_proj
    elementwise = (b * d * l                                 # silu after the conv
                   + b * l * d_state * (int(p["B_bias"]) + int(p["C_bias"])))
    return core, elementwise


MAMBA_INNER = RuleSpec(
    sizes=INNER_SIZES, flags={**INNER_FLAGS, "out_proj": (False, True)},
    call=lambda p: rules.mamba_inner_macs(
        out_proj_weight=(p["d_out"], p["D"]) if p["out_proj"] else None, **_inner_weights(p)),
    expected=lambda p: _inner_expected_parts(p, scans=1, out_proj=p["out_proj"]),
    monotone_flags={**INNER_FLAGS, "out_proj": (False, True)},
    huge=2 ** 16,
)


def _bimamba_expected(p: Point):
    core, elementwise = _inner_expected_parts(p, scans=2, out_proj=True)
    return core, elementwise + p["B"] * p["D"] * p["L"]       # y + y_b.flip(-1)


BIMAMBA_INNER = RuleSpec(
    sizes=INNER_SIZES, flags=INNER_FLAGS,
    call=lambda p: rules.bimamba_inner_macs(
        out_proj_weight=(p["d_out"], p["D"]), A_b=(p["D"], p["N"]), **_inner_weights(p)),
    expected=_bimamba_expected,
    monotone_flags=INNER_FLAGS,
    huge=2 ** 16,
)

# ---------------------------------------------------------------- RMSNorm and Mamba-2


def _rms_expected(numel: int, groups: int, weight: bool, bias: bool) -> int:
    # pow, mean, the normalising mul, weight mul, bias add per element; add eps, rsqrt per group
    return (3 + int(weight) + int(bias)) * numel + 2 * groups


RMS_NORM = RuleSpec(
    sizes=("M", "G", "d"), flags={"grouped": (False, True), "weight": (False, True),
                                  "bias": (False, True)},
    call=lambda p: rules.rms_norm_macs((p["M"], p["G"] * p["d"]),
                                       p["d"] if p["grouped"] else None, p["weight"], p["bias"]),
    expected=lambda p: (0, _rms_expected(p["M"] * p["G"] * p["d"],
                                         p["M"] * (p["G"] if p["grouped"] else 1),
                                         p["weight"], p["bias"])),
    monotone_flags={"grouped": (False, True), "weight": (False, True), "bias": (False, True)},
    huge=2 ** 21,
    elementwise_only=True,
)


def _gated_norm_expected(p: Point):
    numel = p["M"] * p["G"] * p["d"]
    gate = 2 * numel if p["gated"] else 0               # silu(z) and the product
    if p["rms"]:
        groups = p["M"] * (p["G"] if p["grouped"] else 1)
        return 0, _rms_expected(numel, groups, True, p["bias"]) + gate
    return 5 * numel, gate                              # fvcore's group_norm, affine


GATED_NORM = RuleSpec(
    sizes=("M", "G", "d"),
    flags={"grouped": (False, True), "rms": (False, True), "bias": (False, True),
           "gated": (False, True)},
    call=lambda p: rules.gated_norm_macs((p["M"], p["G"] * p["d"]),
                                         p["d"] if p["grouped"] else None, p["rms"],
                                         p["bias"], p["gated"]),
    expected=_gated_norm_expected,
    monotone_flags={"grouped": (False, True), "bias": (False, True), "gated": (False, True)},
    huge=2 ** 21,
    elementwise_only=lambda p: p["rms"],
)

# The sequence is c - 1 full chunks of Q plus a last chunk of min(R, Q) steps, so growing Q
# (with c and R fixed) lengthens it; heads are G groups of Hg heads.
SSD_SIZES = ("B", "c", "Q", "R", "G", "Hg", "P", "N")


def _ssd_dims(p: Point):
    last = min(p["R"], p["Q"])
    length = (p["c"] - 1) * p["Q"] + last
    return length, p["G"] * p["Hg"], (p["c"] - 1) * p["Q"] ** 2 + last ** 2


def _ssd_expected(p: Point, has_D: bool, has_z: bool, has_dt_bias: bool, softplus: bool):
    b, c, g, n, hp = p["B"], p["c"], p["G"], p["N"], p["G"] * p["Hg"] * p["P"]
    l, h, S = _ssd_dims(p)
    core = (b * g * n * S            # C·Bᵀ within chunks, per group
            + b * hp * S             # masked, decayed scores times dt·x
            + b * hp * n * l         # chunk states
            + b * hp * n * c         # state passing
            + b * hp * n * l         # C · states
            + b * l * hp * (int(has_D) + int(has_z)))
    elementwise = b * l * h * (2 + int(has_dt_bias) + int(softplus)) + b * h * (S + 2 * l + c)
    return core, elementwise


SSD_CHUNK_SCAN = RuleSpec(
    sizes=SSD_SIZES,
    flags={"D": (False, True), "z": (False, True), "dt_bias": (False, True),
           "softplus": (False, True)},
    call=lambda p: rules.ssd_chunk_scan_macs(
        (p["B"], _ssd_dims(p)[0], p["G"] * p["Hg"], p["P"]),
        (p["B"], _ssd_dims(p)[0], p["G"], p["N"]), p["Q"], p["D"], p["z"], p["dt_bias"],
        p["softplus"]),
    expected=lambda p: _ssd_expected(p, p["D"], p["z"], p["dt_bias"], p["softplus"]),
    monotone_flags={"D": (False, True), "z": (False, True), "dt_bias": (False, True),
                    "softplus": (False, True)},
    huge=2 ** 9,
)


def _split_conv1d_args(p: Point) -> tuple:
    l, h, _ = _ssd_dims(p)
    dim, gn = h * p["P"], p["G"] * p["N"]
    mlp = p["mlp"] if p["gated_mlp"] else 0
    zxbcdt = (p["B"], l, 2 * mlp + 2 * dim + 2 * gn + h)
    return (zxbcdt, (dim + 2 * gn, p["W"]), h, p["P"], p["G"], p["Q"], p["silu"], p["rmsnorm"],
            (p["out"], mlp + dim) if p["outproj"] else None)


def _split_conv1d_call(p: Point) -> Cost:
    return rules.mamba_split_conv1d_scan_macs(*_split_conv1d_args(p))


def _split_conv1d_expected(p: Point):
    b, (l, h, _) = p["B"], _ssd_dims(p)
    dim = h * p["P"]
    mlp = p["mlp"] if p["gated_mlp"] else 0
    channels = dim + 2 * p["G"] * p["N"]
    core, elementwise = _ssd_expected(p, True, not p["rmsnorm"], True, True)
    core += b * channels * l * p["W"]                           # causal conv1d
    elementwise += b * channels * l if p["silu"] else 0         # its activation
    if p["rmsnorm"]:                                            # gated, groups of dim / G
        elementwise += _rms_expected(b * l * dim, b * l * p["G"], True, False) + 2 * b * l * dim
    elementwise += 2 * b * l * mlp                              # silu(z0) · x0
    core += b * l * (mlp + dim) * p["out"] if p["outproj"] else 0
    return core, elementwise


MAMBA_SPLIT_CONV1D_SCAN = RuleSpec(
    sizes=SSD_SIZES + ("W", "mlp", "out"),
    flags={"silu": (False, True), "rmsnorm": (False, True), "gated_mlp": (False, True),
           "outproj": (False, True)},
    call=_split_conv1d_call,
    expected=_split_conv1d_expected,
    monotone_flags={"silu": (False, True), "gated_mlp": (False, True),
                    "outproj": (False, True)},
    huge=2 ** 9,
)

# ---------------------------------------------------------------- coverage rules

GROUPED_MM_LAYOUTS = ("2d3d", "3d3d", "2d2d", "3d2d")


def _grouped_mm_shapes(p: Point):
    a = (p["M"], p["K"]) if p["layout"].startswith("2d") else (p["E"], p["M"], p["K"])
    b = (p["E"], p["K"], p["N"]) if p["layout"].endswith("3d") else (p["K"], p["N"])
    return a, b


GROUPED_MM = RuleSpec(
    # MoE experts: routed rows (M, K) @ experts (E, K, N); batched (E, M, K) @ (E, K, N); K or
    # N split into groups by offsets. Only the batched layout multiplies by E.
    sizes=("E", "M", "K", "N"), flags={"layout": GROUPED_MM_LAYOUTS},
    call=lambda p: rules.grouped_mm_macs(*_grouped_mm_shapes(p)),
    expected=lambda p: ((p["E"] if p["layout"] == "3d3d" else 1) * p["M"] * p["K"] * p["N"], 0),
    huge=2 ** 22,
)

TRIANGULAR_SOLVE = RuleSpec(
    # A (n, n) broadcast over B (b, n, k): b·k columns, each n(n-1)/2 products, n divides
    sizes=("b", "n", "k"), flags={"unitriangular": (True, False)},
    call=lambda p: rules.triangular_solve_macs((p["n"], p["n"]), (p["b"], p["n"], p["k"]),
                                               p["unitriangular"]),
    expected=lambda p: (p["b"] * p["k"] * (p["n"] * (p["n"] - 1) // 2)
                        + (0 if p["unitriangular"] else p["b"] * p["n"] * p["k"]), 0),
    monotone_flags={"unitriangular": (True, False)},
    huge=2 ** 22,
    # a unit-triangular 1 x 1 system is solved by doing nothing: 0 under both presets
    elementwise_only=lambda p: p["n"] == 1 and p["unitriangular"],
)

# (gates, elementwise ops per hidden unit and step), from the cell equations of nn.LSTM,
# nn.GRU and nn.RNN.
RNN_CELLS = {"lstm": (4, 13), "gru": (3, 11), "rnn_tanh": (1, 2), "rnn_relu": (1, 1)}


def _rnn_call(p: Point) -> Cost:
    gates = RNN_CELLS[p["mode"]][0]
    w_ih, w_hh = (gates * p["h"], p["i"]), (gates * p["h"], p["h"])
    directions = 2 if p["bidirectional"] else 1
    return rules.rnn_macs(p["mode"], p["t"], [w_ih, w_hh] * directions, [w_ih] * directions)


def _rnn_expected(p: Point):
    gates, per_unit = RNN_CELLS[p["mode"]]
    directions = 2 if p["bidirectional"] else 1
    return (directions * p["t"] * gates * p["h"] * (p["i"] + p["h"]),
            directions * per_unit * p["t"] * p["h"])


RNN = RuleSpec(
    sizes=("t", "i", "h"), flags={"mode": tuple(RNN_CELLS), "bidirectional": (False, True)},
    call=_rnn_call, expected=_rnn_expected,
    monotone_flags={"bidirectional": (False, True)},
    huge=2 ** 22,
)


def _stages(n: int) -> int:
    """Radix-2 stages of a length-n FFT: the least s with 2**s >= n."""
    s = 0
    while 2 ** s < n:
        s += 1
    return s


def _fft_dims(p: Point) -> list:
    return list(range(max(0, p["rank"] - p["nd"]), p["rank"]))


FFT = RuleSpec(
    # a transform over the last nd dims of a rank-r signal
    sizes=DIMS4, flags={"rank": (1, 2, 3, 4), "nd": (1, 2, 3, 4)},
    call=lambda p: rules.fft_macs(_dims(p), _fft_dims(p)),
    expected=lambda p: (prod(_dims(p)) * sum(_stages(_dims(p)[d]) for d in _fft_dims(p)), 0),
    monotone_flags={"nd": (1, 2, 3, 4)},
    huge=2 ** 16,
    # a transform of length 1 along every dim is the identity: 0 under both presets
    elementwise_only=lambda p: all(_dims(p)[d] == 1 for d in _fft_dims(p)),
)

WEIGHT_NORM = RuleSpec(
    # v (out, in, k), g (out, 1, 1): the norm and the product read v, the quotient g
    sizes=("o", "i", "k"), flags={},
    call=lambda p: rules.weight_norm_macs((p["o"], p["i"], p["k"]), (p["o"], 1, 1)),
    expected=lambda p: (0, 2 * p["o"] * p["i"] * p["k"] + p["o"]),
    huge=2 ** 21, elementwise_only=True,
)


# ---------------------------------------------------------------- backward (training)

CONV_BACKWARD = RuleSpec(
    sizes=CONV.sizes,
    flags={"nd": (1, 2, 3), "transposed": (False, True), "input_grad": (False, True),
           "weight_grad": (False, True), "bias_grad": (False, True)},
    call=lambda p: rules.conv_backward_macs(*_conv_shapes(p), p["transposed"], p["input_grad"],
                                            p["weight_grad"], p["bias_grad"]),
    # each of the input and weight gradients is a convolution of the forward's size; the bias
    # gradient sums the output gradient
    expected=lambda p: (_conv_expected(p)[0] * (p["input_grad"] + p["weight_grad"]),
                        prod(_conv_shapes(p)[2]) if p["bias_grad"] else 0),
    monotone_flags={"input_grad": (False, True), "weight_grad": (False, True),
                    "bias_grad": (False, True)},
    huge=2 ** 7,
    elementwise_only=lambda p: not (p["input_grad"] or p["weight_grad"]),
)

NORM_BACKWARD = RuleSpec(
    sizes=DIMS4,
    flags={"rank": (1, 2, 3, 4), "affine": (False, True), "input_grad": (False, True),
           "weight_grad": (False, True), "bias_grad": (False, True),
           "running_stats": (False, True)},
    call=lambda p: rules.norm_backward_macs(_dims(p), p["affine"], p["input_grad"],
                                            p["weight_grad"], p["bias_grad"],
                                            p["running_stats"]),
    # dx = r·(g − mean(g) − x̂·mean(g·x̂)): 9 per element (+1 for g = dy·γ); with running
    # statistics dx = dy·γr: 1; dγ = Σ dy·x̂: 2; dβ = Σ dy: 1
    expected=lambda p: (prod(_dims(p)) * (
        (0 if not p["input_grad"] else 1 if p["running_stats"] else 9 + p["affine"])
        + 2 * p["weight_grad"] + p["bias_grad"]), 0),
    monotone_flags={"rank": (1, 2, 3, 4), "weight_grad": (False, True),
                    "bias_grad": (False, True)},
    huge=2 ** 16,
    elementwise_only=lambda p: not (p["input_grad"] or p["weight_grad"] or p["bias_grad"]),
)


def _sdpa_backward_expected(p: Point):
    core, _ = _sdpa_expected(dict(p, mask=None))
    scores = core // (p["E"] + p["Ev"])
    needs_scores = p["dq"] or p["dk"]
    # dV = Pᵀ dO; dP = dO Vᵀ; dQ = dS K; dK = dSᵀ Q; softmax and scale gradients
    return (scores * p["Ev"] * (p["dv"] + needs_scores)
            + scores * p["E"] * (p["dq"] + p["dk"]), 2 * scores * needs_scores)


SDPA_BACKWARD = RuleSpec(
    sizes=SDPA.sizes,
    flags={"lead": (0, 1, 2), "q_b1": (False, True), "kv_b1": (False, True),
           "dq": (False, True), "dk": (False, True), "dv": (False, True)},
    call=lambda p: rules.sdpa_backward_macs(*_sdpa_shapes(p), p["dq"], p["dk"], p["dv"]),
    expected=_sdpa_backward_expected,
    monotone_flags={"dq": (False, True), "dk": (False, True), "dv": (False, True)},
    huge=2 ** 11,
    elementwise_only=lambda p: not (p["dq"] or p["dk"] or p["dv"]),
)


RMS_NORM_BACKWARD = RuleSpec(
    sizes=DIMS4,
    flags={"rank": (1, 2, 3, 4), "weight": (False, True), "input_grad": (False, True),
           "weight_grad": (False, True), "bias_grad": (False, True)},
    call=lambda p: rules.rms_norm_backward_macs(_dims(p), p["weight"], p["input_grad"],
                                                p["weight_grad"], p["bias_grad"]),
    # dx = r·(g − x̂·mean(g·x̂)): 6 per element (+1 for g = dy·γ); dγ: 2; dβ: 1
    expected=lambda p: (0, prod(_dims(p)) * ((6 + p["weight"]) * p["input_grad"]
                                             + 2 * p["weight_grad"] + p["bias_grad"])),
    monotone_flags={"rank": (1, 2, 3, 4), "weight": (False, True),
                    "input_grad": (False, True), "weight_grad": (False, True),
                    "bias_grad": (False, True)},
    huge=2 ** 16, elementwise_only=True,
)


def _scan_backward_expected(p: Point) -> int:
    var_b, var_c = p["B_varies"], p["C_varies"]
    per_state = {(False, False): 20, (False, True): 24, (True, False): 25, (True, True): 25}
    states = 2 * p["N"] if p["complex_A"] else p["N"]
    return p["B"] * p["D"] * p["L"] * (per_state[var_b, var_c] * states + 2 * p["has_D"]
                                       + 5 * p["has_z"] + p["softplus"])


def _scan_operand(p: Point, name: str):
    # constant (D, N), or varying along the sequence: (B, N, L) or grouped (B, G, N, L)
    if not p[f"{name}_varies"]:
        return p["D"], p["N"]
    return (p["B"], p["G"], p["N"], p["L"]) if p["grouped"] else (p["B"], p["N"], p["L"])


SELECTIVE_SCAN_BACKWARD = RuleSpec(
    sizes=("B", "D", "L", "N", "G"),
    flags={"B_varies": (False, True), "C_varies": (False, True), "grouped": (False, True),
           "has_D": (False, True), "has_z": (False, True), "softplus": (False, True),
           "complex_A": (False, True)},
    call=lambda p: rules.selective_scan_backward_macs(
        (p["B"], p["D"], p["L"]), (p["D"], p["N"]), _scan_operand(p, "B"),
        _scan_operand(p, "C"), p["has_D"], p["has_z"], p["softplus"], p["complex_A"]),
    expected=lambda p: (_scan_backward_expected(p), 0),
    monotone_flags={"B_varies": (False, True), "C_varies": (False, True),
                    "has_D": (False, True), "has_z": (False, True), "softplus": (False, True),
                    "complex_A": (False, True)},
    huge=2 ** 15,
)

CAUSAL_CONV1D_BACKWARD = RuleSpec(
    sizes=("B", "D", "L", "W"),
    flags={"silu": (False, True), "input_grad": (False, True), "weight_grad": (False, True),
           "bias_grad": (False, True)},
    call=lambda p: rules.causal_conv1d_backward_macs(
        (p["B"], p["D"], p["L"]), (p["D"], p["W"]), p["silu"], p["input_grad"],
        p["weight_grad"], p["bias_grad"]),
    expected=lambda p: (p["B"] * p["D"] * p["L"] * p["W"] * (p["input_grad"] + p["weight_grad"]),
                        p["B"] * p["D"] * p["L"] * (p["silu"] + p["bias_grad"])),
    monotone_flags={name: (False, True) for name in ("silu", "input_grad", "weight_grad",
                                                     "bias_grad")},
    huge=2 ** 16,
    elementwise_only=lambda p: not (p["input_grad"] or p["weight_grad"]),
)

INNER_NEEDS = ("xz", "conv1d_weight", "conv1d_bias", "x_proj_weight", "delta_proj_weight",
               "out_proj_weight", "out_proj_bias", "A", "A_b", "D", "delta_bias",
               "B_proj_bias", "C_proj_bias")


def _inner_needs(p: Point) -> dict:
    # an optional input needs a gradient only where it is given
    given = {"D": p["has_D"], "B_proj_bias": p["B_bias"], "C_proj_bias": p["C_bias"],
             "A_b": p["bidirectional"], "out_proj_weight": p["out_proj"],
             "out_proj_bias": p["out_proj"]}
    return {name: p[f"need_{name}"] and given.get(name, True) for name in INNER_NEEDS}


def _inner_backward_expected(p: Point):
    b, d, l, n, r, w = (p[k] for k in ("B", "D", "L", "N", "R", "W"))
    need, bi, rows = _inner_needs(p), p["bidirectional"], p["B"] * p["L"]
    d_state = n * (2 if p["complex_A"] else 1)
    conv_out = need["xz"] or need["conv1d_weight"] or need["conv1d_bias"]
    x_dbl = conv_out or need["x_proj_weight"]
    scan = x_dbl or any(need[k] for k in ("delta_proj_weight", "xz", "A", "A_b", "D",
                                          "delta_bias", "B_proj_bias", "C_proj_bias"))
    core = elementwise = 0
    if p["out_proj"]:
        core += rows * d * p["d_out"] * (scan + need["out_proj_weight"])
        elementwise += rows * p["d_out"] * need["out_proj_bias"]
    if scan:     # one scan per direction: 25 per state, D 2, z 5, softplus 1 per position
        core += (1 + bi) * b * d * l * (25 * d_state + 2 * p["has_D"] + 5 + p["softplus"])
    core += rows * d * r * (x_dbl + need["delta_proj_weight"])                  # dt_proj
    elementwise += rows * d_state * (need["B_proj_bias"] + need["C_proj_bias"])
    core += rows * d * (r + 2 * d_state) * (conv_out + need["x_proj_weight"])   # x_proj
    if bi:       # gradients shared by both scans, added
        elementwise += (rows * d * ((x_dbl or need["delta_proj_weight"]) + need["xz"])
                        + rows * d_state * ((x_dbl or need["B_proj_bias"])
                                            + (x_dbl or need["C_proj_bias"]))
                        + d * (need["D"] + need["delta_bias"]))
    if conv_out:  # the conv output's gradients added, then the causal conv's backward
        elementwise += (1 + bi) * b * d * l + b * d * l * (1 + need["conv1d_bias"])
        core += b * d * l * w * (need["xz"] + need["conv1d_weight"])
    return core, elementwise


MAMBA_INNER_BACKWARD = RuleSpec(
    sizes=INNER_SIZES,
    flags={**INNER_FLAGS, "out_proj": (False, True), "bidirectional": (False, True),
           "softplus": (False, True), **{f"need_{k}": (False, True) for k in INNER_NEEDS}},
    call=lambda p: rules.mamba_inner_backward_macs(
        out_proj_weight=(p["d_out"], p["D"]) if p["out_proj"] else None,
        needs=_inner_needs(p), delta_softplus=p["softplus"],
        A_b=(p["D"], p["N"]) if p["bidirectional"] else None, **_inner_weights(p)),
    expected=_inner_backward_expected,
    monotone_flags={**INNER_FLAGS, "out_proj": (False, True), "bidirectional": (False, True),
                    "softplus": (False, True),
                    **{f"need_{k}": (False, True) for k in INNER_NEEDS}},
    huge=2 ** 16,
    elementwise_only=lambda p: not any(_inner_needs(p).values()) or (
        not _inner_backward_expected(p)[0]),
)


def _ssd_backward_expected(p: Point, has_D: bool, has_z: bool, has_dt_bias: bool,
                           softplus: bool):
    b, c, g, n, hp = p["B"], p["c"], p["G"], p["N"], p["G"] * p["Hg"] * p["P"]
    l, _, S = _ssd_dims(p)
    # the Triton backward, recomputation included: C·Bᵀ 3×, scores·x 3×, states 5×, passing 3×
    core = (3 * b * g * n * S + 3 * b * hp * S + 5 * b * hp * n * l + 3 * b * hp * n * c
            + b * l * hp * (2 * has_D + 5 * has_z))
    return core, _ssd_expected(p, has_D, has_z, has_dt_bias, softplus)[1]


SSD_CHUNK_SCAN_BACKWARD = RuleSpec(
    sizes=SSD_SIZES, flags=SSD_CHUNK_SCAN.flags,
    call=lambda p: rules.ssd_chunk_scan_backward_macs(
        (p["B"], _ssd_dims(p)[0], p["G"] * p["Hg"], p["P"]),
        (p["B"], _ssd_dims(p)[0], p["G"], p["N"]), p["Q"], p["D"], p["z"], p["dt_bias"],
        p["softplus"]),
    expected=lambda p: _ssd_backward_expected(p, p["D"], p["z"], p["dt_bias"], p["softplus"]),
    monotone_flags=SSD_CHUNK_SCAN.monotone_flags,
    huge=2 ** 9,
)


def _gated_norm_backward_expected(numel: int, rms: bool, bias: bool, gated: bool,
                                  input_grad: bool, weight_grad: bool, bias_grad: bool,
                                  gate_grad: bool, norm_before_gate: bool = True):
    bias_grad, gate_grad = bias_grad and bias, gate_grad and gated
    # the norm's input is x, or x·silu(z) with the gate first
    norm_input = input_grad or (gate_grad and not norm_before_gate)
    if rms:
        core, elementwise = 0, numel * (7 * norm_input + 2 * weight_grad + bias_grad)
    else:
        core, elementwise = numel * (10 * norm_input + 2 * weight_grad + bias_grad), 0
    if gated:     # ·silu(z) for the other factor's gradient; z's: the product, silu_backward
        other = (norm_input or weight_grad or bias_grad) if norm_before_gate else input_grad
        elementwise += numel * (other + 2 * gate_grad)
    return core, elementwise


GATED_NORM_BACKWARD = RuleSpec(
    sizes=("M", "G", "d"),
    flags={**GATED_NORM.flags, "input_grad": (False, True), "weight_grad": (False, True),
           "bias_grad": (False, True), "gate_grad": (False, True),
           "norm_before_gate": (False, True)},
    call=lambda p: rules.gated_norm_backward_macs(
        (p["M"], p["G"] * p["d"]), p["d"] if p["grouped"] else None, p["rms"], p["bias"],
        p["gated"], p["input_grad"], p["weight_grad"], p["bias_grad"], p["gate_grad"],
        p["norm_before_gate"]),
    expected=lambda p: _gated_norm_backward_expected(
        p["M"] * p["G"] * p["d"], p["rms"], p["bias"], p["gated"], p["input_grad"],
        p["weight_grad"], p["bias_grad"], p["gate_grad"], p["norm_before_gate"]),
    monotone_flags={"grouped": (False, True), "bias": (False, True), "gated": (False, True),
                    "input_grad": (False, True), "weight_grad": (False, True),
                    "bias_grad": (False, True), "gate_grad": (False, True)},
    huge=2 ** 21,
    elementwise_only=lambda p: p["rms"] or not _gated_norm_backward_expected(
        p["M"] * p["G"] * p["d"], p["rms"], p["bias"], p["gated"], p["input_grad"],
        p["weight_grad"], p["bias_grad"], p["gate_grad"], p["norm_before_gate"])[0],
)

SPLIT_NEEDS = ("zxbcdt", "conv1d_weight", "conv1d_bias", "dt_bias", "A", "D",
               "initial_states", "rmsnorm_weight", "outproj_weight", "outproj_bias")


def _split_needs(p: Point) -> dict:
    given = {"rmsnorm_weight": p["rmsnorm"], "outproj_weight": p["outproj"],
             "outproj_bias": p["outproj"]}
    return {name: p[f"need_{name}"] and given.get(name, True) for name in SPLIT_NEEDS}


def _split_conv1d_backward_expected(p: Point):
    b, (l, h, _) = p["B"], _ssd_dims(p)
    need, dim = _split_needs(p), h * p["P"]
    mlp = p["mlp"] if p["gated_mlp"] else 0
    channels = dim + 2 * p["G"] * p["N"]
    conv_out = need["zxbcdt"] or need["conv1d_weight"] or need["conv1d_bias"]
    scan = conv_out or need["dt_bias"] or need["A"] or need["D"] or need["initial_states"]
    normed = scan or need["rmsnorm_weight"]
    core = elementwise = 0
    if p["outproj"]:
        projected = normed or (mlp > 0 and need["zxbcdt"])
        core += b * l * (mlp + dim) * p["out"] * (projected + need["outproj_weight"])
        elementwise += b * l * p["out"] * need["outproj_bias"]
    if mlp and need["zxbcdt"]:                       # silu(z0)·x0: two products, silu_backward
        elementwise += 3 * b * l * mlp
    if p["rmsnorm"] and normed:                      # the gate z comes from zxbcdt
        elementwise += _gated_norm_backward_expected(b * l * dim, True, False, True, scan,
                                                     need["rmsnorm_weight"], False,
                                                     need["zxbcdt"], p["norm_before_gate"])[1]
    if scan:
        ssd_core, ssd_elementwise = _ssd_backward_expected(p, True, not p["rmsnorm"], True, True)
        core, elementwise = core + ssd_core, elementwise + ssd_elementwise
    if conv_out:
        core += b * channels * l * p["W"] * (need["zxbcdt"] + need["conv1d_weight"])
        elementwise += b * channels * l * (p["silu"] + need["conv1d_bias"])
    return core, elementwise


MAMBA_SPLIT_CONV1D_SCAN_BACKWARD = RuleSpec(
    sizes=SSD_SIZES + ("W", "mlp", "out"),
    flags={**MAMBA_SPLIT_CONV1D_SCAN.flags, "norm_before_gate": (False, True),
           **{f"need_{k}": (False, True) for k in SPLIT_NEEDS}},
    call=lambda p: rules.mamba_split_conv1d_scan_backward_macs(
        *_split_conv1d_args(p), needs=_split_needs(p), norm_before_gate=p["norm_before_gate"]),
    expected=_split_conv1d_backward_expected,
    monotone_flags={"silu": (False, True), "gated_mlp": (False, True),
                    "outproj": (False, True),
                    **{f"need_{k}": (False, True) for k in SPLIT_NEEDS}},
    huge=2 ** 9,
    elementwise_only=lambda p: not _split_conv1d_backward_expected(p)[0],
)

WEIGHT_NORM_BACKWARD = RuleSpec(
    sizes=("o", "i", "k"), flags={},
    call=lambda p: rules.weight_norm_backward_macs((p["o"], p["i"], p["k"]), (p["o"], 1, 1)),
    # per element of v: 3 products, a sum, a quotient, an addition; per element of g: a
    # quotient, a negation and two quotients, a product
    expected=lambda p: (0, 6 * p["o"] * p["i"] * p["k"] + 5 * p["o"]),
    huge=2 ** 21, elementwise_only=True,
)

SPECS: dict[str, RuleSpec] = {
    "matmul_macs": MATMUL, "addmm_macs": ADDMM, "bmm_macs": BMM, "linear_macs": LINEAR,
    "bilinear_macs": BILINEAR, "trilinear_macs": TRILINEAR, "einsum_macs": EINSUM, "conv_macs": CONV, "norm_macs": NORM,
    "batch_norm_macs": BATCH_NORM, "elementwise_macs": ELEMENTWISE,
    "reduction_macs": REDUCTION, "sum_of_terms_macs": SUM_OF_TERMS,
    "upsample_macs": UPSAMPLE, "grid_sample_macs": GRID_SAMPLE, "sdpa_macs": SDPA,
    "native_mha_macs": NATIVE_MHA, "transformer_encoder_layer_macs": TRANSFORMER_ENCODER_LAYER,
    "selective_scan_macs": SELECTIVE_SCAN, "causal_conv1d_macs": CAUSAL_CONV1D,
    "mamba_inner_macs": MAMBA_INNER, "bimamba_inner_macs": BIMAMBA_INNER,
    "rms_norm_macs": RMS_NORM, "gated_norm_macs": GATED_NORM,
    "ssd_chunk_scan_macs": SSD_CHUNK_SCAN, "mamba_split_conv1d_scan_macs": MAMBA_SPLIT_CONV1D_SCAN,
    "grouped_mm_macs": GROUPED_MM, "triangular_solve_macs": TRIANGULAR_SOLVE, "rnn_macs": RNN,
    "fft_macs": FFT, "weight_norm_macs": WEIGHT_NORM,
    "conv_backward_macs": CONV_BACKWARD, "norm_backward_macs": NORM_BACKWARD,
    "sdpa_backward_macs": SDPA_BACKWARD, "rms_norm_backward_macs": RMS_NORM_BACKWARD,
    "selective_scan_backward_macs": SELECTIVE_SCAN_BACKWARD,
    "causal_conv1d_backward_macs": CAUSAL_CONV1D_BACKWARD,
    "mamba_inner_backward_macs": MAMBA_INNER_BACKWARD,
    "ssd_chunk_scan_backward_macs": SSD_CHUNK_SCAN_BACKWARD,
    "gated_norm_backward_macs": GATED_NORM_BACKWARD,
    "mamba_split_conv1d_scan_backward_macs": MAMBA_SPLIT_CONV1D_SCAN_BACKWARD,
    "weight_norm_backward_macs": WEIGHT_NORM_BACKWARD,
}
RULE_NAMES = sorted(SPECS)


def points(spec: RuleSpec, max_size: int = 12) -> st.SearchStrategy:
    """Random points of ``spec``: every free size in [1, max_size] and any flag values."""
    return st.fixed_dictionaries({
        **{name: st.integers(1, max_size) for name in spec.sizes},
        **{name: st.sampled_from(tuple(values)) for name, values in spec.flags.items()},
    })


def assert_valid_cost(cost: Cost) -> None:
    """Property 1 and 5: Python ints, non-negative, paper = core <= full = core + elementwise."""
    values = (cost.core, cost.elementwise, cost.macs("full"), cost.macs("paper"))
    assert all(type(v) is int for v in values), [type(v) for v in values]
    assert cost.core >= 0 and cost.elementwise >= 0
    assert cost.macs("paper") == cost.core <= cost.macs("full") == cost.core + cost.elementwise


def test_every_public_rule_has_a_spec():
    """The specs cover every ``*_macs`` rule the package exports (a new rule must be added)."""
    exported = {name for name in rules.__all__ if name.endswith("_macs")}
    assert exported == set(SPECS)
    assert set(rules.MACS_PER_OUTPUT) == set(UPSAMPLE_TAPS)


@pytest.mark.parametrize("name", RULE_NAMES)
@PURE
@given(data=st.data())
def test_rule_returns_non_negative_python_ints(name, data):
    """Property 1 (and 5): every count is a non-negative Python ``int``, under both presets."""
    spec = SPECS[name]
    assert_valid_cost(spec.call(data.draw(points(spec), label="point")))


@pytest.mark.parametrize("name", RULE_NAMES)
@PURE
@given(data=st.data())
def test_rule_is_exact(name, data):
    """Property 3: the rule equals the independent formula on random consistent shapes."""
    spec = SPECS[name]
    point = data.draw(points(spec, max_size=64), label="point")
    core, elementwise = spec.expected(point)
    assert spec.call(point) == Cost(core=core, elementwise=elementwise)


@pytest.mark.parametrize("name", RULE_NAMES)
@PURE
@given(data=st.data())
def test_rule_is_monotone_in_every_size(name, data):
    """Property 2: growing one free size (every dimension tied to it grows together, so the
    shapes stay consistent) never lowers the full or the paper count."""
    spec = SPECS[name]
    point = data.draw(points(spec), label="point")
    size = data.draw(st.sampled_from(spec.sizes), label="size")
    grown = dict(point, **{size: point[size] + data.draw(st.integers(1, 50), label="delta")})
    before, after = spec.call(point), spec.call(grown)
    for preset in PRESETS:
        assert after.macs(preset) >= before.macs(preset), (preset, size, before, after)


@pytest.mark.parametrize("name", [n for n in RULE_NAMES if SPECS[n].monotone_flags])
@PURE
@given(data=st.data())
def test_rule_is_monotone_in_optional_parts(name, data):
    """Property 2 for flags: switching on an optional part (affine weight, mask, D, z, bias,
    out_proj, a training-mode norm) or growing a broadcast dimension from 1 to its full size
    (or adding a leading dimension) never lowers the full or the paper count."""
    spec = SPECS[name]
    point = data.draw(points(spec), label="point")
    flag = data.draw(st.sampled_from(sorted(spec.monotone_flags)), label="flag")
    order = list(spec.monotone_flags[flag])
    position = order.index(point[flag])
    if position == len(order) - 1:
        point = dict(point, **{flag: order[0]})
        position = 0
    later = data.draw(st.sampled_from(order[position + 1:]), label="later value")
    before, after = spec.call(point), spec.call(dict(point, **{flag: later}))
    for preset in PRESETS:
        assert after.macs(preset) >= before.macs(preset), (preset, flag, before, after)


@pytest.mark.parametrize("name", RULE_NAMES)
@PURE
@given(data=st.data())
def test_rule_is_exact_for_huge_sizes(name, data):
    """Property 4: sizes whose totals reach ~1e18 and beyond (past int64) still give the exact
    Python-int value, and the ints stay Python ints (no numpy/int64 wrap-around)."""
    spec = SPECS[name]
    # Mostly near the top of the range (so products pass 2**53 and 2**63), sometimes anywhere.
    sizes = st.one_of(st.integers(spec.huge // 2, spec.huge), st.integers(1, spec.huge))
    point = data.draw(st.fixed_dictionaries({
        **{n: sizes for n in spec.sizes},
        **{n: st.sampled_from(tuple(v)) for n, v in spec.flags.items()}}), label="point")
    cost = spec.call(point)
    assert_valid_cost(cost)
    core, elementwise = spec.expected(point)
    assert (cost.core, cost.elementwise) == (core, elementwise)


# Flags for the deterministic int64-overflow check: every size and optional part in use.
HUGE_FLAGS = {
    "matmul_macs": dict(a_rank=3, b_rank=3, a_vec=False, b_vec=False,
                        **{k: False for k in _one_flags}),
    "einsum_macs": {"equation": "bhld,bhsd->bhls"},
    "conv_macs": {"nd": 3, "transposed": False},
    "linear_macs": {"lead": 2, "w_vec": False}, "bilinear_macs": {"lead": 2},
    "sdpa_macs": {"mask": "float", "lead": 2, "q_b1": False, "kv_b1": False},
    "upsample_macs": {"mode": "trilinear", "nd": 3},
    "elementwise_macs": {"rank": 4}, "reduction_macs": {"rank": 4}, "norm_macs": {"rank": 4},
    "batch_norm_macs": {"rank": 4, "affine": True, "training": False},
    "grid_sample_macs": {"volumetric": True},
    "grouped_mm_macs": {"layout": "3d3d"}, "fft_macs": {"rank": 4, "nd": 4},
    "conv_backward_macs": {"nd": 3, "transposed": False},
    "norm_backward_macs": {"rank": 4, "running_stats": False},
    "sdpa_backward_macs": {"lead": 2, "q_b1": False, "kv_b1": False},
}


def huge_point(name: str) -> Point:
    """Every size of rule ``name`` near its ``huge`` value, every optional part in use."""
    spec = SPECS[name]
    flags = {k: v[-1] for k, v in spec.flags.items()}
    flags.update(HUGE_FLAGS.get(name, {}))
    return {**{n: spec.huge - i for i, n in enumerate(spec.sizes)}, **flags}


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_is_exact_past_int64(name):
    """Property 4, deterministically: sizes just under the spec's ``huge`` value (distinct, odd
    and even, so the product is no power of two and a float would round it) make the total
    pass 2**63 (the test checks that it does), and the result is still the exact Python int."""
    spec, point = SPECS[name], huge_point(name)
    cost = spec.call(point)
    assert_valid_cost(cost)
    core, elementwise = spec.expected(point)
    assert core + elementwise > INT64_MAX
    assert (cost.core, cost.elementwise) == (core, elementwise)


@pytest.mark.parametrize("name", RULE_NAMES)
@PURE
@given(data=st.data())
def test_paper_never_exceeds_full(name, data):
    """Property 5: ``paper <= full``; elementwise-only rules give 0 under paper and everything
    under full; all other rules keep a non-zero core under paper."""
    spec = SPECS[name]
    point = data.draw(points(spec), label="point")
    cost = spec.call(point)
    assert cost.macs("paper") <= cost.macs("full")
    only = spec.elementwise_only
    if only(point) if callable(only) else only:
        assert cost.macs("paper") == 0 and cost.macs("full") == cost.elementwise
    else:
        assert cost.macs("paper") > 0


def test_sum_of_terms_single_term_is_free():
    """One scan direction (K = 1) sums nothing: 0 under both presets."""
    assert rules.sum_of_terms_macs((2, 1, 3, 4, 5), (2, 3, 20)) == Cost()


# ---------------------------------------------------------------- brute-force counts

small = st.integers(1, 4)


@PURE
@given(data=st.data())
def test_matmul_equals_brute_force_count(data):
    """``ones(a) @ ones(b)`` holds K in every output element, so its sum is exactly the number
    of multiply-adds of the broadcast matmul (numpy does the broadcasting, not the pack)."""
    point = data.draw(points(MATMUL, max_size=4), label="point")
    a, b = _matmul_shapes(point)
    brute = int(np.matmul(np.ones(a, dtype=np.int64), np.ones(b, dtype=np.int64)).sum())
    assert rules.matmul_macs(a, b) == Cost(core=brute)


@PURE
@given(n=small, k=small, m=small, c=small)
def test_addmm_bmm_linear_equal_brute_force_count(n, k, m, c):
    """addmm, bmm and linear as sums of products of ones."""
    def ones(*shape):
        return np.ones(shape, dtype=np.int64)

    assert rules.addmm_macs((n, k), (k, m)).core == int((ones(n, k) @ ones(k, m)).sum())
    assert rules.bmm_macs((c, n, k), (c, k, m)).core == int((ones(c, n, k) @ ones(c, k, m)).sum())
    assert rules.linear_macs((c, n, k), (m, k)).core == int((ones(c, n, k) @ ones(m, k).T).sum())


@PURE
@given(data=st.data())
def test_einsum_equals_brute_force_count(data):
    """``np.einsum`` of ones: every output element sums one product per summed-index value."""
    point = data.draw(points(EINSUM, max_size=4), label="point")
    operands = [np.ones(s, dtype=np.int64) for s in _einsum_operands(point)]
    brute = int(np.sum(np.einsum(point["equation"], *operands)))
    assert rules.einsum_macs(point["equation"], _einsum_operands(point)) == Cost(core=brute)


@PURE
@given(data=st.data())
def test_sdpa_equals_its_explicit_matmuls_under_gqa(data):
    """CONVENTIONS invariant: SDPA (GQA/MQA included) costs what
    ``softmax((q @ kᵀ) * scale [+ mask]) @ v`` costs with k and v repeated to the query heads."""
    point = data.draw(points(SDPA), label="point")
    q, k, v = _sdpa_shapes(point)
    if point["lead"] >= 1:  # repeat_interleave the kv heads
        k = k[:-3] + (q[-3],) + k[-2:]
        v = v[:-3] + (q[-3],) + v[-2:]
    k_t = k[:-2] + (k[-1], k[-2])
    scores = rules.broadcast_shapes(q[:-2], k[:-2]) + (q[-2], k[-2])
    explicit = (rules.matmul_macs(q, k_t) + rules.elementwise_macs(scores)
                + rules.elementwise_macs(scores)
                + (rules.elementwise_macs(scores) if point["mask"] == "float" else Cost())
                + rules.matmul_macs(scores, v))
    assert rules.sdpa_macs(*_sdpa_shapes(point), mask=point["mask"]) == explicit


@PURE
@given(B=st.integers(2, 6), H=small, L=small, S=small, E=small, Ev=small)
def test_sdpa_value_batch_broadcast_matches_explicit_matmuls(B, H, L, S, E, Ev):
    """torch broadcasts v's batch against q @ kᵀ: q (1, H, L, E), k (1, H, S, E),
    v (B, H, S, Ev) gives (B, H, L, Ev). The explicit implementation costs H·L·S·E for q @ kᵀ
    and B·H·L·S·Ev for attn @ v; the fused op must cost the same (CONVENTIONS invariant)."""
    q, k, v = (1, H, L, E), (1, H, S, E), (B, H, S, Ev)
    explicit_core = H * L * S * E + B * H * L * S * Ev
    assert rules.sdpa_macs(q, k, v).core == explicit_core


@pytest.mark.parametrize("name", ["matmul_macs", "linear_macs", "conv_macs", "sdpa_macs",
                                  "upsample_macs", "selective_scan_macs"])
def test_numpy_integer_shapes_give_exact_python_ints(name):
    """Shapes read as numpy integers (e.g. ``tuple(np.array(...))``) must not wrap around in
    int64: the result is the same exact Python int as with Python-int shapes."""
    spec = SPECS[name]
    point = huge_point(name)
    as_numpy = {k: np.int64(v) if k in spec.sizes else v for k, v in point.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow warning
        cost = spec.call(as_numpy)
    assert_valid_cost(cost)
    assert cost == spec.call(point)


# ================================================================ Part 2: both tools agree


class Lambda(nn.Module):
    """A tiny module around a function of its inputs (the function's parameters are buffers
    passed in ``extras``, so both tools see them as constants of the trace)."""

    def __init__(self, fn, **extras):
        super().__init__()
        self.fn = fn
        for key, value in extras.items():
            if isinstance(value, torch.Tensor):
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)

    def forward(self, *inputs):
        return self.fn(self, *inputs)


def count_both(model: nn.Module, inputs: tuple, preset: str, grad: bool = False):
    """``((total, by_operator) from fvcore, (total, by_operator) from torchprofile)``, both
    traced with autograd ``grad`` enabled or not."""
    fvcore = fvcore_count(model, inputs, preset, grad=grad)
    with torch.set_grad_enabled(grad), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        results = torchprofile_ext.profile_macs(model, inputs, preset, reduction=None)
    torchprofile = (sum(results.values()), torchprofile_ext.macs_by_operator(results))
    return fvcore, torchprofile


def assert_tools_agree(model: nn.Module, inputs: tuple, op: str, full: int, paper: int):
    """Both tools, both presets: totals and per-operator tables equal each other and the rule's
    expected value (``op`` -> ``full`` / ``paper`` MACs; an op costing 0 is left out)."""
    model.eval()
    for preset, macs in (("full", full), ("paper", paper)):
        expected = {op: macs} if macs else {}
        (fv_total, fv_ops), (tp_total, tp_ops) = count_both(model, inputs, preset)
        assert type(fv_total) is int and type(tp_total) is int
        assert fv_ops == tp_ops == expected, (preset, fv_ops, tp_ops, expected)
        assert fv_total == tp_total == macs, (preset, fv_total, tp_total, macs)


def shapes_broadcasting_to(out: tuple, draw) -> tuple:
    """A shape that broadcasts to ``out``: some dims replaced by 1, some leading dims dropped."""
    drop = draw(st.integers(0, len(out)))
    kept = out[drop:]
    return tuple(1 if draw(st.booleans()) else d for d in kept)


dim = st.integers(1, 6)
batch = st.integers(1, 3)


@TRACED
@given(data=st.data())
def test_tools_agree_linear(data):
    """F.linear on (..., in) with or without bias: numel(x) * out under both presets."""
    lead = data.draw(st.lists(batch, max_size=2), label="lead")
    d_in, d_out, bias = data.draw(dim), data.draw(dim), data.draw(st.booleans())
    x = torch.randn(*lead, d_in)
    model = Lambda(lambda m, x: F.linear(x, m.w, m.b if bias else None),
                   w=torch.randn(d_out, d_in), b=torch.randn(d_out))
    macs = prod(x.shape) * d_out
    assert_tools_agree(model, (x,), "linear", macs, macs)


@TRACED
@given(data=st.data())
def test_tools_agree_matmul_with_broadcasting(data):
    """torch.matmul with broadcast batch dims and 1-D operands: batch * M * K * N."""
    point = data.draw(points(MATMUL, max_size=4), label="point")
    a, b = _matmul_shapes(point)
    macs = _matmul_expected(point)[0]
    model = Lambda(lambda m, a, b: torch.matmul(a, b))
    assert_tools_agree(model, (torch.randn(a), torch.randn(b)), "matmul", macs, macs)


def conv_out(size, kernel, stride, padding, dilation):
    """Output length of a convolution (the formula from the nn.Conv2d docs)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


CONV_FUNCTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@pytest.mark.parametrize("nd", [1, 2, 3])
@TRACED
@given(data=st.data())
def test_tools_agree_conv(data, nd):
    """F.conv1d/2d/3d with groups, stride, padding and dilation:
    batch * numel(weight) * prod(output spatial)."""
    B, g, cin_g, cout_g = data.draw(batch), data.draw(st.integers(1, 3)), data.draw(small), \
        data.draw(small)
    stride, pad, dil = (data.draw(st.integers(1, 3), label=n) for n in ("stride", "pad", "dil"))
    kernel = tuple(data.draw(st.integers(1, 3), label="kernel") for _ in range(nd))
    if nd == 3:
        dil = 1
    spatial = tuple(data.draw(st.integers(dil * (k - 1) + 1, 8 if nd < 3 else 4), label="size")
                    for k in kernel)
    x, w = torch.randn(B, g * cin_g, *spatial), torch.randn(g * cout_g, cin_g, *kernel)
    bias = torch.randn(g * cout_g) if data.draw(st.booleans(), label="bias") else None
    conv = CONV_FUNCTIONS[nd]
    model = Lambda(lambda m, x: conv(x, m.w, bias, stride, pad, dil, g), w=w)
    out = tuple(conv_out(s, k, stride, pad, dil) for s, k in zip(spatial, kernel))
    assert model(x).shape == (B, g * cout_g) + out
    macs = B * (g * cout_g * cin_g * prod(kernel)) * prod(out)
    assert_tools_agree(model, (x,), "conv", macs, macs)


@TRACED
@given(data=st.data())
def test_tools_agree_conv_transpose2d(data):
    """nn.ConvTranspose2d with groups and stride: batch * numel(weight) * **input** H * W."""
    B, g, cin_g, cout_g = data.draw(batch), data.draw(st.integers(1, 3)), data.draw(small), \
        data.draw(small)
    kh, kw, stride = (data.draw(st.integers(1, 3)) for _ in range(3))
    output_padding = data.draw(st.integers(0, stride - 1))
    H, W = data.draw(dim), data.draw(dim)
    model = nn.ConvTranspose2d(g * cin_g, g * cout_g, (kh, kw), stride=stride, groups=g,
                               output_padding=output_padding, bias=data.draw(st.booleans()))
    assert tuple(model.weight.shape) == (g * cin_g, cout_g, kh, kw)
    macs = B * (g * cin_g * cout_g * kh * kw) * H * W
    assert_tools_agree(model, (torch.randn(B, g * cin_g, H, W),), "conv", macs, macs)


@TRACED
@given(data=st.data())
def test_tools_agree_layer_norm(data):
    """F.layer_norm over the last 1-2 dims: 5 * numel with affine, 4 * numel without."""
    shape = tuple(data.draw(st.lists(dim, min_size=1, max_size=3), label="shape"))
    normalized = shape[-data.draw(st.integers(1, min(2, len(shape))), label="n dims"):]
    affine = data.draw(st.booleans(), label="affine")
    model = Lambda(lambda m, x: F.layer_norm(x, normalized, m.w if affine else None,
                                             m.b if affine else None),
                   w=torch.randn(normalized), b=torch.randn(normalized))
    macs = (5 if affine else 4) * prod(shape)
    assert_tools_agree(model, (torch.randn(shape),), "layer_norm", macs, macs)


@TRACED
@given(data=st.data())
def test_tools_agree_group_norm(data):
    """F.group_norm: 5 * numel with affine, 4 * numel without."""
    B, groups, per_group = data.draw(batch), data.draw(st.integers(1, 3)), data.draw(small)
    spatial = tuple(data.draw(st.lists(small, max_size=2), label="spatial"))
    if per_group * prod(spatial) == 1:  # a group needs two values for its variance
        spatial += (2,)
    C = groups * per_group
    affine = data.draw(st.booleans(), label="affine")
    model = Lambda(lambda m, x: F.group_norm(x, groups, m.w if affine else None,
                                             m.b if affine else None),
                   w=torch.randn(C), b=torch.randn(C))
    macs = (5 if affine else 4) * B * C * prod(spatial)
    assert_tools_agree(model, (torch.randn(B, C, *spatial),), "group_norm", macs, macs)


@TRACED
@given(data=st.data())
def test_tools_agree_batch_norm_eval(data):
    """F.batch_norm with running statistics (eval): 2 * numel with affine, 1 * numel without."""
    B, C = data.draw(st.integers(1, 3)), data.draw(dim)
    spatial = tuple(data.draw(st.lists(small, max_size=2), label="spatial"))
    affine = data.draw(st.booleans(), label="affine")
    model = Lambda(lambda m, x: F.batch_norm(x, m.mean, m.var, m.w if affine else None,
                                             m.b if affine else None, training=False),
                   mean=torch.randn(C), var=torch.rand(C) + 0.5, w=torch.randn(C),
                   b=torch.randn(C))
    macs = (2 if affine else 1) * B * C * prod(spatial)
    assert_tools_agree(model, (torch.randn(B, C, *spatial),), "batch_norm", macs, macs)


BINARY_OPS = {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}


@pytest.mark.parametrize("name", sorted(BINARY_OPS))
@TRACED
@given(data=st.data())
def test_tools_agree_broadcasting_binary_ops(data, name):
    """torch.add / mul / sub / div with broadcasting: numel of the broadcast output under full,
    0 under paper."""
    out = tuple(data.draw(st.lists(small, min_size=1, max_size=4), label="out"))
    a = shapes_broadcasting_to(out, data.draw)
    b = shapes_broadcasting_to(out, data.draw)
    op = BINARY_OPS[name]
    expected_out = np.broadcast_shapes(a, b)
    model = Lambda(lambda m, a, b: op(a, b))
    assert_tools_agree(model, (torch.randn(a), torch.randn(b) + 3), name, prod(expected_out), 0)


INPLACE_OPS = {"add_": torch.Tensor.add_, "mul_": torch.Tensor.mul_, "sub_": torch.Tensor.sub_,
               "div_": torch.Tensor.div_}


@pytest.mark.parametrize("name", sorted(INPLACE_OPS))
@TRACED
@given(data=st.data())
def test_tools_agree_inplace_binary_ops(data, name):
    """In-place add_ / mul_ / sub_ / div_ with a broadcast operand: numel of the updated tensor
    under full, 0 under paper."""
    out = tuple(data.draw(st.lists(small, min_size=1, max_size=4), label="out"))
    b = shapes_broadcasting_to(out, data.draw)
    op = INPLACE_OPS[name]
    model = Lambda(lambda m, a, b: op(a.clone(), b))
    assert_tools_agree(model, (torch.randn(out), torch.randn(b) + 3), name, prod(out), 0)


@TRACED
@given(shape=st.lists(dim, min_size=3, max_size=3).map(tuple))
def test_tools_agree_shape_arithmetic_is_free(shape):
    """Arithmetic on traced sizes (``x.shape[0] * x.shape[1]``, ``x.shape[-1] ** -0.5``) is not
    compute: only the real ``mul`` on the tensor counts."""
    model = Lambda(lambda m, x: x.reshape(x.shape[0] * x.shape[1], -1)
                   * (x.shape[-1] ** -0.5))
    assert_tools_agree(model, (torch.randn(shape),), "mul", prod(shape), 0)


UNARY_OPS = {
    "gelu": lambda x: F.gelu(x),
    "softmax": lambda x: F.softmax(x, dim=-1),
    "mean": lambda x: torch.mean(x, dim=0),
}


@pytest.mark.parametrize("name", sorted(UNARY_OPS))
@TRACED
@given(data=st.data())
def test_tools_agree_gelu_softmax_mean(data, name):
    """F.gelu and F.softmax: numel of the output; torch.mean: numel of the input; full only."""
    shape = tuple(data.draw(st.lists(dim, min_size=1, max_size=4), label="shape"))
    fn = UNARY_OPS[name]
    model = Lambda(lambda m, x: fn(x))
    assert_tools_agree(model, (torch.randn(shape),), name, prod(shape), 0)


@TRACED
@given(data=st.data())
def test_tools_agree_mean_over_all(data):
    """torch.mean over every dim (a 0-dim result): numel of the input, full only."""
    shape = tuple(data.draw(st.lists(dim, min_size=1, max_size=4), label="shape"))
    model = Lambda(lambda m, x: torch.mean(x))
    assert_tools_agree(model, (torch.randn(shape),), "mean", prod(shape), 0)


# (F.interpolate mode, antialias, spatial dims, per-operator name, MACs per output element)
INTERPOLATE_CASES = [
    ("nearest", False, 1, "upsample_nearest1d", 1),
    ("nearest", False, 2, "upsample_nearest2d", 1),
    ("nearest", False, 3, "upsample_nearest3d", 1),
    ("nearest-exact", False, 2, "_upsample_nearest_exact2d", 1),
    ("linear", False, 1, "upsample_linear1d", 2),
    ("bilinear", False, 2, "upsample_bilinear2d", 4),
    ("bilinear", True, 2, "_upsample_bilinear2d_aa", 4),
    ("bicubic", False, 2, "upsample_bicubic2d", 16),
    ("bicubic", True, 2, "_upsample_bicubic2d_aa", 16),
    ("trilinear", False, 3, "upsample_trilinear3d", 8),
]


@pytest.mark.parametrize("case", INTERPOLATE_CASES, ids=lambda case: case[3])
@TRACED
@given(data=st.data())
def test_tools_agree_interpolate(data, case):
    """F.interpolate in every mode, with ``size=`` or ``scale_factor=``: taps * output numel,
    counted under both presets."""
    mode, antialias, nd, op, taps = case
    N, C = data.draw(batch), data.draw(small)
    spatial = tuple(data.draw(st.lists(small, min_size=nd, max_size=nd), label="spatial"))
    kwargs = {"mode": mode}
    if mode not in ("nearest", "nearest-exact"):
        kwargs["align_corners"] = data.draw(st.booleans(), label="align_corners")
    if antialias:
        kwargs["antialias"] = True
    if data.draw(st.booleans(), label="by size"):
        kwargs["size"] = tuple(data.draw(st.lists(dim, min_size=nd, max_size=nd), label="size"))
    else:
        kwargs["scale_factor"] = data.draw(st.sampled_from([2, 3, 1.5]), label="scale")
    x = torch.randn(N, C, *spatial)
    model = Lambda(lambda m, x: F.interpolate(x, **kwargs))
    out = model(x).shape
    if "size" in kwargs:
        assert tuple(out[2:]) == kwargs["size"]
    else:
        assert tuple(out[2:]) == tuple(math.floor(s * kwargs["scale_factor"]) for s in spatial)
    macs = taps * prod(out)
    assert_tools_agree(model, (x,), op, macs, macs)


@pytest.mark.parametrize("mask", [None, "bool", "float", "causal"])
@TRACED
@given(data=st.data(), gqa=st.booleans())
def test_tools_agree_scaled_dot_product_attention(data, mask, gqa):
    """F.scaled_dot_product_attention: B·Hq·L·S·(E + Ev) under both presets, plus B·Hq·L·S for
    the scale and for the softmax and B·Hq·L·S more for a float mask under full; a bool mask and
    is_causal cost nothing more; GQA counts at the query head count."""
    B, Hkv, L, S, E, Ev = (data.draw(st.integers(1, 4)) for _ in range(6))
    G = data.draw(st.integers(2, 3)) if gqa else 1
    Hq = Hkv * G
    q, k, v = torch.randn(B, Hq, L, E), torch.randn(B, Hkv, S, E), torch.randn(B, Hkv, S, Ev)
    kwargs = {"enable_gqa": gqa}
    inputs = (q, k, v)
    if mask == "float":
        inputs += (torch.randn(L, S),)
    elif mask == "bool":
        inputs += (torch.rand(L, S) > 0.3,)
    elif mask == "causal":
        kwargs["is_causal"] = True
    model = Lambda(lambda m, *t: F.scaled_dot_product_attention(*t, **kwargs))
    scores = B * Hq * L * S
    paper = scores * (E + Ev)
    full = paper + 2 * scores + (scores if mask == "float" else 0)
    assert_tools_agree(model, inputs, "scaled_dot_product_attention", full, paper)


@pytest.mark.parametrize("equation", ["ij,jk->ik", "bij,bjk->bik"])
@TRACED
@given(data=st.data())
def test_tools_agree_einsum(data, equation):
    """torch.einsum for 2-operand contractions: the product of all distinct index sizes."""
    sizes = {c: data.draw(dim, label=c) for c in "bijk"}
    a, b = (tuple(sizes[c] for c in term) for term in equation.split("->")[0].split(","))
    macs = prod(sizes[c] for c in set(equation) if c.isalpha())
    model = Lambda(lambda m, a, b: torch.einsum(equation, a, b))
    assert_tools_agree(model, (torch.randn(a), torch.randn(b)), "einsum", macs, macs)


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "avg_pool2d", "grid_sampler",
                                "instance_norm"])
@TRACED
@given(data=st.data())
def test_tools_agree_pools_grid_sample_instance_norm(data, op):
    """fvcore's own rules: adaptive_avg_pool2d 1 x input numel (both presets), grid_sampler
    4 x output numel, instance_norm 4 x numel (no affine); avg_pool2d 1 x input numel (full)."""
    N, C, H, W = data.draw(batch), data.draw(small), data.draw(st.integers(2, 6)), \
        data.draw(st.integers(2, 6))
    x = torch.randn(N, C, H, W)
    if op == "adaptive_avg_pool2d":
        model, macs, paper = Lambda(lambda m, x: F.adaptive_avg_pool2d(x, (2, 1))), x.numel(), True
    elif op == "avg_pool2d":
        model, macs, paper = Lambda(lambda m, x: F.avg_pool2d(x, 2)), x.numel(), False
    elif op == "grid_sampler":
        Ho, Wo = data.draw(small), data.draw(small)
        grid = torch.rand(N, Ho, Wo, 2) * 2 - 1
        model = Lambda(lambda m, x: F.grid_sample(x, m.grid, align_corners=False), grid=grid)
        macs, paper = 4 * N * C * Ho * Wo, True
    else:
        model, macs, paper = Lambda(lambda m, x: F.instance_norm(x)), 4 * x.numel(), True
    assert_tools_agree(model, (x,), op, macs, macs if paper else 0)


def assert_tools_agree_on_totals(model, inputs, full, paper):
    """Both tools, both presets, traced with and without autograd: equal totals, equal to the
    expected value; with autograd (the unfused path in both tools) equal per-operator tables."""
    model.eval()
    for preset, macs in (("full", full), ("paper", paper)):
        for grad in (True, False):
            (fv_total, fv_ops), (tp_total, tp_ops) = count_both(model, inputs, preset, grad)
            assert fv_total == tp_total == macs, (preset, grad, fv_ops, tp_ops, macs)
            if grad:
                assert fv_ops == tp_ops, (preset, fv_ops, tp_ops)


class MHA(nn.Module):
    """nn.MultiheadAttention (batch first) on query and key/value, returning the averaged
    weights too when ``return_weights`` (so the trace keeps the mean over heads)."""

    def __init__(self, embed, heads, need_weights, average, return_weights, mask):
        super().__init__()
        self.mha = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.need_weights, self.average = need_weights, average
        self.return_weights = return_weights
        self.register_buffer("mask", mask)

    def forward(self, query, key):
        out, weights = self.mha(query, key, key, need_weights=self.need_weights,
                                average_attn_weights=self.average, attn_mask=self.mask)
        return (out, weights) if self.return_weights else out


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@TRACED
@given(data=st.data())
def test_tools_agree_multihead_attention(data, mask):
    """nn.MultiheadAttention (``aten::_native_multi_head_attention`` on torchprofile's no-grad
    trace, the explicit slow path otherwise): in/out projections, two matmuls per head, and
    scale + softmax (+ mean over heads, + additive mask) as the slow path computes them."""
    B, L, H, hd = data.draw(batch), data.draw(small), data.draw(small), data.draw(small)
    S = L if data.draw(st.booleans(), label="self-attention") else data.draw(small, label="S")
    need_weights, average, return_weights = (data.draw(st.booleans(), label=n)
                                             for n in ("need", "average", "return"))
    E = H * hd
    attn_mask = {None: None, "bool": torch.rand(L, S) > 0.5, "float": torch.randn(L, S)}[mask]
    model = MHA(E, H, need_weights, average, return_weights, attn_mask)
    query = torch.randn(B, L, E)
    key = query if S == L else torch.randn(B, S, E)
    core, elementwise = _mha_expected_parts(B, L, S, H, hd, need_weights,
                                            need_weights and average and return_weights,
                                            mask is not None)
    assert_tools_agree_on_totals(model, (query, key), core + elementwise, core)


@pytest.mark.parametrize("mask", [None, "bool", "float"])
@TRACED
@given(data=st.data())
def test_tools_agree_transformer_encoder_layer(data, mask):
    """nn.TransformerEncoderLayer (``aten::_transformer_encoder_layer_fwd`` on torchprofile's
    no-grad trace): self-attention, two LayerNorms, the feed-forward, GELU and two residuals."""
    B, L, H, hd, ffn = (data.draw(small, label=n) for n in ("B", "L", "H", "hd", "F"))
    gelu, norm_first = data.draw(st.booleans(), label="gelu"), data.draw(st.booleans())
    layer = nn.TransformerEncoderLayer(H * hd, H, ffn, dropout=0.0, batch_first=True,
                                       activation="gelu" if gelu else "relu",
                                       norm_first=norm_first)
    src_mask = {None: None, "bool": torch.rand(L, L) > 0.5, "float": torch.randn(L, L)}[mask]
    model = Lambda(lambda m, x: m.layer(x, src_mask=m.src_mask), layer=layer, src_mask=src_mask)
    point = {"B": B, "L": L, "H": H, "hd": hd, "F": ffn, "use_gelu": gelu, "norm_affine": True,
             "has_mask": mask is not None}
    core, elementwise = _encoder_layer_expected(point)
    assert_tools_agree_on_totals(model, (torch.randn(B, L, H * hd),), core + elementwise, core)
