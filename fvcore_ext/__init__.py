"""fvcore_ext: FLOP/MAC counting handles for fvcore and mmengine's ``FlopAnalyzer``.

``FlopCountAnalysis(model, x).set_op_handle(**vmamba_handles)`` counts SDPA, elementwise ops,
every upsampling mode and the Mamba kernels (``prim::PythonOp.<ClassName>``) under the
**full** preset; ``paper_handles`` gives the **paper** preset. Counts are MACs (fvcore's
"flops"); FLOPs = 2 x MACs. The rules are in :mod:`fvcore_ext.rules`, the contract in the
README.
"""
from .analysis import CountReport, count_model
from .diagnostics import UncountableOpError
from .handles import make_handles, paper_handles, vmamba_handles
from .rules import PRESETS, Cost

__all__ = ["Cost", "CountReport", "PRESETS", "UncountableOpError", "count_model",
           "make_handles", "paper_handles", "vmamba_handles"]
