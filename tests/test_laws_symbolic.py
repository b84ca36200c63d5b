"""Cost laws from one symbolic run (issue 30, item 5; docs/laws.md "One symbolic run"):
the dispatch engine carries SymInt shapes, the law of the total and of every family comes from
one forward, the ShapeEnv's guards are its conditions, and it falls back to counts where the
model fixes the size."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from fvcore_ext.laws import count_law
from fvcore_ext.laws.symbolic import symbolic_count, symbolic_law
# the one-layer GPT-2 and the reference ViT rebuilt at S of tests/test_laws.py
from tests.test_laws import VIT_SIZES, gpt2
from tests.test_laws import reference_vit as vit


def test_reference_vit_symbolic_law_is_the_counted_law():
    symbolic = count_law(vit, (1, 3, "S", "S"), VIT_SIZES, route="auto")
    counted = count_law(vit, (1, 3, "S", "S"), VIT_SIZES, route="counts")
    assert symbolic.route == "symbolic" and counted.route == "counts"
    assert symbolic.law.coefficients == counted.law.coefficients == (
        Fraction(101648), 0, Fraction(3549, 2), 0, Fraction(17, 256))
    assert symbolic.law.in_square and symbolic.law.degree == 4
    # run at the largest size, checked by counts at the smallest and the middle one
    assert symbolic.law.fitted_on == () and symbolic.law.checked_on == (32, 80)
    assert symbolic.law.counts == ((32, 1988368), (80, 14178448))
    assert set(symbolic.by_family) == set(counted.by_family)
    for family, law in counted.by_family.items():
        assert symbolic.by_family[family].coefficients == law.coefficients, family
    assert [r.total for r in symbolic.rows] == [r.total for r in counted.rows]
    assert symbolic.predict(128) == 47_000_848
    # the guards and the exact division S // 8 are the law's conditions, reduced: the
    # guards against a size-1 token grid (S // 8 != 1, ...) exclude S = 8 and nothing more
    assert symbolic.law.conditions == ("S >= 16", "S % 8 == 0")
    with pytest.raises(ValueError, match="does not hold at S = 100"):
        symbolic.predict(100)                 # 100 // 8 is no exact division
    with pytest.raises(ValueError, match="does not hold at S = 8"):
        symbolic.predict(8)
    assert "route: one symbolic run" in symbolic.format()
    assert symbolic.to_dict()["route"] == "symbolic"


def test_symbolic_law_alone_and_its_conditions():
    report = symbolic_law(vit, (1, 3, "S", "S"), example_size=64, sizes=[64, 128])
    assert report is not None and report.route == "symbolic"
    assert report.law.coefficients[4] == Fraction(17, 256)
    assert report.conditions == report.law.conditions


class Attention(nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)
        # explicit attention: FlopCounterMode on CPU fake tensors counts the matmuls it sees
        y = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


def _flop_counter_law(model, dim=64):
    # bare FlopCounterMode on the same symbolic input: its FLOPs as a sympy polynomial in L
    import sympy
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv
    from torch.utils.flop_counter import FlopCounterMode

    env = ShapeEnv()
    symbol = env.create_symbol(16, ConstantSource("L"), dynamic_dim=DimDynamic.DYNAMIC)
    size = env.create_symintnode(symbol, hint=16)
    with FakeTensorMode(shape_env=env):
        fake = Attention(dim)
        x = torch.zeros(1, size, dim)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fake(x)
    flops = counter.get_total_flops()
    return sympy.Poly(flops.node.expr.xreplace({symbol: sympy.Symbol("L")}),
                      sympy.Symbol("L"))


def test_attention_block_law_is_flop_counter_modes_symint_over_two():
    report = count_law(lambda L: Attention(), (1, "L", 64), [16, 32, 48, 64, 80],
                       variable="L", preset="paper", route="symbolic")
    assert report.route == "symbolic"
    flops = _flop_counter_law(Attention())
    macs = [Fraction(int(c.p), int(c.q)) / 2 for c in reversed(flops.all_coeffs())]
    assert report.law.coefficients == tuple(macs)        # 128·L² + 16,384·L
    assert report.law.coefficients == (0, 16384, 128)


def test_one_layer_gpt2_law_over_its_length():
    pytest.importorskip("transformers")
    lengths = [8, 16, 24, 32, 40, 48]
    symbolic = count_law(gpt2, None, lengths, variable="L", route="auto")
    counted = count_law(gpt2, None, lengths, variable="L", route="counts")
    assert symbolic.route == "symbolic", symbolic.route_note
    assert symbolic.law.coefficients == counted.law.coefficients == (0, 52353, 136)
    for family, law in counted.by_family.items():
        assert symbolic.by_family[family].coefficients == law.coefficients, family


class PadTo7(nn.Module):
    """Pads its sequence to a multiple of 7 (as window attention pads to its window)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        pad = (-x.shape[1]) % 7
        x = torch.cat([x, x.new_zeros(x.shape[0], pad, x.shape[2])], dim=1)
        return self.fc(x)


def test_padding_to_a_multiple_of_seven_falls_back_to_counts():
    sizes = [8, 9, 10, 11, 12, 13, 15]
    found = symbolic_count(lambda L: PadTo7(), (1, "L", 16), variable="L", example_size=8,
                           check_sizes=sizes)
    assert not found.ok and "7" in found.reason
    report = count_law(lambda L: PadTo7(), (1, "L", 16), sizes, variable="L", route="auto")
    assert report.route == "counts" and report.route_note == found.reason
    assert "route: counts (no symbolic law:" in report.format()
    with pytest.raises(ValueError, match="no symbolic law"):
        count_law(lambda L: PadTo7(), (1, "L", 16), sizes, variable="L", route="symbolic")


def test_a_model_that_fixes_the_size_falls_back():
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return self.fc(x[:, :int(x.shape[1])])       # int() of the size: specialized

    found = symbolic_count(lambda L: Fixed(), (1, "L", 16), variable="L", example_size=8)
    assert not found.ok and "fixed L" in found.reason


def test_symbolic_count_records_no_bytes_and_guards_nothing_for_them():
    found = symbolic_count(vit, (1, 3, "S", "S"), example_size=64)
    assert found.ok and not any("stride" in c for c in found.conditions)


def _reference_cases():
    from fvcore_ext.reference_models import REFERENCE_MODELS
    cases = []
    for name, ref in REFERENCE_MODELS.items():
        shape = list(ref.input_shape)
        if name == "vmamba_tiny":
            continue                      # 224 x 224 classifier: slow, and it falls back
        if len(shape) == 4:
            shape[0], shape[2], shape[3] = 1, "S", "S"
            cases.append((name, tuple(shape), "S", [32, 48, 64, 80, 96, 112]))
        elif len(shape) == 3:
            shape[0], shape[1] = 1, "L"
            cases.append((name, tuple(shape), "L", [8, 16, 24, 32, 40, 48]))
    return cases


@pytest.mark.parametrize("name,shape,letter,sizes", _reference_cases(),
                         ids=[c[0] for c in _reference_cases()])
def test_both_routes_agree_on_every_reference_model(name, shape, letter, sizes):
    from fvcore_ext.cli.law_command import sized_builder
    build = sized_builder(name, shape, letter)
    symbolic = count_law(build, shape, sizes, variable=letter, route="auto")
    if symbolic.route != "symbolic":
        assert symbolic.route_note                  # it says why it fell back
        return
    counted = count_law(build, shape, sizes, variable=letter, route="counts")
    assert [r.total for r in symbolic.rows] == [r.total for r in counted.rows]
    if hasattr(counted.law, "coefficients"):
        assert symbolic.law.coefficients == counted.law.coefficients
    for family, law in counted.by_family.items():
        if hasattr(law, "coefficients"):
            assert symbolic.by_family[family].coefficients == law.coefficients, family


def test_training_law_from_one_symbolic_run_is_the_counted_one():
    # forward + backward of attention and an MLP: the backward's matmuls carry the symbol too
    def build(L):
        return nn.Sequential(Attention(), nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))

    lengths = [8, 16, 24, 32, 40]
    symbolic = count_law(build, (1, "L", 64), lengths, variable="L", backward=True,
                         route="symbolic")
    counted = count_law(build, (1, "L", 64), lengths, variable="L", backward=True,
                        route="counts")
    assert symbolic.route == "symbolic" and symbolic.backward
    assert symbolic.law.coefficients == counted.law.coefficients
    assert [r.total for r in symbolic.rows] == [r.total for r in counted.rows]
    forward = count_law(build, (1, "L", 64), lengths, variable="L", route="symbolic")
    # per token, forward linears 64·192 + 64·64 + 64·128 + 128·64 = 32,768 MACs; backward:
    # every weight gradient (32,768) and every input gradient but the first layer's, whose
    # input needs none (32,768 − 12,288): 86,016 in all
    assert forward.by_family["matmul"].coefficients[1] == 32_768
    assert symbolic.by_family["matmul"].coefficients[1] == 32_768 + 32_768 + 20_480


def test_symbolic_macs_are_summed_when_read_and_never_twice():
    from fvcore_ext.engines import dispatch
    from fvcore_ext.laws.symbolic import _symbol_env

    env, fake_mode, symbol, L = _symbol_env(16, "L")
    seen = []
    with fake_mode:
        model = nn.Sequential(nn.Linear(16, 32), nn.Linear(32, 8))
        # read the totals between the two layers: the first layer's 512·L so far
        model[1].register_forward_pre_hook(lambda *_: seen.append(counter.forward_macs))
        with torch.no_grad(), dispatch.counting("paper") as counter:
            model(torch.zeros(1, L, 16))
    assert str(seen[0].node.expr) == f"512*{symbol}"
    assert str(counter.forward_macs.node.expr) == f"768*{symbol}"
    assert str(counter.by_module["Global"].node.expr) == f"768*{symbol}"
    assert str(counter.by_module["Sequential.1"].node.expr) == f"256*{symbol}"
    assert str(counter.get_total_flops().node.expr) == f"1536*{symbol}"   # FLOPs = 2 × MACs
    assert str(counter.by_operator["linear"].node.expr) == f"768*{symbol}"


def test_guards_read_as_conditions_on_the_size():
    import sympy
    from torch.utils._sympy.functions import FloorDiv

    from fvcore_ext.laws.conditions import read_conditions

    S = sympy.Symbol("S", integer=True, positive=True)
    guards = [sympy.Ne(FloorDiv(S, 4), 1),              # excludes S = 4, the smallest
              sympy.Ne(FloorDiv(S, 4) ** 2, 9),         # excludes S = 12
              sympy.Le(S, 20480)]                       # no reduction: stated as it is
    divisions = [sympy.Eq(sympy.Mod(S, 4), 0)]
    conditions = read_conditions(guards, divisions, 4, S, "S")
    assert conditions.texts == ("S >= 8", "S % 4 == 0", "S != 12", "S <= 20480")
    assert [n for n in range(0, 40) if conditions.holds(n)] == [8, 16, 20, 24, 28, 32, 36]
    assert not conditions.holds(20484)


@pytest.mark.parametrize("name,sizes,extra", [
    ("cnn", [32, 48, 64, 80, 96, 112], range(2, 40)),
    ("vit", [32, 48, 64, 80, 96, 112], range(8, 100, 4)),
    ("swin_stage", [32, 48, 64, 80, 96, 112], range(16, 136, 8))])
def test_symbolic_law_predicts_every_size_its_conditions_allow(name, sizes, extra):
    # The conditions are exact: at every size they allow, in and beyond the requested ones,
    # the law is the count; a size they refuse is refused by predict.
    from fvcore_ext import count_model
    from fvcore_ext.cli.law_command import sized_builder
    build = sized_builder(name, (1, 3, "S", "S"), "S")
    report = count_law(build, (1, 3, "S", "S"), sizes)
    assert report.route == "symbolic", report.route_note
    allowed = [s for s in extra if report.law.holds(s)]
    refused = [s for s in extra if not report.law.holds(s)]
    assert allowed and refused
    for size in allowed:
        counted = count_model(build(size), torch.empty(1, 3, size, size, device="meta"),
                              device="meta", engine="dispatch").total_macs
        assert report.predict(size) == counted, size
    with pytest.raises(ValueError, match="does not hold"):
        report.predict(refused[0])


class EinsumAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(32, 96)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        scores = torch.einsum("bid,bjd->bij", q, k).softmax(-1)
        return torch.einsum("bij,bjd->bid", scores, v)


def test_einsum_keeps_the_size_symbolic():
    # per batch row: qkv 32·96·L, q·kᵀ and scores·v 32·L² each, the softmax one MAC an
    # element, L² (full preset): batch 2 → 6,144·L + 130·L²
    lengths = [8, 16, 24, 32, 40]
    symbolic = count_law(lambda L: EinsumAttention(), (2, "L", 32), lengths, variable="L")
    assert symbolic.route == "symbolic", symbolic.route_note
    assert symbolic.law.coefficients == (0, 6144, 130)
    counted = count_law(lambda L: EinsumAttention(), (2, "L", 32), lengths, variable="L",
                        route="counts")
    assert counted.law.coefficients == symbolic.law.coefficients


class CountsTwiceWhenFake(nn.Module):
    """Runs its linear twice under fake tensors: a model whose symbolic run is not its count."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        y = self.fc(x)
        return self.fc(y) if type(x).__name__ == "FakeTensor" else y


def test_a_symbolic_law_the_counts_refute_is_not_kept():
    lengths = [8, 16, 24, 32, 40]
    report = count_law(lambda L: CountsTwiceWhenFake(), (1, "L", 16), lengths, variable="L")
    assert report.route == "counts"
    assert "the symbolic law MACs(L) = 512·L gives 4096 at L = 8, where the count is 2,048" \
        in report.route_note
    assert report.law.coefficients == (0, 256)
    with pytest.raises(ValueError, match="no symbolic law: the symbolic law"):
        count_law(lambda L: CountsTwiceWhenFake(), (1, "L", 16), lengths, variable="L",
                  route="symbolic")


def test_symbolic_runs_in_two_threads_and_a_count_beside_them():
    # each run has its own ShapeEnv and fake mode, each count its own thread's counter: two
    # laws and a plain count made at once are each what they are alone
    import threading

    from fvcore_ext import count_model
    results, errors = {}, []

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as error:        # reported below, with the thread's name
            errors.append((name, error))

    jobs = {
        "attention": lambda: count_law(lambda L: Attention(), (1, "L", 64), [16, 32, 48, 64, 80],
                                       variable="L", preset="paper").law.coefficients,
        "vit": lambda: count_law(vit, (1, 3, "S", "S"), VIT_SIZES).law.coefficients,
        "count": lambda: [count_model(nn.Linear(16, 24), torch.empty(5, 16), device="meta",
                                      engine="dispatch").total_macs for _ in range(20)],
    }
    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert results["attention"] == (0, 16384, 128)
    assert results["vit"] == (Fraction(101648), 0, Fraction(3549, 2), 0, Fraction(17, 256))
    assert results["count"] == [5 * 16 * 24] * 20
