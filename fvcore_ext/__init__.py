"""fvcore_ext: FLOP/MAC counting handles for fvcore and mmengine's ``FlopAnalyzer``.

``FlopCountAnalysis(model, x).set_op_handle(**vmamba_handles)`` counts SDPA, elementwise ops,
every upsampling mode and the Mamba kernels (``prim::PythonOp.<ClassName>``) under the
**full** preset; ``paper_handles`` gives the **paper** preset. Counts are MACs (fvcore's
"flops"); FLOPs = 2 x MACs. The rules are in :mod:`fvcore_ext.rules`, the contract in
``docs/conventions.md``. :func:`count_model` counts a model and reports what it left out
(``strict=True``: raises :class:`UncountableOpError` instead); :func:`register_rule` adds a
rule for your own op to both tools;
``python -m fvcore_ext census MODEL`` lists every op of a model with the rule that counts it.
"""
from .analysis import CountReport, count_model
from .custom_rules import register_rule, unregister_rule
from .diagnostics import UncountableOpError
from .handles import make_handles, paper_handles, vmamba_handles
from .meta import MetaDeviceError, meta_tracing
from .opcall import CannotCount, OpCall, TensorArg
from .rules import PRESETS, Cost

__all__ = ["CannotCount", "Cost", "CountReport", "MetaDeviceError", "OpCall", "PRESETS",
           "TensorArg", "UncountableOpError", "count_model", "make_handles", "meta_tracing",
           "paper_handles", "register_rule", "unregister_rule", "vmamba_handles"]
