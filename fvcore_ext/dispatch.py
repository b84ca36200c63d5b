"""The dispatch engine (``counting``, ``DispatchCounter``): a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.engines.dispatch` (``docs/architecture.md``, "Public import paths").
"""
from .engines.dispatch import *  # noqa: F401,F403
from .engines.dispatch import __all__  # noqa: F401
