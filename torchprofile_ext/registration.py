"""Register the pack's handlers in torchprofile's ``profile_macs``: explicit, idempotent and
reversible.

torchprofile has no public way to add a handler: ``torchprofile.profile`` binds its handler
table (``HANDLER_MAP`` in 0.1.x, ``handlers`` in 0.0.4) and ``trace`` at import. Registering
rebinds both names in that module: the pack's trace (PythonOps keep their class names, nodes
carry their arguments) and a new table in which the pack's handlers replace torchprofile's for
every op of the contract. torchprofile's own table object is never modified, and unregistering
(or leaving :func:`registered`) binds the exact original objects again.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Tuple

from fvcore_ext.op_table import on_table_change, table_version

from ._compat import HANDLERS_ATTR, merge_handlers, profile_module
from .handlers import make_handlers, unknown_op_handler
from .trace import trace

__all__ = ["is_registered", "register", "registered", "unregister"]

_original: Optional[Tuple[Any, Any]] = None   # torchprofile's own (trace, handler table)
# (preset, strict, op table version) now bound; a rule added or removed with
# fvcore_ext.register_rule changes the version and rebinds at once (_follow_the_table)
_registered_as: Optional[Tuple[str, bool, int]] = None


def _bound() -> Tuple[Any, Any]:
    return profile_module.trace, getattr(profile_module, HANDLERS_ATTR)


def _bind(state: Tuple[Any, Any]) -> None:
    profile_module.trace = state[0]
    setattr(profile_module, HANDLERS_ATTR, state[1])


def is_registered() -> bool:
    """Whether the pack's handlers are bound in ``torchprofile.profile``."""
    return _original is not None


def register(preset: str = "full", strict: bool = False) -> None:
    """Make ``torchprofile.profile_macs`` count with the pack's rules under ``preset`` ("full"
    or "paper"). Registering again with the same arguments changes nothing; with others it
    replaces the preset (it never stacks). A rule added or removed later
    (:func:`fvcore_ext.register_rule`) is bound at once.

    ``strict=True``: ``profile_macs`` raises :class:`fvcore_ext.UncountableOpError` on the
    first op it would leave out: an op no table names (torchprofile alone warns
    ``No handlers found`` and skips it) or one whose rule cannot read the node.
    ``ValueError`` on an unknown preset."""
    global _original, _registered_as
    state = (preset, strict, table_version())
    if _registered_as == state:
        return
    handlers = make_handlers(preset, strict)
    if _original is None:
        _original = _bound()
    # strict: an operator no table names raises instead of torchprofile's warning and skip
    _bind((trace, merge_handlers(_original[1], handlers,
                                 unknown_op_handler if strict else None)))
    _registered_as = state


def _follow_the_table() -> None:
    # A rule was added or removed: a registered torchprofile counts with it from now on.
    if _registered_as is not None:
        register(_registered_as[0], _registered_as[1])


on_table_change(_follow_the_table)


def unregister() -> None:
    """Bind torchprofile's own trace and handler table again (no-op if not registered)."""
    global _original, _registered_as
    if _original is not None:
        _bind(_original)
        _original = _registered_as = None


@contextmanager
def registered(preset: str = "full", strict: bool = False) -> Iterator[None]:
    """Register for the ``with`` block, then put torchprofile back exactly as it was on entry
    (registered with another preset, or not at all). Nests."""
    global _original, _registered_as
    saved = _bound(), _original, _registered_as
    register(preset, strict)
    try:
        yield
    finally:
        _bind(saved[0])
        _original, _registered_as = saved[1], saved[2]
