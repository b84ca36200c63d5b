"""torchprofile_ext: the pack's counting rules in torchprofile's ``profile_macs``.

``register(preset)`` / ``with registered(preset):`` make ``torchprofile.profile_macs`` count
with the same rules as ``fvcore_ext``'s handles; :func:`profile_macs` does it for one call.
Counts are MACs (torchprofile's unit); FLOPs = 2 x MACs.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union

import torch
import torchprofile
from fvcore_ext.runtime.meta import copy_to_device, inputs_to_device

from .handlers import make_handlers, operator_name
from .registration import is_registered, register, registered, unregister
from .trace import trace

__all__ = ["is_registered", "macs_by_operator", "make_handlers", "profile_macs", "register",
           "registered", "trace", "unregister"]


def profile_macs(model: torch.nn.Module, args: Any = (), preset: str = "full",
                 reduction: Optional[Callable] = sum, strict: bool = False,
                 device: Optional[Union[str, torch.device]] = None):
    """``torchprofile.profile_macs(model, args, reduction=reduction)`` with the pack's handlers
    registered under ``preset`` for this call only.

    ``device="meta"`` counts a meta copy of ``model`` on meta ``args`` (shapes only, no weights
    allocated; the same MACs as on CPU), leaving ``model`` untouched
    (:func:`fvcore_ext.runtime.meta.copy_to_device`). A model already on meta needs no ``device``: the
    pack's trace handles meta tensors (:func:`fvcore_ext.runtime.meta.meta_tracing`).

    ``strict=True`` raises instead of counting 0 where an op is left out: an op no handler
    names (torchprofile alone warns ``No handlers found: "..."`` and skips it) or one whose
    rule cannot read the node.

    Args:
        model: any ``nn.Module``; outputs may be tensors, tuples, dicts or dataclasses.
        args: a tensor or a tuple of tensors, passed positionally.
        preset: ``"full"`` or ``"paper"``.
        reduction: how to combine per-node MACs (``sum``), or ``None`` for the per-node dict.
        strict: raise :class:`fvcore_ext.UncountableOpError` on an unknown or uncountable op.
        device: ``None`` (trace where the model is) or ``"meta"``.

    Returns:
        Total MACs (an ``int``) with the default ``reduction``; with ``reduction=None`` a dict
        from each torchprofile ``Node`` to its MACs (see :func:`macs_by_operator`).

    Raises:
        ValueError: unknown preset.
        fvcore_ext.UncountableOpError: ``strict`` and an op is unknown or cannot be counted
            (``.op``, ``.scope``, ``.reason``, ``.unknown``).
        fvcore_ext.meta.MetaDeviceError: on meta, the model reads tensor data (one line;
            count on CPU instead).
        Whatever the model raises while traced.
    """
    if device is not None:
        model = copy_to_device(model, device)
        args = inputs_to_device(args, device)
    with registered(preset, strict):
        return torchprofile.profile_macs(model, args, reduction=reduction)


def macs_by_operator(results: Dict[Any, int]) -> Dict[str, int]:
    """Per-operator MACs from ``profile_macs(..., reduction=None)``, keyed as fvcore's
    ``by_operator()`` is (``conv``, ``linear``, ``PythonOp.SelectiveScanFn``); ops that cost 0
    are left out, as fvcore leaves them out."""
    totals: Dict[str, int] = {}
    for node, macs in results.items():
        if macs:
            name = operator_name(node.operator)
            totals[name] = totals.get(name, 0) + int(macs)
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
