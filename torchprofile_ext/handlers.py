"""torchprofile handlers built from the pack's op table: the same rules fvcore's handles call.

A handler takes a torchprofile ``Node`` traced by :func:`torchprofile_ext.trace.trace` (which
attaches ``node.call``) and returns MACs, as torchprofile's own handlers do.
"""
from __future__ import annotations

import functools
from typing import Callable, Dict

from fvcore_ext.ops import (OP_TABLE, OpRule, record_uncounted, record_zero, report_name,
                            table_version, unknown_op_error)
from fvcore_ext.rules import check_preset

__all__ = ["make_handlers", "operator_name", "unknown_op_handler"]

Handler = Callable[[object], int]

PYTHON_OP = "prim::PythonOp."

_NOT_OUR_TRACE = "the node was not traced by torchprofile_ext (call torchprofile_ext.register())"


def _make_handler(rule: OpRule, preset: str, strict: bool) -> Handler:
    if rule.always_zero:
        def handler(node) -> int:
            record_zero(rule.kind)
            return 0

        handler.__name__ = handler.__qualname__ = f"{rule.name}_handler"
        return handler

    def handler(node) -> int:
        call = getattr(node, "call", None)
        if call is None:
            # Without the pack's trace there are no arguments to read: say so, never guess.
            record_uncounted(rule.kind, getattr(node, "scope", ""), _NOT_OUR_TRACE, strict)
            return 0
        return rule.count(call, preset, strict)

    handler.__name__ = handler.__qualname__ = f"{rule.name}_handler"
    return handler


# Graph structure, not ops: fvcore skips every prim:: node but PythonOp and CallFunction;
# torchprofile needs them listed (lower-cased, as its Node stores operators).
STRUCTURAL_OPS = ("prim::constant", "prim::listconstruct", "prim::listunpack",
                  "prim::tupleconstruct", "prim::tupleunpack", "prim::numtotensor",
                  "prim::getattr")


def unknown_op_handler(node) -> int:
    """Strict mode's handler for an operator no table names (torchprofile alone would warn
    ``No handlers found`` and skip it): raises :class:`fvcore_ext.UncountableOpError`
    (``unknown=True``) naming the node's operator and module scope. Never returns."""
    raise unknown_op_error({node.operator: 1}, getattr(node, "scope", "") or "")


def make_handlers(preset: str = "full", strict: bool = False) -> Dict[str, Handler]:
    """Handlers for every op of ``docs/conventions.md`` under ``preset`` ("full" or "paper"),
    keyed by op name as torchprofile_ext's trace names nodes (lower-case, except a PythonOp's
    class name), plus ``None`` for graph-structure nodes. Counts are MACs. With ``strict``, a
    handler whose rule cannot read its node raises :class:`fvcore_ext.UncountableOpError`
    (ops no rule names are caught by the table :func:`torchprofile_ext.register` binds, which
    sends them to :func:`unknown_op_handler`). ``ValueError`` on an unknown preset."""
    check_preset(preset)
    handlers: Dict[str, Handler] = dict.fromkeys(STRUCTURAL_OPS)
    for kind, rule in list(OP_TABLE.items()):
        handlers[_torchprofile_name(kind)] = _make_handler(rule, preset, strict)
    return handlers


def _torchprofile_name(kind: str) -> str:
    # torchprofile lower-cases operators; the pack's trace keeps a PythonOp's class name.
    return kind if kind.startswith(PYTHON_OP) else kind.lower()


def operator_name(operator: str) -> str:
    """The per-operator name fvcore uses for a node's ``operator`` (``aten::_convolution`` →
    ``conv``, ``aten::mul`` → ``mul``), so both tools' tables share keys."""
    rule = _rules_by_torchprofile_name(table_version()).get(operator)
    return rule.name if rule else report_name(operator)


@functools.lru_cache(maxsize=1)
def _rules_by_torchprofile_name(version: int) -> Dict[str, OpRule]:
    # Rebuilt when a rule is added (fvcore_ext.register_rule changes the table version).
    return {_torchprofile_name(kind): rule for kind, rule in list(OP_TABLE.items())}
