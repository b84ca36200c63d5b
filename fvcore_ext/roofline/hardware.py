"""Device table and roofline arithmetic: time = max(FLOPs / peak, bytes / bandwidth).

The model is the roofline of Williams, Waterman & Patterson, "Roofline: an insightful visual
performance model for multicore architectures", Communications of the ACM 52(4), 2009: an op
takes at least as long as its arithmetic at the compute peak and at least as long as its memory
traffic at the memory bandwidth, whichever is longer. Counts in this package are MACs; the
FLOPs fed to a FLOP/s peak are 2 x MACs (one multiply and one add per MAC).

Every peak in :data:`HARDWARE` is DENSE. NVIDIA prints most Tensor Core figures "with
sparsity" (2:4 structured sparsity, 2x the dense rate); those are halved here and each entry
says so. Pure Python: no torch import.
"""
import dataclasses
import math
import types
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

_TERA = 1e12
_GIGA = 1e9

# Dtype spellings -> the table's keys. Matched after lower-casing and dropping "torch.", so the
# JIT scalar-type names ("Float", "BFloat16", "Half") and torch.dtype strings both resolve.
_DTYPE_KEYS: Dict[str, str] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32",
    "tf32": "tf32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "fp8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
    "float8_e4m3fnuz": "fp8", "float8_e5m2fnuz": "fp8",
}
_ALL_KEYS = ("fp32", "tf32", "bf16", "fp16", "fp8")


def _dtype_key(dtype: Optional[str]) -> Optional[str]:
    """The table key for a dtype spelling, or None when it is not one we know."""
    if dtype is None:
        return None
    text = str(dtype).strip().lower()
    if text.startswith("torch."):
        text = text[len("torch."):]
    return _DTYPE_KEYS.get(text)


def _check_efficiency(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


@dataclass(frozen=True)
class Hardware:
    """One accelerator: dense peaks per dtype, memory bandwidth, and derating factors.

    Attributes:
        name: display name, e.g. "H100 SXM".
        peak_flops: dense FLOP/s per dtype key ("fp32", "tf32", "bf16", "fp16", "fp8"; only
            the keys the vendor gives). "fp32" is the non-Tensor-Core FP32 rate: PyTorch's
            default fp32 matmul does NOT use TF32 unless
            ``torch.backends.cuda.matmul.allow_tf32`` (or ``torch.set_float32_matmul_precision
            ("high")``) is set, so "tf32" is a separate key a caller must ask for.
        bandwidth: memory bandwidth in bytes/s (1 GB/s = 1e9 bytes/s).
        source: the datasheet's title and URL.
        compute_efficiency: fraction of the peak reached, in (0, 1]; default 1.0.
        memory_efficiency: fraction of the bandwidth reached, in (0, 1]; default 1.0.

    Raises:
        ValueError: on a non-positive peak or bandwidth, an unknown dtype key, or an
            efficiency outside (0, 1].
    """
    name: str
    peak_flops: Mapping[str, float]
    bandwidth: float
    source: str
    compute_efficiency: float = 1.0
    memory_efficiency: float = 1.0

    def __post_init__(self) -> None:
        for key, value in self.peak_flops.items():
            if key not in _ALL_KEYS:
                raise ValueError(f"{self.name}: unknown dtype key {key!r}; keys are {', '.join(_ALL_KEYS)}")
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{self.name}: peak for {key} must be positive, got {value!r}")
        if not self.peak_flops:
            raise ValueError(f"{self.name}: no peak FLOP/s given")
        if not (self.bandwidth > 0 and math.isfinite(self.bandwidth)):
            raise ValueError(f"{self.name}: bandwidth must be positive, got {self.bandwidth!r}")
        _check_efficiency("compute_efficiency", self.compute_efficiency)
        _check_efficiency("memory_efficiency", self.memory_efficiency)
        object.__setattr__(self, "peak_flops", types.MappingProxyType(dict(self.peak_flops)))  # read-only

    def peak_for(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (before ``compute_efficiency``).

        Args:
            dtype: "float32"/"fp32"/"torch.float32"/"Float", "bfloat16"/"bf16"/"BFloat16",
                "float16"/"half"/"fp16"/"Half", "tf32", or an fp8 spelling
                ("float8_e4m3fn", "fp8", ...). Case-insensitive.

        Returns:
            FLOP/s (not MAC/s).

        Raises:
            ValueError: the dtype is missing, unknown, or has no peak on this device; the
                message names the device and the dtypes it has.
        """
        key = _dtype_key(dtype)
        if key is None or key not in self.peak_flops:
            have = ", ".join(k for k in _ALL_KEYS if k in self.peak_flops)
            missing = dtype is None or not str(dtype).strip()
            why = "no dtype given" if missing else f"no peak for dtype {dtype!r}"
            raise ValueError(f"{self.name}: {why}; it has {have}")
        return self.peak_flops[key]


def roofline_seconds(macs: int, bytes_moved: int, dtype: str, hw: Hardware) -> Tuple[float, str]:
    """Roofline time of one op (Williams, Waterman & Patterson, CACM 2009).

    compute time = 2 x ``macs`` / (peak FLOP/s for ``dtype`` x ``hw.compute_efficiency``);
    memory time = ``bytes_moved`` / (``hw.bandwidth`` x ``hw.memory_efficiency``). MACs are
    doubled to FLOPs before dividing by the FLOP/s peak, never divided by it directly.

    Args:
        macs: multiply-accumulates of the op (>= 0).
        bytes_moved: bytes read plus written in device memory (>= 0).
        dtype: the op's compute dtype (see :meth:`Hardware.peak_for`). Not looked up when
            ``macs`` is 0, so integer and copy ops cost memory time only.
        hw: the device.

    Returns:
        (seconds, bound): seconds = max(compute time, memory time); bound is "compute" when
        compute time is strictly larger, else "memory" (a tie, and 0/0, is "memory").

    Raises:
        ValueError: negative ``macs`` or ``bytes_moved``, or a dtype with no peak on ``hw``.
    """
    if macs < 0 or bytes_moved < 0:
        raise ValueError(f"macs and bytes_moved must be >= 0, got {macs!r} and {bytes_moved!r}")
    compute_s = 0.0
    if macs:
        compute_s = (2 * macs) / (hw.peak_for(dtype) * hw.compute_efficiency)
    memory_s = bytes_moved / (hw.bandwidth * hw.memory_efficiency)
    if compute_s > memory_s:
        return compute_s, "compute"
    return memory_s, "memory"


# --- The device table. DENSE peaks only; "sparse" below means NVIDIA's 2:4-sparsity figure. ---
# Peaks are written as literals (989.4e12, not 989.4 * 1e12) so they are the nearest doubles.
# Each figure was checked with the search tool against copies of the vendor tables (the
# vendor pages themselves are not in the search store); see the comment on each entry.

_HOPPER_SXM = {
    # NVIDIA H100 datasheet prints FP32 67, TF32 989*, BF16/FP16 1,979*, FP8 3,958* TFLOPS
    # (* = with sparsity; "specifications 1/2 lower without sparsity"). The Hopper whitepaper's
    # unrounded dense values: FP32 66.9, TF32 494.7, BF16/FP16 989.4, FP8 1978.9. Confirmed.
    "fp32": 66.9e12,
    "tf32": 494.7e12,
    "bf16": 989.4e12,
    "fp16": 989.4e12,
    "fp8": 1978.9e12,
}

HARDWARE: Dict[str, Hardware] = {
    "h100": Hardware(
        name="H100 SXM",
        peak_flops=dict(_HOPPER_SXM),
        # H100 SXM5 80GB HBM3: 3,350 GB/s (datasheet "3.35TB/s"). Confirmed.
        bandwidth=3350e9,
        source=("NVIDIA H100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h100/; "
                "NVIDIA H100 Tensor Core GPU Architecture whitepaper, "
                "https://resources.nvidia.com/en-us-tensor-core/gtc22-whitepaper-hopper"),
    ),
    "h200": Hardware(
        name="H200 SXM",
        # Same GH100 compute as H100 SXM: the H200 datasheet prints the same FP32 67 and
        # sparse TF32 989 / BF16, FP16 1,979 / FP8 3,958 TFLOPS, halved here (Hopper
        # whitepaper's unrounded values). Confirmed.
        peak_flops=dict(_HOPPER_SXM),
        # H200 SXM 141GB HBM3e: 4.8 TB/s. Confirmed.
        bandwidth=4800e9,
        source="NVIDIA H200 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h200/",
    ),
    "a100": Hardware(
        name="A100 80GB SXM",
        # A100 datasheet: FP32 19.5, TF32 156 (312 sparse), BF16/FP16 312 (624 sparse) TFLOPS;
        # the datasheet prints both, dense used. No FP8 on Ampere. Confirmed.
        peak_flops={"fp32": 19.5e12, "tf32": 156e12,
                    "bf16": 312e12, "fp16": 312e12},
        # A100 80GB SXM (HBM2e): 2,039 GB/s (the 80GB PCIe is 1,935). Confirmed.
        bandwidth=2039e9,
        source=("NVIDIA A100 Tensor Core GPU datasheet, https://www.nvidia.com/content/dam/en-zz/Solutions/"
                "Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    ),
    "l4": Hardware(
        name="L4",
        # L4 datasheet: FP32 30.3; TF32 120*, BF16/FP16 242*, FP8 485* TFLOPS (* = with
        # sparsity), halved: 60, 121, 242.5. A data-center Ada part: FP16 with FP32 accumulate
        # runs at the full rate. Confirmed.
        peak_flops={"fp32": 30.3e12, "tf32": 60e12, "bf16": 121e12,
                    "fp16": 121e12, "fp8": 242.5e12},
        # L4 24GB GDDR6: 300 GB/s. Confirmed.
        bandwidth=300e9,
        source="NVIDIA L4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/l4/",
    ),
    "rtx4090": Hardware(
        name="GeForce RTX 4090",
        # Ada whitepaper, Appendix A (dense/sparse): FP32 82.6 (non-Tensor); TF32 82.6/165.2;
        # FP16 Tensor 330.3/660.6 with FP16 accumulate but 165.2/330.4 with FP32 accumulate;
        # BF16 165.2/330.4 (FP32 accumulate); FP8 330.3/660.6 with FP32 accumulate (corrected
        # in whitepaper v2.02). GeForce runs FP32-accumulate at half the FP16-accumulate rate,
        # and PyTorch's fp16/bf16 matmuls (cuBLAS) accumulate in FP32, so the FP32-accumulate
        # figures are used. Confirmed.
        peak_flops={"fp32": 82.6e12, "tf32": 82.6e12, "bf16": 165.2e12,
                    "fp16": 165.2e12, "fp8": 330.3e12},
        # RTX 4090 24GB GDDR6X: 1,008 GB/s. Confirmed.
        bandwidth=1008e9,
        source=("NVIDIA Ada GPU Architecture whitepaper (Appendix A, GeForce RTX 4090), "
                "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"),
    ),
}

# Other spellings of the table's names (matched lower-case, "_" and " " read as "-").
_ALIASES: Dict[str, str] = {
    "h100-sxm": "h100", "h100-sxm5": "h100", "h100-sxm5-80gb": "h100", "h100-80gb": "h100",
    "h200-sxm": "h200", "h200-141gb": "h200", "h200-sxm-141gb": "h200",
    "a100-80gb": "a100", "a100-sxm": "a100", "a100-sxm4": "a100", "a100-80gb-sxm": "a100",
    "a100-sxm-80gb": "a100", "nvidia-l4": "l4",
    "4090": "rtx4090", "rtx-4090": "rtx4090", "geforce-rtx-4090": "rtx4090",
}

_USER_KEYS = ("peak_tflops", "bandwidth_gbs", "dtype", "compute_efficiency", "memory_efficiency", "name")
_EFFICIENCY_KEYS = ("compute_efficiency", "memory_efficiency")


def _lookup(name: str) -> Optional[Hardware]:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    return HARDWARE.get(key)


def _positive(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key} must be a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{key} must be positive, got {text!r}")
    return value


def parse_hardware(spec: str) -> Hardware:
    """Parse a device spec: a table name, or peak and bandwidth given by the user.

    Forms:
        * a name from :data:`HARDWARE` or an alias, case-insensitive ("h100", "H100-SXM",
          "a100-80gb", "4090"), optionally followed by efficiencies:
          ``h100,compute_efficiency=0.6,memory_efficiency=0.8``;
        * ``peak_tflops=P,bandwidth_gbs=B[,dtype=bf16][,compute_efficiency=C]
          [,memory_efficiency=M][,name=N]``: P is a dense peak in TFLOP/s (1e12 FLOP/s) that
          applies to every dtype unless ``dtype=`` restricts it to one; B is in GB/s (1e9
          bytes/s).

    Returns:
        The :class:`Hardware`.

    Raises:
        ValueError (one line): empty spec; unknown name (lists the known names); a part
        without ``=``; an unknown or repeated key; a missing, non-numeric or non-positive
        ``peak_tflops``/``bandwidth_gbs`` (names the key); an unknown dtype; an efficiency
        outside (0, 1].
    """
    parts = [p.strip() for p in str(spec).split(",")]
    if not any(parts):
        raise ValueError("empty hardware spec; give a name (" + ", ".join(sorted(HARDWARE))
                         + ") or peak_tflops=...,bandwidth_gbs=...")
    base: Optional[Hardware] = None
    if "=" not in parts[0]:
        base = _lookup(parts[0])
        if base is None:
            raise ValueError(f"unknown hardware {parts[0]!r}; known: {', '.join(sorted(HARDWARE))} "
                             "(or give peak_tflops=...,bandwidth_gbs=...)")
        parts = parts[1:]
    fields: Dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        allowed = _EFFICIENCY_KEYS if base is not None else _USER_KEYS
        if not sep:
            raise ValueError(f"expected key=value in hardware spec, got {part!r}")
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in hardware spec; allowed here: {', '.join(allowed)}")
        if key in fields:
            raise ValueError(f"key {key!r} given twice in hardware spec")
        fields[key] = value.strip()
    effs = {}
    for key in _EFFICIENCY_KEYS:
        if key in fields:
            try:
                effs[key] = float(fields[key])
            except ValueError:
                raise ValueError(f"{key} must be a number, got {fields[key]!r}") from None
            _check_efficiency(key, effs[key])
    if base is not None:
        return dataclasses.replace(base, **effs) if effs else base
    for key in ("peak_tflops", "bandwidth_gbs"):
        if key not in fields:
            raise ValueError(f"hardware spec needs {key}=... "
                             f"(or a known name: {', '.join(sorted(HARDWARE))})")
    peak = _positive("peak_tflops", fields["peak_tflops"]) * _TERA
    bandwidth = _positive("bandwidth_gbs", fields["bandwidth_gbs"]) * _GIGA
    keys = _ALL_KEYS
    if "dtype" in fields:
        dtype_key = _dtype_key(fields["dtype"])
        if dtype_key is None:
            raise ValueError(f"unknown dtype {fields['dtype']!r} in hardware spec; "
                             f"use one of {', '.join(_ALL_KEYS)}")
        keys = (dtype_key,)
    return Hardware(name=fields.get("name") or "custom", peak_flops={k: peak for k in keys},
                    bandwidth=bandwidth, source=f"user spec: {spec}", **effs)


def describe(hw: Hardware) -> str:
    """One line naming the device, its bf16 peak (else its first dtype) and its bandwidth.

    E.g. ``"H100 SXM (bf16 989.4 TFLOP/s dense, 3,350 GB/s; compute efficiency 0.6)"``; the
    efficiency part appears only for a factor that is not 1. Units: TFLOP/s = 1e12 FLOP/s,
    GB/s = 1e9 bytes/s.
    """
    key = "bf16" if "bf16" in hw.peak_flops else next(k for k in _ALL_KEYS if k in hw.peak_flops)
    tflops = format(round(hw.peak_flops[key] / _TERA, 3), ",g")
    gbs = format(round(hw.bandwidth / _GIGA, 3), ",g")
    effs = [f"{label} efficiency {format(value, 'g')}"
            for label, value in (("compute", hw.compute_efficiency), ("memory", hw.memory_efficiency))
            if value != 1.0]
    tail = "; " + ", ".join(effs) if effs else ""
    return f"{hw.name} ({key} {tflops} TFLOP/s dense, {gbs} GB/s{tail})"
