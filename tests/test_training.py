"""Training counts (CONVENTIONS.md "Training: forward + backward"): exact integers derived by
hand, forward then backward from the sum of the outputs, on the dispatch engine."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from fvcore_ext import count_model
from tests.helpers import Call, count_training as training, grad


# Linear 8 → 4 on (2, 5, 8): 10 rows. Forward 10·8·4 = 320 (bias not counted). Backward:
# dX = dY @ W (320) if the input needs it, dW = dYᵀ @ X (320) if the weight trains, and the
# bias gradient sums dY's 10 rows of 4 (40, a reduction: 0 under paper).
@pytest.mark.parametrize("input_grad,weight_grad,bias,full,paper", [
    (True, True, True, 320 + 320 + 40, 640),
    (False, True, True, 320 + 40, 320),
    (True, False, True, 320 + 40, 320),
    (True, True, False, 640, 640),
    (False, True, False, 320, 320),
])
def test_linear(input_grad, weight_grad, bias, full, paper):
    torch.manual_seed(0)
    layer = nn.Linear(8, 4, bias=bias)
    layer.weight.requires_grad_(weight_grad)
    x = torch.randn(2, 5, 8, requires_grad=input_grad)
    for preset, backward in (("full", full), ("paper", paper)):
        report = training(layer, [x], preset)
        assert (report.forward_macs, report.backward_macs) == (320, backward)


# Conv2d 3 → 4, 3×3, on (1, 3, 8, 8): output (1, 4, 6, 6). Forward 1·(4·3·9)·36 = 3888. The
# input gradient and the weight gradient are each a convolution of 3888; the bias gradient
# sums the 144 output-gradient elements (elementwise: 0 under paper).
@pytest.mark.parametrize("input_grad,frozen,bias,full,paper", [
    (True, False, True, 2 * 3888 + 144, 2 * 3888),
    (False, False, True, 3888 + 144, 3888),
    (False, False, False, 3888, 3888),
    (True, True, False, 3888, 3888),
    (True, True, True, 3888 + 144, 3888),
])
def test_conv2d(input_grad, frozen, bias, full, paper):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, bias=bias)
    conv.weight.requires_grad_(not frozen)
    x = torch.randn(1, 3, 8, 8, requires_grad=input_grad)
    for preset, backward in (("full", full), ("paper", paper)):
        report = training(conv, [x], preset)
        assert (report.forward_macs, report.backward_macs) == (3888, backward)
        # one kernel, convolution_backward, computes all three: its family is convolution
        assert report.by_family == {"convolution": 3888 + backward}


def test_a_frozen_backbone_counts_only_what_autograd_runs():
    # Backbone frozen, head trains, input without grad: the backbone runs no backward at
    # all; the head computes its weight and bias gradients only (no input gradient).
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(8, 8), nn.GELU()).requires_grad_(False)
    model = nn.Sequential(backbone, nn.Linear(8, 4))
    report = training(model, [torch.randn(3, 8)])
    assert report.forward_macs == 3 * 8 * 8 + 3 * 8 + 3 * 8 * 4
    assert report.backward_macs == 3 * 8 * 4 + 3 * 4        # dW of the head, its bias sum
    with pytest.raises(ValueError, match="no output of the model requires grad"):
        count_model(backbone, [torch.randn(3, 8)], engine="dispatch", backward=True)


def test_layer_norm():
    # (2, 5, 8), 80 elements. Forward 5·80 (affine). Backward per element: input gradient
    # 9 + 1 (affine), weight gradient 2, bias gradient 1: 13·80 = 1040, in both presets.
    x = grad(2, 5, 8)
    for preset in ("full", "paper"):
        report = training(nn.LayerNorm(8), [x], preset)
        assert (report.forward_macs, report.backward_macs) == (400, 1040)
    # Without affine weights and with an input that needs its gradient: 9·80.
    report = training(nn.LayerNorm(8, elementwise_affine=False), [x])
    assert (report.forward_macs, report.backward_macs) == (320, 720)


def test_gelu():
    x = grad(2, 5, 8)
    report = training(nn.GELU(), [x])
    assert (report.forward_macs, report.backward_macs) == (80, 80)
    assert report.by_operator == {"gelu": 80, "gelu_backward": 80}
    assert training(nn.GELU(), [x], "paper").total_macs == 0


class Attention(nn.Module):
    """SDPA on one backend, or the contract's explicit reference."""

    def __init__(self, backend=None):
        super().__init__()
        self.backend = backend

    def forward(self, q, k, v):
        if self.backend is None:
            return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1) @ v
        with sdpa_kernel([self.backend]):
            return F.scaled_dot_product_attention(q, k, v)


# q, k, v (1, 2, 5, 8): B·H·L·S = 50 scores. Forward: two matmuls 50·8 each (800), scale and
# softmax 50 each (900 under full). Backward: four matmuls of 400 (1600), the softmax and the
# scale gradients 50 each (1700 under full).
@pytest.mark.parametrize("backend", [None, SDPBackend.MATH, SDPBackend.FLASH_ATTENTION],
                         ids=["explicit", "math", "flash_cpu"])
@pytest.mark.parametrize("preset,forward,backward", [("full", 900, 1700),
                                                     ("paper", 800, 1600)])
def test_sdpa_every_cpu_backend_equals_explicit_attention(backend, preset, forward, backward):
    torch.manual_seed(0)
    q, k, v = grad(1, 2, 5, 8), grad(1, 2, 5, 8), grad(1, 2, 5, 8)
    report = training(Attention(backend), [q, k, v], preset)
    assert (report.forward_macs, report.backward_macs) == (forward, backward)


def test_sdpa_backward_counts_only_the_gradients_it_needs():
    # Only v needs a gradient: dV = Pᵀ @ dO (400), nothing through the softmax.
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8), grad(1, 2, 5, 8)
    for backend in (None, SDPBackend.MATH, SDPBackend.FLASH_ATTENTION):
        report = training(Attention(backend), [q, k, v])
        assert report.backward_macs == 400


def test_tiny_llama_matmuls_train_at_three_times_forward():
    # The "6·N·D" rule at MAC resolution: every matmul's input and weight gradients are one
    # forward matmul each, attention's matmuls included (eager attention: they are matmuls).
    from transformers import LlamaConfig, LlamaModel

    def llama(attention):
        torch.manual_seed(0)
        return LlamaModel(LlamaConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
            attn_implementation=attention))

    model = llama("eager")
    ids = torch.randint(0, 96, (1, 12))
    forward = count_model(model, [ids], ["input_ids"], engine="dispatch")
    train = training(model, [ids])
    assert train.forward_macs == forward.total_macs
    assert train.by_family["matmul"] == 3 * forward.by_family["matmul"]
    # Hand count of the matmuls: per layer q, o: 12·32·32; k, v: 12·32·16; MLP 3·12·32·48;
    # scores and attention output 4 heads · 12 · 12 · 8 each.
    per_layer = 2 * 12 * 32 * 32 + 2 * 12 * 32 * 16 + 3 * 12 * 32 * 48 + 2 * 4 * 12 * 12 * 8
    assert forward.by_family["matmul"] == 2 * per_layer
    # With SDPA the attention matmuls move to the attention family, with the same ratio.
    sdpa = training(llama("sdpa"), [ids], "paper")
    assert sdpa.by_family["matmul"] + sdpa.by_family["attention"] == 3 * 2 * per_layer


def test_counting_a_users_own_training_loop():
    from fvcore_ext.engines.dispatch import counting
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.GELU())
    x = torch.randn(10, 8)
    with counting(preset="full") as c:
        model(x).sum().backward()
    # forward: linear 320 + gelu 40 + the loss's sum 40; backward: gelu 40, dW 320, bias 40
    assert (c.forward_macs, c.backward_macs) == (400, 400)
    assert c.by_family == {"matmul": 640, "elementwise": 80, "reduction": 80}
    assert c.by_module["Sequential.0"] == 320 + 320 + 40
    assert c.get_total_flops() == 2 * c.total_macs     # FlopCounterMode's own unit


def test_a_captured_leaf_gets_no_old_gradient_between_counts():
    # the scale is neither a parameter nor an input: its .grad from the first count would
    # otherwise be added to in the second (one add per element)
    scale = torch.randn(8, requires_grad=True)

    class Scaled(nn.Module):
        def forward(self, x):
            return x * scale

    x = torch.randn(4, 8, requires_grad=True)
    first, second = training(Scaled(), [x]), training(Scaled(), [x])
    assert first.backward_macs == second.backward_macs == 32 + 32 + 32  # dx, dscale, its sum
    assert scale.grad is None and x.grad is None


# nn.LSTM(3, 4) on (T=5, B=2, 3): 10 tokens, w_ih (16, 3), w_hh (16, 4). Its training step runs
# torch's own cell-by-cell path (not mkldnn's fused kernel, whose backward has no reference):
# matmul gradients dX = 10·48 (if the input needs one), dW_ih = 10·48 and dW_hh = 10·64 (if the
# weights train), and the recurrent dh = 4·2·64 (the first step's h0 needs none), all core.
@pytest.mark.parametrize("input_grad,weights,paper", [
    (True, True, 480 + 480 + 640 + 512),
    (False, True, 480 + 640 + 512),
    (True, False, 480 + 512),
])
def test_lstm_trains_through_its_cell_equations(input_grad, weights, paper):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4).requires_grad_(weights)
    x = torch.randn(5, 2, 3, requires_grad=input_grad)
    mkldnn = torch.backends.mkldnn.enabled
    report = training(lstm, [x], "paper")
    assert (report.forward_macs, report.backward_macs) == (10 * (48 + 64), paper)
    assert torch.backends.mkldnn.enabled == mkldnn
    full = training(lstm, [x])
    # the cell's elementwise backward (gate derivatives, products, gradient sums) and the bias
    # gradients, full preset only
    assert full.backward_macs > paper and set(full.by_family) == {
        "recurrent", "matmul", "elementwise"} | ({"reduction"} if weights else set())


def test_weight_norm_backward_equals_its_composite_path():
    # nn.utils.parametrizations.weight_norm runs the fused _weight_norm_interface; written out,
    # v * (g / norm_except_dim(v)) runs the ops its backward rule counts: 6 per element of v,
    # 5 per element of g
    class Composite(nn.Module):
        def __init__(self, conv):
            super().__init__()
            self.v, self.g = conv.parametrizations.weight.original1, conv.parametrizations.weight.original0

        def forward(self, x):
            weight = self.v * (self.g / torch.norm_except_dim(self.v, 2, 0))
            return F.conv1d(x, weight)

    torch.manual_seed(0)
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(4, 6, 3, bias=False))
    x = torch.randn(2, 4, 10)
    fused, composite = training(conv, [x]), training(Composite(conv), [x])
    assert (fused.forward_macs, fused.backward_macs) == (composite.forward_macs,
                                                         composite.backward_macs)
    assert fused.by_operator["_weight_norm_interface_backward"] == 6 * 72 + 5 * 6


def test_a_two_sided_clamp_backward_costs_its_mask_nothing():
    x = torch.randn(4, 5, requires_grad=True)
    report = training(Call(lambda t: t.clamp(-1, 1)), [x])
    assert report.backward_macs == 0 and report.unsupported_ops == {}
