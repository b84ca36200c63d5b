"""Count a model at several sizes of one input dimension and fit the exact law of its MACs.

:func:`count_law` counts ``build(size)`` at each size with :func:`fvcore_ext.count_model`
(the dispatch engine on the meta device by default: shapes only, no weights allocated), then
fits the law of the total and of every rule family with :func:`fvcore_ext.laws.fit_law`
(exact rational arithmetic, at least ``held_out`` sizes checked; ``docs/laws.md``,
CONVENTIONS.md "Cost laws"). :func:`compare_laws` does it for several models over the same
sizes and prints one table.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple, Union)

import torch
from torch import nn

from ..engines.analysis import count_model
from ..runtime.meta import build_on_meta
from .fit import Law, NoLaw, degree_text, fit_law, format_law

__all__ = ["FORMATS", "ROUTES", "LawComparison", "LawReport", "LawRow", "NoSymbolicLaw",
           "compare_laws", "count_law", "input_for", "law_report", "symbolic_check",
           "symbolic_check_sizes", "symbolic_report"]

FORMATS = ("table", "json", "markdown")
ROUTES = ("auto", "symbolic", "counts")
Dim = Union[int, str]
Shape = Sequence[Dim]
Built = Union[nn.Module, Tuple[nn.Module, Any]]
Progress = Callable[[int, int, int], None]


class NoSymbolicLaw(ValueError):
    """``route="symbolic"`` was asked for and the symbolic run gave no law; the message says
    why (the size fixed by a guard, data read, a count that is no polynomial, ...)."""


@dataclass(frozen=True)
class LawRow:
    """The counts at one size: ``total`` MACs and MACs per rule family (``matmul``,
    ``attention``, ...; families absent at this size are left out)."""
    size: int
    total: int
    by_family: Dict[str, int]


@dataclass
class LawReport:
    """What :func:`count_law` returns: the counts at each size and their exact laws (MACs).

    Attributes:
        label: the model's name in tables and plots.
        variable: the varied size's name (``S``, ``L``).
        rows: one :class:`LawRow` per size, sorted by size.
        law: the total's :class:`Law`, or a :class:`NoLaw` (with the counts and the reason).
        by_family: rule family → its Law or NoLaw (a family absent at a size counts 0 there).
        square_name: what ``variable``² is called in the degree's words (``"pixels"`` when the
            varied letter is two dims of the input, H = W = S), or None.
        input_shape, engine, device, preset, backward: how the counts were made.
        families: the families, largest at the largest size first.
        how: the title's parenthesis in words, when the counts were made otherwise than from
            an input shape (an hf: model's prefill or decode step); default from the fields.
        route: which route gave the laws: ``"counts"`` (fitted to counts at every size) or
            ``"symbolic"`` (one symbolic run, :mod:`fvcore_ext.laws.symbolic`; the rows are
            then the law's values, and the sizes in ``checked_sizes`` were counted for real).
        route_note: why the symbolic route gave no law, when ``count_law`` fell back to
            counts (None otherwise).
        conditions: the symbolic law's conditions (the run's guards), as text.
    """
    label: str
    variable: str
    rows: List[LawRow]
    law: Union[Law, NoLaw]
    by_family: Dict[str, Union[Law, NoLaw]]
    square_name: Optional[str] = None
    input_shape: Optional[Tuple[Any, ...]] = None
    engine: str = "dispatch"
    device: str = "meta"
    preset: str = "full"
    backward: bool = False
    families: List[str] = field(default_factory=list)
    how: Optional[str] = None
    route: str = "counts"
    route_note: Optional[str] = None
    conditions: Tuple[str, ...] = ()

    @property
    def sizes(self) -> List[int]:
        """The counted sizes, ascending."""
        return [row.size for row in self.rows]

    def predict(self, size: int) -> int:
        """The total MACs the law gives at ``size``, an exact int.

        Raises:
            ValueError: there is no law (the NoLaw's reason), or the law is not an integer at
                ``size`` (a size of another kind than those it was fitted on).
        """
        if not isinstance(self.law, Law):
            raise ValueError(f"{self.label}: no law to predict from: {self.law.reason}")
        return self.law.predict(size)

    def degree_text(self) -> str:
        """``degree 4 in S (degree 2 in pixels)``, or ``no law``."""
        return degree_text(self.law, self.square_name) if isinstance(self.law, Law) \
            else "no law"

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict: the counts per size, the total's law and each family's."""
        return {"model": self.label, "variable": self.variable,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "engine": self.engine, "device": self.device, "preset": self.preset,
                "backward": self.backward, "unit": "MACs", "route": self.route,
                "route_note": self.route_note, "conditions": list(self.conditions),
                "rows": [{"size": r.size, "total": r.total, "by_family": dict(r.by_family)}
                         for r in self.rows],
                "law": _law_dict(self.law, self.square_name),
                "by_family": {name: _law_dict(law, self.square_name)
                              for name, law in self.by_family.items()}}

    def format(self, fmt: str = "table") -> str:
        """The report as text: ``"table"`` (a row per size, then the laws), ``"markdown"``
        (the same as a Markdown table and list) or ``"json"`` (:meth:`to_dict`).

        Raises:
            ValueError: an unknown format.
        """
        _check_format(fmt)
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        headers = [self.variable, "total"] + self.families
        rows = [[str(r.size), f"{r.total:,}"] + [f"{r.by_family.get(f, 0):,}"
                                                  for f in self.families] for r in self.rows]
        laws = [("total", self.law)] + [(f, self.by_family[f]) for f in self.families]
        title = f"{self.label}: MACs over {self.variable}{self._how()}"
        if fmt == "markdown":
            lines = [f"**{title}**", "", _markdown_table(headers, rows), ""]
            lines += [f"- {name}: {_law_line(law, self.square_name, '`')}"
                      for name, law in laws]
            return "\n".join(lines)
        lines = [title, _text_table(headers, rows), ""]
        width = max(len(name) for name, _ in laws)
        lines += [f"{name.ljust(width)}  {_law_line(law, self.square_name)}"
                  for name, law in laws]
        if self.route == "symbolic" or self.route_note:
            lines.append(self._route_line())
        return "\n".join(lines)

    def _route_line(self) -> str:
        if self.route == "symbolic":
            where = " and ".join(self.conditions) or "every size"
            return (f"route: one symbolic run (the rows are the law's values); holds where "
                    f"{where}")
        return f"route: counts (no symbolic law: {self.route_note})"

    def __str__(self) -> str:
        return self.format("table")

    def _how(self) -> str:
        if self.how:
            return f" ({self.how})"
        shape = f"input {' '.join(map(str, self.input_shape))}, " if self.input_shape else ""
        backward = ", forward + backward" if self.backward else ""
        return (f" ({shape}{self.engine} engine on {self.device}, {self.preset} preset"
                f"{backward})")


@dataclass
class LawComparison:
    """What :func:`compare_laws` returns: one :class:`LawReport` per model, over the same sizes
    of the same variable; :meth:`format` gives one table of the totals and each model's law."""
    reports: List[LawReport]

    def to_dict(self) -> Dict[str, Any]:
        """``{"models": [LawReport.to_dict(), ...]}``."""
        return {"models": [report.to_dict() for report in self.reports]}

    def format(self, fmt: str = "table") -> str:
        """One table: a row per size, a column of total MACs per model; then each model's law
        of the total (``"table"``, ``"markdown"``) or :meth:`to_dict` (``"json"``).

        Raises:
            ValueError: an unknown format.
        """
        _check_format(fmt)
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        variables = sorted({r.variable for r in self.reports})
        sizes = sorted({size for r in self.reports for size in r.sizes})
        totals = [{row.size: row.total for row in r.rows} for r in self.reports]
        headers = ["/".join(variables)] + [r.label for r in self.reports]
        rows = [[str(size)] + [f"{t[size]:,}" if size in t else "-" for t in totals]
                for size in sizes]
        title = "total MACs over " + "/".join(variables)
        if fmt == "markdown":
            lines = [f"**{title}**", "", _markdown_table(headers, rows), ""]
            lines += [f"- {r.label}: {_law_line(r.law, r.square_name, '`')}"
                      for r in self.reports]
            lines += [f"- {r.label}: {r._route_line()}" for r in self.reports
                      if r.route == "symbolic" or r.route_note]
            return "\n".join(lines)
        width = max(len(r.label) for r in self.reports)
        lines = [title, _text_table(headers, rows), ""]
        lines += [f"{r.label.ljust(width)}  {_law_line(r.law, r.square_name)}"
                  for r in self.reports]
        lines += [f"{r.label.ljust(width)}  {r._route_line()}" for r in self.reports
                  if r.route == "symbolic" or r.route_note]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format("table")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _law_dict(law: Union[Law, NoLaw], square_name: Optional[str]) -> Dict[str, Any]:
    out = law.to_dict()
    if isinstance(law, Law):
        out["degree_text"] = degree_text(law, square_name)
    return out


def _law_line(law: Union[Law, NoLaw], square_name: Optional[str], quote: str = "") -> str:
    if not isinstance(law, Law):
        return f"no law: {law.reason}"
    checked = ", ".join(map(str, law.checked_on))
    fitted = ", ".join(map(str, law.fitted_on))
    if law.route == "symbolic":
        check = f", checked on {law.variable} = {checked}" if checked else ""
        return (f"{quote}{format_law(law)}{quote}, {degree_text(law, square_name)}; from one "
                f"symbolic run{check}")
    return (f"{quote}{format_law(law)}{quote}, {degree_text(law, square_name)}; fitted on "
            f"{law.variable} = {fitted}, checked on {checked}")


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _letters(shape: Shape) -> List[str]:
    return [d for d in shape if isinstance(d, str)]


def input_dims(shape: Shape, variable: str, size: Any) -> List[Any]:
    """``shape`` with every ``variable`` dim set to ``size`` (an int, or a SymInt on the
    symbolic route).

    Raises:
        ValueError: ``shape`` names a letter other than ``variable``, or a dim is not an int ≥ 0.
    """
    dims = []
    for dim in shape:
        if isinstance(dim, str):
            if dim != variable:
                raise ValueError(f"input shape {tuple(shape)} names {dim!r}; only the varied "
                                 f"dimension {variable!r} may be a letter")
            dims.append(size)
        elif isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
            dims.append(dim)
        else:
            raise ValueError(f"input shape {tuple(shape)}: {dim!r} is not an int ≥ 0 or a "
                             f"letter")
    return dims


def input_for(shape: Shape, variable: str, size: int, device: str = "meta",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One input tensor of ``shape`` with every ``variable`` dim set to ``size``: empty on
    meta; on another device random floats (``randn``) or, for an integer dtype, token ids 0/1.

    Raises:
        ValueError: ``shape`` names a letter other than ``variable``, or a dim is not an int ≥ 0.
    """
    dims = input_dims(shape, variable, size)
    if device == "meta":
        return torch.empty(dims, dtype=dtype, device="meta")
    if dtype.is_floating_point:
        return torch.randn(dims, dtype=dtype, device=device)
    return torch.randint(0, 2, dims, dtype=dtype, device=device)


def _check_sizes(sizes: Sequence[int], held_out: int) -> List[int]:
    sizes = list(sizes)
    for size in sizes:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ValueError(f"sizes must be positive ints, got {size!r}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must be distinct, got {sizes}")
    if len(sizes) < 1 + held_out:
        raise ValueError(f"{len(sizes)} sizes are too few: even a constant law needs "
                         f"{1 + held_out} (1 to fit, {held_out} held out to check it)")
    return sorted(sizes)


def count_law(build: Callable[[int], Built], input_shape: Optional[Shape], sizes: Sequence[int],
              *, variable: str = "S", engine: str = "dispatch", device: str = "meta",
              preset: str = "full", backward: bool = False, held_out: int = 2,
              max_degree: int = 4, progress: Optional[Progress] = None,
              label: str = "model", input_dtype: torch.dtype = torch.float32,
              square_name: Optional[str] = None, route: str = "auto") -> LawReport:
    """Count a model at each size of one input dimension and fit the exact law of its MACs.

    Args:
        build: ``build(size)`` returns the model at that size, or ``(model, inputs)`` (a tensor,
            a tuple of tensors, or a dict of keyword inputs such as ``{"pixel_values": x}``;
            then ``input_shape`` may be None). A model whose weights
            depend on the size (learned position embeddings, masks of N × N tokens) is built
            anew here at each size. On meta, ``build`` runs under ``torch.device("meta")``
            (:func:`fvcore_ext.runtime.meta.build_on_meta`), so a 7B model allocates nothing.
        input_shape: the input's shape with the varied dimension a letter, e.g.
            ``(1, 3, "S", "S")`` for an image side (H = W = S) or ``(1, "L")`` for tokens.
        sizes: the values of the varied dimension, distinct positive ints, at least
            ``held_out + 1`` (a law with k coefficients needs ``k + held_out``: a ViT over S,
            3 coefficients in S², needs 5).
        variable: the letter (``S``); the law is written ``MACs(S) = ...``.
        engine, device, preset, backward: passed to :func:`fvcore_ext.count_model` (the
            dispatch engine on meta by default; ``backward`` counts forward + backward).
        held_out, max_degree: passed to :func:`fvcore_ext.laws.fit_law`.
        progress: called ``progress(i, n, size)`` before counting the i-th of n sizes
            (0-based), e.g. to print to stderr.
        label: the model's name in tables and plots.
        input_dtype: dtype of the input made from ``input_shape`` (``torch.long`` for token ids).
        square_name: what ``variable``² is called (default: ``"pixels"`` when the letter is two
            dims of ``input_shape``).
        route: ``"auto"`` (default): the law from one symbolic run
            (:func:`fvcore_ext.laws.symbolic.symbolic_count`: ``build`` called once with a
            ``SymInt``, at the largest of ``sizes``, the least degenerate shapes), checked
            against real counts at the smallest and the middle size
            (:func:`symbolic_check_sizes`), total and every family; where the run gives no law (the
            model fixed the size, read data, ...), its conditions fail at one of ``sizes``,
            or the check fails: counts at every size, fitted. ``"symbolic"``: the symbolic
            law, checked likewise, or :class:`NoSymbolicLaw`. ``"counts"``: counts only.
            ``LawReport.route`` says which route gave the law, ``route_note`` why the
            symbolic one did not. The symbolic route runs the dispatch engine on fake meta
            tensors; with another ``engine`` or ``device`` the law is fitted to counts
            (``max_degree`` applies to fitted laws only). ``progress`` is called on the
            symbolic route before the run (the largest size) and before each check.

    Returns:
        a :class:`LawReport` (MACs): the counts per size and the exact Law (or NoLaw, with the
        counts and the reason) of the total and of each family.

    Raises:
        ValueError: sizes not distinct positive ints or too few; ``input_shape`` None while
            ``build`` returns a model alone, or naming another letter; ``build`` returned neither
            an ``nn.Module`` nor ``(model, inputs)``; and whatever ``count_model`` raises.
        NoSymbolicLaw: ``route="symbolic"`` and the symbolic run gave no law (its reason).
    """
    sizes = _check_sizes(sizes, held_out)
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")
    if square_name is None and input_shape is not None \
            and _letters(input_shape).count(variable) >= 2:
        square_name = "pixels"
    note = None
    if route != "counts":
        report, note = _symbolic_route(build, input_shape, sizes, variable=variable,
                                       engine=engine, device=device, preset=preset,
                                       backward=backward, label=label,
                                       input_dtype=input_dtype, square_name=square_name,
                                       progress=progress)
        if report is not None:
            return report
        if route == "symbolic":
            raise NoSymbolicLaw(f"{label}: no symbolic law: {note}")
    rows = []
    for i, size in enumerate(sizes):
        if progress is not None:
            progress(i, len(sizes), size)
        model, inputs, names = _built(build, size, input_shape, variable, device, input_dtype)
        report = count_model(model, inputs, names, preset=preset, device=device,
                             engine=engine, backward=backward)
        rows.append(LawRow(size=size, total=report.total_macs,
                           by_family={k: v for k, v in report.by_family.items() if v}))
    report = law_report(rows, variable=variable, label=label, held_out=held_out,
                        max_degree=max_degree, square_name=square_name,
                        input_shape=tuple(input_shape) if input_shape is not None else None,
                        engine=engine, device=device, preset=preset, backward=backward)
    report.route_note = note
    return report


def _symbolic_route(build, input_shape, sizes: List[int], *, variable: str, engine: str,
                    device: str, preset: str, backward: bool, label: str,
                    input_dtype: torch.dtype, square_name: Optional[str],
                    progress: Optional[Progress] = None
                    ) -> Tuple[Optional[LawReport], Optional[str]]:
    # One symbolic run at the largest size (the least degenerate shapes: no window or head
    # count of 1 to branch on), checked by real counts at two others.
    from .symbolic import symbolic_count
    if engine != "dispatch" or device != "meta":
        return None, f"the symbolic route runs the dispatch engine on meta, not {engine} on " \
                     f"{device}"
    if len(sizes) < 2 or sizes[-1] < 2:
        return None, "the symbolic route needs two sizes, the largest >= 2 (one to run, one " \
                     "to check)"
    checks = symbolic_check_sizes(sizes)
    steps = 1 + len(checks)
    if progress is not None:
        progress(0, steps, sizes[-1])
    found = symbolic_count(build, input_shape, variable=variable, example_size=sizes[-1],
                           preset=preset, backward=backward, check_sizes=sizes,
                           input_dtype=input_dtype)
    if not found.ok:
        return None, found.reason
    rows = []
    for i, size in enumerate(checks):
        if progress is not None:
            progress(1 + i, steps, size)
        model, inputs, names = _built(build, size, input_shape, variable, device, input_dtype)
        counted = count_model(model, inputs, names, preset=preset, device=device,
                              engine=engine, backward=backward)
        rows.append(LawRow(size=size, total=counted.total_macs,
                           by_family={k: v for k, v in counted.by_family.items() if v}))
    disagreement = symbolic_check(found, rows)
    if disagreement:
        return None, disagreement
    report = symbolic_report(found, sizes, label=label, input_shape=input_shape,
                             preset=preset, backward=backward, square_name=square_name,
                             checked=rows)
    return report, None


def symbolic_check_sizes(sizes: Sequence[int]) -> List[int]:
    """The sizes a symbolic law (run at the largest of ``sizes``) is checked at by real
    counts: the smallest and the middle one (two, as a fitted law holds two out; one when
    only two sizes are given)."""
    ordered = sorted(sizes)
    middle = ordered[len(ordered) // 2]
    return [ordered[0]] if middle == ordered[-1] else [ordered[0], middle]


def symbolic_check(found: Any, rows: Sequence[LawRow]) -> Optional[str]:
    """None where the symbolic law of ``found`` (a
    :class:`fvcore_ext.laws.symbolic.SymbolicCount` with a law) gives every counted total and
    every family of ``rows`` (real counts), else the first disagreement in words."""
    variable = found.variable
    for row in rows:
        total = found.law.value(row.size)
        families = {f: law.value(row.size) for f, law in found.by_family.items()}
        if total != row.total:
            return (f"the symbolic law {found.law} gives {total} at {variable} = {row.size}, "
                    f"where the count is {row.total:,}")
        if {f: v for f, v in families.items() if v} != row.by_family:
            return (f"the symbolic law's families differ from the count's at {variable} = "
                    f"{row.size}")
    return None


def symbolic_report(found: Any, sizes: Sequence[int], *, label: str = "model",
                    input_shape: Optional[Shape] = None, preset: str = "full",
                    backward: bool = False, square_name: Optional[str] = None,
                    checked: Sequence[LawRow] = ()) -> LawReport:
    """The :class:`LawReport` (MACs) of a :class:`fvcore_ext.laws.symbolic.SymbolicCount`
    that has a law: a row per size, the law's exact values (the real counts at the sizes of
    ``checked``, which :func:`symbolic_check` found equal); each Law records the ``checked``
    sizes and counts in ``checked_on`` and ``counts``.

    Raises:
        ValueError: the law is not an integer at one of ``sizes`` (a size of another kind).
    """
    variable = found.variable
    if square_name is None and input_shape is not None \
            and _letters(input_shape).count(variable) >= 2:
        square_name = "pixels"

    def value(law: Law, size: int) -> int:
        exact = law.value(size)
        if exact.denominator != 1:
            raise ValueError(f"{label}: the symbolic law {law} is not an integer at "
                             f"{variable} = {size}")
        return exact.numerator

    def with_check(law: Law, counts: List[Tuple[int, int]]) -> Law:
        if not counts:
            return law
        return dataclasses.replace(law, checked_on=tuple(size for size, _ in counts),
                                   counts=tuple(counts))

    rows = []
    for size in sorted(sizes):
        by_family = {f: value(law, size) for f, law in found.by_family.items()}
        rows.append(LawRow(size=size, total=value(found.law, size),
                           by_family={f: v for f, v in by_family.items() if v}))
    checked = sorted(checked, key=lambda row: row.size)
    law = with_check(found.law, [(row.size, row.total) for row in checked])
    by_family = {f: with_check(fl, [(row.size, row.by_family.get(f, 0)) for row in checked])
                 for f, fl in found.by_family.items()}
    families = _family_order(rows)
    return LawReport(label=label, variable=variable, rows=rows, law=law,
                     by_family={f: by_family[f] for f in families}, square_name=square_name,
                     input_shape=tuple(input_shape) if input_shape is not None else None,
                     preset=preset, backward=backward, families=families, route="symbolic",
                     conditions=tuple(found.conditions))


def law_report(rows: Sequence[LawRow], *, variable: str = "S", label: str = "model",
               held_out: int = 2, max_degree: int = 4, square_name: Optional[str] = None,
               input_shape: Optional[Tuple[Any, ...]] = None, engine: str = "dispatch",
               device: str = "meta", preset: str = "full",
               backward: bool = False, how: Optional[str] = None) -> LawReport:
    """Fit the exact laws of counts already made: the total's and every family's (MACs).

    For counts that :func:`count_law` cannot make itself (a Hugging Face model counted with
    its own named inputs, a decode step with a KV cache): ``rows`` holds one :class:`LawRow`
    per size (total MACs and MACs by family; a family missing at a size counts 0 there).
    The other arguments are :func:`count_law`'s and only describe the counts in the report.

    Returns:
        a :class:`LawReport`, rows sorted by size.

    Raises:
        ValueError: sizes not distinct positive ints, or fewer than ``held_out + 1``.
    """
    rows = sorted(rows, key=lambda row: row.size)
    sizes = _check_sizes([row.size for row in rows], held_out)
    families = _family_order(rows)
    fit = dict(max_degree=max_degree, held_out=held_out, variable=variable)
    law = fit_law(sizes, [row.total for row in rows], **fit)
    by_family = {family: fit_law(sizes, [row.by_family.get(family, 0) for row in rows], **fit)
                 for family in families}
    return LawReport(label=label, variable=variable, rows=list(rows), law=law,
                     by_family=by_family, square_name=square_name, input_shape=input_shape,
                     engine=engine, device=device, preset=preset, backward=backward,
                     families=families, how=how)


def _family_order(rows: Sequence[LawRow]) -> List[str]:
    # largest at the largest size first
    names = {name for row in rows for name in row.by_family}
    last = rows[-1].by_family if rows else {}
    return sorted(names, key=lambda name: (-last.get(name, 0), name))


def _built(build: Callable[[int], Built], size: int, input_shape: Optional[Shape],
           variable: str, device: str, dtype: torch.dtype):
    built = build_on_meta(lambda: build(size)) if device == "meta" else build(size)
    if isinstance(built, nn.Module):
        model, inputs = built, None
    elif isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module):
        model, inputs = built
    else:
        raise ValueError(f"build({size}) returned {type(built).__name__}: expected an "
                         f"nn.Module or (model, inputs)")
    if inputs is None:
        if input_shape is None:
            raise ValueError("build returned a model alone: give input_shape, e.g. "
                             "(1, 3, 'S', 'S')")
        inputs = (input_for(input_shape, variable, size, device, dtype),)
    if isinstance(inputs, dict):                 # keyword inputs: {"pixel_values": x}
        return model, tuple(inputs.values()), list(inputs)
    return model, inputs, None


def compare_laws(models: Sequence[Tuple[str, Callable[[int], Built], Optional[Shape]]],
                 sizes: Sequence[int], **kwargs) -> LawComparison:
    """:func:`count_law` for each ``(label, build, input_shape)`` over the same ``sizes``
    (``kwargs`` go to every call: ``variable``, ``engine``, ``device``, ...).

    Returns:
        a :class:`LawComparison`; its ``format()`` is one table of total MACs per size and
        model, then each model's law.

    Raises:
        ValueError: no models, and whatever :func:`count_law` raises.
    """
    if not models:
        raise ValueError("compare_laws needs at least one (label, build, input_shape)")
    return LawComparison([count_law(build, shape, sizes, label=label, **kwargs)
                          for label, build, shape in models])
