"""torchprofile_ext: registration that is explicit, idempotent and reversible, PythonOps
counted by class name, and torchprofile's own formulas replaced where they differ."""
import warnings

import pytest
import torch
import torchprofile
from fvcore.nn import FlopCountAnalysis
from torch import nn

import torchprofile_ext
from fvcore_ext import UncountableOpError, vmamba_handles
from torchprofile_ext._compat import HANDLERS_ATTR, profile_module
from fvcore_ext.reference_models import build
from tests.expected import EXPECTED


def bound():
    return profile_module.trace, getattr(profile_module, HANDLERS_ATTR)


@pytest.fixture(autouse=True)
def clean_torchprofile():
    original = bound()
    yield
    torchprofile_ext.unregister()
    assert bound() == original


def test_register_is_idempotent_and_unregister_restores_the_same_objects():
    original_trace, original_table = bound()
    torchprofile_ext.register()
    first = bound()
    torchprofile_ext.register()
    assert torchprofile_ext.is_registered()
    assert bound()[0] is first[0] and bound()[1] is first[1]
    assert bound()[0] is torchprofile_ext.trace
    torchprofile_ext.unregister()
    assert bound()[0] is original_trace and bound()[1] is original_table
    assert not torchprofile_ext.is_registered()
    torchprofile_ext.unregister()          # a second unregister is a no-op
    assert bound()[0] is original_trace


def test_register_never_modifies_torchprofile_table():
    original_table = getattr(profile_module, HANDLERS_ATTR)
    snapshot = dict(original_table) if isinstance(original_table, dict) else tuple(original_table)
    torchprofile_ext.register("paper")
    torchprofile_ext.unregister()
    assert original_table == snapshot


def test_contexts_nest_and_restore():
    model, inputs = build("vit")
    full = sum(EXPECTED["vit"]["full"].values())
    paper = sum(EXPECTED["vit"]["paper"].values())
    original = bound()
    with torchprofile_ext.registered("full"):
        assert torchprofile.profile_macs(model, inputs) == full
        inner_entry = bound()
        with torchprofile_ext.registered("paper"):
            assert torchprofile.profile_macs(model, inputs) == paper
        assert bound() == inner_entry
        assert torchprofile.profile_macs(model, inputs) == full
    assert bound() == original
    assert not torchprofile_ext.is_registered()


def test_context_restores_an_earlier_registration():
    torchprofile_ext.register("paper")
    before = bound()
    with torchprofile_ext.registered("full"):
        pass
    assert bound() == before and torchprofile_ext.is_registered()


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_profile_macs_convenience(preset):
    model, inputs = build("mamba")
    assert torchprofile_ext.profile_macs(model, inputs, preset) == \
        sum(EXPECTED["mamba"][preset].values())
    assert not torchprofile_ext.is_registered()


def test_replaces_torchprofile_formulas_that_differ():
    # plain torchprofile: LayerNorm 1x, BatchNorm 1x, transposed conv over its output...
    model, inputs = build("cnn")
    plain = torchprofile.profile_macs(model, inputs)
    ours = torchprofile_ext.profile_macs(model, inputs)
    assert ours == sum(EXPECTED["cnn"]["full"].values())
    assert plain != ours


class MyKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        return x * scale


class UsesKernel(nn.Module):
    def forward(self, x):
        return MyKernel.apply(x, 2.0)


def test_unregistered_pythonop_is_a_named_warning_in_both_tools():
    x = torch.randn(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert torchprofile_ext.profile_macs(UsesKernel(), (x,)) == 0
    assert any('No handlers found: "prim::PythonOp.MyKernel"' in str(w.message) for w in caught)
    analysis = FlopCountAnalysis(UsesKernel(), (x,)).set_op_handle(**vmamba_handles)
    assert analysis.total() == 0
    assert dict(analysis.unsupported_ops()) == {"prim::PythonOp.MyKernel": 1}


def test_pythonop_counted_by_class_name():
    model, inputs = build("vim_block")
    results = torchprofile_ext.profile_macs(model, inputs, reduction=None)
    operators = {node.operator for node in results}
    assert "prim::PythonOp.MambaInnerFnNoOutProj" in operators
    assert torchprofile_ext.macs_by_operator(results) == EXPECTED["vim_block"]["full"]


def test_fused_attention_under_no_grad_does_not_crash():
    # torchprofile's own trace fails on the dtype-less weights output of the fused kernel.
    model, inputs = build("mha_weights")
    with torch.no_grad():
        assert torchprofile_ext.profile_macs(model, inputs) == \
            sum(EXPECTED["mha_weights"]["full"].values())


def test_strict_mode_raises():
    from tests.test_uncountable import OddScan
    with pytest.raises(UncountableOpError, match="SelectiveScanFn"):
        torchprofile_ext.profile_macs(OddScan(), (torch.randn(1, 8, 5),), strict=True)
    assert not torchprofile_ext.is_registered()


def test_handler_on_a_foreign_node_reports_instead_of_guessing():
    handler = torchprofile_ext.make_handlers("full")["aten::mul"]

    class Node:
        operator, scope = "aten::mul", "block"

    with pytest.raises(UncountableOpError, match="not traced by torchprofile_ext"):
        torchprofile_ext.make_handlers("full", strict=True)["aten::mul"](Node())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert handler(Node()) == 0
