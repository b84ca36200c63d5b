"""The dispatch engine against bare FlopCounterMode, a plain forward pass and the JIT engines.

    python benchmarks/dispatch.py [--repeats 3] [--quick] [--no-write] [--skip-1b]

Targets (issue "The same counts through PyTorch's own FlopCounterMode"):
- the dispatch engine (``count_model(..., engine="dispatch")``) within 1.1x bare
  ``FlopCounterMode`` and within 1.3x a plain forward pass (both under ``torch.no_grad()``) on
  ViT-B/16, Swin-T, UperNet-Swin-T 512x512 and a 1B-parameter Llama at 2048 tokens, on CPU;
- LLaMA-3-70B's shape at 4096 tokens on the meta device in under 2 s;
- a training count (``backward=True``) within 1.2x a plain forward + backward.

The JIT engines (``count_model``: fvcore + pack; ``torchprofile_ext.profile_macs``) are timed
in the same table. All runs of one model are interleaved, so load on a shared machine falls on
every column; each time is the median of ``--repeats`` runs after one warm-up run (the 1B
Llama: one run each, no warm-up, no JIT engines: one forward takes minutes on 2 cores).
Writes the "8. The dispatch engine" section of ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fvcore_ext import count_model  # noqa: E402
from fvcore_ext.engines.jit.tracing import TraceAdapter  # noqa: E402
from meta import write_section  # noqa: E402

SECTION = "## 8. The dispatch engine"


def vit_b16(quick):
    from transformers import ViTConfig, ViTModel
    config = ViTConfig(num_hidden_layers=2) if quick else ViTConfig()
    return ViTModel(config), [torch.randn(1, 3, 224, 224)], ["pixel_values"]


def swin_t(quick):
    from transformers import SwinConfig, SwinModel
    config = SwinConfig(depths=[1, 1, 1, 1]) if quick else SwinConfig()
    return SwinModel(config), [torch.randn(1, 3, 224, 224)], ["pixel_values"]


def upernet_swin_t(quick):
    from fvcore_ext.hf.models import upernet_swin_tiny
    size = 128 if quick else 512
    return upernet_swin_tiny(), [torch.randn(1, 3, size, size)], ["pixel_values"]


LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, intermediate_size=8192, vocab_size=128256)
LLAMA_70B = dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                 num_key_value_heads=8, intermediate_size=28672, vocab_size=128256)


def llama(config, tokens, device="cpu"):
    from transformers import LlamaConfig, LlamaModel
    with torch.device(device):
        model = LlamaModel(LlamaConfig(**config))
    return model, [torch.zeros(1, tokens, dtype=torch.long, device=device)], ["input_ids"]


def llama_1b(quick):
    config = dict(LLAMA_1B, num_hidden_layers=2) if quick else LLAMA_1B
    return llama(config, 256 if quick else 2048)


# ---------------------------------------------------------------- what is timed

def plain_forward(model, inputs, names):
    with torch.no_grad():
        TraceAdapter(model, names)(*inputs)


def bare_flop_counter(model, inputs, names):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        TraceAdapter(model, names)(*inputs)
    return counter.get_total_flops() // 2


def dispatch_engine(model, inputs, names):
    return count_model(model, inputs, names, engine="dispatch").total_macs


def fvcore_pack(model, inputs, names):
    return count_model(model, inputs, names).total_macs


def torchprofile_pack(model, inputs, names):
    import torchprofile_ext
    with torch.no_grad():
        return torchprofile_ext.profile_macs(TraceAdapter(model, names), tuple(inputs))


def forward_backward(model, inputs, names):
    model.train()
    outputs = TraceAdapter(model, names)(*inputs)
    sum(o.sum() for o in outputs if o.is_floating_point()).backward()
    model.zero_grad(set_to_none=True)


def training_count(model, inputs, names):
    return count_model(model, inputs, names, engine="dispatch", backward=True).total_macs


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def measure(build, tools, repeats, warm=True):
    """Median seconds per tool (interleaved runs) and each tool's count."""
    model, inputs, names = build()
    model.eval()
    times = {name: [] for name in tools}
    counts = {}
    for run in range(repeats + (1 if warm else 0)):
        for name, fn in tools.items():
            seconds, result = timed(fn, model, inputs, names)
            if run or not warm:
                times[name].append(seconds)
            counts[name] = result
    return {name: statistics.median(t) for name, t in times.items()}, counts


FORWARD_TOOLS = {"forward": plain_forward, "FlopCounterMode": bare_flop_counter,
                 "dispatch": dispatch_engine, "fvcore+pack": fvcore_pack,
                 "torchprofile+pack": torchprofile_pack}
MODELS = {"ViT-B/16 224": vit_b16, "Swin-T 224": swin_t,
          "UperNet-Swin-T 512x512": upernet_swin_t, "Llama 1B, 2048 tokens": llama_1b}


def run(repeats, quick, skip_1b):
    rows = []
    for label, build in MODELS.items():
        heavy = label.startswith("Llama 1B")
        if heavy and skip_1b:
            continue
        tools = {k: v for k, v in FORWARD_TOOLS.items()
                 if not (heavy and not quick and k in ("fvcore+pack", "torchprofile+pack"))}
        times, counts = measure(lambda: build(quick), tools, 1 if heavy else repeats,
                                warm=not heavy)
        rows.append((label, times, counts))
        print(label, times, counts, flush=True)
    model, inputs, names = vit_b16(quick)
    train_times, train_counts = measure(lambda: (model, inputs, names),
                                        {"forward+backward": forward_backward,
                                         "training count": training_count}, repeats)
    print("training", train_times, train_counts, flush=True)
    config = dict(LLAMA_70B, num_hidden_layers=2) if quick else LLAMA_70B
    meta_times = []
    for _ in range(repeats):
        model, inputs, names = llama(config, 4096, device="meta")
        seconds, macs = timed(dispatch_engine, model, inputs, names)
        meta_times.append(seconds)
    print("70B meta", meta_times, macs, flush=True)
    return rows, (train_times, train_counts), (statistics.median(meta_times), macs)


def report(rows, training, meta, repeats, quick) -> str:
    head = ["model", "forward", "FlopCounterMode", "dispatch engine", "fvcore + pack",
            "torchprofile + pack", "dispatch / FCM", "dispatch / forward", "MACs (dispatch)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, t, c in rows:
        cell = lambda k: f"{t[k]:.2f} s" if k in t else "not run"  # noqa: E731
        lines.append(f"| {label} | {cell('forward')} | {cell('FlopCounterMode')} | "
                     f"{cell('dispatch')} | {cell('fvcore+pack')} | {cell('torchprofile+pack')} "
                     f"| {t['dispatch'] / t['FlopCounterMode']:.2f} | "
                     f"{t['dispatch'] / t['forward']:.2f} | {c['dispatch']:,} |")
    compared = [(label, c) for label, _, c in rows if "fvcore+pack" in c]
    agree = [label for label, c in compared
             if c["fvcore+pack"] == c["dispatch"] == c["torchprofile+pack"]]
    train_times, train_counts = training
    seconds, macs = meta
    lines += [
        "",
        f"- Counts: the dispatch engine gives the JIT engines' number on "
        f"{len(agree)} of the {len(compared)} models both ran ({', '.join(agree)}).",
        f"- Training (ViT-B/16, batch 1): plain forward + backward "
        f"{train_times['forward+backward']:.2f} s, training count "
        f"{train_times['training count']:.2f} s: "
        f"{train_times['training count'] / train_times['forward+backward']:.2f}x "
        f"(target 1.2x); {train_counts['training count']:,} MACs forward + backward.",
        f"- LLaMA-3-70B shape, 4096 tokens, meta device, dispatch engine: {seconds:.2f} s "
        f"(target under 2 s), {macs:,} MACs.",
    ]
    return (f"{SECTION}\n\nWritten by `python benchmarks/dispatch.py`"
            f"{' --quick (not numbers to keep)' if quick else ''}: {platform.platform()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; median of {repeats} interleaved runs after a "
            f"warm-up (the 1B Llama: one run each, JIT engines not run). Every count is "
            f"under `torch.no_grad()` on CPU unless it says otherwise.\n\n" + "\n".join(lines)
            + "\n")


def main(argv=None) -> int:
    """Run the benchmark and write its section of RESULTS.md; 0 on success."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small models: a smoke test")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--skip-1b", action="store_true", help="leave out the 1B Llama")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    rows, training, meta = run(args.repeats, args.quick, args.skip_1b)
    text = report(rows, training, meta, args.repeats, args.quick)
    print(text)
    if not args.no_write:
        write_section(text, HERE / "RESULTS.md", SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
