"""The dispatch engine: the op table's rules through PyTorch's ``FlopCounterMode``.

The third adapter next to the fvcore handles (:mod:`fvcore_ext.engines.jit.handles`) and the torchprofile
handlers (:mod:`torchprofile_ext.handlers`). It counts below the JIT tracer, at the dispatcher
(``docs/conventions.md``, "The dispatch engine"), so it needs no trace: it counts
data-dependent models, models taking dicts or ``Cache`` objects, and backward passes
("Training: forward + backward"), at about the cost of running the model.

How an op is counted:

- **Dispatch-level ops.** :class:`DispatchCounter` subclasses
  ``torch.utils.flop_counter.FlopCounterMode`` and keeps its module hierarchy
  (``ModuleTracker``). Every aten op that runs is turned into an :class:`OpCall` and counted by
  the rule of its JIT-level op (:data:`DISPATCH_ALIASES` maps the ops whose names differ:
  ``convolution`` → ``aten::_convolution``, ``native_layer_norm`` → ``aten::layer_norm``,
  ``_softmax`` → ``aten::softmax``, each SDPA backend kernel → the SDPA rule, ...). Ops whose
  name is the same at both levels use their rule directly; an op with no rule is reported by
  name as unknown.
- **Boundaries.** A few composite functions decompose into ops whose counts differ from the
  contract's rule for the whole function: ``F.linear`` on a non-contiguous input adds its bias
  with an ``add`` (the contract does not count a linear's bias); SDPA's math backend scales q
  and k instead of the scores; ``einsum``, ``rms_norm`` and a global average pool (``mean``)
  change family; the recurrent layers run ``mkldnn_rnn_layer`` (one that will be
  differentiated runs torch's own cell-by-cell path instead, whose backward ops count as they
  run). A ``TorchFunctionMode`` of the counting thread (:class:`_BoundaryMode`) sees every call
  of these functions (:data:`BOUNDARY_FUNCTIONS`) whatever name the caller bound them to, and
  counts it once by its rule; the ops it runs inside are not counted again. Under ``vmap`` the
  rule's count is multiplied by the batch the kernel really ran (:func:`vmap_batch_factor`).
  Autograd Functions the op table counts (``prim::PythonOp.<ClassName>`` in a trace) are seen
  at ``torch.autograd.Function.apply``, wrapped while any count runs and counting only in the
  thread whose count is active (a reference ``fn = MyFunction.apply`` kept from before the
  count goes around it: the Function's insides count as the aten ops they run).
- **Backward.** Ops that run inside ``loss.backward()`` count as backward MACs. The backward
  of a boundary (SDPA on any backend, an autograd Function) is counted once by its backward
  rule and its insides are not counted again; a Function without a backward rule is reported
  as uncounted, never silently 0. The backward rules of the fused Mamba kernels
  (selective scans, ``CausalConv1dFn``, ``MambaInnerFn``, Mamba-2's combined kernels, mamba-ssm's
  ``LayerNormFn``) are in :data:`fvcore_ext.ops.BACKWARD_RULES`.

Counts are MACs; ``FlopCounterMode``'s own API on a :class:`DispatchCounter`
(``get_total_flops``, ``get_table``) reports FLOPs = 2 × MACs, as PyTorch does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import types as pytypes
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch._C import _functorch
from torch.overrides import TorchFunctionMode
from torch.fx.experimental.symbolic_shapes import statically_known_true
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.module_tracker import ModuleTracker

from ..ops.diagnostics import UncountableOpError, record_uncounted, record_zero
from ..ops import BACKWARD_RULES, OP_TABLE, OpRule, table_version
from ..ops import report_name
from ..ops.opcall import OpCall, TensorArg
from ..rules import check_preset
from .symbolic_sums import SymbolicSums
from .traffic import Traffic, boundary_traffic, op_traffic

__all__ = ["BACKWARD_RULES", "BOUNDARY_FUNCTIONS", "DISPATCH_ALIASES", "DispatchCounter",
           "autograd_nodes", "counting", "vmap_batch_factor"]

# torch.overrides.redispatch_function (2.13, 2.14): call a Python torch function with its next
# torch-function check skipped once, so a mode can run its body with itself pushed again.
_redispatch = torch._C._skip_one_hop_torch_function

ArgMap = Callable[[Sequence[Any], Dict[str, Any]], List[Any]]
PYTHON_OP = "prim::PythonOp."

# The JIT scalar type names the rules read (TensorArg.dtype): a boolean mask, a complex A.
_DTYPE_NAMES = {torch.bool: "Bool", torch.float32: "Float", torch.float64: "Double",
                torch.float16: "Half", torch.bfloat16: "BFloat16", torch.int64: "Long",
                torch.int32: "Int", torch.complex64: "ComplexFloat",
                torch.complex128: "ComplexDouble", torch.complex32: "ComplexHalf"}


def _sdpa_kernel_args(mask_index: Optional[int]) -> ArgMap:
    # The backend kernels (query, key, value, ...) with the mask at mask_index or as the
    # keyword attn_mask, read as aten::scaled_dot_product_attention(q, k, v, attn_mask).
    def read(args, kwargs):
        mask = args[mask_index] if mask_index is not None and len(args) > mask_index else None
        return [args[0], args[1], args[2], kwargs.get("attn_mask", mask)]
    return read


def _batch_norm_legit_args(args, kwargs):
    # _native_batch_norm_legit has a no_stats overload (input, weight, bias, training, ...)
    if len(args) > 3 and isinstance(args[3], bool):
        return [args[0], args[1], args[2], None, None, args[3]]
    return list(args)


def _fft_args(args, kwargs):
    # _fft_r2c(self, dim, normalization, onesided), _fft_c2c(self, dim, normalization,
    # forward), _fft_c2r(self, dim, normalization, last_dim_size): the input already has the
    # transform's lengths, read as fft_fftn(self, s=None, dim).
    return [args[0], None, list(args[1])]


# Dispatch-level op → (the JIT-level op whose rule counts it, how to lay out its arguments in
# that op's order; None: the same order).
DISPATCH_ALIASES: Dict[str, Tuple[str, Optional[ArgMap]]] = {
    "aten::convolution": ("aten::_convolution", None),
    "aten::native_layer_norm": ("aten::layer_norm", None),
    "aten::native_group_norm": ("aten::group_norm",
                                lambda a, kw: [a[0], a[6], a[1], a[2]]),
    "aten::native_batch_norm": ("aten::batch_norm", None),
    "aten::_native_batch_norm_legit": ("aten::batch_norm", _batch_norm_legit_args),
    "aten::_native_batch_norm_legit_no_training": ("aten::batch_norm",
                                                   lambda a, kw: list(a[:5]) + [False]),
    "aten::_softmax": ("aten::softmax", None),
    "aten::_safe_softmax": ("aten::softmax", None),
    "aten::_log_softmax": ("aten::log_softmax", None),
    "aten::_adaptive_avg_pool2d": ("aten::adaptive_avg_pool2d", None),
    "aten::_adaptive_avg_pool3d": ("aten::adaptive_avg_pool3d", None),
    "aten::mv": ("aten::matmul", None),
    "aten::dot": ("aten::matmul", None),
    "aten::vdot": ("aten::matmul", None),
    "aten::_weight_norm_interface": ("aten::_weight_norm", None),
    "aten::_prelu_kernel": ("aten::prelu", None),
    "aten::_fft_r2c": ("aten::fft_fftn", _fft_args),
    "aten::_fft_c2c": ("aten::fft_fftn", _fft_args),
    "aten::_fft_c2r": ("aten::fft_irfftn", _fft_args),
    "aten::_scaled_dot_product_flash_attention_for_cpu": (
        "aten::scaled_dot_product_attention", _sdpa_kernel_args(None)),
    "aten::_scaled_dot_product_flash_attention": (
        "aten::scaled_dot_product_attention", _sdpa_kernel_args(None)),
    "aten::_scaled_dot_product_efficient_attention": (
        "aten::scaled_dot_product_attention", _sdpa_kernel_args(3)),
    "aten::_scaled_dot_product_cudnn_attention": (
        "aten::scaled_dot_product_attention", _sdpa_kernel_args(3)),
}


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype) or str(dtype).replace("torch.", "").capitalize()


def _read(value: Any) -> Any:
    """A runtime argument as the rules read it: a tensor as a :class:`TensorArg`, a tuple as
    a list (the trace records lists), anything else as it is."""
    if isinstance(value, torch.Tensor):
        # A symbolic size (a SymInt of a ShapeEnv's run, fvcore_ext.laws.symbolic) stays one:
        # int() would specialize it to its example value.
        return TensorArg(tuple(d if isinstance(d, torch.SymInt) else int(d) for d in value.shape),
                         _dtype_name(value.dtype))
    if isinstance(value, (list, tuple)):
        return [_read(v) for v in value]
    if isinstance(value, torch.dtype):
        return _dtype_name(value)
    return value


def _known_zero(value: Any) -> bool:
    # 0 without asking a symbolic count's ShapeEnv (bool() of a SymInt would add a guard)
    if isinstance(value, torch.SymInt):
        return statically_known_true(value == 0)
    return not value


def _outputs(out: Any) -> List[Any]:
    return [_read(o) for o in out] if isinstance(out, (list, tuple)) else [_read(out)]


def _tensors(values: Any) -> Iterator[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from _tensors(value)


def _backward_key() -> Tuple[int, int]:
    # the backward pass (graph task) running in this thread, -1 outside one
    return torch._C._current_graph_task_id(), threading.get_ident()


def autograd_nodes(tensors: Iterable[torch.Tensor],
                   within: Callable[[Any], bool] = lambda node: True) -> Iterator[Any]:
    """Every autograd node the backward of ``tensors`` can reach from their ``grad_fn``, once
    each; the walk keeps to the nodes for which ``within(node)`` is true (the others are
    neither yielded nor walked past)."""
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if within(node):
            yield node
            stack.extend(next_node for next_node, _ in node.next_functions)


# ---------------------------------------------------------------- the counter


def _hookable(values: Any) -> list:
    # Tensors autograd can hook: with grad enabled, those that require grad and have a grad_fn
    # or are leaves. A view of a parameter made under no_grad requires grad yet has neither,
    # and register_multi_grad_hook asserts on it (DBRX's expert weights).
    if not torch.is_grad_enabled():
        return []
    return [t for t in tree_flatten(values)[0] if isinstance(t, torch.Tensor)
            and t.requires_grad and (t.grad_fn is not None or t.is_leaf)]


class _ModuleTracker(ModuleTracker):
    """``ModuleTracker`` for one thread's count: its module hooks are process-wide, so a module
    another thread runs meanwhile is ignored; for the backward it hooks only the tensors
    autograd can hook. (Its backward hooks sit on this count's own tensors only, and run on
    autograd's worker threads on CUDA: they are not filtered by thread.)"""

    def __enter__(self):
        self._owner = threading.get_ident()
        return super().__enter__()

    def _fw_pre_hook(self, mod, input) -> None:
        if threading.get_ident() == self._owner:
            super()._fw_pre_hook(mod, _hookable(input))

    def _fw_post_hook(self, mod, input, output) -> None:
        if threading.get_ident() == self._owner:
            super()._fw_post_hook(mod, input, _hookable(output))


class _Counted(dict):
    """The op overloads ``FlopCounterMode`` must not decompose: those a rule counts."""

    def __init__(self, counter: "DispatchCounter"):
        super().__init__()
        self._counter = counter

    def __contains__(self, func) -> bool:
        packet = getattr(func, "_overloadpacket", None)
        return packet is not None and self._counter._entry(packet).rule is not None


@dataclasses.dataclass
class _Entry:
    rule: Optional[OpRule]
    args: Optional[ArgMap]
    name: str


class DispatchCounter(FlopCounterMode):
    """``FlopCounterMode`` counting with the pack's rules. Use :func:`counting` unless you need
    the mode object itself.

    Attributes (MACs):
        total_macs, forward_macs, backward_macs: totals; ``total = forward + backward``.
        by_operator: operator name (the JIT engine's names where the op is the same:
            ``linear``, ``conv``, ``scaled_dot_product_attention``; backward kernels as
            ``conv_backward``, ...) → MACs, forward and backward together.
        by_family: rule family (:data:`fvcore_ext.ops.FAMILIES`) → MACs.
        forward_by_family, backward_by_family: the same per pass.
        by_module: module name as ``ModuleTracker`` names it (the root module's class name,
            then attribute paths: ``ViT.blocks.0.attn``) → MACs; ``"Global"`` is everything.
        unknown_ops: op name → calls, for ops no rule counts (``aten::foo``,
            ``prim::PythonOp.MyFunction``; an unknown autograd Function's insides are counted
            as the aten ops they run).
    """

    def __init__(self, preset: str = "full", strict: bool = False):
        # SymInt MACs of a symbolic run, added up when read (engines/symbolic_sums.py)
        self._pending = SymbolicSums()
        super().__init__(display=False)
        self.preset, self.strict = check_preset(preset), strict
        self._by_operator: Counter = Counter()
        self._forward_by_family: Counter = Counter()
        self._backward_by_family: Counter = Counter()
        self._by_module: Counter = Counter()
        self.unknown_ops: Counter = Counter()
        self.traffic = Traffic()   # bytes moved, per operator, family, module and pass
        self._resolved: Dict[Any, _Entry] = {}
        self._version = table_version()
        self._suppressed = 0       # > 0 inside a boundary: its insides are not counted again
        # inside a boundary's backward nodes, per (graph task, thread): a task that raised
        # leaves its entry behind, and no later task has its id
        self._backward_suppressed: Counter = Counter()
        self._closed = False       # the block exited: the totals are final
        # FlopCounterMode decomposes every op it has no formula for before counting (with
        # torch._decomp's Python decompositions: upsample_nearest2d.vec becomes index
        # arithmetic). An op with a rule is counted as itself.
        self.flop_registry = _Counted(self)
        self.mod_tracker = _ModuleTracker()

    # ------------------------------------------------------------ totals

    def _folded(self, name: str) -> Any:
        if self._pending:
            for table, key, total in self._pending.drain():
                if table == "_flop_counts":
                    parent, op = key
                    self._flop_counts[parent][op] += 2 * total   # FlopCounterMode's unit
                else:
                    getattr(self, table)[key] += total
        return getattr(self, name)

    @property
    def by_operator(self) -> Counter:
        """Operator name → MACs, both passes."""
        return self._folded("_by_operator")

    @property
    def forward_by_family(self) -> Counter:
        """Family → MACs outside backward passes."""
        return self._folded("_forward_by_family")

    @property
    def backward_by_family(self) -> Counter:
        """Family → MACs of backward passes."""
        return self._folded("_backward_by_family")

    @property
    def by_module(self) -> Counter:
        """Module name → MACs (``"Global"``: everything)."""
        return self._folded("_by_module")

    @property
    def flop_counts(self) -> Dict[str, Dict[Any, int]]:
        """``FlopCounterMode``'s table: module → operator → FLOPs (2 × MACs)."""
        return self._folded("_flop_counts")

    @flop_counts.setter
    def flop_counts(self, value: Dict[str, Dict[Any, int]]) -> None:
        self._flop_counts = value

    @property
    def forward_macs(self) -> int:
        """MACs of everything that ran outside a backward pass."""
        return sum(self.forward_by_family.values())

    @property
    def backward_macs(self) -> int:
        """MACs of everything autograd ran in backward passes."""
        return sum(self.backward_by_family.values())

    @property
    def total_macs(self) -> int:
        """``forward_macs + backward_macs``."""
        return self.forward_macs + self.backward_macs

    @property
    def by_family(self) -> Counter:
        """Family → MACs, both passes."""
        return self.forward_by_family + self.backward_by_family

    # ------------------------------------------------------------ FlopCounterMode's hook

    def __enter__(self):
        if _active() is not None:
            raise RuntimeError("a dispatch count is already running in this thread; counts "
                               "do not nest")
        if self._closed:
            raise RuntimeError("this DispatchCounter has counted its block; make a new one")
        _state.counter = self
        self._boundary_mode = _BoundaryMode(self)
        try:
            super().__enter__()
            self._boundary_mode.__enter__()
        except BaseException:
            _state.counter = None
            raise
        self._suppressed = 0
        return self

    def __exit__(self, *exc):
        try:
            self._boundary_mode.__exit__(*exc)
            return super().__exit__(*exc)
        finally:
            self._closed = True
            _state.counter = None

    def _count_flops(self, func_packet, out, args, kwargs):
        # FlopCounterMode calls this for every op that runs (after trying to decompose it);
        # its own registry is not used.
        if self._not_counting():
            return out
        entry = self._entry(func_packet)
        macs = 0
        if entry.rule is None:
            self._unknown(entry.name)
        elif entry.rule.always_zero:
            record_zero(entry.rule.kind)
        else:
            mapped = entry.args(args, kwargs) if entry.args else args
            call = OpCall(entry.rule.kind, [_read(a) for a in mapped], _outputs(out),
                          self._scope())
            macs = entry.rule.count(call, self.preset, self.strict)
        try:
            nbytes, dtype = op_traffic(entry.name, args, kwargs, out)
        except Exception:          # a tensor the byte rules cannot read: reported, never raised
            self.traffic.unreadable[entry.name] += 1
            nbytes, dtype = 0, None
        if entry.rule is None:
            self._add(report_name(entry.name), "unknown", 0, nbytes, dtype)
        else:
            self._add(entry.rule.name, entry.rule.family, macs, nbytes, dtype)
        return out

    def _entry(self, func_packet) -> _Entry:
        if self._version != table_version():      # fvcore_ext.register_rule changed the table
            self._resolved.clear()
            self._version = table_version()
        entry = self._resolved.get(func_packet)
        if entry is None:
            name = getattr(func_packet, "_qualified_op_name", None) or \
                f"triton::{getattr(func_packet, '__name__', func_packet)}"
            kind, args = DISPATCH_ALIASES.get(name, (name, None))
            entry = self._resolved[func_packet] = _Entry(OP_TABLE.get(kind), args, name)
        return entry

    # ------------------------------------------------------------ bookkeeping

    def _not_counting(self) -> bool:
        # inside a boundary (forward, or its backward nodes in this backward pass), or after
        # the block
        return bool(self._suppressed or self._closed or (
            self._backward_suppressed and self._backward_suppressed[_backward_key()]))

    def _in_backward(self) -> bool:
        return torch._C._current_graph_task_id() != -1

    def _scope(self) -> str:
        parents = [p for p in self.mod_tracker.parents if p != "Global"]
        return max(parents, key=len) if parents else ""

    def _add(self, name: str, family: str, macs: int, nbytes: int = 0,
             dtype: Optional[str] = None) -> None:
        if self._closed or (_known_zero(macs) and not nbytes):
            return
        backward = self._in_backward()
        parents = self.mod_tracker.parents
        self.traffic.add(name, family, macs, nbytes, dtype, parents, backward)
        if isinstance(macs, torch.SymInt):     # a symbolic run: summed once, when read
            parents = set(parents)
            pending = self._pending
            pending.add("_backward_by_family" if backward else "_forward_by_family",
                        (family,), macs)
            pending.add("_by_operator", (name,), macs)
            pending.add("_by_module", parents, macs)
            pending.add("_flop_counts", [(parent, name) for parent in parents], macs)
            return
        if _known_zero(macs):
            return
        (self._backward_by_family if backward else self._forward_by_family)[family] += macs
        self._by_operator[name] += macs
        for parent in set(parents):
            self._by_module[parent] += macs
            self._flop_counts[parent][name] += 2 * macs    # FlopCounterMode's unit: FLOPs

    def _unknown(self, name: str) -> None:
        if self.strict:
            raise UncountableOpError(name, self._scope(), "no rule counts this op "
                                     "(add one with fvcore_ext.register_rule)")
        self.unknown_ops[name] += 1

    # ------------------------------------------------------------ boundaries

    @contextlib.contextmanager
    def uncounted(self) -> Iterator[None]:
        """Run the block without counting it (seeding a backward pass with a loss)."""
        self._suppressed += 1
        try:
            yield
        finally:
            self._suppressed -= 1

    def count_boundary(self, rule: OpRule, call_args: Sequence[Any], run: Callable[[], Any],
                       grad_inputs: Sequence[torch.Tensor]) -> Any:
        """Run ``run()`` with its insides not counted, count it once as ``rule`` on
        ``call_args`` (in the JIT-level op's argument order). The backward of an SDPA or an
        autograd Function is counted by its backward rule (:data:`BACKWARD_RULES`) with its
        insides not counted; a Function without one is reported uncounted."""
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in grad_inputs)
        first_node = torch._C._autograd._get_sequence_nr() if needs_grad else None
        with self.uncounted():
            out = run()
        # Under vmap the call shows per-example shapes; its kernel ran over the batch.
        batch = vmap_batch_factor(grad_inputs)
        call = OpCall(rule.kind, [_read(a) for a in call_args], _outputs(out), self._scope())
        try:
            nbytes, backward_bytes, dtype = boundary_traffic(grad_inputs, out)
        except Exception:          # a tensor the byte rules cannot read: reported, never raised
            self.traffic.unreadable[rule.kind] += 1
            nbytes, backward_bytes, dtype = 0, 0, None
        self._add(rule.name, rule.family, batch * rule.count(call, self.preset, self.strict),
                  nbytes, dtype)
        if first_node is not None and (rule.kind in BACKWARD_RULES
                                       or rule.kind.startswith(PYTHON_OP)):
            # Other boundaries (linear, einsum, ...) differentiate into matmuls and
            # elementwise ops that their forward rules count as they run.
            needs = [isinstance(a, torch.Tensor) and a.requires_grad for a in call_args]
            self._hook_backward(rule, call, out, first_node, needs, (backward_bytes, dtype))
        return out

    def _hook_backward(self, rule: OpRule, call: OpCall, out: Any, first_node: int,
                       needs: List[bool], traffic: Tuple[int, Optional[str]]) -> None:
        # The autograd nodes the boundary created (sequence numbers from first_node on) run
        # with the counter suppressed; the first of them to run counts the backward rule.
        nodes = list(autograd_nodes(
            _tensors(out if isinstance(out, (list, tuple)) else [out]),
            within=lambda node: (node._sequence_nr() >= first_node
                                 and type(node).__name__ != "AccumulateGrad")))
        if not nodes:
            return
        counted_in: set = set()   # graph tasks: a retain_graph backward run twice counts twice

        def before(*_):
            key = _backward_key()
            if key[0] not in counted_in:
                counted_in.add(key[0])
                self._count_backward(rule, call, needs, traffic)
            self._backward_suppressed[key] += 1

        def after(*_):
            key = _backward_key()
            self._backward_suppressed[key] -= 1
            if not self._backward_suppressed[key]:
                del self._backward_suppressed[key]

        for node in nodes:
            node.register_prehook(before)
            node.register_hook(after)

    def _count_backward(self, rule: OpRule, call: OpCall, needs: List[bool],
                        traffic: Tuple[int, Optional[str]]) -> None:
        backward = BACKWARD_RULES.get(rule.kind)
        name = rule.name + "_backward"
        if backward is None:
            record_uncounted(f"{rule.kind} (backward)", call.scope,
                             "no backward rule for this fused op: its backward ran uncounted",
                             self.strict)
            return
        try:
            macs = backward.read(call, needs).macs(self.preset)
        except Exception as error:   # never crash the user's backward
            record_uncounted(f"{rule.kind} (backward)", call.scope,
                             f"{type(error).__name__}: {error}", self.strict)
            return
        self._add(name, backward.family or rule.family, macs, *traffic)


# ---------------------------------------------------------------- the boundaries

def _linear_args(args, kwargs):
    return [args[0], args[1], args[2] if len(args) > 2 else kwargs.get("bias")]


def _bilinear_args(args, kwargs):
    return [args[0], args[1], args[2], args[3] if len(args) > 3 else kwargs.get("bias")]


def _sdpa_args(args, kwargs):
    names = ("query", "key", "value", "attn_mask")
    values = list(args[:4]) + [kwargs.get(n) for n in names[len(args[:4]):]]
    return values + [None] * (4 - len(values))


def _einsum_args(args, kwargs):
    if not args or not isinstance(args[0], str):
        raise TypeError("sublist einsum: counted at dispatch level")
    operands = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
    return [args[0], list(operands)]


def _rms_norm_args(args, kwargs):
    shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
    weight = args[2] if len(args) > 2 else kwargs.get("weight")
    return [args[0], list(shape) if isinstance(shape, (list, tuple)) else [shape], weight]


def _positional(args, kwargs):
    return list(args) + list(kwargs.values())


# The composite functions counted at their boundary: (function, JIT-level op, argument reader).
# The keys are the function objects a TorchFunctionMode receives, whatever name the caller bound
# them to (``F.linear``, ``from torch.nn.functional import linear``, ``torch._C._nn.linear`` are
# one object); a Python wrapper (``F.rms_norm``, ``F.adaptive_avg_pool2d``) and the builtin it
# calls (``torch.rms_norm``, ``torch._C._nn.adaptive_avg_pool2d``) are both keys, since a caller
# may call either. ``torch._VF.lstm`` is ``torch.lstm``.
_BOUNDARY_FUNCTIONS = (
    (F.linear, "aten::linear", _linear_args),
    (torch.bilinear, "aten::bilinear", _bilinear_args),
    (F.scaled_dot_product_attention, "aten::scaled_dot_product_attention", _sdpa_args),
    (F.rms_norm, "aten::rms_norm", _rms_norm_args),
    (getattr(torch, "rms_norm", None), "aten::rms_norm", _rms_norm_args),
    (F.adaptive_avg_pool1d, "aten::adaptive_avg_pool1d", _positional),
    (F.adaptive_avg_pool2d, "aten::adaptive_avg_pool2d", _positional),
    (torch._C._nn.adaptive_avg_pool2d, "aten::adaptive_avg_pool2d", _positional),
    (F.adaptive_avg_pool3d, "aten::adaptive_avg_pool3d", _positional),
    (torch._C._nn.adaptive_avg_pool3d, "aten::adaptive_avg_pool3d", _positional),
    (torch.einsum, "aten::einsum", _einsum_args),
    (torch.lstm, "aten::lstm", _positional),
    (torch.gru, "aten::gru", _positional),
    (torch.rnn_tanh, "aten::rnn_tanh", _positional),
    (torch.rnn_relu, "aten::rnn_relu", _positional),
)
BOUNDARY_FUNCTIONS: Dict[Any, Tuple[str, ArgMap]] = {
    function: (kind, read) for function, kind, read in _BOUNDARY_FUNCTIONS if function is not None}

RECURRENT_KINDS = frozenset({"aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu"})


@contextlib.contextmanager
def _native_recurrent_kernels() -> Iterator[None]:
    # torch.backends.mkldnn.flags / cudnn.flags would also reset their other flags: only
    # "enabled" is switched, as those context managers switch it.
    saved = torch._C._get_mkldnn_enabled(), torch._C._get_cudnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_cudnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(saved[0])
        torch._C._set_cudnn_enabled(saved[1])


def vmap_batch_factor(tensors: Iterable[torch.Tensor]) -> int:
    """How many times the physical work exceeds what a call's tensors show: under
    ``torch.vmap`` a function sees per-example shapes, and its kernel runs over the batch of
    every vmap level at which one of its tensors is batched. The product of those levels'
    batch sizes (nested vmaps multiply); 1 outside vmap and under ``torch.func.grad`` alone."""
    sizes: Dict[int, int] = {}
    for tensor in tensors:
        while isinstance(tensor, torch.Tensor) and _functorch.is_functorch_wrapped_tensor(tensor):
            inner = _functorch.get_unwrapped(tensor)
            if _functorch.is_batchedtensor(tensor):
                sizes[_functorch.maybe_get_level(tensor)] = \
                    int(inner.shape[_functorch.maybe_get_bdim(tensor)])
            tensor = inner
    return math.prod(sizes.values())


class _BoundaryMode(TorchFunctionMode):
    """Sees every call of a boundary function in the thread that entered it (a mode is
    per-thread), however the caller bound the function, and counts it once at its boundary.
    A Python function that is not a boundary (``F.multi_head_attention_forward``) runs with
    the mode pushed again, so the boundaries it calls are seen too."""

    def __init__(self, counter: "DispatchCounter"):
        super().__init__()
        self._counter = counter
        self._python_calls: List[Any] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        counter = self._counter
        boundary = BOUNDARY_FUNCTIONS.get(func)
        if boundary is not None and not counter._not_counting():
            kind, read_args = boundary
            rule = OP_TABLE.get(kind)
            try:
                call_args = read_args(args, kwargs) if rule is not None else None
            except Exception:      # a layout we do not read: its dispatch-level ops count
                call_args = None
            if call_args is not None:
                tensors = list(_tensors(list(args) + list(kwargs.values())))
                return counter.count_boundary(
                    rule, call_args, lambda: _run_boundary(kind, func, args, kwargs, tensors),
                    tensors)
        if type(func) is pytypes.FunctionType and (
                not self._python_calls or self._python_calls[-1] is not func):
            # Tensor methods written in Python (Tensor.unflatten, split) arrive again with the
            # same func from their super() call: that one runs as it is.
            self._python_calls.append(func)
            try:
                with self:
                    return _redispatch(func, types, args, kwargs)
            finally:
                self._python_calls.pop()
        return func(*args, **kwargs)


def _run_boundary(kind: str, func, args, kwargs, tensors: List[torch.Tensor]) -> Any:
    # A recurrent layer that will be differentiated runs torch's own cell-by-cell path, not
    # mkldnn's or cuDNN's fused kernel, so that its backward is the cell equations' backward,
    # counted as it runs (the fused kernels' backward, mkldnn_rnn_layer_backward and
    # _cudnn_rnn_backward, has no reference to count).
    if kind in RECURRENT_KINDS and torch.is_grad_enabled() and any(
            t.requires_grad for t in tensors):
        with _native_recurrent_kernels():
            return func(*args, **kwargs)
    return func(*args, **kwargs)


# ---------------------------------------------------------------- autograd Functions
# Function.apply is no torch function: no mode sees it. It is wrapped process-wide while any
# count runs (reference-counted), and the wrapper counts only in a thread whose count is active;
# other threads run the original. Function.apply: a classmethod in torch 2.13, a C++
# classmethod descriptor in 2.14; either is bound to the Function class it is called on.
_APPLY_OWNER = next(c for c in torch.autograd.Function.__mro__ if "apply" in vars(c))
_APPLY = vars(_APPLY_OWNER)["apply"]
_state = threading.local()           # .counter: the DispatchCounter active in this thread
_apply_lock = threading.Lock()
_apply_users = 0


def _active() -> Optional["DispatchCounter"]:
    return getattr(_state, "counter", None)


def _function_apply(cls, *args, **kwargs):
    return _APPLY.__get__(None, cls)(*args, **kwargs)


def _counted_apply(cls, *args, **kwargs):
    counter = _active()
    if counter is None or counter._not_counting():
        return _function_apply(cls, *args, **kwargs)
    kind = PYTHON_OP + cls.__name__
    rule = OP_TABLE.get(kind)
    if rule is None:
        # Not in the op table: reported by name, like an unknown op; the aten ops it runs
        # inside are counted as they run.
        counter._unknown(kind)
        return _function_apply(cls, *args, **kwargs)
    return counter.count_boundary(rule, list(args) + list(kwargs.values()),
                                  lambda: _function_apply(cls, *args, **kwargs),
                                  list(_tensors(list(args) + list(kwargs.values()))))


@contextlib.contextmanager
def _function_boundaries() -> Iterator[None]:
    global _apply_users
    with _apply_lock:
        if _apply_users == 0:
            torch.autograd.Function.apply = classmethod(_counted_apply)
        _apply_users += 1
    try:
        yield
    finally:
        with _apply_lock:
            _apply_users -= 1
            if _apply_users == 0:
                if _APPLY_OWNER is torch.autograd.Function:
                    torch.autograd.Function.apply = _APPLY
                else:
                    del torch.autograd.Function.apply


@contextlib.contextmanager
def counting(preset: str = "full", strict: bool = False) -> Iterator[DispatchCounter]:
    """Count every op run inside the block, forward and backward, with the pack's rules at
    PyTorch's dispatcher::

        with fvcore_ext.dispatch.counting(preset="full") as c:
            loss = model(x).sum()
            loss.backward()
        c.total_macs, c.forward_macs, c.backward_macs, c.by_operator, c.by_module, c.by_family

    Args:
        preset: "full" or "paper" (``docs/conventions.md``).
        strict: raise :class:`fvcore_ext.UncountableOpError` at the first op that no rule
            counts or that a rule cannot read, instead of reporting it.

    Yields:
        The :class:`DispatchCounter`; its counts are MACs (FLOPs = 2 × MACs) and complete on
        exit. Ops a rule could not read are warned about once and listed by
        :func:`fvcore_ext.ops.diagnostics.collect_ops`.

    Raises:
        ValueError: unknown preset.
        RuntimeError: another dispatch count is running in this thread (counts do not
            nest; counts in other threads run alongside, each seeing only its own thread).

    Semantics (docs/engines.md, "counting()"): only this thread's work is counted; every
    backward that runs inside the block counts, ``retain_graph`` ones each time; an exception
    raised and caught inside the block does not switch counting off; once the block exits the
    totals no longer change (a backward run later adds nothing).

    The boundary functions (:data:`BOUNDARY_FUNCTIONS`: ``F.linear``, ``F.bilinear``,
    ``F.scaled_dot_product_attention``, ``F.rms_norm``/``torch.rms_norm``, ``torch.einsum``,
    the adaptive average pools and the recurrent layers' ``_VF`` functions) are seen through a
    ``TorchFunctionMode`` of this thread, whatever name the caller bound them to. Autograd
    Functions are seen through ``torch.autograd.Function.apply``, wrapped while any count runs
    (a reference ``fn = MyFunction.apply`` kept from before the count goes around it).
    """
    counter = DispatchCounter(preset, strict)
    with _function_boundaries(), counter:
        yield counter
