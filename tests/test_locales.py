"""``locales.format_number``: the English fast path for whole numbers writes what Babel writes,
and no value makes it raise (Babel refuses 1e25 and beyond; a sum of hostile values may be that)."""

from __future__ import annotations

from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st

from locales import format_number, in_languages

#: what Babel itself formats (it raises decimal.InvalidOperation from 1e25)
BABEL_RANGE = 10**24


@given(st.one_of(st.integers(-BABEL_RANGE, BABEL_RANGE), st.sampled_from([0, -1, 999, 1000, -1000, 10**18])))
def test_whole_numbers_in_english_as_babel_writes_them(n: int) -> None:
    assert in_languages(lambda: format_number(n), "en") == [format_decimal(n, locale="en")]


@given(st.integers(-BABEL_RANGE, BABEL_RANGE) | st.floats(-1e24, 1e24, allow_nan=False))
def test_vietnamese_and_fractions_still_go_through_babel(n: float) -> None:
    assert in_languages(lambda: format_number(n), "vi") == [format_decimal(n, locale="vi")]
    if isinstance(n, float):
        assert in_languages(lambda: format_number(n), "en") == [format_decimal(n, locale="en")]


@given(st.integers() | st.floats(allow_nan=False))
def test_no_value_raises(n: float) -> None:
    en, vi = in_languages(lambda: format_number(n), "en", "vi")
    assert en and vi


def test_huge_values_are_grouped_as_the_language_groups() -> None:
    n = 12 * 10**30
    assert in_languages(lambda: format_number(n), "en", "vi") == [f"{n:,}", f"{n:,}".replace(",", ".")]
