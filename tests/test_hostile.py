"""Hostile models: each gives a correct count in both tools or a clear error, never a
traceback from inside the pack."""
import functools
import io
import itertools
import json
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchprofile_ext
from fvcore_ext import (Cost, count_model, register_rule, unregister_rule,
                        vmamba_handles)
from fvcore_ext.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def both(model, x, preset="full"):
    report = count_model(model, [x], preset=preset)
    with torch.no_grad():
        assert torchprofile_ext.profile_macs(model, (x,), preset) == report.total_macs
    return report


class Linear(nn.Module):
    def __init__(self, n_in=4, n_out=3):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("shape", [(0, 4), (2, 0, 4), (3, 0, 0, 4)])
def test_zero_size_inputs_count_zero(shape):
    report = both(Linear(), torch.randn(shape))
    assert report.total_macs == 0 and report.uncounted == [] and report.unsupported_ops == {}


def test_five_d_input():
    report = both(nn.Sequential(nn.Conv3d(2, 3, 3), nn.GELU()), torch.randn(1, 2, 4, 5, 6))
    assert report.by_operator == {"conv": 1 * (3 * 2 * 27) * (2 * 3 * 4), "gelu": 3 * 2 * 3 * 4}


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.small, self.large = nn.Linear(4, 4), nn.Linear(4, 8)

    def forward(self, x):
        return self.small(x) if x.sum() > 0 else self.large(x)


def test_dynamic_control_flow_counts_the_path_taken_and_says_so():
    positive = both(Branchy(), torch.ones(2, 4))
    negative = both(Branchy(), -torch.ones(2, 4))
    assert (positive.total_macs, negative.total_macs) == (2 * 4 * 4, 2 * 4 * 8)
    assert any("Python boolean" in w for w in positive.trace_warnings)
    assert positive.unused_modules == ["large"] and negative.unused_modules == ["small"]


class Outputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return {"y": y, "nothing": None, "nested": (y * 2, [y + 1, None], ())}


def test_dict_none_and_nested_outputs():
    report = both(Outputs(), torch.randn(2, 4))
    assert report.by_operator == {"linear": 32, "mul": 8, "add": 8}


class InPlace(nn.Module):
    def forward(self, x):
        x = x.clone()
        x.mul_(2).add_(1)
        torch.sigmoid_(x)
        return x.relu_()


def test_in_place_ops():
    assert both(InPlace(), torch.randn(2, 4)).by_operator == {"mul_": 8, "add_": 8,
                                                              "sigmoid_": 8}


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.alias = self.fc                # the same module under two names

    def forward(self, x):
        return self.alias(self.fc(x))


def test_shared_and_aliased_modules_are_counted_once_per_call():
    report = both(Shared(), torch.randn(2, 4))
    assert report.total_macs == 2 * (2 * 4 * 4)           # two calls
    assert report.params == 4 * 4 + 4                     # one set of weights
    assert report.by_module == {"": 64, "fc": 64}         # one name for the module


@pytest.mark.parametrize("wrap", [nn.DataParallel, torch.compile])
def test_wrapped_models_are_unwrapped(wrap):
    assert both(wrap(Linear()), torch.randn(2, 4)).by_operator == {"linear": 24}


def test_torchscript_module_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="TorchScript module"):
        count_model(torch.jit.script(Linear()), [torch.randn(2, 4)])
    with pytest.raises(ValueError, match="TorchScript module"):
        torchprofile_ext.profile_macs(torch.jit.script(Linear()), (torch.randn(2, 4),))


SCRIPTED = torch.jit.script(Linear())


def scripted_model():
    return SCRIPTED


class Raises(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom\nsecond line")


def raising_model():
    return Raises()


@pytest.mark.parametrize("spec, reason", [
    ("tests.test_hostile:scripted_model", "TorchScript module"),
    ("tests.test_hostile:raising_model", "cannot trace 'tests.test_hostile:raising_model'"),
])
def test_cli_reports_one_line(capsys, spec, reason):
    assert main([spec, "--input-shape", "2", "4"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and reason in err
    assert "second line" not in err and "Traceback" not in err


# --- issue 22, probe 1: a registered torchprofile follows the op table, whatever nesting ------

FOO = "prim::PythonOp.Foo"
RULE = 1000                                   # what the user's rule says Foo costs
LINEAR, GELU = 3 * 4 * 4, 3 * 4               # the model's own ops on X


class Foo(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()


class UsesFoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return Foo.apply(nn.functional.gelu(self.fc(x)))


X = torch.randn(3, 4)


def expected_macs(preset, rule):
    """What the pack counts on UsesFoo: gelu only under full, Foo only once its rule exists."""
    return LINEAR + (GELU if preset == "full" else 0) + (RULE if rule else 0)


def foo_rule(call):
    return RULE


@pytest.fixture
def clean_registrations():
    from torchprofile_ext._compat import HANDLERS_ATTR, profile_module
    original = profile_module.trace, getattr(profile_module, HANDLERS_ATTR)
    blocks = []
    yield blocks
    for block, _ in reversed(blocks):
        block.__exit__(None, None, None)
    if FOO in vmamba_handles:
        unregister_rule(FOO)
    torchprofile_ext.unregister()
    assert (profile_module.trace, getattr(profile_module, HANDLERS_ATTR)) == original


def plain_torchprofile_macs(model, x):
    import torchprofile
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")                   # "No handlers found" for Foo
        return torchprofile.profile_macs(model, (x,))


@functools.lru_cache(maxsize=1)
def unregistered_macs():
    # torchprofile's own count, with none of the pack's rules: the same in every sequence.
    assert not torchprofile_ext.is_registered()
    return plain_torchprofile_macs(UsesFoo(), X)


def run_steps(steps, blocks):
    """Apply register / registered / register_rule / unregister_rule / unregister steps and,
    after each, check that plain ``torchprofile.profile_macs`` counts what the pack counts under
    the preset now registered (or torchprofile's own count when none is)."""
    model = UsesFoo()
    unregistered = unregistered_macs()
    preset, rule = None, False
    for done, step in enumerate(steps, 1):
        verb, _, argument = step.partition(":")
        if verb == "register":
            torchprofile_ext.register(argument)
            preset = argument
        elif verb == "enter":
            block = torchprofile_ext.registered(argument)
            block.__enter__()
            blocks.append((block, preset))
            preset = argument
        elif verb == "exit":
            block, preset = blocks.pop()
            block.__exit__(None, None, None)
        elif verb == "rule":
            register_rule(FOO)(foo_rule)
            rule = True
        elif verb == "unrule":
            unregister_rule(FOO)
            rule = False
        elif verb == "unregister":
            torchprofile_ext.unregister()
            preset = None
        want = unregistered if preset is None else expected_macs(preset, rule)
        assert torchprofile_ext.is_registered() == (preset is not None), steps[:done]
        assert plain_torchprofile_macs(model, X) == want, steps[:done]


def every_order():
    # Every order of register / a registered() block / register_rule / unregister, the block
    # closing at every point after it opened; the rule removed last.
    for register_preset, block_preset in (("full", "full"), ("full", "paper")):
        for order in itertools.permutations(["register", "enter", "rule", "unregister"]):
            for exit_at in range(order.index("enter") + 1, len(order) + 1):
                steps = list(order)
                steps.insert(exit_at, "exit")
                yield [{"register": f"register:{register_preset}",
                        "enter": f"enter:{block_preset}"}.get(s, s) for s in steps] + ["unrule"]


def test_the_probe_a_rule_registered_inside_a_block_counts_after_it(clean_registrations):
    import torchprofile
    torchprofile_ext.register("full")
    with torchprofile_ext.registered("full"):
        register_rule(FOO)(lambda call: RULE)
    model = UsesFoo()
    with torch.no_grad():
        assert torchprofile.profile_macs(model, (X,)) == count_model(model, [X]).total_macs \
            == expected_macs("full", True)


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_expected_macs_is_what_count_model_says(clean_registrations, preset):
    model = UsesFoo()
    assert count_model(model, [X], preset=preset).total_macs == expected_macs(preset, False)
    register_rule(FOO)(foo_rule)
    assert count_model(model, [X], preset=preset).total_macs == expected_macs(preset, True)


@pytest.mark.parametrize("steps", list(every_order()), ids="-".join)
def test_torchprofile_follows_the_table_in_every_order(clean_registrations, steps):
    run_steps(steps, clean_registrations)


def random_walk(seed, length=12):
    # Nested blocks, presets switched, rules added and removed, in a seeded random order.
    rng, steps, depth, rule = random.Random(seed), [], 0, False
    for _ in range(length):
        choices = ["register:full", "register:paper", "enter:full", "enter:paper",
                   "unregister", "unrule" if rule else "rule"] + (["exit"] * 2 if depth else [])
        step = rng.choice(choices)
        depth += {"enter": 1, "exit": -1}.get(step.partition(":")[0], 0)
        rule = {"rule": True, "unrule": False}.get(step, rule)
        steps.append(step)
    return steps + ["exit"] * depth


@pytest.mark.parametrize("seed", range(8))
def test_torchprofile_follows_the_table_through_nested_blocks(clean_registrations, seed):
    run_steps(random_walk(seed), clean_registrations)


# --- issue 22, probe 4: one check of what a rule returns, the same under every preset ---------

def count_foo(result, preset):
    """``(MACs counted for Foo, the reason it was left uncounted or None)`` by ``count_model``
    when Foo's rule returns ``result()``."""
    register_rule(FOO)(lambda call: result())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)       # the once-per-op warning
            report = count_model(UsesFoo(), [X], preset=preset)
    finally:
        unregister_rule(FOO)
    reasons = [u.reason for u in report.uncounted if u.op == FOO]
    return report.by_operator.get("PythonOp.Foo", 0), (reasons[0] if reasons else None)


@pytest.mark.parametrize("result, reason", [
    (lambda: Cost(core=True), "Cost.core must be an int >= 0, not True"),
    (lambda: Cost(core=1, elementwise=-5), "Cost.elementwise must be an int >= 0, not -5"),
    (lambda: True, "returned True"),
    (lambda: 9.0, "returned 9.0"),
    (lambda: -1, "returned -1"),
    (lambda: None, "returned None"),
    (lambda: torch.tensor(9), "returned tensor(9)"),
])
def test_a_result_that_is_no_count_is_refused_under_every_preset(clean_registrations, result,
                                                                  reason):
    for preset in ("full", "paper"):
        macs, why = count_foo(result, preset)
        assert macs == 0 and why is not None and reason in why, (preset, why)


@pytest.mark.parametrize("result, macs", [
    (lambda: np.int64(9), {"full": 9, "paper": 9}),
    (lambda: Cost(core=np.int64(9)), {"full": 9, "paper": 9}),
    (lambda: Cost(core=np.int32(2), elementwise=np.int64(7)), {"full": 9, "paper": 2}),
    (lambda: 0, {"full": 0, "paper": 0}),
])
def test_numpy_integers_count_bare_or_in_a_cost(clean_registrations, result, macs):
    for preset in ("full", "paper"):
        assert count_foo(result, preset) == (macs[preset], None)


def test_cost_fields_are_python_ints():
    cost = Cost(core=np.int64(2 ** 40), elementwise=np.uint8(3))
    assert type(cost.core) is int and type(cost.elementwise) is int
    assert (cost + Cost(core=1)).macs("full") == 2 ** 40 + 4


@pytest.mark.parametrize("rule, match", [
    (42, "must be a function of one OpCall returning MACs, not 42"),
    ("aten::mul", "must be a function of one OpCall"),
    (lambda: 5, "must take one argument"),
    (lambda call, extra: 5, "must take one argument"),
])
def test_a_rule_that_cannot_be_called_is_refused_at_registration(clean_registrations, rule,
                                                                  match):
    with pytest.raises(TypeError, match=match):
        register_rule(FOO)(rule)
    assert FOO not in vmamba_handles


def test_register_rule_without_parentheses_says_how_to_use_it():
    with pytest.raises(TypeError, match=r"@register_rule\('prim::PythonOp.MyKernel'\)"):
        @register_rule
        def my_kernel(call):
            return 1


# --- issue 22, probe 2: the CLI never shows a traceback: one line, status 2 --------------------

def hostile_modules(directory):
    """Modules that fail to import, as a user's might: a SyntaxError and a RuntimeError."""
    (directory / "hostile_syntax.py").write_text("def broken(:\n    pass\n")
    (directory / "hostile_runtime.py").write_text(
        'raise RuntimeError("module-level failure\\nsecond line")\n')


CLI_PROBES = [
    (["vit", "--input-shape", "²", "4"], "bad input shape '² 4'"),
    (["vit", "--input-shape", "1", "٣", "4", "4"], "bad input shape"),      # an Arabic-Indic 3
    (["vit", "--input-shape", str(2 ** 63), "4"], "a size is at most"),
    (["hostile_syntax:f", "--input-shape", "2"],
     "cannot load 'hostile_syntax:f': SyntaxError: invalid syntax (hostile_syntax.py, line 1)"),
    (["hostile_runtime:f", "--input-shape", "2"],
     "cannot load 'hostile_runtime:f': RuntimeError: module-level failure"),
    ([".x:f", "--input-shape", "2"], "'.x' is a relative module name"),
    (["tests.test_hostile:raising_model", "--input-shape", "1000000000000", "4"],
     "input shape (1000000000000, 4) needs 16,000,000,000,000 bytes of torch.float32 on cpu: "
     "count shapes only with --device meta"),
    (["compare", "tests.test_hostile:raising_model", "--input-shape", "2", "4"],
     "every tool failed on 'tests.test_hostile:raising_model'; the first: RuntimeError: boom"),
]


@pytest.mark.parametrize("argv, reason", CLI_PROBES, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_cli_probes_are_one_line_and_status_2(capsys, monkeypatch, tmp_path, argv, reason):
    hostile_modules(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and reason in err
    assert "second line" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv, reason", CLI_PROBES[:1] + CLI_PROBES[-1:])
def test_cli_json_errors_are_json_on_stdout(capsys, argv, reason):
    assert main(argv + ["--format", "json"]) == 2
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert error["status"] == 2 and reason in error["error"]
    assert err == f"error: {error['error']}\n"


def test_cli_allocation_failure_points_to_meta(capsys, monkeypatch):
    # Where the machine's memory is unknown, or the shape fits it but malloc fails anyway.
    import fvcore_ext.cli.main as cli

    def refuse(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 64 bytes.")

    monkeypatch.setattr(cli, "_physical_memory", lambda: None)
    monkeypatch.setattr(cli.torch, "randn", refuse)
    assert main(["tests.test_hostile:raising_model", "--input-shape", "4", "4"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("error: input shape (4, 4) needs 64 bytes of torch.float32 on "
                                 "cpu: count shapes only with --device meta\n")


def test_cli_huge_shape_counts_on_meta(capsys):
    assert main(["tests.test_hostile:Linear", "--input-shape", "1000000000000", "4",
                 "--device", "meta", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_macs"] == 1000000000000 * 4 * 3


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_cli_output_closed_early_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["tests.test_hostile:Linear", "--input-shape", "2", "4", "--format",
                 "json"]) == 2
    assert capsys.readouterr().err == ("error: stdout was closed before the output was "
                                       "written (broken pipe)\n")


def test_cli_piped_into_a_reader_that_left():
    # `python -m fvcore_ext ... | head -c 10` where head has gone before the report is printed.
    child = subprocess.Popen([sys.executable, "-m", "fvcore_ext", "tests.test_hostile:Linear",
                              "--input-shape", "2", "4", "--format", "json"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()                      # the reader leaves at once
    err = child.stderr.read().decode()
    assert child.wait() == 2
    assert err == "error: stdout was closed before the output was written (broken pipe)\n"


# --- issue 22, probe 3: clear errors ------------------------------------------------------------

def test_get_flops_names_a_missing_config_even_without_mmseg(capsys, monkeypatch):
    from fvcore_ext import get_flops
    monkeypatch.setitem(sys.modules, "mmseg", None)            # as where mmseg is not installed
    assert get_flops.main(["no/such/config.py"]) == 2
    assert capsys.readouterr() == ("", "error: FileNotFoundError: config file "
                                       "no/such/config.py does not exist\n")
    assert get_flops.main(["no/such/config.py", "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "FileNotFoundError: config file no/such/config.py does "
                                        "not exist", "status": 2}
    assert err.count("\n") == 1


class Nearest(nn.Module):
    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("shape", [(0, 3, 4), (0, 3, 4, 4), (0, 3, 4, 4, 4), (2, 3, 4, 4)])
def test_meta_zero_batch_nearest_counts_as_on_cpu(capsys, mode, shape):
    # torch's Meta kernels of upsample_nearest*d / _upsample_nearest_exact*d refuse a
    # zero-size batch (their check takes an int for a bool); meta_tracing puts a kernel that
    # computes the output shape in their place, so meta counts what CPU counts (0 here)
    model = nn.Upsample(scale_factor=2, mode=mode)
    x = torch.randn(shape)
    for engine in ("jit", "dispatch"):
        cpu = count_model(model, [x], engine=engine)
        meta = count_model(model, [x], device="meta", engine=engine)
        assert meta.total_macs == cpu.total_macs == (0 if shape[0] == 0 else
                                                     x.numel() * 2 ** (len(shape) - 2))
        assert meta.by_operator == cpu.by_operator
    assert torchprofile_ext.profile_macs(model, (x,), device="meta") == cpu.total_macs
    assert main(["tests.test_hostile:Nearest", "--input-shape", *map(str, (0, 3, 4, 4)),
                 "--device", "meta"]) == 0
    capsys.readouterr()


def test_run_says_when_a_script_exits_with_a_status(capsys):
    from fvcore_ext import run
    script = os.path.join(ROOT, "tests", "run_scripts", "exits.py")
    assert run.main([script, "exit", "3"]) == 3
    assert capsys.readouterr() == ("", f"python -m fvcore_ext.run: {script} exited with "
                                       f"status 3 (sys.exit)\n")


def test_census_errors_are_one_line_and_json_too(capsys, monkeypatch):
    from fvcore_ext.cli.census import main as census_main
    assert census_main(["vit", "--input-shape", "²", "4", "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"] in err and err.count("\n") == 1
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert census_main(["tests.test_hostile:Linear", "--input-shape", "2", "4"]) == 2
    assert capsys.readouterr().err == ("error: stdout was closed before the output was "
                                       "written (broken pipe)\n")


def test_get_flops_output_closed_early_is_one_line(capsys, monkeypatch):
    from fvcore_ext import get_flops
    config = os.path.join(ROOT, "tests", "mmseg_configs", "tiny_segmentor.py")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert get_flops.main([config, "--shape", "32", "--format", "json"]) == 2
    assert capsys.readouterr().err == ("error: stdout was closed before the output was "
                                       "written (broken pipe)\n")
