"""The Mamba stand-in kernels (``install_standin_kernels``, ``standin_kernels``): a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.runtime.standins` (``docs/architecture.md``, "Public import paths").
"""
from .runtime.standins import *  # noqa: F401,F403
from .runtime.standins import __all__  # noqa: F401
