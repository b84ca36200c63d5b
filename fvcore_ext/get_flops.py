"""The drop-in for mmsegmentation's ``tools/analysis_tools/get_flops.py``: a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.mmseg.get_flops` (``docs/architecture.md``, "Public import paths"). Runs as ``python -m fvcore_ext.get_flops``.
"""
import sys

from .mmseg.get_flops import *  # noqa: F401,F403
from .mmseg.get_flops import __all__  # noqa: F401

if __name__ == "__main__":
    from .mmseg.get_flops import main
    sys.exit(main())
