"""Register the pack's handlers in torchprofile's ``profile_macs``: explicit, idempotent and
reversible.

torchprofile has no public way to add a handler: ``torchprofile.profile`` binds its handler
table (``HANDLER_MAP`` in 0.1.x, ``handlers`` in 0.0.4) and ``trace`` at import. Registering
rebinds both names in that module: the pack's trace (PythonOps keep their class names, nodes
carry their arguments) and a new table in which the pack's handlers replace torchprofile's for
every op of the contract. torchprofile's own table object is never modified, and unregistering
(or leaving :func:`registered`) binds the exact original objects again.

One mechanism keeps a registered torchprofile true to the op table: what is remembered is the
*setting* (preset, strict), never a handler table. The table bound is always built from the op
table as it is now (:func:`_bind_setting`): on :func:`register`, on every rule added or removed
(:func:`fvcore_ext.register_rule`, through :func:`fvcore_ext.ops.on_table_change`), and
when a :func:`registered` block exits and puts the setting it found back. So a rule registered
inside a ``with registered():`` block still counts after it, whatever the nesting (issue 22).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

from fvcore_ext.ops import on_table_change, table_version
from fvcore_ext.rules import check_preset

from ._compat import HANDLERS_ATTR, merge_handlers, profile_module
from .handlers import make_handlers, unknown_op_handler
from .trace import trace

__all__ = ["is_registered", "register", "registered", "unregister"]

Setting = Tuple[str, bool]                   # (preset, strict)

_original: Optional[Tuple[Any, Any]] = None  # torchprofile's own (trace, handler table)
_setting: Optional[Setting] = None           # what is registered now; None: not registered
_bound_version: Optional[int] = None         # the op table version the bound table was built from


def _bound() -> Tuple[Any, Any]:
    return profile_module.trace, getattr(profile_module, HANDLERS_ATTR)


def _bind(state: Tuple[Any, Any]) -> None:
    profile_module.trace = state[0]
    setattr(profile_module, HANDLERS_ATTR, state[1])


@functools.lru_cache(maxsize=8)
def _handlers(preset: str, strict: bool, version: int) -> Dict[str, Any]:
    # One table per setting and op table version: leaving a registered() block rebinds cheaply.
    return make_handlers(preset, strict)


def _bind_setting(setting: Setting) -> None:
    # Bind the pack's trace and a handler table built from the op table as it is now.
    global _original, _setting, _bound_version
    version = table_version()
    handlers = _handlers(setting[0], setting[1], version)   # ValueError before anything changes
    if _original is None:
        _original = _bound()
    # strict: an operator no table names raises instead of torchprofile's warning and skip
    _bind((trace, merge_handlers(_original[1], handlers,
                                 unknown_op_handler if setting[1] else None)))
    _setting, _bound_version = setting, version


def is_registered() -> bool:
    """Whether the pack's handlers are bound in ``torchprofile.profile``."""
    return _setting is not None


def register(preset: str = "full", strict: bool = False) -> None:
    """Make ``torchprofile.profile_macs`` count with the pack's rules under ``preset`` ("full"
    or "paper"). Registering again with the same arguments changes nothing; with others it
    replaces the preset (it never stacks). A rule added or removed later
    (:func:`fvcore_ext.register_rule`) is bound at once, inside or outside :func:`registered`
    blocks.

    ``strict=True``: ``profile_macs`` raises :class:`fvcore_ext.UncountableOpError` on the
    first op it would leave out: an op no table names (torchprofile alone warns
    ``No handlers found`` and skips it) or one whose rule cannot read the node.
    ``ValueError`` on an unknown preset (nothing is changed then)."""
    check_preset(preset)
    setting = (preset, bool(strict))
    if _setting == setting and _bound_version == table_version():
        return
    _bind_setting(setting)


def _follow_the_table() -> None:
    # A rule was added or removed: a registered torchprofile counts with it from now on.
    if _setting is not None:
        _bind_setting(_setting)


on_table_change(_follow_the_table)


def unregister() -> None:
    """Bind torchprofile's own trace and handler table again (no-op if not registered)."""
    global _original, _setting, _bound_version
    if _original is not None:
        _bind(_original)
    _original = _setting = _bound_version = None


@contextmanager
def registered(preset: str = "full", strict: bool = False) -> Iterator[None]:
    """Register for the ``with`` block, then put torchprofile back as it was on entry:
    registered with the preset it had (its handlers rebuilt from the op table as it is on exit,
    so a rule added inside the block still counts), or not registered at all (torchprofile's
    exact objects bound on entry). Nests. ``ValueError`` on an unknown preset."""
    check_preset(preset)
    entry_setting = _setting
    entry_binding = _bound() if entry_setting is None else None
    register(preset, strict)
    try:
        yield
    finally:
        if entry_setting is None:
            unregister()
            _bind(entry_binding)
        else:
            _bind_setting(entry_setting)
