"""Counting a mamba-ssm ``Mamba`` block on CPU: the pack's stand-in kernels against the usual
workaround, tracing ``selective_scan_ref`` (a Python loop over the sequence).

Both routes trace mamba-ssm's own module. The stand-in route keeps the real autograd Functions
(``MambaInnerFn``), which the pack counts from their shapes. The reference route swaps in
``selective_scan_ref`` and ``causal_conv1d_ref``, so the trace holds every step of the scan.
It reports the median wall time of ``FlopCountAnalysis(...).total()`` (tracing included) and
the ratio at each sequence length.

    python benchmarks/mamba_standins.py [--lengths 256 1024 4096] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from fvcore.nn import FlopCountAnalysis

from fvcore_ext import vmamba_handles
from fvcore_ext.standins import install_standin_kernels

install_standin_kernels()

import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402
from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref  # noqa: E402


def time_count(model, x, repeats):
    times, total = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        analysis = FlopCountAnalysis(model, (x,)).set_op_handle(**vmamba_handles)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad():
            total = analysis.total()
        times.append(time.perf_counter() - start)
    return statistics.median(times), total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    standin = mamba_simple.Mamba(d_model=args.d_model, use_fast_path=True).eval()
    reference = mamba_simple.Mamba(d_model=args.d_model, use_fast_path=False).eval()
    reference.load_state_dict(standin.state_dict())
    print(f"Mamba block, d_model {args.d_model}, batch 1, median of {args.repeats} "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print("| length | stand-ins (s) | selective_scan_ref (s) | speed-up | MACs (stand-ins) |")
    print("|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        x = torch.randn(1, length, args.d_model)
        fast_time, fast_macs = time_count(standin, x, args.repeats)
        original = mamba_simple.selective_scan_fn, mamba_simple.causal_conv1d_fn
        mamba_simple.selective_scan_fn = selective_scan_ref
        mamba_simple.causal_conv1d_fn = causal_conv1d_ref
        try:
            ref_time, _ = time_count(reference, x, args.repeats)
        finally:
            mamba_simple.selective_scan_fn, mamba_simple.causal_conv1d_fn = original
        print(f"| {length} | {fast_time:.3f} | {ref_time:.3f} | {ref_time / fast_time:.1f}x "
              f"| {fast_macs:,} |", flush=True)


if __name__ == "__main__":
    main()
