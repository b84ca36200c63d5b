"""The architecture sweep: every model of ``tests/transformers_zoo.py`` (decoder LLMs dense and
MoE, encoders, encoder–decoders, vision, audio, state-space), built from a tiny config.

For each architecture, under both presets:
- no op is unknown to fvcore + pack or left uncounted by the pack;
- fvcore + pack and torchprofile + pack give identical per-operator tables;
- the total is the same with grad and under ``torch.no_grad()``;
- the pack's matmul, convolution and attention-matmul part (paper preset) is exactly half of
  ``FlopCounterMode``'s FLOPs, over the ops FlopCounterMode has a formula for;
- on the meta device the per-operator table is the same, or the model that reads its data
  gets one clear ``MetaDeviceError``;
- the dispatch engine gives the same total and family totals, or the architecture is a named
  exception below, whose reason the test checks.
"""
import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import torchprofile_ext
from fvcore_ext import MetaDeviceError, count_model, rules
from tests.helpers import assert_engines_agree
from fvcore_ext.engines.jit.reader import read_node
from fvcore_ext.engines.jit.tracing import TraceAdapter
from tests.helpers import fvcore_count
from tests.transformers_zoo import ZOO

# The pack's per-operator names for the ops FlopCounterMode has formulas for (mm, addmm, bmm,
# baddbmm, convolution, and SDPA, which the math backend runs as bmm). It has none for
# aten::_grouped_mm, so MoE experts run as grouped matmuls are left out of this comparison;
# tests/test_moe.py checks them against an explicit per-expert loop instead.
SEEN_BY_FLOP_COUNTER = {"linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "conv",
                        "scaled_dot_product_attention",
                        # its forward runs two matmuls, which are all its paper count
                        "PythonOp.YosoCumulation"}

# Work a model does and then drops: FlopCounterMode counts what runs, the trace (and so both
# tools) leaves out what nothing reads, like torch's dead-code elimination. Qwen3.5's gated
# delta rule updates its recurrent state after the last chunk and, without a cache, drops it:
# one (32 heads, 128, 64) @ (64, 128) matmul in its one linear-attention layer.
DROPPED_BY_THE_MODEL = {"qwen3_5": 32 * 128 * 64 * 128}

# Models that read tensor data in their forward, which the meta device has none of.
NEEDS_TENSOR_DATA = {"dbrx": "aten::nonzero",            # its expert loop finds hit experts
                     "longformer": "item"}                # is_global_attn = mask.any().item()


# The dispatch engine counts the ops eager PyTorch runs; the JIT engine counts the trace. Where
# the two differ, the model's Python took another path (the rest of the count is identical):
# - these architectures check torch.jit.is_tracing(): transformers' masking_utils keeps an
#   all-ones padding mask (and its additive use) only while tracing, DINOv2 interpolates its
#   position embeddings while tracing even at their own size, DBRX and the attention of BART's
#   family build their masks another way. With is_tracing() answered True the dispatch engine
#   gives the JIT count exactly;
TRACER_BRANCHES = {"roformer", "tapas", "convbert", "bart", "pegasus", "dinov2", "swin",
                   "longformer"}
# - and in these the trace also leaves out work whose result nothing reads (the tracer's
#   dead-code elimination): the Mamba-family caches filled during the forward (the cache is
#   not a tensor output), nn.MultiheadAttention's averaged weights in SigLIP's pooling head,
#   Qwen3.5's final recurrent state, and position-id and mask arithmetic that ends unused.
#   The dispatch engine counts what runs, so each family is at least the JIT one.
DEAD_IN_TRACE = {"qwen2_moe", "deberta_v2", "esm", "funnel", "siglip", "mamba", "mamba2",
                 "falcon_mamba", "jamba", "zamba2", "qwen3_5", "longformer"}


def check_dispatch_engine(name, model, inputs, names, jit):
    """The dispatch engine against the JIT engine's report ``jit`` (see TRACER_BRANCHES)."""
    def dispatch():
        return count_model(model, inputs, names, jit.preset, engine="dispatch")
    if name not in TRACER_BRANCHES | DEAD_IN_TRACE:
        assert_engines_agree(jit, dispatch())
        return
    eager = dispatch()
    tracing, torch._C._is_tracing = torch._C._is_tracing, lambda: True
    try:
        traced_path = dispatch()
    finally:
        torch._C._is_tracing = tracing
    assert eager.unsupported_ops == {} and eager.uncounted == []
    if name not in DEAD_IN_TRACE:
        assert_engines_agree(jit, traced_path)
        return
    assert traced_path.total_macs >= jit.total_macs
    for family, macs in jit.by_family.items():
        assert traced_path.by_family[family] >= macs, family


def einsums_without_a_sum(model, inputs, names) -> int:
    """The pack's MACs for einsum calls whose summed indices all have size 1 (Longformer's
    chunked mask product, ``bcxd,bcyd->bcxy`` with d = 1). They are products without
    accumulation: torch runs them as ``aten::mul``, which FlopCounterMode does not count, while
    the pack counts one MAC per product, as fvcore's einsum rule does."""
    graph, _ = torch.jit._get_trace_graph(TraceAdapter(model, names), tuple(inputs))
    total = 0
    for node in graph.nodes():
        if node.kind() != "aten::einsum":
            continue
        call = read_node(node, lazy=False)
        equation, shapes = call.args[0].replace(" ", ""), [o.shape for o in call.args[1]]
        operands, output = equation.split("->")
        sizes = {}
        for term, shape in zip(operands.split(","), shapes):
            head, _, tail = term.partition("...")     # "..." stands for the middle dims
            sizes.update(zip(head, shape))
            sizes.update(zip(tail, shape[len(shape) - len(tail):]))
        if all(sizes[index] == 1 for index in set(operands) - set(output) - {",", "."}):
            total += rules.einsum_macs(equation, shapes).core
    return total


def test_the_sweep_covers_every_kind_of_model():
    kinds = {arch.family for arch in ZOO.values()}
    assert len(ZOO) >= 40
    assert kinds == {"decoder", "moe", "encoder", "seq2seq", "vision", "audio", "state-space"}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_architecture(name):
    model, inputs, names = ZOO[name].build()
    model.eval()
    adapter = TraceAdapter(model, names)          # torchprofile takes positional inputs only
    paper = None
    for preset in ("full", "paper"):
        report = count_model(model, inputs, names, preset)
        assert report.unsupported_ops == {}, report.unsupported_ops
        assert report.uncounted == [], report.uncounted
        assert report.total_macs > 0
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_node = torchprofile_ext.profile_macs(adapter, tuple(inputs), preset,
                                                     reduction=None)
        assert torchprofile_ext.macs_by_operator(per_node) == report.by_operator
        assert fvcore_count(adapter, tuple(inputs), preset, grad=True)[0] == report.total_macs
        check_dispatch_engine(name, model, inputs, names, report)
        paper = report

    # With grad: FlopCounterMode's module tracker fails on DBRX's experts under no_grad ("Expected
    # gradient function to be set"); a forward counts the same either way.
    # On the meta device: the same per-operator table, with no arithmetic, or one clear line
    # where the model reads its data.
    if name in NEEDS_TENSOR_DATA:
        with pytest.raises(MetaDeviceError, match=NEEDS_TENSOR_DATA[name]):
            count_model(model, inputs, names, "paper", device="meta")
    else:
        assert count_model(model, inputs, names, "paper", device="meta").by_operator == \
            paper.by_operator

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**dict(zip(names, inputs)))
    seen = sum(macs for op, macs in paper.by_operator.items() if op in SEEN_BY_FLOP_COUNTER)
    if "einsum" in paper.by_operator:
        with torch.no_grad():
            seen -= einsums_without_a_sum(model, inputs, names)
    assert counter.get_total_flops() == 2 * (seen + DROPPED_BY_THE_MODEL.get(name, 0))


# Hand-derived paper counts: 12 tokens (the decoder of T5: 6), width 32, 4 heads of 8, 2 layers.
ATTENTION = 12 * 32 * (32 + 16 + 16 + 32)             # q, o full width; k, v at 2 KV heads
SDPA = 4 * 12 * 12 * (8 + 8)
LLAMA_MLP = 3 * 12 * 32 * 48                          # gate, up, down
MIXTRAL_ROUTER, MIXTRAL_EXPERTS = 12 * 32 * 4, (12 * 2) * (32 * 2 * 48 + 48 * 32)
T5_LINEAR = (4 * 12 * 32 * 32 + 2 * 12 * 32 * 48      # encoder: q, k, v, o; feed-forward
             + 4 * 6 * 32 * 32                         # decoder self-attention
             + 2 * 6 * 32 * 32 + 2 * 12 * 32 * 32      # cross-attention: q, o; k, v of 12
             + 2 * 6 * 32 * 48)                        # decoder feed-forward
T5_SDPA = 4 * 12 * 12 * 16 + 4 * 6 * 6 * 16 + 4 * 6 * 12 * 16


@pytest.mark.parametrize("name, expected", [
    ("llama", {"linear": 2 * (ATTENTION + LLAMA_MLP), "scaled_dot_product_attention": 2 * SDPA}),
    ("mixtral", {"linear": 2 * (ATTENTION + MIXTRAL_ROUTER), "_grouped_mm": 2 * MIXTRAL_EXPERTS,
                 "scaled_dot_product_attention": 2 * SDPA}),
    ("t5", {"linear": 2 * T5_LINEAR, "scaled_dot_product_attention": 2 * T5_SDPA}),
])
def test_hand_derived_paper_counts(name, expected):
    model, inputs, names = ZOO[name].build()
    assert count_model(model, inputs, names, "paper").by_operator == expected
