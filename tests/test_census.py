"""The op census (``python -m fvcore_ext census``): every op kind with its rule family, unknown
ops named, exit status 1 when something is unknown."""
import json
import subprocess
import sys

import torch

from fvcore_ext.cli.census import census, main
from fvcore_ext.reference_models import build
from tests.expected import EXPECTED

GLU_BLOCK = "tests.test_custom_rules:GLUBlock"    # a user kernel the pack has no rule for


def test_reference_model_census_matches_the_expected_counts():
    model, inputs = build("vit")
    for preset in ("full", "paper"):
        result = census(model, inputs, preset=preset)
        assert result.unknown == [] and result.uncounted == []
        assert sum(o.macs for o in result.ops) == sum(EXPECTED["vit"][preset].values())
    families = {o.op: o.family for o in result.ops}
    assert families["aten::linear"] == "matmul"
    assert families["aten::scaled_dot_product_attention"] == "attention"
    assert families["aten::layer_norm"] == "normalization"
    assert families["aten::transpose"] == "zero-cost"
    assert "prim::Constant" not in families and "prim::ListConstruct" not in families


def test_unknown_kernel_is_named_and_exits_1(capsys):
    status = main([GLU_BLOCK, "--input-shape", "2", "8", "16"])
    out = capsys.readouterr().out
    assert status == 1
    assert "prim::PythonOp.FusedGLU" in out.splitlines()[-1]
    assert out.splitlines()[0].endswith("1 unknown")


def test_json_for_several_models(capsys):
    status = main(["cnn", "vit", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and set(report) == {"cnn", "vit"}
    cnn = {o["op"]: o for o in report["cnn"]["ops"]}
    assert cnn["aten::_convolution"]["family"] == "convolution"
    assert sum(o["macs"] for o in cnn.values()) == sum(EXPECTED["cnn"]["full"].values())


def test_command_line_entry_point_and_bad_input():
    run = lambda *a: subprocess.run([sys.executable, "-m", "fvcore_ext", "census", *a],  # noqa
                                    capture_output=True, text=True)
    done = run("cnn")
    assert done.returncode == 0 and "aten::_convolution" in done.stdout
    bad = run("no_such_model")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: unknown model 'no_such_model'")


def test_meta_census_equals_the_cpu_census(capsys):
    outputs = []
    for device in ("cpu", "meta"):
        assert main(["cnn", "unet_decoder", "vmamba_block", "--device", device,
                     "--format", "json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]


class ReadsItsData(torch.nn.Module):
    def forward(self, x):
        return x[x > 0]


def test_meta_census_of_a_data_dependent_model_is_one_line(capsys):
    status = main(["tests.test_census:ReadsItsData", "--input-shape", "4", "--device", "meta"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("error: cannot count on meta") and "(--device cpu)" in err


def test_an_uncounted_op_exits_1_too(capsys):
    # the pack has a rule for SelectiveScanFn but cannot read this call's layout
    status = main(["tests.test_uncountable:OddScan", "--input-shape", "1", "8", "5"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.splitlines()[-1].startswith("has a rule but some calls could not be read")
