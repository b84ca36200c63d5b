"""A user's own op, counted once for both tools with ``fvcore_ext.register_rule``: tested the way
a user would use it, in fvcore, mmengine, count_model, the census and torchprofile."""
import warnings

import pytest
import torch
import torchprofile
from fvcore.nn import FlopCountAnalysis
from mmengine.analysis import FlopAnalyzer
from torch import nn

import torchprofile_ext
from fvcore_ext import (Cost, UncountableOpError, count_model, paper_handles, register_rule,
                        unregister_rule, vmamba_handles)
from fvcore_ext.cli.census import census

B, L, K, N = 2, 8, 16, 12
OP = "prim::PythonOp.FusedGLU"


class FusedGLU(torch.autograd.Function):
    """A user's kernel: (x @ w) split in two halves a, b; returns a * sigmoid(b)."""

    @staticmethod
    def forward(ctx, x, w):
        a, b = (x @ w).chunk(2, dim=-1)
        return a * torch.sigmoid(b)


class GLUBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(K, 2 * N))
        self.out = nn.Linear(N, K)

    def forward(self, x):                     # (B, L, K)
        return self.out(FusedGLU.apply(x, self.w))


MATMUL = B * L * K * 2 * N                    # x @ w
GATE = 2 * B * L * N                          # sigmoid and product, per output element
OUT = B * L * N * K                           # the nn.Linear after the kernel


def fused_glu_macs(call):
    x, w = call.shape(0), call.shape(1)
    out = call.output_shape()
    return Cost(core=x[0] * x[1] * w[0] * w[1], elementwise=2 * out[0] * out[1] * out[2])


@pytest.fixture
def rule():
    register_rule(OP)(fused_glu_macs)
    yield
    unregister_rule(OP)
    torchprofile_ext.unregister()


def fvcore_total(handles, x):
    analysis = FlopCountAnalysis(GLUBlock(), (x,)).set_op_handle(**handles)
    analysis.unsupported_ops_warnings(False)
    return analysis.total(), dict(analysis.unsupported_ops())


def test_unknown_until_registered_then_counted_in_fvcore_and_mmengine():
    x = torch.randn(B, L, K)
    full, paper = vmamba_handles, paper_handles      # dicts taken before registering
    assert fvcore_total(full, x) == (OUT, {OP: 1})
    register_rule(OP)(fused_glu_macs)
    try:
        assert fvcore_total(full, x) == (OUT + MATMUL + GATE, {})
        assert fvcore_total(paper, x) == (OUT + MATMUL, {})
        analyzer = FlopAnalyzer(GLUBlock(), (x,)).set_op_handle(**full)
        assert analyzer.total() == OUT + MATMUL + GATE
    finally:
        unregister_rule(OP)
    assert fvcore_total(full, x) == (OUT, {OP: 1})


def test_count_model_census_and_per_operator_name(rule):
    x = torch.randn(B, L, K)
    report = count_model(GLUBlock(), [x])
    assert report.by_operator == {"linear": OUT, "PythonOp.FusedGLU": MATMUL + GATE}
    assert report.unsupported_ops == {}
    assert {o.op: o.family for o in census(GLUBlock(), x).ops}[OP] == "custom"


def test_torchprofile_counts_the_same(rule):
    x = torch.randn(B, L, K)
    for preset, expected in (("full", OUT + MATMUL + GATE), ("paper", OUT + MATMUL)):
        results = torchprofile_ext.profile_macs(GLUBlock(), (x,), preset, reduction=None)
        assert sum(results.values()) == expected
        assert torchprofile_ext.macs_by_operator(results)["PythonOp.FusedGLU"] == \
            expected - OUT


@pytest.mark.parametrize("preset, expected", [("full", OUT + MATMUL + GATE),
                                              ("paper", OUT + MATMUL)])
def test_a_torchprofile_registered_earlier_picks_the_rule_up_at_once(preset, expected):
    x = torch.randn(B, L, K)
    torchprofile_ext.register(preset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torchprofile.profile_macs(GLUBlock(), (x,)) == OUT
            register_rule(OP)(fused_glu_macs)              # plain torchprofile, no re-register
            assert torchprofile.profile_macs(GLUBlock(), (x,)) == expected
            unregister_rule(OP)
            assert torchprofile.profile_macs(GLUBlock(), (x,)) == OUT
    finally:
        if OP in vmamba_handles:
            unregister_rule(OP)
        torchprofile_ext.unregister()


def test_an_op_named_twice_is_registered_and_removed_once():
    register_rule(OP, OP)(fused_glu_macs)
    assert OP in vmamba_handles
    unregister_rule(OP, OP)
    assert OP not in vmamba_handles and OP not in paper_handles


def test_an_int_counts_under_both_presets():
    @register_rule("prim::PythonOp.FusedGLU")
    def matmul_only(call):
        return call.shape(0)[0] * call.shape(0)[1] * call.shape(1)[0] * call.shape(1)[1]

    try:
        for preset in ("full", "paper"):
            assert count_model(GLUBlock(), [torch.randn(B, L, K)], preset=preset
                               ).by_operator["PythonOp.FusedGLU"] == MATMUL
    finally:
        unregister_rule(OP)


def test_replacing_a_builtin_rule_and_restoring_it():
    x = torch.randn(4, 8)
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU())
    assert count_model(model, [x]).by_operator["gelu"] == 32
    with pytest.raises(ValueError, match="already has a rule"):
        register_rule("aten::gelu")(lambda call: 0)
    register_rule("aten::gelu", replace=True, family="elementwise")(
        lambda call: Cost(elementwise=8 * 4 * 8))           # erf-based gelu, 8 ops/element
    try:
        assert count_model(model, [x]).by_operator["gelu"] == 256
    finally:
        unregister_rule("aten::gelu")
    assert count_model(model, [x]).by_operator["gelu"] == 32


@pytest.mark.parametrize("result, shown", [(lambda: 1.5e3, "returned 1500.0"),
                                            (lambda: -3, "returned -3"),
                                            (lambda: Cost(core=2.5), "not 2.5"),
                                            (lambda: Cost(elementwise=-4), "not -4")])
def test_a_rule_that_returns_no_count_of_macs_is_uncounted_and_named(result, shown):
    register_rule(OP)(lambda call: result())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # warned once per op kind
            report = count_model(GLUBlock(), [torch.randn(B, L, K)])
        (uncounted,) = report.uncounted
        assert uncounted.op == OP and shown in uncounted.reason
        assert report.total_macs == OUT
        with pytest.raises(UncountableOpError, match=shown):
            count_model(GLUBlock(), [torch.randn(B, L, K)], strict=True)
    finally:
        unregister_rule(OP)


@pytest.mark.parametrize("names, match", [((), "at least one"), (("FusedGLU",), "namespace"),
                                          ((OP,), "unknown family")])
def test_bad_registrations(names, match):
    with pytest.raises(ValueError, match=match):
        register_rule(*names, family="mystery" if names == (OP,) else "custom")
    assert OP not in vmamba_handles
    with pytest.raises(ValueError, match="no rule was registered"):
        unregister_rule("prim::PythonOp.Nothing")
