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
(:func:`fvcore_ext.ops.rule_result`), the same under both presets: a ``bool``, a float, a
negative number or anything else is no count of MACs. A rule that raises, or returns no count,
is reported as uncounted for that op, with the reason, like a built-in rule (``strict`` raises
instead). What can be checked before counting is checked at registration: the decorated object
must be a function of one argument.

For training counts (the dispatch engine, ``count_model(..., backward=True)``), an autograd
Function's backward is counted by the ``backward=`` function given with it, which gets the
forward's ``OpCall`` and which arguments need a gradient::

    @register_rule("prim::PythonOp.FusedGLU", backward=lambda call, needs: 2 * fused_glu(call))
    def fused_glu(call): ...

Without one, the Function's backward is reported as uncounted, never counted as 0.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Optional, Tuple, Union

from .registry import (TABLE_LOCK, BACKWARD_RULES, FAMILIES, OP_TABLE, BackwardRule, OpRule, add_rule,
                       check_reader, remove_rule, rule_result)
from .opcall import OpCall
from ..rules import Cost

__all__ = ["register_rule", "unregister_rule"]

RuleFunction = Callable[[OpCall], Union[int, Cost]]
BackwardFunction = Callable[[OpCall, List[bool]], Union[int, Cost]]

# op name -> the built-in rule and backward rule a user rule replaced (None: there was none)
_replaced: Dict[str, Tuple[Optional[OpRule], Optional[BackwardRule]]] = {}


def _check_backward(backward: BackwardFunction) -> None:
    if not callable(backward):
        raise TypeError(f"backward= must be a function of (call, needs) returning MACs, not "
                        f"{backward!r}")
    try:
        inspect.signature(backward).bind(None, None)
    except TypeError:
        raise TypeError(f"backward= must take two arguments (an OpCall and the list of which "
                        f"arguments need a gradient); {backward!r} does not") from None
    except ValueError:           # a builtin without a signature: trust it
        pass


def _backward_rule(backward: BackwardFunction) -> BackwardRule:
    return BackwardRule(lambda call, needs: rule_result(backward(call, needs), backward))


def register_rule(*op_names: str, family: str = "custom", name: Optional[str] = None,
                  replace: bool = False, backward: Optional[BackwardFunction] = None
                  ) -> Callable[[RuleFunction], RuleFunction]:
    """Decorator: count every op in ``op_names`` with the decorated function, in fvcore,
    mmengine and torchprofile alike.

    Args:
        op_names: op names as the trace shows them: ``"prim::PythonOp.MyAttn"`` for an
            autograd Function ``MyAttn``, ``"aten::my_op"``, ``"mylib::fused_mlp"``.
        family: what the rule counts, as :func:`fvcore_ext.cli.census.census` reports it; one of
            :data:`fvcore_ext.ops.FAMILIES` (default ``"custom"``).
        name: the key in per-operator tables (default: the op name without its namespace,
            ``PythonOp.MyAttn``).
        replace: allow replacing a rule the pack already has (it comes back with
            :func:`unregister_rule`).
        backward: for an autograd Function, ``backward(call, needs)`` → the MACs of its
            backward in training counts (dispatch engine): ``call`` is the forward's
            ``OpCall``, ``needs[i]`` whether argument ``i`` needs a gradient. Without it a
            replaced built-in keeps its backward rule, and a new Function's backward is
            reported uncounted.

    The function takes an :class:`fvcore_ext.ops.opcall.OpCall` and returns MACs: an ``int``
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
            before anything is registered), ``backward`` is not a function of two, or a
            function was given where op names go (``@register_rule`` without its
            parentheses).
    """
    if not op_names:
        raise ValueError("register_rule needs at least one op name")
    if len(op_names) == 1 and callable(op_names[0]):
        raise TypeError("register_rule takes op names and returns the decorator: write "
                        "@register_rule('prim::PythonOp.MyKernel'), not @register_rule")
    if backward is not None:
        _check_backward(backward)
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
        with TABLE_LOCK:
            for op in dict.fromkeys(op_names):
                _replaced.setdefault(op, (OP_TABLE.get(op), BACKWARD_RULES.get(op)))
                add_rule(op, function, family, name, replace=True)
                if backward is not None:
                    BACKWARD_RULES[op] = _backward_rule(backward)
        return function

    return register


def unregister_rule(*op_names: str) -> None:
    """Remove rules added with :func:`register_rule`; a built-in rule that was replaced comes
    back. ``ValueError`` if an op has no rule registered by :func:`register_rule`."""
    op_names = tuple(dict.fromkeys(op_names))           # an op named twice is removed once
    with TABLE_LOCK:
        unknown = [op for op in op_names if op not in _replaced]
        if unknown:
            raise ValueError(f"no rule was registered with register_rule for "
                             f"{', '.join(unknown)}")
        for op in op_names:
            builtin, builtin_backward = _replaced.pop(op)
            remove_rule(op)
            BACKWARD_RULES.pop(op, None)
            if builtin is not None:
                add_rule(op, builtin.read, builtin.family, builtin.name)
            if builtin_backward is not None:
                BACKWARD_RULES[op] = builtin_backward
