"""Fit an exact polynomial law to MAC counts measured at several sizes.

Counts measured at sizes S₁ < S₂ < … follow a law with k coefficients when the unique
polynomial with k coefficients through the k smallest sizes reproduces every other count
exactly, in rational arithmetic, and at least ``held_out`` sizes were left over to check it.
Two kinds of polynomial are tried for each k: a general one in S (degree k − 1) and one in S²
(even powers of S only, degree 2(k − 1) in S). The second is how a count grows over an image
side S when the work scales with the pixels or tokens (S/p)²: a ViT's MACs are a·S⁴ + b·S² + c,
three coefficients, fitted through 3 sizes instead of 5. The law is the candidate with the fewest
coefficients, then the lowest degree. A fit that nothing checked is a guess, and this module
never guesses: no least squares, no rounding.
"""
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Integral
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_MINUS = "\u2212"
Point = Tuple[int, int]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _json_number(value: Fraction) -> Union[int, str]:
    return value.numerator if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _evaluate(coefficients: Sequence[Fraction], size: int) -> Fraction:
    total = Fraction(0)
    for coefficient in reversed(coefficients):
        total = total * size + coefficient
    return total


@dataclass(frozen=True)
class Law:
    """An exact polynomial law: ``count(size) = Σ coefficients[k] · size**k``.

    ``degree`` is the degree in ``variable``; ``in_square`` is True when the law was fitted as a
    polynomial in ``variable``² (even powers only; its degree there is ``degree // 2``).
    ``fitted_on`` are the sizes the polynomial was interpolated through, ``checked_on`` the further
    sizes whose counts it reproduced exactly, ``counts`` every (size, count) pair, sorted by size.
    ``route`` is how the law was found: ``"counts"`` (fitted, as above) or ``"symbolic"`` (read
    from one symbolic run, :mod:`fvcore_ext.laws.symbolic`: ``fitted_on`` is empty,
    ``checked_on``/``counts`` the real counts it was checked against); ``conditions`` are where
    it holds, as text (the run's guards: ``S >= 16``, ``S % 8 == 0``), and ``holds`` (where
    given) decides them exactly at a size.
    """
    coefficients: Tuple[Fraction, ...]
    degree: int
    variable: str
    fitted_on: Tuple[int, ...]
    checked_on: Tuple[int, ...]
    counts: Tuple[Point, ...]
    in_square: bool = False
    conditions: Tuple[str, ...] = ()
    route: str = "counts"
    holds: Optional[Callable[[int], bool]] = field(default=None, compare=False, repr=False)

    @property
    def free_coefficients(self) -> int:
        """How many coefficients the fit determined: degree + 1, or degree/2 + 1 in S²."""
        return self.degree // 2 + 1 if self.in_square else self.degree + 1

    @property
    def exact(self) -> bool:
        """True: a Law is an exact result (NoLaw.exact is False)."""
        return True

    def value(self, size: int) -> Fraction:
        """The polynomial's exact value at ``size`` (an int), as a Fraction."""
        return _evaluate(self.coefficients, size)

    def predict(self, size: int) -> int:
        """The count the law gives at ``size``, an exact int.

        Raises ValueError when the polynomial is not an integer there: a law fitted on sizes of
        one kind (multiples of a patch size, say) holds on sizes of that kind only; and for a
        symbolic law, at a size where its conditions (``holds``) are false.
        """
        if self.holds is not None and not self.holds(size):
            raise ValueError(f"the law {self} does not hold at {self.variable} = {size}: it "
                             f"holds where {' and '.join(self.conditions)}")
        value = self.value(size)
        if value.denominator != 1 and self.route == "symbolic":
            raise ValueError(f"the law {self} does not give an integer at {self.variable} = "
                             f"{size} (it gives {value}): it holds where "
                             f"{' and '.join(self.conditions)}")
        if value.denominator != 1:
            raise ValueError(f"the law {self} does not give an integer at {self.variable} = "
                             f"{size} (it gives {value}): it holds on sizes of the kind it was "
                             f"fitted on ({', '.join(map(str, self.fitted_on))}, …) only")
        return value.numerator

    def __str__(self) -> str:
        return format_law(self)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict: integral coefficients as ints, others as strings like "3/2";
        a law of the symbolic route adds ``route`` and ``conditions``."""
        out = {"exact": True, "formula": format_law(self), "variable": self.variable,
                "degree": self.degree, "in_square": self.in_square,
                "coefficients": [_json_number(c) for c in self.coefficients],
                "fitted_on": list(self.fitted_on), "checked_on": list(self.checked_on),
                "counts": [list(point) for point in self.counts]}
        if self.route != "counts" or self.conditions:
            out.update(route=self.route, conditions=list(self.conditions))
        return out


@dataclass(frozen=True)
class NoLaw:
    """No checked polynomial law: ``reason`` says why in a sentence; ``broke_at`` is
    (size, count, predicted) for the first count missed by the checkable fit that held the
    longest (the largest size at which a candidate first missed; of candidates missing at the
    same size, the first tried: fewest coefficients, then lowest degree), None when there were
    too few sizes to fit anything."""
    reason: str
    counts: Tuple[Point, ...]
    variable: str
    broke_at: Optional[Tuple[int, int, Fraction]]

    @property
    def exact(self) -> bool:
        """False: there is no exact law (Law.exact is True)."""
        return False

    def __str__(self) -> str:
        return self.reason

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict; ``broke_at`` as {"size", "count", "predicted"} or None."""
        broke_at = None
        if self.broke_at is not None:
            size, count, predicted = self.broke_at
            broke_at = {"size": size, "count": count, "predicted": _json_number(predicted)}
        return {"exact": False, "reason": self.reason, "variable": self.variable,
                "counts": [list(point) for point in self.counts], "broke_at": broke_at}


def _sorted_points(sizes: Sequence[int], counts: Sequence[int], max_degree: int,
                   held_out: int) -> List[Point]:
    sizes, counts = list(sizes), list(counts)
    if len(sizes) != len(counts):
        raise ValueError(f"{len(sizes)} sizes but {len(counts)} counts: give one count per size")
    for size in sizes:
        if not _is_int(size) or size <= 0:
            raise ValueError(f"sizes must be positive ints, got {size!r}")
    for count in counts:
        if not _is_int(count):
            raise ValueError(f"counts must be ints (exact MAC counts), got {count!r}")
    repeated = sorted({size for size in sizes if sizes.count(size) > 1})
    if repeated:
        raise ValueError(f"sizes must be distinct, got {', '.join(map(str, repeated))} "
                         f"more than once")
    if not _is_int(max_degree) or max_degree < 0:
        raise ValueError(f"max_degree must be an int ≥ 0, got {max_degree!r}")
    if not _is_int(held_out) or held_out < 1:
        raise ValueError(f"held_out must be an int ≥ 1 (an unchecked fit is a guess), "
                         f"got {held_out!r}")
    return sorted((int(size), int(count)) for size, count in zip(sizes, counts))


def _interpolate(points: Sequence[Point]) -> Tuple[Fraction, ...]:
    """Monomial coefficients (index = power) of the polynomial through ``points``, exactly:
    Newton divided differences, then expanded by Horner's scheme."""
    xs = [size for size, _ in points]
    differences = [Fraction(count) for _, count in points]
    for order in range(1, len(points)):
        for i in range(len(points) - 1, order - 1, -1):
            differences[i] = (differences[i] - differences[i - 1]) / (xs[i] - xs[i - order])
    polynomial = [differences[-1]]
    for x, difference in zip(reversed(xs[:-1]), reversed(differences[:-1])):
        shifted = [Fraction(0)] + polynomial             # polynomial · size
        for power, coefficient in enumerate(polynomial):
            shifted[power] -= x * coefficient            # − polynomial · x
        shifted[0] += difference
        polynomial = shifted
    return tuple(polynomial)


def _first_miss(coefficients: Sequence[Fraction],
                points: Sequence[Point]) -> Optional[Tuple[int, int, Fraction]]:
    for size, count in points:
        predicted = _evaluate(coefficients, size)
        if predicted != count:
            return size, count, predicted
    return None


def _candidates(max_degree: int) -> List[Tuple[int, int, bool]]:
    """(free coefficients, degree in S, in S²) for every polynomial tried, in the order tried:
    fewest coefficients first, then lowest degree. With one coefficient both kinds are the
    constant, tried once."""
    out = [(degree + 1, degree, False) for degree in range(max_degree + 1)]
    out += [(degree // 2 + 1, degree, True) for degree in range(2, max_degree + 1, 2)]
    return sorted(out)


def _fit(points: Sequence[Point], coefficients_count: int,
         in_square: bool) -> Tuple[Fraction, ...]:
    fitted = points[:coefficients_count]
    if not in_square:
        return _interpolate(fitted)
    in_x = _interpolate([(size * size, count) for size, count in fitted])
    coefficients = [Fraction(0)] * (2 * len(in_x) - 1)
    coefficients[::2] = in_x
    return tuple(coefficients)


def fit_law(sizes: Sequence[int], counts: Sequence[int], *, max_degree: int = 4,
            held_out: int = 2, variable: str = "S") -> Union[Law, NoLaw]:
    """The exact polynomial law with the fewest coefficients through ``counts`` at ``sizes``.

    Two kinds of polynomial are tried: general ones in ``variable`` (degree d, d + 1
    coefficients) and ones in ``variable``² (even powers only: degree d = 2m in ``variable``,
    m + 1 coefficients). A candidate with k coefficients is interpolated through the k smallest
    sizes and must reproduce the count at every other size, of which there must be at least
    ``held_out``. Candidates are tried by number of coefficients, then degree: constant, linear,
    a + b·S², quadratic, a + b·S² + c·S⁴, cubic, quartic (for ``max_degree=4``).

    Args:
        sizes: distinct positive ints, in any order (the varied input size).
        counts: the exact int count (MACs) measured at each size.
        max_degree: the highest degree in ``variable`` tried (≥ 0).
        held_out: how many sizes beyond the k interpolated must remain to check a law with k
            coefficients (≥ 1); with n sizes, general degrees up to n − 1 − held_out and
            degrees in ``variable``² up to 2(n − 1 − held_out) can be checked.
        variable: the size's name in formulas and messages.

    Returns:
        a Law (exact rational coefficients, ``degree`` in ``variable``, ``in_square`` for a
        polynomial in ``variable``²) for the first candidate whose polynomial reproduces every
        other count exactly; otherwise a NoLaw whose reason says whether there were too few sizes
        to check degree ≤ max_degree or no candidate reproduces the counts, with ``broke_at``
        from the checkable candidate that held the longest (:class:`NoLaw`).

    Raises:
        ValueError: sizes not distinct positive ints, counts not ints, their lengths differ, or
            max_degree / held_out out of range (bool is not an int here).
    """
    points = _sorted_points(sizes, counts, max_degree, held_out)
    broke_at, last = None, None
    for coefficients_count, degree, in_square in _candidates(max_degree):
        if coefficients_count + held_out > len(points):
            continue
        coefficients = _fit(points, coefficients_count, in_square)
        rest = points[coefficients_count:]
        miss = _first_miss(coefficients, rest)
        if miss is None:
            return Law(coefficients=coefficients, degree=degree, variable=variable,
                       fitted_on=tuple(size for size, _ in points[:coefficients_count]),
                       checked_on=tuple(size for size, _ in rest), counts=tuple(points),
                       in_square=in_square)
        if broke_at is None or miss[0] > broke_at[0]:     # the fit that held the longest
            broke_at, last = miss, (coefficients_count, degree, in_square)
    reason = _no_law_reason(points, broke_at, last, max_degree, held_out, variable)
    return NoLaw(reason=reason, counts=tuple(points), variable=variable, broke_at=broke_at)


def _no_law_reason(points: Sequence[Point], broke_at: Optional[Tuple[int, int, Fraction]],
                   last: Optional[Tuple[int, int, bool]], max_degree: int, held_out: int,
                   variable: str) -> str:
    if broke_at is None or last is None:
        return (f"too few sizes to check degree ≤ {max_degree} in {variable}: {len(points)} "
                f"given, and even a degree-0 law needs {1 + held_out} (1 to fit, {held_out} "
                f"held out to check it)")
    size, count, predicted = broke_at
    coefficients_count, degree, in_square = last
    fitted_on = ", ".join(str(s) for s, _ in points[:coefficients_count])
    kind = f" in {variable}²" if in_square else ""
    miss = (f"the degree-{degree} fit{kind} through {variable} = {fitted_on} predicts "
            f"{predicted} at {variable} = {size}, where the count is {count}")
    highest = min(max_degree, len(points) - 1 - held_out)
    if highest < max_degree:
        highest_even = min(max_degree - max_degree % 2, 2 * highest)
        even = (f", or degree ≤ {highest_even} with even powers only (in {variable}²)"
                if highest_even > highest else "")
        return (f"too few sizes to check degree ≤ {max_degree} in {variable}: {len(points)} "
                f"sizes check degree ≤ {highest} at most{even} ({held_out} held out; degree "
                f"{max_degree} needs {max_degree + 1 + held_out}), and no such polynomial "
                f"reproduces the counts: {miss}")
    return (f"no polynomial law of degree ≤ {max_degree} in {variable} reproduces these "
            f"counts: {miss}")


def degree_text(law: Law, square_name: Optional[str] = None) -> str:
    """The law's degree in words: ``degree 4 in S``, and for a law in S² also its degree
    there: ``degree 4 in S (degree 2 in S²)``, or with ``square_name="pixels"``
    ``degree 4 in S (degree 2 in pixels)`` (an image side S with H = W = S: S² pixels)."""
    text = f"degree {law.degree} in {law.variable}"
    if law.in_square:
        text += f" (degree {law.degree // 2} in {square_name or law.variable + '²'})"
    return text


def _format_magnitude(value: Fraction) -> str:
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{value.numerator:,}/{value.denominator:,}"


def format_law(law: Law, unit: str = "MACs") -> str:
    """The law as a formula, e.g. ``MACs(S) = 5·S⁴ + 1,234·S² − 12·S + 7``.

    Args:
        law: the Law to write.
        unit: the name of the counted quantity, written before ``(variable)``.

    Returns:
        highest power first; integer coefficients with thousands separators, rational ones as
        ``3/2``; a coefficient of 1 left out (``S²``); ``MACs(S) = 0`` for the zero polynomial.
    """
    terms = []
    for power in range(len(law.coefficients) - 1, -1, -1):
        coefficient = law.coefficients[power]
        if coefficient == 0:
            continue
        magnitude = _format_magnitude(abs(coefficient))
        if power == 0:
            term = magnitude
        else:
            monomial = law.variable + (str(power).translate(_SUPERSCRIPTS) if power > 1 else "")
            term = monomial if abs(coefficient) == 1 else f"{magnitude}·{monomial}"
        if not terms:
            terms.append(_MINUS + term if coefficient < 0 else term)
        else:
            terms.append(f" {_MINUS if coefficient < 0 else '+'} {term}")
    return f"{unit}({law.variable}) = {''.join(terms) or '0'}"
