"""The query tree as a SQLite ``WHERE`` clause over a table of JSON documents.

A table keeps the whole flat document in ``doc`` and a few hot fields in indexed columns
(``Layout.hot``). A hot field is compared on its column (so the index serves it); any other
field through ``json_each``, which yields every element of an array and the value itself
otherwise, so "an array matches if any element matches" holds for free, as in ES. When a hot
field holds an array its column stays NULL, the row's ``multi`` column names the field, and
the comparison falls back to the document for those rows only.

What SQL cannot compare natively is done by the functions ``register_functions`` installs:
IP byte keys, epoch ms of stored dates, text-token matching and regular expressions.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from eventstore.es_templates import KEYWORD_IGNORE_ABOVE
from eventstore.query import ast
from eventstore.query.lucene_regex import compile_lucene
from eventstore.query.values import analyze, epoch_ms, ip_key, phrase_slop, within_edits
from eventstore.schema import FieldType, field_type, flattened_root

TS_FIELD = "@timestamp"
ID_FIELD = "event.id"


@dataclass(frozen=True, slots=True)
class Layout:
    """One table: its name and the hot fields kept in their own column (field -> column)."""

    table: str
    hot: Mapping[str, str]

    def column(self, field: str) -> str | None:
        """The indexed column holding ``field``: a hot field's, or the primary key for ``event.id``."""
        return "event_id" if field == ID_FIELD else self.hot.get(field)


def json_path(field: str) -> str:
    """The JSON path of a flat dotted key: ``$."source.ip"``."""
    return '$."' + field.replace("\\", "\\\\").replace('"', '\\"') + '"'


class WhereBuilder:
    """Collects named parameters while turning a tree (or a sort / group key) into SQL."""

    def __init__(
        self, layout: Layout, *, multi: bool = False, alias: str = "e",
        types: Callable[[str], FieldType | None] = field_type,
    ) -> None:
        self.layout = layout
        self.multi = multi
        self.alias = alias
        self.types = types
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    # -- WHERE ----------------------------------------------------------------------------
    def where(self, node: ast.Node) -> str:
        handler = _NODES[type(node)]
        return handler(self, node)

    def _bool(self, node: ast.Bool) -> str:
        """As few parentheses per level as SQL allows: SQLite's parser has a fixed stack (100 entries
        in 3.40) and answers "parser stack overflow" past it, so every level of the tree costs some of
        it. An exclusion is ``(x) IS NOT TRUE`` (true when x is 0 or NULL, as ``NOT IFNULL(x, 0)``
        was) because a postfix test holds no stack while x is parsed; a group of only optional
        clauses is one parenthesised chain, not a chain inside a conjunction."""
        should = [self.where(n) for n in node.should]
        if should and not node.must and not node.must_not:
            return _chain("OR", should)
        parts = [self.where(n) for n in node.must]
        if should:
            parts.append(_chain("OR", should))
        for n in node.must_not:
            inner = self.where(n)
            parts.append(f"{inner if isinstance(n, ast.Bool) else f'({inner})'} IS NOT TRUE")
        return _chain("AND", parts or ["1"])

    def leaf(self, field: str, pred: Callable[[str], str]) -> str:
        """``pred`` of one value expression, applied to the column or to each document value.

        As on Elasticsearch, a keyword value longer than ``ignore_above`` is kept but matches
        nothing (not even ``_exists_``), and a key inside a ``flattened`` object is found in
        every object of that field, its value read as a keyword."""
        e = self.alias
        if field == TS_FIELD:
            return pred(f"{e}.ts")
        kind = self.types(field)
        if kind in ("keyword", None):
            inner = pred

            def pred(v: str) -> str:
                return f"(typeof({v}) != 'text' OR length({v}) <= {KEYWORD_IGNORE_ABOVE}) AND {inner(v)}"

        root = flattened_root(field)
        if root is not None:
            sub = self.param(field[len(root) + 1:])
            key = "" if root == field else f" AND zflat_key(fullkey, {self.param(len(json_path(root)))}) = {sub}"
            value = "zflat_value(type, value)"
            return (f"EXISTS (SELECT 1 FROM json_tree({e}.doc, {self.param(json_path(root))}) "
                    f"WHERE type NOT IN ('object', 'array'){key} AND {pred(value)})")
        path = self.param(json_path(field))
        from_doc = f"EXISTS (SELECT 1 FROM json_each({e}.doc, {path}) WHERE {pred('value')})"
        column = self.layout.column(field)
        if column is None:
            return from_doc
        if not self.multi or field not in self.layout.hot:
            return pred(f"{e}.{column}")
        marker = self.param(f"|{field}|")
        return f"({pred(f'{e}.{column}')} OR ({e}.multi IS NOT NULL AND instr({e}.multi, {marker}) AND {from_doc}))"

    def _exists(self, node: ast.Exists) -> str:
        if node.field == TS_FIELD:
            return "1"
        return self.leaf(node.field, lambda v: f"{v} IS NOT NULL")

    def _equals(self, node: ast.Equals) -> str:
        value = node.value
        p = self.param(value)
        hot = self.layout.column(node.field) is not None
        if isinstance(value, str) and not hot:
            # ES keyword fields hold numbers as their text: event.code 4625 matches "4625"
            return self.leaf(node.field, lambda v: f"(CASE WHEN typeof({v}) = 'text' THEN {v} ELSE CAST({v} AS TEXT) END) = {p}")
        return self.leaf(node.field, lambda v: f"{v} = {p}")

    def _between(self, node: ast.Between) -> str:
        conv = _CONVERTERS[node.kind]
        if node.field == TS_FIELD and node.kind == "date":
            conv = "{}"
        low = None if node.low is None else self.param(node.low)
        high = None if node.high is None else self.param(node.high)
        prefix = None if node.prefix is None else self.param(node.prefix + "*")

        def pred(v: str) -> str:
            x = conv.format(v)
            parts = [] if prefix is None else [f"{v} GLOB {prefix}"]
            if low is not None:
                parts.append(f"{x} {'>=' if node.include_low else '>'} {low}")
            if high is not None:
                parts.append(f"{x} {'<=' if node.include_high else '<'} {high}")
            if not parts:
                parts.append(f"{x} IS NOT NULL")
            return "(" + " AND ".join(parts) + ")"

        return self.leaf(node.field, pred)

    def _glob(self, node: ast.Glob) -> str:
        p = self.param(node.glob)
        return self.leaf(node.field, lambda v: f"{v} GLOB {p}")

    def _regexp(self, node: ast.Regexp) -> str:
        p = self.param(node.pattern)
        return self.leaf(node.field, lambda v: f"zregexp({p}, {v})")

    def _phrase(self, node: ast.TextPhrase) -> str:
        p = self.param(orjson.dumps(node.tokens).decode())
        slop = self.param(node.slop)
        longest = max(node.tokens, key=len)
        if not longest.isascii():
            return self.leaf(node.field, lambda v: f"ztext_phrase({v}, {p}, {slop})")
        # a cheap C prefilter first (LIKE ignores ASCII case, as the analyser does), the Python
        # tokenizer only on the rows that can match
        like = self.param("%" + re.sub(r"([%_\\])", r"\\\1", longest) + "%")
        return self.leaf(node.field, lambda v: f"({v} LIKE {like} ESCAPE '\\' AND ztext_phrase({v}, {p}, {slop}))")

    def _fuzzy(self, node: ast.Fuzzy) -> str:
        term, edits = self.param(node.term), self.param(node.edits)
        fn = "ztext_fuzzy" if node.text else "zfuzzy"
        return self.leaf(node.field, lambda v: f"{fn}({v}, {term}, {edits})")

    def _text_range(self, node: ast.TextRange) -> str:
        args = ", ".join(self.param(x) for x in (node.low, node.high, node.include_low, node.include_high))
        return self.leaf(node.field, lambda v: f"ztext_range({v}, {args})")

    def _pattern(self, node: ast.TextPattern) -> str:
        p, lucene = self.param(node.regex), self.param(int(node.lucene))
        return self.leaf(node.field, lambda v: f"ztext_pattern({v}, {p}, {lucene})")

    # -- sort and group keys --------------------------------------------------------------
    def value_conv(self, field: str) -> str:
        """SQL that makes one stored value of ``field`` comparable by its type."""
        return _BY_TYPE.get(self.types(field) or "keyword", "{}")

    def sort_key(self, field: str, descending: bool) -> str:
        """One comparable value per document (min ascending, max descending, like ES)."""
        e = self.alias
        if field == TS_FIELD:
            return f"{e}.ts"
        conv = self.value_conv(field)
        column = self.layout.column(field)
        if column is not None and not self.multi:
            return conv.format(f"{e}.{column}")
        pick = "MAX" if descending else "MIN"
        return f"(SELECT {pick}({conv.format('value')}) FROM json_each({e}.doc, {self.param(json_path(field))}))"


#: Terms of one chain (``a OR b OR ...``) before they are grouped: SQLite nests a chain one expression
#: level per term and refuses past 1000 levels ("Expression tree is too large"), counted through every
#: nested group, so 1,000 values in a term list (or a group first in each of many nested chains) failed.
#: Groups of 16 keep a chain's depth near 16 * log16(terms) at a parenthesis per 16-fold.
CHAIN = 16


def _chain(op: str, parts: list[str]) -> str:
    """``parts`` joined by ``op`` in parentheses, grouped ``CHAIN`` at a time (SQLite still splits the
    nested ``OR`` terms for its index lookups: a parenthesis is not a node of its expression tree)."""
    while len(parts) > CHAIN:
        parts = ["(" + f" {op} ".join(parts[i:i + CHAIN]) + ")" for i in range(0, len(parts), CHAIN)]
    return "(" + f" {op} ".join(parts) + ")"


_CONVERTERS = {"num": "{}", "str": "{}", "ip": "zip_key({})", "date": "zepoch({})"}
_BY_TYPE = {"ip": "zip_key({})", "date": "zepoch({})"}

_NODES: dict[type, Callable[[WhereBuilder, Any], str]] = {
    ast.MatchAll: lambda b, n: "1",
    ast.MatchNone: lambda b, n: "0",
    ast.Bool: WhereBuilder._bool,
    ast.Exists: WhereBuilder._exists,
    ast.Equals: WhereBuilder._equals,
    ast.Between: WhereBuilder._between,
    ast.Glob: WhereBuilder._glob,
    ast.Regexp: WhereBuilder._regexp,
    ast.TextPhrase: WhereBuilder._phrase,
    ast.TextPattern: WhereBuilder._pattern,
    ast.Fuzzy: WhereBuilder._fuzzy,
    ast.TextRange: WhereBuilder._text_range,
}


# -- functions on the connection ----------------------------------------------------------


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=1024)
def _tokens(arg: str) -> tuple[str, ...]:
    return tuple(orjson.loads(arg))


def _regexp(pattern: str, value: object) -> int:
    return int(isinstance(value, str) and compile_lucene(pattern)(value))


def _text_phrase(value: object, tokens_json: str, slop: int = 0) -> int:
    if not isinstance(value, str):
        return 0
    have = analyze(value)
    want = _tokens(tokens_json)
    n = len(want)
    if n == 1:
        return int(want[0] in have)
    if slop:
        return int(phrase_slop([[i for i, tok in enumerate(have) if tok == w] for w in want], slop))
    first = want[0]
    return int(any(have[i : i + n] == want for i, tok in enumerate(have) if tok == first))


def _fuzzy(value: object, term: str, edits: int) -> int:
    return int(isinstance(value, str) and within_edits(value, term, edits))


def _text_fuzzy(value: object, term: str, edits: int) -> int:
    return int(isinstance(value, str) and any(within_edits(tok, term, edits) for tok in set(analyze(value))))


def _text_range(value: object, low: str | None, high: str | None, include_low: int, include_high: int) -> int:
    if not isinstance(value, str):
        return 0
    for tok in analyze(value):
        if low is not None and (tok < low or (tok == low and not include_low)):
            continue
        if high is not None and (tok > high or (tok == high and not include_high)):
            continue
        return 1
    return 0


def _text_pattern(value: object, regex: str, lucene: int = 0) -> int:
    if not isinstance(value, str):
        return 0
    if lucene:
        test = compile_lucene(regex)
        return int(any(test(tok) for tok in analyze(value)))
    rx = _regex(regex)
    return int(any(rx.match(tok) for tok in analyze(value)))


class _Distinct:
    """``zcard(json array)``: distinct values over every document of a bucket (ES cardinality, exact)."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()

    def step(self, values: str | None) -> None:
        if values is None:
            return
        for v in orjson.loads(values):
            if v is not None:
                self.seen.add(v)

    def finalize(self) -> int:
        return len(self.seen)


_INDEX = re.compile(r"\[\d+\]")


def _flat_key(fullkey: str, root_length: int) -> str:
    """``$."dns.answers"[1].data`` -> ``data``: the dotted key of a leaf inside a flattened object."""
    return _INDEX.sub("", fullkey[root_length:]).lstrip(".").replace('"', "")


def _flat_value(kind: str, value: object) -> str:
    """A flattened leaf as Elasticsearch indexes it: always a keyword (``true``, ``300``)."""
    if kind in ("true", "false"):
        return kind
    return value if isinstance(value, str) else str(value)


def register_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("zflat_key", 2, _flat_key, deterministic=True)
    conn.create_function("zflat_value", 2, _flat_value, deterministic=True)
    conn.create_function("zip_key", 1, ip_key, deterministic=True)
    conn.create_function("zepoch", 1, epoch_ms, deterministic=True)
    conn.create_function("zregexp", 2, _regexp, deterministic=True)
    conn.create_function("ztext_phrase", 3, _text_phrase, deterministic=True)
    conn.create_function("zfuzzy", 3, _fuzzy, deterministic=True)
    conn.create_function("ztext_fuzzy", 3, _text_fuzzy, deterministic=True)
    conn.create_function("ztext_range", 5, _text_range, deterministic=True)
    conn.create_function("ztext_pattern", 3, _text_pattern, deterministic=True)
    conn.create_aggregate("zcard", 1, _Distinct)  # type: ignore[arg-type]
