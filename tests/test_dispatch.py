"""The dispatch engine (fvcore_ext/dispatch.py, CONVENTIONS.md "The dispatch engine"): the same
totals and family totals as the JIT engine, autograd Functions counted once at their boundary,
and what the tracer cannot count. The transformers zoo and the real mamba-ssm models are
checked in tests/test_transformers_sweep.py and tests/helpers.count_in_both_tools."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext import UncountableOpError, count_model, register_rule, unregister_rule
from fvcore_ext.engines.dispatch import BACKWARD_RULES, counting
from fvcore_ext.reference_models import REFERENCE_MODELS, build
from tests.helpers import assert_engines_agree


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_every_reference_model_counts_the_same_in_both_engines(name, preset, device):
    model, inputs = build(name)
    jit = count_model(model, inputs, preset=preset, device=device)
    dispatch = count_model(model, inputs, preset=preset, device=device, engine="dispatch")
    assert jit.uncounted == [] and jit.unsupported_ops == {}
    assert_engines_agree(jit, dispatch)
    assert dispatch.engine == "dispatch" and dispatch.device == device
    assert dispatch.backward_macs == 0 and dispatch.forward_macs == dispatch.total_macs


def test_per_module_counts_match_the_jit_engine():
    model, inputs = build("vit")
    jit = count_model(model, inputs)
    dispatch = count_model(model, inputs, engine="dispatch")
    assert dispatch.by_module[""] == jit.by_module[""] == jit.total_macs
    for name, macs in dispatch.by_module.items():
        assert jit.by_module[name] == macs, name


class GeLUFunction(torch.autograd.Function):
    """Named like transformers' BLOOM Function, which the op table counts as a gelu: its
    tanh-approximation body runs eight elementwise ops that must not be counted again."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        tanh = torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x))
        return grad * (0.5 * (1 + tanh) + 0.5 * x * (1 - tanh * tanh) * 0.79788456
                       * (1 + 3 * 0.044715 * x * x))


class FusedGLU(torch.autograd.Function):
    """An autograd Function no rule counts (the README's example)."""

    @staticmethod
    def forward(ctx, x):
        a, b = x.chunk(2, dim=-1)
        ctx.save_for_backward(a, b)
        return a * torch.sigmoid(b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        gate = torch.sigmoid(b)
        return torch.cat([grad * gate, grad * a * gate * (1 - gate)], dim=-1)


class Wrap(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.proj, self.function = nn.Linear(8, 8), function

    def forward(self, x):
        return self.function.apply(self.proj(x))


def test_a_known_function_counts_once_at_its_boundary_forward_and_backward():
    x = torch.randn(3, 8)
    report = count_model(Wrap(GeLUFunction), [x], engine="dispatch")
    assert report.by_operator == {"linear": 3 * 8 * 8, "PythonOp.GeLUFunction": 24}
    assert count_model(Wrap(GeLUFunction), [x]).by_operator == report.by_operator
    train = count_model(Wrap(GeLUFunction), [x], engine="dispatch", backward=True)
    # backward: the Function's as gelu_backward (24, its body's ops not counted), then the
    # linear's weight gradient (192) and bias gradient (24); the input needs no gradient
    assert train.backward_macs == 24 + 192 + 24
    assert train.uncounted == []


def test_an_unknown_function_is_named_and_its_insides_counted():
    report = count_model(Wrap(FusedGLU), [torch.randn(3, 8)], engine="dispatch")
    assert report.unsupported_ops == {"prim::PythonOp.FusedGLU": 1}
    assert report.by_operator == {"linear": 192, "sigmoid": 12, "mul": 12}
    with pytest.raises(UncountableOpError, match="FusedGLU"):
        count_model(Wrap(FusedGLU), [torch.randn(3, 8)], engine="dispatch", strict=True)


def test_an_unknown_aten_op_is_named_and_strict_raises():
    class Bessel(nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x) + 1

    report = count_model(Bessel(), [torch.randn(4)], engine="dispatch")
    assert report.unsupported_ops == {"aten::special_bessel_j0": 1}
    assert report.by_operator == {"add": 4}
    with pytest.raises(UncountableOpError, match="special_bessel_j0"):
        count_model(Bessel(), [torch.randn(4)], engine="dispatch", strict=True)


class CausalConv1dFn(torch.autograd.Function):
    """causal-conv1d's Function, with a pure-PyTorch body (x (B, D, L), weight (D, W)) and a
    backward that returns zeros: the op table counts its forward and its backward."""

    @staticmethod
    def forward(ctx, x, weight, bias=None, seq_idx=None, initial_states=None,
                return_final_states=False, final_states_out=None, activation=None):
        ctx.shapes = x.shape, weight.shape
        out = F.conv1d(x, weight.unsqueeze(1), bias, padding=weight.shape[1] - 1,
                       groups=x.shape[1])[..., :x.shape[-1]]
        return F.silu(out) if activation else out

    @staticmethod
    def backward(ctx, grad):
        return (torch.zeros(ctx.shapes[0]), torch.zeros(ctx.shapes[1])) + (None,) * 6


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return CausalConv1dFn.apply(x, self.weight, None, None, None, False, None, "silu")


@pytest.mark.parametrize("input_grad", [False, True])
def test_a_function_backward_counts_by_its_backward_rule_not_its_body(input_grad):
    x = torch.randn(2, 4, 6, requires_grad=input_grad)
    report = count_model(Conv(), [x], engine="dispatch", backward=True)
    assert report.forward_macs == 2 * 4 * 6 * 3 + 2 * 4 * 6          # conv + silu
    # the reference's backward: silu_backward 48, the weight gradient (a conv of 144), the
    # input gradient (144) only when x needs one; the body's zeros are not counted
    assert report.backward_macs == 48 + 144 + (144 if input_grad else 0)
    assert report.uncounted == []


def test_a_function_without_a_backward_rule_is_reported_uncounted():
    register_rule("prim::PythonOp.FusedGLU")(lambda call: 1000)
    try:
        report = count_model(Wrap(FusedGLU), [torch.randn(3, 8)], engine="dispatch",
                             backward=True)
    finally:
        unregister_rule("prim::PythonOp.FusedGLU")
    assert report.forward_macs == 192 + 1000
    # the Function's backward runs, uncounted (its ops are not the count of a rule); the
    # linear's backward counts: dW 192 and the bias gradient 24 (its input needs none)
    assert report.backward_macs == 192 + 24
    assert [u.op for u in report.uncounted] == ["prim::PythonOp.FusedGLU (backward)"]


def test_register_rule_with_a_backward_counts_the_training_step():
    register_rule("prim::PythonOp.FusedGLU",
                  backward=lambda call, needs: 2000 if needs[0] else 0)(lambda call: 1000)
    try:
        report = count_model(Wrap(FusedGLU), [torch.randn(3, 8)], engine="dispatch",
                             backward=True)
    finally:
        unregister_rule("prim::PythonOp.FusedGLU")
    # the Function's input (the linear's output) needs a gradient: 2000; the linear's dW 192
    # and bias gradient 24
    assert report.backward_macs == 2000 + 192 + 24 and report.uncounted == []
    assert "prim::PythonOp.FusedGLU" not in BACKWARD_RULES


def test_register_rule_backward_must_take_call_and_needs():
    with pytest.raises(TypeError, match="backward= must take two arguments"):
        register_rule("prim::PythonOp.FusedGLU", backward=lambda call: 1)


def test_register_rule_reaches_the_dispatch_engine():
    register_rule("prim::PythonOp.FusedGLU")(lambda call: 1000)
    try:
        report = count_model(Wrap(FusedGLU), [torch.randn(3, 8)], engine="dispatch")
        assert report.by_operator == {"linear": 192, "PythonOp.FusedGLU": 1000}
    finally:
        unregister_rule("prim::PythonOp.FusedGLU")


def test_adaptive_max_pool_costs_nothing_in_both_engines():
    # timm's bat_resnext26ts: a comparison per output, 0 like max_pool2d
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.AdaptiveMaxPool2d(2))
    x = torch.randn(1, 2, 4, 4)
    jit, dispatch = count_model(model, [x]), count_model(model, [x], engine="dispatch")
    assert jit.by_operator == dispatch.by_operator == {"conv": 2 * 2 * 16}
    assert jit.unsupported_ops == dispatch.unsupported_ops == {}


def test_a_compiled_model_counts_as_its_eager_model():
    model, inputs = build("vit")
    eager = count_model(model, inputs, engine="dispatch").total_macs
    compiled = torch.compile(model)
    assert count_model(compiled, inputs, engine="dispatch").total_macs == eager
    with torch.no_grad(), counting() as c:
        compiled(*inputs)        # dynamo runs the frame eagerly under a dispatch mode
    assert c.total_macs == eager and not c.unknown_ops


def test_data_dependent_models_count_on_cpu():
    # DBRX finds each expert's tokens with nonzero, Longformer reads is_global_attn with
    # .item(): no meta count, but the dispatch engine runs them on CPU like any forward.
    from tests.transformers_zoo import ZOO
    for name in ("dbrx", "longformer"):
        model, inputs, names = ZOO[name].build()
        report = count_model(model, inputs, names, engine="dispatch")
        assert report.total_macs > 0
        assert report.unsupported_ops == {} and report.uncounted == []


def test_a_decode_step_with_a_cache_object():
    # One token after a 12-token prefill of a 2-layer Llama (hidden 32, 4 heads of 8, 2 KV
    # heads, MLP 48): per layer q, o 32·32; k, v 32·16; MLP 3·32·48; SDPA over the 13 cached
    # positions 4·1·13·(8 + 8). The Cache object goes in as it is: no trace.
    from transformers import DynamicCache, LlamaConfig, LlamaModel
    torch.manual_seed(0)
    model = LlamaModel(LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   vocab_size=96, max_position_embeddings=64)).eval()
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.randint(0, 96, (1, 12)), past_key_values=cache)
        with counting(preset="paper") as c:
            model(input_ids=torch.randint(0, 96, (1, 1)), past_key_values=cache)
    per_layer = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 48
    assert c.by_family["matmul"] == 2 * per_layer
    assert c.by_family["attention"] == 2 * 4 * 13 * 16
    assert c.by_family["normalization"] == c.total_macs - 2 * per_layer - 2 * 4 * 13 * 16


def test_counting_restores_what_it_wraps_and_does_not_nest():
    linear, sdpa, apply = F.linear, F.scaled_dot_product_attention, torch.autograd.Function.apply
    with counting():
        # issue 26: the boundaries are seen through a torch-function mode, nothing is replaced
        assert F.linear is linear and F.scaled_dot_product_attention is sdpa
        with pytest.raises(RuntimeError, match="do not nest"):
            with counting():
                pass
    assert F.linear is linear and F.scaled_dot_product_attention is sdpa
    assert torch.autograd.Function.apply == apply
    assert "lstm" not in vars(torch._VF)
    with pytest.raises(ValueError, match="unknown preset"):
        with counting(preset="fast"):
            pass


def test_the_jit_engine_refuses_a_backward_count():
    with pytest.raises(ValueError, match="engine='dispatch'"):
        count_model(nn.Linear(2, 2), [torch.randn(1, 2)], backward=True)
    with pytest.raises(ValueError, match="unknown engine"):
        count_model(nn.Linear(2, 2), [torch.randn(1, 2)], engine="export")


def test_prelu_counts_in_both_engines_and_its_backward():
    # PReLU arrives at the dispatcher as _prelu_kernel: 1 x output numel, as aten::prelu
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.PReLU(4))
    x = torch.randn(1, 2, 4, 4)
    jit, dispatch = count_model(model, [x]), count_model(model, [x], engine="dispatch")
    assert jit.by_operator == dispatch.by_operator == {"conv": 128, "prelu": 64}
    train = count_model(model, [x], engine="dispatch", backward=True)
    # prelu's backward 64 and the sum of its weight gradient over positions 64; the conv's
    # weight gradient 128 and bias gradient 64 (its input needs none)
    assert train.backward_macs == 64 + 64 + 128 + 64 and train.unsupported_ops == {}
