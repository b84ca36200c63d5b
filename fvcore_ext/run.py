"""The runner for unmodified ``get_flops`` scripts: a public import path kept as a short re-export; the code lives in
:mod:`fvcore_ext.mmseg.run` (``docs/architecture.md``, "Public import paths"). Runs as ``python -m fvcore_ext.run``.
"""
import sys

from .mmseg.run import *  # noqa: F401,F403
from .mmseg.run import __all__  # noqa: F401

if __name__ == "__main__":
    from .mmseg.run import main
    sys.exit(main())
