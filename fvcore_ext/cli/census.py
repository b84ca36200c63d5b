"""The op census: every op kind a model's trace runs, with the rule family that counts it.

``python -m fvcore_ext census MODEL [--input-shape ...]`` (or :func:`census`) traces the model
once, the way fvcore and torchprofile trace it, and lists each op kind (``aten::...``,
``prim::PythonOp.<ClassName>``) with its number of calls, the family of the pack's rule
(``matmul``, ``elementwise``, ``zero-cost``, ...; :data:`fvcore_ext.ops.FAMILIES`) or
``unknown``, and the MACs the rule gives under the preset. An unknown op counts 0 in both tools
and may be large: add a rule with :func:`fvcore_ext.register_rule`. Graph structure
(``prim::Constant``, ``prim::ListConstruct``, ...) is not an op and is not listed, as fvcore
skips it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from ..ops.diagnostics import collect_ops
from ..engines.jit.reader import op_kind, read_node
from .exits import fail, guarded
from ..runtime.meta import MetaDeviceError, meta_tracing
from ..ops import OP_TABLE
from ..rules import PRESETS, check_preset
from ..engines.jit.tracing import TraceAdapter, eval_mode, unwrap_model

__all__ = ["UNKNOWN_FAMILY", "OpCensus", "OpKind", "census", "format_census", "main"]

UNKNOWN_FAMILY = "unknown"


@dataclass(frozen=True)
class OpKind:
    """One op kind of a trace: its name, calls, rule family (or ``"unknown"``) and the MACs
    its rule gives over all calls (0 for an unknown op)."""

    op: str
    calls: int
    family: str
    macs: int


@dataclass(frozen=True)
class OpCensus:
    """What :func:`census` returns: ``ops`` sorted by MACs, then calls; ``preset``;
    ``uncounted``: op kinds with a rule that could not read some call (counted 0 there, with a
    warning naming the reason)."""

    ops: List[OpKind]
    preset: str
    uncounted: List[str]

    @property
    def unknown(self) -> List[str]:
        """Op kinds no rule counts (0 MACs in both tools, may be large)."""
        return [o.op for o in self.ops if o.family == UNKNOWN_FAMILY]

    def by_family(self) -> Dict[str, int]:
        """MACs per rule family."""
        totals: Counter = Counter()
        for o in self.ops:
            totals[o.family] += o.macs
        return dict(totals.most_common())


def _is_op(kind: str) -> bool:
    # fvcore's rule (jit_analysis._should_ignore_node): prim:: nodes are graph structure,
    # except autograd Functions and calls into scripted code.
    return not kind.startswith("prim::") or kind.startswith(("prim::PythonOp",
                                                             "prim::CallFunction"))


def census(model: nn.Module, inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
           input_names: Optional[Sequence[Optional[str]]] = None,
           preset: str = "full") -> OpCensus:
    """Trace ``model`` on ``inputs`` (eval mode, ``torch.no_grad()``, every module's mode
    restored) and list every op kind with its calls, rule family and MACs under ``preset``.

    Args:
        model: any ``nn.Module``; outputs may be tensors, tuples, dicts or dataclasses.
        inputs: a tensor or a sequence of tensors, positional unless named.
        input_names: per input, the keyword to pass it as, or ``None``.
        preset: ``"full"`` or ``"paper"``.

    Returns:
        An :class:`OpCensus`; MACs are the pack's rules (the numbers fvcore + pack and
        torchprofile + pack give).

    A model and inputs on the meta device are traced without arithmetic (a 70B model's census
    takes seconds); see :func:`fvcore_ext.runtime.meta.meta_tracing`.

    Raises:
        ValueError: unknown preset. fvcore_ext.meta.MetaDeviceError: on meta, the model reads
            tensor data. Whatever the model raises while traced.
    """
    check_preset(preset)
    model = unwrap_model(model)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    adapter = TraceAdapter(model, list(input_names or [None] * len(inputs)))
    # meta_tracing: a meta model (shapes only) traces as on CPU (fvcore_ext/meta.py says why)
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings(), meta_tracing():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        graph, _ = torch.jit._get_trace_graph(adapter, inputs)
    calls: Counter = Counter()
    macs: Counter = Counter()
    with collect_ops() as log:
        for node in graph.nodes():
            kind = op_kind(node)
            if not _is_op(kind):
                continue
            calls[kind] += 1
            rule = OP_TABLE.get(kind)
            if rule is not None and not rule.always_zero:
                macs[kind] += rule.count(read_node(node), preset)
    ops = [OpKind(kind, n, OP_TABLE[kind].family if kind in OP_TABLE else UNKNOWN_FAMILY,
                  macs[kind]) for kind, n in calls.items()]
    ops.sort(key=lambda o: (-o.macs, -o.calls, o.op))
    return OpCensus(ops, preset, [u.op for u in log.uncounted])


def format_census(title: str, result: OpCensus) -> str:
    """``result`` as a text table under ``title``, unknown ops named at the end."""
    total = sum(o.macs for o in result.ops)
    rows = [("op", "calls", "family", f"MACs ({result.preset})")] + [
        (o.op, str(o.calls), o.family, f"{o.macs:,}") for o in result.ops]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{title}: {len(result.ops)} op kinds, {total:,} MACs, "
             f"{len(result.unknown)} unknown"]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j in (0, 2) else c.rjust(w)
                               for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if result.unknown:
        lines.append("unknown (counted 0 in both tools; add a rule with "
                     "fvcore_ext.register_rule): " + ", ".join(result.unknown))
    if result.uncounted:
        lines.append("has a rule but some calls could not be read (see the warnings): "
                     + ", ".join(result.uncounted))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fvcore_ext census MODEL [MODEL ...]``: print each model's census. The
    models share the input options (reference models have default inputs). Returns 0, 1 if
    some op is unknown or uncounted (a rule could not read a call), so a script can gate on
    full coverage, or 2 on bad input, a model that cannot be traced or stdout closed early,
    with a one-line reason on stderr (and ``{"error": ..., "status": 2}`` on stdout with
    ``--format json``), or 130 on Ctrl-C. A progress bar (one step per model) goes to stderr
    when it is a terminal, unless ``--quiet`` or ``--format json``; what a model prints goes to
    stderr; the RNG is left as it was."""
    from .main import DEVICES, DTYPES, reference_models_help

    p = argparse.ArgumentParser(
        prog="python -m fvcore_ext census",
        description="List every op kind a model runs, with the rule family that counts it "
                    "or 'unknown'. Exit status 1 if some op is unknown or could not be "
                    "counted, 2 on bad input.",
        epilog=reference_models_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a reference model name or package.module:callable")
    p.add_argument("--input-shape", nargs="+", action="append", metavar="N")
    p.add_argument("--input-name", action="append")
    p.add_argument("--input-dtype", action="append", help=", ".join(DTYPES))
    p.add_argument("--preset", choices=PRESETS, default="full")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="meta: build the model under torch.device('meta') and trace shapes "
                        "only, no weights (default cpu)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (drawn on stderr, one step per model, only when it "
                        "is a terminal and never under --format json)")
    args = p.parse_args(argv)
    results = {}
    status = guarded(lambda: _run(args, results))
    if status:
        return status
    return 1 if any(r.unknown or r.uncounted for r in results.values()) else 0


def _run(args, results) -> int:
    from .main import BrokenPipe, UsageError, _inputs, _write, check_input_names, load_model, \
        trace_failure
    from .report import progress, show_progress

    try:
        bar = show_progress(args.quiet, args.format)
        for spec in progress(args.models, "census", bar, unit="model"):
            with contextlib.redirect_stdout(sys.stderr):   # the model's prints: stdout is ours
                model = load_model(spec, args.device)
                inputs = _inputs(args, spec, args.device)
                name_hint = check_input_names(model, args.input_name)
                try:
                    results[spec] = census(model, inputs, args.input_name, args.preset)
                except MetaDeviceError as error:
                    raise UsageError(error.line("--device cpu")) from None
                except SystemExit as error:
                    raise UsageError(f"{spec!r} called sys.exit({error.code!r}) while traced"
                                     ) from None
                except Exception as error:  # the model's own code may raise anything
                    raise UsageError(trace_failure(spec, inputs, error, name_hint)) from None
        if args.format == "json":
            _write(json.dumps({spec: {"preset": r.preset, "unknown": r.unknown,
                                      "ops": [asdict(o) for o in r.ops]}
                               for spec, r in results.items()}, indent=2))
        else:
            _write("\n\n".join(format_census(spec, r) for spec, r in results.items()))
    except (UsageError, BrokenPipe) as error:
        return fail(error, args.format == "json")
    return 0
