"""Counting on the meta device against counting on CPU: time, peak memory, identical counts.

    python benchmarks/meta.py [--repeats 3] [--quick] [--no-write]

Each measurement runs in its own process; its peak RSS is that process's ``ru_maxrss``, read
by the parent with ``os.wait4`` (the per-child form of ``getrusage(RUSAGE_CHILDREN)``), so it
includes Python, torch and transformers (about 0.4 GiB before any model). Times are medians
over ``--repeats`` runs, CPU and meta runs interleaved so that load on a shared machine falls
on both. Timed: building the model, and the count (``count_model`` for fvcore + pack,
``torchprofile_ext.profile_macs`` for torchprofile + pack); imports are not.

Models (nothing is downloaded):
- UperNet-Swin-T at 512x2048: transformers' ``UperNetForSemanticSegmentation`` as
  ``fvcore_ext.hf.models.upernet_swin_tiny`` builds it (Swin-T backbone, 150 classes, no
  auxiliary head); CPU: built and counted with real tensors; meta: built under
  ``torch.device("meta")`` on a meta input;
- LLaMA-3-8B and a LLaMA-3-70B-shaped ``LlamaModel`` from ``transformers.LlamaConfig``, 4096
  tokens, meta only (8B's weights alone are 32 GB in float32).

Writes the table to stdout and to the "Counting on the meta device" section of
``benchmarks/RESULTS.md`` (the rest of the file is left as it is).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTION = "## 7. Counting on the meta device"

LLAMA = {
    "llama3_8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, intermediate_size=14336, vocab_size=128256),
    "llama3_70b": dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                       num_key_value_heads=8, intermediate_size=28672, vocab_size=128256),
}
LABELS = {"upernet": "UperNet-Swin-T 512x2048", "llama3_8b": "LLaMA-3-8B, 4096 tokens",
          "llama3_70b": "LLaMA-3-70B shape, 4096 tokens"}


# ---------------------------------------------------------------- one measurement (child)

def _import(model: str) -> None:
    # transformers imports a model's module on first use: not part of building it
    if model == "upernet":
        from transformers import UperNetForSemanticSegmentation  # noqa: F401
        from transformers.models.swin import modeling_swin  # noqa: F401
    else:
        from transformers import LlamaModel  # noqa: F401


def _build(model: str, device: str, quick: bool):
    import torch
    if model == "upernet":
        from fvcore_ext.hf.models import upernet_swin_tiny
        shape = (1, 3, 128, 512) if quick else (1, 3, 512, 2048)
        with torch.device(device):
            built = upernet_swin_tiny().eval()
        x = (torch.empty(shape, device="meta") if device == "meta"
             else torch.randn(shape, generator=torch.Generator().manual_seed(0)))
        return built, (x,), ["pixel_values"]
    from transformers import LlamaConfig, LlamaModel
    config = dict(LLAMA[model])
    if quick:
        config["num_hidden_layers"] = 2
    with torch.device(device):
        built = LlamaModel(LlamaConfig(**config)).eval()
    ids = torch.zeros(1, 512 if quick else 4096, dtype=torch.long, device=device)
    return built, (ids,), ["input_ids"]


def child(model: str, device: str, tool: str, quick: bool) -> None:
    import torch
    warnings.simplefilter("ignore")
    import torchprofile_ext
    from fvcore_ext import count_model
    from fvcore_ext.engines.jit.tracing import TraceAdapter

    _import(model)
    start = time.perf_counter()
    built, inputs, names = _build(model, device, quick)
    built_s = time.perf_counter() - start
    start = time.perf_counter()
    if tool == "fvcore":
        macs = count_model(built, inputs, names).total_macs
    else:
        with torch.no_grad():
            macs = torchprofile_ext.profile_macs(TraceAdapter(built, names), inputs)
    count_s = time.perf_counter() - start
    print(json.dumps({"macs": int(macs), "params": sum(p.numel() for p in built.parameters()),
                      "build_s": built_s, "count_s": count_s}))


def measure(model: str, device: str, tool: str, quick: bool) -> dict:
    """Run one measurement in a fresh process; its result plus ``peak_gib``."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", model, device, tool] + (["--quick"] if quick
                                                                     else []),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{model} {device} {tool} failed:\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_gib"] = usage.ru_maxrss * 1024 / 2 ** 30     # ru_maxrss is in KiB on Linux
    return result


# ---------------------------------------------------------------- the benchmark (parent)

CASES = [("upernet", "cpu"), ("upernet", "meta"), ("llama3_8b", "meta"), ("llama3_70b", "meta")]
TOOLS = ("fvcore", "torchprofile")


def run(repeats: int, quick: bool) -> dict:
    runs = {(m, d, t): [] for m, d in CASES for t in TOOLS}
    for i in range(repeats):
        for model, device in CASES:           # interleaved: CPU, meta, CPU, meta, ...
            for tool in TOOLS:
                result = measure(model, device, tool, quick)
                runs[(model, device, tool)].append(result)
                print(f"[{i + 1}/{repeats}] {model} {device} {tool}: {result['macs']:,} MACs, "
                      f"count {result['count_s']:.2f} s, build {result['build_s']:.2f} s, "
                      f"peak {result['peak_gib']:.2f} GiB", file=sys.stderr, flush=True)
    return runs


def median(results, key):
    return statistics.median(r[key] for r in results)


def table(runs: dict) -> str:
    lines = ["| model | tool | device | MACs | build (s) | count (s) | peak RSS (GiB) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for model, device in CASES:
        for tool in TOOLS:
            results = runs[(model, device, tool)]
            macs = {r["macs"] for r in results}
            lines.append(f"| {LABELS[model]} | {tool} + pack | {device} | "
                         f"{'/'.join(f'{m:,}' for m in sorted(macs))} | "
                         f"{median(results, 'build_s'):.2f} | {median(results, 'count_s'):.2f} | "
                         f"{median(results, 'peak_gib'):.2f} |")
    return "\n".join(lines)


def summary(runs: dict) -> str:
    lines = []
    for tool in TOOLS:
        cpu, meta = runs[("upernet", "cpu", tool)], runs[("upernet", "meta", tool)]
        same = {r["macs"] for r in cpu} == {r["macs"] for r in meta}
        ratio = median(cpu, "count_s") / median(meta, "count_s")
        lines.append(f"- UperNet-Swin-T 512x2048, {tool} + pack: meta counts "
                     f"{ratio:.1f}x faster than CPU (target: at least 5x), peak RSS "
                     f"{median(meta, 'peak_gib'):.2f} GiB against "
                     f"{median(cpu, 'peak_gib'):.2f} GiB; "
                     f"{'identical counts' if same else 'COUNTS DIFFER'}.")
    for tool in TOOLS:
        big = runs[("llama3_70b", "meta", tool)]
        seconds = statistics.median(r["build_s"] + r["count_s"] for r in big)
        lines.append(f"- LLaMA-3-70B shape, {tool} + pack: built and counted in "
                     f"{seconds:.1f} s within {median(big, 'peak_gib'):.2f} GiB "
                     f"(target: under 10 s within 2 GiB).")
    return "\n".join(lines)


def write_section(text: str, path: Path, section: str = SECTION) -> None:
    """Replace (or append) the section headed ``section`` of RESULTS.md, leaving the rest
    (``benchmarks/dispatch.py`` writes its own section with it too)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(section))
        new = old[:start] + text + (old[end + 1:] if end >= 0 else "")
    path.write_text(new.rstrip("\n") + "\n")


def main(argv=None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement); 0 on success."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small shapes: a smoke test")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "DEVICE", "TOOL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child, quick=args.quick)
        return 0
    import torch
    runs = run(args.repeats, args.quick)
    text = (f"{SECTION}\n\nWritten by `python benchmarks/meta.py`"
            f"{' --quick (not numbers to keep)' if args.quick else ''}: {platform.platform()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; median of {args.repeats} runs, each in its own "
            f"process, CPU and meta interleaved. Build and count times in seconds (imports not "
            f"included); peak RSS of the whole process, Python and imports included.\n\n"
            f"{table(runs)}\n\n{summary(runs)}\n")
    print(text)
    if not args.no_write:
        write_section(text, HERE / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
