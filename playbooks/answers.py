"""How a trainee's answer is checked: one small checker per answer kind, in a registry."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

Checker = Callable[[Mapping[str, Any], str], bool]


def fold(text: str) -> str:
    """Case and diacritics folded: ``Tấn Công Đăng Nhập`` -> ``tan cong dang nhap``.

    A Vietnamese trainee may type a free-text answer with or without its accents (many
    keyboards and remote consoles drop them); NFKD splits each letter from its marks, the
    marks go, and ``đ`` (a letter of its own, not a d with a mark) becomes ``d``.
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("đ", "d")


def _norm(text: Any, key: Mapping[str, Any]) -> str:
    value = str(text).strip()
    return value if key.get("case_sensitive") else fold(value)


def _exact(key: Mapping[str, Any], given: str) -> bool:
    return _norm(given, key) == _norm(key["value"], key)


def _one_of(key: Mapping[str, Any], given: str) -> bool:
    return _norm(given, key) in {_norm(v, key) for v in key["values"]}


def _regex(key: Mapping[str, Any], given: str) -> bool:
    flags = 0 if key.get("case_sensitive") else re.IGNORECASE
    return re.fullmatch(key["pattern"], given.strip(), flags) is not None


def _set(key: Mapping[str, Any], given: str) -> bool:
    """Order and spacing do not matter: ``a, b`` equals ``b,a``."""
    items = {_norm(part, key) for part in re.split(r"[,\s]+", given) if part.strip()}
    return items == {_norm(v, key) for v in key["values"]}


def readings(given: str) -> list[float]:
    """What a typed number can mean: as written in English (``1,448`` -> 1448; commas dropped, as
    always) and, in another interface language, as that language writes it (Babel/CLDR, strict
    grouping: ``41.720`` -> 41720 and ``2,5`` -> 2.5 in Vietnamese). A Vietnamese trainee is
    understood either way; a number that is neither is no number."""
    from babel.numbers import NumberFormatError, parse_decimal

    from locales import SOURCE_LANGUAGE, current_language

    found: list[float] = []
    text = given.strip()
    with contextlib.suppress(ValueError):
        found.append(float(text.replace(",", "")))
    lang = current_language()
    if lang != SOURCE_LANGUAGE and text:
        with contextlib.suppress(NumberFormatError):
            found.append(float(parse_decimal(text, locale=lang, strict=True)))
    return found


def _number(key: Mapping[str, Any], given: str) -> bool:
    expected, tolerance = float(key["value"]), float(key.get("tolerance", 0))
    return any(abs(value - expected) <= tolerance for value in readings(given))


ANSWER_KINDS: dict[str, Checker] = {
    "exact": _exact,
    "one_of": _one_of,
    "regex": _regex,
    "set": _set,
    "number": _number,
}

#: What each kind needs in the key, checked when an exercise is loaded.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "exact": ("value",), "one_of": ("values",), "regex": ("pattern",), "set": ("values",), "number": ("value",),
}


def check(key: Mapping[str, Any], given: str) -> bool:
    return ANSWER_KINDS[key["kind"]](key, given)


def render(value: Any) -> str:
    """A solution value as a trainee would type it."""
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(sorted(str(v) for v in value))
    return str(value)
