"""Training counts for the Mamba kernels (CONVENTIONS.md "Training: forward + backward"), on the
real mamba-ssm 2.3.2 and causal-conv1d 1.7.0 with the stand-in kernels, on the dispatch engine:
the selective scan's and the SSD chunk scan's backward from their kernels' code (hand-derived
integers), every fused function's backward equal to its reference path's (Mamba fast = slow
path, Mamba-2 fused = unfused layer, fused add + norm = separate), frozen parts costing nothing."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext.runtime.standins import install_standin_kernels

install_standin_kernels()   # before importing mamba_ssm: no CUDA extensions, no Triton launches

from causal_conv1d import causal_conv1d_fn  # noqa: E402
from mamba_ssm.models.config_mamba import MambaConfig  # noqa: E402
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: E402
from mamba_ssm.ops.triton.layer_norm import layer_norm_fn  # noqa: E402
from mamba_ssm.ops.triton.layernorm_gated import layernorm_fn, rmsnorm_fn  # noqa: E402
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: E402

from fvcore_ext.reference_models import build  # noqa: E402
from tests.helpers import Call, count_training as training, grad  # noqa: E402
from tests.test_mamba2 import CONFIGS as MAMBA2_CONFIGS, mamba2  # noqa: E402
from tests.test_mamba_ssm import B as B_MAMBA, D, DM, L as L_MAMBA, N, R, W, mamba  # noqa: E402


def frozen(model, *prefixes):
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes):
            parameter.requires_grad_(False)
    return model


# ---------------------------------------------------------------- the selective scan

b, d, l, n = 2, 4, 8, 3      # batch, channels, length, states


# Per (b, d, l, n) the kernel's backward costs 25 with B and C varying along the sequence,
# 20 with both constant (D, N), 24 with only C varying, 25 with only B; per (b, d, l): 2 for
# D's skip term, 5 for the z gate, 1 for softplus's derivative.
@pytest.mark.parametrize("B_varies,C_varies,per_state", [
    (True, True, 25), (False, False, 20), (False, True, 24), (True, False, 25)])
@pytest.mark.parametrize("with_D,with_z,softplus", [
    (False, False, False), (True, False, False), (False, True, False), (True, True, True)])
@pytest.mark.parametrize("delta_bias", [False, True])
def test_selective_scan_backward(B_varies, C_varies, per_state, with_D, with_z, softplus,
                                 delta_bias):
    B = grad(b, n, l) if B_varies else grad(d, n)
    C = grad(b, n, l) if C_varies else grad(d, n)
    optional = dict(D=grad(d) if with_D else None, z=grad(b, d, l) if with_z else None,
                    delta_bias=grad(d) if delta_bias else None)
    inputs = [grad(b, d, l), grad(b, d, l), grad(d, n), B, C]
    report = training(Call(selective_scan_fn, delta_softplus=softplus, **optional), inputs,
                      "paper")
    forward = 9 * b * d * l * n + b * d * l * (with_D + with_z)
    backward = b * d * l * (per_state * n + 2 * with_D + 5 * with_z + softplus)
    assert (report.forward_macs, report.backward_macs) == (forward, backward)


def test_selective_scan_backward_grouped_B_and_C():
    # (B, G, N, L): the count does not depend on the groups G
    inputs = [grad(b, d, l), grad(b, d, l), grad(d, n), grad(b, 2, n, l), grad(b, 2, n, l)]
    assert training(Call(selective_scan_fn), inputs).backward_macs == b * d * l * 25 * n


class SelectiveScanOflex(torch.autograd.Function):
    """MzeroMiko/VMamba ``classification/models/csms6s.py``: B and C grouped (B, G, N, L), no z."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, nrows=1,
                backnrows=1, oflex=True):
        import selective_scan_cuda_oflex
        ctx.delta_softplus = delta_softplus
        out, x, *rest = selective_scan_cuda_oflex.fwd(u, delta, A, B, C, D, delta_bias,
                                                      delta_softplus, 1, oflex)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, x)
        return out

    @staticmethod
    def backward(ctx, dout, *args):
        import selective_scan_cuda_oflex
        u, delta, A, B, C, D, delta_bias, x = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, ddelta_bias, *rest = selective_scan_cuda_oflex.bwd(
            u, delta, A, B, C, D, delta_bias, dout.contiguous(), x, ctx.delta_softplus, 1)
        return du, ddelta, dA, dB, dC, dD, ddelta_bias, None, None, None, None


def test_vmamba_selective_scan_oflex_backward():
    inputs = [grad(b, d, l), grad(b, d, l), grad(d, n), grad(b, 1, n, l), grad(b, 1, n, l),
              grad(d), grad(d)]
    model = Call(lambda *args: SelectiveScanOflex.apply(*args))   # as csms6s calls it
    report = training(model, inputs)
    # VMamba's call: D and delta_bias given, softplus as passed (here False), no z
    assert report.by_operator == {"PythonOp.SelectiveScanOflex": b * d * l * (9 * n + 1),
                                  "PythonOp.SelectiveScanOflex_backward": b * d * l * (25 * n + 2)}


# ---------------------------------------------------------------- causal conv1d

@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("input_grad,weight_grad", [(True, True), (False, True), (True, False)])
def test_causal_conv1d_backward(bias, activation, input_grad, weight_grad):
    x = torch.randn(b, d, l, requires_grad=input_grad)
    model = Call(causal_conv1d_fn, bias=torch.randn(d, requires_grad=True) if bias else None,
                 activation=activation)
    inputs = [x, torch.randn(d, 4, requires_grad=weight_grad)]
    full, paper = training(model, inputs), training(model, inputs, "paper")
    # the reference (depthwise conv1d + silu): input and weight gradients, a conv of b·d·l·4
    # each; the bias gradient sums b·l per channel and silu_backward is 1 per element
    # (elementwise, full only)
    conv = b * d * l * 4
    assert paper.backward_macs == conv * (input_grad + weight_grad)
    assert full.backward_macs == paper.backward_macs + b * d * l * (bias + (activation is not None))


# ---------------------------------------------------------------- Mamba: fast path = slow path

# test_mamba_ssm.py's block: d_model 32, d_inner D, d_state N, dt_rank R, d_conv W
BATCH, LENGTH = B_MAMBA, L_MAMBA
BL, BDL = BATCH * LENGTH, BATCH * D * LENGTH


def test_mamba_block_by_hand():
    x = [torch.randn(BATCH, LENGTH, DM)]       # the input needs no gradient; every weight trains
    backward = {
        "in_proj": BL * 2 * D * DM,                     # its weight gradient only
        "out_proj": 2 * BL * D * DM,                    # input and weight gradients
        "scan": BDL * (25 * N + 2 + 5 + 1),             # with D, z and softplus
        "dt_proj": 2 * BL * D * R, "x_proj": 2 * BL * D * (R + 2 * N),
        "conv": 2 * BDL * W,                            # input and weight gradients
        # elementwise: the conv output's two gradients (x_proj's and the scan's) added, the
        # conv bias gradient, silu_backward, and A = -exp(A_log)'s neg and exp backward
        "elementwise": BDL + BDL + BDL + 2 * D * N}
    full = sum(backward.values())
    paper = full - backward["elementwise"]
    for fast in (True, False):
        assert training(mamba(use_fast_path=fast), x).backward_macs == full
        assert training(mamba(use_fast_path=fast), x, "paper").backward_macs == paper


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("freeze", [(), ("in_proj",), ("x_proj", "dt_proj"), ("conv1d",),
                                    ("A_log", "D", "out_proj"), ("out_proj", "in_proj")])
@pytest.mark.parametrize("input_grad", [False, True])
def test_fast_path_equals_slow_path_in_training(preset, freeze, input_grad):
    x = [torch.randn(BATCH, LENGTH, DM, requires_grad=input_grad)]
    fast = training(frozen(mamba(use_fast_path=True), *freeze), x, preset)
    slow = training(frozen(mamba(use_fast_path=False), *freeze), x, preset)
    assert "PythonOp.MambaInnerFn_backward" in fast.by_operator
    assert "PythonOp.SelectiveScanFn_backward" in slow.by_operator
    assert (fast.forward_macs, fast.backward_macs) == (slow.forward_macs, slow.backward_macs)


def test_a_frozen_mamba_block_costs_only_the_input_gradients():
    x = [torch.randn(BATCH, LENGTH, DM, requires_grad=True)]
    model = mamba(use_fast_path=True).requires_grad_(False)
    backward = training(model, x, "paper").backward_macs
    # every weight gradient gone: in_proj, out_proj, x_proj, dt_proj and the conv each lose one
    # of their two products, the scan's backward stays
    assert backward == (BL * 2 * D * DM + BL * D * DM + BDL * (25 * N + 8) + BL * D * R
                        + BL * D * (R + 2 * N) + BDL * W)


class BiMambaInnerFn(torch.autograd.Function):
    """Vim's ``BiMambaInnerFn`` (hustvl/Vim ``mamba-1p1p1``): its forward is its reference,
    run uncounted inside the boundary; its backward returns zeros."""

    @staticmethod
    def forward(ctx, xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight,
                out_proj_weight, out_proj_bias, A, A_b, B=None, C=None, D=None,
                delta_bias=None, B_proj_bias=None, C_proj_bias=None, delta_softplus=True,
                checkpoint_lvl=1):
        ctx.shapes = [t.shape for t in (xz, conv1d_weight, conv1d_bias, x_proj_weight,
                                        delta_proj_weight, out_proj_weight)]
        ctx.shapes += [None, A.shape, A_b.shape, None, None, D.shape, delta_bias.shape]
        with torch.no_grad():
            return bimamba_inner_ref(xz, conv1d_weight, conv1d_bias, x_proj_weight,
                                     delta_proj_weight, out_proj_weight, A, A_b, D, delta_bias)

    @staticmethod
    def backward(ctx, grad):
        return tuple(None if s is None else torch.zeros(s) for s in ctx.shapes) + (None,) * 4


def bimamba_inner_ref(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight,
                      out_proj_weight, A, A_b, D, delta_bias):
    """hustvl/Vim ``bimamba_inner_ref`` (real A, variable B and C, no B/C biases), with x_proj's
    output split as Mamba's slow path splits it."""
    x, z = xz.chunk(2, dim=1)
    x = causal_conv1d_fn(x, conv1d_weight.squeeze(1), conv1d_bias, activation="silu")
    x_dbl = F.linear(x.transpose(1, 2).reshape(-1, D.shape[0]), x_proj_weight)
    # split once, as Mamba's slow path does: three slices would add two full-size gradients
    dt, B, C = torch.split(x_dbl, [R, N, N], dim=-1)
    delta = (delta_proj_weight @ dt.t()).reshape(D.shape[0], BATCH, LENGTH).transpose(0, 1)
    B = B.reshape(BATCH, LENGTH, N).transpose(1, 2).contiguous()
    C = C.reshape(BATCH, LENGTH, N).transpose(1, 2).contiguous()
    y = selective_scan_fn(x, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=True)
    y_b = selective_scan_fn(x.flip([-1]), delta.flip([-1]), A_b, B.flip([-1]), C.flip([-1]), D,
                            z.flip([-1]), delta_bias, delta_softplus=True)
    return F.linear((y + y_b.flip([-1])).transpose(1, 2), out_proj_weight)


class BiMamba(nn.Module):
    def __init__(self, fused):
        super().__init__()
        torch.manual_seed(0)
        self.fused, self.inner = fused, mamba(use_fast_path=False)
        self.A_b_log = nn.Parameter(torch.randn(D, N))

    def forward(self, xz):
        m = self.inner
        A, A_b = -torch.exp(m.A_log), -torch.exp(self.A_b_log)
        args = (xz, m.conv1d.weight, m.conv1d.bias, m.x_proj.weight, m.dt_proj.weight,
                m.out_proj.weight)
        if self.fused:
            return BiMambaInnerFn.apply(*args, None, A, A_b, None, None, m.D, m.dt_proj.bias)
        return bimamba_inner_ref(*args, A, A_b, m.D, m.dt_proj.bias)


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("freeze", [(), ("inner.x_proj", "inner.conv1d"), ("inner.D",),
                                    ("inner.dt_proj",)])
def test_bimamba_inner_fn_equals_its_reference_in_training(preset, freeze):
    xz = [torch.randn(BATCH, 2 * D, LENGTH, requires_grad=True)]
    fused = training(frozen(BiMamba(True), *freeze), xz, preset)
    reference = training(frozen(BiMamba(False), *freeze), xz, preset)
    assert "PythonOp.BiMambaInnerFn_backward" in fused.by_operator
    assert (fused.forward_macs, fused.backward_macs) == (reference.forward_macs,
                                                         reference.backward_macs)


def test_reference_models_train_with_their_pure_pytorch_kernels():
    totals = {}
    for name in ("mamba", "mamba_slow", "vim_block", "vmamba_block"):
        model, inputs = build(name)
        totals[name] = training(model, list(inputs)).backward_macs
    assert totals["mamba"] == totals["mamba_slow"] > 0
    assert totals["vim_block"] > 0 and totals["vmamba_block"] > 0


# ---------------------------------------------------------------- Mamba-2: fused = unfused

LENGTH2 = 20       # test_mamba2.py's Mamba2(d_model=32, d_state=16, headdim=8, chunk_size=8)


def test_mamba2_layer_by_hand():
    # b=2, l=20, h=8 heads of p=8, g=1, n=16, Q=8: c=3 chunks, S=144; dim=64, conv over 96
    # channels of width 4, out_proj 64 -> 32; the input needs no gradient
    b2, l2, h, p, g, n2, c, S = 2, 20, 8, 8, 1, 16, 3, 144
    rows, numel = b2 * l2, b2 * l2 * 64
    scan = (3 * b2 * g * n2 * S + 3 * b2 * h * p * S + 5 * b2 * h * p * n2 * l2
            + 3 * b2 * h * p * n2 * c + 2 * rows * h * p)                 # with D
    paper = {"in_proj": rows * DM * 168, "out_proj": 2 * rows * 64 * DM, "scan": scan,
             "conv": 2 * b2 * 96 * l2 * 4}
    full = dict(paper,
                # the forward's discretisation and decays once more
                scan_elementwise=b2 * l2 * h * 4 + b2 * h * S + 2 * b2 * l2 * h + b2 * h * c,
                # RMSNorm: 6 + 1 (weight) for x, 2 for the weight; the gate 1 + 2 for z
                gated_norm=(7 + 2) * numel + 3 * numel,
                conv_elementwise=2 * b2 * 96 * l2,                # bias gradient, silu
                A=2 * h)                                          # A = -exp(A_log)
    x = [torch.randn(2, LENGTH2, DM)]
    for fused in (True, False):
        assert training(mamba2(use_mem_eff_path=fused), x).backward_macs == sum(full.values())
        assert training(mamba2(use_mem_eff_path=fused), x,
                        "paper").backward_macs == sum(paper.values())


# test_mamba2.py's configurations, but one: mamba-ssm 2.3.2's fused backward for rmsnorm=False
# with d_ssm < d_inner builds out_proj's weight gradient from the scan output alone and fails on
# any device. The same without the gated MLP part stays.
CONFIGS = {name: config for name, config in MAMBA2_CONFIGS.items()
           if name != "no_rmsnorm_groups_mlp"}
CONFIGS["no_rmsnorm_groups"] = dict(rmsnorm=False, ngroups=4)


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
@pytest.mark.parametrize("freeze", [(), ("in_proj",), ("conv1d", "out_proj"),
                                    ("norm", "D", "A_log", "dt_bias")])
def test_mem_eff_path_equals_unfused_path_in_training(config, preset, freeze):
    x = [torch.randn(2, LENGTH2, DM)]
    fused = training(frozen(mamba2(use_mem_eff_path=True, **CONFIGS[config]), *freeze), x, preset)
    unfused = training(frozen(mamba2(use_mem_eff_path=False, **CONFIGS[config]), *freeze), x,
                       preset)
    assert "PythonOp.MambaSplitConv1dScanCombinedFn_backward" in fused.by_operator
    assert "PythonOp.MambaChunkScanCombinedFn_backward" in unfused.by_operator
    assert (fused.forward_macs, fused.backward_macs) == (unfused.forward_macs,
                                                         unfused.backward_macs)


def test_chunk_scan_backward_small_case_by_hand():
    # b=1, l=3, h=1, p=1, g=1, n=2, Q=2: chunks [2, 1], c=2, S=5. Core: 3·(b·g·n·S) = 30,
    # 3·(b·h·p·S) = 15, 5·(b·h·p·n·l) = 30, 3·(b·h·p·n·c) = 12, D's 2·l = 6 -> 93.
    # Elementwise: the forward's 25 (test_mamba2.py) again.
    inputs = [grad(1, 3, 1, 1), grad(1, 3, 1), grad(1), grad(1, 3, 1, 2), grad(1, 3, 1, 2)]
    model = Call(mamba_chunk_scan_combined, chunk_size=2, D=torch.ones(1, requires_grad=True),
                 dt_bias=torch.zeros(1, requires_grad=True), dt_softplus=True)
    assert training(model, inputs, "paper").backward_macs == 93
    assert training(model, inputs).backward_macs == 93 + 25


# ---------------------------------------------------------------- the fused norms

@pytest.mark.parametrize("z_grad", [False, True])
@pytest.mark.parametrize("norm_before_gate", [False, True])
def test_gated_rms_norm_backward(z_grad, norm_before_gate):
    x, z, weight = grad(5, 16), torch.randn(5, 16, requires_grad=z_grad), grad(16)
    model = Call(rmsnorm_fn, bias=None, z=z, group_size=8, norm_before_gate=norm_before_gate)
    report = training(model, [x, weight])
    # RMSNorm: x's gradient 6 + 1 (the weight) per element, the weight's 2; the gate:
    # dy·silu(z) 1, and z's gradient (its product and silu_backward) 2; all elementwise
    assert report.backward_macs == 80 * (7 + 2 + 1 + 2 * z_grad)
    assert training(model, [x, weight], "paper").backward_macs == 0


# Only the weight, or only z, needs a gradient: with the gate first (Mamba2's default,
# norm(x·silu(z))) the norm's input needs one whenever z does, and the ·silu(z) product only
# when x does; with the norm first (norm(x)·silu(z)), dy·silu(z) whenever the norm's side does.
@pytest.mark.parametrize("trains,norm_before_gate,per_element", [
    ("weight", False, 2), ("weight", True, 2 + 1),
    ("z", False, (6 + 1) + 2), ("z", True, 2)])
def test_gated_rms_norm_backward_of_one_part(trains, norm_before_gate, per_element):
    x, z = torch.randn(5, 16), torch.randn(5, 16, requires_grad=trains == "z")
    weight = torch.randn(16, requires_grad=trains == "weight")
    model = Call(rmsnorm_fn, bias=None, z=z, group_size=8, norm_before_gate=norm_before_gate)
    assert training(model, [x, weight]).backward_macs == 80 * per_element


def test_gated_layer_norm_backward():
    x, z, weight, bias = grad(5, 16), grad(5, 16), grad(16), grad(16)
    report = training(Call(layernorm_fn), [x, weight, bias, z], "paper")
    # LayerNorm (core): x's gradient 9 + 1 (affine), the weight's 2, the bias's 1 per element
    assert report.backward_macs == 80 * 13


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("prenorm", [False, True])
def test_fused_add_norm_backward(rms, prenorm):
    x, residual, weight = grad(5, 16), grad(5, 16), grad(16)
    model = Call(layer_norm_fn, bias=None if rms else grad(16), residual=residual,
                 prenorm=prenorm, is_rms_norm=rms)
    full, paper = training(model, [x, weight]), training(model, [x, weight], "paper")
    norm = 80 * ((7 + 2) if rms else (10 + 2 + 1))
    added = 80 if prenorm else 0     # the returned residual's gradient joins the norm's
    assert paper.backward_macs == (0 if rms else norm)
    assert full.backward_macs == norm + added


@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("layer", ["Mamba1", "Mamba2"])
@pytest.mark.parametrize("rms_norm", [True, False])
def test_lm_fused_add_norm_equals_separate_add_and_norm_in_training(layer, rms_norm, preset):
    ids = [torch.randint(0, 64, (2, LENGTH2))]
    counts = []
    for fused_add_norm in (True, False):
        ssm = dict(layer=layer)
        if layer == "Mamba2":
            ssm.update(d_state=16, headdim=8, chunk_size=8)
        torch.manual_seed(0)
        model = MambaLMHeadModel(MambaConfig(d_model=DM, n_layer=2, vocab_size=64, ssm_cfg=ssm,
                                             rms_norm=rms_norm, fused_add_norm=fused_add_norm))
        report = training(model, ids, preset)
        counts.append((report.forward_macs, report.backward_macs))
    assert counts[0] == counts[1]
