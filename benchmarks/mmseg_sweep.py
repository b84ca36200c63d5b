"""Count every config mmsegmentation 1.2.2 ships with ``fvcore_ext.mmseg.get_flops``, on the meta
device, and write one row per config: its MACs under the paper preset at its crop size (the
``crop_size`` the config trains on; 512x512 when it has none), or the one-line reason it
cannot be counted.

    python benchmarks/mmseg_sweep.py [--out benchmarks/MMSEG_SWEEP.md] [--device meta]
                                     [--only SUBSTRING]

One process builds every model (mmseg imports once); configs whose ``model`` dict and crop size
are the same (they differ in schedule or data only) are counted once. A config that takes more
than 300 s is stopped and reported. With mmdet importable (``pip install --no-deps mmdet pycocotools
shapely terminaltables``) the MaskFormer heads count too; without it their row says so.
"""
from __future__ import annotations

import argparse
import gc
import re
import signal
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fvcore_ext.cli.report import progress, show_progress  # noqa: E402
from fvcore_ext.engines.analysis import count_model  # noqa: E402
from fvcore_ext.mmseg.get_flops import build_segmentor  # noqa: E402
from fvcore_ext.runtime.meta import MetaDeviceError  # noqa: E402
from fvcore_ext.runtime.standins import install_mmcv_ext_standin  # noqa: E402


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("took more than 300 s")


def config_paths():
    """Every model config mmseg 1.2.2 ships (``_base_`` fragments left out), the first of each
    folder first, then the second of each, and so on: a run stopped early has covered every
    family."""
    import mmseg
    root = Path(mmseg.__file__).parent / ".mim" / "configs"
    paths = sorted(p for p in root.rglob("*.py")
                   if "_base_" not in p.parts and "__pycache__" not in p.parts)
    rank = {}
    for path in paths:
        rank[path] = sum(1 for q in rank if q.parent == path.parent)
    return root, sorted(paths, key=lambda p: (rank[p], str(p)))


def crop_size_and_model(path: Path):
    """``((3, H, W), model_text)``: the shape from the config's ``crop_size`` (mmseg's
    pipelines define one; 512x512 when it has none) and its ``model`` dict as text, so configs
    that differ only in schedule or data are counted once."""
    from mmengine import Config
    cfg = Config.fromfile(str(path), import_custom_modules=False)
    size = cfg.get("crop_size") or (512, 512)
    return (3, int(size[0]), int(size[1])), repr(cfg.get("model"))


def count_config(path: Path, device: str, shape=None):
    """``(shape, macs, params, not_counted, reason)`` for one config under the paper preset;
    ``reason`` is a one-line string when it cannot be counted, else ``None``."""
    try:
        shape = shape or crop_size_and_model(path)[0]
        model, inputs, _ = build_segmentor(str(path), shape, device=device)
        with torch.no_grad():
            report = count_model(model, inputs, preset="paper")
    except MetaDeviceError as error:
        if device != "meta":
            return shape, None, None, None, error.line("--device cpu")
        # the model reads tensor data (Mask2Former's deformable attention): count it on CPU
        shape, macs, params, not_counted, reason = count_config(path, "cpu", shape)
        if reason is None:
            not_counted = dict(not_counted, **{"(counted on cpu: reads tensor data)": 1})
        return shape, macs, params, not_counted, reason
    except (Exception, _Timeout) as error:  # a config or a model may raise anything
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return shape, None, None, None, f"{type(error).__name__}: {text}"[:300]
    not_counted = dict(report.unsupported_ops)
    not_counted.update({op.op: op.calls for op in report.uncounted})
    return shape, report.total_macs, report.params, not_counted, None


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="benchmarks/MMSEG_SWEEP.md")
    p.add_argument("--device", default="meta")
    p.add_argument("--only", default="")
    p.add_argument("--shard", default="0/1", help="K/N: count every N-th config from the K-th "
                   "(run N processes, then join their tables)")
    p.add_argument("--resume", default=None, metavar="FILE",
                   help="keep the rows of FILE (this script's table or its printed rows) and "
                        "count only the configs it lacks")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (drawn on stderr, one step per config, only when it "
                        "is a terminal)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    install_mmcv_ext_standin()
    root, paths = config_paths()
    shard, shards = (int(n) for n in args.shard.split("/"))
    paths = [p for p in paths[shard::shards] if args.only in str(p)]
    rows, seen = [], {}
    if args.resume:
        rows = [re.sub(r" \([0-9.]+ s\)$", "", line.rstrip())      # printed rows end in a time
                for line in Path(args.resume).read_text().splitlines() if line.startswith("| `")]
    done = {row.split("`")[1] for row in rows}
    counted = sum(" | - | - | " not in row for row in rows)
    signal.signal(signal.SIGALRM, _alarm)
    for path in progress(paths, "mmseg configs", show_progress(args.quiet), unit="config"):
        if str(path.relative_to(root)) in done:
            continue
        start = time.time()
        signal.alarm(300)
        try:
            try:
                key = crop_size_and_model(path)
            except Exception as error:  # noqa: BLE001  (reported on its row)
                key = (None, f"{path}: {error}")
            if key not in seen:
                seen[key] = count_config(path, args.device, key[0])
            shape, macs, params, not_counted, reason = seen[key]
        finally:
            signal.alarm(0)
        name = str(path.relative_to(root))
        if reason is None:
            counted += 1
            extra = ", ".join(op if op.startswith("(") else f"{op} x{n}"
                              for op, n in not_counted.items())
            rows.append(f"| `{name}` | {shape[1]}x{shape[2]} | {macs / 1e9:.3f} G | "
                        f"{params / 1e6:.2f} M | {extra} |")
        else:
            rows.append(f"| `{name}` | {shape[1] if shape else ''}x{shape[2] if shape else ''}"
                        f" | - | - | {reason.replace('|', '/')} |")
        print(rows[-1], f"({time.time() - start:.1f} s)", flush=True)
        gc.collect()
        _write(args, rows, counted, paths, root)
    _write(args, rows, counted, paths, root)
    return 0


def _write(args, rows, counted, paths, root) -> None:
    # after every row, so a run stopped early leaves what it counted, and says what it did not
    done = {row.split("`")[1] for row in rows}
    left = [str(p.relative_to(root)) for p in paths if str(p.relative_to(root)) not in done]
    header = [
        "# Every mmsegmentation 1.2.2 config, counted by `fvcore_ext.mmseg.get_flops`",
        "",
        f"Written by `benchmarks/mmseg_sweep.py` on `{args.device}`: the paper preset at each "
        "config's crop size, auxiliary head dropped (as mmseg's get_flops does). "
        f"{counted} of {len(rows)} configs counted; the others give their one-line reason.",
        "",
        "| config | H x W | MACs (paper) | params | not counted / reason |",
        "|---|---|---:|---:|---|",
    ]
    table = sorted(rows, key=lambda row: row.split("`")[1])
    tail = ([""] + [f"Not run yet ({len(left)} configs; run the script to count them): "
                    + ", ".join(f"`{name}`" for name in left)] if left else [])
    Path(args.out).write_text("\n".join(header + table + tail) + "\n")


if __name__ == "__main__":
    sys.exit(main())
