"""The meta-device helpers (``meta_tracing``, ``build_on_meta``): a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.runtime.meta` (``docs/architecture.md``, "Public import paths").
"""
from .runtime.meta import *  # noqa: F401,F403
from .runtime.meta import __all__  # noqa: F401
