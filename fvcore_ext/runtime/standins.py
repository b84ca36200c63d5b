"""Stand-in Mamba CUDA extensions, so mamba-ssm, causal-conv1d and VMamba models can be traced
and counted on a machine without a GPU.

A FLOP count needs shapes, not values. When a real extension cannot be imported, the stand-in
module of the same name provides the forward entry points that the upstream autograd Functions
call, with the same signatures, returning zeros of the right shapes at once instead of running
the scan. The Functions themselves (``SelectiveScanFn``, ``MambaInnerFn``, ``CausalConv1dFn``,
VMamba's ``SelectiveScan*``) stay the real ones, so the trace has exactly the
``prim::PythonOp.<ClassName>`` nodes a GPU run has. The outputs are meaningless: use stand-ins
only to count.

- ``selective_scan_cuda.fwd`` and ``.bwd`` (state-spaces/mamba ``csrc/selective_scan``)
- ``causal_conv1d_cuda.causal_conv1d_fwd`` and ``.causal_conv1d_bwd`` (Dao-AILab/causal-conv1d;
  1.4+ fills ``out`` and the gradients, older versions return them)
- ``selective_scan_cuda_oflex.fwd`` / ``.bwd`` and ``selective_scan_cuda_core.fwd`` / ``.bwd``
  (MzeroMiko/VMamba)

The backward entry points let a training count (``count_model(..., backward=True)``) run the
Functions' real ``backward``; their gradients are zeros.

mamba-ssm's Mamba-2 kernels and fused norms are Triton, which imports without a GPU but cannot
launch a kernel. On a machine without CUDA, the stand-in ``mamba_ssm.ops.triton`` replaces the
host functions that launch them, in the modules whose Functions call them:

- ``ssd_combined._mamba_chunk_scan_combined_fwd`` and ``_bwd`` (``MambaChunkScanCombinedFn``,
  ``MambaSplitConv1dScanCombinedFn``), ``ssd_combined._swiglu_fwd`` and ``_swiglu_bwd``;
- ``layernorm_gated._layer_norm_fwd`` and ``_bwd`` (also bound in ``ssd_combined``): the gated
  RMSNorm;
- ``layer_norm._layer_norm_fwd`` and ``_bwd`` (``layernorm`` in mamba-ssm 1.x and Vim's
  mamba-1p1p1): the fused residual add + norm of ``MambaLMHeadModel`` and Vim blocks;
- VMamba's own copies: any module named ``ssd_combined`` or ``layernorm_gated`` (its
  ``classification/models/mamba2``, whatever package it is imported as), and
  ``csm_triton.cross_scan_fn`` / ``cross_merge_fn``, which enter ``torch.cuda.device(x.device)``
  before choosing their torch path and so raise on a CPU or meta tensor: they run as they are,
  with that context a no-op for such tensors.

Modules imported later are patched as they are imported, by an import hook on ``sys.meta_path``
(:func:`install_standin_kernels`), before any other module can bind their functions; functions
already bound elsewhere with ``from ... import`` are replaced there too.

:func:`install_mmcv_ext_standin` is the same idea for ``mmcv._ext`` (mmcv-lite ships no compiled
ops, yet mmsegmentation imports ``mmcv.ops`` unconditionally): it lets the import succeed and
makes every compiled op raise an error naming it.

Any other attribute of a stand-in (``causal_conv1d_update``, ...) raises
``AttributeError`` naming the module and what it provides. A real extension that imports is
never replaced, nor are the Triton functions where a CUDA device is present.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import math
import sys
import types
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch

__all__ = ["EXTENSION_NAMES", "STANDIN_NAMES", "TRITON_FUNCTIONS", "import_error_hint",
           "install_mmcv_ext_standin",
           "install_standin_kernels", "remove_standin_kernels", "standin_hint", "standin_kernels"]

_CHUNK = 2048   # the CUDA scan keeps its state every 2048 steps: x is (B, D, chunks, 2N)


def _scan_outputs(u, A, z=None, out_dtype=None) -> list:
    batch, dim, length = u.shape
    states = A.shape[-1] * 2
    out = torch.zeros_like(u, dtype=out_dtype or u.dtype)
    x = torch.zeros(batch, dim, math.ceil(length / _CHUNK), states, dtype=A.dtype,
                    device=u.device)
    return [out, x] + ([torch.zeros_like(z)] if z is not None else [])


def _selective_scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """mamba-ssm: returns ``[out, x]`` plus ``out_z`` when z is given."""
    return _scan_outputs(u, A, z)


def _oflex_fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, nrows, oflex=True):
    """VMamba ``selective_scan_cuda_oflex``: ``out`` is float32 when ``oflex``."""
    return _scan_outputs(u, A, out_dtype=torch.float32 if oflex else u.dtype)


def _core_fwd(u, delta, A, B, C, D, delta_bias, delta_softplus, nrows):
    """VMamba ``selective_scan_cuda_core``."""
    return _scan_outputs(u, A)


def _causal_conv1d_fwd(x, weight, bias, *args):
    """Every released signature of ``causal_conv1d_cuda.causal_conv1d_fwd``:

    - 1.4+: ``(x, weight, bias, seq_idx, initial_states, out, final_states_out, silu)``, fills
      ``out`` (and ``final_states_out``) and returns ``None``;
    - 1.2-1.3: ``(x, weight, bias, seq_idx, initial_states, final_states_out, silu)``,
    - 1.1 (what Vim's mamba-1p1p1 calls): ``(x, weight, bias, seq_idx, silu)``,
    - 1.0: ``(x, weight, bias, silu)``: return ``out``.
    """
    if len(args) == 5:
        out, final_states_out = args[2], args[3]
        out.zero_()
        if final_states_out is not None:
            final_states_out.zero_()
        return None
    if len(args) in (1, 2, 4):
        return torch.zeros_like(x)
    raise TypeError(f"stand-in causal_conv1d_cuda.causal_conv1d_fwd: no causal-conv1d release "
                    f"takes {3 + len(args)} arguments")


def _zeros_like(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else torch.zeros_like(t)


def _selective_scan_bwd(u, delta, A, B, C, D, z, delta_bias, dout, x, out, dz, delta_softplus,
                        recompute_out_z):
    """mamba-ssm ``selective_scan_cuda.bwd`` (``csrc/selective_scan/selective_scan.cpp``):
    ``[du, ddelta, dA, dB, dC, dD, ddelta_bias]`` (``dD``, ``ddelta_bias`` ``None`` when not
    given), then ``dz`` when z is given (``dz`` itself, filled, when passed in), then ``out_z``
    when ``recompute_out_z``."""
    grads = [torch.zeros_like(u), torch.zeros_like(delta), torch.zeros_like(A),
             torch.zeros_like(B), torch.zeros_like(C), _zeros_like(D), _zeros_like(delta_bias)]
    if z is not None:
        grads.append(dz.zero_() if dz is not None else torch.zeros_like(z))
    if recompute_out_z:
        grads.append(_zeros_like(z))
    return grads


def _vmamba_scan_bwd(u, delta, A, B, C, D, delta_bias, *rest):
    """VMamba ``selective_scan_cuda_oflex.bwd`` / ``selective_scan_cuda_core.bwd``
    (``(u, delta, A, B, C, D, delta_bias, dout, x, delta_softplus, nrows)``; older releases
    ``(..., dout, x, out, delta_softplus)``): ``[du, ddelta, dA, dB, dC, dD, ddelta_bias]``,
    ``dD`` and ``ddelta_bias`` ``None`` when not given."""
    return [torch.zeros_like(u), torch.zeros_like(delta), torch.zeros_like(A),
            torch.zeros_like(B), torch.zeros_like(C), _zeros_like(D), _zeros_like(delta_bias)]


def _causal_conv1d_bwd(x, weight, bias, dout, *args):
    """Every released signature of ``causal_conv1d_cuda.causal_conv1d_bwd``:

    - 1.4+: ``(x, weight, bias, dout, seq_idx, initial_states, dfinal_states, dx, dweight,
      dbias, dinitial_states, silu)``: fills the gradients, returns ``None``;
    - 1.2-1.3: ``(x, weight, bias, dout, seq_idx, initial_states, dfinal_states, dx,
      return_dinitial_states, silu)``: returns ``(dx, dweight, dbias, dinitial_states)``;
    - 1.1 (what Vim's mamba-1p1p1 calls): ``(x, weight, bias, dout, seq_idx, dx, silu)`` and
      1.0: ``(x, weight, bias, dout, dx, silu)``: return ``(dx, dweight, dbias)``.

    ``dx`` is filled when passed in; ``dbias`` is ``None`` without a bias.
    """
    if len(args) == 8:
        for grad in args[3:7]:
            if grad is not None:
                grad.zero_()
        return None
    if len(args) not in (2, 3, 6):
        raise TypeError(f"stand-in causal_conv1d_cuda.causal_conv1d_bwd: no causal-conv1d "
                        f"release takes {4 + len(args)} arguments")
    dx = args[-2] if len(args) < 6 else args[3]
    grads = [dx.zero_() if dx is not None else torch.zeros_like(x), torch.zeros_like(weight),
             _zeros_like(bias)]
    if len(args) == 6:
        initial_states = args[1]
        grads.append(torch.zeros_like(initial_states) if args[4] and initial_states is not None
                     else None)
    return tuple(grads)


_ENTRY_POINTS: Dict[str, Dict[str, Callable]] = {
    "selective_scan_cuda": {"fwd": _selective_scan_fwd, "bwd": _selective_scan_bwd},
    "causal_conv1d_cuda": {"causal_conv1d_fwd": _causal_conv1d_fwd,
                           "causal_conv1d_bwd": _causal_conv1d_bwd},
    "selective_scan_cuda_oflex": {"fwd": _oflex_fwd, "bwd": _vmamba_scan_bwd},
    "selective_scan_cuda_core": {"fwd": _core_fwd, "bwd": _vmamba_scan_bwd},
}
EXTENSION_NAMES = tuple(_ENTRY_POINTS)


# ---------------------------------------------------------------- mamba-ssm's Triton functions
# Each stand-in receives the real function's arguments bound by name (defaults applied) and
# allocates what the real one returns, as the real one allocates it.

def _chunk_scan_combined_fwd(a: Dict[str, Any]) -> tuple:
    """``ssd_combined._mamba_chunk_scan_combined_fwd``: ``(out, out_x, dt, dA_cumsum, states,
    final_states)``, plus ``varlen_states`` when ``cu_seqlens`` is given."""
    x, B, C = a["x"], a["B"], a["C"]
    batch, seqlen, nheads, headdim = x.shape
    dstate, chunk_size = B.shape[-1], a["chunk_size"]
    chunks = math.ceil(seqlen / chunk_size)
    dt = torch.zeros(batch, nheads, chunks, chunk_size, dtype=torch.float32, device=x.device)
    result = (torch.zeros_like(x), torch.zeros_like(x) if a["z"] is not None else None, dt,
              torch.zeros_like(dt),
              torch.zeros(batch, chunks, nheads, headdim, dstate, dtype=C.dtype, device=x.device),
              torch.zeros(batch, nheads, headdim, dstate, dtype=torch.float32, device=x.device))
    if a.get("cu_seqlens") is not None:
        result += (torch.zeros(a["cu_seqlens"].shape[0] - 1, nheads, headdim, dstate,
                               dtype=C.dtype, device=x.device),)
    return result


def _gated_norm_fwd(a: Dict[str, Any]) -> tuple:
    """``layernorm_gated._layer_norm_fwd`` on x ``(M, N)``: ``(out, mean, rstd)``, ``out``
    written in place when given, ``mean`` ``None`` for an RMSNorm."""
    x = a["x"]
    groups = x.shape[1] // (a["group_size"] or x.shape[1])
    out = a["out"].zero_() if a["out"] is not None else torch.zeros_like(x)
    stats = torch.zeros(groups * x.shape[0], dtype=torch.float32, device=x.device)
    return out, None if a["is_rms_norm"] else stats, stats.clone()


def _add_norm_fwd(a: Dict[str, Any]) -> tuple:
    """``layer_norm._layer_norm_fwd`` on x ``(M, N)``. mamba-ssm 2.x: ``(y, y1, mean, rstd,
    residual_out, seeds, dropout_mask, dropout_mask1)``; 1.x (no ``x1``): ``(y, mean, rstd,
    residual_out)``. ``residual_out`` is x itself when no residual is formed, as upstream."""
    x = a["x"]
    y = torch.zeros_like(x, dtype=a.get("out_dtype") or x.dtype)
    mean = None if a["is_rms_norm"] else torch.zeros(x.shape[0], dtype=torch.float32,
                                                     device=x.device)
    rstd = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    residual_dtype = a["residual"].dtype if a["residual"] is not None else a["residual_dtype"]
    if (a["residual"] is not None or (residual_dtype is not None and residual_dtype != x.dtype)
            or a.get("dropout_p", 0.0) > 0.0 or a.get("rowscale") is not None
            or a.get("x1") is not None):
        residual_out = torch.zeros_like(x, dtype=residual_dtype or x.dtype)
    else:
        residual_out = x
    if "x1" not in a:
        return y, mean, rstd, residual_out
    y1 = torch.zeros_like(y) if a["weight1"] is not None else None
    return y, y1, mean, rstd, residual_out, None, None, None


def _swiglu_fwd(a: Dict[str, Any]) -> torch.Tensor:
    """``k_activations._swiglu_fwd``: ``silu(x)·y`` of the two halves of ``xy``'s last
    dimension, written into ``out`` when given."""
    xy, out = a["xy"], a["out"]
    if out is not None:
        return out.zero_()
    return torch.zeros(*xy.shape[:-1], xy.shape[-1] // 2, dtype=xy.dtype, device=xy.device)


def _filled(given: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    # A gradient buffer the caller passes in (a view into a larger gradient) is written in place.
    return given.zero_() if given is not None else torch.zeros_like(like)


def _float32_like(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else torch.zeros(t.shape, dtype=torch.float32, device=t.device)


def _chunk_scan_combined_bwd(a: Dict[str, Any]) -> tuple:
    """``ssd_combined._mamba_chunk_scan_combined_bwd``: ``(dx, ddt, dA, dB, dC, dD, dz, ddt_bias,
    dinitial_states)``, plus ``outz`` when ``recompute_output`` (``out`` itself without z);
    the ``dx``, ``ddt``, ``dB``, ``dC``, ``dz`` buffers are filled when passed in."""
    x, z = a["x"], a["z"]
    result = (_filled(a["dx"], x), _filled(a["ddt"], a["dt"]), _float32_like(a["A"]),
              _filled(a["dB"], a["B"]), _filled(a["dC"], a["C"]), _zeros_like(a["D"]),
              None if z is None else _filled(a["dz"], z), _float32_like(a["dt_bias"]),
              _zeros_like(a["initial_states"]))
    if a["recompute_output"]:
        result += (a["out"] if z is None else torch.zeros_like(x),)
    return result


def _gated_norm_bwd(a: Dict[str, Any]) -> tuple:
    """``layernorm_gated._layer_norm_bwd`` on x ``(M, N)``: ``(dx, dw, db, dz)``, plus ``out``
    when ``recompute_output``; ``db``/``dz`` ``None`` without a bias/gate."""
    x, z = a["x"], a["z"]
    result = (torch.zeros_like(x), torch.zeros_like(a["weight"]), _zeros_like(a["bias"]),
              None if z is None else _filled(a["dz"], z))
    if a["recompute_output"]:
        result += (_filled(a["out"], x),)
    return result


def _add_norm_bwd(a: Dict[str, Any]) -> tuple:
    """``layer_norm._layer_norm_bwd`` on x ``(M, N)`` (the saved ``residual_out``). mamba-ssm 2.x:
    ``(dx, dw, db, dresidual_in, dx1, dw1, db1)``; 1.x (no ``dy1``): ``(dx, dw, db,
    dresidual_in)``; plus ``y`` when ``recompute_output``. ``dresidual_in`` is ``None`` without
    a residual and ``dx`` itself where upstream reuses it (same dtype, no dropout/rowscale/x1)."""
    x, dy = a["x"], a["dy"]
    dx = torch.zeros_like(x, dtype=a["x_dtype"] or x.dtype)
    fresh = (a["x_dtype"] not in (None, x.dtype) or a.get("dropout_p", 0.0) > 0.0
             or a.get("rowscale") is not None or a.get("has_x1", False))
    dresidual_in = (None if not a["has_residual"]
                    else torch.zeros_like(x) if fresh else dx)
    result = (dx, torch.zeros_like(a["weight"]), _zeros_like(a["bias"]), dresidual_in)
    if "dy1" in a:
        dx1 = None
        if a["has_x1"]:
            dx1 = torch.zeros_like(dx) if a["dropout_p"] > 0.0 else dx
        result += (dx1, _zeros_like(a["weight1"]), _zeros_like(a["bias1"]))
    if a["recompute_output"]:
        result += (torch.zeros_like(dy),)
    return result


def _swiglu_bwd(a: Dict[str, Any]):
    """``k_activations._swiglu_bwd``: ``dxy`` (filled when given), and ``out`` as well when
    ``recompute_output``."""
    xy = a["xy"]
    dxy = _filled(a["dxy"], xy)
    if not a["recompute_output"]:
        return dxy
    out = a["out"]
    out = out.zero_() if out is not None else torch.zeros(
        *xy.shape[:-1], xy.shape[-1] // 2, dtype=xy.dtype, device=xy.device)
    return dxy, out


TRITON_FUNCTIONS = "mamba_ssm.ops.triton"
# By full module name: mamba-ssm 2.x, and 1.x (what hustvl/Vim vendors as mamba-1p1p1).
_TRITON_PATCHES: Dict[str, Dict[str, Callable]] = {
    "mamba_ssm.ops.triton.ssd_combined": {"_mamba_chunk_scan_combined_fwd":
                                          _chunk_scan_combined_fwd,
                                          "_mamba_chunk_scan_combined_bwd":
                                          _chunk_scan_combined_bwd,
                                          "_layer_norm_fwd": _gated_norm_fwd,
                                          "_layer_norm_bwd": _gated_norm_bwd,
                                          "_swiglu_fwd": _swiglu_fwd, "_swiglu_bwd": _swiglu_bwd},
    "mamba_ssm.ops.triton.layernorm_gated": {"_layer_norm_fwd": _gated_norm_fwd,
                                             "_layer_norm_bwd": _gated_norm_bwd},
    "mamba_ssm.ops.triton.layer_norm": {"_layer_norm_fwd": _add_norm_fwd,
                                        "_layer_norm_bwd": _add_norm_bwd},
    "mamba_ssm.ops.triton.layernorm": {"_layer_norm_fwd": _add_norm_fwd,   # mamba-ssm 1.x
                                       "_layer_norm_bwd": _add_norm_bwd},
}
# Sentinel: run the real function, letting its ``torch.cuda.device(...)`` take a CPU or meta
# device (VMamba's csm_triton.cross_scan_fn picks its torch path for such tensors, but enters
# ``torch.cuda.device(x.device)`` first, which raises "Expected a cuda device, but got: cpu").
_ON_ANY_DEVICE: Callable = lambda arguments: None       # noqa: E731  (never called)
# By the module's last name, wherever a repository keeps its copy: VMamba's
# classification/models/mamba2/ssd_combined.py (imported as models.mamba2.ssd_combined, or as
# ssd_combined from inside that folder) and classification/models/csm_triton.py.
_PATCHES_BY_BASENAME: Dict[str, Dict[str, Callable]] = {
    "ssd_combined": _TRITON_PATCHES["mamba_ssm.ops.triton.ssd_combined"],
    "layernorm_gated": _TRITON_PATCHES["mamba_ssm.ops.triton.layernorm_gated"],
    "csm_triton": {"cross_scan_fn": _ON_ANY_DEVICE, "cross_merge_fn": _ON_ANY_DEVICE},
}
# Imported through the hook only to name the real cause when they fail (module docstring).
_WATCHED_FOR_ERRORS = ("mamba_ssm", "mamba_ssm.utils.generation")
STANDIN_NAMES = EXTENSION_NAMES + (TRITON_FUNCTIONS,)


class _PatchRecord:
    """One replaced attribute: ``module.attr`` was ``real``, is ``standin``."""

    __slots__ = ("module", "attr", "real", "standin")

    def __init__(self, module, attr, real, standin):
        self.module, self.attr, self.real, self.standin = module, attr, real, standin


_patched: List[_PatchRecord] = []


def _patches_for(name: str) -> Dict[str, Callable]:
    if name in _TRITON_PATCHES:
        return _TRITON_PATCHES[name]
    return _PATCHES_BY_BASENAME.get(name.rpartition(".")[2], {})


def _triton_standin(module: str, attr: str, real: Callable, fake: Callable) -> Callable:
    if fake is _ON_ANY_DEVICE:
        return _any_device_standin(module, attr, real)
    signature = inspect.signature(real)

    def standin(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return fake(dict(bound.arguments))

    standin.__name__ = attr
    standin.__qualname__ = f"{module}.{attr}"
    standin.__doc__ = f"fvcore_ext stand-in for {module}.{attr}: zeros of the right shapes."
    standin.__wrapped__ = real
    standin.__fvcore_ext_standin__ = True
    return standin


class _AnyDeviceContext(torch.cuda.device):
    """``torch.cuda.device`` that is a no-op for a CPU or meta device (or ``None``), as it is
    for a negative index, instead of raising."""

    def __init__(self, device: Any):
        if isinstance(device, str):
            device = torch.device(device)
        if device is None or (isinstance(device, torch.device) and device.type != "cuda"):
            self.idx, self.prev_idx = -1, -1
        else:
            super().__init__(device)


def _any_device_standin(module: str, attr: str, real: Callable) -> Callable:
    def standin(*args, **kwargs):
        saved = torch.cuda.device
        torch.cuda.device = _AnyDeviceContext
        try:
            return real(*args, **kwargs)
        finally:
            torch.cuda.device = saved

    standin.__name__ = attr
    standin.__qualname__ = f"{module}.{attr}"
    standin.__doc__ = (f"fvcore_ext stand-in for {module}.{attr}: the real function, with "
                       f"torch.cuda.device(...) a no-op for CPU and meta tensors.")
    standin.__wrapped__ = real
    standin.__fvcore_ext_standin__ = True
    return standin


def _patch_module(name: str, module: types.ModuleType) -> None:
    """Replace the known host functions of ``module``, and the same functions where other
    loaded modules bound them with ``from module import name``."""
    for attr, fake in _patches_for(name).items():
        real = module.__dict__.get(attr)
        if not callable(real) or _is_standin(real):
            continue
        standin = _triton_standin(name, attr, real, fake)
        others = [m for m in list(sys.modules.values())
                  if isinstance(m, types.ModuleType) and m is not module]
        for target in [module] + others:
            if target.__dict__.get(attr) is real:
                _patched.append(_PatchRecord(target, attr, real, standin))
                setattr(target, attr, standin)


# The real cause behind an ImportError in Vim's, VMamba's or mamba-ssm's code, in words.
_TRITON_HINT = ("Triton must be installed, even without a GPU: mamba-ssm, Vim's mamba-1p1p1 and "
                "VMamba import it at module level (pip install triton; it imports on a CPU-only "
                "machine, and the stand-ins replace the functions that would launch its "
                "kernels)")
_TRANSFORMERS_5_HINT = (
    "this mamba_ssm is 1.x (as hustvl/Vim's mamba-1p1p1), whose utils/generation.py imports "
    "GreedySearchDecoderOnlyOutput and SampleDecoderOnlyOutput, which transformers 5 removed: "
    "install transformers<5, or first set transformers.generation.GreedySearchDecoderOnlyOutput "
    "and .SampleDecoderOnlyOutput to transformers.generation.GenerateDecoderOnlyOutput; the "
    "stand-ins are not the cause")


def import_error_hint(error: BaseException) -> str:
    """The real cause of an ``ImportError`` (or VMamba's ``NameError: name 'triton' is not
    defined``) raised while importing Mamba code, in words, or ``""`` when it is not one the
    pack knows: Triton missing, or Vim's mamba-ssm 1.x under transformers 5."""
    text = str(error)
    if isinstance(error, ImportError) and (getattr(error, "name", None) == "triton"
                                           or "No module named 'triton" in text):
        return _TRITON_HINT
    if isinstance(error, NameError) and "'triton'" in text:
        return _TRITON_HINT
    if isinstance(error, ImportError) and ("GreedySearchDecoderOnlyOutput" in text
                                           or "SampleDecoderOnlyOutput" in text):
        return _TRANSFORMERS_5_HINT
    return ""


class _PatchingLoader(importlib.abc.Loader):
    """The real loader of a watched module; after it runs the module, the module's host
    functions are replaced, and a failure names its real cause."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            self._loader.exec_module(module)
        except (ImportError, NameError) as error:
            hint = import_error_hint(error)
            if not hint or hint in str(error):
                raise
            raise ImportError(f"importing {module.__name__} failed: {error}. {hint}",
                              name=getattr(error, "name", None)) from error
        if _IMPORT_HOOK in sys.meta_path:
            _patch_module(module.__name__, module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _StandinImportHook(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that finds nothing itself: for a module with host functions
    to replace (or one watched for its errors) it asks the other finders, and wraps the loader
    they return in :class:`_PatchingLoader`. So a module imported after
    :func:`install_standin_kernels`, whenever that is (Vim's mamba-1p1p1 put on ``sys.path``
    later, VMamba's csm_triton), is patched before anyone can bind its functions."""

    def find_spec(self, fullname, path, target=None):
        if not _patches_for(fullname) and fullname not in _WATCHED_FOR_ERRORS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module") \
                and not isinstance(spec.loader, _PatchingLoader):
            spec.loader = _PatchingLoader(spec.loader)
        return spec


_IMPORT_HOOK = _StandinImportHook()


def _patch_triton_functions() -> bool:
    """Where no CUDA device is present: install the import hook, and replace the host functions
    of the modules already imported; ``True`` if the hook is (now) installed."""
    if torch.cuda.is_available():
        return False
    if _IMPORT_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _IMPORT_HOOK)
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and _patches_for(name):
            _patch_module(name, module)
    return True


def _unpatch_triton_functions() -> bool:
    """Remove the import hook and put the real host functions back, in their modules and
    wherever a module bound a stand-in; ``True`` if the hook was installed or any function
    was replaced."""
    hooked = _IMPORT_HOOK in sys.meta_path
    while _IMPORT_HOOK in sys.meta_path:
        sys.meta_path.remove(_IMPORT_HOOK)
    restored = bool(_patched)
    real_of = {id(r.standin): (r.standin, r.real) for r in _patched}
    for record in _patched:
        if record.module.__dict__.get(record.attr) is record.standin:
            setattr(record.module, record.attr, record.real)
    attrs = {r.attr for r in _patched}
    for module in list(sys.modules.values()):     # bound after the patch, e.g. by VMamba
        if not isinstance(module, types.ModuleType):
            continue
        for attr in attrs:
            value = module.__dict__.get(attr)
            if id(value) in real_of and real_of[id(value)][0] is value:
                setattr(module, attr, real_of[id(value)][1])
    _patched.clear()
    return hooked or restored


class _StandinModule(types.ModuleType):
    """A stand-in extension: its known entry points, and a loud error for anything else."""

    __fvcore_ext_standin__ = True

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        provided = ", ".join(_ENTRY_POINTS[self.__name__])
        raise AttributeError(
            f"{self.__name__} is a fvcore_ext stand-in for counting without a GPU; it provides "
            f"only {provided}, not {name!r}. Install the real extension to run this.")


def _is_standin(module) -> bool:
    return getattr(module, "__fvcore_ext_standin__", False)


def _real_extension_imports(name: str) -> bool:
    module = sys.modules.get(name)
    if module is not None:
        return not _is_standin(module)
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def standin_hint(error: BaseException) -> str:
    """``" (a CUDA extension the stand-ins replace: add --standins ...)"`` when ``error`` is an
    ``ImportError`` for one of ``EXTENSION_NAMES`` (``ModuleNotFoundError: No module named
    'selective_scan_cuda'``) or, with the stand-ins not installed, the ``ValueError: Expected a
    cuda device`` of VMamba's cross scan on CPU; else ``""``. The command lines append it to
    their one-line reason."""
    if isinstance(error, ImportError):
        name = getattr(error, "name", None) or ""
        if name in EXTENSION_NAMES or any(f"'{n}'" in str(error) for n in EXTENSION_NAMES):
            return (" (a CUDA extension that fvcore_ext's stand-ins replace: add --standins "
                    "to count without it)")
    if isinstance(error, ValueError) and "Expected a cuda device" in str(error) \
            and _IMPORT_HOOK not in sys.meta_path:
        # VMamba's csm_triton.cross_scan_fn on a CPU or meta tensor
        return " (code that expects CUDA, as VMamba's cross scan does: add --standins)"
    return ""


def install_standin_kernels(names: Optional[Sequence[str]] = None) -> List[str]:
    """Put a stand-in in ``sys.modules`` for each extension in ``names`` (default: all of
    ``STANDIN_NAMES``) that cannot be imported, and warn once which ones are active. Call it
    before importing mamba_ssm, causal_conv1d, Vim or VMamba.

    The name ``TRITON_FUNCTIONS`` (``"mamba_ssm.ops.triton"``), where no CUDA device is
    present, replaces the host functions that launch Triton kernels (module docstring) in the
    modules already imported, and installs an import hook that replaces them in every such
    module imported later, whenever that is: Vim's mamba-1p1p1 put on ``sys.path`` after this
    call, VMamba's ``csm_triton`` and its own ``mamba2/ssd_combined``. It imports nothing
    itself. If one of those modules then fails to import for a reason the pack knows (Triton
    missing, Vim's mamba-ssm 1.x under transformers 5), the ``ImportError`` names it
    (:func:`import_error_hint`).

    Returns:
        The names now served by stand-ins (empty when every real extension imports and a CUDA
        device is present).

    Raises:
        KeyError: a name without a stand-in.
    """
    chosen = list(STANDIN_NAMES if names is None else names)
    unknown = [n for n in chosen if n not in STANDIN_NAMES]
    if unknown:
        raise KeyError(f"no stand-in for {unknown}; known: {', '.join(STANDIN_NAMES)}")
    active = []
    for name in chosen:
        if name == TRITON_FUNCTIONS:
            continue
        if _real_extension_imports(name):
            continue
        if not _is_standin(sys.modules.get(name)):
            module = _StandinModule(name, f"fvcore_ext stand-in for {name} (counting only)")
            module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
            for attr, fn in _ENTRY_POINTS[name].items():
                setattr(module, attr, fn)
            sys.modules[name] = module
        active.append(name)
    if TRITON_FUNCTIONS in chosen and _patch_triton_functions():
        active.append(TRITON_FUNCTIONS)
    if active:
        warnings.warn(f"fvcore_ext stand-in kernels active for {', '.join(active)}: they return "
                      f"zeros of the right shapes, for counting only", UserWarning, stacklevel=2)
    return active


def remove_standin_kernels(names: Optional[Sequence[str]] = None) -> List[str]:
    """Remove the stand-ins in ``names`` (default: every stand-in, ``mmcv._ext``'s included)
    from ``sys.modules``; if ``TRITON_FUNCTIONS`` is among them, remove the import hook and put
    the real host functions back, also where a module bound a stand-in with ``from ... import``.
    Returns the names removed. Modules imported while an extension stand-in was installed keep
    their reference to it."""
    removed = [n for n, m in list(sys.modules.items())
               if _is_standin(m) and (names is None or n in names)]
    for name in removed:
        del sys.modules[name]
    if (names is None or TRITON_FUNCTIONS in names) and _unpatch_triton_functions():
        removed.append(TRITON_FUNCTIONS)
    return removed


@contextmanager
def standin_kernels(names: Optional[Sequence[str]] = None) -> Iterator[List[str]]:
    """:func:`install_standin_kernels` for the ``with`` block (yielding the active names), then
    remove the stand-ins it installed."""
    before = {n for n, m in sys.modules.items() if _is_standin(m)}
    triton_before = _IMPORT_HOOK in sys.meta_path
    active = install_standin_kernels(names)
    try:
        yield active
    finally:
        for name in active:
            if name == TRITON_FUNCTIONS:
                if not triton_before:
                    _unpatch_triton_functions()
            elif name not in before:
                sys.modules.pop(name, None)


class _MmcvExtStandin(types.ModuleType):
    """``mmcv._ext`` without compiled ops: any op is a function that raises, so mmcv's
    ``load_ext`` checks pass at import and a model that really calls a compiled op fails
    naming it."""

    __fvcore_ext_standin__ = True

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def compiled_op(*args, **kwargs):
            raise NotImplementedError(
                f"mmcv._ext.{name} is a compiled mmcv op, and this mmcv has none (mmcv-lite): "
                f"fvcore_ext's stand-in lets mmcv import but cannot run {name}. Install an "
                f"mmcv build with ops to count a model that uses it.")

        compiled_op.__name__ = name
        return compiled_op


def install_mmcv_ext_standin() -> bool:
    """Opt in to a stand-in ``mmcv._ext`` when the real one cannot be imported (mmcv-lite, or
    mmcv built without ops), and warn that it is active. Returns whether it is active; never
    replaces a real ``mmcv._ext``."""
    if _real_extension_imports("mmcv._ext"):
        return False
    if not _is_standin(sys.modules.get("mmcv._ext")):
        module = _MmcvExtStandin("mmcv._ext", "fvcore_ext stand-in for mmcv._ext")
        module.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None)
        sys.modules["mmcv._ext"] = module
    warnings.warn("fvcore_ext stand-in for mmcv._ext is active: mmcv imports, and any compiled "
                  "mmcv op raises NotImplementedError naming the op", UserWarning, stacklevel=2)
    return True
