"""The JIT engine: a model's ``torch.jit`` trace (:mod:`.tracing`), each graph node read as an
:class:`fvcore_ext.ops.OpCall` (:mod:`.reader`), and fvcore's handles built from the op table
(:mod:`.handles`). ``torchprofile_ext`` reads the same trace with the same reader.
"""
from .handles import make_handles, paper_handles, vmamba_handles
from .reader import op_kind, read_call, read_node
from .tracing import TraceAdapter, exclusive_trace, unwrap_name, without_fast_paths

__all__ = ["TraceAdapter", "exclusive_trace", "make_handles", "without_fast_paths", "op_kind", "paper_handles", "read_call", "read_node",
           "unwrap_name", "vmamba_handles"]
