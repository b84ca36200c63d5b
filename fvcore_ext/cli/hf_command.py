"""``python -m fvcore_ext hf:SPEC``: the command line of :mod:`fvcore_ext.hf`, and the sweep's
table and plot (:func:`format_sweep`, :func:`plot_sweep`).

A tool: imports the ``hf`` integration, the engines and the op table.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

from ..hf.count import (DEFAULT_NEW_TOKENS, DEFAULT_SEQ_LEN, HEADS, HFSpecError, SweepRow,
                        count_hf, families, load_hf, parse_overrides, sweep_hf)
from ..ops import FAMILIES
from ..rules import PRESETS
from ..runtime.meta import MetaDeviceError

__all__ = ["format_sweep", "main", "plot_sweep"]


def _columns(rows: Sequence[SweepRow], key) -> List[str]:
    present = set()
    for row in rows:
        present |= {f for f, m in key(row).items() if m}
    return [f for f in FAMILIES + ("unknown",) if f in present]


def _grid(header, body, md: bool) -> List[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in body]
    if md:
        return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" + "---:|" * (len(header) - 1)] \
            + ["| " + " | ".join(r) + " |" for r in cells[1:]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in
            [cells[0], ["-" * w for w in widths]] + cells[1:]]


def _share(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def format_sweep(rows: Sequence[SweepRow], fmt: str = "table", title: str = "") -> str:
    """The rows of :func:`sweep_hf` as text: one prefill row per length with the total (MACs
    and FLOPs) and its parts by family, the attention share; with decode, the per-token step
    and the cost of generating. ``fmt``: ``"table"``, ``"markdown"`` or ``"json"``."""
    if fmt == "json":
        return json.dumps({"model": title, "rows": [{
            "seq_len": r.seq_len, "total_macs": r.prefill.total_macs,
            "total_flops": r.prefill.total_flops, "by_family": r.by_family,
            "params": r.prefill.params, "inputs": [
                {"name": n, "shape": list(s)} for n, s in r.prefill.inputs],
            **({"decode": {"cache_len": r.decode.cache_len,
                           "step_macs": r.decode.step.total_macs,
                           "step_by_family": families(r.decode.step),
                           "per_cache_token_macs": r.decode.per_cache_token,
                           "new_tokens": r.decode.new_tokens,
                           "generate_macs": r.decode.generate_macs,
                           "exact": r.decode.exact, "how": r.decode.how}}
               if r.decode else {})} for r in rows]}, indent=2)
    md = fmt == "markdown"
    first = rows[0].prefill
    inputs = ", ".join(f"{n}={tuple(s)}" for n, s in first.inputs)
    lines = [f"{'## ' if md else ''}{title}", "",
             f"- parameters: {first.params:,} ({first.params / 1e6:.3f} M)",
             f"- preset: {first.preset}; device: {first.device}; engine: "
             f"{getattr(first, 'engine', 'jit')}"
             + (f" (decode: {rows[0].decode.how})" if rows[0].decode else ""),
             f"- inputs at the first length: {inputs}",
             "- MACs; FLOPs = 2 x MACs", ""]
    cols = _columns(rows, lambda r: r.by_family)
    lines += [f"{'### ' if md else ''}Prefill" + ("" if md else ":")]
    lines += _grid(["seq len", "total MACs", "total FLOPs", *cols, "attention share"],
                   [(r.seq_len, f"{r.prefill.total_macs:,}", f"{r.prefill.total_flops:,}",
                     *(f"{r.by_family.get(c, 0):,}" for c in cols),
                     _share(r.by_family.get("attention", 0), r.prefill.total_macs))
                    for r in rows], md)
    if rows[0].decode:
        dec = [r for r in rows if r.decode]
        fams = {id(r): families(r.decode.step) for r in dec}
        cols = _columns(dec, lambda r: fams[id(r)])
        t = dec[0].decode.new_tokens
        lines += ["", f"{'### ' if md else ''}Decode: one step with a KV cache of seq len "
                  f"tokens ({dec[0].decode.how})" + ("" if md else ":")]
        lines += _grid(["seq len", "per-token MACs", *cols, "+ per cache token",
                        f"generate {t} tokens (MACs)", f"prefill + {t} tokens (FLOPs)"],
                       [(r.seq_len, f"{r.decode.step.total_macs:,}",
                         *(f"{fams[id(r)].get(c, 0):,}" for c in cols),
                         f"{r.decode.per_cache_token:,}",
                         f"{r.decode.generate_macs:,}" + ("" if r.decode.exact else " (approx.)"),
                         f"{2 * (r.prefill.total_macs + r.decode.generate_macs):,}")
                        for r in dec], md)
        exact = all(r.decode.exact for r in dec)
        lines += ["", "Generating T tokens after a prompt of N: T decode steps at cache "
                      "lengths N .. N+T-1; " + (
                          "exact: the step cost is affine in the cache length (checked at N, "
                          "N+1 and N+T-1)." if exact else
                          "(approx.): the step cost is not affine in the cache length "
                          "(sliding windows); interpolated from N, N+1 and N+T-1.")]
    return "\n".join(lines)


def plot_sweep(rows: Sequence[SweepRow], path: str, title: str = "") -> None:
    """Draw total GFLOPs (log scale) and the attention family's share of the total against
    sequence length to ``path`` (PNG). Needs matplotlib (``pip install matplotlib``).

    Raises:
        HFSpecError: matplotlib is not installed, or fewer than two lengths were counted.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HFSpecError("--plot needs matplotlib: pip install matplotlib") from None
    xs = [r.seq_len for r in rows]
    total = [2 * r.prefill.total_macs / 1e9 for r in rows]
    share = [100 * r.by_family.get("attention", 0) / max(1, r.prefill.total_macs) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(xs, total, "o-", color="tab:blue", label="total GFLOPs (prefill)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("GFLOPs (prefill)", color="tab:blue")
    right = ax.twinx()
    right.plot(xs, share, "s--", color="tab:red", label="attention share")
    right.set_ylabel("attention share of the total (%)", color="tab:red")
    right.set_ylim(0, 100)
    right.axhline(50, color="tab:red", alpha=0.25, linewidth=1)   # attention = all the rest
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fvcore_ext hf:SPEC",
        description="Count a Hugging Face model from its config (built on meta: no weights). "
                    "SPEC: a config.json, a directory holding one, a Hub id (local cache) or "
                    "a model type (hf:llama). MACs; FLOPs = 2 x MACs.")
    p.add_argument("spec", help="hf:SPEC")
    p.add_argument("--seq-len", default=str(DEFAULT_SEQ_LEN),
                   help=f"text tokens, one or a comma list (default {DEFAULT_SEQ_LEN})")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--image-size", type=int, nargs="+", metavar="H W",
                   help="image height and width (one number: square); default the config's")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="override a config entry (dotted for sub-configs: "
                        "text_config.num_hidden_layers=2); repeatable")
    p.add_argument("--head", help=f"model class: {', '.join(HEADS)} or a transformers class "
                                  f"name (default: the base model)")
    p.add_argument("--text-only", action="store_true",
                   help="token ids only: a vision-language model's language path, no image")
    p.add_argument("--decode", action="store_true",
                   help="also count one generation step at a KV cache of each length")
    p.add_argument("--new-tokens", type=int, default=DEFAULT_NEW_TOKENS,
                   help=f"with --decode: tokens to generate (default {DEFAULT_NEW_TOKENS})")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw total FLOPs and attention share against length (matplotlib)")
    p.add_argument("--preset", choices=PRESETS, default="full")
    p.add_argument("--engine", choices=("jit", "dispatch"), default=None)
    p.add_argument("--device", choices=("meta", "cpu"), default="meta")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    p.add_argument("--depth", type=int, default=2, help="per-module table depth (one length)")
    p.add_argument("--strict", action="store_true")
    return p


def _lengths(text: str) -> List[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise HFSpecError(f"bad --seq-len {text!r}: expected positive integers like 1024,4096")
    return [int(p) for p in parts]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fvcore_ext hf:SPEC [options]``: returns the exit status (0 ok, 2 a spec,
    option, input or trace that fails, with a one-line reason on stderr)."""
    from .report import format_report

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    spec = args.spec[3:] if args.spec.startswith("hf:") else args.spec
    try:
        lengths = _lengths(args.seq_len)
        image = tuple(args.image_size) if args.image_size else None
        if image and len(image) > 2:
            raise HFSpecError("--image-size takes H or H W")
        hf = load_hf(spec, parse_overrides(args.overrides), args.head, args.device)
        title = f"{hf.title}, {hf.source}" + (
            "; " + ", ".join(f"{k}={v}" for k, v in hf.overrides.items())
            if hf.overrides else "")
        try:
            if len(lengths) == 1 and not args.decode and not args.plot:
                report = count_hf(hf, lengths[0], args.batch, image, preset=args.preset,
                                  engine=args.engine, text_only=args.text_only,
                                  strict=args.strict)
                print(format_report(report, args.format, args.depth, title=title))
                return 0
            rows = sweep_hf(hf, lengths, args.batch, image, preset=args.preset,
                            engine=args.engine, decode=args.decode,
                            new_tokens=args.new_tokens, text_only=args.text_only,
                            strict=args.strict)
        except MetaDeviceError as error:
            raise HFSpecError(error.line("--device cpu")) from None
        except HFSpecError:
            raise
        except Exception as error:   # the model's own code may raise anything while traced
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise HFSpecError(f"cannot count {hf.title}: {type(error).__name__}: {text}"
                              ) from None
        print(format_sweep(rows, args.format, title))
        if args.plot:
            plot_sweep(rows, args.plot, title=f"{hf.title}, preset {args.preset}" + (
                "; " + ", ".join(f"{k}={v}" for k, v in hf.overrides.items())
                if hf.overrides else ""))
            print(f"\nwrote {args.plot}")
    except HFSpecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
