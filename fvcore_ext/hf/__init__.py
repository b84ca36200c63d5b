"""Hugging Face models from their configs (no weights): :func:`count_hf`, :func:`count_decode`,
:func:`sweep_hf`, :func:`load_hf` (:mod:`.count`), inputs for every modality (:mod:`.inputs`) and
ready models for the command line (:mod:`.models`, ``fvcore_ext.hf_models:vit_base``).

An integration: imports the engines and the op table, never another integration or the tools.
"""
from .count import *  # noqa: F401,F403
from .count import __all__  # noqa: F401
