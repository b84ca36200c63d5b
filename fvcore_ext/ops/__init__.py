"""The op table: every op name of ``docs/conventions.md`` mapped to the rule that counts it.

One concern: turning a call of an op (:class:`OpCall`: its shapes, dtypes and scalars, from any
engine) into MACs with the pure formulas of :mod:`fvcore_ext.rules`. The registry
(:mod:`.registry`: :class:`OpRule`, :data:`OP_TABLE`, :func:`add_rule`, :func:`counts`) is filled by
the readers, one module per family mirroring ``rules/`` (:mod:`.linalg`, :mod:`.convolution`,
:mod:`.recurrent`, :mod:`.spectral`, :mod:`.normalization`, :mod:`.resampling`,
:mod:`.elementwise`, :mod:`.attention`, :mod:`.mamba`, :mod:`.ssd`, the backward rules of fused ops
:mod:`.fused_backward` and the backward kernels :mod:`.backward`). Users add rules with
:func:`register_rule` (:mod:`.user_rules`); what no rule could count is reported through
:mod:`.diagnostics`.

This is the documented core every engine and adapter (the fvcore handles, the dispatch engine,
``torchprofile_ext``) builds on. It imports :mod:`fvcore_ext.rules` and nothing above it.
"""
# The family modules register their rules on import, in this order (the backward rules need
# their forward rules; the dispatch-only zero-cost ops skip names already counted).
from . import (linalg, convolution, recurrent, spectral, normalization, resampling,  # noqa: F401
               elementwise, attention, mamba, ssd, fused_backward, backward)
from .diagnostics import (NO_RULE, UncountableOpError, UncountedOp, collect_ops,
                          record_uncounted, record_zero, unknown_op_error)
from .elementwise import FVCORE_IGNORED_OPS, ZERO_COST_OPS
from .opcall import UNKNOWN, CannotCount, OpCall, TensorArg
from .registry import (BACKWARD_RULES, FAMILIES, OP_TABLE, BackwardRule, OpRule, add_rule,
                       backward_of, counts, families_by_name, on_table_change, remove_rule,
                       report_name, rule_result, table_version)
from .user_rules import register_rule, unregister_rule

__all__ = ["BACKWARD_RULES", "BackwardRule", "CannotCount", "FAMILIES", "FVCORE_IGNORED_OPS",
           "NO_RULE", "OP_TABLE", "OpCall", "OpRule", "TensorArg", "UNKNOWN",
           "UncountableOpError", "UncountedOp", "ZERO_COST_OPS", "add_rule", "backward_of",
           "collect_ops", "counts", "families_by_name", "on_table_change", "record_uncounted",
           "record_zero", "register_rule", "remove_rule", "report_name", "rule_result",
           "table_version", "unknown_op_error", "unregister_rule"]
