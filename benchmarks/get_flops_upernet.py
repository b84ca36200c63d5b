"""UperNet-Swin-T at 512x2048 through ``python -m fvcore_ext.get_flops``: the published number
(945 G MACs, 59 M parameters without the auxiliary head), wall time and peak memory.

    python benchmarks/get_flops_upernet.py [--shape 512 2048] [--preset paper]

Needs the ``mmseg`` extra. Prints the counts, the wall time and the peak RSS of the counting
process (about 30 s and 2.6 GB on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import mmseg

CONFIG = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "swin",
                      "swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", default=["512", "2048"])
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fvcore_ext.mmseg.get_flops", CONFIG, "--shape",
                           *args.shape, "--preset", args.preset, "--format", "json"],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20
    report = json.loads(done.stdout)
    print(f"UperNet-Swin-T {'x'.join(args.shape)}, preset {args.preset}: "
          f"{report['total_macs']:,} MACs, {report['params']:,} params, "
          f"{seconds:.1f} s, peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
