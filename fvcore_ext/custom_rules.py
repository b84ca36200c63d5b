"""Count your own op once, in both tools: :func:`register_rule`.

A custom kernel (a ``torch.autograd.Function`` of your own, traced as
``prim::PythonOp.<ClassName>``) or an aten op the pack has no rule for is "unknown" and counts 0.
A function registered here is added to the pack's op table, the one table both adapters are
built from, so from then on it counts in fvcore and mmengine (``make_handles``,
``vmamba_handles``, ``paper_handles``, ``count_model``, the CLI) and in torchprofile
(``torchprofile_ext``), with the same number::

    from fvcore_ext import register_rule

    @register_rule("prim::PythonOp.FusedGLU")
    def fused_glu(call):                     # call: fvcore_ext.OpCall
        x, w = call.shape(0), call.shape(1)  # (..., K) and (K, 2N)
        return math.prod(x[:-1]) * w[0] * w[1]   # MACs of x @ w

The function gets an :class:`~fvcore_ext.opcall.OpCall` (arguments in call order, shapes,
scalars, outputs) and returns MACs: an ``int`` is counted under both presets, a
:class:`~fvcore_ext.rules.Cost` splits them into ``core`` (both presets) and ``elementwise``
(the **full** preset only). What it returns passes the one check every rule's result passes
(:func:`fvcore_ext.op_table.rule_result`), the same under both presets: a ``bool``, a float, a
negative number or anything else is no count of MACs. A rule that raises, or returns no count,
is reported as uncounted for that op, with the reason, like a built-in rule (``strict`` raises
instead). What can be checked before counting is checked at registration: the decorated object
must be a function of one argument.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Union

from .op_table import FAMILIES, OP_TABLE, OpRule, add_rule, check_reader, remove_rule
from .opcall import OpCall
from .rules import Cost

__all__ = ["register_rule", "unregister_rule"]

RuleFunction = Callable[[OpCall], Union[int, Cost]]

# op name -> the built-in rule a user rule replaced (None: there was none)
_replaced: Dict[str, Optional[OpRule]] = {}


def register_rule(*op_names: str, family: str = "custom", name: Optional[str] = None,
                  replace: bool = False) -> Callable[[RuleFunction], RuleFunction]:
    """Decorator: count every op in ``op_names`` with the decorated function, in fvcore,
    mmengine and torchprofile alike.

    Args:
        op_names: op names as the trace shows them: ``"prim::PythonOp.MyAttn"`` for an
            autograd Function ``MyAttn``, ``"aten::my_op"``, ``"mylib::fused_mlp"``.
        family: what the rule counts, as :func:`fvcore_ext.census.census` reports it; one of
            :data:`fvcore_ext.op_table.FAMILIES` (default ``"custom"``).
        name: the key in per-operator tables (default: the op name without its namespace,
            ``PythonOp.MyAttn``).
        replace: allow replacing a rule the pack already has (it comes back with
            :func:`unregister_rule`).

    The function takes an :class:`fvcore_ext.opcall.OpCall` and returns MACs: an ``int``
    (both presets) or a :class:`fvcore_ext.rules.Cost` (``core`` for both presets,
    ``elementwise`` for **full** only). Tables built before registering pick the rule up:
    ``vmamba_handles`` and ``paper_handles`` are updated in place, and a torchprofile
    registered with ``torchprofile_ext.register()`` rebinds at once, so plain
    ``torchprofile.profile_macs`` counts with it. A handle dict you built yourself with
    ``make_handles`` before registering keeps the table it was built from.

    Raises:
        ValueError: no op name, an op name without a namespace (``"::"``), an op that already
            has a rule and ``replace`` is false, or an unknown family (when called).
        TypeError: the decorated object is not a function of one argument (when decorating,
            before anything is registered), or a function was given where op names go
            (``@register_rule`` without its parentheses).
    """
    if not op_names:
        raise ValueError("register_rule needs at least one op name")
    if len(op_names) == 1 and callable(op_names[0]):
        raise TypeError("register_rule takes op names and returns the decorator: write "
                        "@register_rule('prim::PythonOp.MyKernel'), not @register_rule")
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    for op in op_names:
        if not isinstance(op, str) or "::" not in op:
            raise ValueError(f"{op!r} is not an op name: expected 'namespace::name', e.g. "
                             f"'prim::PythonOp.MyKernel' or 'aten::my_op'")
        if op in OP_TABLE and not replace:
            raise ValueError(f"{op} already has a rule ({OP_TABLE[op].family}); pass "
                             f"replace=True to replace it")

    def register(function: RuleFunction) -> RuleFunction:
        check_reader(function, "a rule given to register_rule")
        for op in dict.fromkeys(op_names):
            _replaced.setdefault(op, OP_TABLE.get(op))
            add_rule(op, function, family, name, replace=True)
        return function

    return register


def unregister_rule(*op_names: str) -> None:
    """Remove rules added with :func:`register_rule`; a built-in rule that was replaced comes
    back. ``ValueError`` if an op has no rule registered by :func:`register_rule`."""
    op_names = tuple(dict.fromkeys(op_names))           # an op named twice is removed once
    unknown = [op for op in op_names if op not in _replaced]
    if unknown:
        raise ValueError(f"no rule was registered with register_rule for {', '.join(unknown)}")
    for op in op_names:
        builtin = _replaced.pop(op)
        remove_rule(op)
        if builtin is not None:
            add_rule(op, builtin.read, builtin.family, builtin.name)
