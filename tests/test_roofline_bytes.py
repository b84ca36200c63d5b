"""fvcore_ext.ops.bytes: bytes moved per op, exact integers derived by hand.

Rules: docs/conventions.md, "Bytes moved" (issue 29). fp32 = 4 bytes, bf16/fp16 = 2, int64 = 8.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fvcore_ext.roofline import (GATHER_OPS, SCATTER_OPS, VIEW_OPS, TensorBytes,
                                 arithmetic_intensity, boundary_bytes, is_inplace, op_bytes)

BYTES_PY = Path(__file__).resolve().parent.parent / "fvcore_ext" / "ops" / "bytes.py"


def dense(*shape, itemsize=4):
    """A contiguous tensor description (row-major strides)."""
    stride, acc = [], 1
    for s in reversed(shape):
        stride.append(acc)
        acc *= s
    return TensorBytes(tuple(shape), tuple(reversed(stride)), itemsize)


# --- TensorBytes --------------------------------------------------------------------------------

def test_own_bytes_dense():
    # (8, 16) fp32: 128 elements x 4 = 512 bytes.
    assert dense(8, 16).own_bytes == 512
    assert dense(8, 16).numel == 128


def test_own_bytes_broadcast_dimension_counts_once():
    # bias (32,) expanded to (8, 32): strides (0, 1); distinct elements 32 -> 32 x 4 = 128 bytes,
    # not 8 x 32 x 4 = 1024.
    assert TensorBytes((8, 32), (0, 1), 4).own_bytes == 128
    # A scalar expanded to (3, 4): both strides 0 -> 1 element x 4 = 4 bytes.
    assert TensorBytes((3, 4), (0, 0), 4).own_bytes == 4


def test_own_bytes_unknown_strides_are_dense():
    # stride None: every element distinct, 2 x 3 x 2 = 12 bytes.
    assert TensorBytes((2, 3), None, 2).own_bytes == 12


def test_empty_tensor_moves_nothing():
    # Any size 0 -> 0 bytes, even with other dims; a 0-dim tensor is one element.
    assert dense(0, 16).own_bytes == 0
    assert TensorBytes((0,), (1,), 8).own_bytes == 0
    assert TensorBytes((), (), 4).own_bytes == 4
    # An op over an empty input: read 0, write 0.
    assert op_bytes("aten::relu", [dense(0, 16)], [dense(0, 16)]) == 0
    assert TensorBytes.of(torch.empty(0, 5)).own_bytes == 0


def test_of_real_tensor():
    t = torch.zeros(3, 4, dtype=torch.float16)
    # 12 elements x 2 = 24 bytes.
    assert TensorBytes.of(t) == TensorBytes((3, 4), (4, 1), 2)
    assert TensorBytes.of(t).own_bytes == 24
    # A real expand: stride 0 read from the tensor; own bytes 32 x 4 = 128.
    e = torch.zeros(32).expand(8, 32)
    assert TensorBytes.of(e) == TensorBytes((8, 32), (0, 1), 4)
    assert TensorBytes.of(e).own_bytes == 128


def test_of_meta_tensor():
    # Meta tensors have shapes, strides and dtypes, no data: enough for bytes.
    t = torch.empty(8, 16, device="meta").t()
    tb = TensorBytes.of(t)
    assert tb == TensorBytes((16, 8), (1, 16), 4)
    assert tb.own_bytes == 16 * 8 * 4 == 512
    i = torch.empty(10, dtype=torch.int64, device="meta")
    assert TensorBytes.of(i).own_bytes == 80


def test_of_rejects_non_tensor():
    with pytest.raises(TypeError):
        TensorBytes.of([1, 2, 3])


def test_validation():
    with pytest.raises(ValueError):
        TensorBytes((2, 3), (1,), 4)
    with pytest.raises(ValueError):
        TensorBytes((-1,), None, 4)
    with pytest.raises(ValueError):
        TensorBytes((2,), None, 0)


def test_module_imports_without_torch():
    # Load bytes.py as a file with torch made unimportable: nothing at module level needs it.
    code = (
        "import sys, importlib.util\n"
        "sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(BYTES_PY)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.op_bytes('aten::add', [m.TensorBytes((2,), (1,), 4)]*2, [m.TensorBytes((2,), (1,), 4)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "24"   # (2 + 2 + 2) x 4
    assert importlib.util.find_spec("fvcore_ext.ops.bytes") is not None


# --- op_bytes: the general rule -------------------------------------------------------------------

def linear_bytes(itemsize):
    x, w, b, out = (dense(8, 16, itemsize=itemsize), dense(32, 16, itemsize=itemsize),
                    dense(32, itemsize=itemsize), dense(8, 32, itemsize=itemsize))
    return op_bytes("aten::linear", [x, w, b], [out])


def test_linear_fp32():
    # x (8,16)=128, w (32,16)=512, bias (32,)=32 read; out (8,32)=256 written.
    # (128 + 512 + 32 + 256) x 4 = 928 x 4 = 3712 bytes.
    assert linear_bytes(4) == 3712


def test_bf16_half_of_fp32():
    # The same linear in bf16: 928 x 2 = 1856 bytes.
    assert linear_bytes(2) == 1856
    assert linear_bytes(2) * 2 == linear_bytes(4)


def test_linear_from_real_tensors():
    x, w, b = torch.randn(8, 16), torch.randn(32, 16), torch.randn(32)
    out = torch.nn.functional.linear(x, w, b)
    tbs = [TensorBytes.of(t) for t in (x, w, b)]
    assert op_bytes("aten::linear", tbs, [TensorBytes.of(out)]) == 3712


def test_expanded_input_read_once():
    # add(x (8,32), bias.expand(8,32)) -> out (8,32): reads 256 + 32 (the broadcast bias once),
    # writes 256: (256 + 32 + 256) x 4 = 2176 bytes (not (256 + 256 + 256) x 4 = 3072).
    x, bias_expanded, out = dense(8, 32), TensorBytes((8, 32), (0, 1), 4), dense(8, 32)
    assert op_bytes("aten::add", [x, bias_expanded], [out]) == 2176


def test_none_entries_skipped():
    # add(x, 2.0): the scalar is None; reads 256 x 4, writes 256 x 4 = 2048.
    assert op_bytes("aten::add", [dense(8, 32), None], [dense(8, 32)]) == 2048


def test_overload_suffix_and_bare_names():
    x = dense(8, 32)
    assert op_bytes("aten::add.Tensor", [x, x], [x]) == 3 * 1024
    assert op_bytes("view", [x], [dense(256)]) == 0
    assert op_bytes("aten::view.default", [x], [dense(256)]) == 0


# --- views ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["aten::view", "aten::_unsafe_view", "aten::reshape",
                                  "aten::_reshape_alias", "aten::slice", "aten::select",
                                  "aten::alias", "aten::expand", "aten::t", "aten::permute",
                                  "aten::transpose", "aten::unsqueeze_", "aten::squeeze_",
                                  "aten::as_strided", "aten::detach", "aten::sym_size",
                                  "aten::size", "aten::unbind", "aten::split_with_sizes",
                                  "aten::view_as_real", "aten::_neg_view", "aten::lift_fresh"])
def test_views_move_nothing(kind):
    assert kind in VIEW_OPS
    assert op_bytes(kind, [dense(8, 32)], [dense(32, 8)]) == 0


def test_every_listed_op_exists_in_aten():
    for kind in VIEW_OPS | GATHER_OPS | SCATTER_OPS:
        assert hasattr(torch.ops.aten, kind.split("::")[1]), kind


def test_reshape_copy_is_clone_then_view():
    # What the dispatcher sees for a reshape that must copy: clone (counted) + _unsafe_view (0).
    x = dense(8, 32)
    xt = TensorBytes((32, 8), (1, 32), 4)     # x.t(): 256 distinct elements
    total = op_bytes("aten::clone", [xt], [dense(32, 8)]) \
        + op_bytes("aten::_unsafe_view", [dense(32, 8)], [dense(256)])
    assert total == (256 + 256) * 4 == 2048
    assert op_bytes("aten::view", [x], [dense(256)]) == 0


# --- in-place ------------------------------------------------------------------------------------

def test_inplace_add_():
    # x.add_(y), both (8,32) fp32: reads x 256 + y 256, writes x 256 once; the returned x is not
    # counted again: (256 + 256 + 256) x 4 = 3072 bytes.
    x, y = dense(8, 32), dense(8, 32)
    assert op_bytes("aten::add_", [x, y], [x]) == 3072
    assert op_bytes("aten::add_.Tensor", [x, y], [x]) == 3072
    # The out-of-place add would be the same 3072 here (its output is a new tensor of x's size);
    # a unary in-place op: relu_ reads and writes x once each = 2 x 1024.
    assert op_bytes("aten::relu_", [x], [x]) == 2048
    # x.add_(1.0): reads x, writes x.
    assert op_bytes("aten::add_", [x, None], [x]) == 2048


def test_inplace_with_broadcast_other():
    # x (8,32).mul_(scale (32,) broadcast): reads 256 + 32, writes 256: 544 x 4 = 2176.
    assert op_bytes("aten::mul_", [dense(8, 32), TensorBytes((8, 32), (0, 1), 4)],
                    [dense(8, 32)]) == 2176


def test_inplace_flag_and_names():
    x = dense(4, 4)     # 64 bytes
    # inplace=True on a name without "_": x read 64 + written 64, outputs ignored.
    assert op_bytes("aten::hardtanh", [x], [x], inplace=True) == 128
    # inplace=False overrides the suffix: general rule, 64 read + 64 written.
    assert op_bytes("aten::relu_", [x], [x], inplace=False) == 128
    assert is_inplace("aten::add_") and is_inplace("aten::__iadd__")
    assert not is_inplace("aten::__and__") and not is_inplace("aten::_softmax")
    assert not is_inplace("aten::add") and not is_inplace("prim::PythonOp.SelectiveScanFn")
    with pytest.raises(ValueError):
        op_bytes("aten::add_", [None], [])


# --- gathers -------------------------------------------------------------------------------------

def test_embedding_reads_only_taken_rows():
    # weight (1000, 64) fp16, indices (10,) int64 -> out (10, 64) fp16.
    # read: 10 rows x 64 x 2 = 1280, indices 10 x 8 = 80; write 10 x 64 x 2 = 1280.
    # 1280 + 80 + 1280 = 2640 bytes (the whole table would be 128000).
    w, idx, out = dense(1000, 64, itemsize=2), dense(10, itemsize=8), dense(10, 64, itemsize=2)
    assert op_bytes("aten::embedding", [w, idx], [out]) == 2640


def test_embedding_2d_indices_from_real_tensors():
    # indices (2, 5): 10 rows, same 2640 bytes.
    w = torch.empty(1000, 64, dtype=torch.float16, device="meta")
    idx = torch.empty(2, 5, dtype=torch.int64, device="meta")
    out = torch.nn.functional.embedding(idx, w)
    assert op_bytes("aten::embedding", [TensorBytes.of(w), TensorBytes.of(idx)],
                    [TensorBytes.of(out)], args=(w, idx, -1, False, False)) == 2640


def test_index_select_dim0_and_dim1():
    src = dense(100, 32)
    # dim 0, index (5,): reads 5 slices of 32 x 4 = 640, index 5 x 8 = 40; writes (5,32) 640.
    # 640 + 40 + 640 = 1320.
    assert op_bytes("aten::index_select", [src, dense(5, itemsize=8)], [dense(5, 32)],
                    args=(None, 0, None)) == 1320
    # dim 1, index (4,): reads 4 slices of 100 x 4 = 1600, index 32; writes (100,4) 1600.
    # 1600 + 32 + 1600 = 3232. Negative dim and scalar-only args give the same.
    assert op_bytes("aten::index_select", [src, dense(4, itemsize=8)], [dense(100, 4)],
                    args=(None, 1, None)) == 3232
    assert op_bytes("aten::index_select", [src, dense(4, itemsize=8)], [dense(100, 4)],
                    args=(-1,)) == 3232


def test_index_select_needs_dim():
    with pytest.raises(ValueError):
        op_bytes("aten::index_select", [dense(100, 32), dense(5, itemsize=8)], [dense(5, 32)])
    with pytest.raises(ValueError):
        op_bytes("aten::index_select", [dense(100, 32), dense(5, itemsize=8)], [dense(5, 32)],
                 args=(2,))


def test_gather():
    # self (10, 20) fp32, dim 1, index (10, 3) int64 -> out (10, 3) fp32.
    # reads 30 elements x 4 = 120, index 30 x 8 = 240; writes 30 x 4 = 120: 480 bytes.
    assert op_bytes("aten::gather", [dense(10, 20), dense(10, 3, itemsize=8)], [dense(10, 3)],
                    args=(None, 1, None, False)) == 480


def test_embedding_dense_backward_writes_full_weight_grad():
    # grad (10, 64) fp16 = 1280, indices (10,) int64 = 80 read; weight grad (1000, 64) fp16 =
    # 128000 written: 129360 bytes.
    assert op_bytes("aten::embedding_dense_backward",
                    [dense(10, 64, itemsize=2), dense(10, itemsize=8)],
                    [dense(1000, 64, itemsize=2)], args=(None, None, 1000, -1, False)) == 129360


def test_index_add_inplace_and_out_of_place():
    dest, idx, src = dense(1000, 64, itemsize=2), dense(10, itemsize=8), dense(10, 64, itemsize=2)
    # in place: index 80 + source 1280 read, dest 128000 written once: 129360.
    assert op_bytes("aten::index_add_", [dest, idx, src], [dest], args=(0,)) == 129360
    assert op_bytes("aten::scatter_add_", [dest, idx, src], [dest], args=(0,)) == 129360
    # out of place: the kernel copies self: 128000 + 80 + 1280 read, 128000 written = 257360.
    assert op_bytes("aten::index_add", [dest, idx, src], [dest], args=(0,)) == 257360


# --- boundaries: SDPA fused vs explicit attention -----------------------------------------------

B, H, L, D = 1, 2, 16, 8     # q, k, v, out: 1 x 2 x 16 x 8 = 256 elements; scores 2 x 16 x 16 = 512


def test_sdpa_boundary_vs_explicit_attention():
    q, k, v, out = (dense(B, H, L, D) for _ in range(4))
    scores = dense(B, H, L, L)
    # Fused: q, k, v read, out written; the scores never reach memory: 4 x 256 x 4 = 4096.
    fused = boundary_bytes([q, k, v], [out])
    assert fused == 4096
    # Explicit: k.transpose(-2, -1) is a view (0);
    #   scores = q @ kT: reads 256 + 256, writes 512      -> 1024 x 4 = 4096
    #   softmax(scores): reads 512, writes 512            -> 1024 x 4 = 4096
    #   attn @ v:        reads 512 + 256, writes 256      -> 1024 x 4 = 4096
    # total 12288 bytes = fused + the scores written once, read+written by softmax, read once
    # (4 x 512 x 4 = 8192).
    kt = TensorBytes((B, H, D, L), (H * L * D, L * D, 1, D), 4)
    explicit = (op_bytes("aten::transpose", [k], [kt], args=(None, -2, -1))
                + op_bytes("aten::matmul", [q, kt], [scores])
                + op_bytes("aten::softmax", [scores], [scores], args=(None, -1, None))
                + op_bytes("aten::matmul", [scores, v], [out]))
    assert explicit == 12288
    assert explicit - fused == 4 * 512 * 4


def test_sdpa_boundary_from_meta_tensors():
    q, k, v = (torch.empty(B, H, L, D, device="meta", dtype=torch.bfloat16) for _ in range(3))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    # bf16: 4 x 256 x 2 = 2048 bytes.
    assert boundary_bytes([TensorBytes.of(t) for t in (q, k, v)], [TensorBytes.of(out)]) == 2048
    assert boundary_bytes([None], []) == 0


# --- arithmetic intensity ------------------------------------------------------------------------

def test_arithmetic_intensity():
    # linear (8,16) x (16,32): 8 x 16 x 32 = 4096 MACs = 8192 FLOPs over 3712 bytes.
    assert arithmetic_intensity(4096, 3712) == 8192 / 3712
    assert arithmetic_intensity(0, 100) == 0.0
    assert arithmetic_intensity(4096, 0) is None       # a view: no intensity
    with pytest.raises(ValueError):
        arithmetic_intensity(-1, 10)
    with pytest.raises(ValueError):
        arithmetic_intensity(1, -10)
