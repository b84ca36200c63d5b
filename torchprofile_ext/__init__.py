"""torchprofile_ext: the pack's counting rules in torchprofile's ``profile_macs``.

``register(preset)`` / ``with registered(preset):`` make ``torchprofile.profile_macs`` count
with the same rules as ``fvcore_ext``'s handles; :func:`profile_macs` does it for one call.
Counts are MACs (torchprofile's unit); FLOPs = 2 x MACs.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch
import torchprofile

from .handlers import make_handlers, operator_name
from .registration import is_registered, register, registered, unregister
from .trace import trace

__all__ = ["is_registered", "macs_by_operator", "make_handlers", "profile_macs", "register",
           "registered", "trace", "unregister"]


def profile_macs(model: torch.nn.Module, args: Any = (), preset: str = "full",
                 reduction: Optional[Callable] = sum, strict: bool = False):
    """``torchprofile.profile_macs(model, args, reduction=reduction)`` with the pack's handlers
    registered under ``preset`` for this call only.

    Returns:
        Total MACs (an ``int``) with the default ``reduction``; with ``reduction=None`` a dict
        from each torchprofile ``Node`` to its MACs (see :func:`macs_by_operator`).

    Raises:
        ValueError: unknown preset. Whatever the model raises while traced.
    """
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
