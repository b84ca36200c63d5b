"""``python -m fvcore_ext.run``: mmseg 1.2.2's own, unmodified ``get_flops.py`` and a user's
script that calls mmengine's ``get_model_complexity_info``, run with the pack."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.analysis.print_helper import _format_size

import mmseg
from fvcore_ext import get_flops, run
from fvcore_ext.mmseg.mmengine_analysis import ComplexityCall, pack_in_mmengine
from tests.test_get_flops import (SEGFORMER_B0, STANDIN, STANDIN_LINE, TINY, TINY_FULL,
                                  TINY_PAPER, TINY_PARAMS)

HERE = Path(__file__).parent
MMSEG_SCRIPT = str(HERE / "third_party" / "mmsegmentation" / "get_flops.py")
OWN_SCRIPT = str(HERE / "run_scripts" / "own_complexity.py")
EXITS = str(HERE / "run_scripts" / "exits.py")
SHOW_ARGV = str(HERE / "run_scripts" / "show_argv.py")
EXPECTED = {"paper": TINY_PAPER, "full": TINY_FULL}


def runner(capsys, *argv):
    status = run.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def get_flops_text(capsys, *argv):
    status = get_flops.main(list(argv))
    out, _ = capsys.readouterr()
    assert status == 0
    return out


def line_of(path, text):
    """1-based number of the line of ``path`` that contains ``text``."""
    lines = Path(path).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def mmengine_state():
    import mmengine.analysis
    from mmengine.analysis import complexity_analysis, print_helper
    return (mmengine.analysis.get_model_complexity_info, print_helper.get_model_complexity_info,
            complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS, list(sys.argv), list(sys.path))


def test_the_copy_is_mmseg_1_2_2s_script_unmodified():
    installed = (Path(mmseg.__file__).parent / ".mim" / "tools" / "analysis_tools" /
                 "get_flops.py")
    assert mmseg.__version__ == "1.2.2"
    assert Path(MMSEG_SCRIPT).read_bytes() == installed.read_bytes()


def test_stock_mmengine_refuses_mmsegs_call(monkeypatch):
    # Why the runner exists: unchanged, mmseg 1.2.2's script dies in mmengine >= 0.7.3.
    monkeypatch.setattr(sys, "argv", [MMSEG_SCRIPT, TINY, "--shape", "32"])
    with pytest.raises(ValueError, match='"input_shape" and "inputs" cannot be both set'):
        runpy.run_path(MMSEG_SCRIPT, run_name="__main__")


@pytest.mark.parametrize("preset, extra", [
    ("paper", []),
    ("full", []),
    # padded by the data preprocessor: mmseg prints (40, 40) and counts 64x64
    ("paper", ["--cfg-options", "model.data_preprocessor.test_cfg.size_divisor=32"]),
])
def test_mmseg_script_prints_what_get_flops_prints(capsys, preset, extra):
    shape = ["--shape", "40" if extra else "32"]
    status, out, err = runner(capsys, "--preset", preset, MMSEG_SCRIPT, TINY, *shape, *extra)
    assert status == 0
    assert out == get_flops_text(capsys, TINY, *shape, "--preset", preset, *extra)
    if not extra:
        total = sum(EXPECTED[preset].values())
        assert out.splitlines()[3:5] == [f"Flops: {_format_size(total)}",
                                         f"Params: {_format_size(TINY_PARAMS)}"]
        assert out.splitlines()[7].endswith(f"{total:,} MACs = {2 * total:,} FLOPs")
    else:
        assert out.splitlines()[2] == "Input shape: (40, 40)"
        assert "Counted on: (1, 3, 64, 64) (the inputs given; input_shape was (3, 40, 40))" in out


def test_mmseg_script_segformer_b0_published_number(capsys):
    status, out, _ = runner(capsys, MMSEG_SCRIPT, SEGFORMER_B0, "--shape", "512", "512")
    assert status == 0
    assert out == get_flops_text(capsys, SEGFORMER_B0, "--shape", "512", "512")
    lines = out.splitlines()
    assert lines[2:5] == ["Input shape: (512, 512)", "Flops: 8.506G", "Params: 3.754M"]
    assert lines[3] == f"Flops: {_format_size(8_505_589_760)}"    # test_get_flops's count
    assert lines[7] == ('Unit: "Flops" (mmengine\'s and mmseg\'s) are MACs: 8,505,589,760 MACs '
                        '= 17,011,179,520 FLOPs')


@pytest.mark.parametrize("preset", ["paper", "full"])
def test_own_script_counts_what_get_flops_counts(capsys, preset):
    status, out, _ = runner(capsys, "--preset", preset, OWN_SCRIPT, TINY, "--shape", "32", "32")
    report = json.loads(get_flops_text(capsys, TINY, "--shape", "32", "--preset", preset,
                                       "--format", "json"))
    total = report["total_macs"]
    assert status == 0 and total == sum(EXPECTED[preset].values())
    assert report["params"] == TINY_PARAMS
    lines = out.splitlines()
    assert lines[:3] == [
        f"inputs: flops {total} ({_format_size(total)}), params {TINY_PARAMS}",
        f"input_shape: flops {total} ({_format_size(total)}), params {TINY_PARAMS}",
        f"FlopAnalyzer: {total}"]              # built directly: the pack's handles too
    block = get_flops.pack_lines(ComplexityCall(preset, (3, 32, 32), [(1, 3, 32, 32)],
                                                total, TINY_PARAMS))
    assert lines[3:] == (["Count 1 of 2 (get_model_complexity_info calls):"] + block
                         + ["Count 2 of 2 (get_model_complexity_info calls):"] + block
                         + [STANDIN_LINE] * STANDIN)


def test_script_sees_its_argv_folder_and_main(capsys):
    status, out, _ = runner(capsys, SHOW_ARGV, "a", "--shape", "512", "-h")
    seen = json.loads(out.splitlines()[0])
    assert status == 0
    assert seen == {"argv": [SHOW_ARGV, "a", "--shape", "512", "-h"],
                    "path0": os.path.dirname(os.path.abspath(SHOW_ARGV)), "name": "__main__"}


def test_everything_is_restored(capsys):
    from mmengine.analysis import get_model_complexity_info as stock
    before = mmengine_state()
    for argv in ([MMSEG_SCRIPT, TINY, "--shape", "32"], [EXITS, "exit", "3"],
                 [EXITS, "raise", "RuntimeError", "boom"], [MMSEG_SCRIPT]):
        run.main(argv)
        after = mmengine_state()
        assert after[0] is before[0] and after[1] is before[1] and after[2] is before[2]
        assert after[3:] == before[3:]
    capsys.readouterr()
    model, inputs, _ = get_flops.build_segmentor(TINY, (3, 32, 32))
    with pytest.raises(ValueError, match="cannot be both set"):     # mmengine's own again
        stock(model, (3, 32, 32), inputs=inputs)


def test_pack_in_mmengine_records_calls_and_restores_on_error():
    import mmengine.analysis
    before = mmengine_state()
    model, inputs, _ = get_flops.build_segmentor(TINY, (3, 32, 32))
    with pytest.raises(KeyError):
        with pack_in_mmengine("full") as calls:
            info = mmengine.analysis.get_model_complexity_info(
                model, (3, 32, 32), inputs=inputs, show_table=False, show_arch=False)
            raise KeyError("leaving the block by an error")
    assert info["flops"] == sum(TINY_FULL.values()) and info["params"] == TINY_PARAMS
    assert calls == [ComplexityCall("full", (3, 32, 32), [(1, 3, 32, 32)],
                                    sum(TINY_FULL.values()), TINY_PARAMS, {}, [])]
    after = mmengine_state()
    assert after[0] is before[0] and after[1] is before[1] and after[2] is before[2]


@pytest.mark.parametrize("argv, status, message", [
    ([EXITS, "exit", "3"], 3,
     f"python -m fvcore_ext.run: {EXITS} exited with status 3 (sys.exit)\n"),
    ([EXITS, "exit", "0"], 0,
     f"python -m fvcore_ext.run: {EXITS} never called get_model_complexity_info; any "
     f"FlopAnalyzer it built counted with the pack's handles (preset paper)\n"),
    ([EXITS, "exit", "a message"], 1,
     f"a message\npython -m fvcore_ext.run: {EXITS} exited with status 1 (sys.exit)\n"),
    ([EXITS, "raise", "ValueError", "bad thing"], 1,
     f"python -m fvcore_ext.run: {EXITS} raised ValueError (exits.py, line "
     f"{line_of(EXITS, 'raise {')}): bad thing\n"),
    ([EXITS, "raise", "RuntimeError", ""], 1,
     f"python -m fvcore_ext.run: {EXITS} raised RuntimeError (exits.py, line "
     f"{line_of(EXITS, 'raise {')})\n"),
    ([MMSEG_SCRIPT, TINY, "--shape", "1", "2", "3"], 1,
     f"python -m fvcore_ext.run: {MMSEG_SCRIPT} raised ValueError (get_flops.py, line "
     f"{line_of(MMSEG_SCRIPT, 'invalid input shape')}): invalid input shape\n"),
    (["no/such/script.py", TINY], 2,
     "python -m fvcore_ext.run: error: script no/such/script.py does not exist\n"),
])
def test_exit_status_and_one_line_errors(capsys, argv, status, message):
    got, out, err = runner(capsys, *argv)
    assert got == status and err == message and out == ""


def test_script_usage_error_passes_its_status(capsys):
    status, out, err = runner(capsys, MMSEG_SCRIPT)
    assert status == 2 and out == ""
    assert err.splitlines()[-2:] == [
        "get_flops.py: error: the following arguments are required: config",
        f"python -m fvcore_ext.run: {MMSEG_SCRIPT} exited with status 2 (sys.exit)"]


def test_traceback_on_request(capsys):
    status, _, err = runner(capsys, "--traceback", EXITS, "raise", "RuntimeError", "boom")
    assert status == 1
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == "RuntimeError: boom"


def test_command_line_on_mmseg_script(capsys):
    # The real entry point, in a fresh process: python -m fvcore_ext.run SCRIPT ARGS.
    done = subprocess.run([sys.executable, "-m", "fvcore_ext.mmseg.run", MMSEG_SCRIPT, TINY,
                           "--shape", "32"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == get_flops_text(capsys, TINY, "--shape", "32")

    # A missing config: mmseg logs it, Config.fromfile raises, the runner says where.
    done = subprocess.run([sys.executable, "-m", "fvcore_ext.mmseg.run", MMSEG_SCRIPT,
                           "no/such/config.py"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"python -m fvcore_ext.run: {MMSEG_SCRIPT} raised FileNotFoundError (get_flops.py, "
        f"line {line_of(MMSEG_SCRIPT, 'Config.fromfile')}): [Errno 2] No such file or "
        f"directory: 'no/such/config.py'")
