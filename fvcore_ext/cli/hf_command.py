"""``python -m fvcore_ext hf:SPEC``: the command line of :mod:`fvcore_ext.hf`, and the sweep's
table and plot (:func:`format_sweep`, :func:`plot_sweep`).

A tool: imports the ``hf`` integration, the engines and the op table.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import warnings
from typing import List, Optional, Sequence

import torch

from ..hf.count import (DEFAULT_NEW_TOKENS, DEFAULT_SEQ_LEN, HEADS, HFSpecError, SweepRow,
                        count_hf, families, input_names, load_hf, parse_overrides,
                        pass_families, sweep_hf)
from ..laws.count import ROUTES
from ..ops import FAMILIES
from ..ops.diagnostics import UncountableOpError
from .exits import fail, guarded
from ..runtime.meta import MetaDeviceError

__all__ = ["add_hf_options", "check_plot_path", "format_sweep", "hf_law", "hf_options_help",
           "image_size_key", "main", "plot_sweep"]


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
    and the cost of generating; for training rows (``backward=True``) one training-step row
    per length: forward, backward and total MACs, total FLOPs, families (both passes) and the
    attention share (json adds each pass's families). ``fmt``: ``"table"``, ``"markdown"`` or
    ``"json"``."""
    if fmt == "json":
        return json.dumps({"model": title, "rows": [{
            "seq_len": r.seq_len, "total_macs": r.prefill.total_macs,
            "total_flops": r.prefill.total_flops, "by_family": r.by_family,
            **({"training": True, "forward_macs": r.prefill.forward_macs,
                "backward_macs": r.prefill.backward_macs,
                "forward_by_family": pass_families(r.prefill)[0],
                "backward_by_family": pass_families(r.prefill)[1]} if r.training else {}),
            "params": r.prefill.params, "inputs": [
                {"name": n, "shape": list(s)} for n, s in r.prefill.inputs],
            **({"decode": {"cache_len": r.decode.cache_len,
                           "step_macs": r.decode.step.total_macs,
                           "step_by_family": families(r.decode.step),
                           "per_cache_token_macs": r.decode.per_cache_token,
                           "new_tokens": r.decode.new_tokens,
                           "generate_macs": r.decode.generate_macs,
                           "exact": r.decode.exact, "how": r.decode.how,
                           **_roofline_fields(r.decode.step)}}
               if r.decode else {}), **_roofline_fields(r.prefill)} for r in rows]}, indent=2)
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
    if rows[0].training:
        lines[-2:-1] = ["- training step: the model in train mode, forward, then backward from "
                        "the sum of its outputs (dispatch engine); families cover both passes",
                        "- MACs; FLOPs = 2 x MACs"]
        lines += [f"{'### ' if md else ''}Training step (forward + backward)"
                  + ("" if md else ":")]
        lines += _grid(["seq len", "forward MACs", "backward MACs", "total MACs",
                        "total FLOPs", *cols, "attention share"],
                       [(r.seq_len, f"{r.prefill.forward_macs:,}",
                         f"{r.prefill.backward_macs:,}", f"{r.prefill.total_macs:,}",
                         f"{r.prefill.total_flops:,}",
                         *(f"{r.by_family.get(c, 0):,}" for c in cols),
                         _share(r.by_family.get("attention", 0), r.prefill.total_macs))
                        for r in rows], md)
        return "\n".join(lines + _roofline_rows(rows, md))
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
    return "\n".join(lines + _roofline_rows(rows, md))


def _roofline_fields(report) -> dict:
    if not report.hardware:
        return {}
    return {"bytes": report.total_bytes, "hardware": report.hardware,
            "estimated_seconds": report.estimated_seconds,
            "bound": report.bound_by_module.get("", "memory")}


def _roofline_rows(rows: Sequence[SweepRow], md: bool) -> List[str]:
    # with --hardware: bytes and roofline time of the prefill (or training step) and of one
    # decode step, per length (issue 29: a decode step is memory-bound, the weights and the KV
    # cache read at the memory bandwidth)
    if not rows[0].prefill.hardware:
        return []
    from .report import _seconds

    what = "training step" if rows[0].training else "prefill"
    header = ["seq len", f"{what} bytes", f"{what} time", "bound"]
    if rows[0].decode:
        header += ["decode step bytes", "decode step time", "bound"]

    def cells(report):
        return [f"{report.total_bytes:,}", _seconds(report.estimated_seconds),
                report.bound_by_module.get("", "memory")]

    body = [[r.seq_len, *cells(r.prefill), *(cells(r.decode.step) if r.decode else [])]
            for r in rows]
    return ["", f"{'### ' if md else ''}Roofline on {rows[0].prefill.hardware}"
            + ("" if md else ":")] + _grid(header, body, md)


def plot_sweep(rows: Sequence[SweepRow], path: str, title: str = "") -> None:
    """Draw total GFLOPs (log scale; for training rows the training step's, with the forward's
    beside it) and the attention family's share of the total against sequence length to
    ``path`` (its extension names the format: ``.png``, ``.pdf``, ``.svg``). Needs matplotlib
    (``pip install matplotlib``); draws on its Agg canvas without changing matplotlib's
    backend.

    Raises:
        HFSpecError: matplotlib is not installed, or ``path`` is refused by
            :func:`check_plot_path`.
        OSError: the file cannot be written.
    """
    check_plot_path(path)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise HFSpecError("--plot needs matplotlib: pip install matplotlib") from None
    xs = [r.seq_len for r in rows]
    total = [2 * r.prefill.total_macs / 1e9 for r in rows]
    share = [100 * r.by_family.get("attention", 0) / max(1, r.prefill.total_macs) for r in rows]
    what = "training step" if rows and rows[0].training else "prefill"
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(xs, total, "o-", color="tab:blue", label=f"total GFLOPs ({what})")
    if rows and rows[0].training:
        ax.plot(xs, [2 * r.prefill.forward_macs / 1e9 for r in rows], "^:", color="tab:green",
                label="forward GFLOPs")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel(f"GFLOPs ({what})", color="tab:blue")
    right = ax.twinx()
    right.plot(xs, share, "s--", color="tab:red", label="attention share")
    right.set_ylabel("attention share of the total (%)", color="tab:red")
    right.set_ylim(0, 100)
    right.axhline(50, color="tab:red", alpha=0.25, linewidth=1)   # attention = all the rest
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- laws

def image_size_key(config) -> str:
    """The config field that sets a model's image size: ``image_size``, or a vision
    sub-config's (``vision_config.image_size``).

    Raises:
        HFSpecError: the config has no image size (a text model).
    """
    if getattr(config, "image_size", None) is not None:
        return "image_size"
    vision = getattr(config, "vision_config", None)
    if vision is not None and getattr(vision, "image_size", None) is not None:
        return "vision_config.image_size"
    raise HFSpecError(f"{getattr(config, 'model_type', 'the config')} has no image_size (nor "
                      f"vision_config.image_size): --image-size lists need a vision config")


def hf_law(spec: str, sizes: Sequence[int], *, over: str = "seq_len",
           seq_len: int = DEFAULT_SEQ_LEN, batch: int = 1, overrides=None,
           head: Optional[str] = None, preset: str = "full", engine: Optional[str] = None,
           device: str = "meta", decode: bool = False, backward: bool = False,
           text_only: bool = False, strict: bool = False, held_out: int = 2,
           max_degree: int = 4, online: bool = False, progress=None, route: str = "auto"):
    """Count a Hugging Face model at each size and fit the exact law of its MACs
    (:func:`fvcore_ext.laws.law_report`: total and every family, ``docs/laws.md``).

    Args:
        spec: as :func:`fvcore_ext.hf.load_hf` (``"gpt2"``, a config.json, a Hub id), or an
            :class:`fvcore_ext.hf.HFModel` it built (rebuilt from its spec and overrides for
            an image-size law).
        sizes: the varied size's values, distinct positive ints, at least ``held_out + 1``.
        over: ``"seq_len"``: the law in L, text tokens (the model built once): the prefill
            (``input_ids`` ``(batch, L)``), with ``decode`` one decode step (one new token) at
            a KV cache of L tokens (:func:`fvcore_ext.hf.count_decode`), with ``backward`` the
            training step (:func:`fvcore_ext.hf.count_hf`). ``"image_size"``: the law in S,
            the image side (H = W = S): the model rebuilt at each S with the config's image
            size set to S (``image_size`` or ``vision_config.image_size``, through
            ``overrides``), counted at ``seq_len`` text tokens where it takes text.
        the rest: as :func:`fvcore_ext.hf.count_hf`; ``held_out``, ``max_degree`` as
            :func:`fvcore_ext.laws.fit_law`; ``progress`` wraps ``sizes`` (a progress bar).
        route: as :func:`fvcore_ext.laws.count_law`: ``"auto"`` (default) gives a text
            model's prefill or training law over L from one symbolic run (the model built
            under a ``FakeTensorMode``, ``input_ids`` of L a ``SymInt`` tokens, at the largest
            length), checked by :func:`fvcore_ext.hf.count_hf` at two others (the smallest
            and the middle one); where that
            gives no law, and for ``decode``, ``over="image_size"``, inputs other than
            ``input_ids``/``attention_mask``/``token_type_ids`` or ``engine="jit"``: counts
            at every size, fitted (``report.route_note`` says why). ``"symbolic"``: that run
            or HFSpecError; ``"counts"``: counts only.

    Returns:
        a :class:`fvcore_ext.laws.LawReport` (MACs), variable ``L`` or ``S``.

    Raises:
        HFSpecError: sizes too few, not positive or repeated; ``over`` or ``route``
            unknown; ``decode`` with ``backward`` or with ``over="image_size"``; a config
            without an image size; ``route="symbolic"`` without a symbolic law; and whatever
            :func:`fvcore_ext.hf.count_hf` or ``count_decode`` raise.
    """
    from ..hf.count import count_decode
    from ..laws import LawRow, law_report

    if over not in ("seq_len", "image_size"):
        raise HFSpecError(f"unknown law variable {over!r}: seq_len or image_size")
    if route not in ROUTES:
        raise HFSpecError(f"unknown route {route!r}; expected one of {', '.join(ROUTES)}")
    if decode and backward:
        raise HFSpecError("--decode counts inference steps; it does not combine with "
                          "--backward")
    if decode and over == "image_size":
        raise HFSpecError("--decode's law is over the cache length: give a --seq-len list, "
                          "not an --image-size list")
    sizes = list(sizes)
    if len(set(sizes)) != len(sizes) or any(n < 1 for n in sizes):
        raise HFSpecError(f"--law sizes must be distinct positive integers, got "
                          f"{', '.join(map(str, sizes))}")
    if len(sizes) < held_out + 1:
        raise HFSpecError(f"--law needs at least {held_out + 1} sizes (1 to fit, {held_out} "
                          f"held out to check), got {len(sizes)}; a law in L² + L needs "
                          f"{3 + held_out}")
    overrides = dict(overrides if overrides is not None else getattr(spec, "overrides", {}))
    hf = load_hf(spec, overrides, head, device, online=online)
    key = image_size_key(hf.config) if over == "image_size" else None
    what = ("one decode step (one new token) against the KV cache's length L" if decode
            else "training step (forward + backward)" if backward else "prefill")
    note = None
    if route != "counts":
        law, note = _symbolic_hf_law(hf, sorted(sizes), key=key, decode=decode, batch=batch,
                                     preset=preset, engine=engine, device=device,
                                     backward=backward, text_only=text_only, strict=strict,
                                     progress=progress)
        if law is not None:
            law.how = (f"{what}; input_ids ({batch}, L); one symbolic run on the dispatch "
                       f"engine, {preset} preset")
            return law
        if route == "symbolic":
            raise HFSpecError(f"{hf.title}: no symbolic law: {note}")
    rows, engines = [], set()
    for n in (progress(sorted(sizes)) if progress else sorted(sizes)):
        if key:
            model = load_hf(hf.spec, {**overrides, key: n}, head, device, online=online)
            report = count_hf(model, seq_len, batch, (n, n), preset=preset, engine=engine,
                              text_only=text_only, strict=strict, backward=backward)
        elif decode:
            report = count_decode(hf, n, 1, batch, None, preset=preset, engine=engine,
                                  text_only=text_only, strict=strict).step
        else:
            report = count_hf(hf, n, batch, None, preset=preset, engine=engine,
                              text_only=text_only, strict=strict, backward=backward)
        engines.add(getattr(report, "engine", engine or "jit"))
        rows.append(LawRow(size=n, total=report.total_macs,
                           by_family={k: v for k, v in families(report).items() if v}))
    variable = "S" if key else "L"
    where = (f"{key} = S, input {batch} x 3 x S x S" if key
             else f"input_ids ({batch}, L)" if not decode else f"batch {batch}")
    engine_text = "/".join(sorted(engines))
    how = f"{what}; {where}; {engine_text} engine on {device}, {preset} preset"
    report = law_report(rows, variable=variable, label=hf.title, held_out=held_out,
                        max_degree=max_degree, square_name="pixels" if key else None,
                        engine=engine_text, device=device, preset=preset, backward=backward,
                        how=how)
    report.route_note = note
    return report


_SYMBOLIC_TEXT_INPUTS = {"input_ids": torch.zeros, "attention_mask": torch.ones,
                         "token_type_ids": torch.zeros}


def _symbolic_hf_law(hf, sizes: List[int], *, key, decode: bool, batch: int, preset: str,
                     engine, device: str, backward: bool, text_only: bool, strict: bool,
                     progress):
    # (LawReport, None) from one symbolic run checked by two counts, or (None, why not)
    from ..hf.inputs import no_data_checks
    from ..laws import LawRow
    from ..laws.count import symbolic_check, symbolic_check_sizes, symbolic_report
    from ..laws.symbolic import symbolic_count

    if decode:
        return None, ("the symbolic route runs no decode step (its KV cache is filled by a "
                      "prefill at each length)")
    if key:
        return None, "the symbolic route varies the text length L, not the image size"
    if engine not in (None, "dispatch") or device != "meta":
        return None, f"the symbolic route runs the dispatch engine on meta, not " \
                     f"{engine or 'jit'} on {device}"
    if len(sizes) < 2 or sizes[-1] < 2:
        return None, "the symbolic route needs two lengths, the largest >= 2"
    names = input_names(hf, sizes[0], batch, text_only)
    if not set(names) <= set(_SYMBOLIC_TEXT_INPUTS):
        return None, (f"the symbolic route makes {', '.join(_SYMBOLIC_TEXT_INPUTS)} only; "
                      f"{hf.model_type} takes {', '.join(names)}")

    def build(length):
        with torch.random.fork_rng(devices=[]):
            model = type(hf.model)(hf.config)
        if hf.dtype is not None:
            model = model.to(hf.dtype)
        return model.eval(), {name: _SYMBOLIC_TEXT_INPUTS[name](batch, length, dtype=torch.long)
                              for name in names}

    found, rows = None, []
    # the run at the largest length, then the checks (one progress step each)
    steps = [sizes[-1]] + symbolic_check_sizes(sizes)
    for size in progress(steps) if progress else steps:
        if found is None:
            with warnings.catch_warnings(), no_data_checks():
                warnings.simplefilter("ignore")
                found = symbolic_count(build, None, variable="L", example_size=size,
                                       preset=preset, backward=backward, check_sizes=sizes)
        elif found.ok:
            check = count_hf(hf, size, batch, None, preset=preset, engine="dispatch",
                             text_only=text_only, strict=strict, backward=backward)
            rows.append(LawRow(size=size, total=check.total_macs,
                               by_family={k: v for k, v in families(check).items() if v}))
    if not found.ok:
        return None, found.reason
    disagreement = symbolic_check(found, rows)
    if disagreement:
        return None, disagreement
    report = symbolic_report(found, sizes, label=hf.title, preset=preset, backward=backward,
                             checked=rows)
    return report, None


# ---------------------------------------------------------------- command line

PLOT_NOTE = "a .png, .pdf, .svg, ... file (matplotlib's formats)"


def add_hf_options(p: argparse.ArgumentParser) -> None:
    """Add ``hf:SPEC``'s own options (those :func:`fvcore_ext.cli.main.add_shared_options`
    does not define): ``--seq-len``, ``--batch``, ``--image-size``, ``--set``, ``--head``,
    ``--text-only``, ``--decode``, ``--new-tokens``, ``--law``, ``--plot``, ``--online``."""
    p.add_argument("--seq-len", default=str(DEFAULT_SEQ_LEN),
                   help=f"text tokens, one or a comma list: one row per length "
                        f"(default {DEFAULT_SEQ_LEN})")
    p.add_argument("--batch", type=_positive_int, default=1, help="batch size (default 1)")
    p.add_argument("--image-size", type=_image_size, nargs="+", metavar="SIZE",
                   help="image height and width (one number: square); default the config's. "
                        "With --law a comma list of square sizes (224,320,448): the config's "
                        "image size is set to each and the law is fitted in S")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="override a config entry (dotted for sub-configs: "
                        "text_config.num_hidden_layers=2); repeatable")
    p.add_argument("--head", help=f"model class: {', '.join(HEADS)} or a transformers class "
                                  f"name (default: the base model); causal-lm counts the "
                                  f"LM head's logits")
    p.add_argument("--text-only", action="store_true",
                   help="token ids only: a vision-language model's language path, no image")
    p.add_argument("--decode", action="store_true",
                   help="also count one generation step at a KV cache of each length")
    p.add_argument("--new-tokens", type=_positive_int, default=DEFAULT_NEW_TOKENS,
                   help=f"with --decode: tokens to generate (default {DEFAULT_NEW_TOKENS})")
    p.add_argument("--law", action="store_true",
                   help="fit the exact law of the MACs (total and families) over the --seq-len "
                        "list (L), or over an --image-size list (S): the prefill's, with "
                        "--decode one decode step's against the cache length, with --backward "
                        "the training step's (docs/laws.md)")
    p.add_argument("--route", choices=ROUTES, default="auto",
                   help="with --law, how the law is found: auto (default): one symbolic run "
                        "of a text model's prefill or training step, checked by two counts, "
                        "else counts at every length, fitted; symbolic: that run or an error; "
                        "counts: counts only")
    p.add_argument("--plot", metavar="FILE.png",
                   help=f"draw total FLOPs and attention share against length to "
                        f"{PLOT_NOTE} (needs matplotlib); with --law the counts and the law, "
                        f"log-log")
    p.add_argument("--online", action="store_true",
                   help="let a Hub id that is not in the local cache be downloaded (its "
                        "config.json only); without it (or HF_HUB_OFFLINE=0) Hub ids are "
                        "resolved from the cache, with no network")


def _image_size(text: str) -> List[int]:
    # "224" or a comma list "224,320,448" (a list of square sizes, for --law)
    parts = text.split(",")
    if not all(re.fullmatch(r"[0-9]+", p.strip()) and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or a comma list "
                                         f"of them (224,320,448)")
    return [int(p) for p in parts]


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    from .main import add_shared_options

    p = argparse.ArgumentParser(
        prog="python -m fvcore_ext hf:SPEC",
        description="Count a Hugging Face model from its config (built on meta: no weights). "
                    "SPEC: a config.json, a directory holding one, a Hub id (local cache) or "
                    "a model type (hf:llama). MACs; FLOPs = 2 x MACs.")
    p.add_argument("spec", help="hf:SPEC")
    group = p.add_argument_group("hf:SPEC options")
    add_hf_options(group)
    shared = p.add_argument_group("options shared with python -m fvcore_ext MODEL")
    add_shared_options(shared, device_default="meta")
    return p


def hf_options_help() -> str:
    """``hf:SPEC``'s own options as ``--help`` prints them, for the main command's help."""
    p = argparse.ArgumentParser(prog="python -m fvcore_ext hf:SPEC", add_help=False)
    add_hf_options(p)
    formatter = p._get_formatter()
    formatter.start_section("hf:SPEC options (python -m fvcore_ext hf:SPEC --help for all; "
                            "the options above apply too, --device defaulting to meta)")
    formatter.add_arguments(p._actions)
    formatter.end_section()
    return formatter.format_help().rstrip()


def _lengths(text: str) -> List[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    # ASCII digits only: '²'.isdigit() is true and int('²') fails
    if not parts or not all(re.fullmatch(r"[0-9]+", p) and int(p) > 0 for p in parts):
        raise HFSpecError(f"bad --seq-len {text!r}: expected positive integers like 1024,4096")
    return [int(p) for p in parts]


def check_plot_path(path: str) -> None:
    """:func:`fvcore_ext.laws.plot.check_plot_path` for ``hf:``: refuse a ``--plot`` target
    before anything is counted.

    Raises:
        HFSpecError: one line saying why.
    """
    from ..laws.plot import check_plot_path as check
    try:
        check(path)
    except ValueError as error:
        raise HFSpecError(str(error)) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m fvcore_ext hf:SPEC [options]``: returns the exit status (0 ok; 2 a spec,
    option, input, plot target or trace that fails, or stdout closed, with a one-line reason
    on stderr and the output already printed left as it is; 130 on Ctrl-C). With
    ``--format json`` stdout holds only JSON (an error is ``{"error": ..., "status": 2}``):
    whatever the model prints goes to stderr. The RNG, default dtype and grad mode are left
    as they were."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: _main(argv))


def _main(argv: List[str]) -> int:
    from ..runtime.standins import install_standin_kernels
    from ..runtime.stdout import BrokenPipe, write_stdout
    from .main import UsageError, shared_settings
    from .report import building, format_report, progress, show_progress

    args = _parser().parse_args(argv)
    spec = args.spec[3:] if args.spec.startswith("hf:") else args.spec
    bar = show_progress(args.quiet, args.format)
    written = False
    try:
        lengths = _lengths(args.seq_len)
        listed = any(len(item) > 1 for item in args.image_size or [])
        if listed:
            if not args.law:
                raise HFSpecError("an --image-size list (224,320,448) needs --law: one law "
                                  "over the image side")
            if len(args.image_size) > 1:
                raise HFSpecError("--image-size: give one comma list of square sizes "
                                  "(224,320,448)")
            if len(lengths) > 1:
                raise HFSpecError("--law varies one size: an --image-size list with one "
                                  "--seq-len")
        image = None if listed else (
            tuple(item[0] for item in args.image_size) if args.image_size else None)
        if image and len(image) > 2:
            raise HFSpecError("--image-size takes H or H W")
        if args.law and not listed and len(lengths) < 3:
            raise HFSpecError(f"--law needs a --seq-len list of 3 or more lengths (1 to fit, "
                              f"2 held out), or an --image-size list; got --seq-len "
                              f"{args.seq_len}")
        if args.law and image:
            raise HFSpecError("--law over --seq-len counts at the config's image size: leave "
                              "out --image-size H W, or give a comma list to vary it")
        try:
            engine, dtype, hardware = shared_settings(args)
        except UsageError as error:
            raise HFSpecError(str(error)) from None
        if hardware is not None and args.law:
            raise HFSpecError("--law fits MAC counts: leave out --hardware")
        if args.decode and args.backward:
            raise HFSpecError("--decode counts inference steps; it does not combine with "
                              "--backward")
        if args.plot:
            check_plot_path(args.plot)
        if args.standins:
            install_standin_kernels()
        overrides = parse_overrides(args.overrides)
        with contextlib.redirect_stdout(sys.stderr):    # the model's prints: stdout is ours
            with building(f"building hf:{spec}", bar):
                hf = load_hf(spec, overrides, args.head, args.device, online=args.online,
                             dtype=dtype)
            title = f"{hf.title}, {hf.source}" + (
                "; " + ", ".join(f"{k}={v}" for k, v in hf.overrides.items())
                if hf.overrides else "")
            what = "training step" if args.backward else "prefill"
            try:
                if args.law:
                    sizes = args.image_size[0] if listed else lengths
                    law = hf_law(hf, sizes, over="image_size" if listed else "seq_len",
                                 seq_len=lengths[0], batch=args.batch, overrides=overrides,
                                 head=args.head, preset=args.preset, engine=args.engine,
                                 device=args.device, decode=args.decode,
                                 backward=args.backward, text_only=args.text_only,
                                 strict=args.strict, online=args.online, route=args.route,
                                 progress=lambda xs: progress(
                                     xs, f"counting ({what})", bar,
                                     unit="size" if listed else "length"))
                    text = law.format(args.format)
                elif len(lengths) == 1 and not args.decode and not args.plot:
                    for n in progress(lengths, f"counting ({what})", bar):
                        report = count_hf(hf, n, args.batch, image, preset=args.preset,
                                          engine=engine, text_only=args.text_only,
                                          strict=args.strict, backward=args.backward,
                                          hardware=hardware)
                    text = format_report(report, args.format, args.depth, title=title)
                else:
                    rows = sweep_hf(hf, lengths, args.batch, image, preset=args.preset,
                                    engine=engine, decode=args.decode, hardware=hardware,
                                    new_tokens=args.new_tokens, text_only=args.text_only,
                                    strict=args.strict, backward=args.backward,
                                    progress=lambda xs: progress(xs, f"counting ({what})", bar,
                                                                 unit="length"))
                    text = format_sweep(rows, args.format, title)
            except MetaDeviceError as error:
                raise HFSpecError(error.line("--device cpu")) from None
            except UncountableOpError as error:
                raise HFSpecError(f"strict mode: {error}") from None
            except (HFSpecError, KeyboardInterrupt):
                raise
            except SystemExit as error:
                raise HFSpecError(f"{hf.title} called sys.exit({error.code!r}) while counted"
                                  ) from None
            except Exception as error:   # the model's own code may raise anything while traced
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise HFSpecError(f"cannot count {hf.title}: {type(error).__name__}: "
                                  f"{message}") from None
        written = True          # from here on an error leaves the output as it is
        write_stdout(text)
        if args.plot and args.law:
            from ..laws.plot import plot_laws
            try:
                plot_laws([law], args.plot, title=f"{law.label}: MACs over {law.variable}, "
                                                  f"{args.preset} preset")
            except (ImportError, OSError, ValueError) as error:
                raise HFSpecError(f"cannot write --plot {args.plot!r}: "
                                  f"{type(error).__name__}: {error}") from None
            if args.format != "json":
                write_stdout(f"\nwrote {args.plot}")
        elif args.plot:
            try:
                plot_sweep(rows, args.plot, title=f"{hf.title}, preset {args.preset}" + (
                    "; " + ", ".join(f"{k}={v}" for k, v in hf.overrides.items())
                    if hf.overrides else ""))
            except (OSError, ValueError) as error:
                raise HFSpecError(f"cannot write --plot {args.plot!r}: "
                                  f"{type(error).__name__}: {error}") from None
            if args.format != "json":
                write_stdout(f"\nwrote {args.plot}")
    except (HFSpecError, BrokenPipe) as error:
        return fail(error, args.format == "json", stdout_used=bool(written))
    return 0
