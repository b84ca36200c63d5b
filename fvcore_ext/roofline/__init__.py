"""Roofline time on a named accelerator: a device table with vendor datasheet peaks and
bandwidth, and time = max(FLOPs / peak, bytes / bandwidth) per op. Sits above the op table (it
reads MACs and bytes) and below the engines' reports and the command line.
"""
from .hardware import HARDWARE, Hardware, describe, parse_hardware, roofline_seconds

__all__ = ["HARDWARE", "Hardware", "describe", "parse_hardware", "roofline_seconds"]
