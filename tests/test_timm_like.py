"""Models built the way timm builds them, where a report used to say things that were not so
(issue 19): parameter-less slots (``nn.Identity``, ``DropPath``) listed as unused, a model that
caches on its first forward counted differently per tool by ``compare``, and a second trace
whenever a module with weights is never called."""
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fvcore_ext import count_model
from fvcore_ext.cli.main import main
from fvcore_ext.cli.compare import compare_tools, format_comparison
from fvcore_ext.reference_models import build


class DropPath(nn.Module):
    """timm's ``DropPath``: the identity in eval mode, so a trace records nothing for it."""

    def __init__(self, drop_prob: float = 0.1):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], *(1,) * (x.ndim - 1)).bernoulli_(1 - self.drop_prob)
        return x * keep / (1 - self.drop_prob)


class BatchNormAct(nn.BatchNorm2d):
    """timm's ``BatchNormAct2d``: a norm with ``drop`` and ``act`` slots (both Identity here)."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.drop, self.act = nn.Identity(), nn.Identity()

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


class Bottleneck(nn.Module):
    """A ResNet block with timm's optional slots left empty: ``aa``, ``drop_block`` and
    ``drop_path`` run on every call and leave no node in the trace."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 1, bias=False), BatchNormAct(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), \
            BatchNormAct(channels)
        self.aa, self.drop_block = nn.Identity(), nn.Identity()
        self.drop_path = DropPath(0.1)
        self.slots = nn.Sequential(nn.Identity(), DropPath(0.0))    # a parameter-less container

    def forward(self, x):
        y = self.bn1(self.conv1(x))
        y = self.bn2(self.aa(self.drop_block(self.conv2(y))))
        return x + self.drop_path(self.slots(y))


class Net(nn.Module):
    """Two blocks, plus what a trace really cannot see: ``unused_head`` (weights nothing
    reads), ``proj`` (its weight read by the parent through ``F.linear``) and ``tied`` (never
    called, its weight shared with ``fc``, which runs)."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.blocks = nn.Sequential(Bottleneck(channels), Bottleneck(channels))
        self.fc = nn.Linear(channels, 4)
        self.proj = nn.Linear(channels, channels)
        self.tied = nn.Linear(channels, 4)
        self.tied.weight = self.fc.weight
        self.unused_head = nn.Linear(channels, 10)

    def forward(self, x):
        pooled = self.blocks(x).mean((2, 3))
        return self.fc(F.linear(pooled, self.proj.weight))


def test_parameter_less_slots_are_not_listed_as_unused(capsys):
    report = count_model(Net(), [torch.randn(1, 8, 6, 6)])
    assert report.unused_modules == ["unused_head"]
    assert report.fused_weight_modules == {"proj": ["aten::linear"], "tied": ["aten::linear"]}
    assert main(["tests.test_timm_like:Net", "--input-shape", "1", "8", "6", "6",
                 "--device", "meta"]) == 0
    out = capsys.readouterr().out
    assert "- unused: unused_head\n" in out or out.rstrip().endswith("- unused: unused_head")
    for slot in ("aa", "drop_block", "drop_path", "bn1.act", "bn1.drop", "slots"):
        assert f".{slot}" not in out


def test_a_model_of_slots_only_lists_no_module():
    report = count_model(Bottleneck(), [torch.randn(1, 8, 6, 6)], device="meta")
    assert report.unused_modules == [] and report.fused_weight_modules == {}


def test_the_mamba_activation_a_fused_kernel_applies_is_not_unused():
    report = count_model(*build("mamba"))
    assert report.unused_modules == []      # mixers.*.act: SiLU, applied inside MambaInnerFn
    assert report.fused_weight_modules["mixers.1.x_proj"] == ["prim::PythonOp.MambaInnerFn"]


@pytest.mark.parametrize("spec", ["net", "mamba"])
def test_count_model_traces_once_when_a_weighted_module_is_never_called(spec):
    model, inputs = (Net(), [torch.randn(1, 8, 6, 6)]) if spec == "net" else build("mamba")
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    report = count_model(model, inputs)
    assert report.fused_weight_modules and len(calls) == 1


class CachesOnFirstCall(nn.Module):
    """timm's ConViT ``GPSA``: ``rel_indices`` is computed (a ``sub`` and a ``pow`` over
    N x N) on the first forward and kept on the module."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.qk = nn.Linear(dim, dim)
        self.rel_indices = None

    def forward(self, x):
        n = x.shape[1]
        if self.rel_indices is None or self.rel_indices.shape[-1] != n:
            index = torch.arange(n, device=x.device)
            self.rel_indices = ((index.view(1, -1) - index.view(-1, 1)) ** 2).float()
        attn = self.qk(x) @ x.transpose(1, 2)
        return attn + self.rel_indices


def cached_model():
    return CachesOnFirstCall()


@pytest.mark.parametrize("device", [None, "meta"])
def test_compare_counts_every_tool_on_a_fresh_copy(device):
    model, x, n = CachesOnFirstCall(), torch.randn(2, 5, 8), 5
    first = count_model(CachesOnFirstCall(), [x]).total_macs
    counts = {c.tool: c for c in compare_tools(model, [x], device=device)}
    assert model.rel_indices is None          # the caller's instance never ran
    assert all(c.error is None and c.fresh_copy for c in counts.values())
    assert counts["fvcore+pack"].total == counts["torchprofile+pack"].total == first
    assert {"pow", "sub"} <= set(counts["fvcore"].unsupported)   # every tool saw the first call
    pack = counts["fvcore+pack"]
    assert pack.second_total == first - 2 * n * n       # the cached sub and pow, n x n each
    assert {k: pack.by_operator[k] - pack.second_by_operator.get(k, 0)
            for k in pack.by_operator} == {"linear": 0, "matmul": 0, "add": 0, "sub": n * n,
                                            "pow": n * n}
    text = format_comparison(list(counts.values()))
    assert f"a second count of the same instance differs: fvcore+pack gives " \
        f"{first - 2 * n * n:,} ({-2 * n * n:+,}: pow {-n * n:+,}, sub {-n * n:+,})" in text


def test_compare_says_nothing_when_a_second_count_agrees(capsys):
    assert main(["compare", "cnn", "--format", "json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert all(c["fresh_copy"] and c["second_total"] is None for c in counts)
    assert "second count" not in format_comparison(compare_tools(*build("cnn")))


class Uncopyable(CachesOnFirstCall):
    def __deepcopy__(self, memo):
        raise TypeError("cannot copy")


def test_compare_says_when_it_could_not_copy():
    counts = compare_tools(Uncopyable(), [torch.randn(1, 3, 8)])
    assert not any(c.fresh_copy for c in counts)
    assert "could not be copied" in format_comparison(counts)



def test_the_graph_recorder_keeps_only_its_own_module_and_changes_no_count():
    from fvcore.nn import FlopCountAnalysis

    from fvcore_ext.engines.jit.tracing import recording_trace_graph

    model, x = Net().eval(), torch.randn(1, 8, 6, 6)
    with recording_trace_graph(model) as graphs:
        other = FlopCountAnalysis(nn.Linear(8, 4), torch.randn(2, 8))
        assert other.total() == 64 and graphs == []
        mine = FlopCountAnalysis(model, x)
        mine.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        mine.total()
    assert len(graphs) == 1 and any(n.kind() == "aten::linear" for n in graphs[0].nodes())
