"""fvcore_ext.roofline.hardware: the device table, roofline_seconds, parse_hardware, describe."""
import dataclasses

import pytest

from fvcore_ext.roofline import HARDWARE, Hardware, describe, parse_hardware, roofline_seconds

H100 = HARDWARE["h100"]


# --- roofline_seconds -------------------------------------------------------------------------

def test_compute_bound_h100_bf16():
    # 1e12 MACs = 2e12 FLOPs at 989.4e12 FLOP/s -> 2e12 / 989.4e12 = 2.0214e-3 s;
    # 1e9 bytes at 3.35e12 B/s -> 2.985e-4 s. Compute is longer.
    assert roofline_seconds(10**12, 10**9, "bfloat16", H100) == (2e12 / 989.4e12, "compute")


def test_memory_bound_h100_bf16():
    # 1e6 MACs -> 2e6 / 989.4e12 = 2.0e-9 s; 4e9 bytes / 3.35e12 B/s = 1.194e-3 s. Memory is longer.
    assert roofline_seconds(10**6, 4 * 10**9, "bf16", H100) == (4e9 / 3350e9, "memory")


def test_flops_are_twice_macs_not_macs():
    # A100 fp16: 156e12 MACs -> 312e12 FLOPs at 312e12 FLOP/s = 1.0 s (MACs / peak would be 0.5 s).
    seconds, bound = roofline_seconds(156 * 10**12, 0, "float16", HARDWARE["a100"])
    assert (seconds, bound) == (1.0, "compute")


def test_fp32_uses_non_tensor_peak_not_tf32():
    # H100 fp32 66.9e12 FLOP/s: 1e12 MACs -> 2e12 / 66.9e12 s; tf32 (494.7e12) must be asked for.
    assert roofline_seconds(10**12, 0, "torch.float32", H100)[0] == 2e12 / 66.9e12
    assert roofline_seconds(10**12, 0, "tf32", H100)[0] == 2e12 / 494.7e12


def test_efficiency_factors():
    hw = dataclasses.replace(H100, compute_efficiency=0.6, memory_efficiency=0.8)
    # compute: 2e12 / (989.4e12 * 0.6) = 3.369e-3 s
    assert roofline_seconds(10**12, 0, "bf16", hw) == (2e12 / (989.4e12 * 0.6), "compute")
    # memory: 4e9 / (3350e9 * 0.8) = 1.493e-3 s
    assert roofline_seconds(0, 4 * 10**9, "bf16", hw) == (4e9 / (3350e9 * 0.8), "memory")


def test_efficiency_can_flip_the_bound():
    # user device: 1 TFLOP/s, 1000 GB/s. 5e11 MACs = 1e12 FLOPs -> 1 s; 0.9e12 bytes -> 0.9 s: compute.
    hw = parse_hardware("peak_tflops=1,bandwidth_gbs=1000")
    assert roofline_seconds(5 * 10**11, 9 * 10**11, "fp32", hw) == (1.0, "compute")
    # memory_efficiency 0.5: 0.9e12 / 0.5e12 = 1.8 s -> memory.
    slow = parse_hardware("peak_tflops=1,bandwidth_gbs=1000,memory_efficiency=0.5")
    assert roofline_seconds(5 * 10**11, 9 * 10**11, "fp32", slow) == (1.8, "memory")


def test_tie_and_zero_are_memory():
    hw = parse_hardware("peak_tflops=1,bandwidth_gbs=1000")
    # 5e11 MACs -> 1e12 FLOPs / 1e12 = 1 s; 1e12 bytes / 1e12 = 1 s: a tie is "memory".
    assert roofline_seconds(5 * 10**11, 10**12, "fp32", hw) == (1.0, "memory")
    assert roofline_seconds(0, 0, "fp32", hw) == (0.0, "memory")


def test_zero_macs_needs_no_float_peak():
    # an int64 copy: no MACs, 3.35e9 bytes on H100 -> 1e-3 s, dtype not looked up.
    assert roofline_seconds(0, 3350 * 10**6, "int64", H100) == (3350e6 / 3350e9, "memory")


def test_roofline_errors():
    with pytest.raises(ValueError, match=">= 0"):
        roofline_seconds(-1, 0, "bf16", H100)
    with pytest.raises(ValueError, match=">= 0"):
        roofline_seconds(0, -1, "bf16", H100)
    with pytest.raises(ValueError, match="A100 80GB SXM: no peak for dtype 'fp8'"):
        roofline_seconds(1, 0, "fp8", HARDWARE["a100"])


# --- peak_for ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,key", [
    ("float32", "fp32"), ("fp32", "fp32"), ("torch.float32", "fp32"), ("Float", "fp32"),
    ("tf32", "tf32"),
    ("bfloat16", "bf16"), ("bf16", "bf16"), ("BFloat16", "bf16"), ("torch.bfloat16", "bf16"),
    ("float16", "fp16"), ("half", "fp16"), ("fp16", "fp16"), ("Half", "fp16"), ("torch.float16", "fp16"),
    ("float8_e4m3fn", "fp8"), ("torch.float8_e5m2", "fp8"), ("fp8", "fp8"),
])
def test_peak_for_aliases(dtype, key):
    assert H100.peak_for(dtype) == H100.peak_flops[key]


@pytest.mark.parametrize("dtype", [None, "", "float64", "int8", "Long", "bogus"])
def test_peak_for_unknown_or_missing(dtype):
    with pytest.raises(ValueError) as err:
        H100.peak_for(dtype)
    assert str(err.value).startswith("H100 SXM: ")
    assert str(err.value).endswith("it has fp32, tf32, bf16, fp16, fp8")


def test_peak_for_dtype_device_lacks():
    with pytest.raises(ValueError, match="it has fp32, tf32, bf16, fp16$"):
        HARDWARE["a100"].peak_for("float8_e4m3fn")


# --- the table ------------------------------------------------------------------------------

def test_table_names_and_key_figures():
    assert {"h100", "h200", "a100", "l4", "rtx4090"} <= set(HARDWARE)
    assert H100.peak_for("bf16") == 989.4e12 and H100.bandwidth == 3350e9
    assert HARDWARE["h200"].peak_for("bf16") == 989.4e12 and HARDWARE["h200"].bandwidth == 4800e9
    assert HARDWARE["a100"].peak_for("bf16") == 312e12 and HARDWARE["a100"].bandwidth == 2039e9
    assert HARDWARE["l4"].peak_for("bf16") == 121e12 and HARDWARE["l4"].bandwidth == 300e9
    # RTX 4090: FP32-accumulate rate (half the FP16-accumulate 330.3).
    assert HARDWARE["rtx4090"].peak_for("half") == 165.2e12 and HARDWARE["rtx4090"].bandwidth == 1008e9


@pytest.mark.parametrize("key", sorted(HARDWARE))
def test_every_entry_is_sourced_and_positive(key):
    hw = HARDWARE[key]
    assert hw.name and "https://" in hw.source and hw.source.split("https://")[0].strip()
    assert hw.bandwidth > 0 and hw.peak_flops and all(v > 0 for v in hw.peak_flops.values())
    assert {"fp32", "bf16", "fp16"} <= set(hw.peak_flops)
    assert hw.compute_efficiency == 1.0 and hw.memory_efficiency == 1.0
    assert hw.peak_flops["fp32"] < hw.peak_flops["bf16"]  # fp32 is the non-Tensor-Core figure


def test_peaks_are_read_only():
    with pytest.raises(TypeError):
        H100.peak_flops["bf16"] = 1.0


@pytest.mark.parametrize("kwargs,message", [
    (dict(peak_flops={"bf16": 0.0}), "peak for bf16 must be positive"),
    (dict(peak_flops={"int8": 1.0}), "unknown dtype key 'int8'"),
    (dict(peak_flops={}), "no peak FLOP/s given"),
    (dict(bandwidth=0.0), "bandwidth must be positive"),
    (dict(compute_efficiency=0.0), r"compute_efficiency must be in \(0, 1\]"),
    (dict(memory_efficiency=1.5), r"memory_efficiency must be in \(0, 1\]"),
])
def test_hardware_validates(kwargs, message):
    fields = dict(name="x", peak_flops={"bf16": 1e12}, bandwidth=1e9, source="s")
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Hardware(**fields)


# --- parse_hardware -------------------------------------------------------------------------

@pytest.mark.parametrize("spec,key", [
    ("h100", "h100"), ("H100", "h100"), ("h100-sxm", "h100"), ("H100_SXM5", "h100"),
    ("h200", "h200"), ("h200-sxm", "h200"), ("a100", "a100"), ("a100-80gb", "a100"),
    ("A100 80GB", "a100"), ("l4", "l4"), ("nvidia-l4", "l4"), ("4090", "rtx4090"),
    ("rtx4090", "rtx4090"), ("RTX-4090", "rtx4090"), (" h100 ", "h100"),
])
def test_parse_names_and_aliases(spec, key):
    assert parse_hardware(spec) is HARDWARE[key]


def test_parse_name_with_efficiencies():
    hw = parse_hardware("h100, compute_efficiency=0.6,memory_efficiency=0.8")
    assert hw == dataclasses.replace(H100, compute_efficiency=0.6, memory_efficiency=0.8)
    assert HARDWARE["h100"].compute_efficiency == 1.0  # the table entry is untouched


def test_parse_user_spec_every_dtype():
    hw = parse_hardware("peak_tflops=100,bandwidth_gbs=2000")
    assert hw.name == "custom" and hw.bandwidth == 2000e9
    assert dict(hw.peak_flops) == {k: 100e12 for k in ("fp32", "tf32", "bf16", "fp16", "fp8")}
    assert hw.source == "user spec: peak_tflops=100,bandwidth_gbs=2000"


def test_parse_user_spec_all_keys():
    hw = parse_hardware("peak_tflops=50.5,bandwidth_gbs=900,dtype=BFloat16,"
                        "compute_efficiency=0.7,memory_efficiency=0.8,name=My GPU")
    assert hw.name == "My GPU" and dict(hw.peak_flops) == {"bf16": 50.5e12}
    assert (hw.compute_efficiency, hw.memory_efficiency) == (0.7, 0.8)
    with pytest.raises(ValueError, match="My GPU: no peak for dtype 'float32'; it has bf16$"):
        hw.peak_for("float32")


@pytest.mark.parametrize("spec,message", [
    ("", "empty hardware spec"),
    (" , ", "empty hardware spec"),
    ("v100", "unknown hardware 'v100'; known: a100, h100, h200, l4, rtx4090"),
    ("h100,0.6", "expected key=value"),
    ("h100,peak_tflops=1", "unknown key 'peak_tflops'.*allowed here: compute_efficiency, memory_efficiency"),
    ("h100,compute_efficiency=0", r"compute_efficiency must be in \(0, 1\]"),
    ("h100,compute_efficiency=1.2", r"compute_efficiency must be in \(0, 1\]"),
    ("h100,memory_efficiency=-0.5", r"memory_efficiency must be in \(0, 1\]"),
    ("h100,memory_efficiency=fast", "memory_efficiency must be a number"),
    ("h100,compute_efficiency=0.5,compute_efficiency=0.6", "given twice"),
    ("bandwidth_gbs=1000", "needs peak_tflops="),
    ("peak_tflops=1", "needs bandwidth_gbs="),
    ("peak_tflops=0,bandwidth_gbs=1000", "peak_tflops must be positive"),
    ("peak_tflops=-3,bandwidth_gbs=1000", "peak_tflops must be positive"),
    ("peak_tflops=inf,bandwidth_gbs=1000", "peak_tflops must be positive"),
    ("peak_tflops=abc,bandwidth_gbs=1000", "peak_tflops must be a number"),
    ("peak_tflops=1,bandwidth_gbs=0", "bandwidth_gbs must be positive"),
    ("peak_tflops=1,bandwidth_gbs=nan", "bandwidth_gbs must be positive"),
    ("peak_tflops=1,bandwidth_gbs=1,dtype=int8", "unknown dtype 'int8'"),
    ("peak_tflops=1,bandwidth_gbs=1,flops=2", "unknown key 'flops'"),
    ("peak_tflops=1,bandwidth_gbs=1,peak_tflops=2", "given twice"),
    ("peak_tflops=1,bandwidth_gbs=1,compute_efficiency=0", r"compute_efficiency must be in \(0, 1\]"),
])
def test_parse_errors(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_hardware(spec)
    assert "\n" not in str(err.value)


# --- describe -------------------------------------------------------------------------------

def test_describe():
    assert describe(H100) == "H100 SXM (bf16 989.4 TFLOP/s dense, 3,350 GB/s)"
    assert describe(parse_hardware("h100,compute_efficiency=0.6")) == \
        "H100 SXM (bf16 989.4 TFLOP/s dense, 3,350 GB/s; compute efficiency 0.6)"
    assert describe(parse_hardware("a100-80gb,compute_efficiency=0.7,memory_efficiency=0.8")) == \
        "A100 80GB SXM (bf16 312 TFLOP/s dense, 2,039 GB/s; compute efficiency 0.7, memory efficiency 0.8)"
    assert describe(parse_hardware("peak_tflops=19.5,bandwidth_gbs=1555,dtype=fp32,name=A100-40")) == \
        "A100-40 (fp32 19.5 TFLOP/s dense, 1,555 GB/s)"
