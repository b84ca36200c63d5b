"""Per-operator MACs of every reference model, derived by hand from docs/conventions.md.

``EXPECTED[name][preset]`` is the per-operator count of the model traced with grad enabled
(the slow paths of PyTorch's attention modules); ops that cost 0 are absent, as fvcore leaves
them out. Each term names the layer it comes from.
"""

# ---------------------------------------------------------------- CNN: (2, 3, 16, 16), width 8
CNN = {
    "conv": 2 * (8 * 3 * 9) * 16 * 16          # stem 3->8 k3, output 16x16
            + 2 * (16 * 8 * 9) * 8 * 8         # 8->16 k3 stride 2, output 8x8
            + 2 * (16 * 8 * 2 * 2) * 8 * 8,    # transposed conv: over its 8x8 input
    "batch_norm": 2 * (2 * 8 * 16 * 16) + 1 * (2 * 16 * 8 * 8),   # affine 2x, not affine 1x
    "adaptive_avg_pool2d": 2 * 8 * 16 * 16,    # input numel
    "linear": 2 * 8 * 10,
}

# ---------------------------------------------------------------- ViT: (2, 3, 32, 32)
B, T, C, HEADS, HD, MLP = 2, 17, 64, 4, 16, 256     # 16 patches + cls, dim 64, 4 heads of 16
TOKENS = B * T * C
SCORES = B * HEADS * T * T


def vit(kv_heads=HEADS, float_mask=False, explicit=False):
    qkv = TOKENS * (HEADS + 2 * kv_heads) * HD
    core = {
        "conv": B * (C * 3 * 8 * 8) * 16,
        "linear": 2 * (qkv + TOKENS * C + TOKENS * MLP + B * T * MLP * C) + B * C * 10,
        "layer_norm": 5 * TOKENS * 5,                  # 2 per block + final
    }
    full = dict(core, add=TOKENS + 2 * 2 * TOKENS,      # pos embed + 2 residuals per block
                gelu=2 * B * T * MLP)
    matmuls = 2 * SCORES * (HD + HD)                   # 2 blocks: q @ kᵀ and attn @ v
    if explicit:
        core["matmul"] = full["matmul"] = matmuls
        full["mul"] = 2 * SCORES                       # * scale
        full["softmax"] = 2 * SCORES
        if float_mask:
            full["add"] += 2 * SCORES                  # + mask
    else:
        core["scaled_dot_product_attention"] = matmuls
        full["scaled_dot_product_attention"] = matmuls + 2 * (2 + float_mask) * SCORES
    return {"full": full, "paper": core}


# ---------------------------------------------------------------- Swin stage: (1, 3, 32, 32)
def swin():
    L, Cs, N, nW, H = 64, 32, 16, 4, 2    # 8x8 tokens of 32 channels, 4 windows of 16, 2 heads
    scores = nW * H * N * N
    block_linear = L * Cs * 3 * Cs + L * Cs * Cs + L * Cs * 4 * Cs + L * 4 * Cs * Cs
    core = {
        "conv": 1 * (Cs * 3 * 16) * L,
        "layer_norm": 5 * L * Cs * (1 + 2 * 2) + 5 * 16 * 4 * Cs,   # patch, blocks, merging
        "linear": 2 * block_linear + 16 * 4 * Cs * 2 * Cs,
        "scaled_dot_product_attention": 2 * scores * (Cs // H) * 2,
    }
    full = dict(core)
    # the relative position bias is a float mask: scale + softmax + mask add in each block
    full["scaled_dot_product_attention"] += 2 * 3 * scores
    full["add"] = scores + 2 * 2 * L * Cs     # shift mask + bias, two residuals per block
    full["gelu"] = 2 * L * 4 * Cs
    return {"full": full, "paper": core}


# ---------------------------------------------------------------- UNet decoder: (1, 3, 16, 16)
def unet():
    plane = 8 * 16 * 16                       # every resampled 2-D/3-D branch: 2048 elements
    core = {
        "conv": (4 * 3 * 9) * 256 + (8 * 4 * 9) * 64 + (8 * 8 * 9) * 16 + 4 * 104 * 256
                + 3 * 4 * 256,
        "upsample_nearest2d": plane + 4 * 16 * 16,   # + the area branch brought back up
        "upsample_bilinear2d": 4 * plane,
        "upsample_bicubic2d": 16 * plane,
        "_upsample_nearest_exact2d": plane,
        "_upsample_bilinear2d_aa": 4 * plane,
        "_upsample_bicubic2d_aa": 16 * plane,
        "upsample_linear1d": 2 * plane,
        "upsample_nearest1d": 2 * plane,             # scale 4, and the 1-D area branch back up
        "_upsample_nearest_exact1d": plane,
        "upsample_trilinear3d": 8 * plane,
        "upsample_nearest3d": plane,
        "_upsample_nearest_exact3d": plane,
        "adaptive_avg_pool2d": 4 * 16 * 16,          # area mode, fvcore's rule: input numel
    }
    full = dict(core, adaptive_avg_pool1d=8 * 64, add=4 * 16 * 16)
    return {"full": full, "paper": core}


# ---------------------------------------------------------------- PyTorch attention: (2, 10, 32)
MHA_IN_OUT = 2 * 10 * 32 * 96 + 2 * 10 * 32 * 32    # in-projection + out-projection
MHA_ATTN = 2 * 2 * 10 * 10 * 32                     # q @ kᵀ and attn @ v
MHA_SCORES = 2 * 4 * 10 * 10


def mha(need_weights):
    if need_weights:   # slow path: q * scale, bmm, softmax, bmm, mean over heads
        full = {"linear": MHA_IN_OUT, "bmm": MHA_ATTN, "mul": 2 * 10 * 32,
                "softmax": MHA_SCORES, "mean": MHA_SCORES}
        return {"full": full, "paper": {"linear": MHA_IN_OUT, "bmm": MHA_ATTN}}
    return {"full": {"linear": MHA_IN_OUT, "scaled_dot_product_attention": MHA_ATTN + 2 * MHA_SCORES},
            "paper": {"linear": MHA_IN_OUT, "scaled_dot_product_attention": MHA_ATTN}}


def encoder_layer():   # 4 heads, feed-forward 64, GELU, post-norm
    tokens = 2 * 10 * 32
    core = {"linear": MHA_IN_OUT + 2 * tokens * 64, "scaled_dot_product_attention": MHA_ATTN,
            "layer_norm": 2 * 5 * tokens}
    full = dict(core, scaled_dot_product_attention=MHA_ATTN + 2 * MHA_SCORES,
                gelu=2 * 10 * 64, add=2 * tokens)
    return {"full": full, "paper": core}


# ---------------------------------------------------------------- Mamba: (2, 16, 32)
Bm, Lm, Dm, Nm, Rm, Wm, DMODEL = 2, 16, 64, 16, 2, 4, 32   # d_inner 64, d_state 16, dt_rank 2
IN_PROJ = 2 * Dm * DMODEL * Bm * Lm
CONV = Bm * Dm * Lm * Wm
SILU = Bm * Dm * Lm
X_PROJ = Bm * Lm * Dm * (Rm + 2 * Nm)
DT_PROJ = Bm * Lm * Dm * Rm
SCAN = 9 * Bm * Lm * Dm * Nm + Bm * Dm * Lm + Bm * Dm * Lm       # with D and z
OUT_PROJ = Bm * Lm * Dm * DMODEL
A_TERMS = Dm * Nm                                                # -exp(A_log): exp, neg
NORMS = 3 * 5 * Bm * Lm * DMODEL                                 # 2 blocks + final
RESIDUALS = 2 * Bm * Lm * DMODEL


def mamba(path):
    shared_full = {"layer_norm": NORMS, "exp": 2 * A_TERMS, "neg": 2 * A_TERMS,
                   "add": RESIDUALS}
    if path == "fast":
        fused = CONV + X_PROJ + DT_PROJ + SCAN + OUT_PROJ
        core = {"PythonOp.MambaInnerFn": 2 * fused, "matmul": 2 * IN_PROJ, "layer_norm": NORMS}
        full = dict(shared_full, **{"PythonOp.MambaInnerFn": 2 * (fused + SILU),
                                    "matmul": 2 * IN_PROJ})
        return {"full": full, "paper": core}
    core = {"PythonOp.SelectiveScanFn": 2 * SCAN, "linear": 2 * (X_PROJ + OUT_PROJ),
            "matmul": 2 * (IN_PROJ + DT_PROJ), "layer_norm": NORMS}
    full = dict(shared_full, **core)
    if path == "slow":
        core["PythonOp.CausalConv1dFn"] = 2 * CONV
        full["PythonOp.CausalConv1dFn"] = 2 * (CONV + SILU)
    else:   # nn.Conv1d(padding=W-1) over L + W - 1 outputs, sliced to L, then SiLU
        core["conv"] = full["conv"] = 2 * Bm * Dm * Wm * (Lm + Wm - 1)
        full["silu"] = 2 * SILU
    return {"full": full, "paper": core}


def vim():
    per_direction = CONV + X_PROJ + DT_PROJ + SCAN
    core = {"PythonOp.MambaInnerFnNoOutProj": 2 * per_direction, "matmul": IN_PROJ,
            "linear": OUT_PROJ, "layer_norm": 5 * Bm * Lm * DMODEL}
    full = dict(core, **{"PythonOp.MambaInnerFnNoOutProj": 2 * (per_direction + SILU),
                         "exp": 2 * A_TERMS, "neg": 2 * A_TERMS,
                         "add": Bm * Dm * Lm + Bm * Lm * DMODEL,   # out + out_b, residual
                         "div": Bm * Lm * Dm})                      # / 2
    return {"full": full, "paper": core}


def vss_block(b, d, L, N=1):
    """VMamba VSS block, SS2D v05_noz on (b, d, H, W) with L = H·W: d_inner = d, K = 4."""
    K, R = 4, -(-d // 16)                     # dt_rank = ceil(d / 16)
    core = {
        "conv": (b * d * d * L) * 2               # in_proj, out_proj (1x1)
                + b * d * 9 * L                   # depthwise 3x3
                + b * (K * (R + 2 * N) * d) * L   # x_proj, grouped conv1d
                + b * (K * d * R) * L             # dt_projs, grouped conv1d
                + 2 * b * (4 * d * d) * L,        # MLP
        "PythonOp.SelectiveScanCuda": 9 * b * L * (K * d) * N + b * (K * d) * L,   # D, no z
        "layer_norm": 3 * 5 * b * d * L,          # block norm, SS2D out_norm, norm2
    }
    full = dict(core, **{"PythonOp.CrossMerge": (K - 1) * b * d * L, "silu": b * d * L,
                         "gelu": b * 4 * d * L, "exp": K * d * N, "neg": K * d * N,
                         "add": 2 * b * d * L})
    return {"full": full, "paper": core}


def add_counts(*dicts):
    total = {}
    for d in dicts:
        for op, macs in d.items():
            total[op] = total.get(op, 0) + macs
    return total


def vmamba_tiny(preset):
    """VMamba-T[s1l8] at 224x224, batch 1: patch embed v2, stages of depth 2, 2, 8, 2 at
    dims 96..768, downsample v3, norm, average pool, 1000-way head."""
    parts = [{"conv": (48 * 3 * 9) * 112 * 112 + (96 * 48 * 9) * 56 * 56,
              "layer_norm": 5 * 48 * 112 * 112 + 5 * 96 * 56 * 56}]
    if preset == "full":
        parts.append({"gelu": 48 * 112 * 112})
    side, dim = 56, 96
    for i, depth in enumerate((2, 2, 8, 2)):
        parts += [vss_block(1, dim, side * side)[preset]] * depth
        if i < 3:
            side //= 2
            parts.append({"conv": (2 * dim * dim * 9) * side * side,
                          "layer_norm": 5 * 2 * dim * side * side})
            dim *= 2
    parts.append({"layer_norm": 5 * 768 * 49, "adaptive_avg_pool2d": 768 * 49,
                  "linear": 768 * 1000})
    return add_counts(*parts)


EXPECTED = {
    "cnn": {"full": CNN, "paper": CNN},
    "vit": vit(), "vit_explicit": vit(explicit=True),
    "vit_gqa": vit(kv_heads=2), "vit_gqa_explicit": vit(kv_heads=2, explicit=True),
    "vit_causal": vit(), "vit_causal_explicit": vit(explicit=True),
    "vit_float_mask": vit(float_mask=True),
    "vit_float_mask_explicit": vit(float_mask=True, explicit=True),
    "vit_bool_mask": vit(), "vit_bool_mask_explicit": vit(explicit=True),
    "swin_stage": swin(),
    "unet_decoder": unet(),
    "transformer_encoder_layer": encoder_layer(),
    "mha": mha(need_weights=False), "mha_weights": mha(need_weights=True),
    "mamba": mamba("fast"), "mamba_slow": mamba("slow"), "mamba_conv1d": mamba("conv1d"),
    "vim_block": vim(),
    "vmamba_block": vss_block(2, 32, 64),
    "vmamba_tiny": {"full": vmamba_tiny("full"), "paper": vmamba_tiny("paper")},
}
