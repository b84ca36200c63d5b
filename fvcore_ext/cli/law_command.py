"""``python -m fvcore_ext law MODEL [MODEL ...] --input-shape 1 3 S S --sizes S=32,48,...``:
count each model at every size of the dimension named by a letter, print a row per size (total
and families) and the exact law of the MACs (:mod:`fvcore_ext.laws`, ``docs/laws.md``), and with
``--plot FILE.png`` draw the counts and laws, log-log. Bad input exits 2 with one line."""
from __future__ import annotations

import argparse
import inspect
import re
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..engines.analysis import ENGINES
from ..laws.count import FORMATS, ROUTES, LawComparison, NoSymbolicLaw, count_law
from ..laws.plot import plot_laws
from ..reference_models import REFERENCE_MODELS, build
from ..reference_models.vit import SmallViT
from ..rules import PRESETS
from .exits import fail, guarded
from ..runtime.meta import MetaDeviceError
from ..runtime.standins import install_standin_kernels
from ..runtime.stdout import BrokenPipe
from ..runtime.stdout import write_stdout as _write
from .main import (DEVICES, DTYPES, UsageError, _builder, _one_line, check_plot_target,
                   reference_models_help)

__all__ = ["add_law_options", "asks_for_law", "law_options_help", "main", "parse_letter_shape",
           "parse_sizes", "sized_builder"]

Dim = Union[int, str]
_LETTER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def parse_letter_shape(text: Sequence[str]) -> Tuple[Dim, ...]:
    """``["1", "3", "S", "S"]`` or ``["1,3,S,S"]`` → ``(1, 3, "S", "S")``: ints ≥ 0 and names
    (a letter, then letters, digits or ``_``) for the varied dimension.

    Raises:
        UsageError: an empty shape or a part that is neither.
    """
    parts = [p for t in text for p in re.split(r"[,×\s]+", t.strip()) if p]
    if not parts:
        raise UsageError("empty --input-shape: expected sizes like 1 3 S S")
    shape: List[Dim] = []
    for part in parts:
        if re.fullmatch(r"[0-9]+", part):
            shape.append(int(part))
        elif _LETTER.fullmatch(part):
            shape.append(part)
        else:
            raise UsageError(f"bad input shape {' '.join(text)!r}: {part!r} is neither an "
                             f"integer >= 0 nor a letter naming the varied size (1 3 S S)")
    return tuple(shape)


def parse_sizes(text: Sequence[str], letters: Sequence[str],
                held_out: int) -> Tuple[str, List[int]]:
    """``["S=32,48,64"]`` (or ``["32,48,64"]`` when the shapes name one letter) → the letter
    and its sizes, ascending.

    Raises:
        UsageError: the letter is not in --input-shape, the shapes name several letters and
            --sizes names none, a size is not a positive integer or repeats, or there are fewer
            than ``held_out + 1`` sizes (too few to check any law).
    """
    joined = ",".join(t.strip() for t in text)
    match = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*)", joined)
    if match:
        letter, values = match.group(1), match.group(2)
        if letter not in letters:
            named = (f"it names {', '.join(sorted(set(letters)))}" if letters
                     else "it names no letter")
            raise UsageError(f"--sizes {letter}=...: {letter!r} is not a letter of "
                             f"--input-shape ({named}); write the varied dimension as a letter, "
                             f"e.g. --input-shape 1 3 {letter} {letter}")
    else:
        if len(set(letters)) != 1:
            raise UsageError(f"--sizes {joined!r}: name the letter, e.g. --sizes S=32,48,64")
        letter, values = letters[0], joined
    sizes = []
    for part in (p for p in re.split(r"[,\s]+", values) if p):
        if re.fullmatch(r"-[0-9]+", part) or part == "0" or re.fullmatch(r"0+", part):
            raise UsageError(f"--sizes: {letter} = {part} is not positive; sizes are "
                             f"integers >= 1")
        if not re.fullmatch(r"[0-9]+", part):
            raise UsageError(f"--sizes: {part!r} is not an integer (e.g. --sizes "
                             f"{letter}=32,48,64)")
        sizes.append(int(part))
    repeated = sorted({s for s in sizes if sizes.count(s) > 1})
    if repeated:
        raise UsageError(f"--sizes: {letter} = {', '.join(map(str, repeated))} given more "
                         f"than once")
    if len(sizes) < held_out + 1:
        raise UsageError(f"--sizes: {len(sizes)} size{'s' if len(sizes) != 1 else ''} of "
                         f"{letter} are too few to check a law: even a constant needs "
                         f"{held_out + 1} (1 to fit, {held_out} held out); a ViT's law over "
                         f"S needs 5, a general degree-4 law {5 + held_out}")
    return letter, sorted(sizes)


def _accepts(target: Callable, keyword: str) -> bool:
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return True      # nothing can be said: let the call tell
    return any(p.name == keyword or p.kind == p.VAR_KEYWORD for p in parameters)


def _names(target: Callable, keyword: str) -> bool:
    # a parameter of that name (not merely **kwargs)
    try:
        return keyword in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def asks_for_law(argv: Sequence[str]) -> bool:
    """Whether a plain ``python -m fvcore_ext MODEL ...`` argv asks for a law: it has
    ``--sizes`` (or ``--sizes=...``), or an ``--input-shape`` with a single letter among its
    sizes (``1 3 S S``, ``1,3,S,S``; ``1x3x224x224`` is a plain shape, and a word such as
    ``three`` is a bad plain shape unless ``--sizes`` names it)."""
    in_shape = False
    for item in argv:
        if item == "--sizes" or item.startswith("--sizes="):
            return True
        if item.startswith("--input-shape="):
            in_shape, item = True, item.partition("=")[2]
        elif item == "--input-shape":
            in_shape = True
            continue
        elif item.startswith("-") and not re.fullmatch(r"-[0-9]+", item):
            in_shape = False
            continue
        if in_shape and any(re.fullmatch(r"[A-Za-wyz]", part)
                            for part in re.split(r"[,×\s]+", item.strip())):
            return True
    return False


def _seeded(make: Callable[[], nn.Module]) -> nn.Module:
    torch.manual_seed(0)                      # as reference_models.build does
    return make().eval()


def _smallvit_at(name: str, size: int) -> nn.Module:
    # The reference ViTs are built at img_size 32 (reference_models._vit); their position
    # embeddings and N x N masks are bound to the token count, so rebuild at img_size = size
    # with the reference model's own hyperparameters, read from a default build.
    default, _ = build(name)
    attn = default.blocks[0].attn
    dim = default.patch_embed.out_channels
    return SmallViT(img_size=size, patch=default.patch_embed.kernel_size[0], dim=dim,
                    depth=len(default.blocks), num_heads=attn.num_heads,
                    num_classes=default.head.out_features,
                    mlp_ratio=default.blocks[0].mlp[0].out_features // dim,
                    explicit=attn.explicit, mask=attn.mask,
                    num_kv_heads=None if attn.num_kv_heads == attn.num_heads
                    else attn.num_kv_heads).eval()


def sized_builder(spec: str, shape: Sequence[Dim], letter: str,
                  size_keyword: Optional[str] = None) -> Callable[[int], Any]:
    """``build(size)`` for one MODEL spec.

    A reference model whose input's last two dims are the letter and whose weights depend on
    the image size is rebuilt at ``img_size = size``: ``swin_stage`` (its attention masks and
    patch merging are built for one resolution) and the ViTs (``vit``, ``vit_explicit``, ...:
    one position-embedding row per token; they are rebuilt with the reference hyperparameters
    read from a default build). Other reference models are built as they are at every size. A
    ``package.module:callable`` is called with ``size_keyword=size`` when given (e.g.
    ``img_size``), else with no argument.

    Raises:
        UsageError: unknown model, a spec that cannot be imported, or a callable that takes no
            ``size_keyword`` argument.
    """
    target = _builder(spec)                   # UsageError for an unknown model
    if spec in REFERENCE_MODELS:
        square = len(shape) == 4 and shape[2] == letter and shape[3] == letter
        make = REFERENCE_MODELS[spec].make
        if square and _names(make, "img_size"):      # SwinStage(img_size=...)
            return lambda size: _seeded(lambda: make(img_size=size))
        if square and isinstance(build(spec)[0], SmallViT):
            return lambda size: _smallvit_at(spec, size)
        return lambda size: build(spec)[0]
    if size_keyword is None:
        return lambda size: target()
    if not _accepts(target, size_keyword):
        raise UsageError(f"{spec!r} takes no argument {size_keyword!r} (--size-keyword): "
                         f"it cannot be rebuilt per size")
    return lambda size: target(**{size_keyword: size})


def _progress(spec: str, letter: str, state: dict, quiet: bool = False):
    """Per size, on stderr and only on a terminal (never with ``quiet``): a tqdm bar if tqdm
    is installed, else a line. Always records the size being counted in ``state`` for error
    messages."""
    interactive = not quiet and sys.stderr is not None and sys.stderr.isatty()
    bar = None

    def report(i: int, n: int, size: int) -> None:
        nonlocal bar
        state["size"] = size
        if not interactive:
            return
        if bar is not None and (i == 0 or bar.total != n):
            bar.close()              # a new pass: counts after a symbolic route that gave none
            bar = None
        if bar is None and state.get("tqdm", True):
            try:
                from tqdm import tqdm
                bar = tqdm(total=n, desc=spec, unit="size", file=sys.stderr, leave=False)
            except ImportError:
                state["tqdm"] = False
        if bar is not None:
            bar.set_postfix_str(f"{letter}={size}")
            bar.update(1 if i else 0)
            if i == n - 1:
                bar.update(1)
                bar.close()
        else:
            print(f"{spec}: counting at {letter} = {size} ({i + 1}/{n})", file=sys.stderr)

    return report


SIZE_KEYWORD_HELP = ("a package.module:callable MODEL may take the varied size as a keyword: "
                     "--size-keyword img_size calls it with img_size=S at each size (for "
                     "weights bound to the size, such as position embeddings); without it "
                     "the callable is called with no argument")


ROUTE_HELP = ("how the law is found: auto (default): one symbolic run (the size a "
              "symbol, at the largest size) checked by counts at two others, else counts "
              "at every size, fitted; symbolic: that run or an error; counts: counts only. "
              "The output says which route gave the law")


def add_law_options(p) -> None:
    """Add the law's own options, defined once: ``--sizes``, ``--size-keyword``,
    ``--held-out``, ``--max-degree``, ``--route``, ``--plot``. ``python -m fvcore_ext law`` takes them, and
    ``python -m fvcore_ext MODEL`` hands its argv to this command when it is given ``--sizes``
    or a letter in ``--input-shape`` (its ``--help`` lists them from here:
    :func:`law_options_help`)."""
    p.add_argument("--sizes", nargs="+", metavar="S=N,N,...",
                   help="the values of the letter in --input-shape (the varied dimension), "
                        "e.g. --input-shape 1 3 S S --sizes S=32,48,64,80,96,112")
    p.add_argument("--size-keyword", metavar="NAME", help=SIZE_KEYWORD_HELP)
    p.add_argument("--held-out", type=int, default=2,
                   help="sizes held out of the fit and checked (default 2)")
    p.add_argument("--max-degree", type=int, default=4, help="highest degree tried (4)")
    p.add_argument("--route", choices=ROUTES, default="auto", help=ROUTE_HELP)
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the counts (points) and laws (curves), log-log (.png/.pdf/.svg)")


def law_options_help() -> str:
    """The law's own options as ``--help`` prints them, for ``python -m fvcore_ext --help``."""
    p = argparse.ArgumentParser(prog="python -m fvcore_ext law", add_help=False)
    add_law_options(p)
    formatter = p._get_formatter()
    formatter.start_section("cost laws: a letter in --input-shape and --sizes count MODEL at "
                            "every size and print its exact law (python -m fvcore_ext law "
                            "--help for all)")
    formatter.add_arguments(p._actions)
    formatter.end_section()
    return formatter.format_help().rstrip()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fvcore_ext law",
        description="Count MODEL at each size of one input dimension (a letter in "
                    "--input-shape, its values in --sizes) and print the exact law of its "
                    "MACs: the polynomial with the fewest coefficients, rational, that "
                    "reproduces every count with at least --held-out sizes checked; 'no law' "
                    "with the counts where none of degree <= --max-degree does. Several "
                    "models give one table and one plot. 'python -m fvcore_ext MODEL "
                    "--input-shape 1 3 S S --sizes S=...' runs this command too.",
        epilog="models whose weights are bound to the input size are rebuilt per size: a "
               "reference ViT or swin_stage at img_size = S; " + SIZE_KEYWORD_HELP + ".\n\n"
               + reference_models_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a reference model (listed below) or package.module:callable")
    p.add_argument("--input-shape", nargs="+", action="append", metavar="N",
                   help="the input's shape with the varied dimension a letter, e.g. 1 3 S S; "
                        "once for every model, or once per model in order")
    add_law_options(p)
    p.add_argument("--input-dtype", default="float32",
                   help=f"dtype of the input ({', '.join(DTYPES)}); long inputs are token ids")
    p.add_argument("--preset", choices=PRESETS, default="full")
    p.add_argument("--engine", choices=ENGINES, default="dispatch",
                   help="dispatch (default) or jit")
    p.add_argument("--device", choices=DEVICES, default="meta",
                   help="meta (default: shapes only, no weights allocated) or cpu")
    p.add_argument("--backward", action="store_true",
                   help="count forward + backward (the dispatch engine)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--standins", action="store_true",
                   help="install the Mamba extension stand-ins before importing MODEL")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def _shapes(args) -> List[Tuple[Dim, ...]]:
    shapes = [parse_letter_shape(s) for s in args.input_shape or []]
    if not shapes:
        raise UsageError("law needs --input-shape with a letter for the varied dimension, "
                         "e.g. --input-shape 1 3 S S --sizes S=32,48,64,80,96,112")
    if len(shapes) not in (1, len(args.models)):
        raise UsageError(f"give one --input-shape, or one per model ({len(args.models)}); "
                         f"got {len(shapes)}")
    return shapes * len(args.models) if len(shapes) == 1 else shapes


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m fvcore_ext law``; returns 0 (a law or "no law" printed), or 2 with one
    line on stderr (and ``{"error": ..., "status": 2}`` on stdout with ``--format json``) for bad
    input: a letter in --input-shape without --sizes, a letter in --sizes not in
    --input-shape, too few or non-positive sizes, an unknown model, a bad --plot path, a model
    that cannot be built or counted at some size; or stdout closed early; 130 on Ctrl-C."""
    return guarded(lambda: _main(argv))


def _main(argv: Optional[Sequence[str]]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.held_out < 1:
            raise UsageError(f"--held-out {args.held_out}: at least 1 size must check the law")
        if args.max_degree < 0:
            raise UsageError(f"--max-degree {args.max_degree}: give 0 or more")
        if args.backward and args.engine != "dispatch":
            raise UsageError("--backward needs --engine dispatch: a JIT trace has no backward")
        if args.input_dtype not in DTYPES:
            raise UsageError(f"unknown dtype {args.input_dtype!r}; expected one of "
                             f"{', '.join(DTYPES)}")
        shapes = _shapes(args)
        letters = [d for shape in shapes for d in shape if isinstance(d, str)]
        if len(set(letters)) > 1:
            raise UsageError(f"--input-shape names {', '.join(sorted(set(letters)))}: one "
                             f"letter (the varied dimension) only")
        if not args.sizes:
            if letters:
                raise UsageError(f"--input-shape names {letters[0]!r} but --sizes is missing: "
                                 f"give its values, e.g. --sizes {letters[0]}=32,48,64,80,96,112")
            raise UsageError("law needs a letter in --input-shape for the varied dimension and "
                             "--sizes with its values, e.g. --input-shape 1 3 S S "
                             "--sizes S=32,48,64,80,96,112")
        letter, sizes = parse_sizes(args.sizes, letters, args.held_out)
        if args.plot:
            check_plot_target(args.plot)
        if args.standins:
            install_standin_kernels()
        builders = [sized_builder(spec, shape, letter, args.size_keyword)
                    for spec, shape in zip(args.models, shapes)]
        reports = []
        for spec, shape, builder in zip(args.models, shapes, builders):
            state: dict = {}
            try:
                reports.append(count_law(
                    builder, shape, sizes, variable=letter, engine=args.engine,
                    device=args.device, preset=args.preset, backward=args.backward,
                    held_out=args.held_out, max_degree=args.max_degree,
                    progress=_progress(spec, letter, state, args.quiet), label=spec,
                    input_dtype=DTYPES[args.input_dtype], route=args.route))
            except UsageError:
                raise
            except NoSymbolicLaw as error:
                raise UsageError(f"{_one_line(error)} (--route auto fits counts instead)") \
                    from None
            except MetaDeviceError as error:
                raise UsageError(f"{spec} at {letter} = {state.get('size')}: "
                                 f"{error.line('--device cpu')}") from None
            except Exception as error:  # the model's own code may raise anything
                raise UsageError(f"cannot count {spec!r} at {letter} = {state.get('size')} "
                                 f"(input {' '.join(map(str, shape))}): "
                                 f"{_one_line(error)}") from None
        result = reports[0] if len(reports) == 1 else LawComparison(reports)
        _write(result.format(args.format))
        if args.plot:
            try:
                plot_laws(reports, args.plot)
            except (ImportError, ValueError, OSError) as error:
                raise UsageError(f"--plot: {_one_line(error)}") from None
            print(f"plot written to {args.plot}", file=sys.stderr)
    except (UsageError, BrokenPipe) as error:
        return fail(error, args.format == "json")
    return 0
