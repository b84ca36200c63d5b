"""Ready Hugging Face models for the command line (``fvcore_ext.hf_models:vit_base``): a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.hf.models` (``docs/architecture.md``, "Public import paths").
"""
from .hf.models import *  # noqa: F401,F403
from .hf.models import __all__  # noqa: F401
