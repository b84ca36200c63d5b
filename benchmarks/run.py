"""Reproduce ``benchmarks/RESULTS.md`` and ``benchmarks/counts.png``: the cost of counting, and
every peer counter side by side on the same models.

    python benchmarks/run.py [--quick] [--out benchmarks]

Needs the ``bench``, ``hf``, ``mamba`` extras and ptflops and thop (``pip install --no-deps
ptflops thop``: both ask for an unpinned torch). Takes about 10 minutes on 2 CPU cores;
``--quick`` runs every section on small settings in about a minute (no numbers worth keeping).

Sections:
1. the pack's overhead over its host tool (ratio of medians, same process, runs interleaved);
2. analysis time against one plain forward pass;
3. Mamba on CPU: stand-in kernels against the ``selective_scan_ref`` route;
4. peak memory (RSS) of counting UperNet-Swin-T against a plain forward, each in its own process;
5. how analysis time grows with depth and with input size;
6. the peers table: every tool's count and time on the same models.

Sections other scripts write into RESULTS.md (7, ``benchmarks/meta.py``) are kept.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import torch
from fvcore.nn import FlopCountAnalysis

import torchprofile_ext
from fvcore_ext import count_model, make_handles
from fvcore_ext.reference_models import build as build_reference
from fvcore_ext.engines.jit.tracing import TraceAdapter

HERE = Path(__file__).resolve().parent
warnings.simplefilter("ignore")


# ---------------------------------------------------------------- models

def hf(name, shape):
    def make():
        from fvcore_ext import hf_models
        torch.manual_seed(0)
        return getattr(hf_models, name)().eval(), (torch.randn(shape),)
    return make


def reference(name):
    return lambda: build_reference(name)


def swin_tiny():
    from transformers import SwinConfig, SwinForImageClassification
    torch.manual_seed(0)
    return SwinForImageClassification(SwinConfig()).eval(), (torch.randn(1, 3, 224, 224),)


# ---------------------------------------------------------------- tools (MACs)

def fvcore_plain(model, inputs):
    analysis = FlopCountAnalysis(TraceAdapter(model, None), inputs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total())


def fvcore_pack(model, inputs, preset="full"):
    analysis = FlopCountAnalysis(TraceAdapter(model, None), inputs)
    analysis.set_op_handle(**make_handles(preset))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total())


def torchprofile_plain(model, inputs):
    import torchprofile
    return int(torchprofile.profile_macs(TraceAdapter(model, None), inputs))


def torchprofile_pack(model, inputs, preset="full"):
    return int(torchprofile_ext.profile_macs(model, inputs, preset))


def ptflops_count(backend):
    def count(model, inputs):
        from ptflops import get_model_complexity_info
        (x,) = inputs
        macs, _ = get_model_complexity_info(
            model, tuple(x.shape[1:]), input_constructor=lambda _: x, as_strings=False,
            print_per_layer_stat=False, backend=backend)
        return int(macs)
    return count


def thop_count(model, inputs):
    import thop
    macs, _ = thop.profile(copy.deepcopy(model), inputs=inputs, verbose=False)
    return int(macs)


def flop_counter_mode(model, inputs):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() // 2


PEERS = {
    "fvcore": fvcore_plain,
    "fvcore + pack": fvcore_pack,
    "torchprofile": torchprofile_plain,
    "torchprofile + pack": torchprofile_pack,
    "ptflops (pytorch)": ptflops_count("pytorch"),
    "ptflops (aten)": ptflops_count("aten"),
    "thop": thop_count,
    "FlopCounterMode / 2": flop_counter_mode,
}


def timed(fn, *args):
    start = time.perf_counter()
    with torch.no_grad():
        result = fn(*args)
    return result, time.perf_counter() - start


def forward_time(model, inputs):
    timed(lambda: model(*inputs))            # warm-up: first-call allocations and caches
    return timed(lambda: model(*inputs))[1]


# ---------------------------------------------------------------- sections

def overhead(models, repeats):
    rows = []
    for label, make in models:
        model, inputs = make()
        pairs = [("fvcore", fvcore_plain, fvcore_pack),
                 ("torchprofile", torchprofile_plain, torchprofile_pack)]
        forward = statistics.median(forward_time(model, inputs) for _ in range(repeats))
        for host, plain, pack in pairs:
            try:
                timed(plain, model, inputs)          # warm-up, and the error check
            except Exception as error:
                rows.append((label, host, None, None, None, forward, f"{type(error).__name__}"))
                continue
            plain_times, pack_times = [], []
            for _ in range(repeats):                 # interleaved, same process
                plain_times.append(timed(plain, model, inputs)[1])
                pack_times.append(timed(pack, model, inputs)[1])
            a, b = statistics.median(plain_times), statistics.median(pack_times)
            rows.append((label, host, a, b, b / a, forward, ""))
        print(f"  overhead: {label}", flush=True)
    return rows


def memory(shape, quick):
    rows = {}
    for what in ("forward", "count"):
        out = subprocess.run([sys.executable, __file__, "--child-memory", what,
                              "--shape", *map(str, shape)] + (["--quick"] if quick else []),
                             capture_output=True, text=True, check=True)
        rows[what] = json.loads(out.stdout.strip().splitlines()[-1])
    return rows


def child_memory(what, shape):
    model, inputs = hf("upernet_swin_tiny", (1, 3) + tuple(shape))()
    start = time.perf_counter()
    if what == "forward":
        with torch.no_grad():
            model(*inputs)
        macs = None
    else:
        macs = count_model(model, inputs, preset="paper").total_macs
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_bytes": peak, "seconds": seconds, "macs": macs}))


def scaling(depths, sizes):
    depth_rows, size_rows = [], []
    for depth in depths:
        torch.manual_seed(0)
        from fvcore_ext.reference_models.vit import SmallViT
        model = SmallViT(img_size=32, patch=8, dim=64, depth=depth).eval()
        inputs = (torch.randn(1, 3, 32, 32),)
        seconds = statistics.median(timed(fvcore_pack, model, inputs)[1] for _ in range(3))
        depth_rows.append((depth, seconds))
    for size in sizes:
        model, inputs = hf("upernet_swin_tiny", (1, 3, size, size))()
        seconds = timed(fvcore_pack, model, inputs)[1]
        size_rows.append((size, seconds, forward_time(model, inputs)))
    return depth_rows, size_rows


def linear_fit(points):
    """Least-squares line through ``points``; returns (slope, intercept, r²)."""
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - slope * x - intercept) ** 2 for x, y in points)
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, 1 - ss_res / ss_tot


def peers(models):
    table = {}
    for label, make in models:
        model, inputs = make()
        table[label] = {}
        for tool, count in PEERS.items():
            try:
                macs, seconds = timed(count, model, inputs)
                table[label][tool] = (macs, seconds, "")
            except Exception as error:
                table[label][tool] = (None, None, f"{type(error).__name__}: "
                                                  f"{str(error).splitlines()[0][:80]}")
        print(f"  peers: {label}", flush=True)
    return table


def mamba_section(lengths, repeats):
    out = subprocess.run([sys.executable, str(HERE / "mamba_standins.py"), "--lengths",
                          *map(str, lengths), "--repeats", str(repeats)],
                         capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines()
            if line.startswith(("|", "Mamba")) or not line.strip()]


# ---------------------------------------------------------------- report

def g(macs):
    return "-" if macs is None else f"{macs / 1e9:.4g}"


def write_results(out: Path, quick: bool, sections: dict) -> None:
    lines = ["# Benchmarks", "",
             f"Written by `python benchmarks/run.py{' --quick' if quick else ''}`. "
             "Counts are GMACs (FLOPs = 2 × MACs); times are seconds.", "",
             "## Machine and versions", ""]
    lines += [f"- {platform.platform()}, Python {platform.python_version()}, "
              f"{torch.get_num_threads()} threads"]
    for package in ("torch", "fvcore", "torchprofile", "ptflops", "thop", "transformers",
                    "mmengine"):
        try:
            lines.append(f"- {package} {version(package)}")
        except Exception:
            lines.append(f"- {package}: not installed")

    lines += ["", "## 1-2. The pack's overhead, and analysis time against a forward pass", "",
              "Median of interleaved runs in one process; target: the pack at most 5% over "
              "its host tool.", "",
              "| model | host tool | host alone | host + pack | ratio | one forward | "
              "(host + pack) / forward |", "|---|---|---:|---:|---:|---:|---:|"]
    for label, host, a, b, ratio, forward, error in sections["overhead"]:
        if error:
            lines.append(f"| {label} | {host} | fails: {error} | | | {forward:.3f} | |")
        else:
            lines.append(f"| {label} | {host} | {a:.3f} | {b:.3f} | {ratio:.3f} | "
                         f"{forward:.3f} | {b / forward:.1f}× |")

    lines += ["", "## 3. Mamba on CPU: stand-in kernels against the `selective_scan_ref` "
              "route", "", "Target: at least 10× faster at length 4096.", ""]
    lines += sections["mamba"]

    mem = sections["memory"]
    shape = "x".join(map(str, sections["memory_shape"]))
    ratio = mem["count"]["peak_bytes"] / mem["forward"]["peak_bytes"]
    lines += ["", f"## 4. Peak memory, UperNet-Swin-T (transformers) at {shape}", "",
              "Each in its own process; peak RSS includes Python, torch and the model. "
              "Target: counting within 1.5× the forward pass.", "",
              "| run | peak RSS (GiB) | seconds |", "|---|---:|---:|",
              f"| plain forward, no grad | {mem['forward']['peak_bytes'] / 2**30:.2f} | "
              f"{mem['forward']['seconds']:.1f} |",
              f"| count (`count_model`, paper) | {mem['count']['peak_bytes'] / 2**30:.2f} | "
              f"{mem['count']['seconds']:.1f} |",
              "", f"Ratio: {ratio:.2f}×."]

    depth_rows, size_rows = sections["scaling"]
    slope, intercept, r2 = linear_fit(depth_rows)
    lines += ["", "## 5. Scaling", "",
              "Analysis time (fvcore + pack) of the reference ViT against its depth; target: "
              "linear.", "", "| blocks | seconds |", "|---:|---:|"]
    lines += [f"| {d} | {s:.3f} |" for d, s in depth_rows]
    lines += ["", f"Least-squares line: {slope * 1e3:.2f} ms per block, intercept "
                  f"{intercept * 1e3:+.1f} ms, r² = {r2:.4f}.", "",
              "UperNet-Swin-T (transformers) against input size:", "",
              "| input | count (s) | forward (s) |", "|---:|---:|---:|"]
    lines += [f"| {s}×{s} | {c:.2f} | {f:.2f} |" for s, c, f in size_rows]

    lines += ["", "## 6. Peers", "", "GMACs (seconds). `-` marks a failure, listed below the "
              "table.", ""]
    tools = list(PEERS)
    lines += ["| model | " + " | ".join(tools) + " |", "|---|" + "---:|" * len(tools)]
    failures = []
    for label, row in sections["peers"].items():
        cells = []
        for tool in tools:
            macs, seconds, error = row[tool]
            cells.append("-" if macs is None else f"{g(macs)} ({seconds:.2f})")
            if error:
                failures.append(f"- {tool} on {label}: {error}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [""] + (failures or ["No tool failed."])
    path = out / "RESULTS.md"
    text = "\n".join(lines) + "\n"
    path.write_text(text + (sections_written_elsewhere(path.read_text(), text)
                            if path.exists() else ""))


def sections_written_elsewhere(old: str, new: str) -> str:
    """The ``## `` sections of ``old`` whose headings ``new`` does not have (another script's
    results, such as ``benchmarks/meta.py``'s), each with a blank line before it."""
    headings = {line for line in new.splitlines() if line.startswith("## ")}
    kept = [section for section in old.split("\n## ")[1:]
            if "## " + section.splitlines()[0] not in headings]
    return "".join("\n## " + section.rstrip("\n") + "\n" for section in kept)


def plot(out: Path, table: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools = list(PEERS)
    labels = list(table)
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(tools)
    for i, tool in enumerate(tools):
        values = []
        for label in labels:
            macs, reference = table[label][tool][0], table[label]["fvcore + pack"][0]
            values.append(macs / reference if macs is not None and reference else 0)
        ax.bar([j + i * width for j in range(len(labels))], values, width, label=tool)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=15, ha="right")
    ax.set_ylabel("count relative to fvcore + pack (full preset)")
    ax.set_title("MACs per tool per model (0 = the tool failed)")
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "counts.png", dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--child-memory", choices=("forward", "count"), help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=2, default=(512, 2048))
    args = parser.parse_args(argv)
    if args.child_memory:
        child_memory(args.child_memory, args.shape)
        return
    quick = args.quick
    started = time.perf_counter()
    small = [(f"ref {n}", reference(n)) for n in ("cnn", "vit", "swin_stage", "unet_decoder",
                                                    "mamba", "vmamba_block")]
    big = [("ViT-B/16 224", hf("vit_base", (1, 3, 224, 224))),
           ("UperNet-Swin-T 512x512", hf("upernet_swin_tiny", (1, 3, 512, 512)))]
    if not quick:
        big.append(("UperNet-Swin-T 512x2048", hf("upernet_swin_tiny", (1, 3, 512, 2048))))
    sections = {}
    print("overhead", flush=True)
    sections["overhead"] = overhead(small, 3 if quick else 9) + overhead(big, 1 if quick else 3)
    print("mamba", flush=True)
    sections["mamba"] = mamba_section([256] if quick else [256, 1024, 4096], 1 if quick else 3)
    print("memory", flush=True)
    sections["memory_shape"] = (256, 256) if quick else tuple(args.shape)
    sections["memory"] = memory(sections["memory_shape"], quick)
    print("scaling", flush=True)
    sections["scaling"] = scaling([1, 2, 4] if quick else [1, 2, 4, 8, 16, 24, 32, 48],
                                  [128, 256] if quick else [256, 512, 768, 1024])
    print("peers", flush=True)
    peer_models = small[1:2] if quick else [
        ("ViT-B/16 224", hf("vit_base", (1, 3, 224, 224))),
        ("Swin-T 224", swin_tiny),
        ("SegFormer-B0 512", hf("segformer_b0", (1, 3, 512, 512))),
        ("UperNet-Swin-T 512x512", hf("upernet_swin_tiny", (1, 3, 512, 512))),
        ("ref mamba (MambaInnerFn)", reference("mamba")),
        ("ref vmamba_block (SS2D)", reference("vmamba_block")),
    ]
    sections["peers"] = peers(peer_models)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out, quick, sections)
    plot(args.out, sections["peers"])
    print(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'counts.png'} in "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
