"""A cost law from one symbolic run (issue 30, item 5).

PyTorch's symbolic shapes run a model once with the varied size a symbol: a
``FakeTensorMode`` with a ``ShapeEnv``, the size a ``SymInt`` made ``DimDynamic.DYNAMIC``
(one symbol for every dim the letter names: H = W = S is the same symbol twice), the model
built under the fake mode on the meta device (its weights fake tensors, shaped by the symbol
where they depend on the size: a learned position embedding of (S/8)² + 1 rows; meta, so that
no CPU kernel choice guards the size). The dispatch engine carries the ``SymInt`` shapes
through the op table's rules (summing them once per expression,
``fvcore_ext.engines.symbolic_sums``), so the run's total and every family are ``SymInt``
expressions in the symbol. :func:`symbolic_count` turns them into exact polynomials (rational
coefficients, as :class:`fvcore_ext.laws.Law` holds them):

- an exact division the model made (``S // 8`` from a patch conv, a ``Mod``, a division by a
  polynomial that divides) is read as the rational quotient, and the law gains the condition
  that it is exact (``S % 8 == 0``): the law holds on sizes of that kind, as a law fitted on
  multiples of 8 does;
- the guards the run installed in the ``ShapeEnv`` and the symbol's range are the law's
  conditions, reduced and stated in Python's syntax by :mod:`fvcore_ext.laws.conditions`
  (``S >= 16``, ``S % 8 == 0``); ``Law.holds`` evaluates them exactly;
- where the run fixed the symbol (a guard ``Eq(S, 64)``, ``int()`` of a size in a rule or the
  model, a replacement of the symbol by a number), read data (a data-dependent guard), built
  no model at a symbolic size, or gave an expression that is no polynomial (``Max``, a
  division by a polynomial that does not divide), there is no symbolic law: the result says
  why, and :func:`fvcore_ext.laws.count_law` fits counts instead.

Bytes are not read on a symbolic run (``fvcore_ext.engines.traffic``: a SymInt shape is
reported unreadable, never guarded).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..engines import dispatch
from ..engines.jit.tracing import module_mode
from .conditions import Conditions, condition_text, read_conditions, relation_holds
from .count import input_dims
from .fit import Law

__all__ = ["SymbolicCount", "symbolic_count", "symbolic_law"]

Dim = Union[int, str]


@dataclasses.dataclass
class SymbolicCount:
    """What one symbolic run gave.

    Attributes:
        variable: the varied size's name.
        example_size: the size the ShapeEnv took as the symbol's hint.
        law: the total's Law (``route="symbolic"``, ``fitted_on=()``), or None.
        by_family: family → Law, for every family with MACs.
        conditions: the law's conditions as text (the guards, the symbol's range, the
            divisions read as exact), in the variable's name.
        expression: the total as the run gave it (sympy text, the symbol renamed).
        reason: why there is no law (None when there is one).
        seconds: the run's wall time (build and count).
    """
    variable: str
    example_size: int
    law: Optional[Law] = None
    by_family: Dict[str, Law] = dataclasses.field(default_factory=dict)
    conditions: Tuple[str, ...] = ()
    expression: Optional[str] = None
    reason: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the run gave a law."""
        return self.law is not None


class _NoLaw(Exception):
    pass


def _symbol_env(example_size: int, variable: str):
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    shape_env = ShapeEnv()
    fake_mode = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=True)
    symbol = shape_env.create_symbol(example_size, ConstantSource(variable),
                                     dynamic_dim=DimDynamic.DYNAMIC)
    size = shape_env.create_symintnode(symbol, hint=example_size)
    return shape_env, fake_mode, symbol, size


def _make_input(shape: Sequence[Dim], variable: str, size: Any, dtype: torch.dtype):
    return torch.zeros(input_dims(shape, variable, size), dtype=dtype)


def _split_built(built: Any) -> Tuple[nn.Module, Any]:
    if isinstance(built, nn.Module):
        return built, None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module):
        return built
    raise _NoLaw(f"build returned {type(built).__name__}: expected an nn.Module or "
                 f"(model, inputs)")


def _sympy():
    import sympy
    from torch.utils._sympy import functions as F
    return sympy, F


def _polynomial(expr: Any, symbol: Any, x: Any, conditions: List[Any], example: int) -> Any:
    """``expr`` (the ShapeEnv's sympy) as a polynomial in ``x``: exact divisions read as
    rationals, each adding its condition (the dividend a multiple of the divisor)."""
    sympy, F = _sympy()
    if expr == symbol:
        return x
    if expr.is_Number:
        return sympy.Rational(expr)
    if expr.is_Symbol:
        raise _NoLaw(f"the count depends on another symbol, {expr}")
    args = [_polynomial(a, symbol, x, conditions, example) for a in expr.args]
    if isinstance(expr, (sympy.Add,)):
        return sympy.Add(*args)
    if isinstance(expr, sympy.Mul):
        return sympy.Mul(*args)
    if isinstance(expr, (sympy.Pow, F.PowByNatural)) and args[1].is_Integer and args[1] >= 0:
        return args[0] ** args[1]
    if isinstance(expr, (F.FloorDiv, F.CeilDiv, F.CleanDiv, F.IntTrueDiv, F.Mod, F.PythonMod)):
        # a // c is (a - r) / c on the sizes where a ≡ r (mod c), r its residue at the example
        # size: the law holds on sizes of the example's kind (a condition of the law)
        dividend, divisor = args
        scale = sympy.Integer(1)         # a % b = scale · (dividend % divisor) below
        if divisor.free_symbols:
            # a // b with b a polynomial dividing a (H·W·C // W from a reshape): a / b is the
            # quotient q exactly, so a // b = (D·q) // D and a % b = b·((D·q) % D) / D, with D
            # the lcm of q's denominators: a division by a constant, read as below
            quotient, remainder = sympy.div(sympy.expand(dividend), sympy.expand(divisor), x)
            if remainder != 0:
                raise _NoLaw(f"the count divides by {divisor}, not by a constant")
            denominator = math.lcm(*(int(sympy.Rational(c).q)
                                     for c in sympy.Poly(quotient, x).all_coeffs()))
            scale = divisor / denominator
            dividend, divisor = sympy.expand(quotient * denominator), sympy.Integer(denominator)
        if not (divisor.is_Integer and divisor > 0):
            raise _NoLaw(f"the count divides by {divisor}, not by a constant")
        at_example = dividend.xreplace({x: sympy.Integer(example)}) if dividend.free_symbols else dividend
        if not at_example.is_Integer:
            raise _NoLaw(f"the count divides {dividend}, no integer at the example size")
        residue = int(at_example) % int(divisor)
        if dividend.free_symbols and divisor != 1:
            conditions.append(sympy.Eq(sympy.Mod(dividend, divisor), residue))
        if isinstance(expr, (F.Mod, F.PythonMod)):
            return scale * residue
        if isinstance(expr, F.CeilDiv):
            return (dividend - residue) / divisor + (1 if residue else 0)
        if isinstance(expr, (F.CleanDiv, F.IntTrueDiv)) and residue:
            raise _NoLaw(f"the count divides {dividend} by {divisor} exactly, not at the "
                         f"example size")
        return (dividend - residue) / divisor
    raise _NoLaw(f"the count is no polynomial in the size: it holds {type(expr).__name__} "
                 f"({expr})")


def _law(polynomial: Any, x: Any, variable: str, conditions: Conditions,
         checked: Sequence[Tuple[int, int]]) -> Law:
    sympy, _ = _sympy()
    poly = sympy.Poly(sympy.expand(polynomial), x)
    coefficients = [Fraction(int(c.p), int(c.q)) for c in reversed(poly.all_coeffs())]
    while len(coefficients) > 1 and coefficients[-1] == 0:
        coefficients.pop()
    degree = len(coefficients) - 1
    in_square = degree >= 2 and all(c == 0 for c in coefficients[1::2])
    return Law(coefficients=tuple(coefficients), degree=degree, variable=variable,
               fitted_on=(), checked_on=tuple(size for size, _ in checked),
               counts=tuple(checked), in_square=in_square, conditions=conditions.texts,
               route="symbolic", holds=conditions.holds)


def symbolic_count(build: Callable[[Any], Any], input_shape: Optional[Sequence[Dim]], *,
                   variable: str = "S", example_size: int = 64, preset: str = "full",
                   backward: bool = False, check_sizes: Sequence[int] = (),
                   input_dtype: torch.dtype = torch.float32) -> SymbolicCount:
    """Count ``build(S)`` once with S a symbol and read the law of the total and every family.

    Args:
        build: ``build(size)`` returns the model, or ``(model, inputs)`` (a tensor, a tuple
            of positional inputs or a dict of keyword inputs); it is called once,
            under a ``FakeTensorMode``, with ``size`` a ``torch.SymInt`` (a model whose weights
            depend on the size gets them at the symbolic size). Where it cannot take a SymInt
            it is called with ``example_size`` (then weights bound to the size fix the symbol,
            and the result says so).
        input_shape: the input's shape with the varied dims the letter ``variable`` (every
            one the same symbol); None when ``build`` returns the inputs.
        variable, preset, backward, input_dtype: as for :func:`fvcore_ext.laws.count_law`.
        example_size: the symbol's hint (an int ≥ 2): the size the model's branches and the
            guards are taken at.
        check_sizes: sizes the conditions must hold at (the sizes a caller will apply the law
            to); by default 2 and 3 times ``example_size``. A condition false at one of them
            means the run fixed the size (no law).

    Returns:
        a :class:`SymbolicCount`: the Law of the total and of each family with their
        conditions, or ``reason`` why there is none. Never raises for what the model does.
    """
    import time

    if example_size < 2:
        raise ValueError(f"example_size must be an int >= 2 (0 and 1 are specialized), "
                         f"got {example_size!r}")
    start = time.perf_counter()
    result = SymbolicCount(variable=variable, example_size=example_size)
    build_note = None
    shape_env, fake_mode, symbol, size = _symbol_env(example_size, variable)
    # an op with no symbolic shape function logs an error before it raises (we report it):
    # dropped for this thread only, other threads' records pass
    quiet = _ThisThreadQuiet()
    _FAKE_TENSOR_LOG.addFilter(quiet)
    try:
        # on meta: no CPU-only size checks (a conv's backend is chosen by its input's size)
        with fake_mode, torch.device("meta"):
            try:
                model, inputs = _split_built(build(size))
            except _NoLaw:
                raise
            except Exception as error:       # a builder that wants an int
                model, inputs = _split_built(build(example_size))
                why = f"build({variable}) needs an int ({type(error).__name__}: " \
                    f"{_first_line(error).rstrip(':')})"
                if inputs is not None:       # its own inputs, at the int size: no symbol left
                    raise _NoLaw(f"{why}, and the inputs it returns at {variable} = "
                                 f"{example_size} are not symbolic")
                build_note = f"{why}, so it was built at {variable} = {example_size}"
            if inputs is None:
                if input_shape is None:
                    raise _NoLaw("build returned a model alone: give input_shape")
                inputs = _make_input(input_shape, variable, size, input_dtype)
            if not isinstance(inputs, (tuple, dict)):
                inputs = (inputs,)
            families = _run(model, inputs, preset, backward)
    except _NoLaw as error:
        result.reason = _with_note(str(error), build_note)
        result.seconds = time.perf_counter() - start
        return result
    except Exception as error:   # data-dependent guards, unsupported ops under fake tensors
        result.reason = _with_note(f"the symbolic run failed: {type(error).__name__}: "
                                   f"{_first_line(error)}", build_note)
        result.seconds = time.perf_counter() - start
        return result
    finally:
        _FAKE_TENSOR_LOG.removeFilter(quiet)
    result.seconds = time.perf_counter() - start
    try:
        result = _read_result(result, shape_env, symbol, families, check_sizes)
    except Exception as error:   # an expression this module does not read: no law, not a crash
        result.law, result.by_family = None, {}
        result.reason = f"the symbolic counts could not be read: {type(error).__name__}: {error}"
    if result.reason:
        result.reason = _with_note(result.reason, build_note)
    return result


_FAKE_TENSOR_LOG = logging.getLogger("torch._subclasses.fake_tensor")


class _ThisThreadQuiet(logging.Filter):
    """Drops the records of the thread that made it (a symbolic run's own errors)."""

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self._thread


def _first_line(error: BaseException) -> str:
    # the message's first line, without a C++ source location (".../Register....cpp:9486: ")
    line = str(error).splitlines()[0] if str(error) else ""
    return re.sub(r"^\S+\.(cpp|h):\d+: ", "", line)


def _with_note(reason: str, note: Optional[str]) -> str:
    return f"{reason} ({note})" if note else reason


def _run(model: nn.Module, inputs: Union[Tuple[Any, ...], Dict[str, Any]], preset: str,
         backward: bool
         ) -> Dict[str, Any]:
    with module_mode(model, training=backward), torch.set_grad_enabled(backward):
        with dispatch.counting(preset) as counter:
            outputs = model(**inputs) if isinstance(inputs, dict) else model(*inputs)
            if backward:
                floats = [t for t in _flatten(outputs) if t.requires_grad
                          and t.is_floating_point()]
                if not floats:
                    raise _NoLaw("backward=True: no output of the model requires grad")
                with counter.uncounted():
                    loss = sum(t.sum() for t in floats)
                loss.backward()
    families: Dict[str, Any] = {}
    for part in (counter.forward_by_family, counter.backward_by_family):
        for family, macs in part.items():
            families[family] = families.get(family, 0) + macs
    return families


def _flatten(value: Any) -> List[torch.Tensor]:
    from torch.utils._pytree import tree_flatten
    if hasattr(value, "to_tuple"):          # transformers' ModelOutput
        value = value.to_tuple()
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _expr(value: Any) -> Any:
    sympy, _ = _sympy()
    if isinstance(value, torch.SymInt):
        return value.node.expr
    return sympy.Integer(int(value))


def _read_result(result: SymbolicCount, shape_env: Any, symbol: Any,
                 families: Dict[str, Any], check_sizes: Sequence[int]) -> SymbolicCount:
    sympy, _ = _sympy()
    variable, example = result.variable, result.example_size
    x = sympy.Symbol(variable, integer=True, positive=True)
    rename = {symbol: x}
    guards = [(g.expr, str(g.sloc)) for g in shape_env.guards]
    replaced = shape_env.replacements.get(symbol)
    total = sum((_expr(v) for v in families.values()), sympy.Integer(0))
    result.expression = str(sympy.sympify(total).xreplace(rename))
    if replaced is not None and not replaced.free_symbols:
        where = "; ".join(w.strip() for g, w in guards if symbol in g.free_symbols
                          and isinstance(g, sympy.Eq)) or "a guard or an int() of the size"
        result.reason = f"the run fixed {variable} to {replaced} ({where})"
        return result
    sizes = list(check_sizes) or [2 * example, 3 * example]
    for guard, where in guards:
        failing = [n for n in [example] + sizes if not relation_holds(guard, symbol, n)]
        if failing:
            result.reason = (f"the run fixed {variable}: its guard "
                             f"{condition_text(sympy.sympify(guard).xreplace(rename))} "
                             f"{where.strip()} fails at {variable} = {failing[0]}")
            return result
    divisions: List[Any] = []
    try:
        law_total = _polynomial(sympy.sympify(total), symbol, x, divisions, example)
        laws = {family: _polynomial(_expr(v), symbol, x, divisions, example)
                for family, v in families.items()}
    except _NoLaw as error:
        result.reason = str(error)
        return result
    for condition in divisions:
        failing = [n for n in sizes if not relation_holds(condition, x, n)]
        if failing:
            result.reason = (f"the law needs {condition_text(condition)}, false at "
                             f"{variable} = {failing[0]}")
            return result
    bound = shape_env.var_to_range[symbol].lower if symbol in shape_env.var_to_range else None
    lower = int(bound) if bound is not None and bound.is_finite else 0
    conditions = read_conditions([sympy.sympify(g).xreplace(rename) for g, _ in guards],
                                 divisions, lower, x, variable)
    result.conditions = conditions.texts
    result.law = _law(law_total, x, variable, conditions, ())
    result.by_family = {family: _law(p, x, variable, conditions, ())
                        for family, p in laws.items() if sympy.expand(p) != 0}
    return result


def symbolic_law(build: Callable[[Any], Any], input_shape: Optional[Sequence[Dim]], *,
                 variable: str = "S", example_size: int = 64, preset: str = "full",
                 backward: bool = False, sizes: Sequence[int] = (), label: str = "model",
                 input_dtype: torch.dtype = torch.float32):
    """The :class:`fvcore_ext.laws.LawReport` of one symbolic run (:func:`symbolic_count`),
    its rows the law's values at ``sizes`` (none given: at ``example_size``); None where the
    run gives no law (the symbol fixed, data read, no polynomial): fit counts instead
    (:func:`fvcore_ext.laws.count_law` with ``route="counts"``)."""
    from .count import symbolic_report
    found = symbolic_count(build, input_shape, variable=variable, example_size=example_size,
                           preset=preset, backward=backward, check_sizes=sizes,
                           input_dtype=input_dtype)
    if not found.ok:
        return None
    return symbolic_report(found, list(sizes) or [example_size], label=label,
                           input_shape=input_shape, preset=preset, backward=backward)
