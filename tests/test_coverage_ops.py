"""The ops today's models run beyond the first contract (docs/conventions.md, "Every other op a real
model runs"): rotary embeddings, T5 buckets, erf-GELU, MoE routing and grouped matmuls, BLOOM's
own gelu. Exact per-operator counts in both tools, derived by hand below."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bloom.modeling_bloom import GeLUFunction

import torchprofile_ext
from fvcore_ext import count_model
from fvcore_ext.cli.census import census
from tests.helpers import fvcore_count


class RealWorldOps(nn.Module):
    """Each op the coverage issue found unsupported, at known shapes; input x (2, 8, 16)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, 16, 2).float() / 16))
        self.experts = nn.Parameter(torch.randn(4, 16, 24))

    def forward(self, x):
        pos = torch.arange(8, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]                # RoPE angles (8, 8)
        emb = torch.cat((freqs, freqs), dim=-1)
        rot = x * emb.cos() + x * emb.sin()
        buckets = (rot.abs().log1p() * rot.sign()).ceil()             # T5-style buckets
        erf_gelu = 0.5 * rot * (1 + torch.erf(rot / math.sqrt(2)))    # ESM's gelu
        steps = torch.diff(erf_gelu, dim=-1)                          # (2, 8, 15)
        norm = torch.linalg.vector_norm(steps, dim=-1)
        var = buckets.var(dim=-1)
        tokens = x.reshape(16, 16)
        expert_ids = torch.arange(16) % 4
        counts = torch.histc(tokens[:, 0], bins=4)
        onehot = F.one_hot(expert_ids, 4)
        combined = torch.zeros(4, 16).index_add_(0, expert_ids, tokens)
        offs = torch.tensor([4, 8, 12, 16], dtype=torch.int32)
        routed = F.grouped_mm(tokens, self.experts, offs=offs)       # (16, 24)
        either = (x > 0) | (x < 0)
        strided = x.as_strided((4, 4), (1, 4))
        bloom = GeLUFunction.apply(tokens.T.reshape_as(tokens))
        return norm, var, counts, onehot, combined, routed, either, strided, bloom


REAL_WORLD_PAPER = {"_grouped_mm": 16 * 16 * 24}
REAL_WORLD_FULL = dict(
    REAL_WORLD_PAPER,
    mul=8 * 8 + 2 * 256 + 256 + 2 * 256,       # angles; rot's two; buckets'; erf-gelu's two
    cos=8 * 16, sin=8 * 16,
    add=256 + 256,                             # rot; 1 + erf
    abs=256, log1p=256, sign=256, ceil=256,
    div=256, erf=256,
    diff=2 * 8 * 15,                           # the output of a difference along the last dim
    linalg_vector_norm=2 * 8 * 15,             # reductions: 1 x input numel
    var=256,
    index_add_=256,                            # 1 x source numel
    **{"PythonOp.GeLUFunction": 256},          # BLOOM's gelu counts as aten::gelu
)


@pytest.mark.parametrize("preset, expected", [("full", REAL_WORLD_FULL),
                                              ("paper", REAL_WORLD_PAPER)])
@pytest.mark.parametrize("grad", [False, True])
def test_real_world_ops_in_both_tools(preset, expected, grad):
    model, x = RealWorldOps(), torch.randn(2, 8, 16)
    assert fvcore_count(model, (x,), preset, grad) == (sum(expected.values()), expected)
    with torch.set_grad_enabled(grad):
        results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
    assert torchprofile_ext.macs_by_operator(results) == expected


def test_census_knows_every_real_world_op():
    result = census(RealWorldOps(), torch.randn(2, 8, 16))
    families = {o.op: o.family for o in result.ops}
    assert result.unknown == [] and result.uncounted == []
    assert families["aten::_grouped_mm"] == "matmul"
    assert families["prim::PythonOp.GeLUFunction"] == "elementwise"
    assert families["aten::linalg_vector_norm"] == families["aten::var"] == "reduction"
    for routing in ("aten::histc", "aten::one_hot", "aten::numpy_T", "aten::as_strided",
                    "aten::reshape_as", "aten::__or__"):
        assert families[routing] == "zero-cost", routing


class RecurrentSpectralAndSolves(nn.Module):
    """Recurrent layers, a conv with padding="same", FFTs, a triangular solve and the
    reductions the zoo census found; input x (2, 5, 8)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(8, 12)                          # (T=2, B=5)
        self.rnn = nn.RNN(8, 6, nonlinearity="relu", bias=False)
        self.conv = nn.Conv1d(8, 8, 3, padding="same")

    def forward(self, x):
        spectrum = torch.fft.rfft(x, dim=-1)                          # (2, 5, 5)
        lower = torch.tril(torch.ones(5, 5)) + torch.eye(5)
        return (self.lstm(x)[0], self.gru(x)[0], self.rnn(x)[0], self.conv(x.transpose(1, 2)),
                torch.fft.fftn(x, dim=(1, 2)).real, torch.fft.irfft(spectrum, n=8, dim=-1),
                torch.linalg.solve_triangular(lower, x, upper=False),
                torch.zeros(2, 3, 8).scatter_reduce(1, torch.zeros(2, 5, 8, dtype=torch.long),
                                                     x, "sum"),
                F.fold(x.reshape(1, 8, 10)[:, :, :9].repeat(1, 4, 1), (4, 4), kernel_size=2),
                F.logsigmoid(x), torch.linalg.norm(x, dim=-1), torch.polar(x.exp(), x))


LSTM_WEIGHTS = 2 * (64 * 8 + 64 * 16) + 2 * (64 * 32 + 64 * 16)  # 2 layers x 2 directions
RECURRENT_PAPER = {
    "lstm": 10 * LSTM_WEIGHTS,                        # 10 tokens meet every weight matrix
    "gru": 10 * (36 * 8 + 36 * 12),
    "rnn_relu": 10 * (6 * 8 + 6 * 6),
    "conv": 2 * (8 * 8 * 3) * 5,
    "fft_fftn": 80 * (3 + 3),                        # ⌈log2 5⌉ + ⌈log2 8⌉ stages
    "fft_rfft": 80 * 3, "fft_irfft": 80 * 3,        # length 8 along the last dim
    "linalg_solve_triangular": 16 * (5 * 4 // 2) + 80,    # 16 columns; divides
}
RECURRENT_FULL = dict(
    RECURRENT_PAPER,
    lstm=RECURRENT_PAPER["lstm"] + 13 * 10 * (4 * 16),
    gru=RECURRENT_PAPER["gru"] + 11 * 10 * 12,
    rnn_relu=RECURRENT_PAPER["rnn_relu"] + 1 * 10 * 6,
    scatter_reduce=80, col2im=1 * 32 * 9, log_sigmoid=80, linalg_norm=80, polar=80, exp=80,
    add=25)                                          # tril + eye


@pytest.mark.parametrize("preset, expected", [("full", RECURRENT_FULL),
                                              ("paper", RECURRENT_PAPER)])
def test_recurrent_spectral_and_solves_in_both_tools(preset, expected):
    model, x = RecurrentSpectralAndSolves(), torch.randn(2, 5, 8)
    assert fvcore_count(model, (x,), preset) == (sum(expected.values()), expected)
    with torch.no_grad():
        results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
    assert torchprofile_ext.macs_by_operator(results) == expected


class ScatterFftAndDiffEdges(nn.Module):
    """Scatters whose index is smaller than their source (only the indexed source elements are
    read), FFTs with a length of -1 ("the input's size") and diffs of order n > 1 (n passes);
    input x (2, 5, 8)."""

    def forward(self, x):
        index = torch.zeros(2, 3, 4, dtype=torch.long)                # 24 of x's 80 elements
        return (torch.zeros(2, 3, 8).scatter_add(1, index, x),
                torch.zeros(2, 3, 8).scatter_reduce(1, index, x, "mean"),
                torch.zeros(2, 3, 8).scatter_reduce(1, index, x, "amax"),
                torch.fft.fftn(x, s=(-1, 16), dim=(1, 2)).real,      # (2, 5, 16)
                torch.fft.rfft2(x, s=(-1, -1)).real,
                torch.diff(x, n=3, dim=-1),                           # passes of 7, 6, 5
                torch.diff(x, n=2, dim=1, prepend=x[:, :1]))          # L = 6: passes of 5, 4


EDGES_PAPER = {"fft_fftn": 160 * (3 + 4),            # ⌈log2 5⌉ + log2 16 on the padded signal
               "fft_rfft2": 80 * (3 + 3)}             # -1 keeps the input's 5 and 8
EDGES_FULL = dict(EDGES_PAPER, scatter_add=24, scatter_reduce=24,   # index numel, amax 0
                  diff=10 * (7 + 6 + 5) + 16 * (5 + 4))


@pytest.mark.parametrize("preset, expected", [("full", EDGES_FULL), ("paper", EDGES_PAPER)])
def test_scatter_counts_its_index_fft_minus_one_is_the_input_size_diff_counts_passes(preset, expected):
    model, x = ScatterFftAndDiffEdges(), torch.randn(2, 5, 8)
    assert fvcore_count(model, (x,), preset) == (sum(expected.values()), expected)
    results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
    assert torchprofile_ext.macs_by_operator(results) == expected


def test_packed_sequences_count_their_tokens():
    # aten::lstm.data(data, batch_sizes, hx, params, ...): 12 packed tokens, not 6 x 3
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(6, 3, 8), [6, 4, 2])

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)

        def forward(self, data):
            return self.lstm(nn.utils.rnn.PackedSequence(data, packed.batch_sizes))[0].data

    report = count_model(Packed(), [packed.data])
    assert report.uncounted == [] and report.unsupported_ops == {}
    assert report.by_operator["lstm"] == 12 * (64 * 8 + 64 * 16) + 13 * 12 * 16


class ThirdPartyFunctionsAndConvTBC(nn.Module):
    """SEW-D's XSoftmax (a masked softmax autograd Function) and fairseq's time-batch-channel
    convolution; input x (4, 2, 6) as (T, B, C)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 6, 5))          # (K, C_in, C_out)
        self.bias = nn.Parameter(torch.zeros(5))

    def forward(self, x):
        from transformers.models.sew_d.modeling_sew_d import XSoftmax
        mask = torch.ones(4, 2, 6, dtype=torch.long)
        return XSoftmax.apply(x, mask, -1), torch.conv_tbc(x, self.weight, self.bias, 1)


def test_third_party_functions_and_conv_tbc():
    model, x = ThirdPartyFunctionsAndConvTBC(), torch.randn(4, 2, 6)
    conv_tbc = (4 * 2 * 5) * 3 * 6                   # every output reads K·C_in inputs
    for preset, expected in (("full", {"conv_tbc": conv_tbc, "PythonOp.XSoftmax": 48}),
                             ("paper", {"conv_tbc": conv_tbc})):
        assert fvcore_count(model, (x,), preset) == (sum(expected.values()), expected)
        with torch.no_grad():
            results = torchprofile_ext.profile_macs(model, (x,), preset, reduction=None)
        assert torchprofile_ext.macs_by_operator(results) == expected


class InPlaceViewsAndDiag(nn.Module):
    """Issue 21, item 4: the in-place views and clamps, and CCNet's ``torch.diag``, which both
    tools reported unsupported; a linear keeps the total non-zero. Input x (2, 1, 4, 4)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        y = self.proj(x).clone()
        y.squeeze_(1)                                    # (2, 4, 4)
        y.transpose_(1, 2)
        plane = y[0].clone()
        plane.t_()
        plane.clamp_min_(0.0)
        plane.clamp_max_(1.0)
        strided = y.clone().as_strided_((2, 8), (16, 1))
        inf_diag = torch.diag(torch.full((4,), float("-inf")))    # CCNet's INF mask
        return y, plane + inf_diag, strided


@pytest.mark.parametrize("preset", ["full", "paper"])
def test_in_place_views_clamps_and_diag_cost_nothing(preset):
    from tests.helpers import count_in_both_tools
    model, x = InPlaceViewsAndDiag().eval(), torch.randn(2, 1, 4, 4)
    report = count_in_both_tools(model, [x], preset)
    linear = 2 * 4 * 4 * 4
    assert report.total_macs == linear + (16 if preset == "full" else 0)     # plane + inf_diag
    families = {o.op: o.family for o in census(model, x).ops}
    for op in ("transpose_", "t_", "squeeze_", "as_strided_", "clamp_min_", "clamp_max_",
               "diag"):
        assert families[f"aten::{op}"] == "zero-cost", op


class PReLUAndAdaptiveMaxPool(nn.Module):
    """Issue 21's mmseg sweep: CGNet's PReLU (an activation, 1 x numel under full) and SAN's
    adaptive max pooling (a pick, 0); input x (1, 4, 6, 6)."""

    def __init__(self):
        super().__init__()
        self.act = nn.PReLU(4)

    def forward(self, x):
        return self.act(x), F.adaptive_max_pool2d(x, 2), F.adaptive_max_pool1d(x.flatten(2), 3)


@pytest.mark.parametrize("preset, expected", [("full", 4 * 36), ("paper", 0)])
def test_prelu_is_an_activation_adaptive_max_pool_costs_nothing(preset, expected):
    from tests.helpers import count_in_both_tools
    report = count_in_both_tools(PReLUAndAdaptiveMaxPool().eval(), [torch.randn(1, 4, 6, 6)],
                                 preset)
    assert report.total_macs == expected
