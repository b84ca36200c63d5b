"""Counting on the meta device (fvcore_ext/meta.py): the same counts as on CPU, in both tools,
with no weights allocated; convolutions trace as on CPU; the scoped Meta kernels are restored;
a model that reads tensor data gets one line."""
import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchprofile
from fvcore.nn import FlopCountAnalysis
from torch import nn

import torchprofile_ext
from fvcore_ext import count_model, make_handles
from fvcore_ext.cli.main import main
from fvcore_ext.runtime.meta import (MetaDeviceError, build_on_meta, copy_to_device, inputs_to_device,
                             is_meta_tracing, meta_tracing)
from fvcore_ext.reference_models import REFERENCE_MODELS, build
from fvcore_ext.engines.jit.tracing import TraceAdapter
from tests.expected import EXPECTED
from tests.helpers import fvcore_count, tiny_mixtral


def on_meta(name):
    """Reference model ``name`` built under ``torch.device("meta")`` and meta inputs."""
    with torch.device("meta"):
        model, inputs = build(name)
    return model, tuple(inputs)


def canonical_graph(graph):
    # Node kinds, wiring, constants and output types (shapes, strides, dtypes) of a JIT graph,
    # without debug names or source locations, which differ with the caller.
    ids = {}
    for value in graph.inputs():
        ids.setdefault(value, len(ids))
    lines = []
    for node in graph.nodes():
        inputs = [ids[v] for v in node.inputs()]
        types = [str(v.type()).replace("device=meta", "device=cpu") for v in node.outputs()]
        for value in node.outputs():
            ids.setdefault(value, len(ids))
        const = (repr(node.output().toIValue())
                 if node.kind() == "prim::Constant" and node.outputsSize() == 1 else "")
        lines.append(f"{node.kind()}{inputs}{const}->{types}")
    return lines


def trace_graph(model, inputs):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit._get_trace_graph(TraceAdapter(model, None), tuple(inputs))[0]


# ---------------------------------------------------------------- why convolutions failed

def test_a_conv_model_on_meta_fails_under_the_plain_tracer():
    # torch's meta_conv runs inside the trace (aten::convolution is on the tracer's
    # DONT_RECORD_TRACE list), so torch._check sees traced sizes: this is the bug.
    model, inputs = on_meta("cnn")
    with pytest.raises(TypeError, match="cond must be a bool, but got a Tensor"):
        trace_graph(model, inputs)


@pytest.mark.parametrize("name", ["cnn", "unet_decoder", "swin_stage", "vmamba_block"])
def test_meta_trace_is_the_cpu_trace(name):
    # Same nodes, wiring, constants (the _convolution flags too) and output shapes.
    model, inputs = build(name)
    cpu = canonical_graph(trace_graph(model, inputs))
    with meta_tracing():
        meta = canonical_graph(trace_graph(*on_meta(name)))
    assert meta == cpu
    assert any(line.startswith("aten::_convolution") for line in meta)


def test_plain_fvcore_and_plain_torchprofile_inside_meta_tracing():
    model, inputs = on_meta("cnn")
    expected = sum(EXPECTED["cnn"]["full"].values())
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**make_handles("full"))
    with meta_tracing(), torch.no_grad():
        assert analysis.total() == expected
    with torchprofile_ext.registered("full"), torch.no_grad():   # the pack's trace: no block
        assert torchprofile.profile_macs(model, inputs) == expected


# ---------------------------------------------------------------- the scoped kernels

def meta_kernel_source(op):
    dump = torch._C._dispatch_dump(op)
    return next(line for line in dump.splitlines() if line.startswith("Meta:"))


@pytest.mark.parametrize("op", ["aten::convolution", "aten::_grouped_mm"])
def test_meta_kernels_are_restored_on_exit_nested_and_on_error(op):
    before = meta_kernel_source(op)
    assert "_meta_registrations.py" in before and not is_meta_tracing()
    with meta_tracing():
        assert "fvcore_ext" in meta_kernel_source(op)
        with meta_tracing():
            pass
        assert "fvcore_ext" in meta_kernel_source(op) and is_meta_tracing()  # outer still on
    assert meta_kernel_source(op) == before and not is_meta_tracing()
    with pytest.raises(ZeroDivisionError):
        with meta_tracing():
            1 / 0
    assert meta_kernel_source(op) == before
    # and torch's own kernel is the one that runs again: the plain tracer fails as before
    with pytest.raises(TypeError, match="cond must be a bool"):
        trace_graph(*on_meta("cnn"))


def test_meta_kernels_outside_a_trace_give_torchs_shapes():
    x, w = torch.empty(2, 3, 9, 7, device="meta"), torch.empty(4, 3, 3, 2, device="meta")
    mat_a, mat_b = torch.empty(6, 8, device="meta"), torch.empty(3, 8, 5, device="meta")
    offs = torch.empty(3, dtype=torch.int32, device="meta")
    torch_conv = F.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2))
    with meta_tracing():
        ours = F.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2))
        grouped = torch._grouped_mm(mat_a, mat_b, offs=offs)
    assert ours.shape == torch_conv.shape == (2, 4, 5, 7)
    assert grouped.shape == (6, 5) and grouped.dtype == torch.float32   # torch's meta: bf16 only
    with pytest.raises(RuntimeError, match="BF16|BFloat16"):   # torch 2.13 | 2.14
        torch._grouped_mm(mat_a, mat_b, offs=offs)


# ---------------------------------------------------------------- every reference model

@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_every_reference_model_counts_on_meta_in_both_tools(name, preset):
    # On meta PyTorch's fused attention kernels (CPU and CUDA only) are not taken, so the
    # per-operator tables are those of the slow paths, which tests/expected.py derives.
    model, inputs = build(name)
    expected = EXPECTED[name][preset]
    report = count_model(model, inputs, preset=preset, device="meta")
    with torch.no_grad():
        results = torchprofile_ext.profile_macs(model.eval(), inputs, preset, reduction=None,
                                                device="meta")
    assert report.device == "meta"
    assert (report.total_macs, report.by_operator) == (sum(expected.values()), expected)
    assert torchprofile_ext.macs_by_operator(results) == expected
    assert report.params == sum(p.numel() for p in model.parameters())
    assert report.unsupported_ops == {} and report.uncounted == []
    assert all(p.device.type == "cpu" for p in model.parameters())   # the user's copy stays


@pytest.mark.parametrize("name", ["cnn", "swin_stage", "unet_decoder", "mamba", "vim_block",
                                  "vmamba_block", "transformer_encoder_layer"])
def test_models_built_on_meta_need_no_device_argument(name):
    model, inputs = on_meta(name)
    total = sum(EXPECTED[name]["full"].values())
    assert count_model(model, inputs).total_macs == total
    assert fvcore_count_on_meta(model, inputs) == total
    with torch.no_grad():
        assert torchprofile_ext.profile_macs(model.eval(), inputs) == total


def fvcore_count_on_meta(model, inputs):
    with meta_tracing():
        return fvcore_count(model, inputs)[0]


def test_a_meta_model_counts_on_cpu_too():
    # device="cpu" moves a copy off meta with uninitialised weights (to_empty's semantics)
    model, inputs = on_meta("vit")
    report = count_model(model, inputs, device="cpu")
    assert report.device == "cpu" and report.total_macs == sum(EXPECTED["vit"]["full"].values())
    assert all(p.is_meta for p in model.parameters())


# ---------------------------------------------------------------- the user's model

class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.ones(16))

    def forward(self, ids):
        return self.head(self.embed(ids) * self.scale)


def test_copy_to_meta_leaves_the_model_keeps_ties_and_allocates_nothing():
    model = Tied().train()
    pointer = model.embed.weight.data_ptr()
    copy = copy_to_device(model, "meta")
    assert copy is not model and copy.head.weight is copy.embed.weight
    assert all(t.is_meta for t in list(copy.parameters()) + list(copy.buffers()))
    assert copy.training and copy.embed.weight.requires_grad
    assert model.embed.weight.device.type == "cpu" and model.embed.weight.data_ptr() == pointer
    assert copy_to_device(copy, "meta") is copy             # already there: no copy
    ids = torch.randint(0, 50, (2, 7))
    cpu = count_model(model, [ids])
    meta = count_model(model, [ids], device="meta")
    assert meta.total_macs == cpu.total_macs == 2 * 7 * 16 * 50 + 2 * 7 * 16   # head + scale
    assert meta.params == cpu.params == 50 * 16 + 0                            # tied: once
    assert model.training                                                      # restored
    assert inputs_to_device(ids, "meta")[0].shape == (2, 7)


def test_build_on_meta_allocates_no_weights_and_falls_back_for_builders_that_need_data():
    model = build_on_meta(lambda: nn.Linear(4096, 4096))
    assert model.weight.is_meta

    class NeedsData(nn.Module):        # mmseg's Swin reads drop-path rates with .item()
        def __init__(self):
            super().__init__()
            self.rate = torch.linspace(0, 0.1, 3)[1].item()
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(x)

    model = build_on_meta(NeedsData)
    assert model.proj.weight.is_meta and model.rate == pytest.approx(0.05)


# ---------------------------------------------------------------- transformers models

def hf_cases():
    from fvcore_ext import hf_models
    return [(hf_models.vit_base, (1, 3, 224, 224)), (hf_models.segformer_b0, (1, 3, 64, 64)),
            (hf_models.upernet_swin_tiny, (1, 3, 64, 64))]


@pytest.mark.parametrize("case", range(3))
def test_hf_models_count_on_meta_as_on_cpu_in_both_tools(case):
    builder, shape = hf_cases()[case]
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(shape)
    cpu = count_model(model, [x], ["pixel_values"])
    meta = count_model(model, [x], ["pixel_values"], device="meta")
    assert (meta.total_macs, meta.by_operator, meta.params) == (cpu.total_macs, cpu.by_operator,
                                                                 cpu.params)
    with torch.no_grad():
        assert torchprofile_ext.profile_macs(model, (x,), device="meta") == cpu.total_macs


def test_hf_mamba_built_on_meta_counts_as_on_cpu():
    from fvcore_ext.hf.models import mamba_130m
    ids = torch.randint(0, 100, (1, 4))
    torch.manual_seed(0)
    cpu = count_model(mamba_130m(), [ids], ["input_ids"])
    with torch.device("meta"):
        model = mamba_130m()
    meta = count_model(model, [ids.to("meta")], ["input_ids"])
    assert (meta.total_macs, meta.by_operator, meta.params) == (cpu.total_macs, cpu.by_operator,
                                                                 cpu.params)


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_moe_with_grouped_mm_counts_on_meta_in_both_tools(preset):
    model = tiny_mixtral("grouped_mm").eval()
    ids = torch.randint(0, 100, (1, 8))
    cpu = count_model(model, [ids], ["input_ids"], preset)
    meta = count_model(model, [ids], ["input_ids"], preset, device="meta")
    assert "_grouped_mm" in meta.by_operator
    assert (meta.total_macs, meta.by_operator) == (cpu.total_macs, cpu.by_operator)


# ---------------------------------------------------------------- data-dependent models

class NonzeroModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return self.proj(x)[x.nonzero(as_tuple=True)]


class ItemModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        return self.proj(x) * x.abs().max().item()


NONZERO_LINE = (f"cannot count on meta: aten::nonzero needs tensor data (at test_meta.py:"
                f"{NonzeroModel.forward.__code__.co_firstlineno + 1}); count on CPU instead")
ITEM_LINE = (f"cannot count on meta: Tensor.item() (a tensor read as a Python number or bool) "
             f"needs tensor data (at test_meta.py:{ItemModel.forward.__code__.co_firstlineno + 1})"
             f"; count on CPU instead")


@pytest.mark.parametrize("model, line, cpu_total", [
    (NonzeroModel, NONZERO_LINE, 2 * 8 * 8),                  # linear; indexing costs 0
    (ItemModel, ITEM_LINE, 2 * 8 * 8 + 2 * 8),   # linear, mul (.item() cuts abs off the trace)
])
def test_data_dependent_model_on_meta_gets_one_line_in_both_tools(model, line, cpu_total):
    model, x = model(), torch.randn(2, 8)
    assert count_model(model, [x]).total_macs == cpu_total    # what the line suggests works
    with pytest.raises(MetaDeviceError) as caught:
        count_model(model, [x], device="meta")
    assert str(caught.value) == line + " (device='cpu')"
    with pytest.raises(MetaDeviceError) as caught, torch.no_grad():
        torchprofile_ext.profile_macs(model, (x,), device="meta")
    assert str(caught.value) == line + " (device='cpu')"


class MakesCpuTensors(nn.Module):
    def forward(self, x):
        return x + torch.ones(x.shape)      # no device=: on CPU whatever x is


def test_a_tensor_made_without_device_on_meta_gets_one_line():
    line = MakesCpuTensors.forward.__code__.co_firstlineno + 1
    with pytest.raises(MetaDeviceError) as caught:
        count_model(MakesCpuTensors(), [torch.randn(2, 3)], device="meta")
    assert str(caught.value) == (
        f"cannot count on meta: a cpu tensor meeting a meta tensor (a weight left on cpu, or a "
        f"tensor made in forward without device=) cannot run (at test_meta.py:{line}); count "
        f"on CPU instead (device='cpu')")


def test_moe_router_loop_on_meta_gets_one_line():
    # transformers' eager experts loop finds each expert's tokens with torch.where (nonzero)
    with pytest.raises(MetaDeviceError, match=r"^cannot count on meta: aten::nonzero needs "
                       r"tensor data \(at modeling_mixtral\.py:\d+\); count on CPU instead"):
        count_model(tiny_mixtral("eager"), [torch.zeros(1, 8, dtype=torch.long)],
                    ["input_ids"], device="meta")


def nonzero_model():
    return NonzeroModel()


# ---------------------------------------------------------------- the command line

def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
@pytest.mark.parametrize("preset", ["full", "paper"])
def test_cli_counts_every_reference_model_on_meta(capsys, name, preset):
    # tests/test_consistency.py checks that the CPU counts are EXPECTED
    status, out, _ = run(capsys, name, "--device", "meta", "--format", "json", "--preset", preset)
    report = json.loads(out)
    model, _ = build(name)
    assert status == 0 and report["device"] == "meta"
    assert report["by_operator"] == EXPECTED[name][preset]
    assert report["total_macs"] == sum(EXPECTED[name][preset].values())
    assert report["params"] == sum(p.numel() for p in model.parameters())


def test_cli_data_dependent_model_exits_2_with_one_line(capsys):
    status, out, err = run(capsys, "tests.test_meta:nonzero_model", "--input-shape", "2", "8",
                           "--device", "meta")
    assert status == 2 and out == ""
    assert err == f"error: {NONZERO_LINE} (--device cpu)\n"
    status, out, _ = run(capsys, "tests.test_meta:nonzero_model", "--input-shape", "2", "8")
    assert status == 0 and "- total:" in out


def test_cli_compare_on_meta(capsys):
    status, out, _ = run(capsys, "compare", "cnn", "--device", "meta", "--format", "json")
    counts = {c["tool"]: c for c in json.loads(out)}
    total = sum(EXPECTED["cnn"]["full"].values())
    assert status == 0
    assert counts["fvcore+pack"]["total"] == counts["torchprofile+pack"]["total"] == total
    assert all(c["error"] is None for c in counts.values())


def test_python_m_fvcore_ext_device_meta():
    out = subprocess.run([sys.executable, "-m", "fvcore_ext", "swin_stage", "--device", "meta",
                          "--format", "json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["device"] == "meta"
    assert report["total_macs"] == sum(EXPECTED["swin_stage"]["full"].values())


# ---------------------------------------------------------------- the mmseg drop-in

def test_mmseg_segmentor_counts_on_meta():
    # build_segmentor moves its own model to meta and preprocesses a meta picture;
    # count_model traces meta models inside meta_tracing without being told.
    from fvcore_ext.mmseg.get_flops import build_segmentor
    from fvcore_ext.runtime.standins import install_mmcv_ext_standin
    install_mmcv_ext_standin()
    config = "tests/mmseg_configs/tiny_segmentor.py"
    cpu_model, cpu_inputs, _ = build_segmentor(config, (3, 32, 32))
    meta_model, meta_inputs, pad = build_segmentor(config, (3, 32, 32), device="meta")
    assert meta_inputs[0].is_meta and pad == (32, 32)
    for preset in ("full", "paper"):
        cpu = count_model(cpu_model, cpu_inputs, preset=preset)
        assert count_model(meta_model, meta_inputs, preset=preset).total_macs == cpu.total_macs
        assert count_model(cpu_model, cpu_inputs, preset=preset,
                           device="meta").total_macs == cpu.total_macs
