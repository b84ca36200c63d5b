"""Stand-in Mamba CUDA extensions, so mamba-ssm, causal-conv1d and VMamba models can be traced
and counted on a machine without a GPU.

A FLOP count needs shapes, not values. When a real extension cannot be imported, the stand-in
module of the same name provides the forward entry points that the upstream autograd Functions
call, with the same signatures, returning zeros of the right shapes at once instead of running
the scan. The Functions themselves (``SelectiveScanFn``, ``MambaInnerFn``, ``CausalConv1dFn``,
VMamba's ``SelectiveScan*``) stay the real ones, so the trace has exactly the
``prim::PythonOp.<ClassName>`` nodes a GPU run has. The outputs are meaningless: use stand-ins
only to count.

- ``selective_scan_cuda.fwd`` (state-spaces/mamba ``csrc/selective_scan``)
- ``causal_conv1d_cuda.causal_conv1d_fwd`` (Dao-AILab/causal-conv1d; 1.4+ fills ``out``,
  older versions return it)
- ``selective_scan_cuda_oflex.fwd`` and ``selective_scan_cuda_core.fwd`` (MzeroMiko/VMamba)

mamba-ssm's Mamba-2 kernels and fused norms are Triton, which imports without a GPU but cannot
launch a kernel. On a machine without CUDA, the stand-in ``mamba_ssm.ops.triton`` replaces the
host functions that launch them, in the modules whose Functions call them:

- ``ssd_combined._mamba_chunk_scan_combined_fwd`` (``MambaChunkScanCombinedFn``,
  ``MambaSplitConv1dScanCombinedFn``), ``ssd_combined._swiglu_fwd``;
- ``layernorm_gated._layer_norm_fwd`` (also bound in ``ssd_combined``): the gated RMSNorm;
- ``layer_norm._layer_norm_fwd``: the fused residual add + norm of ``MambaLMHeadModel`` blocks.

:func:`install_mmcv_ext_standin` is the same idea for ``mmcv._ext`` (mmcv-lite ships no compiled
ops, yet mmsegmentation imports ``mmcv.ops`` unconditionally): it lets the import succeed and
makes every compiled op raise an error naming it.

Any other attribute of a stand-in (``bwd``, ``causal_conv1d_update``, ...) raises
``AttributeError`` naming the module and what it provides. A real extension that imports is
never replaced, nor are the Triton functions where a CUDA device is present.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import math
import sys
import types
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

__all__ = ["EXTENSION_NAMES", "STANDIN_NAMES", "TRITON_FUNCTIONS", "install_mmcv_ext_standin",
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
    - 1.1: ``(x, weight, bias, seq_idx, silu)``,
    - 1.0 (Vim's mamba-1p1p1): ``(x, weight, bias, silu)``: return ``out``.
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


_ENTRY_POINTS: Dict[str, Dict[str, Callable]] = {
    "selective_scan_cuda": {"fwd": _selective_scan_fwd},
    "causal_conv1d_cuda": {"causal_conv1d_fwd": _causal_conv1d_fwd},
    "selective_scan_cuda_oflex": {"fwd": _oflex_fwd},
    "selective_scan_cuda_core": {"fwd": _core_fwd},
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


TRITON_FUNCTIONS = "mamba_ssm.ops.triton"
_TRITON_PATCHES: Dict[str, Dict[str, Callable]] = {
    "mamba_ssm.ops.triton.ssd_combined": {"_mamba_chunk_scan_combined_fwd":
                                          _chunk_scan_combined_fwd,
                                          "_layer_norm_fwd": _gated_norm_fwd,
                                          "_swiglu_fwd": _swiglu_fwd},
    "mamba_ssm.ops.triton.layernorm_gated": {"_layer_norm_fwd": _gated_norm_fwd},
    "mamba_ssm.ops.triton.layer_norm": {"_layer_norm_fwd": _add_norm_fwd},
    "mamba_ssm.ops.triton.layernorm": {"_layer_norm_fwd": _add_norm_fwd},   # mamba-ssm 1.x
}
STANDIN_NAMES = EXTENSION_NAMES + (TRITON_FUNCTIONS,)
_patched: Dict[Tuple[str, str], Callable] = {}     # (module, attribute) -> the real function


def _triton_standin(module: str, attr: str, real: Callable, fake: Callable) -> Callable:
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


def _patch_triton_functions() -> bool:
    """Replace the Triton host functions of the installed mamba-ssm release (modules it does
    not have are skipped) when no CUDA device is present; ``True`` if any is (now) replaced."""
    if torch.cuda.is_available() or importlib.util.find_spec("mamba_ssm") is None:
        return False
    for module_name, functions in _TRITON_PATCHES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if isinstance(error, ModuleNotFoundError) and error.name and \
                    module_name.startswith(error.name):
                continue                       # not in this mamba-ssm release
            raise ImportError(f"cannot install the stand-in {TRITON_FUNCTIONS}: importing "
                              f"{module_name} failed ({error}); install the extension "
                              f"stand-ins first (install_standin_kernels())") from error
        for attr, fake in functions.items():
            real = getattr(module, attr)
            if _is_standin(real):
                continue
            _patched[(module_name, attr)] = real
            setattr(module, attr, _triton_standin(module_name, attr, real, fake))
    return bool(_patched)


def _unpatch_triton_functions() -> bool:
    """Put the real Triton host functions back; ``True`` if any was replaced."""
    restored = bool(_patched)
    for (module_name, attr), real in list(_patched.items()):
        setattr(sys.modules[module_name], attr, real)
        del _patched[(module_name, attr)]
    return restored


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
    """``" (a CUDA extension the stand-ins replace: add --standins)"`` when ``error`` is an
    ``ImportError`` for one of ``EXTENSION_NAMES`` (``ModuleNotFoundError: No module named
    'selective_scan_cuda'``), else ``""``: the command lines append it to their one-line
    reason."""
    if isinstance(error, ImportError):
        name = getattr(error, "name", None) or ""
        if name in EXTENSION_NAMES or any(f"'{n}'" in str(error) for n in EXTENSION_NAMES):
            return (" (a CUDA extension that fvcore_ext's stand-ins replace: add --standins "
                    "to count without it)")
    return ""


def install_standin_kernels(names: Optional[Sequence[str]] = None) -> List[str]:
    """Put a stand-in in ``sys.modules`` for each extension in ``names`` (default: all of
    ``STANDIN_NAMES``) that cannot be imported, and warn once which ones are active. Call it
    before importing mamba_ssm, causal_conv1d or VMamba. The name ``TRITON_FUNCTIONS``
    (``"mamba_ssm.ops.triton"``) replaces mamba-ssm's Triton host functions (module docstring)
    when mamba-ssm is installed and no CUDA device is present; it imports mamba_ssm, after the
    extension stand-ins.

    Returns:
        The names now served by stand-ins (empty when every real extension imports).

    Raises:
        KeyError: a name without a stand-in.
        ImportError: mamba-ssm is installed but its Triton modules do not import.
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
    from ``sys.modules``, and put the real Triton functions back if ``TRITON_FUNCTIONS`` is
    among them; returns the names removed. Modules imported while an extension stand-in was
    installed keep their reference to it."""
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
    triton_before = bool(_patched)
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
