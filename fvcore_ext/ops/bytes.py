"""Bytes moved per op: the memory side of the roofline.

The roofline model (Williams, Waterman & Patterson, "Roofline: an insightful visual performance
model for multicore architectures", Communications of the ACM 52(4), 2009) bounds an op's time by
its arithmetic at the compute peak and by its memory traffic at the memory bandwidth. This module
gives that traffic, in bytes, for one op from descriptions of the tensors it reads and writes
(issue 29, "bytes moved and a roofline time per op"; the rules are those of
``docs/conventions.md``, section "Bytes moved"):

- an op moves the bytes of every tensor it reads plus every tensor it writes, each at its own
  dtype (:func:`op_bytes`); a broadcast (stride-0) dimension is read once
  (:attr:`TensorBytes.own_bytes`);
- a view (:data:`VIEW_OPS`) moves 0 bytes;
- an in-place op reads each input once and writes its self tensor once;
- a gather (:data:`GATHER_OPS`) reads the rows it takes, not the whole table; a scatter-add
  (:data:`SCATTER_OPS`) writes its whole destination;
- a fused kernel moves its inputs and outputs only (:func:`boundary_bytes`).

Pure functions over :class:`TensorBytes` (shape, stride, itemsize), so an engine can call them
for real or meta tensors, or from a graph that only knows shapes and dtypes. The module imports
without torch; :meth:`TensorBytes.of` imports it when called. The caller deduplicates inputs
(the dispatch engine by storage identity: a tensor passed twice, ``x * x``, is one input);
these functions count every entry they are given.
"""
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

__all__ = [
    "TensorBytes", "VIEW_OPS", "GATHER_OPS", "SCATTER_OPS", "op_bytes", "boundary_bytes",
    "arithmetic_intensity", "is_inplace",
]


@dataclass(frozen=True)
class TensorBytes:
    """What the byte rules need to know of one tensor: its shape, strides and element size.

    Attributes:
        shape: sizes per dimension (ints >= 0); ``()`` for a 0-dim tensor (one element).
        stride: strides per dimension in elements, or None when unknown (a sparse tensor, a JIT
            graph that knows only shapes): then every element is taken as distinct.
        itemsize: bytes per element (``torch.Tensor.element_size()``: 4 for fp32, 2 for
            bf16/fp16, 8 for int64).

    Raises:
        ValueError: on a negative size, a stride tuple of another length than the shape, or an
            itemsize that is not a positive int.
    """
    shape: Tuple[int, ...]
    stride: Optional[Tuple[int, ...]]
    itemsize: int

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        stride = None if self.stride is None else tuple(int(s) for s in self.stride)
        if any(s < 0 for s in shape):
            raise ValueError(f"TensorBytes: negative size in shape {shape}")
        if stride is not None and len(stride) != len(shape):
            raise ValueError(f"TensorBytes: stride {stride} does not match shape {shape}")
        if isinstance(self.itemsize, bool) or not isinstance(self.itemsize, int) \
                or self.itemsize <= 0:
            raise ValueError(f"TensorBytes: itemsize must be a positive int, got {self.itemsize!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "stride", stride)

    @classmethod
    def of(cls, t: Any) -> "TensorBytes":
        """The description of a torch tensor: ``t.shape``, ``t.stride()``, ``t.element_size()``.

        Works on meta tensors (they have shapes, strides and dtypes, no data). A tensor without
        strides (sparse layouts) gets ``stride=None``.

        Args:
            t: a ``torch.Tensor`` (any device, meta included).

        Returns:
            its :class:`TensorBytes`.

        Raises:
            TypeError: when ``t`` is not a ``torch.Tensor``.
        """
        import torch  # lazily: the module itself imports without torch

        if not isinstance(t, torch.Tensor):
            raise TypeError(f"TensorBytes.of expects a torch.Tensor, got {type(t).__name__}")
        try:
            stride: Optional[Tuple[int, ...]] = tuple(int(s) for s in t.stride())
        except (RuntimeError, NotImplementedError):  # sparse and other stride-less layouts
            stride = None
        return cls(tuple(int(s) for s in t.shape), stride, int(t.element_size()))

    @property
    def numel(self) -> int:
        """Number of elements the shape spans (broadcast dimensions at their expanded size)."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def own_bytes(self) -> int:
        """Bytes of the distinct elements the tensor addresses.

        ``(product of the sizes of the dimensions whose stride is not 0) × itemsize``: a
        broadcast dimension (stride 0, from ``expand`` or broadcasting) is counted once. 0 for an
        empty tensor (any size 0). A 0-dim tensor is one element. Strides that overlap without
        being 0 (``as_strided`` windows, ``unfold``) count each addressed position, an upper
        bound.

        Returns:
            bytes (int).
        """
        if any(s == 0 for s in self.shape):
            return 0
        n = 1
        for d, s in enumerate(self.shape):
            if self.stride is None or self.stride[d] != 0:
                n *= s
        return n * self.itemsize

    def _slice_bytes(self, skip: Optional[int]) -> int:
        """Distinct bytes of one slice along dimension ``skip`` (None: one element)."""
        n = 1
        if skip is not None:
            for d, s in enumerate(self.shape):
                if d != skip and (self.stride is None or self.stride[d] != 0):
                    n *= s
        return n * self.itemsize


def _aten(*names: str) -> frozenset:
    return frozenset("aten::" + n for n in names)


#: Ops that move 0 bytes: views (a new tensor header over the same storage) and ops that read
#: only sizes. Names as the op table spells them (``aten::`` and the overload packet's name).
#: ``reshape`` / ``flatten`` / ``reshape_as`` are views when they can be: the dispatch engine
#: never sees them (they are composite) and sees ``aten::view`` (``aten::_reshape_alias`` in
#: older releases) when the result is a view, and ``aten::clone`` + ``aten::_unsafe_view`` when it copies (the clone
#: is counted; ``_unsafe_view`` is a view of the copy). The JIT engine sees ``aten::reshape``
#: itself and counts it as a view. ``contiguous`` is not here: the dispatch engine sees
#: ``aten::clone`` when it copies and nothing when it does not.
VIEW_OPS: frozenset = _aten(
    # reshapes
    "view", "_unsafe_view", "_reshape_alias", "reshape", "reshape_as", "view_as", "flatten",
    "unflatten",
    # slicing and indexing by views
    "slice", "select", "narrow", "diagonal", "unfold", "as_strided", "as_strided_",
    "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes", "tensor_split",
    "chunk", "unsafe_chunk", "unbind", "hsplit", "vsplit", "dsplit",
    # broadcasting
    "expand", "expand_as", "broadcast_to",
    # dimension order
    "t", "t_", "permute", "transpose", "transpose_", "swapaxes", "swapaxes_", "swapdims",
    "swapdims_", "movedim", "moveaxis", "numpy_T", "mT", "mH", "matrix_H", "adjoint",
    "squeeze", "squeeze_", "unsqueeze", "unsqueeze_",
    # aliases and dtype views of complex tensors
    "alias", "detach", "detach_", "lift_fresh", "real", "imag", "view_as_real",
    "view_as_complex", "_conj", "conj", "_neg_view",
    # sizes only
    "size", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "stride", "numel",
    "dim", "storage_offset", "is_contiguous", "is_same_size", "is_floating_point",
    "is_complex",
)

#: Ops that read only the rows (slices, elements) their index takes, not the whole source:
#: ``aten::embedding(weight, indices)``: ``indices.numel`` rows of ``weight`` (a row is
#: ``weight.shape[1:]``) + the indices, writes the output; ``aten::index_select(self, dim,
#: index)``: ``index.numel`` slices of ``self`` along ``dim`` + the index, writes the output;
#: ``aten::gather(self, dim, index)``: ``index.numel`` elements of ``self`` + the index, writes
#: the output. A repeated index is read each time it appears.
GATHER_OPS: frozenset = _aten("embedding", "index_select", "gather")

#: Write-side twins of the gathers (their backward): they write the whole destination.
#: ``aten::embedding_dense_backward(grad, indices, ...)`` reads grad + indices and writes the
#: full weight gradient (the general rule). The in-place ``aten::index_add_`` /
#: ``aten::scatter_add_`` read the index and the source and write all of ``self`` once (``self``
#: is not read in full: the kernel adds into the slices the index names). The out-of-place
#: ``aten::index_add`` / ``aten::scatter_add`` follow the general rule: the kernel copies
#: ``self`` into the output (reads it in full), then adds the source.
SCATTER_OPS: frozenset = _aten("embedding_dense_backward", "index_add", "index_add_",
                               "scatter_add", "scatter_add_")


def _normalize(kind: str) -> str:
    """``aten::add_.Tensor`` -> ``aten::add_``; a bare ``view`` -> ``aten::view``. Only aten
    names lose an overload (``prim::PythonOp.SelectiveScanFn`` keeps its class name)."""
    if "::" not in kind:
        kind = "aten::" + kind
    namespace, _, name = kind.partition("::")
    if namespace == "aten":
        name = name.split(".", 1)[0]
    return f"{namespace}::{name}"


def is_inplace(kind: str) -> bool:
    """Whether an op name is an in-place op by PyTorch's naming: its name ends in one ``_``
    (``aten::add_``, ``aten::relu_``), or it is an in-place dunder (``aten::__iadd__``).
    ``aten::__and__`` is not in-place; ``aten::_softmax`` (leading ``_``) is not; a ``prim::``
    name (``prim::PythonOp.<Class>``) never is.

    Args:
        kind: an op name, with or without ``aten::`` and an overload (``aten::add_.Tensor``).

    Returns:
        True for an in-place name.
    """
    namespace, _, name = _normalize(kind).partition("::")
    if namespace == "prim":
        return False
    if name.startswith("__") and name.endswith("__"):
        return name.startswith("__i")
    return name.endswith("_") and not name.endswith("__")


def _own(t: Optional[TensorBytes]) -> int:
    return 0 if t is None else t.own_bytes


def _dim(kind: str, args: Sequence, ndim: int) -> int:
    """The first int (not bool) among ``args``, normalized to ``[0, ndim)``."""
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool):
            d = a + ndim if a < 0 else a
            if not 0 <= d < max(ndim, 1):
                raise ValueError(f"{kind}: dim {a} out of range for {ndim} dimensions")
            return d
    raise ValueError(f"{kind}: no int dim in args {tuple(args)!r}")


def _need(kind: str, inputs: Sequence[Optional[TensorBytes]], *positions: int):
    got = []
    for p in positions:
        t = inputs[p] if p < len(inputs) else None
        if t is None:
            raise ValueError(f"{kind}: tensor input {p} is missing (inputs={list(inputs)!r})")
        got.append(t)
    return got


def _gather_bytes(kind: str, inputs, outputs, args) -> int:
    written = sum(_own(t) for t in outputs)
    if kind == "aten::embedding":
        weight, indices = _need(kind, inputs, 0, 1)
        row = weight._slice_bytes(0) if weight.shape else weight.itemsize
        return indices.numel * row + indices.own_bytes + written
    source, index = _need(kind, inputs, 0, 1)
    if kind == "aten::index_select":
        d = _dim(kind, args, len(source.shape))
        per = source._slice_bytes(d) if source.shape else source.itemsize
        return index.numel * per + index.own_bytes + written
    # aten::gather
    _dim(kind, args, len(source.shape))  # validates the dim; one element per index either way
    return index.numel * source.itemsize + index.own_bytes + written


def op_bytes(kind: str, inputs: Sequence[Optional[TensorBytes]],
             outputs: Sequence[Optional[TensorBytes]], *, args: Sequence = (),
             inplace: Optional[bool] = None) -> int:
    """Bytes one op moves: what it reads plus what it writes, each tensor at its own dtype.

    Rules, first match wins (``docs/conventions.md``, "Bytes moved"; issue 29):

    1. ``kind`` in :data:`VIEW_OPS`: 0.
    2. ``kind`` in :data:`GATHER_OPS`: the rows / slices / elements the index takes + the index
       + the outputs (see :data:`GATHER_OPS`; ``args`` carries the ``dim`` of ``index_select``
       and ``gather``).
    3. ``aten::index_add_`` / ``aten::scatter_add_``: every input but ``self`` (index, source)
       + ``self`` written once.
    4. An in-place op (:func:`is_inplace`, or ``inplace=True``): every input read once (own
       bytes) + ``inputs[0]`` (``self``) written once; ``outputs`` are not counted again (they
       are ``self``).
    5. Everything else (``embedding_dense_backward``, out-of-place ``index_add``/``scatter_add``
       included): the own bytes of every input + of every output.

    A broadcast input counts its own bytes (:attr:`TensorBytes.own_bytes`), not the expanded
    size. ``None`` entries (non-tensor arguments, absent optional tensors) are skipped. The
    caller passes each distinct input once (the dispatch engine deduplicates by storage
    identity); an ``out=`` tensor belongs in ``outputs``, not ``inputs``.

    Args:
        kind: op name as the op table spells it (``aten::linear``, ``aten::add_``); an overload
            suffix (``aten::add_.Tensor``) is dropped and a bare name gets ``aten::``.
        inputs: the op's tensor inputs in schema order (``self`` first), ``None`` for
            non-tensors.
        outputs: the tensors it returns.
        args: the op's arguments (all positional ones in schema order, or only the non-tensor
            ones); the gathers that need a ``dim`` take the first ``int`` (not ``bool``) here.
        inplace: force the in-place rule on (True) or off (False); None infers it from the name.

    Returns:
        bytes moved (int, >= 0).

    Raises:
        ValueError: a gather or in-place op without the tensor inputs its rule needs, or a
            gather without a valid ``dim`` in ``args``.
    """
    kind = _normalize(kind)
    if kind in VIEW_OPS:
        return 0
    if kind in GATHER_OPS:
        return _gather_bytes(kind, inputs, outputs, args)
    if kind in ("aten::index_add_", "aten::scatter_add_"):
        (dest,) = _need(kind, inputs, 0)
        return sum(_own(t) for t in inputs[1:]) + dest.own_bytes
    if is_inplace(kind) if inplace is None else inplace:
        (dest,) = _need(kind, inputs, 0)
        return sum(_own(t) for t in inputs) + dest.own_bytes
    return sum(_own(t) for t in inputs) + sum(_own(t) for t in outputs)


def boundary_bytes(inputs: Sequence[Optional[TensorBytes]],
                   outputs: Sequence[Optional[TensorBytes]]) -> int:
    """Bytes a fused kernel moves: its inputs and its outputs, nothing in between.

    For a boundary the engines count as one op (SDPA on any backend: flash attention never
    writes the L×L scores; an autograd Function the op table counts, such as a selective scan
    or ``MambaInnerFn``; a fused norm). Each input and output at its own bytes
    (:attr:`TensorBytes.own_bytes`); ``None`` entries are skipped; the caller deduplicates.
    Source: the roofline model (Williams et al. 2009) and issue 29.

    Args:
        inputs: the boundary's tensor inputs.
        outputs: its tensor outputs.

    Returns:
        bytes moved (int, >= 0).

    Raises:
        nothing of its own (an entry that is not a TensorBytes or None raises AttributeError).
    """
    return sum(_own(t) for t in inputs) + sum(_own(t) for t in outputs)


def arithmetic_intensity(macs: int, bytes_moved: int) -> Optional[float]:
    """Arithmetic intensity in FLOPs per byte: ``2 × macs / bytes_moved``.

    FLOPs = 2 × MACs (one multiply and one add per MAC; the pack counts MACs). The x-axis of
    the roofline (Williams et al. 2009): below the device's ridge point (peak FLOP/s over
    bandwidth) an op is memory-bound.

    Args:
        macs: multiply-accumulates (int >= 0).
        bytes_moved: bytes read + written (int >= 0).

    Returns:
        FLOPs per byte (float), or None when ``bytes_moved`` is 0 (a view: no intensity).

    Raises:
        ValueError: on negative ``macs`` or ``bytes_moved``.
    """
    if macs < 0 or bytes_moved < 0:
        raise ValueError(f"arithmetic_intensity: negative count (macs={macs}, bytes={bytes_moved})")
    if bytes_moved == 0:
        return None
    return 2 * macs / bytes_moved
