"""``python -m fvcore_ext [MODEL] ...``: count a model with fvcore and the pack's handles and
print the total (MACs and FLOPs), parameters, per-operator and per-module tables and what was
not counted. Bad input, and with ``--strict`` any op left out of the count, exits with status 2
and a one-line reason. ``python -m fvcore_ext compare MODEL`` compares the tools on a model;
``python -m fvcore_ext census MODEL`` lists its ops (:mod:`fvcore_ext.cli.census`)."""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import inspect
import math
import os
import re
import sys
import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..engines.analysis import ENGINES, count_model
from .compare import compare_tools, format_comparison
from ..ops.diagnostics import UncountableOpError
from .exits import fail, guarded
from ..runtime.meta import MetaDeviceError, build_on_meta
from ..reference_models import REFERENCE_MODELS, build
from .report import FORMATS, format_report
from ..rules import PRESETS
from ..engines.jit.tracing import unwrap_model
from ..runtime.stdout import BrokenPipe
from ..runtime.stdout import write_stdout as _write
from ..runtime.standins import install_standin_kernels, standin_hint

__all__ = ["main"]

DEFAULT_MODEL = "vit"
DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "long": torch.long, "int64": torch.long}
DEVICES = ("cpu", "meta")
# --dtype: the model's floating parameters, buffers and inputs
MODEL_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
INT64_MAX = 2 ** 63 - 1


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""


def check_plot_target(path: str) -> None:
    """``--plot PATH`` refused before anything is counted
    (:func:`fvcore_ext.laws.plot.check_plot_path`): ``UsageError`` with its one line."""
    from ..laws.plot import check_plot_path
    try:
        check_plot_path(path)
    except ValueError as error:
        raise UsageError(str(error)) from None


def parse_shape(text: Sequence[str]) -> Tuple[int, ...]:
    """``["1", "3", "224", "224"]``, ``["1,3,224,224"]`` or ``["1x3x224x224"]`` → a shape tuple.
    ``UsageError`` unless every size is a non-negative integer (ASCII digits) that fits a
    tensor dimension (int64); a negative size is named."""
    parts = [p for t in text for p in re.split(r"[,x×\s]+", t.strip()) if p]
    negative = [p for p in parts if re.fullmatch(r"-[0-9]+", p)]
    if negative:
        raise UsageError(f"bad input shape {' '.join(text)!r}: size {negative[0]} is negative; "
                         f"sizes are integers >= 0, like 1 3 224 224")
    # ASCII digits only: '²'.isdigit() is true and int('²') fails (issue 22)
    if not parts or not all(re.fullmatch(r"[0-9]+", p) for p in parts):
        raise UsageError(f"bad input shape {' '.join(text)!r}: expected integers like 1 3 224 224")
    shape = tuple(int(p) for p in parts)
    if max(shape) > INT64_MAX:
        raise UsageError(f"bad input shape {' '.join(text)!r}: a size is at most {INT64_MAX:,}")
    return shape


def _shape_text(shape: Sequence[int]) -> str:
    return " ".join(str(n) for n in shape)


def reference_models_line() -> str:
    """Every reference model with the input shape it is built for and counted on by default:
    ``cnn (2 3 16 16), vit (2 3 32 32), ...``."""
    return ", ".join(f"{name} ({_shape_text(m.input_shape)})"
                     for name, m in REFERENCE_MODELS.items())


def check_input_names(model: nn.Module, names: Optional[Sequence[Optional[str]]]
                      ) -> Optional[str]:
    """Check each ``--input-name`` against ``model.forward``'s signature.

    Returns:
        ``None`` when every name is a named argument of ``forward`` (or nothing can be said),
        else a hint for an error message, for a name ``forward`` may still take through
        ``**kwargs`` (``--input-name 'image' is not a named argument of forward (it takes
        pixel_values, ...)``).

    Raises:
        UsageError: ``forward`` has no ``**kwargs`` and no argument of that name, or the name
            is a near miss of one (``pixel_value`` for ``pixel_values``).
    """
    try:
        parameters = inspect.signature(unwrap_model(model).forward).parameters.values()
    except (TypeError, ValueError):  # a builtin or scripted forward: nothing to check
        return None
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in parameters)
    for name in names or []:
        if name is None or name in named:
            continue
        takes = f"it takes {', '.join(named)}" if named else "it takes no named argument"
        close = difflib.get_close_matches(name, named, n=1, cutoff=0.8)
        if close:
            raise UsageError(f"--input-name {name!r}: forward has no argument {name!r}; "
                             f"did you mean {close[0]!r}? ({takes})")
        if not takes_kwargs:
            raise UsageError(f"--input-name {name!r}: forward has no argument {name!r} "
                             f"({takes})")
        if named:
            return f"--input-name {name!r} is not a named argument of forward ({takes})"
    return None


def load_model(spec: str, device: str = "cpu") -> nn.Module:
    """A reference model name, or ``package.module:callable`` returning an ``nn.Module`` (an
    ``nn.Module`` instance at that path is used as is). ``UsageError`` otherwise.

    With ``device="meta"`` the model is built under ``with torch.device("meta"):``, so its
    weights are never allocated; a builder that needs tensor data there is built on CPU and
    moved (:func:`fvcore_ext.runtime.meta.build_on_meta`). An instance is returned as it is."""
    builder = _builder(spec)
    try:
        model = build_on_meta(builder) if device == "meta" else builder()
    except SystemExit as error:   # a builder that ends the process is not a model
        raise UsageError(f"{spec!r} called sys.exit({error.code!r}) instead of returning an "
                         f"nn.Module") from None
    except Exception as error:  # a user's builder may raise anything
        raise UsageError(f"{spec!r} raised {_one_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec!r} returned {type(model).__name__}, not an nn.Module")
    return model


def _one_line(error: BaseException) -> str:
    # "TypeError: first line of the message"; a SyntaxError's str() already names file and line.
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _builder(spec: str) -> Callable[[], object]:
    if spec in REFERENCE_MODELS:
        return lambda: build(spec)[0]
    if ":" not in spec:
        raise UsageError(f"unknown model {spec!r}: not package.module:callable and not a "
                         f"reference model (name and default input shape: "
                         f"{reference_models_line()})")
    module_name, _, attr = spec.partition(":")
    if module_name.startswith("."):
        raise UsageError(f"cannot load {spec!r}: {module_name!r} is a relative module name; "
                         f"give the full one (package.module:callable)")
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except SystemExit as error:   # a module that ends the process when imported
        raise UsageError(f"cannot load {spec!r}: importing it called sys.exit({error.code!r})"
                         ) from None
    except Exception as error:  # importing a user's module runs its code: it may raise anything
        raise UsageError(f"cannot load {spec!r}: {_one_line(error)}{standin_hint(error)}") from None
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
        tensors.append(_input_tensor(shape, DTYPES[dtype], device))
    return tensors


def _physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):    # not on this platform
        return None


def _input_tensor(shape: Tuple[int, ...], dtype: torch.dtype, device: str) -> torch.Tensor:
    # One input. On CPU it is allocated and filled, so a shape larger than the machine's memory
    # is refused before trying (filling it would wake the OOM killer), and a failed allocation
    # is one line that points to the meta device, where only shapes exist.
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    too_big = UsageError(f"input shape {shape} needs {nbytes:,} bytes of {dtype} on "
                         f"{device}: count shapes only with --device meta")
    memory = _physical_memory()
    if device != "meta" and memory is not None and nbytes > memory:
        raise too_big
    try:
        if device == "meta":    # shape and dtype only
            return torch.empty(shape, dtype=dtype, device="meta")
        if dtype == torch.long:
            return torch.randint(0, 2, shape)
        return torch.randn(shape, dtype=dtype)
    except MemoryError:
        raise too_big from None
    except (RuntimeError, ValueError, OverflowError, TypeError) as error:
        if device != "meta" and "alloc" in str(error).lower():
            raise too_big from None
        raise UsageError(f"cannot make an input of shape {shape}: {_one_line(error)}") from None


def non_negative_int(text: str) -> int:
    """argparse type for ``--depth``: an integer >= 0 (``ArgumentTypeError`` otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 (the whole model only) "
                                         f"or more")
    return value


def reference_models_help() -> str:
    """The ``--help`` epilog: each reference model, its default input shape and what it is."""
    width = max(len(name) for name in REFERENCE_MODELS)
    shape_width = max(len(_shape_text(m.input_shape)) for m in REFERENCE_MODELS.values())
    lines = ["reference models (MODEL), each with the input shape it is built for and counted "
             "on\nwhen --input-shape is not given:"]
    lines += [f"  {name.ljust(width)}  {_shape_text(m.input_shape).ljust(shape_width)}  "
              f"{m.description}" for name, m in REFERENCE_MODELS.items()]
    return "\n".join(lines)


def trace_failure(spec: str, inputs: Sequence[torch.Tensor], error: BaseException,
                  name_hint: Optional[str] = None) -> str:
    """One line for a model that raised while traced: the model, the input shapes, the error,
    and what likely caused it: a reference model given another shape than its own, or an
    ``--input-name`` its ``forward`` does not name (``name_hint``)."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    shapes = [tuple(x.shape) for x in inputs]
    line = f"cannot trace {spec!r} on inputs {shapes}: {type(error).__name__}: {message}"
    if spec in REFERENCE_MODELS and shapes != [REFERENCE_MODELS[spec].input_shape]:
        shape = REFERENCE_MODELS[spec].input_shape
        line += (f"; the reference model {spec!r} is built for input shape {_shape_text(shape)}"
                 f" (leave out --input-shape to use it)")
    if name_hint:
        line += f"; {name_hint}"
    return line


def add_shared_options(p: argparse.ArgumentParser, device_default: str = "cpu",
                       compare: bool = False) -> None:
    """Add the options every counting command shares, defined once: ``--preset``,
    ``--format``, ``--depth``, ``--strict``, ``--engine``, ``--backward``, ``--device``,
    ``--standins``, ``--quiet``. ``python -m fvcore_ext MODEL`` and ``python -m fvcore_ext
    hf:SPEC`` both take them with the same meaning; only ``--device``'s default differs
    (``device_default``: ``"cpu"`` for MODEL, ``"meta"`` for hf:, which never needs weights).
    ``--engine``'s default is ``None``: the JIT engine (hf: falls back to the dispatch engine
    where the tracer cannot take the model), the dispatch engine with ``--backward``."""
    p.add_argument("--preset", choices=PRESETS, default="full",
                   help="full (default): every op counted; paper: matmul, conv, attention "
                        "and scans only, as papers report")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), markdown, or json (stdout holds only JSON; what "
                        "the model prints goes to stderr)")
    p.add_argument("--depth", type=non_negative_int, default=2,
                   help="per-module table depth, 0 or more (default 2)")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 naming the op when any op is left out of the count (an op "
                        "with no rule, or one a rule cannot read), instead of counting it 0 "
                        "and listing it under 'Not counted'")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="jit (default): trace and count with fvcore (hf: falls back to "
                        "dispatch where the tracer cannot take the model); dispatch: count at "
                        "PyTorch's dispatcher (FlopCounterMode), no trace needed"
                        + ("; compare then adds a third engine's column" if compare else ""))
    p.add_argument("--backward", action="store_true",
                   help="count a training step: the model in train mode, forward, then "
                        "backward from the sum of the outputs; forward, backward and total "
                        "(implies --engine dispatch)")
    p.add_argument("--device", choices=DEVICES, default=device_default,
                   help=f"{device_default} (default) or "
                        f"{'meta' if device_default == 'cpu' else 'cpu'}: meta builds and "
                        f"counts the model on the meta device, shapes only, no weights "
                        f"allocated, the same counts; cpu allocates random weights")
    p.add_argument("--standins", action="store_true",
                   help="install the Mamba extension stand-ins (fvcore_ext.standins) before "
                        "building the model, to count Vim and VMamba (or transformers' Mamba) "
                        "without their CUDA extensions")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (drawn on stderr only when it is a terminal, never "
                        "under --format json)")
    if compare:
        return
    p.add_argument("--hardware", metavar="NAME|SPEC",
                   help="bytes moved and a roofline time per op, module and model on a device: "
                        "h100, h200, a100, l4, rtx4090, or peak_tflops=P,bandwidth_gbs=B "
                        "[,compute_efficiency=E][,memory_efficiency=E] (implies --engine "
                        "dispatch; docs/roofline.md)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"),
                   help="build the model in this dtype (its floating inputs follow), so that "
                        "bytes and peaks are the ones you will run with (default: as built)")


def shared_settings(args) -> Tuple[Optional[str], Optional[torch.dtype], Any]:
    """The engine, model dtype and device the shared options ask for: ``--backward`` and
    ``--hardware`` imply the dispatch engine. ``UsageError`` (one line) for ``--backward`` or
    ``--hardware`` with ``--engine jit``, or a device spec that does not parse."""
    from ..roofline import parse_hardware

    hardware = None
    if getattr(args, "hardware", None):
        try:
            hardware = parse_hardware(args.hardware)
        except ValueError as error:
            raise UsageError(f"--hardware: {error}") from None
    needs_dispatch = args.backward or hardware is not None
    if needs_dispatch and args.engine not in (None, "dispatch"):
        flag = "--backward" if args.backward else "--hardware"
        raise UsageError(f"{flag} needs --engine dispatch: a JIT trace has no "
                         + ("backward" if args.backward else "bytes per op"))
    engine = args.engine or ("dispatch" if needs_dispatch else None)
    dtype = MODEL_DTYPES[args.dtype] if getattr(args, "dtype", None) else None
    return engine, dtype, hardware


def _parser(compare: bool) -> argparse.ArgumentParser:
    epilog = reference_models_help()
    if not compare:
        from .hf_command import hf_options_help
        from .law_command import law_options_help
        epilog += "\n\n" + law_options_help() + "\n\n" + hf_options_help()
    common = dict(epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    if compare:
        p = argparse.ArgumentParser(
            prog="python -m fvcore_ext compare",
            description="Count a model with fvcore and torchprofile, each alone and each with "
                        "the pack, and explain every per-operator difference.", **common)
    else:
        p = argparse.ArgumentParser(
            prog="python -m fvcore_ext",
            usage="python -m fvcore_ext [MODEL] [options]\n"
                  "       python -m fvcore_ext hf:SPEC [hf options] [options]\n"
                  "       python -m fvcore_ext compare MODEL [options]\n"
                  "       python -m fvcore_ext census MODEL [MODEL ...] [options]",
            description="Count MACs and FLOPs (FLOPs = 2 x MACs) of a PyTorch model with "
                        "fvcore and the pack's handles.\n'compare MODEL' compares fvcore and "
                        "torchprofile on it. 'census MODEL' lists every op it runs with\n"
                        "the rule that counts it, exit status 1 if one has none "
                        "('python -m fvcore_ext census --help').\n'hf:SPEC' counts a Hugging "
                        "Face model from its config: its own options are listed below.",
            **common)
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"a reference model (listed below) or package.module:callable "
                        f"returning an nn.Module (default: {DEFAULT_MODEL})")
    p.add_argument("--input-shape", nargs="+", action="append", metavar="N",
                   help="shape of one input, e.g. 1 3 224 224; repeat for several inputs "
                        "(default for a reference model: its shape, listed below); a letter "
                        "(1 3 S S) with --sizes S=32,48,... counts at every size and prints "
                        "the exact law (cost laws, below)")
    p.add_argument("--input-name", action="append",
                   help="pass the input as this keyword (e.g. pixel_values); one per input")
    p.add_argument("--input-dtype", action="append",
                   help=f"dtype of the inputs ({', '.join(DTYPES)}); long inputs are token ids")
    add_shared_options(p, device_default="cpu", compare=compare)
    if not compare:
        p.add_argument("--plot", metavar="FILE.png",
                       help="with --hardware: draw the roofline (each operator at its FLOPs per "
                            "byte and attained FLOP/s, sized by its time; matplotlib)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status: 0 ok, 2 on bad input, an untraceable model, with
    ``--strict`` an op left out of the count, a comparison in which every tool failed, a
    builder that calls ``sys.exit``, or an output closed early (``| head``, ``>&-``); 130 on
    Ctrl-C. An error is one line on stderr; with ``--format json`` stdout also gets
    ``{"error": ..., "status": 2}``, and whatever the model prints while it is built and
    counted goes to stderr, so stdout holds only the result. Global state is left as it was:
    the RNG (inputs are drawn on a forked generator), default dtype, grad mode.
    ``compare MODEL ...`` runs :func:`fvcore_ext.cli.compare.compare_tools` instead;
    ``hf:SPEC ...`` runs :func:`fvcore_ext.cli.hf_command.main`; ``--sizes`` or a letter in
    ``--input-shape`` (``MODEL --input-shape 1 3 S S --sizes S=32,48,...``) runs the law
    command, :func:`fvcore_ext.cli.law_command.main`, with the same argv (MODEL defaulting to
    the reference vit), whose parser alone defines the law's options."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("hf:"):   # a Hugging Face model from its config
        from .hf_command import main as hf_main
        return hf_main(argv)
    if not (argv and argv[0] == "compare"):
        from .law_command import asks_for_law
        if asks_for_law(argv):   # --sizes or a letter in --input-shape: the law command
            from .law_command import main as law_main
            return law_main(argv if argv and not argv[0].startswith("-")
                            else [DEFAULT_MODEL] + argv)
    return guarded(lambda: _main(argv))


def _main(argv: List[str]) -> int:
    compare = bool(argv) and argv[0] == "compare"
    args = _parser(compare).parse_args(argv[1:] if compare else argv)
    try:
        engine, dtype, hardware = (args.engine or ("dispatch" if args.backward else "jit"),
                                   None, None) if compare else shared_settings(args)
        engine = engine or "jit"
        if not compare and args.plot:
            if hardware is None:
                raise UsageError("--plot draws the roofline: give --hardware too")
            check_plot_target(args.plot)
        if args.standins:
            install_standin_kernels()
        # the model's own prints (while built, traced or run) go to stderr: stdout holds
        # only the result, JSON under --format json
        with contextlib.redirect_stdout(sys.stderr):
            model = load_model(args.model, args.device)
            inputs = _inputs(args, args.model, args.device)
            if dtype is not None:
                model = model.to(dtype)
                if not args.input_dtype:
                    inputs = [x.to(dtype) if x.is_floating_point() else x for x in inputs]
            name_hint = check_input_names(model, args.input_name)
            if compare:
                counts = compare_tools(model, inputs, args.input_name, args.preset,
                                       args.device, dispatch=engine == "dispatch",
                                       backward=args.backward)
                if all(c.error is not None for c in counts):
                    raise UsageError(f"every tool failed on {args.model!r}; the first: "
                                     f"{counts[0].error.splitlines()[0]}")
            else:
                report = _count(model, inputs, args, engine, name_hint, hardware)
        if compare:
            _write(format_comparison(counts, "json" if args.format == "json" else "table"))
            return 0
        _write(format_report(report, args.format, args.depth, title=args.model))
        if args.plot:
            from .roofline_plot import plot_roofline
            try:
                plot_roofline(report, hardware, args.plot, args.dtype, title=args.model)
            except (OSError, ValueError) as error:
                raise UsageError(f"cannot write --plot {args.plot!r}: {error}") from None
            print(f"wrote {args.plot}", file=sys.stderr)
    except (UsageError, BrokenPipe) as error:
        return fail(error, args.format == "json")
    return 0


def _count(model: nn.Module, inputs, args, engine: str, name_hint: Optional[str],
           hardware=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            return count_model(model, inputs, args.input_name, args.preset, args.strict,
                               device=args.device, engine=engine, backward=args.backward,
                               hardware=hardware)
        except UncountableOpError as error:
            raise UsageError(f"strict mode: {error}") from None
        except MetaDeviceError as error:
            raise UsageError(error.line("--device cpu")) from None
        except SystemExit as error:
            raise UsageError(f"{args.model!r} called sys.exit({error.code!r}) while counted"
                             ) from None
        except Exception as error:  # the model's own code may raise anything while traced
            raise UsageError(trace_failure(args.model, inputs, error, name_hint)
                             + standin_hint(error)) from None
