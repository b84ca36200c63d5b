"""Roofline time on a named accelerator: a device table with vendor datasheet peaks and
bandwidth, and time = max(FLOPs / peak, bytes / bandwidth) per op. Sits above the op table (it
reads MACs and bytes) and below the engines, whose reports give a time on a device. The bytes
each op moves are the op table's (:mod:`fvcore_ext.ops.bytes`), re-exported here. Imports the
op table only.
"""
from ..ops.bytes import (GATHER_OPS, SCATTER_OPS, VIEW_OPS, TensorBytes, arithmetic_intensity,
                    boundary_bytes, is_inplace, op_bytes)
from .hardware import HARDWARE, Hardware, describe, parse_hardware, roofline_seconds

__all__ = ["HARDWARE", "Hardware", "describe", "parse_hardware", "roofline_seconds",
           "TensorBytes", "VIEW_OPS", "GATHER_OPS", "SCATTER_OPS", "op_bytes", "boundary_bytes",
           "arithmetic_intensity", "is_inplace"]
