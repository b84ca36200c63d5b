"""The engines: three ways to run a model and read its ops, over one op table.

- :mod:`.analysis`: :func:`count_model` and :class:`CountReport`, the front door to every engine.
- :mod:`.jit`: the JIT engine: the model traced (``torch.jit``), its graph read by fvcore's
  ``FlopCountAnalysis`` with the pack's handles (``vmamba_handles``).
- :mod:`.dispatch`: the dispatch engine: ``FlopCounterMode`` at PyTorch's dispatcher, forward and
  backward, with boundaries for fused ops.

Engines import :mod:`fvcore_ext.ops`, :mod:`fvcore_ext.rules` and :mod:`fvcore_ext.runtime`;
never the tools or integrations above them.
"""
from .analysis import ENGINES, CountReport, count_model

__all__ = ["ENGINES", "CountReport", "count_model"]
