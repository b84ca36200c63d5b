"""The JIT engine: a model's ``torch.jit`` trace (:mod:`.tracing`), each graph node read as an
:class:`fvcore_ext.ops.OpCall` (:mod:`.reader`), and fvcore's handles built from the op table
(:mod:`.handles`). ``torchprofile_ext`` reads the same trace with the same reader.
"""
from .handles import make_handles, paper_handles, vmamba_handles

__all__ = ["make_handles", "paper_handles", "vmamba_handles"]
