"""A handle that lacks what it needs warns once (naming the op and what was missing), counts 0
and records the op; strict mode raises instead. Never a crash, never a guess."""
import warnings

import pytest
import torch
from torch import nn

from fvcore_ext import UncountableOpError, count_model, make_handles
from fvcore_ext.ops.diagnostics import collect_ops

INCOMPLETE = """
graph(%x : Tensor, %y : Tensor):
  %z : Tensor = aten::mul(%x, %y)
  return (%z)
"""


def _mul_node():
    graph = torch._C.parse_ir(INCOMPLETE)
    return next(n for n in graph.nodes() if n.kind() == "aten::mul")


def test_incomplete_tensor_type_warns_once_and_counts_zero():
    node = _mul_node()
    handle = make_handles("full")["aten::mul"]
    with collect_ops() as log, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = handle(list(node.inputs()), list(node.outputs()))
        second = handle(list(node.inputs()), list(node.outputs()))
    assert first == second == {"mul": 0}
    assert [(u.op, u.calls) for u in log.uncounted] == [("aten::mul", 2)]
    assert "no shape recorded for output 0" in log.uncounted[0].reason
    messages = [str(w.message) for w in caught if "aten::mul" in str(w.message)]
    assert len(messages) <= 1  # once per op kind per process (0 if an earlier test warned)


def test_strict_mode_raises_with_the_facts():
    node = _mul_node()
    handle = make_handles("full", strict=True)["aten::mul"]
    with pytest.raises(UncountableOpError) as error:
        handle(list(node.inputs()), list(node.outputs()))
    assert error.value.op == "aten::mul"
    assert "no shape recorded" in error.value.reason


class SelectiveScanFn(torch.autograd.Function):
    """A Function with mamba-ssm's class name but an argument layout nobody knows."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, last_state, extra, more):
        return u.clone()


class OddScan(nn.Module):
    def forward(self, u):
        A = torch.ones(u.shape[1], 4)
        BC = torch.ones(u.shape[0], 4, u.shape[2])
        return SelectiveScanFn.apply(u, u, A, BC, BC, None, None, None, True, False, 1, 2)


def test_unknown_pythonop_layout_is_reported_not_guessed():
    report = count_model(OddScan(), torch.randn(1, 8, 5))
    assert report.total_macs == 0
    (op,) = report.uncounted
    assert op.op == "prim::PythonOp.SelectiveScanFn"
    assert "unknown argument layout: 12 arguments" in op.reason
    with pytest.raises(UncountableOpError, match="SelectiveScanFn"):
        count_model(OddScan(), torch.randn(1, 8, 5), strict=True)


# Strict fails on every op left out, not only on a rule that cannot read its call: an op no
# rule counts (an unknown PythonOp, an unknown aten op) fails too, in fvcore (count_model),
# mmengine (get_model_complexity_info) and torchprofile (profile_macs, register).

class MysteryKernel(torch.autograd.Function):
    """A custom kernel the pack knows nothing about: prim::PythonOp.MysteryKernel."""

    @staticmethod
    def forward(ctx, x, w):
        return x @ w


class UsesMysteryKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.inner = nn.Sequential(nn.Identity())

    def forward(self, x):
        return self.proj(MysteryKernel.apply(x, self.proj.weight))


class UsesCdist(nn.Module):
    """aten::cdist: real arithmetic with no rule in fvcore, torchprofile or the pack."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)

    def forward(self, x):
        return self.proj(torch.cdist(x, x))


UNKNOWN_CASES = [(UsesMysteryKernel, "prim::PythonOp.MysteryKernel", ""),
                 (UsesCdist, "aten::cdist", "")]


def test_the_unknown_ops_have_no_rule_anywhere():
    import torchprofile
    from fvcore.nn import FlopCountAnalysis
    from fvcore_ext.ops import OP_TABLE

    for model, op, _ in UNKNOWN_CASES:
        assert op not in OP_TABLE
        analysis = FlopCountAnalysis(model(), torch.randn(1, 6, 6))
        analysis.unsupported_ops_warnings(False)
        analysis.total()
        assert op in analysis.unsupported_ops()
    tables = getattr(torchprofile.profile, "HANDLER_MAP", None)
    if tables is not None:      # 0.1.x (0.0.4's tuple is checked by the strict test below)
        assert "aten::cdist" not in tables


@pytest.mark.parametrize("model, op, scope", UNKNOWN_CASES)
def test_count_model_strict_fails_on_an_unknown_op(model, op, scope):
    x = torch.randn(1, 6, 6)
    report = count_model(model(), x)
    assert report.unsupported_ops == {op: 1}
    with pytest.raises(UncountableOpError) as error:
        count_model(model(), x, strict=True)
    assert error.value.op == op and error.value.unknown and error.value.scope == scope
    assert "no rule" in error.value.reason and "register_rule" in error.value.reason


def test_strict_names_the_innermost_module_and_every_unknown_op():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(UsesCdist())

        def forward(self, x):
            return MysteryKernel.apply(self.block(x), x)

    with pytest.raises(UncountableOpError) as error:
        count_model(Outer(), torch.randn(1, 6, 6), strict=True)
    assert error.value.op == "aten::cdist" and error.value.scope == "block.0"
    assert "also without a rule: prim::PythonOp.MysteryKernel x1" in str(error.value)


def test_strict_raises_with_the_model_restored_to_train_mode():
    model = UsesCdist().train()
    with pytest.raises(UncountableOpError):
        count_model(model, torch.randn(1, 6, 6), strict=True)
    assert model.training


@pytest.mark.parametrize("model, op, scope", UNKNOWN_CASES)
def test_torchprofile_strict_fails_on_an_unknown_op(model, op, scope):
    import torchprofile
    import torchprofile_ext

    x = torch.randn(1, 6, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert torchprofile_ext.profile_macs(model(), (x,)) == 6 * 6 * 6   # proj only
    assert any(f'No handlers found: "{op}"' in str(w.message) for w in caught)
    with pytest.raises(UncountableOpError) as error:
        torchprofile_ext.profile_macs(model(), (x,), strict=True)
    assert error.value.op == op and error.value.unknown
    # registered for a while: torchprofile's own profile_macs is strict too, then restored
    with torchprofile_ext.registered("full", strict=True):
        with pytest.raises(UncountableOpError, match=op):
            torchprofile.profile_macs(model(), (x,))
    assert not torchprofile_ext.is_registered()


def test_torchprofile_strict_fails_on_an_uncountable_op():
    import torchprofile_ext

    assert torchprofile_ext.profile_macs(OddScan(), (torch.randn(1, 8, 5),)) == 0
    with pytest.raises(UncountableOpError, match="unknown argument layout") as error:
        torchprofile_ext.profile_macs(OddScan(), (torch.randn(1, 8, 5),), strict=True)
    assert not error.value.unknown


def test_torchprofile_strict_counts_a_covered_model_as_usual():
    import torchprofile_ext
    from fvcore_ext.reference_models import build

    model, inputs = build("mamba")
    assert torchprofile_ext.profile_macs(model, inputs, strict=True) == \
        torchprofile_ext.profile_macs(model, inputs)
    assert count_model(model, inputs, strict=True).total_macs == \
        count_model(model, inputs).total_macs


def test_mmengine_strict_fails_on_an_unknown_op():
    pytest.importorskip("mmengine")
    from fvcore_ext.mmseg.mmengine_analysis import get_model_complexity_info

    x = torch.randn(1, 6, 6)
    result = get_model_complexity_info(UsesCdist(), inputs=(x,), show_table=False,
                                       show_arch=False)
    assert result["unsupported_ops"] == {"aten::cdist": 1}
    with pytest.raises(UncountableOpError, match="aten::cdist"):
        get_model_complexity_info(UsesCdist(), inputs=(x,), show_table=False,
                                  show_arch=False, strict=True)
