"""mmengine's analyzer with the pack's handles (``pack_in_mmengine``): a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.mmseg.mmengine_analysis` (``docs/architecture.md``, "Public import paths").
"""
from .mmseg.mmengine_analysis import *  # noqa: F401,F403
from .mmseg.mmengine_analysis import __all__  # noqa: F401
