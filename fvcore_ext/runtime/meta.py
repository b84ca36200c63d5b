"""Count on the meta device: shapes only, no weights allocated, no arithmetic done.

A FLOP count needs shapes, not values, so a model whose parameters and inputs live on
``torch.device("meta")`` counts exactly what it counts on CPU, in a fraction of the time and
memory (a LLaMA-3-70B-shaped model in seconds, within 2 GiB).

**Why convolutions failed on meta under the JIT tracer.** Both fvcore and torchprofile trace
with ``torch.jit._get_trace_graph``. The tracer records ``aten::_convolution``, never
``aten::convolution``: ``convolution`` is on the tracer's ``DONT_RECORD_TRACE`` list
(``tools/autograd/gen_trace_type.py``), so its tracer kernel neither records a node nor turns
tracing off; on CPU its composite kernel calls ``at::_convolution``, which the tracer records,
and that is the node fvcore's ``conv`` handle and torchprofile's ``aten::_convolution`` handler
count. On meta, ``aten::convolution`` has a Meta kernel of its own
(``torch/_meta_registrations.py``, ``meta_conv``) that short-circuits that call. It runs with
tracing still on, so every ``tensor.shape[i]`` it reads is a traced 0-dim tensor and its
``torch._check(weight.shape[1] * groups == input.shape[1])`` raises ``TypeError: cond must be
a bool, but got a Tensor``. Turning tracing off inside it would not be enough: the convolution
would still be missing from the graph (the tracer then fails on an output it never saw).

**The fix.** :func:`meta_tracing` registers, for its duration only, a Meta kernel for
``aten::convolution`` that does what ATen's CPU composite does: it calls ``aten::_convolution``
with the same four context flags (cuDNN benchmark, deterministic, enabled, allow TF32). The
tracer records that node exactly as on CPU, turns tracing off, and torch's own Meta kernel of
``_convolution`` computes the shape from plain ints. On exit the registration is destroyed and
the dispatcher serves torch's own ``meta_conv`` again (tested). Outside a trace the temporary
kernel returns what torch's does.

The same block replaces one more Meta kernel that stands between a meta model and its CPU
count: ``aten::_grouped_mm`` (MoE experts), whose torch Meta kernel enforces the CUDA kernel's
bf16-only inputs while the CPU kernel takes float32; the replacement computes the same output
shape for any dtype. :func:`fvcore_ext.count_model`,
:func:`fvcore_ext.cli.compare.compare_tools` and ``torchprofile_ext`` (its ``trace``, so also
``torchprofile.profile_macs`` while the pack is registered) trace inside it; plain fvcore users
wrap their analysis::

    with meta_tracing():
        FlopCountAnalysis(meta_model, (meta_x,)).set_op_handle(**vmamba_handles).total()

A model that reads tensor data (``.item()``, ``if x.any():``, ``nonzero``, boolean-mask
indexing, a MoE loop's ``torch.where(mask)``) cannot run on meta: inside :func:`meta_tracing`
that error becomes a one-line :class:`MetaDeviceError` naming the op and the model's line.
"""
from __future__ import annotations

import copy
import os
import re
import threading
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ["MetaDeviceError", "build_on_meta", "copy_to_device", "inputs_to_device",
           "is_meta_tracing", "meta_error", "meta_tracing"]

META = "meta"


class MetaDeviceError(RuntimeError):
    """A model cannot be counted on the meta device: it reads tensor data (``.item()``,
    ``nonzero``) or runs an op that has no meta kernel.

    Attributes: ``op`` (what needed data, e.g. ``aten::nonzero``), ``problem`` (``needs tensor
    data``, ``has no meta kernel``, ...), ``location`` (``file.py:line`` of the model's code
    that called it, or ``""``). ``str()`` is one line ending in what to do instead.
    """

    def __init__(self, op: str, problem: str = "needs tensor data", location: str = ""):
        self.op, self.problem, self.location = op, problem, location
        super().__init__(self.line("device='cpu'"))

    def line(self, cpu_hint: str) -> str:
        """The one-line message, ending in ``count on CPU instead (<cpu_hint>)``."""
        where = f" (at {self.location})" if self.location else ""
        return (f"cannot count on meta: {self.op} {self.problem}{where}; "
                f"count on CPU instead ({cpu_hint})")


# --- the scoped Meta kernels -------------------------------------------------------------------

def _meta_convolution(input, weight, bias, stride, padding, dilation, transposed,
                      output_padding, groups):
    # ATen's CompositeExplicitAutograd at::convolution (aten/src/ATen/native/Convolution.cpp):
    # at::_convolution(..., ctx.benchmarkCuDNN(), ctx.deterministicCuDNN() ||
    # ctx.deterministicAlgorithms(), ctx.userEnabledCuDNN(), ctx.allowTF32CuDNN()).
    C = torch._C
    return torch.ops.aten._convolution.default(
        input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
        C._get_cudnn_benchmark(),
        C._get_cudnn_deterministic() or C._get_deterministic_algorithms(),
        C._get_cudnn_enabled(), C._get_cudnn_allow_tf32())


def _meta_grouped_mm(mat_a, mat_b, offs=None, bias=None, out_dtype=None):
    # torch's meta_grouped_mm enforces the CUDA kernel's bf16-only inputs (meta tensors carry
    # no device, so torch/_meta_registrations.py checks as for CUDA); the CPU kernel also takes
    # float32 and float16, so a float32 MoE (transformers' grouped_mm experts) counts on CPU
    # but not on meta. The output shape, as in torch's _create_grouped_mm_output_tensor:
    if mat_a.dim() == 2 and mat_b.dim() == 2:
        shape = [offs.size(0), mat_a.size(0), mat_b.size(1)]
    elif mat_a.dim() == 2:
        shape = [mat_a.size(0), mat_b.size(-1)]
    elif mat_b.dim() == 2:
        shape = [mat_a.size(1), mat_b.size(1)]
    else:
        shape = [mat_a.size(0), mat_a.size(1), mat_b.size(-1)]
    return mat_a.new_empty(shape, dtype=out_dtype or mat_a.dtype)


def _meta_upsample_nearest(input, output_size, *scales):
    # torch 2.x's Meta kernels of upsample_nearest{1,2,3}d and _upsample_nearest_exact{1,2,3}d
    # check ``input.numel() != 0 or prod(input.shape[1:])`` with torch._check, which takes
    # that int for a bool and raises on a zero-size batch; the CPU kernels return an empty
    # output. The output shape, as ATen's upsample_*_out_meta: (N, C, *output_size).
    spatial = input.dim() - 2
    torch._check(len(output_size) == spatial,
                 lambda: f"It is expected output_size equals to {spatial}, but got size "
                         f"{len(output_size)}")
    torch._check(all(s > 0 for s in output_size) and all(s > 0 for s in input.shape[2:]),
                 lambda: f"Input and output sizes should be greater than 0, but got input "
                         f"{tuple(input.shape[2:])} and output {tuple(output_size)}")
    return input.new_empty((*input.shape[:2], *output_size))


# Meta kernels replaced inside meta_tracing: op name → kernel.
_META_KERNELS = {"convolution": _meta_convolution, "_grouped_mm": _meta_grouped_mm,
                 **{f"{op}{n}d": _meta_upsample_nearest
                    for op in ("upsample_nearest", "_upsample_nearest_exact") for n in (1, 2, 3)}}

_lock = threading.Lock()
_depth = 0
_library: Optional[torch.library.Library] = None


def _enter() -> None:
    global _depth, _library
    with _lock:
        if _depth == 0:
            library = torch.library.Library("aten", "IMPL", "Meta")
            for op, kernel in _META_KERNELS.items():
                if hasattr(torch.ops.aten, op):    # older torch has no _grouped_mm
                    library.impl(op, kernel)
            _library = library
        _depth += 1


def _exit() -> None:
    global _depth, _library
    with _lock:
        _depth -= 1
        if _depth == 0 and _library is not None:
            # The dispatcher keeps every registration of a kernel; destroying ours makes
            # torch's own (torch/_meta_registrations.py) the Meta kernels again.
            _library._destroy()
            _library = None


def is_meta_tracing() -> bool:
    """Whether a :func:`meta_tracing` block is active (in any thread)."""
    return _depth > 0


@contextmanager
def meta_tracing() -> Iterator[None]:
    """Make the JIT tracer record on meta tensors what it records on CPU, for the block.

    Inside the block ``torch.jit._get_trace_graph`` (so fvcore's ``FlopCountAnalysis``,
    mmengine's ``FlopAnalyzer`` and torchprofile) traces a meta model's convolutions as
    ``aten::_convolution`` nodes, as on CPU (the module docstring says why they fail without
    it), a float32 ``aten::_grouped_mm`` runs on meta as on CPU, and so does nearest and
    nearest-exact upsampling of a zero-size batch (torch's Meta kernels of
    ``upsample_nearest*d`` / ``_upsample_nearest_exact*d`` reject it). A data-dependent error
    raised on meta inside the block becomes a one-line :class:`MetaDeviceError`.

    On exit the temporary Meta kernels are unregistered and torch's own are back. Blocks nest and
    may run in several threads; the kernels go when the last one exits. Harmless for CPU or
    CUDA models: it only changes the Meta dispatch key of ``aten::convolution``,
    ``aten::_grouped_mm`` and the nearest upsampling ops.

    Raises:
        MetaDeviceError: the model read tensor data, or ran an op without a meta kernel.
    """
    _enter()
    try:
        yield
    except Exception as error:
        converted = meta_error(error)
        if converted is None:
            raise
        raise converted from None
    finally:
        _exit()


# --- errors a model raises on meta -----------------------------------------------------------

# Ops whose output shape or control flow depends on values: PyTorch has no meta kernel for
# them, or one that refuses to guess.
_DATA_DEPENDENT = {"aten::nonzero", "aten::masked_select", "aten::_unique2", "aten::unique_dim",
                   "aten::unique_consecutive", "aten::bincount", "aten::repeat_interleave",
                   "aten::_local_scalar_dense", "aten::histogram", "aten::nonzero_numpy"}

_PATTERNS = [
    # (regex on the first line of the error, op or a function of the match, problem)
    (re.compile(r"Tensor\.item\(\) cannot be called on meta tensors"),
     "Tensor.item() (a tensor read as a Python number or bool)", "needs tensor data"),
    (re.compile(r"register_meta function for torch\.nonzero\(\)"), "aten::nonzero",
     "needs tensor data"),
    (re.compile(r"cannot repeat_interleave a meta tensor"), "aten::repeat_interleave",
     "needs tensor data"),
    (re.compile(r"Cannot copy out of meta tensor"),
     "copying a tensor's values (.tolist(), .cpu(), .numpy())", "needs tensor data"),
    (re.compile(r"can't convert meta device type tensor to numpy"), "Tensor.numpy()",
     "needs tensor data"),
    (re.compile(r"^(\w+::\w+): attempted to run this operator with Meta tensors"), None, None),
    (re.compile(r"Could not run '(\w+::\w+)' with arguments from the 'Meta' backend"), None,
     None),
    (re.compile(r"(?:Tensor on device cpu is not on the expected device meta"
                r"|found at least two devices, (?:meta and cpu|cpu and meta))"),
     "a cpu tensor meeting a meta tensor (a weight left on cpu, or a tensor made in forward "
     "without device=)", "cannot run"),
]


def _location(error: BaseException) -> str:
    # The innermost frame of the model's own code: not torch, not the counting tools.
    skip = [os.path.dirname(m.__file__) for m in _tool_modules()]
    # the pack's machinery (runtime, engines: a TorchFunctionMode frame is the innermost
    # Python frame of a torch call), not its reference models
    pack = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    models = os.path.join(pack, "reference_models")
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = os.path.abspath(frame.filename)
        if any(path.startswith(s + os.sep) for s in skip):
            continue
        if path.startswith(pack + os.sep) and not path.startswith(models + os.sep):
            continue
        if frame.filename.startswith("<"):
            continue
        return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    return ""


def _tool_modules():
    import importlib
    for name in ("torch", "fvcore", "torchprofile", "torchprofile_ext", "mmengine"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "__file__", None):
            yield module


def _meta_kernel_in(error: BaseException) -> Optional[str]:
    # The innermost torch Meta kernel in the traceback: a meta_* function if there is one
    # (meta_conv), else the innermost function of torch/_meta_registrations.py
    # (upsample_nearest2d is registered under its op's name).
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f.filename.endswith("_meta_registrations.py")]
    named = [f for f in frames if f.name.startswith("meta_")]
    return (named or frames)[-1].name if frames else None


def meta_error(error: BaseException) -> Optional[MetaDeviceError]:
    """The :class:`MetaDeviceError` for an exception raised while running a model on meta, or
    ``None`` if ``error`` is not one the meta device causes (patterns of PyTorch 2.x's
    messages: ``Tensor.item() cannot be called on meta tensors``, torch.nonzero's
    ``register_meta`` refusal, ``attempted to run this operator with Meta tensors``, ...)."""
    if isinstance(error, MetaDeviceError):
        return error
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    for pattern, op, problem in _PATTERNS:
        match = pattern.search(first)
        if match is None:
            continue
        if op is None:
            op = match.group(1)
            problem = "needs tensor data" if op in _DATA_DEPENDENT else "has no meta kernel"
        return MetaDeviceError(op, problem, _location(error))
    if first.startswith("cond must be a bool, but got"):
        kernel = _meta_kernel_in(error)
        if kernel is None:
            return None
        if first.startswith("cond must be a bool, but got a Tensor"):
            # A Meta kernel that runs inside the trace, as convolution's did: name it.
            return MetaDeviceError(f"torch's {kernel} kernel", "runs inside the JIT trace",
                                   _location(error))
        # A Meta kernel whose own check is broken for this input: torch 2.x's
        # upsample_nearest*d checks `numel != 0 or prod(sizes[1:])`, an int when the batch is
        # 0 (issue 22). The CPU kernel accepts the input.
        return MetaDeviceError(f"torch's Meta kernel {kernel}",
                               "fails on this input (a bug in torch's check, seen on "
                               "zero-size tensors)", _location(error))
    return None


# --- moving a model and its inputs without touching the caller's ----------------------------

Device = Union[str, torch.device]


def _tensors(model: nn.Module):
    yield from model.parameters()
    yield from model.buffers()


def _all_on(tensors, device: torch.device) -> bool:
    return all(t.device.type == device.type and
               (device.index is None or t.device.index == device.index) for t in tensors)


def _moved(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if t.device.type == META and device.type != META:
        # No values to copy: uninitialised memory, which a count never reads.
        return torch.empty_like(t, device=device)
    return t.detach().to(device)


def copy_to_device(model: nn.Module, device: Device) -> nn.Module:
    """``model`` with every parameter and buffer on ``device``, leaving ``model`` untouched.

    ``model`` itself is returned when all its tensors are already there. Otherwise a deep copy
    is made whose parameters and buffers are created on ``device`` before the copy reaches them
    (``copy.deepcopy`` with a prefilled memo), so the copy never duplicates the weights: onto
    meta it allocates nothing, and tied weights stay tied (same parameter count). Moving off
    meta gives uninitialised weights (``to_empty``'s semantics), which a count never reads.
    Plain tensor attributes that are not parameters or buffers are copied as they are, as
    ``Module.to`` leaves them.

    Raises:
        MetaDeviceError: the model cannot be deep-copied (say a lock or an open file in an
            attribute); build it under ``with torch.device("meta"):`` instead.
    """
    device = torch.device(device)
    tensors = list(_tensors(model))
    if _all_on(tensors, device):
        return model
    memo = {}
    for t in tensors:
        if id(t) in memo:
            continue
        moved = _moved(t, device)
        memo[id(t)] = (nn.Parameter(moved, requires_grad=t.requires_grad)
                       if isinstance(t, nn.Parameter) else moved)
    memo[id(memo)] = tensors   # deepcopy's keep-alive slot: ids stay valid while copying
    try:
        return copy.deepcopy(model, memo)
    except Exception as error:
        raise MetaDeviceError(f"copying {type(model).__name__} to {device.type}",
                              f"failed ({type(error).__name__}: {error})".splitlines()[0]
                              + "; build the model under `with torch.device('meta'):`"
                              ) from None


def inputs_to_device(inputs: Union[torch.Tensor, Sequence[torch.Tensor]], device: Device
                     ) -> Tuple[torch.Tensor, ...]:
    """Each input on ``device`` (a tuple). Onto meta only shape and dtype are kept; off meta,
    an input gets zeros (valid token ids for an embedding)."""
    device = torch.device(device)
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    return tuple(torch.zeros_like(x, device=device)
                 if x.device.type == META and device.type != META else x.to(device)
                 for x in inputs)


def build_on_meta(builder: Callable[[], Any]) -> Any:
    """``builder()`` under ``with torch.device("meta"):``, so a model's weights are never
    allocated (how the CLI builds a 70B model on a laptop).

    A builder whose ``__init__`` reads tensor data cannot run there (mmseg's Swin computes its
    drop-path rates with ``.item()``). It is then called again on CPU, and an ``nn.Module`` it
    returns is moved to meta with :func:`copy_to_device` (the CPU copy is freed).

    Returns:
        What ``builder`` returns: an ``nn.Module`` on meta, or anything else as built.

    Raises:
        Whatever ``builder`` raises on CPU.
    """
    try:
        with torch.device(META):
            return builder()
    except Exception as error:
        if meta_error(error) is None:
            raise
    built = builder()
    return copy_to_device(built, META) if isinstance(built, nn.Module) else built
