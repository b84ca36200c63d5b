"""Symbolic MACs of a dispatch count, added up once instead of op by op (issue 30, item 4).

On a symbolic run (:mod:`fvcore_ext.laws.symbolic`) every rule returns a ``torch.SymInt``, and
the dispatch engine adds each op's MACs to its family, its operator and every module it ran
in. Done with SymInt arithmetic, each of those additions goes through the ShapeEnv's
``SymNode`` machinery (a sympy expression, its hint, its guards): on a 32-layer LLaMA some
16,000 additions, half the pack's cost of the run. :class:`SymbolicSums` instead keeps, per
table key, how many times each distinct expression was added (the 32 layers add the same
few expressions), and turns each key's sum into one ``SymInt`` when the counts are read: one
sympy ``Add`` per key, its hint the sum of the terms' hints. The values are the same
``SymInt`` expressions the op-by-op sums give.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Dict, Hashable, Iterable, Iterator, Tuple

import torch

__all__ = ["SymbolicSums"]


class SymbolicSums:
    """Pending ``SymInt`` additions, per table and key: ``add(table, key, value)`` records one,
    :meth:`drain` yields ``(table, key, total)`` once each and forgets them."""

    def __init__(self) -> None:
        self._terms: Dict[Tuple[str, Hashable], Counter] = defaultdict(Counter)
        self._examples: Dict[Any, torch.SymInt] = {}   # expression → one SymInt with it

    def __bool__(self) -> bool:
        return bool(self._terms)

    def add(self, table: str, keys: Iterable[Hashable], value: torch.SymInt) -> None:
        """Record ``value`` added to ``table[key]`` for each of ``keys``."""
        expr = value.node.expr
        self._examples.setdefault(expr, value)
        for key in keys:
            self._terms[(table, key)][expr] += 1

    def drain(self) -> Iterator[Tuple[str, Hashable, Any]]:
        """``(table, key, total)`` for every key added to since the last drain: ``total`` a
        ``SymInt`` (an int where the sum is a constant); keys whose sum is 0 are skipped."""
        import sympy

        terms, examples = self._terms, self._examples
        self._terms, self._examples = defaultdict(Counter), {}
        for (table, key), counts in terms.items():
            expr = sympy.Add(*(e * n for e, n in counts.items()))
            if expr == 0:
                continue
            first = examples[next(iter(counts))]
            hints = [(examples[e].node.hint, n) for e, n in counts.items()]
            hint = None if any(h is None for h, _ in hints) else sum(h * n for h, n in hints)
            yield table, key, first.node.shape_env.create_symintnode(expr, hint=hint)
