"""The two torchprofile layouts the pack supports.

- 0.1.x: ``torchprofile.profile`` binds ``HANDLER_MAP`` (op name → handler or ``None``) and
  ``trace``; the IR classes live in ``torchprofile.ir``.
- 0.0.4: ``torchprofile.profile`` binds ``handlers`` (a tuple of ``(op names, handler)``, first
  match wins) and ``trace``; the IR classes live in ``torchprofile.utils.ir``.

Both lower-case ``Node.operator`` and ``Variable.dtype`` when set.
"""
from __future__ import annotations

import torchprofile.profile as profile_module

try:  # 0.1.x
    from torchprofile.ir import Graph, Node, Variable
except ImportError:  # 0.0.x
    from torchprofile.utils.ir import Graph, Node, Variable

__all__ = ["Graph", "HANDLERS_ATTR", "Node", "Variable", "merge_handlers", "profile_module",
           "set_operator"]

if hasattr(profile_module, "HANDLER_MAP"):
    HANDLERS_ATTR = "HANDLER_MAP"
elif hasattr(profile_module, "handlers"):
    HANDLERS_ATTR = "handlers"
else:  # pragma: no cover - a layout nobody has released yet
    raise ImportError("unsupported torchprofile version: torchprofile.profile has neither "
                      "HANDLER_MAP (0.1.x) nor handlers (0.0.x)")


class _TableWithFallback(dict):
    # 0.1.x asks `node.operator in HANDLER_MAP`, then `HANDLER_MAP[node.operator]`: every
    # operator is "in" the table, and one neither table names gets the fallback handler.
    def __init__(self, items, fallback):
        super().__init__(items)
        self.fallback = fallback

    def __contains__(self, operator) -> bool:
        return True

    def __missing__(self, operator):
        return self.fallback


class _AnyOperator:
    # 0.0.4 asks `node.operator in operators` for each entry, first match wins.
    def __contains__(self, operator) -> bool:
        return True

    def __repr__(self) -> str:
        return "<any operator>"


def merge_handlers(original, ours: dict, fallback=None):
    """torchprofile's handler table with ``ours`` (op name → handler) taking precedence, in the
    layout of the installed version. ``original`` is never modified.

    ``fallback`` (a handler, or ``None``): where torchprofile would skip an operator that
    neither table names (warning ``No handlers found``), it calls ``fallback`` instead; strict
    mode passes one that raises."""
    if HANDLERS_ATTR == "HANDLER_MAP":
        merged = dict(original)
        merged.update(ours)
        return merged if fallback is None else _TableWithFallback(merged, fallback)
    merged = tuple(ours.items()) + tuple(original)
    return merged if fallback is None else merged + ((_AnyOperator(), fallback),)


def set_operator(node, operator: str) -> None:
    """Set ``node.operator`` without torchprofile's lower-casing, so a PythonOp keeps its class
    name (``prim::PythonOp.SelectiveScanFn``)."""
    if isinstance(getattr(type(node), "operator", None), property):  # 0.0.x
        node._operator = operator
    else:  # 0.1.x dataclass: lower-cases only in __post_init__
        node.operator = operator
