"""The main job: ``python -m fvcore_ext [MODEL] ...``."""
import json
import os
import subprocess
import sys

import pytest
from torch import nn

from fvcore_ext.cli.main import main
from fvcore_ext.reference_models import build

from tests.expected import EXPECTED
from tests.helpers import fvcore_count


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_default_model_table(capsys):
    status, out, err = run(capsys)
    model, inputs = build("vit")
    total, ops = fvcore_count(model, inputs, "full")
    assert status == 0
    assert f"- total: {total:,} MACs = {2 * total:,} FLOPs" in out
    assert "- input shape: (2, 3, 32, 32)" in out
    assert "- parameters: " in out
    assert "By operator (MACs):" in out and "By module, depth 2 (MACs):" in out
    for op, macs in ops.items():
        assert f"{macs:,}" in out and op in out
    assert "nothing: every op in the trace has a rule" in out


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_json_matches_fvcore(capsys, preset):
    status, out, _ = run(capsys, "mamba", "--format", "json", "--preset", preset)
    report = json.loads(out)
    model, inputs = build("mamba")
    total, ops = fvcore_count(model, inputs, preset)
    assert status == 0
    assert report["total_macs"] == total and report["total_flops"] == 2 * total
    assert report["by_operator"] == ops
    assert report["inputs"] == [{"name": None, "shape": [2, 16, 32]}]
    assert report["params"] == sum(p.numel() for p in model.parameters())
    # x_proj's weight goes straight into the fused kernel; the SiLU module, which the kernel
    # applies itself, has no weights and so is not listed as unused
    assert report["fused_weight_modules"]["mixers.0.x_proj"] == ["prim::PythonOp.MambaInnerFn"]
    assert report["unused_modules"] == []
    if preset == "paper":     # A = -exp(A_log) in each of the two blocks: elementwise
        assert report["zero_by_design"]["aten::exp"] == report["zero_by_design"]["aten::neg"] == 2
    else:
        assert "aten::exp" not in report["zero_by_design"]


def test_markdown_and_depth(capsys):
    status, out, _ = run(capsys, "swin_stage", "--format", "markdown", "--depth", "1")
    assert status == 0
    assert "| module | MACs | share |" in out
    assert "| blocks |" in out and "blocks.0" not in out


def test_callable_spec_with_named_input_and_dataclass_output(capsys):
    status, out, _ = run(capsys, "tests.hf_small:vit_tiny", "--input-shape", "1,3,32,32",
                         "--input-name", "pixel_values")
    assert status == 0, out
    assert "pixel_values=(1, 3, 32, 32)" in out
    assert "nothing: every op in the trace has a rule" in out


def test_model_mode_restored(capsys):
    from tests import hf_small
    model = hf_small.vit_tiny()
    model.train()
    hf_small.LAST = model
    status, out, _ = run(capsys, "tests.hf_small:last", "--input-shape", "1", "3", "32", "32",
                         "--input-name", "pixel_values")
    assert status == 0
    assert "was in train mode" in out
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("argv, reason", [
    (["no_such_model"], "unknown model 'no_such_model'"),
    (["os.path:nothing_here", "--input-shape", "1"], "cannot load 'os.path:nothing_here'"),
    (["os.path:join", "--input-shape", "1"], "raised TypeError"),
    (["os:sep", "--input-shape", "1"], "neither an nn.Module nor callable"),
    (["vit", "--input-shape", "1", "three"], "bad input shape"),
    (["vit", "--input-shape", "1", "3", "7", "7"], "cannot trace 'vit'"),
    (["tests.hf_small:vit_tiny"], "--input-shape is required"),
    (["vit", "--input-dtype", "complex7"], "unknown dtype"),
    (["vit", "--input-shape", "1", "-3"], "size -3 is negative"),
    (["vit", "--input-shape", "1", "3", "224", "224"],
     "the reference model 'vit' is built for input shape 2 3 32 32"),
    (["no_such_model"], "vit (2 3 32 32)"),
    (["vit", "--input-name", "images"], "--input-name 'images': forward has no argument"),
    (["tests.hf_small:vit_tiny", "--input-shape", "1", "3", "32", "32", "--input-name",
      "pixel_value"], "did you mean 'pixel_values'?"),
    (["tests.hf_small:vit_tiny", "--input-shape", "1", "3", "32", "32", "--input-name",
      "image"], "--input-name 'image' is not a named argument of forward (it takes "
                "pixel_values"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, reason):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and reason in err


def test_module_entry_point_no_traceback():
    done = subprocess.run([sys.executable, "-m", "fvcore_ext", "vit", "--input-shape", "1", "3",
                           "5", "5"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "cannot trace 'vit'" in done.stderr


def test_compare_explains_every_difference(capsys):
    status, out, _ = run(capsys, "compare", "mamba")
    assert status == 0
    total = sum(EXPECTED["mamba"]["full"].values())
    assert f"  fvcore+pack        {total:,}" in out
    assert f"  torchprofile+pack  {total:,}" in out
    rows = {line.split()[0]: line for line in out.splitlines()[8:] if line.strip()}
    assert "fvcore has no rule for it" in rows["PythonOp.MambaInnerFn"]
    assert "sees every autograd Function as the same prim::pythonop" in \
        rows["PythonOp.MambaInnerFn"]
    assert "torchprofile's convention differs" in rows["layer_norm"]
    assert rows["matmul"].rstrip().endswith("262,144")      # all four agree: no reason


def test_compare_json(capsys):
    status, out, _ = run(capsys, "compare", "cnn", "--format", "json", "--preset", "paper")
    tools = {c["tool"]: c for c in json.loads(out)}
    assert status == 0
    assert tools["fvcore+pack"]["total"] == tools["torchprofile+pack"]["total"] == \
        sum(EXPECTED["cnn"]["paper"].values())
    assert tools["fvcore+pack"]["by_operator"] == tools["torchprofile+pack"]["by_operator"]
    assert tools["torchprofile"]["total"] != tools["torchprofile+pack"]["total"]


def test_strict_flag_fails_on_an_uncountable_op(capsys):
    argv = ["tests.test_uncountable:OddScan", "--input-shape", "1", "8", "5"]
    status, out, _ = run(capsys, *argv)
    assert status == 0 and "uncounted, prim::PythonOp.SelectiveScanFn x1" in out
    status, out, err = run(capsys, *argv, "--strict")
    assert status == 2 and out == ""
    assert err.startswith("error: strict mode: prim::PythonOp.SelectiveScanFn")
    assert "unknown argument layout" in err and err.count("\n") == 1


def test_negative_depth_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["vit", "--depth", "-1"])
    assert exit_.value.code == 2
    assert "argument --depth: -1 is negative" in capsys.readouterr().err


def test_help_lists_every_reference_model_with_its_input_shape(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "census MODEL" in out and "--device" in out and "--strict" in out
    for name, line in (("vit", "2 3 32 32"), ("vmamba_tiny", "1 3 224 224"),
                       ("transformer_encoder_layer", "2 10 32")):
        assert any(row.split()[:1] == [name] and line in row for row in out.splitlines())


@pytest.mark.parametrize("spec, op", [
    ("tests.test_custom_rules:GLUBlock", "prim::PythonOp.FusedGLU"),   # the README's Block
    ("tests.test_uncountable:UsesCdist", "aten::cdist"),
])
def test_strict_flag_fails_on_an_unknown_op(capsys, spec, op):
    shape = ["--input-shape", "2", "8", "16"] if "GLU" in spec else ["--input-shape", "1", "6", "6"]
    status, out, _ = run(capsys, spec, *shape)
    assert status == 0 and f"unknown, no rule (may be large): {op} x1" in out
    status, out, err = run(capsys, spec, *shape, "--strict")
    assert status == 2 and out == ""
    assert err.startswith(f"error: strict mode: {op} (in <top>) cannot be counted: no rule")
    assert err.count("\n") == 1


def test_standins_option_counts_a_model_that_imports_a_cuda_extension(capsys, monkeypatch):
    # issue 21: Vim's and VMamba's model files import the Mamba CUDA extensions; without them
    # the spec fails to import, with a reason that names --standins.
    for name in ("tests.scan_model", "selective_scan_cuda"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    status, out, err = run(capsys, "tests.scan_model:build", "--input-shape", "1", "3", "8", "8")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "selective_scan_cuda" in err and "add --standins" in err
    status, out, _ = run(capsys, "tests.scan_model:build", "--input-shape", "1", "3", "8", "8",
                         "--standins", "--format", "json", "--preset", "paper")
    report = json.loads(out)
    scan = 9 * 16 * 8 * 4 + 16 * 8           # 9·B·L·D·N + B·D·L (D), L = 4x4 positions
    assert status == 0 and report["by_operator"]["PythonOp.SelectiveScanFn"] == scan
    assert report["unsupported_ops"] == {}


@pytest.mark.parametrize("flag", ["--engine", "--backward"])
def test_compare_with_the_dispatch_engine(capsys, flag):
    """Issue 26 item 7: the dispatch column counts (it was a TypeError on every model)."""
    from fvcore_ext import count_model

    argv = ["compare", "cnn", "--format", "json"] + (
        ["--engine", "dispatch"] if flag == "--engine" else ["--backward"])
    status, out, _ = run(capsys, *argv)
    tools = {c["tool"]: c for c in json.loads(out)}
    assert status == 0 and tools["dispatch+pack"]["error"] is None
    forward = sum(EXPECTED["cnn"]["full"].values())
    assert tools["fvcore+pack"]["total"] == forward
    if flag == "--engine":
        assert tools["dispatch+pack"]["total"] == forward
        assert tools["dispatch+pack"]["by_operator"] == tools["fvcore+pack"]["by_operator"]
    else:
        model, inputs = build("cnn")
        training = count_model(model, inputs, engine="dispatch", backward=True)
        # train mode: BatchNorm normalises with batch statistics, so the forward differs
        assert training.backward_macs > 0
        assert tools["dispatch+pack"]["total"] == training.total_macs > forward


# ---------------------------------------------------------------- one parser, hostile runs

class Chatty(nn.Module):
    """Prints while it runs: stdout must still hold only the result."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        print("hello from forward")
        return self.fc(x)


def exits():
    sys.exit(0)


SHARED = ("--preset", "--format", "--depth", "--strict", "--engine", "--backward", "--device",
          "--standins", "--quiet")


def _options(parser):
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings}


def test_shared_options_are_defined_once_and_mean_the_same():
    from fvcore_ext.cli import hf_command
    from fvcore_ext.cli.main import _parser
    model, hf = _options(_parser(False)), _options(hf_command._parser())
    for name in SHARED:
        a, b = model[name], hf[name]
        assert (a.choices, a.type, a.nargs, type(a)) == (b.choices, b.type, b.nargs, type(b))
        if name != "--device":     # hf: builds on meta by default (no weights needed)
            assert a.default == b.default and a.help == b.help, name
    assert (model["--device"].default, hf["--device"].default) == ("cpu", "meta")


def test_help_shows_the_hf_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "hf:SPEC options" in out
    for option in ("--seq-len", "--set KEY=VALUE", "--head", "--decode", "--plot", "--online",
                   "--backward", "--quiet"):
        assert option in out


def test_a_model_that_prints_keeps_json_stdout_pure(capsys):
    status, out, err = run(capsys, "tests.test_cli:Chatty", "--input-shape", "2", "4",
                           "--format", "json")
    assert status == 0 and json.loads(out)["total_macs"] == 2 * 4 * 3
    assert "hello from forward" in err


def test_a_builder_calling_sys_exit_is_an_error_naming_the_spec(capsys):
    status, out, err = run(capsys, "tests.test_cli:exits")
    assert (status, out) == (2, "")
    assert err == "error: 'tests.test_cli:exits' called sys.exit(0) instead of returning an " \
                  "nn.Module\n"


@pytest.mark.parametrize("argv", [["cnn"], ["hf:gpt2", "--set", "n_layer=1", "--seq-len", "8"]])
def test_stdout_closed_is_one_line_and_status_2(argv):
    command = " ".join([sys.executable, "-m", "fvcore_ext"] + argv) + " >&-"
    done = subprocess.run(["bash", "-c", command], capture_output=False, stderr=subprocess.PIPE,
                          text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1:] == [
        "error: stdout is closed: nothing to write the result to"]
    assert "Traceback" not in done.stderr


def test_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch):
    from fvcore_ext.cli import main as main_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(main_module, "count_model", interrupted)
    assert main(["cnn"]) == 130
    assert capsys.readouterr() == ("", "interrupted (Ctrl-C)\n")


class TTY:
    """A stderr that says it is a terminal, keeping what is written."""

    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return True

    @property
    def text(self):
        return "".join(self.parts)


@pytest.mark.parametrize("extra,bar", [([], True), (["--quiet"], False),
                                       (["--format", "json"], False)])
def test_census_progress_bar_only_on_a_terminal(capsys, monkeypatch, extra, bar):
    from fvcore_ext.cli.census import main as census_main
    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert census_main(["cnn", "vit"] + extra) in (0, 1)
    assert ("census:" in tty.text and "/2 " in tty.text) == bar, tty.text
    capsys.readouterr()
    # not a terminal: no bar
    assert census_main(["cnn", "vit"]) in (0, 1)
    assert "census:" not in capsys.readouterr().err


def test_census_ctrl_c_is_one_line_and_130(capsys, monkeypatch):
    from fvcore_ext.cli import census as census_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(census_module, "census", interrupted)
    assert census_module.main(["cnn"]) == 130
    assert capsys.readouterr() == ("", "interrupted (Ctrl-C)\n")


def test_hardware_and_dtype_from_the_command_line(capsys):
    """Issue 29: --hardware gives bytes and a roofline time (the dispatch engine), --dtype
    builds the model in that dtype: a bf16 linear model moves half the fp32 bytes."""
    status, out, _ = run(capsys, "cnn", "--hardware", "h100", "--format", "json")
    fp32 = json.loads(out)
    assert status == 0 and fp32["engine"] == "dispatch"
    assert fp32["hardware"].startswith("H100 SXM") and fp32["estimated_seconds"] > 0
    assert fp32["total_bytes"] > 0 and fp32["intensity"] > 0
    status, out, _ = run(capsys, "cnn", "--hardware", "h100", "--format", "table")
    assert "Bytes and roofline time:" in out and "Modules by estimated time" in out
    status, out, _ = run(capsys, "mha", "--hardware", "a100", "--dtype", "bf16",
                         "--format", "json")
    bf16 = json.loads(out)
    status, out, _ = run(capsys, "mha", "--hardware", "a100", "--format", "json")
    assert bf16["total_macs"] == json.loads(out)["total_macs"]
    assert bf16["bytes_by_operator"]["linear"] * 2 == json.loads(out)["bytes_by_operator"]["linear"]


@pytest.mark.parametrize("argv,message", [
    (["cnn", "--hardware", "h999"], "unknown hardware 'h999'"),
    (["cnn", "--hardware", "peak_tflops=-1,bandwidth_gbs=100"], "peak_tflops"),
    (["cnn", "--hardware", "h100", "--engine", "jit"], "--hardware needs --engine dispatch"),
])
def test_hardware_errors_are_one_line(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_roofline_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "roofline.png"
    status, out, err = run(capsys, "mamba_slow", "--hardware", "h100", "--device", "meta",
                           "--plot", str(path))
    assert status == 0 and path.stat().st_size > 1000 and "Bytes and roofline time" in out
    status, _, err = run(capsys, "cnn", "--plot", str(tmp_path / "r.png"))
    assert status == 2 and "give --hardware too" in err
    status, _, err = run(capsys, "cnn", "--hardware", "h100", "--plot", str(tmp_path))
    assert status == 2 and "is a directory" in err
