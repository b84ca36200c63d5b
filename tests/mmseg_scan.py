"""Registers :class:`tests.scan_model.TinyScanBackbone` in mmseg's MODELS; importing it imports
``selective_scan_cuda``, so ``get_flops`` needs ``--standins`` on a machine without it."""
from mmseg.registry import MODELS

from tests.scan_model import TinyScanBackbone

MODELS.register_module(name="TinyScanBackbone", module=TinyScanBackbone)
