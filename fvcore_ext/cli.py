"""``python -m fvcore_ext [MODEL] ...``: count a model with fvcore and the pack's handles and
print the total (MACs and FLOPs), parameters, per-operator and per-module tables and what was
not counted. Bad input exits with status 2 and a one-line reason."""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .analysis import count_model
from .compare import compare_tools, format_comparison
from .diagnostics import UncountableOpError
from .meta import MetaDeviceError, build_on_meta
from .reference_models import REFERENCE_MODELS, build
from .report import FORMATS, format_report
from .rules import PRESETS

__all__ = ["main"]

DEFAULT_MODEL = "vit"
DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "long": torch.long, "int64": torch.long}
DEVICES = ("cpu", "meta")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def parse_shape(text: Sequence[str]) -> Tuple[int, ...]:
    """``["1", "3", "224", "224"]``, ``["1,3,224,224"]`` or ``["1x3x224x224"]`` → a shape tuple.
    ``UsageError`` unless every size is a non-negative integer."""
    parts = [p for t in text for p in re.split(r"[,x×\s]+", t.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"bad input shape {' '.join(text)!r}: expected integers like 1 3 224 224")
    return tuple(int(p) for p in parts)


def load_model(spec: str, device: str = "cpu") -> nn.Module:
    """A reference model name, or ``package.module:callable`` returning an ``nn.Module`` (an
    ``nn.Module`` instance at that path is used as is). ``UsageError`` otherwise.

    With ``device="meta"`` the model is built under ``with torch.device("meta"):``, so its
    weights are never allocated; a builder that needs tensor data there is built on CPU and
    moved (:func:`fvcore_ext.meta.build_on_meta`). An instance is returned as it is."""
    builder = _builder(spec)
    try:
        model = build_on_meta(builder) if device == "meta" else builder()
    except Exception as error:  # a user's builder may raise anything
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UsageError(f"{spec!r} raised {type(error).__name__}: {message}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _builder(spec: str) -> Callable[[], object]:
    if spec in REFERENCE_MODELS:
        return lambda: build(spec)[0]
    if ":" not in spec:
        raise UsageError(f"unknown model {spec!r}: not a reference model "
                         f"({', '.join(REFERENCE_MODELS)}) and not package.module:callable")
    module_name, _, attr = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise UsageError(f"cannot load {spec!r}: {type(error).__name__}: {error}") from None
    if isinstance(target, nn.Module):
        return lambda: target
    if not callable(target):
        raise UsageError(f"{spec!r} is neither an nn.Module nor callable")
    return target


def _inputs(args, model_name: str, device: str = "cpu") -> List[torch.Tensor]:
    shapes = [parse_shape(s) for s in args.input_shape or []]
    if not shapes:
        if model_name not in REFERENCE_MODELS:
            raise UsageError(f"--input-shape is required for {model_name!r}")
        shapes = [REFERENCE_MODELS[model_name].input_shape]
    dtypes = args.input_dtype or ["float32"]
    if len(dtypes) not in (1, len(shapes)):
        raise UsageError("give one --input-dtype, or one per --input-shape")
    if args.input_name and len(args.input_name) != len(shapes):
        raise UsageError("give one --input-name per --input-shape")
    tensors = []
    for shape, dtype in zip(shapes, dtypes * len(shapes) if len(dtypes) == 1 else dtypes):
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
        if device == "meta":    # shape and dtype only
            tensors.append(torch.empty(shape, dtype=DTYPES[dtype], device="meta"))
        elif DTYPES[dtype] == torch.long:
            tensors.append(torch.randint(0, 2, shape))
        else:
            tensors.append(torch.randn(shape, dtype=DTYPES[dtype]))
    return tensors


def _parser(compare: bool) -> argparse.ArgumentParser:
    if compare:
        p = argparse.ArgumentParser(
            prog="python -m fvcore_ext compare",
            description="Count a model with fvcore and torchprofile, each alone and each with "
                        "the pack, and explain every per-operator difference.")
    else:
        p = argparse.ArgumentParser(
            prog="python -m fvcore_ext",
            description="Count MACs and FLOPs (FLOPs = 2 x MACs) of a PyTorch model with "
                        "fvcore and the pack's handles. 'python -m fvcore_ext compare MODEL' "
                        "compares fvcore and torchprofile on it.")
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"a reference model ({', '.join(REFERENCE_MODELS)}) or "
                        f"package.module:callable returning an nn.Module "
                        f"(default: {DEFAULT_MODEL})")
    p.add_argument("--input-shape", nargs="+", action="append", metavar="N",
                   help="shape of one input, e.g. 1 3 224 224; repeat for several inputs")
    p.add_argument("--input-name", action="append",
                   help="pass the input as this keyword (e.g. pixel_values); one per input")
    p.add_argument("--input-dtype", action="append",
                   help=f"dtype of the inputs ({', '.join(DTYPES)}); long inputs are token ids")
    p.add_argument("--preset", choices=PRESETS, default="full")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--depth", type=int, default=2, help="per-module table depth (default 2)")
    p.add_argument("--strict", action="store_true",
                   help="fail instead of counting 0 when an op cannot be counted")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="cpu (default) or meta: build and count the model on the meta device, "
                        "shapes only, no weights allocated, the same counts")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input or an untraceable model).
    ``compare MODEL ...`` runs :func:`fvcore_ext.compare.compare_tools` instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("hf:"):   # a Hugging Face model from its config
        from .hf import main as hf_main
        return hf_main(argv)
    compare = bool(argv) and argv[0] == "compare"
    args = _parser(compare).parse_args(argv[1:] if compare else argv)
    try:
        model = load_model(args.model, args.device)
        inputs = _inputs(args, args.model, args.device)
        if compare:
            counts = compare_tools(model, inputs, args.input_name, args.preset, args.device)
            print(format_comparison(counts, "json" if args.format == "json" else "table"))
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            try:
                report = count_model(model, inputs, args.input_name, args.preset, args.strict,
                                     device=args.device)
            except UncountableOpError as error:
                raise UsageError(f"strict mode: {error}") from None
            except MetaDeviceError as error:
                raise UsageError(error.line("--device cpu")) from None
            except Exception as error:  # the model's own code may raise anything while traced
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise UsageError(f"cannot trace {args.model!r} on inputs "
                                 f"{[tuple(x.shape) for x in inputs]}: "
                                 f"{type(error).__name__}: {message}") from None
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report, args.format, args.depth, title=args.model))
    return 0
