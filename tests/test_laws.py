"""Cost laws from counts (:mod:`fvcore_ext.laws.count`, ``python -m fvcore_ext law``): exact laws
of reference models and transformers configs, derived by hand in the comments from the models'
source and the pack's rules (CONVENTIONS.md, "Cost laws"); "no law" for a padded model; a
held-out size that breaks a fit reported; the command's one-line errors."""
import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fvcore_ext.cli.law_command import main as law_main
from fvcore_ext.engines.analysis import count_model
from fvcore_ext.laws import Law, NoLaw
from fvcore_ext.laws.count import LawComparison, compare_laws, count_law
from fvcore_ext.reference_models import build
from fvcore_ext.reference_models.vit import SmallViT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIT_SIZES = [32, 48, 64, 80, 96, 112]


def reference_vit(size):
    """The reference ``vit`` (reference_models._vit) at img_size = size."""
    return SmallViT(img_size=size, patch=8, dim=64, depth=2, num_heads=4)


# The reference ViT (fvcore_ext/reference_models/vit.py: patch 8, dim 64, 2 blocks, 4 heads of
# 16, MLP 256, 10 classes), batch 1, image S x S: P = (S/8)² = S²/64 patches, N = P + 1 tokens.
#   convolution: the patch embedding, P positions x 64 out x (3·8·8 = 192) = 12,288·P = 192·S².
#   matmul: per block qkv 64→192, proj 64→64, MLP 64→256→64: (12,288 + 4,096 + 32,768)·N =
#     49,152·N; 2 blocks 98,304·N; the head on the class token 64·10 = 640.
#     = 98,304·S²/64 + 98,304 + 640 = 1,536·S² + 98,944.
#   attention (SDPA, rules.attention.sdpa_macs): per block 4·N·N·(16 + 16) for q·kᵀ and
#     attn·v, plus 2·4·N² for the scale and softmax (full preset): 136·N²; 2 blocks 272·N².
#     N² = S⁴/4,096 + S²/32 + 1, so 272·N² = 17/256·S⁴ + 17/2·S² + 272.
#   normalization: 5 LayerNorms (2 per block + final) of N x 64, 5 MACs per element (full):
#     1,600·N = 25·S² + 1,600.
#   elementwise: the position-embedding add and 2 residual adds per block, 5·64·N, and GELU
#     on 2 blocks of 256·N: 832·N = 13·S² + 832.
# Total: 17/256·S⁴ + (192 + 1,536 + 17/2 + 25 + 13)·S² + (98,944 + 272 + 1,600 + 832)
#      = 17/256·S⁴ + 3,549/2·S² + 101,648, a polynomial in S² (3 coefficients).
VIT_LAW = (Fraction(101648), 0, Fraction(3549, 2), 0, Fraction(17, 256))


def test_reference_vit_law_by_hand():
    report = count_law(reference_vit, (1, 3, "S", "S"), VIT_SIZES, label="vit", route="counts")
    law = report.law
    assert isinstance(law, Law) and law.degree == 4 and law.in_square
    assert law.coefficients == VIT_LAW
    assert law.fitted_on == (32, 48, 64) and law.checked_on == (80, 96, 112)
    assert str(law) == "MACs(S) = 17/256·S⁴ + 3,549/2·S² + 101,648"
    assert report.degree_text() == "degree 4 in S (degree 2 in pixels)"
    families = {name: law.coefficients for name, law in report.by_family.items()}
    assert families == {
        "convolution": (0, 0, 192),
        "matmul": (98944, 0, 1536),
        "attention": (272, 0, Fraction(17, 2), 0, Fraction(17, 256)),
        "normalization": (1600, 0, 25),
        "elementwise": (832, 0, 13)}
    # A further size, counted: S = 128 (N = 257): 17/256·128⁴ = 17·1,048,576 = 17,825,792;
    # 3,549/2·16,384 = 29,073,408; + 101,648 → 47,000,848.
    assert report.predict(128) == 47000848
    assert count_model(reference_vit(128), torch.empty(1, 3, 128, 128), device="meta",
                       engine="dispatch").total_macs == 47000848
    # S = 33 is not a multiple of the patch (the conv drops the remainder; the model is built
    # for 4 x 4 patches and counts as at S = 32): the law is not an integer there (17/256·33⁴
    # with 33⁴ odd), and predict says so rather than giving another kind of size's count.
    with pytest.raises(ValueError, match="does not give an integer at S = 33"):
        report.predict(33)
    # The default route: the same law from one symbolic run, checked by counts at S = 32, 80;
    # its conditions (S % 8 == 0, from the patch conv's S // 8) refuse S = 33 by themselves.
    symbolic = count_law(reference_vit, (1, 3, "S", "S"), VIT_SIZES, label="vit")
    assert symbolic.route == "symbolic" and symbolic.law.coefficients == VIT_LAW
    assert symbolic.law.fitted_on == () and symbolic.law.checked_on == (32, 80)
    assert {name: law.coefficients for name, law in symbolic.by_family.items()} == families
    assert symbolic.predict(128) == 47000848
    with pytest.raises(ValueError, match="does not hold at S = 33: it holds where S >= 16 "
                                         "and S % 8 == 0"):
        symbolic.predict(33)


def test_rebuilt_reference_vit_counts_as_the_reference_at_its_own_size():
    # The CLI rebuilds reference ViTs per size; at S = 32 it counts what `vit` counts.
    from fvcore_ext.cli.law_command import sized_builder
    for name in ("vit", "vit_gqa_explicit", "vit_bool_mask"):
        model, (x,) = build(name)
        rebuilt = sized_builder(name, (1, 3, "S", "S"), "S")(32)
        expected = count_model(model, x[:1], device="meta", engine="dispatch")
        got = count_model(rebuilt, torch.empty(1, 3, 32, 32), device="meta", engine="dispatch")
        assert got.total_macs == expected.total_macs and got.params == expected.params


def test_build_may_return_model_and_inputs_and_report_formats():
    report = count_law(lambda s: (reference_vit(s), torch.empty(1, 3, s, s)), None,
                       VIT_SIZES, label="vit")
    assert report.law.coefficients == VIT_LAW and report.square_name is None
    data = json.loads(report.format("json"))
    assert data["law"]["coefficients"] == [101648, 0, "3549/2", 0, "17/256"]
    assert data["rows"][0] == {"size": 32, "total": 1988368, "by_family": {
        "matmul": 1671808, "convolution": 196608, "attention": 78608, "normalization": 27200,
        "elementwise": 14144}}
    table = report.format("table")
    assert table.splitlines()[2].split() == ["32", "1,988,368", "1,671,808", "78,608",
                                             "196,608", "27,200", "14,144"]
    assert "total          MACs(S) = 17/256·S⁴ + 3,549/2·S² + 101,648, degree 4 in S " \
           "(degree 2 in S²); from one symbolic run, checked on S = 32, 80" in table
    assert table.splitlines()[-1] == "route: one symbolic run (the rows are the law's " \
                                     "values); holds where S >= 16 and S % 8 == 0"
    assert "| 112 | 32,810,128 |" in report.format("markdown")
    with pytest.raises(ValueError, match="unknown format"):
        report.format("csv")


class PaddedToWindow(nn.Module):
    """Pads the image to a multiple of 7, then a 7x7 stride-7 conv (3 → 8 channels)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 7, stride=7, bias=False)

    def forward(self, x):
        pad = -x.shape[-1] % 7
        return self.conv(F.pad(x, (0, pad, 0, pad)))


def test_padding_to_a_window_multiple_is_no_law():
    # The conv's output is ceil(S/7)² positions x 8 channels x 3·49 MACs = 1,176·ceil(S/7)²:
    # S = 7..13 → 1, 2, 2, 2, 2, 2, 2 windows a side → 1,176 then 4,704 (x6). No polynomial of
    # degree ≤ 4 through S = 7..11 (1,176, 4,704, 4,704, 4,704, 4,704) gives 4,704 at both 12
    # and 13 (it is not constant, and a non-constant polynomial of degree ≤ 4 takes a value at
    # most 4 times).
    sizes = list(range(7, 14))
    report = count_law(lambda s: PaddedToWindow(), (1, 3, "S", "S"), sizes)
    assert [row.total for row in report.rows] == [1176] + [4704] * 6
    assert isinstance(report.law, NoLaw) and not report.law.exact
    assert report.law.reason.startswith("no polynomial law of degree ≤ 4 in S reproduces")
    assert report.law.counts == tuple(zip(sizes, [1176] + [4704] * 6))
    table = report.format()
    assert "total        no law: no polynomial law" in table and "4,704" in table
    assert "MACs(S) =" not in table
    with pytest.raises(ValueError, match="no law to predict from"):
        report.predict(14)
    # On multiples of 7 the count is 1,176·(S/7)² = 24·S²: a law, of sizes of that kind.
    report = count_law(lambda s: PaddedToWindow(), (1, 3, "S", "S"), [7, 14, 21, 28, 35])
    assert report.law.coefficients == (0, 0, 24) and report.law.in_square


class LinearUntil(nn.Module):
    """64→64 linear on the L tokens; past 40 tokens, one more such linear (a branch on size)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 64, bias=False)
        self.b = nn.Linear(64, 64, bias=False)

    def forward(self, x):
        x = self.a(x)
        return self.b(x) if x.shape[1] > 40 else x


def test_a_held_out_size_that_breaks_the_fit_is_reported():
    # 4,096·L up to L = 40, 8,192·L at 48: the line through L = 8, 16 misses L = 48 (it gives
    # 196,608, the count is 393,216); no candidate checkable on 5 sizes reproduces them all.
    report = count_law(lambda L: LinearUntil(), (1, "L", 64), [8, 16, 24, 32, 48],
                       variable="L")
    assert [row.total for row in report.rows] == [32768, 65536, 98304, 131072, 393216]
    law = report.law
    assert isinstance(law, NoLaw)
    assert law.broke_at[0] == 48 and law.broke_at[1] == 393216
    assert "at L = 48, where the count is 393216" in law.reason
    assert report.to_dict()["law"]["broke_at"]["size"] == 48


def gpt2(L):
    from transformers import GPT2Config, GPT2Model
    config = GPT2Config(n_layer=1, n_embd=64, n_head=4, vocab_size=100,
                        bos_token_id=0, eos_token_id=0)
    return GPT2Model(config), torch.zeros(1, L, dtype=torch.long)


def test_gpt2_prefill_law_matches_megatron_form():
    pytest.importorskip("transformers")
    # GPT-2, 1 layer, h = 64, 4 heads of 16, no LM head (GPT2Model), batch 1, L tokens.
    # Megatron-LM (Narayanan et al. 2021, eq. 3 per layer: 24·B·s·h² + 4·B·s²·h FLOPs) in MACs:
    #   12·h²·L = 49,152·L: c_attn h→3h, c_proj h→h, c_fc h→4h, mlp c_proj 4h→h (addmm).
    #   2·h·L² = 128·L²: q·kᵀ and attn·v (SDPA; the causal mask counts the full square,
    #     rules.attention: is_causal is a boolean mask).
    # And what the pack counts besides, under the full preset:
    #   2·heads·L² = 8·L²: the scale and the softmax of the scores.
    #   LayerNorm ln_1, ln_2, ln_f: 3·5·h·L = 960·L.
    #   elementwise per token: wte + wpe add h = 64, 2 residual adds 2h = 128, GELU-tanh
    #     (NewGELUActivation: pow, 4 mul, 2 add, tanh on 4h = 256 features) 8·256 = 2,048, and
    #     position_ids = arange(L) + past_seen_tokens, 1: 2,241·L.
    # MACs(L) = (128 + 8)·L² + (49,152 + 960 + 2,241)·L = 136·L² + 52,353·L.
    report = count_law(gpt2, None, [8, 16, 24, 32, 40, 48], variable="L", label="gpt2")
    h = 64
    assert report.law.coefficients == (0, 12 * h * h + 960 + 2241, 2 * h + 8)
    assert str(report.law) == "MACs(L) = 136·L² + 52,353·L"
    assert report.by_family["matmul"].coefficients == (0, 12 * h * h)
    assert report.by_family["attention"].coefficients == (0, 0, 2 * h + 2 * 4)
    assert report.by_family["normalization"].coefficients == (0, 960)
    assert report.by_family["elementwise"].coefficients == (0, 2241)
    # A further length, counted: L = 100 → 136·10,000 + 5,235,300 = 6,595,300.
    assert report.predict(100) == 6595300
    model, ids = gpt2(100)
    assert count_model(model, ids, device="meta", engine="dispatch").total_macs == 6595300


def test_compare_laws_gives_one_table():
    comparison = compare_laws([("vit", reference_vit, (1, 3, "S", "S")),
                               ("padded", lambda s: PaddedToWindow(), (1, 3, "S", "S"))],
                              [32, 48, 64, 80, 96])
    assert isinstance(comparison, LawComparison)
    lines = comparison.format().splitlines()
    assert lines[0] == "total MACs over S"
    assert lines[1].split() == ["S", "vit", "padded"]
    # padded at 32: ceil(32/7) = 5, 1,176·25 = 29,400
    assert lines[2].split() == ["32", "1,988,368", "29,400"]
    assert lines[-4].startswith("vit     MACs(S) = 17/256·S⁴")
    # 1,176·ceil(S/7)² at 32..96: 25, 49, 100, 144, 196 windows; no law of degree ≤ 4 checked
    assert lines[-3].startswith("padded  no law:")
    # then each model's route: the ViT's symbolic run; the padding (F.pad by a computed
    # amount) has no symbolic run, so its counts were fitted
    assert lines[-2].startswith("vit     route: one symbolic run")
    assert lines[-1].startswith("padded  route: counts (no symbolic law: the symbolic run "
                                "failed")
    assert json.loads(comparison.format("json"))["models"][1]["law"]["exact"] is False


def test_count_law_argument_errors():
    with pytest.raises(ValueError, match="too few"):
        count_law(reference_vit, (1, 3, "S", "S"), [32, 48])
    with pytest.raises(ValueError, match="positive"):
        count_law(reference_vit, (1, 3, "S", "S"), [0, 32, 48])
    with pytest.raises(ValueError, match="give input_shape"):
        count_law(reference_vit, None, [32, 48, 64])
    with pytest.raises(ValueError, match="only the varied dimension"):
        count_law(reference_vit, (1, 3, "H", "W"), [32, 48, 64])


# ------------------------------------------------------------------------ the command line

def run_law(capsys, *argv):
    status = law_main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_vit_law(capsys, tmp_path):
    plot = tmp_path / "laws.png"
    status, out, err = run_law(capsys, "vit", "--input-shape", "1", "3", "S", "S", "--sizes",
                               "S=32,48,64,80,96,112", "--plot", str(plot))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "vit: MACs over S (input 1 3 S S, dispatch engine on meta, full preset)"
    assert lines[2].split()[:2] == ["32", "1,988,368"] and lines[7].split()[0] == "112"
    assert "total          MACs(S) = 17/256·S⁴ + 3,549/2·S² + 101,648, degree 4 in S (degree " \
           "2 in pixels)" in out
    assert plot.stat().st_size > 10000


def test_cli_routes(capsys):
    argv = ["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64,80,96,112"]
    status, out, err = run_law(capsys, *argv, "--route", "counts")
    assert status == 0, err
    assert "degree 4 in S (degree 2 in pixels); fitted on S = 32, 48, 64, checked on 80, 96, " \
           "112" in out and "route:" not in out
    status, symbolic, err = run_law(capsys, *argv)
    assert status == 0, err
    assert "from one symbolic run, checked on S = 32, 80" in symbolic
    assert symbolic.splitlines()[:9] == out.splitlines()[:9]        # the same rows
    assert symbolic.splitlines()[-1] == "route: one symbolic run (the rows are the law's " \
                                        "values); holds where S >= 16 and S % 8 == 0"
    status, out, err = run_law(capsys, "vit_float_mask", *argv[1:])
    assert status == 0, err
    assert out.splitlines()[-1].startswith("route: counts (no symbolic law: the run fixed S: "
                                           "its guard ")


def test_cli_several_models_one_table(capsys):
    status, out, err = run_law(capsys, "vit", "cnn", "swin_stage", "--input-shape", "1,3,S,S",
                               "--sizes", "S=32,48,64,80,96", "--format", "json")
    assert status == 0, err
    models = json.loads(out)["models"]
    assert [m["model"] for m in models] == ["vit", "cnn", "swin_stage"]
    assert models[0]["law"]["coefficients"] == [101648, 0, "3549/2", 0, "17/256"]
    # swin_stage is rebuilt at img_size = S (its masks are built for one resolution): linear
    # in pixels with a fixed window.
    assert models[2]["law"]["exact"] and models[2]["law"]["degree"] == 2


def test_cli_callable_with_size_keyword(capsys):
    status, out, err = run_law(capsys, "fvcore_ext.reference_models.vit:SmallViT",
                               "--size-keyword", "img_size", "--input-shape", "1 3 S S",
                               "--sizes", "S=32,48,64,80,96", "--format", "json")
    assert status == 0, err
    # SmallViT's defaults are the reference vit's: the same law
    assert json.loads(out)["law"]["coefficients"] == [101648, 0, "3549/2", 0, "17/256"]


@pytest.mark.parametrize("argv, message", [
    (["vit", "--input-shape", "1", "3", "S", "S"], "--sizes is missing"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48"], "too few"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,0,64"], "not positive"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,-16,64"], "not positive"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "L=32,48,64"],
     "'L' is not a letter of --input-shape"),
    (["vit", "--input-shape", "1", "3", "32", "32", "--sizes", "S=32,48,64"],
     "'S' is not a letter of --input-shape"),
    (["no_such_model", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64"],
     "unknown model 'no_such_model'"),
    (["vit", "--sizes", "S=32,48,64"], "law needs --input-shape"),
    (["vit", "--input-shape", "1", "3", "H", "W", "--sizes", "H=32,48,64"], "one letter"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64", "--plot", "."],
     "is a directory"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64", "--plot", "x.txt"],
     "unknown extension"),
    (["fvcore_ext.reference_models.cnn:SmallCNN", "--size-keyword", "img_size",
      "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64"],
     "takes no argument 'img_size'"),
    # SmallViT takes **attn_kwargs, so the call itself is what fails, at the first size
    (["fvcore_ext.reference_models.vit:SmallViT", "--size-keyword", "side", "--input-shape",
      "1", "3", "S", "S", "--sizes", "S=32,48,64"],
     "at S = 32 (input 1 3 S S): TypeError: Attention.__init__() got an unexpected keyword"),
    # not rebuilt (the letter is one side only): the 32 x 32 ViT's position embedding has 17
    # rows, and at S = 48 there are 6·4 + 1 = 25 tokens
    (["vit", "--input-shape", "1", "3", "S", "32", "--sizes", "S=32,48,64"],
     "cannot count 'vit' at S = 48 (input 1 3 S 32): RuntimeError"),
    # its N x N mask is drawn with a generator, which takes no symbolic size
    (["vit_float_mask", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64",
      "--route", "symbolic"], "vit_float_mask: no symbolic law: the run fixed S"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    status, out, err = run_law(capsys, *argv)
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert out == ""


def test_cli_no_law_prints_counts(capsys):
    status, out, err = run_law(capsys, "tests.test_laws:PaddedToWindow", "--input-shape",
                               "1", "3", "S", "S", "--sizes", "S=7,8,9,10,11,12,13")
    assert status == 0, err
    assert "no law: no polynomial law of degree ≤ 4 in S reproduces these counts" in out
    assert out.splitlines()[2].split() == ["7", "1,176", "1,176"] and "MACs(S) =" not in out


def test_json_error_and_module_entry_point():
    # python -m fvcore_ext law routes to the law command; --format json errors are JSON too
    result = subprocess.run([sys.executable, "-m", "fvcore_ext", "law", "vit", "--input-shape",
                             "1", "3", "S", "S", "--format", "json"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert json.loads(result.stdout)["status"] == 2
    assert result.stderr.startswith("error: --input-shape names 'S' but --sizes is missing")


# ------------------------------------------------- the plain MODEL command takes the law options

def test_plain_command_with_sizes_prints_a_law_that_predicts_a_further_size(capsys):
    from fvcore_ext.cli.main import main
    status = main(["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48,64,80,96,112",
                   "--format", "json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    data = json.loads(out)
    assert data["law"]["coefficients"] == [101648, 0, "3549/2", 0, "17/256"]
    law = Law(coefficients=tuple(Fraction(c) for c in data["law"]["coefficients"]), degree=4,
              variable="S", fitted_on=(32, 48, 64), checked_on=(80, 96, 112), counts=(),
              in_square=True)
    # a size the law never saw: the reference ViT rebuilt at 128, counted
    from fvcore_ext.cli.law_command import sized_builder
    counted = count_model(sized_builder("vit", (1, 3, "S", "S"), "S")(128),
                          torch.empty(1, 3, 128, 128), device="meta", engine="dispatch")
    assert law.predict(128) == counted.total_macs == 47_000_848


def test_plain_command_table_and_defaults(capsys):
    from fvcore_ext.cli.main import main
    # no MODEL: the default (vit); a letter in a comma shape is enough to ask for the law
    status = main(["--input-shape", "1,3,S,S", "--sizes", "S=32,48,64,80,96"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.startswith("vit: MACs over S (input 1 3 S S")
    assert "total          MACs(S) = 17/256·S⁴ + 3,549/2·S² + 101,648" in out


@pytest.mark.parametrize("argv, message", [
    (["vit", "--input-shape", "1", "3", "S", "S"], "--sizes is missing"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,0,64"], "not positive"),
    (["vit", "--input-shape", "1", "3", "S", "S", "--sizes", "S=32,48"], "too few"),
    (["vit", "--input-shape", "1", "3", "32", "32", "--sizes", "S=32,48,64"],
     "'S' is not a letter of --input-shape"),
])
def test_plain_command_law_errors_are_one_line(capsys, argv, message):
    from fvcore_ext.cli.main import main
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_asks_for_law():
    from fvcore_ext.cli.law_command import asks_for_law
    assert asks_for_law(["vit", "--input-shape", "1", "3", "S", "S"])
    assert asks_for_law(["vit", "--input-shape=1,3,S,S"])
    assert asks_for_law(["vit", "--sizes", "S=32,48,64"])
    assert not asks_for_law(["vit", "--input-shape", "1", "3", "32", "32", "--depth", "3"])
    assert not asks_for_law(["cnn", "--input-shape", "1x3x16x16", "--input-name", "x"])
    # the value of --input-name is a name, not a shape
    assert not asks_for_law(["m:f", "--input-shape", "2", "4", "--input-name", "pixels"])


def test_plain_help_lists_the_law_options_once(capsys):
    from fvcore_ext.cli.law_command import _parser as law_parser
    from fvcore_ext.cli.main import _parser, main
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "cost laws:" in out and "--sizes S=N,N,..." in out
    assert "--size-keyword img_size calls it" in " ".join(out.split())
    # one parser of truth: the plain command's parser does not define the law's options
    plain = {o for a in _parser(False)._actions for o in a.option_strings}
    assert not plain & {"--sizes", "--size-keyword", "--held-out", "--max-degree"}
    assert {"--sizes", "--size-keyword"} <= {o for a in law_parser()._actions
                                            for o in a.option_strings}


def test_cli_progress_of_both_routes_on_a_terminal(capsys, monkeypatch):
    # the symbolic route is three steps (the run, two check counts); a model that falls back
    # starts a bar of its own for the counts at every size
    from tests.test_cli import TTY
    tty = TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    status, out, _ = run_law(capsys, "vit", "vit_float_mask", "--input-shape", "1", "3", "S",
                             "S", "--sizes", "S=32,48,64,80,96")
    assert status == 0
    assert "vit: " in tty.text and "/3 " in tty.text
    assert "vit_float_mask: " in tty.text and "/5 " in tty.text, tty.text


def test_plot_series_one_model_by_family_several_by_model(tmp_path):
    from fvcore_ext.laws.plot import _series, plot_laws
    vit = count_law(reference_vit, (1, 3, "S", "S"), VIT_SIZES, label="vit")
    cnn = count_law(lambda s: build("cnn")[0], (1, 3, "S", "S"), VIT_SIZES, label="cnn")
    one = _series([vit])
    assert [label for label, *_ in one] == ["total"] + vit.families
    assert one[2][2] is vit.by_family[vit.families[1]]
    assert [label for label, *_ in _series([vit, cnn])] == ["vit", "cnn"]
    import matplotlib
    backend = matplotlib.get_backend()
    plot_laws([vit], str(tmp_path / "one.png"))
    assert (tmp_path / "one.png").stat().st_size > 10000
    # drawn on its own canvas: matplotlib's backend and pyplot's figures are untouched
    assert matplotlib.get_backend() == backend
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []
