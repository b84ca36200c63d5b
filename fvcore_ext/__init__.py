"""fvcore_ext: FLOP/MAC counting handles for fvcore and mmengine's ``FlopAnalyzer``.

``FlopCountAnalysis(model, x).set_op_handle(**vmamba_handles)`` counts SDPA, elementwise ops,
every upsampling mode and the Mamba kernels (``prim::PythonOp.<ClassName>``) under the
**full** preset; ``paper_handles`` gives the **paper** preset. Counts are MACs (fvcore's
"flops"); FLOPs = 2 x MACs. The rules are in :mod:`fvcore_ext.rules`, the op table in
:mod:`fvcore_ext.ops`, the contract in ``docs/conventions.md``, the layout in
``docs/architecture.md``. :func:`count_model` counts a model and reports what it left out
(``strict=True``: raises :class:`UncountableOpError` instead); :func:`counting` counts whatever
runs in a ``with`` block, training steps included; :func:`count_hf` counts a Hugging Face model
from its config; :func:`register_rule` adds a rule for your own op to every engine;
``python -m fvcore_ext census MODEL`` lists every op of a model with the rule that counts it.
"""
from .engines.analysis import CountReport, count_model
from .engines.dispatch import counting
from .engines.jit.handles import make_handles, paper_handles, vmamba_handles
from .ops import (CannotCount, OpCall, TensorArg, UncountableOpError, register_rule,
                  unregister_rule)
from .rules import PRESETS, Cost
from .runtime.meta import MetaDeviceError, meta_tracing

__all__ = ["CannotCount", "Cost", "CountReport", "MetaDeviceError", "OpCall", "PRESETS",
           "TensorArg", "UncountableOpError", "count_hf", "count_model", "counting",
           "make_handles", "meta_tracing", "paper_handles", "register_rule", "unregister_rule",
           "vmamba_handles"]


def __getattr__(name: str):
    # count_hf imports the hf integration (and transformers when it runs) only when asked for.
    if name == "count_hf":
        from .hf import count_hf
        return count_hf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
