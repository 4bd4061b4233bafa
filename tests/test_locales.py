"""``locales.format_number``: the English fast path writes what Babel writes for ``en``,
and no value makes it raise (Babel refuses 1e25 and beyond; a sum of hostile values may be that)."""

from __future__ import annotations

from babel.numbers import format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from locales import format_number, in_languages

#: what Babel itself formats (it raises decimal.InvalidOperation from 1e25)
BABEL_RANGE = 10**24


@given(st.one_of(st.integers(-BABEL_RANGE, BABEL_RANGE), st.sampled_from([0, -1, 999, 1000, -1000, 10**18])))
def test_whole_numbers_in_english_as_babel_writes_them(n: int) -> None:
    assert in_languages(lambda: format_number(n), "en") == [format_decimal(n, locale="en")]


#: floats where rounding to three decimals is delicate (ties, binary values just off a tie, -0.0)
DELICATE = [0.0, -0.0, 0.0005, -0.0005, 0.0015, 0.0025, 1e-9, -1e-9, 2.5e-4, 1234.5675, 0.1 + 0.2, 999.9995, 1e23]


@settings(max_examples=2000)
@given(st.floats(-1e24, 1e24, allow_nan=False) | st.floats(-10, 10) | st.sampled_from(DELICATE))
def test_fractions_in_english_as_babel_writes_them(n: float) -> None:
    assert in_languages(lambda: format_number(n), "en") == [format_decimal(n, locale="en")]


@given(st.integers(-BABEL_RANGE, BABEL_RANGE) | st.floats(-1e24, 1e24, allow_nan=False))
def test_vietnamese_goes_through_babel(n: float) -> None:
    assert in_languages(lambda: format_number(n), "vi") == [format_decimal(n, locale="vi")]


@given(st.integers() | st.floats())
def test_no_value_raises(n: float) -> None:
    en, vi = in_languages(lambda: format_number(n), "en", "vi")
    assert en and vi


def test_huge_values_are_grouped_as_the_language_groups() -> None:
    n = 12 * 10**30
    assert in_languages(lambda: format_number(n), "en", "vi") == [f"{n:,}", f"{n:,}".replace(",", ".")]
