"""The unit every rule returns: MACs split by what each preset keeps.

``docs/conventions.md``: one multiply-accumulate counts 1 (fvcore's "flop"); FLOPs are
2 x MACs. The **full** preset counts everything; the **paper** preset (what VMamba, Swin and
most vision papers report) drops elementwise work and keeps matmuls, convolutions, scans,
normalisations and resampling, i.e. what plain fvcore already counts.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Sequence

__all__ = ["Cost", "PRESETS", "check_mac_count", "check_preset", "is_symbolic", "numel",
           "size_int"]

PRESETS = ("full", "paper")


def check_preset(preset: str) -> str:
    """Return ``preset`` if it is ``"full"`` or ``"paper"``; raise ``ValueError`` otherwise."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return preset


def is_symbolic(value: Any) -> bool:
    """Whether ``value`` is a symbolic integer: a ``torch.SymInt`` of a symbolic-shapes run
    (``fvcore_ext.laws.symbolic``) or a sympy expression. Rules keep such a value as it is
    (``int()`` of a SymInt would fix its symbol to the example size). Checked by type name, so
    the rules import no torch and no sympy."""
    cls = type(value)
    return cls.__name__ == "SymInt" or cls.__module__.split(".")[0] == "sympy"


def size_int(value: Any) -> Any:
    """A size as the rules compute with it: ``int(value)``, or ``value`` itself when it is
    symbolic (:func:`is_symbolic`), so that a symbolic run's shapes stay symbols."""
    return value if is_symbolic(value) else int(value)


def numel(shape: Optional[Sequence[int]]) -> int:
    """Number of elements of a tensor of ``shape`` as a Python ``int`` (never a numpy or int32
    scalar, so no overflow at any size). ``()`` is a scalar: 1 element. A symbolic dim
    (:func:`is_symbolic`) stays symbolic: the product is then a symbolic integer."""
    return math.prod(d if is_symbolic(d) else int(d) for d in shape)


def check_mac_count(value: Any, what: str = "a count of MACs") -> int:
    """``value`` as a Python ``int`` >= 0: the one check every count of MACs passes, whoever
    wrote the rule and whatever the preset (issue 22). Any ``numbers.Integral`` is accepted
    (``int``, ``numpy.int64``) and converted, so no numpy or int32 scalar reaches the
    arithmetic; ``bool`` (and ``numpy.bool_``), floats and tensors are not counts.

    A symbolic integer (:func:`is_symbolic`: a ``torch.SymInt``, a sympy integer expression)
    is returned as it is, unchecked for sign (comparing it would guard its symbol).

    Raises:
        TypeError: ``value`` is a ``bool``, a float or no integer at all. ValueError: it is
            negative. Both name ``what`` and the value, on one line.
    """
    if is_symbolic(value):
        if type(value).__name__ != "SymInt" and not getattr(value, "is_integer", False):
            raise TypeError(f"{what} must be an int >= 0, not {value!r} (a non-integer "
                            f"{type(value).__name__})")
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what} must be an int >= 0, not {value}")
        return int(value)
    raise TypeError(f"{what} must be an int >= 0, not {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class Cost:
    """MACs of one op call. Both fields are checked on construction (:func:`check_mac_count`): a
    ``TypeError`` for anything but an integer (``numpy.int64`` is converted to ``int``), a
    ``ValueError`` for a negative count.

    Attributes:
        core: MACs counted under both presets: matmul, convolution, scan, normalisation and
            resampling work.
        elementwise: MACs counted only under the **full** preset: arithmetic, activations,
            softmax and reductions, including the elementwise parts of fused ops.
    """

    core: int = 0
    elementwise: int = 0

    def __post_init__(self) -> None:
        # Checked once, here, so a Cost means the same under every preset: Cost(core=True) or
        # Cost(elementwise=-5) is refused whichever preset would read it.
        object.__setattr__(self, "core", check_mac_count(self.core, "Cost.core"))
        object.__setattr__(self, "elementwise",
                           check_mac_count(self.elementwise, "Cost.elementwise"))

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.core + other.core, self.elementwise + other.elementwise)

    def macs(self, preset: str) -> int:
        """MACs under ``preset`` (``"full"`` or ``"paper"``); ``ValueError`` on another name."""
        check_preset(preset)
        return self.core + self.elementwise if preset == "full" else self.core
