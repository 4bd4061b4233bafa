"""The one rule for text that came from data: shown literally on the analyst's terminal.

Every user name, DNS name, HTTP host, URI, user agent, SNI, command line and alert entity
was written by whoever sent the packet or the log line. Printed raw, an ``ESC]0;...``
retitles the terminal, ``ESC[2J`` clears it, an unterminated OSC swallows the rows after
it, a right-to-left override reverses what the analyst reads, and in Rich a ``[/]`` is
markup (or a crash). This module is the trust boundary of ``ARCHITECTURE.md``'s table
("the analyst's terminal"): ``soc_cli.output`` builds every table, line and panel from it,
the Textual app uses it for every cell, and the consoles themselves pass each text segment
through ``visible`` once more before it reaches the terminal.

The rule, per character (Unicode general category):

- ``Cc`` (C0, DEL, C1 controls), ``Cf`` (format characters: the bidirectional embeddings,
  overrides and isolates, zero-width characters, tag characters that hide text),
  ``Cs`` (lone surrogates, which cannot even be encoded), ``Zl``/``Zp`` (line and paragraph
  separators) are written as Python-style escapes: ``\\x1b``, ``\\t``, ``\\u202e``,
  ``\\U000e0041``. Everything else, Vietnamese diacritics and combining marks included, is
  kept as it is.
- ``esc`` additionally escapes Rich markup, for values placed inside a markup template.

Hand-written because no kept library does it: Rich only strips five control codes
(``rich.control.strip_control_codes``) and leaves ESC, C1 and bidi through; Textual
passes Rich text on.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from rich.markup import escape as _markup_escape
from rich.text import Text

#: General categories written as escapes (see the module docstring).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class _Table:
    """``str.translate`` table computed on demand; bounded by the characters ever seen (at most 1.1M)."""

    def __init__(self, keep: str = "") -> None:
        self.cache: dict[int, str | None] = {ord(ch): None for ch in keep}

    def __getitem__(self, code: int) -> str:
        try:
            value = self.cache[code]
        except KeyError:
            ch = chr(code)
            value = self.cache[code] = _escape_char(ch) if unicodedata.category(ch) in UNSAFE_CATEGORIES else None
        if value is None:
            raise LookupError(code)  # str.translate: keep the character
        return value


_TABLE = _Table()
_TABLE_MULTILINE = _Table(keep="\n")  # kept: multi-line text that the layout wraps itself
_KEEP_TABLES: dict[str, _Table] = {}


def visible(text: str, *, multiline: bool = False, keep: str = "") -> str:
    """``text`` with every control, format, surrogate and separator character written as an escape.

    ``multiline`` keeps line feeds; ``keep`` names other characters to keep (CSV's ``\r\t``).
    """
    if text.isprintable():  # fast path: no Cc, Cf, Cs, Zl, Zp (and no other non-printables either)
        return text
    if keep:
        table = _KEEP_TABLES.get(keep + ("\n" if multiline else ""))
        if table is None:
            table = _KEEP_TABLES.setdefault(keep + ("\n" if multiline else ""),
                                            _Table(keep=keep + ("\n" if multiline else "")))
        return text.translate(table)
    return text.translate(_TABLE_MULTILINE if multiline else _TABLE)


def plain(value: Any) -> str:
    """Any stored value as one line of text: lists joined with ``, ``, objects as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def safe(value: Any, style: str = "", *, multiline: bool = False) -> Text:
    """A stored value as a Rich ``Text``: never markup, never emoji codes, controls made visible."""
    if isinstance(value, Text):
        if value.plain.isprintable():
            return value
        return Text(visible(value.plain, multiline=multiline), style=style or value.style)
    return Text(visible(plain(value), multiline=multiline), style=style)


def esc(value: Any) -> str:
    """A stored value for a markup template (``f"[bold]{esc(user)}[/]"``): visible and markup-escaped.

    A trailing backslash is written ``\\x5c``: in Rich markup it would escape the template's next
    tag, and ``rich.markup.escape``'s doubling of it shows two backslashes when no tag follows
    (found by ``tests/test_safe_text.py``).
    """
    text = visible(plain(value))
    if text.endswith("\\"):
        text = text[:-1] + "\\x5c"
    return _markup_escape(text)


def json_safe(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the unsafe characters as ``\\uXXXX`` escapes.

    Still the same JSON value (those characters can only occur inside strings), but C1
    controls, bidi overrides and lone surrogates no longer reach the terminal as they are.
    """
    if text.isprintable() or all(ch == "\n" or ch.isprintable() for ch in text):
        return text
    out = []
    for ch in text:
        if ch != "\n" and unicodedata.category(ch) in UNSAFE_CATEGORIES:
            code = ord(ch)
            if code > 0xFFFF:  # a surrogate pair, as JSON writes astral characters
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
