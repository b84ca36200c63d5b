"""Cost laws (:mod:`fvcore_ext.laws.fit`): exact polynomial fits, checked on held-out sizes, and
a NoLaw (never a least-squares guess) when the counts are not polynomial or too few. Every
expected value below is derived by hand in the comments."""
import json
from fractions import Fraction

import pytest

from fvcore_ext.laws import Law, NoLaw, degree_text, fit_law, format_law


def law_of(*coefficients, variable="S"):
    """A Law built directly (index = power), to test the formatting alone."""
    return Law(coefficients=tuple(Fraction(c) for c in coefficients),
               degree=len(coefficients) - 1, variable=variable, fitted_on=(), checked_on=(),
               counts=())


def test_quadratic_with_rational_coefficients():
    # (3S² + S)/2 at S = 1..6: (3+1)/2 = 2, (12+2)/2 = 7, (27+3)/2 = 15, (48+4)/2 = 26,
    # (75+5)/2 = 40, (108+6)/2 = 57. Given out of order: the fit sorts by size.
    law = fit_law([4, 1, 6, 2, 5, 3], [26, 2, 57, 7, 40, 15])
    # Degree 0 (the constant 2) misses S = 2; degree 1 through (1, 2), (2, 7) is 5S − 3, which
    # gives 12 at S = 3, not 15; degree 2 through S = 1, 2, 3 is (3S² + S)/2 and reproduces
    # S = 4, 5, 6.
    assert law.exact and isinstance(law, Law)
    assert law.degree == 2
    assert law.coefficients == (Fraction(0), Fraction(1, 2), Fraction(3, 2))
    assert law.fitted_on == (1, 2, 3) and law.checked_on == (4, 5, 6)
    assert law.counts == ((1, 2), (2, 7), (3, 15), (4, 26), (5, 40), (6, 57))
    assert format_law(law) == "MACs(S) = 3/2·S² + 1/2·S"
    assert str(law) == format_law(law)
    # S = 10: (300 + 10)/2 = 155; S = 100: (30000 + 100)/2 = 15050.
    assert law.predict(10) == 155 and type(law.predict(10)) is int
    assert law.predict(100) == 15050


def test_vit_like_law_over_six_sizes_is_a_polynomial_in_s_squared():
    # ViT at image side S: tokens ∝ S², so linear layers ∝ S² and attention ∝ S⁴.
    # 5S⁴ + 1234S² at S = 1..6: 5+1234 = 1239, 80+4936 = 5016, 405+11106 = 11511,
    # 1280+19744 = 21024, 3125+30850 = 33975, 6480+44424 = 50904.
    sizes, counts = [1, 2, 3, 4, 5, 6], [1239, 5016, 11511, 21024, 33975, 50904]
    # As a polynomial in x = S², 5x² + 1234x has 3 coefficients: fitted through S = 1, 2, 3
    # (x = 1, 4, 9), checked on the other 3. Tried before it (fewer coefficients, or as many
    # and a lower degree): constant (misses S = 2), 1239 + 3777(S − 1) (gives 8793 at S = 3),
    # a + b·S² through (1, 1239), (4, 5016): b = 3777/3 = 1259, a = −20, gives 11311 at S = 3;
    # the quadratic through S = 1, 2, 3: second difference 11511 − 2·5016 + 1239 = 2718, so
    # 1359S² − 300S + 180, which gives 20724 at S = 4, not 21024.
    law = fit_law(sizes, counts)
    assert law.degree == 4 and law.in_square and law.free_coefficients == 3
    assert law.coefficients == (0, 0, 1234, 0, 5)
    assert law.fitted_on == (1, 2, 3) and law.checked_on == (4, 5, 6)
    assert format_law(law) == "MACs(S) = 5·S⁴ + 1,234·S²"
    assert degree_text(law) == "degree 4 in S (degree 2 in S²)"
    assert degree_text(law, "pixels") == "degree 4 in S (degree 2 in pixels)"
    # The general quartic through S = 1..5, checked on S = 6 alone, gives the same polynomial.
    general = fit_law(sizes, counts, held_out=1)
    assert general.coefficients == law.coefficients and general.in_square
    # With held_out=4, the 3-coefficient law in S² leaves 3 to check, too few; the checkable
    # candidates are constant, linear and a + b·S² (2 coefficients + 4 held out = 6 sizes).
    # The line and a + b·S² both first miss S = 3 (8793 and 11311, above): the reported miss
    # is the one that held the longest, the first tried of a tie (the line).
    no_law = fit_law(sizes, counts, held_out=4)
    assert isinstance(no_law, NoLaw) and not no_law.exact
    assert no_law.broke_at == (3, 11511, Fraction(8793))
    assert no_law.reason == (
        "too few sizes to check degree ≤ 4 in S: 6 sizes check degree ≤ 1 at most, or degree "
        "≤ 2 with even powers only (in S²) (4 held out; degree 4 needs 9), and no such "
        "polynomial reproduces the counts: the degree-1 fit through S = 1, 2 predicts "
        "8793 at S = 3, where the count is 11511")
    assert str(no_law) == no_law.reason


def test_odd_powers_need_the_general_polynomial():
    # 5S⁴ + S³ at S = 1..7: 6, 88, 432, 1344, 3250, 6696, 12348. Every law in S² with 3
    # coefficients misses; the general quartic through S = 1..5 is checked on S = 6, 7.
    counts = [5 * s ** 4 + s ** 3 for s in range(1, 8)]
    assert counts == [6, 88, 432, 1344, 3250, 6696, 12348]
    law = fit_law(range(1, 8), counts)
    assert law.degree == 4 and not law.in_square and law.free_coefficients == 5
    assert law.coefficients == (0, 0, 0, 1, 5)
    assert law.fitted_on == (1, 2, 3, 4, 5) and law.checked_on == (6, 7)
    assert degree_text(law, "pixels") == "degree 4 in S"
    # With 6 sizes the quartic cannot be checked: the cubic through S = 1..4 is tried last
    # and misses S = 5 by the 4th divided difference times (5−1)(5−2)(5−3)(5−4): 5·24 = 120.
    no_law = fit_law(range(1, 7), counts[:6])
    assert no_law.broke_at == (5, 3250, Fraction(3130))
    assert no_law.reason.startswith(
        "too few sizes to check degree ≤ 4 in S: 6 sizes check degree ≤ 3 at most, or degree "
        "≤ 4 with even powers only (in S²) (2 held out; degree 4 needs 7)")


def test_fewest_coefficients_win_over_lowest_degree():
    # 3S² + 2 at S = 1..5 (5, 14, 29, 50, 77): a + b·S² (2 coefficients, degree 2) is found
    # before the general quadratic (3 coefficients); the line through (1, 5), (2, 14) gives
    # 23 at S = 3, so it is not a law.
    law = fit_law(range(1, 6), [3 * s * s + 2 for s in range(1, 6)])
    assert law.in_square and law.degree == 2 and law.coefficients == (2, 0, 3)
    assert law.fitted_on == (1, 2) and law.checked_on == (3, 4, 5)
    # max_degree=1 rules the S² candidates out: the line misses S = 3 and there is no law.
    no_law = fit_law(range(1, 6), [3 * s * s + 2 for s in range(1, 6)], max_degree=1)
    assert no_law.broke_at == (3, 29, Fraction(23))


def test_quartic_with_constant_over_seven_uneven_sizes():
    # 5S⁴ + 1234S² + 7 (a head that does not grow with S):
    # S=2: 80 + 4936 + 7 = 5023          S=3: 405 + 11106 + 7 = 11518
    # S=5: 3125 + 30850 + 7 = 33982      S=7: 12005 + 60466 + 7 = 72478
    # S=11: 73205 + 149314 + 7 = 222526  S=13: 142805 + 208546 + 7 = 351358
    # S=17: 417605 + 356626 + 7 = 774238
    law = fit_law([17, 2, 13, 3, 11, 5, 7],
                  [774238, 5023, 351358, 11518, 222526, 33982, 72478])
    # Even powers only: 3 coefficients in S², fitted through the 3 smallest sizes.
    assert law.degree == 4 and law.coefficients == (7, 0, 1234, 0, 5) and law.in_square
    assert law.fitted_on == (2, 3, 5) and law.checked_on == (7, 11, 13, 17)
    assert format_law(law) == "MACs(S) = 5·S⁴ + 1,234·S² + 7"
    # S = 19: 19⁴ = 361² = 130321, 5·130321 = 651605; 1234·361 = 445474; + 7 → 1,097,086.
    assert law.predict(19) == 1097086


def test_degree_0_laws():
    # A count that does not depend on S: the constant through S = 8 holds at 16 and 32.
    law = fit_law([8, 16, 32], [1000, 1000, 1000])
    assert law.degree == 0 and law.coefficients == (1000,)
    assert law.fitted_on == (8,) and law.checked_on == (16, 32)
    assert format_law(law) == "MACs(S) = 1,000"
    assert law.predict(1024) == 1000
    zero = fit_law([1, 2, 3], [0, 0, 0])
    assert zero.degree == 0 and zero.coefficients == (0,)
    assert format_law(zero) == "MACs(S) = 0"


def test_degree_1_law_with_a_negative_constant():
    # 12N − 5 at N = 1..4: 7, 19, 31, 43. The line through (1, 7), (2, 19) has slope 12 and
    # intercept 7 − 12 = −5; it gives 31 at 3 and 43 at 4.
    law = fit_law([1, 2, 3, 4], [7, 19, 31, 43], variable="N")
    assert law.degree == 1 and law.coefficients == (-5, 12)
    assert law.fitted_on == (1, 2) and law.checked_on == (3, 4)
    assert format_law(law) == "MACs(N) = 12·N − 5"
    assert format_law(law, unit="FLOPs") == "FLOPs(N) = 12·N − 5"
    assert law.predict(1000) == 11995                  # 12000 − 5


def test_held_out_sizes_are_recorded_in_checked_on():
    # S² at S = 1..7 with 3 held out: a + b·S² fits through 1, 2 and 5 sizes remain.
    law = fit_law(range(1, 8), [s * s for s in range(1, 8)], held_out=3)
    assert law.coefficients == (0, 0, 1) and law.in_square
    assert law.fitted_on == (1, 2) and law.checked_on == (3, 4, 5, 6, 7)
    # S³ (odd): the general cubic through 1..4, checked on 5, 6, 7.
    cubic = fit_law(range(1, 8), [s ** 3 for s in range(1, 8)], held_out=3)
    assert cubic.coefficients == (0, 0, 0, 1) and not cubic.in_square
    assert cubic.fitted_on == (1, 2, 3, 4) and cubic.checked_on == (5, 6, 7)
    assert format_law(law) == "MACs(S) = S²"


def test_exponential_counts_are_no_law():
    # 2**S at S = 1..8. Every forward difference of 2**S at S = 1 is 2 (Δ2**S = 2**S), so the
    # degree-4 Newton fit through S = 1..5 is Σ_{k≤4} 2·C(S−1, k); at S = 6 it gives
    # 2·(1 + 5 + 10 + 10 + 5) = 62, where the count is 64. 8 sizes check degree 4 (8 ≥ 4+1+2).
    no_law = fit_law(range(1, 9), [2 ** s for s in range(1, 9)])
    assert isinstance(no_law, NoLaw) and not no_law.exact
    assert no_law.broke_at == (6, 64, Fraction(62))
    assert no_law.reason == (
        "no polynomial law of degree ≤ 4 in S reproduces these counts: the degree-4 fit "
        "through S = 1, 2, 3, 4, 5 predicts 62 at S = 6, where the count is 64")


def test_padding_counts_are_no_law():
    # (ceil(S/7)·7)² at S = 1..9: 49 for S = 1..7, then 14² = 196 at 8 and 9. The degree-4
    # fit through S = 1..5 (all 49) is the constant 49, which misses S = 8.
    counts = [(-(-s // 7) * 7) ** 2 for s in range(1, 10)]
    assert counts == [49] * 7 + [196, 196]
    no_law = fit_law(range(1, 10), counts)
    assert no_law.broke_at == (8, 196, Fraction(49))
    assert no_law.reason.startswith("no polynomial law of degree ≤ 4 in S reproduces")


def test_too_few_sizes():
    # 2 sizes with 2 held out: not even a degree-0 law (1 + 2 = 3 sizes) can be checked.
    no_law = fit_law([1, 2], [2, 7])
    assert no_law.broke_at is None
    assert no_law.reason == ("too few sizes to check degree ≤ 4 in S: 2 given, and even a "
                             "degree-0 law needs 3 (1 to fit, 2 held out to check it)")
    assert fit_law([], []).broke_at is None
    # (3S² + S)/2 at S = 1..4 (2, 7, 15, 26): 2 coefficients are checkable. The line through
    # (1, 2), (2, 7), 5S − 3, gives 12 at S = 3 where the count is 15; a + b·S² through the
    # same points, 2 + 5/3·(S² − 1), gives 2 + 40/3 = 46/3 there: both miss S = 3 first, and
    # the first tried (the line) is reported.
    no_law = fit_law([1, 2, 3, 4], [2, 7, 15, 26])
    assert no_law.broke_at == (3, 15, Fraction(12))
    assert no_law.reason.startswith("too few sizes to check degree ≤ 4 in S: 4 sizes check "
                                    "degree ≤ 1 at most, or degree ≤ 2 with even powers only")
    # The same counts with max_degree=1 are checked up to max_degree: plain "no law".
    no_law = fit_law([1, 2, 3, 4], [2, 7, 15, 26], max_degree=1)
    assert no_law.broke_at == (3, 15, Fraction(12))
    assert no_law.reason.startswith(
        "no polynomial law of degree ≤ 1 in S reproduces these counts")


def test_predict_refuses_a_non_integer_value():
    # S²/4 on even sizes 2..10: 1, 4, 9, 16, 25; the law is 1/4·S².
    law = fit_law([2, 4, 6, 8, 10], [1, 4, 9, 16, 25])
    assert law.coefficients == (0, 0, Fraction(1, 4))
    assert format_law(law) == "MACs(S) = 1/4·S²"
    assert law.predict(12) == 36                       # 144/4
    assert law.value(3) == Fraction(9, 4)              # 9/4 is no count
    with pytest.raises(ValueError, match="does not give an integer at S = 3"):
        law.predict(3)


@pytest.mark.parametrize("sizes, counts, kwargs, message", [
    ([1, 2, 2, 3], [1, 2, 2, 3], {}, "distinct"),
    ([0, 1, 2], [0, 1, 2], {}, "positive ints"),
    ([-1, 1, 2], [1, 1, 2], {}, "positive ints"),
    ([1.0, 2, 3], [1, 2, 3], {}, "positive ints"),
    ([True, 2, 3], [1, 2, 3], {}, "positive ints"),
    ([1, 2, 3], [1, 2.5, 3], {}, "counts must be ints"),
    ([1, 2, 3], [1, True, 3], {}, "counts must be ints"),
    ([1, 2, 3], [1, 2], {}, "3 sizes but 2 counts"),
    ([1, 2, 3], [1, 2, 3], {"max_degree": -1}, "max_degree"),
    ([1, 2, 3], [1, 2, 3], {"held_out": 0}, "held_out"),
])
def test_bad_inputs_raise_value_error(sizes, counts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_law(sizes, counts, **kwargs)


def test_format_law_strings():
    assert format_law(law_of(7, -12, 1)) == "MACs(S) = S² − 12·S + 7"
    assert format_law(law_of(-3, 0, -1)) == "MACs(S) = −S² − 3"
    assert format_law(law_of(Fraction(-3, 2), Fraction(1234567, 2))) == \
        "MACs(S) = 1,234,567/2·S − 3/2"
    assert format_law(law_of(0, 1)) == "MACs(S) = S"
    assert format_law(law_of(0, -1)) == "MACs(S) = −S"
    assert format_law(law_of(1)) == "MACs(S) = 1"
    assert format_law(law_of(*([0] * 10 + [1]))) == "MACs(S) = S¹⁰"
    assert format_law(law_of(0, 0, 3, variable="L"), unit="FLOPs") == "FLOPs(L) = 3·L²"


def test_to_dict_is_json_serialisable():
    law = fit_law([1, 2, 3, 4, 5, 6], [2, 7, 15, 26, 40, 57])      # (3S² + S)/2, as above
    assert json.loads(json.dumps(law.to_dict())) == {
        "exact": True, "formula": "MACs(S) = 3/2·S² + 1/2·S", "variable": "S", "degree": 2,
        "in_square": False,
        "coefficients": [0, "1/2", "3/2"], "fitted_on": [1, 2, 3], "checked_on": [4, 5, 6],
        "counts": [[1, 2], [2, 7], [3, 15], [4, 26], [5, 40], [6, 57]]}
    no_law = fit_law(range(1, 9), [2 ** s for s in range(1, 9)])    # broke at (6, 64, 62)
    as_dict = json.loads(json.dumps(no_law.to_dict()))
    assert as_dict["exact"] is False and as_dict["reason"] == no_law.reason
    assert as_dict["broke_at"] == {"size": 6, "count": 64, "predicted": 62}
    assert json.loads(json.dumps(fit_law([1], [1]).to_dict()))["broke_at"] is None
    # A rational prediction is written as a string ("11/2").
    rational = fit_law([2, 4, 5], [1, 4, 6], max_degree=1, held_out=1)
    # Degree 0 (constant 1) misses S = 4; degree 1 through (2, 1), (4, 4) predicts
    # 1 + 3/2·(5 − 2) = 11/2 at S = 5, where the count is 6.
    assert rational.broke_at == (5, 6, Fraction(11, 2))
    assert json.loads(json.dumps(rational.to_dict()))["broke_at"]["predicted"] == "11/2"
