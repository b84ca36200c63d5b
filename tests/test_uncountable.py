"""A handle that lacks what it needs warns once (naming the op and what was missing), counts 0
and records the op; strict mode raises instead. Never a crash, never a guess."""
import warnings

import pytest
import torch
from torch import nn

from fvcore_ext import UncountableOpError, count_model, make_handles
from fvcore_ext.diagnostics import collect_ops

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
