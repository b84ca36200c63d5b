"""Count every model type of the zoo census through ``hf:`` (``fvcore_ext.hf.count_hf``).

For each tiny config the census wrote (``benchmarks/census_zoo_tiny_configs.json``: the model
types it traced at the tiny level), the config is written to a ``config.json`` and counted
through ``count_hf(path, head=<the census's model class>)`` on the meta device, the default of
``hf:``; a model type that fails on meta is tried again with ``device="cpu"``. Every failure
is listed with its one-line reason. Writes ``benchmarks/HF_ZOO.md``.

Run (from the repository root)::

    python benchmarks/hf_zoo.py                  # all, ~10-20 min on 2 shared CPU cores
    python benchmarks/hf_zoo.py --only llava t5  # a few
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fvcore_ext.standins import install_standin_kernels  # noqa: E402

install_standin_kernels()      # as the census and the tests: mamba-ssm's own Functions

import transformers  # noqa: E402

from fvcore_ext.hf import count_hf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise Timeout(f"took over {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:240]


def vocab_covering_specials(path: str) -> dict:
    """The census shrinks a text sub-config's vocabulary to 512 but keeps the top config's
    image / video token ids (151655, ...), which a real tokenizer holds: grow the text
    vocabulary to cover them (an override, as a user would pass with --set)."""
    from fvcore_ext.hf import resolve_config
    from fvcore_ext.hf_inputs import special_token_ids

    try:
        config, _ = resolve_config(path)
    except Exception:
        return {}
    text = getattr(config, "text_config", None)
    vocab = getattr(text, "vocab_size", None)
    ids = special_token_ids(config)
    if text is None or not isinstance(vocab, int) or not ids or max(ids) < vocab:
        return {}
    return {"text_config.vocab_size": max(ids) + 1}


def count_one(row, tmp: str, timeout: float) -> dict:
    path = os.path.join(tmp, f"{row['name']}.json")
    with open(path, "w") as f:
        json.dump(dict(row["config"], model_type=row["name"]), f)
    record = {"model_type": row["name"], "model_class": row["model_class"]}
    overrides = vocab_covering_specials(path)
    for device in ("meta", "cpu"):
        t0 = time.time()
        try:
            with time_limit(timeout), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = count_hf(path, seq_len=16, decoder_seq_len=8, head=row["model_class"],
                                  device=device, overrides=overrides)
            record.update(status=f"counted on {device}", macs=report.total_macs,
                          engine=getattr(report, "engine", "jit"),
                          seconds=round(time.time() - t0, 2),
                          inputs={n: list(s) for n, s in report.inputs},
                          unknown=sorted(report.unsupported_ops))
            return record
        except (Exception, Timeout) as error:
            record[f"{device}_error"] = one_line(error)
    record["status"] = "failed"
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+")
    p.add_argument("--configs", default=os.path.join(HERE, "census_zoo_tiny_configs.json"))
    p.add_argument("--out", default=os.path.join(HERE, "HF_ZOO.md"))
    p.add_argument("--json")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    transformers.logging.set_verbosity_error()
    with open(args.configs) as f:
        rows = json.load(f)
    if args.only:
        rows = [r for r in rows if r["name"] in args.only]
    records, start = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(rows):
            record = count_one(row, tmp, args.timeout)
            records.append(record)
            print(f"[{i + 1}/{len(rows)}] {row['name']}: {record['status']} "
                  f"{record.get('meta_error', '') if 'cpu' in record['status'] else ''}"
                  f"{record.get('cpu_error', '') if record['status'] == 'failed' else ''}",
                  flush=True)
    elapsed = time.time() - start
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    status = Counter(r["status"] for r in records)
    lines = ["# The zoo through `hf:`", "",
             f"Generated by `python benchmarks/hf_zoo.py` ({time.strftime('%Y-%m-%d')}, "
             f"{elapsed / 60:.1f} min, transformers {transformers.__version__}): every tiny "
             f"config of the zoo census counted by `fvcore_ext.hf.count_hf` (16 tokens, "
             f"8 decoder tokens), on meta, else on CPU; the JIT engine, else the dispatch "
             f"engine.", "",
             f"- model types: **{len(records)}**; counted on meta: **{status['counted on meta']}**;"
             f" only on CPU: **{status['counted on cpu']}**; failed: **{status['failed']}**", "",
             "## Counted only on CPU (the model reads tensor data)", "",
             "| model type | why not on meta |", "|---|---|"]
    for r in records:
        if r["status"] == "counted on cpu":
            lines.append(f"| {r['model_type']} | {r['meta_error'].replace('|', '/')} |")
    lines += ["", "## Failed", "", "| model type | class | reason (CPU) |", "|---|---|---|"]
    for r in records:
        if r["status"] == "failed":
            lines.append(f"| {r['model_type']} | {r['model_class']} | "
                         f"{r['cpu_error'].replace('|', '/')} |")
    engines = Counter(r.get("engine") for r in records if r["status"] != "failed")
    lines[4] = lines[4] + (f"; counted by the dispatch engine where the JIT tracer failed: "
                           f"**{engines['dispatch']}**")
    lines += ["", "## Counted", "", "| model type | device | engine | inputs | MACs (full) | s |",
              "|---|---|---|---|---:|---:|"]
    for r in records:
        if r["status"] != "failed":
            inputs = ", ".join(f"{n} {tuple(s)}" for n, s in r["inputs"].items())
            lines.append(f"| {r['model_type']} | {r['status'].split()[-1]} | {r['engine']} | "
                         f"{inputs} | "
                         f"{r['macs']:,} | {r['seconds']} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {dict(status)} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
