"""The counting rules as pure shape functions: exact integers from docs/conventions.md."""
import pytest

from fvcore_ext import rules
from fvcore_ext.rules import Cost


def test_cost_presets():
    cost = Cost(core=10, elementwise=3)
    assert cost.macs("full") == 13
    assert cost.macs("paper") == 10
    with pytest.raises(ValueError, match="unknown preset"):
        cost.macs("fast")


def test_numel_is_python_int_without_overflow():
    n = rules.numel((2 ** 31, 2 ** 31, 2 ** 10))
    assert n == 2 ** 72 and type(n) is int
    assert rules.numel(()) == 1


@pytest.mark.parametrize("a, b, expected", [
    ((4, 5), (5, 6), 4 * 5 * 6),
    ((2, 3, 4, 5), (2, 3, 5, 6), 2 * 3 * 4 * 5 * 6),       # fvcore: prod(a) * b[-1]
    ((7, 4, 5), (5, 6), 7 * 4 * 5 * 6),                     # broadcast second operand
    ((4, 5), (3, 5, 6), 3 * 4 * 5 * 6),                     # broadcast first operand
    ((5,), (5,), 5),                                        # dot product
    ((4, 5), (5,), 20),                                     # matrix-vector
    ((5,), (3, 5, 6), 3 * 5 * 6),                           # vector-matrix, batched
])
def test_matmul(a, b, expected):
    assert rules.matmul_macs(a, b) == Cost(core=expected)


def test_matmul_rejects_mismatch():
    with pytest.raises(ValueError, match="inner dimensions"):
        rules.matmul_macs((4, 5), (6, 7))


def test_linear_addmm_bmm():
    assert rules.linear_macs((2, 17, 64), (192, 64)) == Cost(core=2 * 17 * 64 * 192)
    assert rules.addmm_macs((8, 16), (16, 32)) == Cost(core=8 * 16 * 32)
    assert rules.bmm_macs((3, 4, 5), (3, 5, 6)) == Cost(core=3 * 4 * 5 * 6)


def test_einsum_matches_fvcore_special_cases_and_numpy():
    # fvcore's "abc,abd->acd" special case is n*c*t*p
    assert rules.einsum_macs("abc,abd->acd", [(2, 3, 4), (2, 3, 5)]) == Cost(core=2 * 3 * 4 * 5)
    assert rules.einsum_macs("nct,ncp->ntp", [(2, 3, 4), (2, 3, 5)]) == Cost(core=2 * 3 * 4 * 5)
    # VMamba's x_proj einsum "b k d l, k c d -> b k c l": a contraction over d
    assert rules.einsum_macs("bkdl,kcd->bkcl", [(2, 4, 8, 16), (4, 6, 8)]) == \
        Cost(core=2 * 4 * 6 * 16 * 8)


def test_einsum_allocates_nothing_for_huge_shapes():
    big = 10 ** 6
    assert rules.einsum_macs("ij,jk->ik", [(big, big), (big, big)]) == Cost(core=big ** 3)


def test_conv_counts_output_or_transposed_input():
    # conv: batch * numel(weight) * output spatial
    assert rules.conv_macs((2, 3, 16, 16), (8, 3, 3, 3), (2, 8, 16, 16), False) == \
        Cost(core=2 * 8 * 3 * 9 * 256)
    # transposed conv: over the input's spatial size
    assert rules.conv_macs((2, 16, 8, 8), (16, 8, 2, 2), (2, 8, 16, 16), True) == \
        Cost(core=2 * 16 * 8 * 4 * 64)


def test_norms():
    assert rules.norm_macs((2, 17, 64), affine=True) == Cost(core=5 * 2176)
    assert rules.norm_macs((2, 17, 64), affine=False) == Cost(core=4 * 2176)
    assert rules.batch_norm_macs((2, 8, 4, 4), affine=True, training=False) == Cost(core=512)
    assert rules.batch_norm_macs((2, 8, 4, 4), affine=False, training=False) == Cost(core=256)
    assert rules.batch_norm_macs((2, 8, 4, 4), affine=True, training=True) == Cost(core=1280)


def test_elementwise_and_reductions_are_full_only():
    assert rules.elementwise_macs((2, 3, 4)) == Cost(elementwise=24)
    assert rules.reduction_macs((2, 3, 4)) == Cost(elementwise=24)
    assert rules.sum_of_terms_macs((2, 4, 8, 4, 4), (2, 8, 16)) == Cost(elementwise=3 * 2 * 8 * 16)
    with pytest.raises(ValueError):
        rules.sum_of_terms_macs((2, 8), (2, 8, 16))


@pytest.mark.parametrize("mode, per_output", [
    ("nearest", 1), ("nearest_exact", 1), ("linear", 2), ("bilinear", 4), ("bicubic", 16),
    ("trilinear", 8)])
def test_upsample_per_output_element(mode, per_output):
    assert rules.upsample_macs(mode, (1, 2, 3, 5)) == Cost(core=per_output * 30)


def test_upsample_contract_example_no_overflow():
    # docs/conventions.md: a 2000x3x10x10 bilinear x2 upsample is 9,600,000 MACs.
    assert rules.upsample_macs("bilinear", (2000, 3, 20, 20)).macs("paper") == 9_600_000


def test_sdpa():
    B, H, L, S, E, Ev = 2, 4, 17, 19, 16, 8
    scores = B * H * L * S
    assert rules.sdpa_macs((B, H, L, E), (B, H, S, E), (B, H, S, Ev)) == \
        Cost(core=scores * (E + Ev), elementwise=2 * scores)
    assert rules.sdpa_macs((B, H, L, E), (B, H, S, E), (B, H, S, Ev), "bool") == \
        Cost(core=scores * (E + Ev), elementwise=2 * scores)
    assert rules.sdpa_macs((B, H, L, E), (B, H, S, E), (B, H, S, Ev), "float") == \
        Cost(core=scores * (E + Ev), elementwise=3 * scores)


def test_sdpa_gqa_counts_query_heads():
    assert rules.sdpa_macs((2, 8, 5, 4), (2, 2, 7, 4), (2, 2, 7, 4)) == \
        rules.sdpa_macs((2, 8, 5, 4), (2, 8, 7, 4), (2, 8, 7, 4))


def test_native_mha_and_encoder_layer():
    B, L, E, H, F = 2, 10, 32, 4, 64
    proj = B * L * E * 3 * E + B * L * E * E
    attn = 2 * B * L * L * E
    scores = B * H * L * L
    assert rules.native_mha_macs((B, L, E), (B, L, E), H, False, False, False) == \
        Cost(core=proj + attn, elementwise=2 * scores)
    assert rules.native_mha_macs((B, L, E), (B, L, E), H, True, True, False) == \
        Cost(core=proj + attn, elementwise=B * L * E + 2 * scores)
    assert rules.transformer_encoder_layer_macs((B, L, E), H, F, True, True, False) == Cost(
        core=proj + attn + 2 * 5 * B * L * E + 2 * B * L * E * F,
        elementwise=2 * scores + B * L * F + 2 * B * L * E)


def test_selective_scan_issue_110():
    B, D, L, N = 2, 64, 16, 16
    assert rules.selective_scan_macs((B, D, L), (D, N), False, False) == Cost(core=9 * B * L * D * N)
    assert rules.selective_scan_macs((B, D, L), (D, N), True, True) == \
        Cost(core=9 * B * L * D * N + 2 * B * D * L)
    # complex A: N complex states are 2N real ones
    assert rules.selective_scan_macs((B, D, L), (D, N), True, False, complex_A=True) == \
        Cost(core=18 * B * L * D * N + B * D * L)


def test_causal_conv1d():
    assert rules.causal_conv1d_macs((2, 64, 16), (64, 4), silu=True) == \
        Cost(core=2 * 64 * 16 * 4, elementwise=2 * 64 * 16)


def test_mamba_inner_equals_its_reference_composition():
    B, D, L, N, R, W, d_model = 2, 64, 16, 16, 2, 4, 32
    fused = rules.mamba_inner_macs((B, 2 * D, L), (D, 1, W), (R + 2 * N, D), (D, R), (D, N),
                                   has_D=True, out_proj_weight=(d_model, D))
    reference = (rules.causal_conv1d_macs((B, D, L), (D, W), silu=True)
                 + rules.linear_macs((B * L, D), (R + 2 * N, D))
                 + rules.matmul_macs((D, R), (R, B * L))
                 + rules.selective_scan_macs((B, D, L), (D, N), True, True)
                 + rules.linear_macs((B, L, D), (d_model, D)))
    assert fused == reference
    no_out = rules.mamba_inner_macs((B, 2 * D, L), (D, 1, W), (R + 2 * N, D), (D, R), (D, N),
                                    has_D=True, out_proj_weight=None)
    assert fused.core - no_out.core == B * L * D * d_model


def test_bimamba_inner():
    B, D, L, N, R, W, d_model = 1, 8, 5, 4, 1, 4, 4
    cost = rules.bimamba_inner_macs((B, 2 * D, L), (D, 1, W), (R + 2 * N, D), (D, R),
                                    (d_model, D), (D, N), (D, N), has_D=True)
    assert cost == Cost(
        core=B * D * L * W + B * L * D * (R + 2 * N) + B * L * D * R
        + 2 * (9 * B * L * D * N + 2 * B * D * L) + B * L * D * d_model,
        elementwise=B * D * L + B * D * L)


@pytest.mark.parametrize("a, b, expected", [
    ((12, 16), (4, 16, 24), 12 * 16 * 24),          # tokens (T, K), experts (E, K, N): T·K·N
    ((4, 3, 16), (4, 16, 24), 4 * 3 * 16 * 24),     # (E, M, K) @ (E, K, N): E·M·K·N
    ((8, 16), (16, 24), 8 * 16 * 24),               # K split into groups by offs: M·K·N
    ((4, 8, 16), (16, 24), 8 * 16 * 24),            # N split into groups by offs: M·K·N
])
def test_grouped_mm(a, b, expected):
    assert rules.grouped_mm_macs(a, b) == Cost(core=expected)


@pytest.mark.parametrize("a, b, match", [
    ((12, 16), (4, 15, 24), "contraction"),
    ((4, 3, 16), (5, 16, 24), "group counts"),
    ((16,), (4, 16, 24), "2-D or 3-D"),
])
def test_grouped_mm_rejects_bad_shapes(a, b, match):
    with pytest.raises(ValueError, match=match):
        rules.grouped_mm_macs(a, b)


def test_weight_norm():
    # w = v · (g / ‖v‖): the norm reads v, the quotient is per g, the product per v
    assert rules.weight_norm_macs((32, 4, 16), (1, 1, 16)) == Cost(elementwise=2 * 2048 + 16)


def test_rnn():
    # one LSTM layer, input 8, hidden 16, 10 tokens: weights (64, 8) and (64, 16)
    assert rules.rnn_macs("lstm", 10, [(64, 8), (64, 16)], [(64, 8)]) == Cost(
        core=10 * (512 + 1024), elementwise=13 * 10 * 16)
    assert rules.rnn_macs("gru", 4, [(36, 8), (36, 12)], [(36, 8)]).elementwise == 11 * 4 * 12
    with pytest.raises(ValueError, match="unknown recurrent mode"):
        rules.rnn_macs("lstm2", 1, [], [])


@pytest.mark.parametrize("signal, dims, expected", [
    ((2, 5, 8), (1, 2), 80 * (3 + 3)),
    ((4, 1024), (-1,), 4096 * 10),
    ((3, 1), (1,), 0),                                # a length-1 transform is the identity
])
def test_fft(signal, dims, expected):
    assert rules.fft_macs(signal, dims) == Cost(core=expected)


@pytest.mark.parametrize("signal, dims, match", [((4, 8), (2,), "outside"),
                                                 ((4, -1), (1,), "not positive"),
                                                 ((4, 0), (1,), "not positive")])
def test_fft_rejects_bad_signals(signal, dims, match):
    with pytest.raises(ValueError, match=match):
        rules.fft_macs(signal, dims)


def test_triangular_solve():
    assert rules.triangular_solve_macs((5, 5), (2, 5, 8), unitriangular=True) == Cost(
        core=16 * 10)
    assert rules.triangular_solve_macs((5, 5), (2, 5, 8), unitriangular=False) == Cost(
        core=16 * 10 + 80)
    with pytest.raises(ValueError, match="square"):
        rules.triangular_solve_macs((5, 4), (5, 8), unitriangular=True)


def test_einsum_of_one_or_two_operands_is_opt_einsums_cost_exactly():
    # The one- and two-operand einsums are costed in closed form (no path search, so a
    # symbolic size stays a symbol); on 2,000 random equations, with broadcasting and
    # ellipses, the closed form is opt_einsum's optimal-path cost to the FLOP.
    import random

    import opt_einsum
    rng = random.Random(0)
    letters = "abcdef"
    checked = 0
    for _ in range(2000):
        size = {c: rng.randint(1, 6) for c in letters}
        terms = ["".join(rng.sample(letters, rng.randint(0, 4)))
                 for _ in range(rng.choice([1, 2]))]
        output = "".join(c for c in sorted(set("".join(terms))) if rng.random() < 0.5)
        equation = ",".join(terms) + "->" + output
        shapes = [tuple(size[c] for c in term) for term in terms]
        cost = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="optimal")[1]
        assert rules.einsum_macs(equation, shapes) == Cost(core=int(cost.opt_cost) // 2), \
            (equation, shapes)
        checked += 1
    for equation, shapes in [("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]),
                             ("...i,i->...", [(3, 1, 4), (4,)]), ("ii->i", [(4, 4)])]:
        cost = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="optimal")[1]
        assert rules.einsum_macs(equation, shapes) == Cost(core=int(cost.opt_cost) // 2)
    assert checked == 2000
