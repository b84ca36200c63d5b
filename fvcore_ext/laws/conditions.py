"""Where a symbolic law holds: the run's guards read as conditions on the size (issue 30).

A symbolic run (:mod:`fvcore_ext.laws.symbolic`) leaves the guards its ShapeEnv installed
(``Ne((S//8), 1)``, ``Ne(Mod(1, ((S//8))**2 + 1), 0)``) and the divisions the law read as
exact (``Eq(Mod(S, 8), 0)``). :func:`read_conditions` states them as a reader would, in
Python's syntax: the residue class the divisions pin (``S % 8 == 0``), the smallest size
(``S >= 16``), the sizes excluded (``S != 24``), and any guard it cannot reduce, printed as
it is (``S // 8 % (S // 8 * S // 8) != 0`` style). The reduction is exact: with the class
``S = M·n + r`` substituted, a guard sympy proves true for every integer n ≥ n₀ is dropped,
and a guard ``P(n) != 0`` with P a polynomial excludes exactly its integer roots ≥ n₀.
:meth:`Conditions.holds` evaluates the guards themselves at a size, not the text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, Tuple

__all__ = ["Conditions", "condition_text", "read_conditions", "relation_holds"]

_MAX_PERIOD = 100_000   # a residue class is looked for among sizes mod M up to this M


@dataclass(frozen=True)
class Conditions:
    """The conditions of a symbolic law.

    Attributes:
        texts: the conditions in Python's syntax, in the variable's name.
        lower: the smallest size the run allowed (the ShapeEnv's range of the symbol).
        relations: the guards and divisions as sympy relations in ``symbol``.
        symbol: the sympy symbol of the variable.
    """
    texts: Tuple[str, ...]
    lower: int
    relations: Tuple[Any, ...]
    symbol: Any

    def holds(self, size: int) -> bool:
        """Whether every condition holds at ``size`` (an int), evaluated exactly."""
        return size >= self.lower and all(relation_holds(r, self.symbol, size)
                                          for r in self.relations)


def relation_holds(relation: Any, symbol: Any, size: int) -> bool:
    """Whether the sympy relation ``relation`` in ``symbol`` is true at ``symbol = size``
    (False where it does not evaluate to a truth value)."""
    import sympy
    value = relation.xreplace({symbol: sympy.Integer(size)})
    return bool(value) if value in (True, False) or getattr(value, "is_Boolean", False) \
        else False


def condition_text(expr: Any) -> str:
    """A sympy relation or expression in Python's syntax (``(S // 8) != 1``)."""
    from torch.utils._sympy.printers import PythonPrinter
    return PythonPrinter().doprint(expr)


def _period(division: Any, x: Any) -> int:
    # Eq(Mod(p, m), r): p's value mod m repeats with x every m · D^deg (D: p's denominators)
    import sympy
    mod = division.lhs
    dividend, divisor = mod.args
    poly = sympy.Poly(dividend, x)
    denominators = math.lcm(*(int(sympy.Rational(c).q) for c in poly.coeffs()))
    return int(divisor) * denominators ** max(1, poly.degree())


def _residue_class(divisions: Sequence[Any], x: Any) -> Tuple[int, int]:
    # (M, r): the sizes the divisions allow are exactly x ≡ r (mod M); (1, 0) when they
    # allow several residues (then the divisions are stated as they are)
    if not divisions:
        return 1, 0
    period = math.lcm(*(_period(d, x) for d in divisions))
    if period > _MAX_PERIOD:
        return 1, 0
    allowed = [r for r in range(period)
               if all(relation_holds(d, x, r + period) for d in divisions)]
    return (period, allowed[0]) if len(allowed) == 1 else (1, 0)


def _is_mod(expr: Any) -> bool:
    import sympy
    from torch.utils._sympy.functions import Mod, PythonMod
    return isinstance(expr, (sympy.Mod, Mod, PythonMod))


def _below(args: Sequence[Any], n: Any) -> bool:
    # a % b is a for every n >= 0 when 0 <= a < b there: a and b - a - 1 polynomials in n
    # with no negative coefficient
    import sympy
    a, b = (sympy.expand(arg) for arg in args)
    try:
        return all(c >= 0 for poly in (sympy.Poly(a, n), sympy.Poly(b - a - 1, n))
                   for c in poly.all_coeffs())
    except sympy.PolynomialError:
        return False


def _reduce(guard: Any, x: Any, modulus: int, residue: int, first: int) -> Any:
    # True (always holds for n >= first), a list of excluded sizes, or None (kept as text)
    import sympy
    n = sympy.Symbol("n", integer=True, nonnegative=True)
    shifted = guard.xreplace({x: modulus * (n + first) + residue})
    shifted = shifted.replace(lambda e: _is_mod(e) and _below(e.args, n),
                              lambda e: e.args[0])
    reduced = sympy.simplify(shifted)
    if reduced is sympy.true:
        return True
    if isinstance(reduced, sympy.Ne):
        difference = sympy.expand(reduced.lhs - reduced.rhs)
        if difference.is_polynomial(n) and difference != 0:
            roots = sympy.Poly(difference, n).ground_roots() if difference.free_symbols else {}
            return sorted(modulus * (int(root) + first) + residue for root in roots
                          if root.is_Integer and root >= 0)
    return None


def read_conditions(guards: Sequence[Any], divisions: Sequence[Any], lower: int, x: Any,
                    variable: str) -> Conditions:
    """The conditions of a law in ``x`` (a sympy integer symbol named ``variable``).

    Args:
        guards: the run's guards, sympy relations in ``x``.
        divisions: ``Eq(Mod(p(x), m), r)`` for each division the law read as exact.
        lower: the smallest size the run allowed (an int ≥ 0).

    Returns:
        :class:`Conditions`: their texts (reduced as the module docstring says) and an exact
        ``holds(size)``. Never raises for a guard it cannot reduce: that one is kept as text.
    """
    modulus, residue = _residue_class(divisions, x)
    first = max(0, -(-(lower - residue) // modulus))          # smallest n with M·n + r ≥ lower
    excluded: set = set()
    kept = list(guards)
    smallest = modulus * first + residue
    for _ in range(2):     # again once the smallest size has moved past excluded ones
        remaining = []
        for guard in kept:
            try:
                reduced = _reduce(guard, x, modulus, residue, (smallest - residue) // modulus)
            except Exception:          # sympy cannot decide it: state it as it is
                reduced = None
            if reduced is None:
                remaining.append(guard)
            elif reduced is not True:
                excluded.update(reduced)
        kept = remaining
        while smallest in excluded:
            excluded.discard(smallest)
            smallest += modulus
    texts = [f"{variable} >= {smallest}"]
    if modulus > 1:
        texts.append(f"{variable} % {modulus} == {residue}")
    elif divisions:
        texts += [condition_text(d) for d in divisions]
    texts += [f"{variable} != {size}" for size in sorted(excluded)]
    texts += [condition_text(guard) for guard in kept]
    relations = tuple(guards) + tuple(divisions)
    return Conditions(texts=tuple(dict.fromkeys(texts)), lower=max(lower, 0),
                      relations=relations, symbol=x)
