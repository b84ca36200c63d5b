"""The unit every rule returns: MACs split by what each preset keeps.

``docs/conventions.md``: one multiply-accumulate counts 1 (fvcore's "flop"); FLOPs are
2 x MACs. The **full** preset counts everything; the **paper** preset (what VMamba, Swin and
most vision papers report) drops elementwise work and keeps matmuls, convolutions, scans,
normalisations and resampling, i.e. what plain fvcore already counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["Cost", "PRESETS", "numel", "check_preset"]

PRESETS = ("full", "paper")


def check_preset(preset: str) -> str:
    """Return ``preset`` if it is ``"full"`` or ``"paper"``; raise ``ValueError`` otherwise."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return preset


def numel(shape: Optional[Sequence[int]]) -> int:
    """Number of elements of a tensor of ``shape`` as a Python ``int`` (never a numpy or int32
    scalar, so no overflow at any size). ``()`` is a scalar: 1 element."""
    return math.prod(int(d) for d in shape)


@dataclass(frozen=True)
class Cost:
    """MACs of one op call.

    Attributes:
        core: MACs counted under both presets: matmul, convolution, scan, normalisation and
            resampling work.
        elementwise: MACs counted only under the **full** preset: arithmetic, activations,
            softmax and reductions, including the elementwise parts of fused ops.
    """

    core: int = 0
    elementwise: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.core + other.core, self.elementwise + other.elementwise)

    def macs(self, preset: str) -> int:
        """MACs under ``preset`` (``"full"`` or ``"paper"``); ``ValueError`` on another name."""
        check_preset(preset)
        return self.core + self.elementwise if preset == "full" else self.core
