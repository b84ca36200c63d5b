"""A model's roofline time from its ops: each op's time on a device, summed per operator,
module and pass, each sum with the ceiling most of its time sits under.

Per op (``docs/conventions.md``, "Bytes moved and roofline time"; Williams, Waterman &
Patterson, CACM 2009): ``time = max(2 · MACs / peak(dtype), bytes / bandwidth)``, the bound the
larger term names. A module's and the model's times are sums of their ops' times: ops run one
after another, nothing overlaps (the usual roofline reading, an estimate of the time a perfect
kernel per op would take). Pure Python: imports the device table only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Tuple

from .hardware import Hardware, roofline_seconds

__all__ = ["OpRecord", "RooflineEstimate", "estimate"]


@dataclass(frozen=True)
class OpRecord:
    """One op as an engine saw it run.

    Attributes:
        name: per-operator name (``linear``, ``scaled_dot_product_attention``).
        macs: its MACs under the count's preset.
        bytes: the bytes it read and wrote (:func:`fvcore_ext.ops.bytes.op_bytes`).
        dtype: the dtype its arithmetic ran in (``"torch.bfloat16"``, ``"bf16"``; any spelling
            :meth:`Hardware.peak_for` reads), or ``None`` for an op without arithmetic.
        modules: the names of every module it ran inside (outermost first or in any order).
        backward: it ran in a backward pass.
    """

    name: str
    macs: int
    bytes: int
    dtype: Optional[str]
    modules: Tuple[str, ...] = ()
    backward: bool = False


@dataclass
class RooflineEstimate:
    """Roofline times on one device (seconds).

    Attributes:
        hardware: the device's one-line description (:func:`describe`).
        seconds: the model's estimated time, forward and backward.
        forward_seconds, backward_seconds: the two passes.
        compute_seconds, memory_seconds: the part of ``seconds`` spent in compute-bound and in
            memory-bound ops.
        by_operator, by_module: seconds per operator name / module name.
        bound_by_operator, bound_by_module: ``"compute"`` or ``"memory"``: the ceiling that
            holds most of that operator's / module's time.
        dtype_fallbacks: dtypes the device has no peak for (an integer matmul), timed at its
            fp32 peak, with how many ops.
    """

    hardware: str
    seconds: float = 0.0
    forward_seconds: float = 0.0
    backward_seconds: float = 0.0
    compute_seconds: float = 0.0
    memory_seconds: float = 0.0
    by_operator: Dict[str, float] = field(default_factory=dict)
    by_module: Dict[str, float] = field(default_factory=dict)
    bound_by_operator: Dict[str, str] = field(default_factory=dict)
    bound_by_module: Dict[str, str] = field(default_factory=dict)
    dtype_fallbacks: Dict[str, int] = field(default_factory=dict)

    @property
    def bound(self) -> str:
        """The ceiling that holds most of the model's time."""
        return "compute" if self.compute_seconds > self.memory_seconds else "memory"


def _op_seconds(record: OpRecord, hw: Hardware, fallbacks: Counter) -> Tuple[float, str]:
    try:
        return roofline_seconds(record.macs, record.bytes, record.dtype, hw)
    except ValueError:
        fallbacks[str(record.dtype)] += 1
        return roofline_seconds(record.macs, record.bytes, "fp32", hw)


def estimate(records: Iterable[OpRecord], hw: Hardware, describe_hw: str = "") -> RooflineEstimate:
    """The roofline times of ``records`` on ``hw``.

    Args:
        records: the ops of a count, as the engine saw them run.
        hw: the device (:func:`fvcore_ext.roofline.parse_hardware`).
        describe_hw: the device's description for the report (default ``hw.name``).

    Returns:
        a :class:`RooflineEstimate`: seconds per op summed per operator, module and pass.

    Raises:
        ValueError: a record with negative MACs or bytes.
    """
    out = RooflineEstimate(describe_hw or hw.name)
    by_bound: Dict[str, Counter] = {"operator": Counter(), "module": Counter()}
    fallbacks: Counter = Counter()
    operators: Counter = Counter()
    modules: Counter = Counter()
    for record in records:
        seconds, bound = _op_seconds(record, hw, fallbacks)
        out.seconds += seconds
        if record.backward:
            out.backward_seconds += seconds
        else:
            out.forward_seconds += seconds
        if bound == "compute":
            out.compute_seconds += seconds
        else:
            out.memory_seconds += seconds
        operators[record.name] += seconds
        by_bound["operator"][record.name, bound] += seconds
        for module in set(record.modules):
            modules[module] += seconds
            by_bound["module"][module, bound] += seconds
    out.by_operator = dict(operators.most_common())
    out.by_module = dict(modules.most_common())
    out.bound_by_operator = _bounds(by_bound["operator"], out.by_operator)
    out.bound_by_module = _bounds(by_bound["module"], out.by_module)
    out.dtype_fallbacks = dict(fallbacks)
    return out


def _bounds(split: Counter, names: Dict[str, float]) -> Dict[str, str]:
    return {name: "compute" if split[name, "compute"] > split[name, "memory"] else "memory"
            for name in names}
