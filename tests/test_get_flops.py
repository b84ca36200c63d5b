"""The mmseg get_flops drop-in, with mmsegmentation 1.2.2 and mmcv-lite (no compiled ops)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("mmengine", reason="the mmseg extra (pip install .[mmseg]) is not installed")
pytest.importorskip("mmseg", reason="the mmseg extra (pip install .[mmseg]) is not installed")

from mmengine.analysis.print_helper import _format_size  # noqa: E402

import mmseg  # noqa: E402
from fvcore_ext.ops.diagnostics import UncountedOp  # noqa: E402
from fvcore_ext.mmseg.get_flops import build_segmentor, format_size, main, pack_lines  # noqa: E402
from fvcore_ext.mmseg.mmengine_analysis import (ComplexityCall, get_model_complexity_info,  # noqa: E402
                                          pack_handles_in_mmengine)
from fvcore_ext.runtime.standins import install_mmcv_ext_standin  # noqa: E402
from tests.helpers import fvcore_count  # noqa: E402

STANDIN = install_mmcv_ext_standin()

TINY = "tests/mmseg_configs/tiny_segmentor.py"
CONFIGS = Path(mmseg.__file__).parent / ".mim" / "configs"
SEGFORMER_B0 = str(CONFIGS / "segformer" / "segformer_mit-b0_8xb2-160k_ade20k-512x512.py")

# The tiny segmentor at 32x32: backbone conv 3->16 stride 2 (16x16) + BN + one-head SDPA over
# its 256 tokens + bilinear x2, FCN head conv 16->8 k3 + BN, then conv_seg 8->4 (32x32).
TINY_PAPER = {
    "conv": (16 * 3 * 9) * 256 + (8 * 16 * 9) * 1024 + (4 * 8) * 1024,
    "batch_norm": 2 * 16 * 256 + 2 * 8 * 1024,
    "scaled_dot_product_attention": 256 * 256 * (16 + 16),
    "upsample_bilinear2d": 4 * 16 * 32 * 32,
}
TINY_FULL = dict(TINY_PAPER, add=16 * 256)        # the attention residual
TINY_FULL["scaled_dot_product_attention"] += 2 * 256 * 256     # scale + softmax
TINY_PARAMS = (16 * 3 * 9 + 2 * 16) + (8 * 16 * 9 + 2 * 8) + (4 * 8 + 4)   # no auxiliary head


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("preset, expected", [("paper", TINY_PAPER), ("full", TINY_FULL)])
def test_tiny_config_exact(capsys, preset, expected):
    status, out, _ = run(capsys, TINY, "--shape", "32", "--preset", preset, "--format", "json")
    report = json.loads(out)
    assert status == 0
    assert report["by_operator"] == expected
    assert report["total_macs"] == sum(expected.values())
    assert report["params"] == TINY_PARAMS            # auxiliary_head dropped
    assert report["unsupported_ops"] == {}            # SyncBN reverted to BatchNorm
    assert report["pad_shape"] == [32, 32]


# mmseg 1.2.2's tools/analysis_tools/get_flops.py prints these around its numbers.
SPLIT = "=" * 30
CAUTION = ("!!!Please be cautious if you use the results in papers. You may need to check if "
           "all ops are supported and verify that the flops computation is correct.")
STANDIN_LINE = "mmcv._ext: stand-in (mmcv has no compiled ops); the model called none of them"


def test_block_format(capsys):
    status, out, _ = run(capsys, TINY, "--shape", "32", "32")
    total = sum(TINY_PAPER.values())
    assert status == 0
    assert out.splitlines() == [
        SPLIT,
        "Compute type: direct: randomly generate a picture",
        "Input shape: (32, 32)",
        f"Flops: {_format_size(total)}",
        f"Params: {_format_size(TINY_PARAMS)}",
        SPLIT,
        CAUTION,
        f'Unit: "Flops" (mmengine\'s and mmseg\'s) are MACs: {total:,} MACs = '
        f"{2 * total:,} FLOPs",
        "Preset: paper (elementwise ops cost 0; matmuls, convolutions, scans, norms and "
        "resampling count, as papers report)",
        "Counted on: (1, 3, 32, 32)",
        "Not counted: nothing, every op in the trace has a rule",
    ] + [STANDIN_LINE] * STANDIN
    assert out.splitlines()[3] == "Flops: 3.51M" and out.splitlines()[4] == "Params: 1.668K"


def test_block_format_padded_input_and_full_preset(capsys):
    # A data preprocessor with a test-time size divisor pads 40x40 to 64x64: mmseg 1.2.2 prints
    # the requested shape as "Input shape" (its pad_shape is ori_shape) and counts the padded
    # tensor; the pack's lines say which shape was counted.
    status, out, _ = run(capsys, TINY, "--shape", "40", "--preset", "full", "--cfg-options",
                         "model.data_preprocessor.test_cfg.size_divisor=32")
    # At 64x64 every term of the 32x32 count grows 4x, except attention (scale and softmax
    # included): it is quadratic in the tokens, 16x.
    attention = TINY_FULL["scaled_dot_product_attention"]
    total = 4 * (sum(TINY_FULL.values()) - attention) + 16 * attention
    lines = out.splitlines()
    assert status == 0
    assert lines[2] == "Input shape: (40, 40)"
    assert lines[3] == f"Flops: {_format_size(total)}"
    assert lines[7] == (f'Unit: "Flops" (mmengine\'s and mmseg\'s) are MACs: {total:,} MACs = '
                        f"{2 * total:,} FLOPs")
    assert lines[8] == "Preset: full (every op counts, elementwise ops included)"
    assert lines[9] == "Counted on: (1, 3, 64, 64) (the inputs given; input_shape was (3, 40, 40))"
    assert not any("Use size divisor" in line for line in lines)


def test_pack_lines_name_what_was_not_counted():
    call = ComplexityCall("full", ((3, 8, 8), (5,)), [(1, 3, 8, 8), (1, 5)], 1_234_567, 89,
                          unsupported_ops={"aten::im2col": 3, "prim::PythonOp.FusedGLU": 1},
                          uncounted=[UncountedOp("aten::foo", "head", "no shape", 2)])
    assert pack_lines(call) == [
        'Unit: "Flops" (mmengine\'s and mmseg\'s) are MACs: 1,234,567 MACs = 2,469,134 FLOPs',
        "Preset: full (every op counts, elementwise ops included)",
        "Counted on: (1, 3, 8, 8), (1, 5)",
        "Not counted: aten::im2col x3 (no rule), prim::PythonOp.FusedGLU x1 (no rule), "
        "aten::foo x2 (no shape), each counted as 0"]
    call = ComplexityCall("paper", (3, 8, 8), [(1, 3, 16, 16), None], 0, 0)
    assert pack_lines(call, mmcv_standin=True)[2:] == [
        "Counted on: (1, 3, 16, 16), (not a tensor) (the inputs given; input_shape was "
        "(3, 8, 8))",
        "Not counted: nothing, every op in the trace has a rule",
        STANDIN_LINE]


@pytest.mark.parametrize("count", [
    0, 1, 99, 100, 101, 999, 1000, 1001, 99_999, 100_000, 100_001, 999_499, 999_500,
    100_000_000, 100_000_001, 8_505_589_760, 3_753_718, 945_664_200_960, 10 ** 11,
    10 ** 11 + 1, 10 ** 14, 10 ** 14 + 1, 10 ** 18, 123_456_789_012_345_678_901, -1, -101,
    -8_505_589_760])
def test_format_size_is_mmengines(count):
    assert format_size(count) == _format_size(count)


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(min_value=-10 ** 20, max_value=10 ** 20))
def test_format_size_is_mmengines_everywhere(count):
    assert format_size(count) == _format_size(count)


def test_cfg_options(capsys):
    status, out, _ = run(capsys, TINY, "--shape", "32", "--format", "json",
                         "--cfg-options", "model.decode_head.num_classes=6")
    report = json.loads(out)
    assert report["by_operator"]["conv"] == TINY_PAPER["conv"] + (2 * 8) * 1024
    assert report["params"] == TINY_PARAMS + 2 * 8 + 2


def test_segformer_b0_published_number(capsys):
    # 8,505,589,760 is what plain fvcore and mmengine count (with grad), and what the paper
    # preset must keep; mmseg's model zoo lists 3.8M parameters for MiT-B0 + head.
    status, out, _ = run(capsys, SEGFORMER_B0, "--shape", "512", "512", "--format", "json")
    report = json.loads(out)
    assert status == 0 and report["total_macs"] == 8_505_589_760
    assert report["params"] == 3_753_718

    status, out, _ = run(capsys, SEGFORMER_B0, "--shape", "512", "--preset", "full",
                         "--format", "json")
    full = json.loads(out)
    # MiT-B0: 2 blocks per stage; tokens and channels per stage, keys after spatial reduction
    stages = [(128 * 128, 32, 1), (64 * 64, 64, 2), (32 * 32, 160, 5), (16 * 16, 256, 8)]
    extra = {"softmax": 0, "mul": 0, "gelu": 0, "add": 0}
    for tokens, channels, heads in stages:
        extra["softmax"] += 2 * heads * tokens * 256     # every stage reduces keys to 256
        extra["mul"] += 2 * tokens * channels            # q * scale (need_weights path)
        extra["gelu"] += 2 * tokens * 4 * channels       # Mix-FFN hidden
        extra["add"] += 2 * 2 * tokens * channels        # two residuals per block
    assert full["total_macs"] - report["total_macs"] == sum(extra.values())
    assert {k: full["by_operator"][k] for k in extra} == extra


def test_paper_preset_changes_nothing_plain_fvcore_counts_right():
    model, inputs, _ = build_segmentor(SEGFORMER_B0, (3, 128, 128))
    from fvcore.nn import FlopCountAnalysis
    plain = FlopCountAnalysis(model, inputs)
    plain.unsupported_ops_warnings(False)
    plain.uncalled_modules_warnings(False)
    assert fvcore_count(model, inputs, "paper", grad=True)[0] == plain.total()


def test_mmengine_context_manager_restores_mmengine():
    from mmengine.analysis import complexity_analysis
    from mmengine.analysis import get_model_complexity_info as mmengine_info
    original = complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS
    snapshot = dict(original)
    model, inputs, _ = build_segmentor(TINY, (3, 32, 32))
    plain = mmengine_info(model, inputs=inputs, show_table=False, show_arch=False)["flops"]
    with pack_handles_in_mmengine("full"):
        inside = mmengine_info(model, inputs=inputs, show_table=False, show_arch=False)["flops"]
    assert inside == sum(TINY_FULL.values()) != plain
    assert complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS is original
    assert original == snapshot
    assert mmengine_info(model, inputs=inputs, show_table=False, show_arch=False)["flops"] == plain


def test_get_model_complexity_info_takes_both_shape_and_inputs():
    model, inputs, _ = build_segmentor(TINY, (3, 32, 32))
    info = get_model_complexity_info(model, (3, 32, 32), inputs=inputs, preset="paper")
    assert info["flops"] == sum(TINY_PAPER.values()) and info["params"] == TINY_PARAMS
    assert info["flops_str"] == "3.51M" and info["out_table"] and info["out_arch"]
    assert info["unsupported_ops"] == {} and info["uncounted"] == []
    with pytest.raises(ValueError, match="should be set"):
        get_model_complexity_info(model)


def test_compiled_mmcv_op_fails_naming_it():
    from mmcv.ops import nms
    with pytest.raises(NotImplementedError, match="mmcv._ext.nms is a compiled mmcv op"):
        nms(torch.rand(4, 4), torch.rand(4), 0.5)


@pytest.mark.parametrize("argv, reason", [
    (["no/such/config.py"], "does not exist"),
    ([str(CONFIGS / "mask2former" / "mask2former_r50_8xb2-160k_ade20k-512x512.py")],
     "install mmdet"),
    ([TINY, "--shape", "1", "2", "3"], "invalid input shape"),
])
def test_bad_input_one_line(capsys, argv, reason):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.count("\n") == 1 and reason in err


@pytest.mark.parametrize("config, shape", [(TINY, ["32"]), (SEGFORMER_B0, ["512", "512"])])
def test_device_meta_prints_the_cpu_lines(capsys, config, shape):
    # mmseg's lines and the pack's, byte for byte, counted without arithmetic on meta
    outputs = [run(capsys, config, "--shape", *shape, "--device", device)
               for device in ("cpu", "meta")]
    assert outputs[0][0] == outputs[1][0] == 0
    assert outputs[0][1] == outputs[1][1]


def test_device_meta_on_a_data_dependent_model_is_one_line(capsys, monkeypatch):
    import fvcore_ext.mmseg.get_flops as get_flops

    class Gather(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]                                   # needs the data: nonzero

    monkeypatch.setattr(get_flops, "build_segmentor", lambda *a, **k: (
        Gather().to("meta"), (torch.empty(1, 3, 8, 8, device="meta"),), (8, 8)))
    status, out, err = run(capsys, TINY, "--shape", "8", "--device", "meta")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot count on meta")
    assert err.rstrip().endswith("(--device cpu)")


# ---------------------------------------------------------------- issue 21: how users run it
IMPORTED = "tests/mmseg_configs/tiny_segmentor_imported.py"
SCAN = "tests/mmseg_configs/tiny_scan_segmentor.py"
# at 32x32: stem conv 3->8 s2 (16x16) + BN, the scan (9·B·L·D·N + B·D·L for D), conv_seg 8->4
SCAN_PAPER = {"conv": 8 * 3 * 9 * 256 + 4 * 8 * 256, "batch_norm": 2 * 8 * 256,
              "PythonOp.SelectiveScanFn": 9 * 256 * 8 * 4 + 256 * 8}


@pytest.fixture
def unimported(monkeypatch):
    """tests.mmseg_imported, tests.mmseg_scan and tests.scan_model not imported, their backbones not registered
    and no selective_scan_cuda in sys.modules for this test; all put back afterwards."""
    from mmseg.registry import MODELS
    for name in ("tests.mmseg_imported", "tests.mmseg_scan", "tests.scan_model",
                 "selective_scan_cuda"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("TinyImportedBackbone", "TinyScanBackbone"):
        monkeypatch.delitem(MODELS._module_dict, name, raising=False)


def test_import_option_registers_what_the_config_does_not_import(capsys, unimported):
    status, _, err = run(capsys, IMPORTED, "--shape", "32")
    assert status == 2 and "TinyImportedBackbone is not in the mmseg::model registry" in err
    status, out, _ = run(capsys, IMPORTED, "--shape", "32", "--format", "json",
                         "--import", "tests.mmseg_imported")
    assert status == 0 and json.loads(out)["by_operator"] == TINY_PAPER
    status, _, err = run(capsys, IMPORTED, "--import", "no_such_module_21")
    assert status == 2 and err.count("\n") == 1 and "--import no_such_module_21 failed" in err


def test_cfg_options_custom_imports_run_after_the_merge(capsys, unimported):
    status, out, _ = run(capsys, IMPORTED, "--shape", "32", "--format", "json",
                         "--cfg-options", "custom_imports.imports=[tests.mmseg_imported]")
    assert status == 0 and json.loads(out)["by_operator"] == TINY_PAPER


def test_standins_option_counts_a_backbone_that_imports_a_cuda_extension(capsys, unimported):
    status, out, err = run(capsys, SCAN, "--shape", "32", "--import", "tests.mmseg_scan")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "selective_scan_cuda" in err and "add --standins" in err
    status, out, _ = run(capsys, SCAN, "--shape", "32", "--format", "json", "--standins",
                         "--import", "tests.mmseg_scan")
    report = json.loads(out)
    assert status == 0 and report["by_operator"] == SCAN_PAPER
    assert report["unsupported_ops"] == {} and report["uncounted"] == []


# CascadeEncoderDecoder: a list of decode heads. OCRNet's heads are plain tensor-mode heads;
# PointRend's PointHead refines at test time (mmseg's tensor mode cannot run it), so its
# inference path (encode_decode) is counted.
@pytest.mark.parametrize("config", [
    "ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py",
    "point_rend/pointrend_r50_4xb2-80k_cityscapes-512x1024.py",
])
def test_cascade_segmentors_count(capsys, config):
    status, out, err = run(capsys, str(CONFIGS / config), "--shape", "64", "--device", "meta",
                           "--format", "json")
    assert status == 0, err
    report = json.loads(out)
    assert report["total_macs"] > 0 and report["unsupported_ops"] == {}
    assert report["uncounted"] == []
    if "point_rend" in config:      # point_sample is a grid_sample at the refined points
        assert report["by_operator"]["grid_sampler"] > 0


@pytest.mark.skipif(importlib.util.find_spec("mmdet") is None, reason="needs mmdet")
def test_maskformer_heads_count_with_mmdet(capsys):
    config = str(CONFIGS / "maskformer" / "maskformer_r50-d32_8xb2-160k_ade20k-512x512.py")
    status, out, err = run(capsys, config, "--shape", "64", "--format", "json")
    assert status == 0, err
    report = json.loads(out)
    assert report["unsupported_ops"] == {} and report["uncounted"] == []
    assert report["by_operator"]["linear"] > 0            # the transformer decoder's queries


def test_change_detection_config_gets_its_six_channels(capsys):
    # LEVIR-CD stacks two pictures: the random input has the data preprocessor's 6 channels
    config = str(CONFIGS / "swin" / "swin-tiny-patch4-window7_upernet_1xb8-20k_levir-256x256.py")
    status, out, err = run(capsys, config, "--shape", "64", "--device", "meta")
    assert status == 0, err
    assert "Counted on: (1, 6, 64, 64)" in out
    assert "Not counted: nothing, every op in the trace has a rule" in out
