"""Matmul, linear, einsum and convolution: fvcore 0.1.5's formulas as pure shape functions.

All results are MACs (one multiply-accumulate = 1) as Python ints; bias additions are not
counted, as in fvcore (``fvcore/nn/jit_handles.py``). Every cost here is ``core``: the paper
preset keeps it.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import opt_einsum

from .cost import Cost, is_symbolic, numel, size_int

__all__ = [
    "bilinear_macs", "trilinear_macs",
    "addmm_macs",
    "bmm_macs",
    "conv_macs",
    "einsum_macs",
    "grouped_mm_macs",
    "linear_macs",
    "matmul_macs",
    "triangular_solve_macs",
]

Shape = Sequence[int]


def broadcast_shapes(*shapes: Shape) -> tuple:
    """NumPy/PyTorch broadcast of ``shapes``; ``ValueError`` if they do not broadcast."""
    out = []
    for dims in itertools.zip_longest(*(reversed(tuple(s)) for s in shapes), fillvalue=1):
        sizes = []                      # distinct sizes other than 1 (a symbolic one by ==)
        for d in dims:
            d = size_int(d)
            if d != 1 and not any(d == known for known in sizes):
                sizes.append(d)
        if len(sizes) > 1:
            raise ValueError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(reversed(out))


def bilinear_macs(x1: Shape, weight: Shape) -> Cost:
    """``aten::bilinear(x1, x2, A, bias)`` (``nn.Bilinear``: ``y_k = x1ᵀ·A_k·x2 + b_k``), x1
    ``(*, in1)``, A ``(out, in1, in2)``: one MAC per term ``x1_i·A_kij·x2_j`` of each output,
    ``numel(x1[:-1])·out·in1·in2``, as ``aten::_trilinear`` evaluates it (a broadcast product
    summed over i and j); the bias is not counted, as a linear's is not (issue 26).

    Raises:
        ValueError: x1's last dimension is not A's ``in1``.
    """
    x1, weight = tuple(size_int(d) for d in x1), tuple(size_int(d) for d in weight)
    if len(weight) != 3 or not x1 or x1[-1] != weight[1]:
        raise ValueError(f"bilinear: x1 {x1} does not match the weight {weight} "
                         f"(out, in1, in2)")
    return Cost(core=numel(x1[:-1]) * numel(weight))


def trilinear_macs(shapes: Sequence[Shape], expands: Sequence[Sequence[int]]) -> Cost:
    """``aten::_trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim)``: each input with size-1
    dimensions inserted at its ``expand`` positions, the three broadcast, multiplied and summed
    over ``sumdim``: one MAC per element of the broadcast product. The kernel of ``nn.Bilinear``
    at the dispatcher (its forward gives :func:`bilinear_macs`; each of its two backward calls
    the same count, as a matmul's gradients each cost the forward's).

    Raises:
        ValueError: the expanded shapes do not broadcast.
    """
    expanded = []
    for shape, expand in zip(shapes, expands):
        dims = [size_int(d) for d in shape]
        for position in sorted(int(e) for e in expand):
            dims.insert(position, 1)
        expanded.append(tuple(dims))
    return Cost(core=numel(broadcast_shapes(*expanded)))


def matmul_macs(a: Shape, b: Shape) -> Cost:
    """``torch.matmul(a, b)`` (``aten::matmul``, ``aten::mm``): ``batch · M · K · N`` MACs.

    Shapes follow ``torch.matmul``: 1-D operands are promoted and batch dimensions broadcast.
    For same-batch operands this is fvcore's ``prod(a) · b[-1]`` (``matmul_flop_jit``); unlike
    fvcore it also counts a broadcast second operand's batch (``(L, K) @ (B, K, N)`` is
    ``B·L·K·N``, not ``L·K·N``) and 1-D operands, where fvcore asserts.

    Raises:
        ValueError: inner dimensions differ or batch dimensions do not broadcast.
    """
    a, b = tuple(size_int(d) for d in a), tuple(size_int(d) for d in b)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("matmul needs operands of at least one dimension")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul inner dimensions differ: {a} @ {b}")
    batch = numel(broadcast_shapes(a2[:-2], b2[:-2]))
    return Cost(core=batch * a2[-2] * a2[-1] * b2[-1])


def addmm_macs(a: Shape, b: Shape) -> Cost:
    """``aten::addmm(bias, a, b)``: ``a (n, k) @ b (k, m)`` is ``n·k·m`` MACs; the bias add is
    not counted (fvcore ``addmm_flop_jit``). ``ValueError`` on non-2-D operands."""
    if len(a) != 2 or len(b) != 2:
        raise ValueError(f"addmm expects 2-D operands, got {tuple(a)} and {tuple(b)}")
    return Cost(core=size_int(a[0]) * size_int(a[1]) * size_int(b[1]))


def bmm_macs(a: Shape, b: Shape) -> Cost:
    """``aten::bmm``: ``a (n, c, t) @ b (n, t, d)`` is ``n·c·t·d`` MACs (fvcore ``bmm_flop_jit``).
    ``ValueError`` on non-3-D operands."""
    if len(a) != 3 or len(b) != 3:
        raise ValueError(f"bmm expects 3-D operands, got {tuple(a)} and {tuple(b)}")
    n, c, t = (size_int(d) for d in a)
    return Cost(core=n * c * t * size_int(b[-1]))


def grouped_mm_macs(a: Shape, b: Shape) -> Cost:
    """``aten::_grouped_mm(a, b, offs)`` (and ``_scaled_grouped_mm``), the MoE expert matmul of
    ``torch.nn.functional.grouped_mm``, in MACs from shapes only (``docs/conventions.md``,
    "Grouped matmul"):

    - a ``(T, K)``, b ``(E, K, N)``: ``T·K·N``. ``offs`` splits the T token rows among the E
      experts; every row meets the one expert it was routed to, so the sum over experts is
      ``T·K·N`` whatever the offsets (rows past ``offs[-1]`` are the kernel's padding and
      counted, as a dense count of the routed tokens).
    - a ``(E, M, K)``, b ``(E, K, N)``: ``E·M·K·N`` (a batched matmul; no offsets).
    - a ``(M, K)``, b ``(K, N)``, K split into groups by ``offs`` (the MoE weight gradient):
      ``M·K·N``, the sum over groups of ``M·k_g·N``.
    - a ``(G, M, K)``, b ``(K, N)``, N split into G groups by ``offs``: ``M·K·N``, the sum
      over groups of ``M·K·n_g``.

    The layouts and output shapes are those of torch's meta kernel
    (``torch/_meta_registrations.py``, ``_create_grouped_mm_output_tensor``).

    Raises:
        ValueError: an operand is not 2-D or 3-D, the contraction sizes differ, or the group
            counts of two 3-D operands differ.
    """
    a, b = tuple(size_int(d) for d in a), tuple(size_int(d) for d in b)
    if len(a) not in (2, 3) or len(b) not in (2, 3):
        raise ValueError(f"grouped_mm expects 2-D or 3-D operands, got {a} and {b}")
    if a[-1] != b[-2]:
        raise ValueError(f"grouped_mm contraction sizes differ: {a} @ {b}")
    if len(a) == 3 and len(b) == 3:
        if a[0] != b[0]:
            raise ValueError(f"grouped_mm group counts differ: {a} @ {b}")
        return Cost(core=a[0] * a[1] * a[2] * b[2])
    rows = a[0] if len(a) == 2 else a[1]
    return Cost(core=rows * a[-1] * b[-1])


def linear_macs(x: Shape, weight: Shape) -> Cost:
    """``aten::linear(x, weight, bias)``: x ``(..., in)``, weight ``(out, in)``:
    ``numel(x) · out`` MACs, bias not counted (fvcore ``linear_flop_jit``).
    ``ValueError`` if the feature sizes differ."""
    if x[-1] != weight[-1]:
        raise ValueError(f"linear: input features {x[-1]} != weight features {weight[-1]}")
    out_features = size_int(weight[0]) if len(weight) == 2 else 1
    return Cost(core=numel(x) * out_features)


def einsum_macs(equation: str, shapes: Sequence[Shape]) -> Cost:
    """``aten::einsum(equation, operands)``: half the FLOP count of the optimal contraction
    path, fvcore's ``einsum_flop_jit`` rule ("divided by 2 because we count MAC"), with
    operands of ``shapes``. fvcore reads that count from ``numpy.einsum_path``'s printed report,
    which rounds it to 4 significant digits; here ``opt_einsum`` (from which NumPy's path code
    was taken) computes it exactly, from shapes alone, so nothing is allocated.

    Raises:
        ValueError: the equation does not match the shapes.
    """
    shapes = [tuple(size_int(d) for d in s) for s in shapes]
    equation = equation.replace(" ", "")
    if len(shapes) <= 2:
        return Cost(core=_single_contraction_flops(equation, shapes) // 2)
    info = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="optimal")[1]
    return Cost(core=int(info.opt_cost) // 2)


def _single_contraction_flops(equation: str, shapes: Sequence[Shape]) -> int:
    # One or two operands have one path, one contraction: opt_einsum's ``flop_count`` of it
    # is the product of every index's size, times 2 when an index is summed away (a multiply
    # and an add). Computed here without opt_einsum's path search, whose size comparisons
    # would fix a symbolic size (fvcore_ext.laws.symbolic); tests/test_formulas.py checks it
    # against opt_einsum on random equations.
    from opt_einsum.parser import parse_einsum_input
    inputs, output, _ = parse_einsum_input((equation, *shapes), shapes=True)
    sizes: dict = {}
    for term, shape in zip(inputs.split(","), shapes):
        for index, size in zip(term, shape):
            if index not in sizes or (not is_symbolic(sizes[index]) and sizes[index] == 1):
                sizes[index] = size          # a broadcast 1 gives way to the other size
    summed = bool(set(sizes) - set(output))
    return math.prod(sizes.values()) * (2 if summed else 1)


def conv_macs(x: Shape, weight: Shape, out: Shape, transposed: bool) -> Cost:
    """``aten::_convolution``: ``batch · numel(weight) · spatial`` MACs, where ``spatial`` is the
    product of the **output** spatial sizes, or of the **input** ones for a transposed
    convolution; bias not counted (fvcore ``conv_flop_count``). Shapes are
    ``x (B, C_in, *S_in)``, ``weight (C_out, C_in/g, *k)`` (transposed: ``(C_in, C_out/g, *k)``),
    ``out (B, C_out, *S_out)``."""
    spatial = (x if transposed else out)[2:]
    return Cost(core=size_int(x[0]) * numel(weight) * numel(spatial))


def triangular_solve_macs(a: Shape, out: Shape, unitriangular: bool) -> Cost:
    """``aten::linalg_solve_triangular(A, B, upper, left, unitriangular)``, A ``(..., n, n)``,
    solution ``out`` (``(..., n, k)`` for ``left``, ``(..., k, n)`` otherwise): substitution
    solves each of the ``numel(out) / n`` vectors with ``n·(n - 1)/2`` MACs, and divides by the
    diagonal (``numel(out)`` more) unless it is ``unitriangular`` (LAPACK ``trsm``'s count;
    the chunked gated-delta-rule layers of Qwen3.5 and OLMo hybrids). Core.
    ``ValueError`` if A is not square."""
    if len(a) < 2 or a[-1] != a[-2]:
        raise ValueError(f"solve_triangular needs a square A, got {tuple(a)}")
    n = size_int(a[-1])
    solutions = numel(out)
    macs = (solutions // n) * (n * (n - 1) // 2) + (0 if unitriangular else solutions)
    return Cost(core=macs)
