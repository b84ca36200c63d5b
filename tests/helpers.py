"""Test helpers: count a model with fvcore + the pack's handles, exactly as a user would; the
tiny Mixtral the MoE and meta tests share."""
from __future__ import annotations

import warnings

import torch
from fvcore.nn import FlopCountAnalysis

from fvcore_ext import make_handles


def fvcore_count(model, inputs, preset="full", grad=False):
    """``(total, by_operator)`` of ``FlopCountAnalysis(model, inputs)`` with the pack's handles
    for ``preset``; raises if fvcore reports an unsupported op."""
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**make_handles(preset))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.set_grad_enabled(grad), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        total = analysis.total()
    unsupported = dict(analysis.unsupported_ops())
    assert not unsupported, f"unsupported ops: {unsupported}"
    return total, dict(analysis.by_operator())


def count_in_both_tools(model, inputs, preset):
    """The :class:`fvcore_ext.CountReport` of ``model`` under ``preset``, after checking that
    nothing was unsupported or uncounted, that torchprofile (``torchprofile_ext``) gives the
    same total, and that the dispatch engine gives the same total and family totals."""
    import torchprofile_ext
    from fvcore_ext import count_model

    report = count_model(model, inputs, preset=preset)
    with torch.no_grad():
        torchprofile_total = torchprofile_ext.profile_macs(model.eval(), tuple(inputs), preset)
    assert report.unsupported_ops == {} and report.uncounted == []
    assert torchprofile_total == report.total_macs
    assert_engines_agree(report, count_model(model, inputs, preset=preset, engine="dispatch"))
    return report


def assert_engines_agree(jit, dispatch):
    """The dispatch engine's report equals the JIT engine's: total and every family total
    (CONVENTIONS.md "The dispatch engine"), nothing unknown or uncounted in either."""
    assert dispatch.unsupported_ops == {} and dispatch.uncounted == []
    assert (dispatch.total_macs, dispatch.by_family) == (jit.total_macs, jit.by_family)


def count_training(model, inputs, preset="full"):
    """The dispatch engine's training-step report of ``model`` (forward, then backward from
    the sum of its outputs), after checking that nothing was unknown or uncounted and that
    forward + backward is the total."""
    from fvcore_ext import count_model

    report = count_model(model, inputs, preset=preset, engine="dispatch", backward=True)
    assert report.unsupported_ops == {} and report.uncounted == []
    assert report.total_macs == report.forward_macs + report.backward_macs
    return report


def grad(*shape):
    """A random tensor that needs a gradient."""
    return torch.randn(*shape, requires_grad=True)


class Call(torch.nn.Module):
    """A module calling ``function(*inputs, **options)``: counts a bare function or
    Function."""

    def __init__(self, function, **options):
        super().__init__()
        self.function, self.options = function, options

    def forward(self, *inputs):
        return self.function(*inputs, **self.options)


def tiny_mixtral(experts_implementation):
    """transformers' ``MixtralModel`` with 2 layers, hidden 32, 4 experts of width 48 (2 per
    token), vocabulary 100, running its experts as ``experts_implementation``
    (``"grouped_mm"``, ``"batched_mm"`` or ``"eager"``); seeded."""
    from transformers import MixtralConfig, MixtralModel
    config = MixtralConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                           num_experts_per_tok=2, vocab_size=100)
    config._experts_implementation = experts_implementation
    torch.manual_seed(0)
    return MixtralModel(config)
