"""The parsed query: a small typed tree every backend translator walks.

Values are already read per field type (IPs as byte keys, dates as epoch ms, numbers as
numbers, ``text`` as tokens), so a translator only decides how to compare, never how to parse.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MatchAll:
    pass


@dataclass(frozen=True, slots=True)
class MatchNone:
    pass


@dataclass(frozen=True, slots=True)
class Bool:
    """Lucene's boolean query: every ``must``, none of ``must_not``, and one ``should``
    when there is no ``must`` (with only ``must_not``: everything else)."""

    must: tuple[Node, ...] = ()
    should: tuple[Node, ...] = ()
    must_not: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class Equals:
    """Exact value of a keyword, number, boolean or (canonical) IP field."""

    field: str
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class Between:
    """A range; ``kind`` says how values compare: ``num``, ``str``, ``ip`` (byte keys), ``date`` (ms)."""

    field: str
    kind: str
    low: str | int | float | bytes | None
    high: str | int | float | bytes | None
    include_low: bool = True
    include_high: bool = True
    #: text every matching (canonical) value starts with, e.g. ``10.1.`` for 10.1.0.0/16: lets a
    #: backend narrow by an index before comparing as addresses
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Glob:
    """Wildcard on a keyword field, as a SQLite GLOB pattern and an anchored regex."""

    field: str
    glob: str
    regex: str


@dataclass(frozen=True, slots=True)
class Regexp:
    field: str
    pattern: str


@dataclass(frozen=True, slots=True)
class TextPhrase:
    """Tokens that must appear in order and next to each other in an analysed ``text`` field,
    or within ``slop`` moves of that (Lucene's sloppy phrase: ``"a b"~2``)."""

    field: str
    tokens: tuple[str, ...]
    slop: int = 0


@dataclass(frozen=True, slots=True)
class Fuzzy:
    """A value (keyword) or a token (``text``) within ``edits`` Damerau-Levenshtein edits."""

    field: str
    term: str
    edits: int
    text: bool = False


@dataclass(frozen=True, slots=True)
class TextRange:
    """A token of a ``text`` field between two (lowercased) bounds."""

    field: str
    low: str | None
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True, slots=True)
class TextPattern:
    """A token of a ``text`` field matching an anchored regex (wildcard or regexp)."""

    field: str
    regex: str
    lucene: bool = False  # regex is Lucene syntax (``field:/.../``), else an anchored Python regex (a wildcard)


Node = (
    MatchAll | MatchNone | Bool | Exists | Equals | Between | Glob | Regexp | TextPhrase | TextPattern | Fuzzy
    | TextRange
)
