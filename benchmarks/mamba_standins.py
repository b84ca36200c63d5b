"""Counting mamba-ssm's ``Mamba`` and ``Mamba2`` layers on CPU: the pack's stand-in kernels
against the usual workaround, tracing the packages' pure-torch references.

Both routes trace mamba-ssm's own module. The stand-in route keeps the real autograd Functions
(``MambaInnerFn``; ``MambaSplitConv1dScanCombinedFn``), which the pack counts from their shapes.
The reference route swaps in ``selective_scan_ref`` (a Python loop over the sequence) and
``causal_conv1d_ref``; for Mamba-2, ``ssd_chunk_scan_combined_ref`` on the unfused path. It
reports the median wall time of ``FlopCountAnalysis(...).total()`` (tracing included) and the
ratio at each sequence length. The two routes count different computations for Mamba-2 (the
reference passes states quadratically in the number of chunks), so only the times compare.

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
from fvcore_ext.runtime.standins import install_standin_kernels

install_standin_kernels()

import mamba_ssm.modules.mamba2 as mamba2  # noqa: E402
import mamba_ssm.modules.mamba_simple as mamba_simple  # noqa: E402
from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref  # noqa: E402
from mamba_ssm.ops.selective_scan_interface import selective_scan_ref  # noqa: E402
from mamba_ssm.ops.triton.ssd_combined import ssd_chunk_scan_combined_ref  # noqa: E402


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


def chunk_scan_ref(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                   **unused):
    """``mamba_chunk_scan_combined`` as the Mamba2 module calls it, through the torch reference
    (which has no ``seq_idx``, ``cu_seqlens`` or final states: ``unused`` must be their
    defaults)."""
    if any(value not in (None, False) for value in unused.values()):
        raise ValueError(f"the reference route cannot take {sorted(unused)}")
    return ssd_chunk_scan_combined_ref(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias,
                                       dt_softplus=dt_softplus)


def print_rows(standin, reference, lengths, d_model, repeats, module, replacements):
    """One table row per length: the count of ``standin`` against that of ``reference``, timed
    while ``module`` has its attributes set to ``replacements`` (name -> value)."""
    for length in lengths:
        x = torch.randn(1, length, d_model)
        fast_time, fast_macs = time_count(standin, x, repeats)
        original = {name: getattr(module, name) for name in replacements}
        for name, value in replacements.items():
            setattr(module, name, value)
        try:
            ref_time, _ = time_count(reference, x, repeats)
        finally:
            for name, value in original.items():
                setattr(module, name, value)
        print(f"| {length} | {fast_time:.3f} | {ref_time:.3f} | {ref_time / fast_time:.1f}x "
              f"| {fast_macs:,} |", flush=True)


def mamba2_rows(lengths, d_model, repeats):
    """Mamba-2: the fused layer with stand-ins against the unfused layer through the torch
    reference of the SSD scan (lengths must be multiples of the chunk size, 256)."""
    torch.manual_seed(0)
    standin = mamba2.Mamba2(d_model=d_model, use_mem_eff_path=True).eval()
    reference = mamba2.Mamba2(d_model=d_model, use_mem_eff_path=False).eval()
    reference.load_state_dict(standin.state_dict())
    print(f"\nMamba-2 layer, d_model {d_model}, batch 1, chunk 256, median of {repeats}\n")
    print("| length | stand-ins (s) | ssd_chunk_scan_combined_ref (s) | speed-up | "
          "MACs (stand-ins) |")
    print("|---:|---:|---:|---:|---:|")
    print_rows(standin, reference, lengths, d_model, repeats, mamba2,
               {"mamba_chunk_scan_combined": chunk_scan_ref, "causal_conv1d_fn": None})


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
    print_rows(standin, reference, args.lengths, args.d_model, args.repeats, mamba_simple,
               {"selective_scan_fn": selective_scan_ref, "causal_conv1d_fn": causal_conv1d_ref})
    mamba2_rows([length for length in args.lengths if length % 256 == 0], args.d_model,
                args.repeats)


if __name__ == "__main__":
    main()
