"""Issue 26: the dispatch engine reaches its rules the same way whatever the caller did: any
import style, only the counting thread, physical shapes under functorch transforms; a training
count with no side effects; ``counting()`` frozen after its block. Exact integers from
docs/conventions.md, on real graphs, compared with the JIT engine."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fvcore_ext import count_model


def _both(model, inputs, preset="full"):
    jit = count_model(model, inputs, preset=preset)
    dispatch = count_model(model, inputs, preset=preset, engine="dispatch")
    return jit, dispatch


# ---------------------------------------------------------------- item 9: ops one engine knew

class _BilinearAndPads(nn.Module):
    def __init__(self):
        super().__init__()
        self.bilinear = nn.Bilinear(3, 2, 5)
        self.reflect, self.replicate = nn.ReflectionPad2d(1), nn.ReplicationPad2d(1)

    def forward(self, x1, x2, image):
        return (self.bilinear(x1, x2), self.reflect(image), self.replicate(image),
                nn.functional.pad(image, (1, 1, 1, 1), mode="circular"))


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_bilinear_counts_and_pads_cost_nothing_in_both_engines(preset):
    model = _BilinearAndPads()
    inputs = (torch.randn(4, 3), torch.randn(4, 2), torch.randn(1, 2, 5, 5))
    jit, dispatch = _both(model, inputs, preset)
    # x1ᵀ·A_k·x2 for 4 rows and 5 outputs: one MAC per term, 4·5·3·2; the bias is not counted
    assert jit.total_macs == dispatch.total_macs == 4 * 5 * 3 * 2
    assert jit.by_family == dispatch.by_family == {"matmul": 120}
    assert not jit.unsupported_ops and not dispatch.unsupported_ops


def test_bilinear_and_reflection_pad_train():
    model = _BilinearAndPads()
    inputs = (torch.randn(4, 3, requires_grad=True), torch.randn(4, 2),
              torch.randn(1, 2, 5, 5, requires_grad=True))
    report = count_model(model, inputs, engine="dispatch", backward=True, preset="paper")
    # the weight's and x1's gradients are each a _trilinear of the forward's 120 MACs; the pads'
    # backward gathers (0)
    assert (report.forward_macs, report.backward_macs) == (120, 240)
    assert not report.unsupported_ops


# ---------------------------------------------------------------- item 1: import styles

from torch.nn.functional import linear as bound_linear                      # noqa: E402
from torch.nn.functional import scaled_dot_product_attention as attn      # noqa: E402  (VAR)
import torch.nn.functional as F                                            # noqa: E402


class _VarStyleAttention(nn.Module):
    """VAR's models/basic_var.py: ``from torch.nn.functional import
    scaled_dot_product_attention as slow_attn`` bound at import."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attn(q, k, v).transpose(1, 2).reshape(b, n, c))


class _BoundLinear(nn.Module):
    """``from torch.nn.functional import linear`` on a non-contiguous 3-D input: PyTorch adds
    its bias with a separate ``add`` there, which the contract does not count."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(8, 4)), nn.Parameter(torch.randn(8))

    def forward(self, x):
        return bound_linear(x.transpose(0, 1), self.weight, self.bias)


class _TorchRMSNorm(nn.Module):
    """A norm layer calling ``torch.rms_norm`` directly, its shape read from the input."""

    def __init__(self, dim=16):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return torch.rms_norm(x, (x.shape[-1],), self.weight) + F.rms_norm(
            x, (x.shape[-1],), self.weight)


IMPORT_STYLES = {
    # 2 tokens·… : q·kᵀ and attn·v at 2·4·10·10·8 each, + the linears
    "var_attention": (_VarStyleAttention, (2, 10, 32)),
    "bound_linear": (_BoundLinear, (5, 4, 4)),
    "torch_rms_norm": (_TorchRMSNorm, (2, 3, 16)),
}


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("preset", ["full", "paper"])
@pytest.mark.parametrize("name", sorted(IMPORT_STYLES))
def test_a_boundary_bound_at_import_counts_as_the_jit_engine(name, preset, device):
    make, shape = IMPORT_STYLES[name]
    torch.manual_seed(0)
    model, x = make(), torch.randn(shape)
    jit = count_model(model, x, preset=preset, device=device)
    dispatch = count_model(model, x, preset=preset, device=device, engine="dispatch")
    assert (dispatch.total_macs, dispatch.by_family) == (jit.total_macs, jit.by_family)
    assert not dispatch.unsupported_ops and not dispatch.uncounted


def test_bound_linear_exact():
    # x (5, 4, 4) transposed to (4, 5, 4): 20 rows · 4 in · 8 out = 640 MACs, bias not counted
    report = count_model(_BoundLinear(), torch.randn(5, 4, 4), engine="dispatch")
    assert report.total_macs == 640 and report.by_family == {"matmul": 640}


def test_var_attention_exact():
    # qkv 2·10·32·96 + proj 2·10·32·32 = 81,920; SDPA (B=2, H=4, L=S=10, E=8): matmuls
    # 2·4·10·10·(8+8) = 12,800, scale and softmax 2 · 2·4·10·10 = 1,600 (full)
    report = count_model(_VarStyleAttention(), torch.randn(2, 10, 32), engine="dispatch")
    assert report.by_family == {"matmul": 81920, "attention": 12800 + 1600}


def test_torch_rms_norm_is_normalization_in_both_engines():
    """Item 8: the JIT engine reads a normalized_shape computed from the input from the
    weight. rms_norm (2·3 rows of 16, a weight): per element pow, mean, mul, weight mul = 4,
    per row add eps and rsqrt = 2: 96·4 + 6·2 = 396 MACs a call, two calls; the add 96."""
    jit, dispatch = _both(_TorchRMSNorm(), torch.randn(2, 3, 16))
    assert jit.by_family == {"normalization": 792, "elementwise": 96} and not jit.uncounted
    assert set(dispatch.by_family) == set(jit.by_family) == {"normalization", "elementwise"}
    assert dispatch.by_family == jit.by_family


# ---------------------------------------------------------------- item 6: nn.MultiheadAttention

@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_in_eval_has_one_family_table(need_weights):
    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x):
            # both outputs: a JIT trace drops the work of an output nobody uses (the heads'
            # average of the weights), where the dispatch engine counts what runs
            return self.attn(x, x, x, need_weights=need_weights)

    jit, dispatch = _both(MHA().eval(), torch.randn(2, 10, 32))
    assert (dispatch.total_macs, dispatch.by_family) == (jit.total_macs, jit.by_family)
    assert jit.by_family["matmul"] >= 2 * 10 * 32 * 96 + 2 * 10 * 32 * 32


def test_rms_norm_without_weight_reads_the_input_trailing_dims_in_jit():
    class NoWeight(nn.Module):
        def forward(self, x):
            return F.rms_norm(x, (x.shape[-1],))

    # 2·3 rows of 16, no weight: 3 per element (pow, mean, mul) + 2 per row = 96·3 + 12
    jit, dispatch = _both(NoWeight(), torch.randn(2, 3, 16))
    assert jit.total_macs == dispatch.total_macs == 300 and not jit.uncounted


# ---------------------------------------------------------------- items 2, 10: threads

import threading  # noqa: E402

from fvcore_ext import counting, register_rule, unregister_rule  # noqa: E402


def _in_threads(*targets):
    errors = []

    def guard(target):
        try:
            target()
        except BaseException as error:   # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=guard, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors


def test_a_count_sees_only_its_own_thread():
    # thread A counts a 16→24 linear on 1 row (384 MACs) while thread B runs nn.Linear without
    # counting: A's total stays 384 every time
    model_a, model_b = nn.Linear(16, 24), nn.Linear(32, 20)
    started, totals = threading.Event(), []

    def count():
        for _ in range(30):
            with counting() as c:
                started.set()
                model_a(torch.randn(1, 16))
            totals.append((c.total_macs, dict(c.by_module)))

    def other():
        started.wait(60)
        for _ in range(300):
            model_b(torch.randn(1, 32))

    _in_threads(count, other)
    assert {t for t, _ in totals} == {384}
    assert all(set(m) <= {"Global", "Linear"} for _, m in totals)


def test_two_dispatch_counts_in_two_threads_are_both_right():
    results = {}

    def count(name, model, x):
        def run():
            for i in range(10):
                results[name, i] = count_model(model, x, engine="dispatch").total_macs
        return run

    _in_threads(count("a", nn.Linear(16, 24), torch.randn(1, 16)),
                count("b", nn.Linear(8, 8), torch.randn(4, 8)))
    assert {v for (n, _), v in results.items() if n == "a"} == {384}
    assert {v for (n, _), v in results.items() if n == "b"} == {4 * 8 * 8}


def test_jit_engine_and_torchprofile_in_two_threads_wait_for_each_other():
    import torchprofile_ext
    from fvcore_ext.reference_models import build

    model, inputs = build("vit")
    expected = count_model(model, inputs).total_macs
    got = []

    def jit():
        for _ in range(3):
            got.append(count_model(model, inputs).total_macs)

    def profile():
        for _ in range(3):
            with torch.no_grad():
                got.append(torchprofile_ext.profile_macs(model, inputs, "full"))

    _in_threads(jit, profile)
    assert got == [expected] * 6


def test_register_rule_from_two_threads_loses_no_rule():
    names = [f"mylib::op_{t}_{i}" for t in range(2) for i in range(200)]

    def register(t):
        def run():
            for i in range(200):
                register_rule(f"mylib::op_{t}_{i}")(lambda call: 1)
        return run

    try:
        _in_threads(register(0), register(1))
        from fvcore_ext.ops import OP_TABLE
        assert all(name in OP_TABLE for name in names)
    finally:
        for name in names:
            try:
                unregister_rule(name)
            except ValueError:     # a rule the failing run never registered
                pass


# ---------------------------------------------------------------- item 3: vmap

def test_vmap_counts_the_physical_batch():
    w = torch.randn(8, 4)
    x = torch.randn(10, 16, 4)
    with counting() as c:
        torch.vmap(lambda x: F.linear(x, w))(x)
    # 10 examples · 16 rows · 4 in · 8 out
    assert c.total_macs == 10 * 16 * 4 * 8 == 5120
    q = torch.randn(3, 2, 4, 5, 8)
    with counting(preset="paper") as c:
        torch.vmap(F.scaled_dot_product_attention)(q, q, q)
    # 3 examples · (B=2, H=4, L=S=5, E=8): 2·4·5·5·(8+8) each
    assert c.total_macs == 3 * 2 * 4 * 5 * 5 * 16
    with counting() as c:
        torch.vmap(torch.vmap(lambda a, b: torch.einsum("ij,jk->ik", a, b)))(
            torch.randn(2, 3, 4, 5), torch.randn(2, 3, 5, 6))
    assert c.total_macs == 2 * 3 * 4 * 5 * 6


# ---------------------------------------------------------------- item 4: no side effects

class _Trains(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.drop, self.head = nn.Dropout(0.5), nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        return self.head(self.drop(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_a_training_count_is_not_a_training_step(device):
    torch.manual_seed(0)
    model, x = _Trains(), torch.randn(2, 3, 8, 8, requires_grad=True)
    ran = []
    for p in model.parameters():
        p.register_hook(lambda g: ran.append("hook"))
        p.register_post_accumulate_grad_hook(lambda p: p.data.mul_(0))   # optimizer in backward
    model.head.weight.grad = torch.ones_like(model.head.weight)
    before = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    report = count_model(model, x, engine="dispatch", backward=True, device=device)
    assert report.backward_macs > 0 and not ran
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # running stats included
    assert all((p.grad is None and grads[n] is None) or torch.equal(p.grad, grads[n])
               for n, p in model.named_parameters())
    assert x.grad is None and model.training
    # train mode's own cost is still counted: BatchNorm with batch statistics, 5·numel
    assert report.by_operator["batch_norm"] == 5 * 2 * 4 * 6 * 6


# ---------------------------------------------------------------- item 5: counting() semantics

def _small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)), torch.randn(3, 8)


def test_counting_is_frozen_when_its_block_exits():
    model, x = _small()
    with counting() as c:
        loss = model(x).sum()
    forward = c.total_macs
    loss.backward()
    assert c.total_macs == forward and c.backward_macs == 0


def test_every_backward_inside_the_block_counts_retain_graph_too():
    model, x = _small()
    with counting() as once:
        model(x).sum().backward()          # the parameters had no .grad: nothing to add to
    model.zero_grad(set_to_none=True)
    with counting() as twice:
        loss = model(x).sum()
        loss.backward(retain_graph=True)
        loss.backward()
    assert twice.forward_macs == once.forward_macs
    # the second backward also adds its gradients to the .grad the first left: one add per
    # parameter element, 8·16 + 16 + 16·4 + 4 = 212
    assert twice.backward_macs == 2 * once.backward_macs + 212 and once.backward_macs > 0


class _Fails(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward failed")


def test_a_caught_exception_does_not_switch_counting_off():
    from fvcore_ext.ops import OP_TABLE
    register_rule("prim::PythonOp._Fails")(lambda call: 7)
    try:
        assert "prim::PythonOp._Fails" in OP_TABLE
        model, x = _small()
        with counting() as c:
            y = _Fails.apply(torch.randn(3, requires_grad=True))
            with pytest.raises(RuntimeError, match="backward failed"):
                y.sum().backward()
            before = c.total_macs
            model(x)
        # 3·8·16 + 3·16·4 linears, 3·16 gelu
        assert c.total_macs - before == 3 * 8 * 16 + 3 * 16 * 4 + 3 * 16
    finally:
        unregister_rule("prim::PythonOp._Fails")
