"""The roofline estimate against measured kernel time, module by module, on a CUDA GPU.

    python benchmarks/roofline_gpu.py --hardware h100 [--dtype bf16] [--quick] [--no-write]
    python benchmarks/roofline_gpu.py --device cpu --quick --no-write    # plumbing only

For each model (a CNN, a ViT, an LLM prefill and a decode step, a Mamba block, VMamba, Vim, a
Swin stage, a transformer encoder layer, an MLP) this runs the forward under
``torch.profiler`` with a ``record_function`` range per module, sums the device (kernel) time
inside each module's range, and counts the same model with
``count_model(..., engine="dispatch", hardware=...)``. It reports, per model, the rank
correlation (Spearman) of estimated against measured time over the modules, and the model-level
ratio measured / estimated (the roofline is a floor: real kernels take longer, most of all the
small memory-bound ones, which also pay launch overhead). Writes the "9. Roofline against
measured time" section of ``benchmarks/RESULTS.md`` naming the GPU.

Needs a CUDA device for meaningful numbers (issue 29): with ``--device cpu`` it checks its own
plumbing on CPU time (a CPU has no entry in the device table; the comparison means nothing).
The Mamba models run mamba-ssm's real kernels where ``selective_scan_cuda`` is installed, and
the pack's stand-ins (zeros, no kernel time) elsewhere: their rows are marked.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fvcore_ext import count_model  # noqa: E402
from fvcore_ext.reference_models import build  # noqa: E402
from meta import write_section  # noqa: E402

SECTION = "## 9. Roofline against measured time"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _llama(quick: bool):
    from transformers import LlamaConfig, LlamaForCausalLM
    size = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=2) if quick else \
        dict(hidden_size=2048, intermediate_size=5504, num_hidden_layers=8)
    config = LlamaConfig(num_attention_heads=16, num_key_value_heads=16, vocab_size=32000,
                         **size)
    return LlamaForCausalLM(config).eval()


class _DecodeStep(nn.Module):
    """One token after a prompt: the step's KV cache is made by a prefill, outside the count."""

    def __init__(self, model: nn.Module, prompt: int):
        super().__init__()
        self.model, self.prompt = model, prompt

    def forward(self, ids):
        logits = self.model(ids, past_key_values=self.cache, use_cache=True).logits
        self.cache.crop(-1)       # drop the new token: every call is the same step
        return logits

    def prepare(self, device):
        with torch.no_grad():
            ids = torch.zeros(1, self.prompt, dtype=torch.long, device=device)
            self.cache = self.model(ids, use_cache=True).past_key_values


def _models(quick: bool) -> List[Tuple[str, Callable[[], Tuple[nn.Module, tuple]]]]:
    def reference(name, shape=None):
        def make():
            model, inputs = build(name)
            if shape is not None:
                inputs = (torch.randn(*shape),)
            return model, inputs
        return make

    tokens = 128 if quick else 2048
    image = 64 if quick else 224
    return [
        ("cnn", reference("cnn", (8, 3, image, image))),
        ("vit", reference("vit", (8, 3, 32, 32))),
        ("swin_stage", reference("swin_stage", (8, 3, 32, 32))),
        ("transformer_encoder_layer", reference("transformer_encoder_layer", (8, tokens, 32))),
        ("mlp", lambda: (nn.Sequential(nn.Linear(1024, 4096), nn.GELU(),
                                       nn.Linear(4096, 1024)), (torch.randn(tokens, 1024),))),
        ("mamba block", reference("mamba_slow", (4, tokens, 32))),
        ("vim block", reference("vim_block", (4, tokens, 32))),
        ("vmamba_tiny", reference("vmamba_tiny", (1, 3, image, image))),
        ("llm prefill", lambda: (_llama(quick), (torch.zeros(1, tokens, dtype=torch.long),))),
        ("llm decode", lambda: (_DecodeStep(_llama(quick), tokens),
                                (torch.zeros(1, 1, dtype=torch.long),))),
    ]


@contextlib.contextmanager
def _module_ranges(model: nn.Module):
    """A ``record_function`` range named after each module around its forward."""
    names = {m: n for n, m in model.named_modules()}
    stack: List[contextlib.AbstractContextManager] = []

    def pre(module, args):
        ctx = torch.profiler.record_function(f"module::{names[module]}")
        ctx.__enter__()
        stack.append(ctx)

    def post(module, args, out):
        stack.pop().__exit__(None, None, None)

    hooks = [m.register_forward_pre_hook(pre) for m in names] + \
        [m.register_forward_hook(post) for m in names]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def measure(model: nn.Module, inputs: tuple, device: str, repeats: int = 5) -> Dict[str, float]:
    """Seconds per module (``""``: the model): the device time of the kernels launched inside
    its range, median-free mean over ``repeats`` runs after two warm-ups."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.no_grad():
        for _ in range(2):
            model(*inputs)
        if device == "cuda":
            torch.cuda.synchronize()
        with torch.profiler.profile(activities=activities) as prof, _module_ranges(model):
            for _ in range(repeats):
                model(*inputs)
            if device == "cuda":
                torch.cuda.synchronize()
    seconds: Dict[str, float] = {}
    for event in prof.events():
        if event.name.startswith("module::"):
            name = event.name[len("module::"):]
            micros = event.device_time_total if device == "cuda" else event.cpu_time_total
            seconds[name] = seconds.get(name, 0.0) + micros * 1e-6 / repeats
    return seconds


def spearman(xs: List[float], ys: List[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan under 3 points."""
    if len(xs) < 3:
        return float("nan")

    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def run(args) -> List[str]:
    from fvcore_ext.runtime.standins import install_standin_kernels
    standins = install_standin_kernels()
    dtype = DTYPES[args.dtype]
    rows = []
    for label, make in _models(args.quick):
        torch.manual_seed(0)
        model, inputs = make()
        model = model.to(args.device).eval()
        if dtype != torch.float32:
            model = model.to(dtype)
        inputs = tuple(x.to(args.device).to(dtype) if x.is_floating_point() else
                       x.to(args.device) for x in inputs)
        if isinstance(model, _DecodeStep):
            model.prepare(args.device)
        report = count_model(model, inputs, engine="dispatch", hardware=args.hardware)
        measured = measure(model, inputs, args.device)
        shared = [n for n in report.seconds_by_module if n in measured and n]
        rho = spearman([report.seconds_by_module[n] for n in shared],
                       [measured[n] for n in shared])
        whole = measured.get("", 0.0)
        ratio = whole / report.estimated_seconds if report.estimated_seconds else float("nan")
        mamba = "mamba" in label or label.startswith(("vim", "vmamba"))
        rows.append(f"| {label}{' (stand-ins)' if mamba and standins else ''} | "
                    f"{report.estimated_seconds * 1e3:.3f} | {whole * 1e3:.3f} | "
                    f"{ratio:.2f} | {rho:.2f} ({len(shared)} modules) | "
                    f"{report.bound_by_module.get('', '-')} |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    """Run the comparison; 0 on success, 2 without the device asked for."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hardware", default="h100", help="the device table's name for this GPU")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--quick", action="store_true", help="small shapes: a smoke test")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device: this benchmark compares with kernel times on a GPU "
              "(--device cpu checks the plumbing only)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (plumbing check)"
    rows = run(args)
    text = "\n".join([
        SECTION, "",
        f"`python benchmarks/roofline_gpu.py --hardware {args.hardware} --dtype {args.dtype}"
        f"{' --quick' if args.quick else ''}` on {gpu}, torch {torch.__version__}. Estimated: "
        f"the pack's roofline time on `{args.hardware}`; measured: the kernel time of the "
        f"forward (torch.profiler, mean of 5 runs); ρ: Spearman's rank correlation of the two "
        f"over the model's modules.", "",
        "| model | estimated (ms) | measured (ms) | measured / estimated | ρ over modules | "
        "bound |", "|---|---|---|---|---|---|", *rows])
    if not args.no_write:
        write_section(text, HERE / "RESULTS.md", SECTION)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
