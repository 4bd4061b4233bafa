"""The interface language: gettext catalogs (managed with Babel) and the language choice.

Why a top-level package of its own: every package that shows text to a person
(``soc_cli``, ``playbooks``, later ``detections`` and ``dashboards``) needs ``_()``, and
ARCHITECTURE.md's import rules forbid ``playbooks`` importing ``soc_cli``. ``locales``
imports nothing of ours, so any package may import it without a cycle; the catalogs
(``locales/<lang>/LC_MESSAGES/ztsoc.po``) sit beside it as package data.

Language: ``SOC_LANG``, else the first of ``LANGUAGE`` / ``LC_ALL`` / ``LANG`` (so
``LANG=vi_VN.UTF-8`` works), else English, the source language. The catalog is the
compiled ``ztsoc.mo`` (``make i18n``); a fresh clone without one compiles the ``.po``
in memory with Babel, so nothing has to be built first.

Identifiers are never translated: ECS field names, rule and ATT&CK ids, commands and
options, JSON keys. Only text a person reads goes through ``_()``.
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DOMAIN = "ztsoc"
HERE = Path(__file__).parent
SOURCE_LANGUAGE = "en"
#: the languages with a catalog in this package (English is the source text itself)
LANGUAGES: tuple[str, ...] = ("en", "vi")
ENV_VARS: tuple[str, ...] = ("SOC_LANG", "LANGUAGE", "LC_ALL", "LANG")


def normalise(tag: str | None) -> str | None:
    """``vi_VN.UTF-8`` / ``vi-VN`` / ``vi`` -> ``vi``; a language without a catalog -> None."""
    if not tag:
        return None
    # LANGUAGE may list several (``vi:en``): the first one we have wins
    for part in tag.split(":"):
        base = part.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].strip().lower()
        if base in LANGUAGES:
            return base
        if base in ("c", "posix"):
            return SOURCE_LANGUAGE
    return None


def chosen_language(environ: dict[str, str] | None = None) -> str:
    """The first of ``ENV_VARS`` that names a language we have, else English."""
    env = os.environ if environ is None else environ
    for var in ENV_VARS:
        lang = normalise(env.get(var))
        if lang:
            return lang
    return SOURCE_LANGUAGE


def po_path(lang: str) -> Path:
    return HERE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=8)
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of ``lang``: the compiled .mo if it is as new as the .po, else the .po compiled now."""
    if lang == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    po = po_path(lang)
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return gettext.GNUTranslations(fh)
    if not po.exists():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


_override: str | None = None


def set_language(lang: str | None) -> None:
    """Force a language (tests, the dashboard's selector); None goes back to the environment."""
    global _override
    _override = normalise(lang) if lang else None


def in_languages(fn: Callable[[], T], *langs: str) -> list[T]:
    """``fn()`` evaluated in each language in turn (tests, side-by-side views); the choice is restored."""
    global _override
    saved, results = _override, []
    try:
        for lang in langs:
            set_language(lang)
            results.append(fn())
    finally:
        _override = saved
    return results


def current_language() -> str:
    return _override or chosen_language()


def _(message: str) -> str:
    """The message in the current language (the English source if it has no translation)."""
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; translated with ``_()`` where shown."""
    return message


@lru_cache(maxsize=32)
def _overlay(lang: str, name: str) -> dict[str, Any]:
    import yaml

    path = HERE / lang / f"{name}.yml"
    if lang == SOURCE_LANGUAGE or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def overlay(name: str) -> dict[str, Any]:
    """Texts kept as data in the current language (``locales/<lang>/<name>.yml``), e.g. the
    rules' titles and guides by rule id; empty in English (the source texts are the originals)."""
    return _overlay(current_language(), name)


def overlay_in(lang: str, name: str) -> dict[str, Any]:
    """``overlay(name)`` in an explicit language: a server answering analysts in several
    languages at once must not switch the process-wide choice."""
    return _overlay(normalise(lang) or SOURCE_LANGUAGE, name)


def babel_locale() -> str:
    return current_language()


def format_number(n: int | float) -> str:
    """``12,345`` in English, ``12.345`` in Vietnamese (Babel's CLDR data).

    English is written here as Babel writes it for ``en`` (its pattern ``#,##0.###``: grouped,
    at most three decimals rounded half to even from the float's shortest form, no trailing
    zeros; ``tests/test_locales.py`` compares the two on generated numbers): loading Babel and
    its locale data was ~14 ms of CPU in every command that prints a count or a duration."""
    locale = babel_locale()
    if locale == SOURCE_LANGUAGE:
        if n.__class__ is int:
            return f"{n:,}"
        if n.__class__ is float and -1e24 < n < 1e24:  # finite, and within what Babel formats
            from decimal import ROUND_HALF_EVEN, Decimal

            rounded = Decimal(repr(n)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
            text = f"{rounded:,f}"
            return text.rstrip("0").rstrip(".") if "." in text else text
    from babel.numbers import format_decimal, get_group_symbol

    try:
        return format_decimal(n, locale=locale)
    except ArithmeticError:  # Babel's decimal context refuses 1e25 and beyond; a sum of hostile values gets there
        if n.__class__ is int:
            return f"{n:,}".replace(",", get_group_symbol(locale=locale))
        return repr(n)


def format_datetime(dt: datetime, fmt: str = "medium") -> str:
    from babel.dates import format_datetime as fdt

    return fdt(dt, format=fmt, locale=babel_locale())


#: a stored time as a person reads it in each language (Babel/CLDR pattern; UTC, as stored). English
#: keeps the ISO-like form the tables always had; Vietnamese writes the day first (24/11/2026), with
#: the time before it as CLDR's Vietnamese datetime patterns do.
TIMESTAMP_PATTERNS: dict[str, tuple[str, str]] = {"vi": ("HH:mm:ss dd/MM/yyyy", "HH:mm:ss.SSS dd/MM/yyyy")}


def format_timestamp(value: object, *, ms: bool = False, as_stored: bool = False) -> str:
    """A stored ``@timestamp`` (ISO 8601 text or a datetime) for a table cell in the interface language.

    English: ``2026-11-24 10:05:07`` (``.123`` with ``ms``); Vietnamese: ``10:05:07 24/11/2026``.
    Text that is not a time is returned as it is (it is shown, never guessed at); JSON never
    goes through here. ``as_stored``: English shows the stored text whole (``2026-11-24T10:05:07.000Z``),
    where a line always showed it so.
    """
    text = value.isoformat() if isinstance(value, datetime) else str(value or "")
    lang = current_language()
    if lang not in TIMESTAMP_PATTERNS or not text:
        return text if as_stored else text[:23 if ms else 19].replace("T", " ")
    try:
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    from babel.dates import format_datetime as fdt

    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return fdt(dt, TIMESTAMP_PATTERNS[lang][1 if ms else 0], tzinfo=UTC, locale=babel_locale())


__all__ = ["LANGUAGES", "N_", "_", "chosen_language", "current_language", "format_datetime",
           "format_number", "format_timestamp", "in_languages", "ngettext", "overlay", "overlay_in", "set_language", "translations"]
