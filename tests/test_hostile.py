"""Hostile models: each gives a correct count in both tools or a clear error, never a
traceback from inside the pack."""
import pytest
import torch
from torch import nn

import torchprofile_ext
from fvcore_ext import count_model
from fvcore_ext.cli import main


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
