"""Render a :class:`CountReport` for a person (table, markdown) or a program (json).

Every total names its unit and shows MACs and FLOPs (FLOPs = 2 x MACs).
"""
from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterable, Iterator, List, Optional, Sequence, TypeVar

import torch

from ..engines.analysis import CountReport

__all__ = ["FORMATS", "building", "format_report", "human", "progress", "show_progress"]

T = TypeVar("T")

FORMATS = ("table", "json", "markdown")


def human(count: int, unit: str) -> str:
    """``count`` scaled to G (``4.412 GMACs``); exact below 1000."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(count) >= scale:
            return f"{count / scale:.3f} {prefix}{unit}"
    return f"{count} {unit}"


def show_progress(quiet: bool = False, fmt: str = "table") -> bool:
    """Whether a command draws a progress bar: only on a terminal's stderr, never with
    ``--quiet`` nor under ``--format json`` (a program reads that run)."""
    if quiet or fmt == "json":
        return False
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):     # stderr replaced or closed
        return False


def progress(items: Iterable[T], desc: str, enabled: bool, total: Optional[int] = None,
             unit: str = "it") -> Iterable[T]:
    """``items`` with a ``tqdm`` bar on stderr (``desc``, one step per item) when ``enabled``
    (:func:`show_progress`), else ``items`` as they are. The bar is removed when done, so only
    the result stays on the terminal; without ``tqdm`` installed there is no bar."""
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True)


@contextlib.contextmanager
def building(desc: str, enabled: bool) -> Iterator[None]:
    """While the block builds a model, a ``tqdm`` counter on stderr of the submodules built so
    far (torch's module-registration hook, removed on exit), so that a huge config shows it is
    moving. Nothing when not ``enabled`` (:func:`show_progress`) or without ``tqdm``. Building
    only: no hook is left while anything is counted."""
    register = getattr(torch.nn.modules.module, "register_module_module_registration_hook",
                       None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if not enabled or tqdm is None or register is None:
        yield
        return
    bar = tqdm(desc=desc, unit=" modules", file=sys.stderr, leave=False, dynamic_ncols=True)
    def built(module, name, submodule):
        bar.update()         # returns None: a hook's return value would replace the submodule

    handle = register(built)
    try:
        yield
    finally:
        handle.remove()
        bar.close()


def _modules(report: CountReport, depth: int) -> List[tuple]:
    rows = []
    for name, macs in report.by_module.items():
        level = 0 if name == "" else name.count(".") + 1
        if level <= depth:
            rows.append((name or "(model)", macs))
    return rows


def _grid(header: Sequence[str], rows: Sequence[Sequence], markdown: bool) -> List[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(r) + " |" for r in cells[1:]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]]


def _short(op: str) -> str:
    return op.split("::", 1)[-1]


def _share(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def format_report(report: CountReport, fmt: str = "table", depth: int = 2,
                  title: str = "") -> str:
    """The report as text. ``fmt``: "table", "markdown" or "json"; ``depth``: deepest module
    level in the per-module table (0: the whole model only). ``ValueError`` on another format."""
    if fmt == "json":
        extra = {k: getattr(report, k) for k in ("forward_by_family", "backward_by_family")
                 if report.backward_macs and getattr(report, k, None) is not None}
        return json.dumps(dict(report.to_dict(), model=title, **extra), indent=2)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    md = fmt == "markdown"
    total = report.total_macs
    head = "## " if md else ""
    inputs = ", ".join(f"{n}={tuple(s)}" if n else str(tuple(s)) for n, s in report.inputs)
    lines = [
        f"{head}{title or 'model'}: {human(total, 'MACs')} = {human(report.total_flops, 'FLOPs')}",
        "",
        f"- input shape: {inputs}",
        f"- preset: {report.preset}",
        "- engine: " + ("jit (fvcore's trace)" if report.engine == "jit" else
                        "dispatch (PyTorch's dispatcher, FlopCounterMode)"),
        *(["- device: meta (shapes only: no weights, no arithmetic; the CPU numbers)"]
          if report.device == "meta" else []),
        f"- total: {total:,} MACs = {report.total_flops:,} FLOPs "
        f"({total / 1e9:.4f} GMACs, {report.total_flops / 1e9:.4f} GFLOPs)",
        f"- parameters: {report.params:,} ({report.params / 1e6:.3f} M)",
    ]
    if report.backward_macs:
        lines[-1:-1] = [
            f"- training step: forward {report.forward_macs:,} MACs + backward "
            f"{report.backward_macs:,} MACs (backward / forward = "
            f"{report.backward_macs / max(report.forward_macs, 1):.2f})"]
    if report.was_training:
        lines.append("- the model was in train mode; it was counted in eval mode and restored:")
        lines += [f"  - {effect}" for effect in report.train_mode_effects]
    if report.trace_warnings:
        lines.append("- the trace records the path these inputs took; the tracer warned:")
        lines += [f"  - {text}" for text in report.trace_warnings]
    lines += ["", f"{head}By operator (MACs)" if md else "By operator (MACs):"]
    lines += _grid(["operator", "MACs", "share"],
                   [(op, f"{m:,}", _share(m, total)) for op, m in report.by_operator.items()], md)
    lines += ["", f"{head}By family (MACs)" if md else "By family (MACs):"]
    forward = getattr(report, "forward_by_family", None)
    backward = getattr(report, "backward_by_family", None)
    if report.backward_macs and forward is not None and backward is not None:
        lines += _grid(["family", "forward MACs", "backward MACs", "total MACs", "share"],
                       [(f, f"{forward.get(f, 0):,}", f"{backward.get(f, 0):,}", f"{m:,}",
                         _share(m, total)) for f, m in report.by_family.items()], md)
    else:
        lines += _grid(["family", "MACs", "share"],
                       [(f, f"{m:,}", _share(m, total)) for f, m in report.by_family.items()],
                       md)
    lines += ["", f"{head}By module, depth {depth} (MACs)" if md else
              f"By module, depth {depth} (MACs):"]
    lines += _grid(["module", "MACs", "share"],
                   [(n, f"{m:,}", _share(m, total)) for n, m in _modules(report, depth)], md)
    if report.hardware:
        lines += _roofline_lines(report, depth, md, head)
    lines += ["", f"{head}Not counted" if md else "Not counted:"]
    if report.unsupported_ops:
        lines.append("- unknown, no rule (may be large): " + ", ".join(
            f"{op} x{n}" for op, n in report.unsupported_ops.items())
            + " (add a rule for both tools with fvcore_ext.register_rule)")
    for op in report.uncounted:
        lines.append(f"- uncounted, {op.op} x{op.calls} (in {op.scope or '<top>'}): {op.reason}")
    if not report.unsupported_ops and not report.uncounted:
        lines.append("- nothing: every op in the trace has a rule")
    if report.zero_by_design:
        what = "data movement, comparisons, shape arithmetic" + (
            ", elementwise ops (paper preset)" if report.preset == "paper" else "")
        lines.append(f"- zero by design ({what}): " + ", ".join(
            f"{_short(op)} x{n}" for op, n in report.zero_by_design.items()))
    if report.fused_weight_modules or report.unused_modules:
        lines += ["", f"{head}Modules never called" if md else "Modules never called:"]
    if report.fused_weight_modules:
        missing = set(report.unsupported_ops) | {op.op for op in report.uncounted}

        def users(ops):
            return ", ".join(_short(op) + (", NOT counted" if op in missing else "")
                             for op in ops)

        lines.append("- weights used directly by another op: " + ", ".join(
            f"{name} ({users(ops)})" for name, ops in report.fused_weight_modules.items()))
    if report.unused_modules:
        lines.append("- unused: " + ", ".join(report.unused_modules))
    return "\n".join(lines)


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _intensity(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _roofline_lines(report: CountReport, depth: int, md: bool, head: str) -> List[str]:
    # bytes moved and the roofline time on the chosen device (issue 29); modules by time
    seconds = report.estimated_seconds or 0.0
    memory = sum(s for name, s in report.seconds_by_operator.items()
                 if report.bound_by_operator.get(name) == "memory")
    lines = ["", f"{head}Bytes and roofline time" if md else "Bytes and roofline time:",
             f"- device: {report.hardware}",
             f"- bytes moved: {report.total_bytes:,} ({report.total_bytes / 1e9:.4f} GB); "
             f"intensity {_intensity(report.intensity)} FLOPs/byte",
             f"- estimated time: {_seconds(seconds)} (per op max(FLOPs / peak, bytes / "
             f"bandwidth), summed); memory-bound operators {_share(memory, seconds)} of it"]
    if report.bytes_unread:
        lines.append("- bytes not read (counted 0): " + ", ".join(
            f"{op} x{n}" for op, n in report.bytes_unread.items()))
    intensity = report.intensity_by_module()
    rows = [(name or "(model)", _seconds(s), _share(s, seconds),
             report.bound_by_module.get(name, "-"), _intensity(intensity.get(name)))
            for name, s in sorted(report.seconds_by_module.items(), key=lambda kv: -kv[1])
            if (0 if name == "" else name.count(".") + 1) <= depth][:15]
    lines += ["", f"{head}Modules by estimated time, depth {depth}" if md else
              f"Modules by estimated time, depth {depth}:"]
    lines += _grid(["module", "time", "share", "bound", "FLOPs/byte"], rows, md)
    return lines
