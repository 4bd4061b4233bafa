"""Lucene query strings (what analysts type in Kibana) as a typed ``ast`` tree.

luqum does the parsing; this module gives the tree Lucene's meaning, as Elasticsearch's
``query_string`` query does with ``default_field: message`` and the default ``OR`` operator:

- plain words side by side are one value (ES ``split_on_whitespace`` off): ``user.name:(a b)``
  is the keyword "a b", while on ``message`` the analyser splits it into tokens again;
- boolean clauses follow Lucene's classic QueryParser, not textbook precedence:
  ``a AND b OR c`` is ``+a +b c`` (``c`` only matters when nothing is required), ``-x`` and
  ``NOT x`` exclude, ``+x`` requires, and a group of only exclusions means "everything else";
- each value is read by its field's type from ``eventstore.schema.field_type`` (a registry of
  ``FieldKind`` objects, one per type): keywords exact and case-sensitive, ``message`` analysed
  into lowercase tokens, IPs with CIDR blocks, numbers, dates with date math;
- ``field:*`` and ``_exists_:field`` test presence; a bare ``*`` (or ``*:*``) matches everything.

Fuzzy terms (``root~``, ``~N``: Damerau-Levenshtein, ``AUTO`` edits as ES) and sloppy phrases
(``"failed root"~2``) follow Lucene's definitions.
Every error is a ``QuerySyntaxError`` with the 0-based position of the fault.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from luqum import tree
from luqum.exceptions import ParseError
from luqum.thread import parse as luqum_parse

from eventstore.errors import QuerySyntaxError
from eventstore.query import ast
from eventstore.query.values import (
    analyze,
    auto_edits,
    canonical_ip,
    glob_to_regex,
    glob_to_sqlite,
    ip_block,
    ip_key,
    ipv4_prefix,
    parse_date,
    unescape,
)
from eventstore.schema import FieldType, field_type
from eventstore.timeutil import utcnow

DEFAULT_FIELD = "message"
Operator = Literal["OR", "AND"]
#: Elasticsearch's query_string default; a SOC store answers like Kibana does.
DEFAULT_OPERATOR: Operator = "OR"

_POSITION = re.compile(r"position (\d+)")
_MUST, _SHOULD, _MUST_NOT = "must", "should", "must_not"


def parse(
    query: str,
    *,
    now: datetime | None = None,
    default_field: str = DEFAULT_FIELD,
    default_operator: Operator = DEFAULT_OPERATOR,
    types: Callable[[str], FieldType | None] = field_type,
) -> ast.Node:
    """The query as a typed tree; raises ``QuerySyntaxError`` (with position) when it is not one."""
    text = query.strip()
    if text in ("", "*", "*:*"):
        return ast.MatchAll()
    try:
        item = luqum_parse(query)
    except ParseError as exc:
        m = _POSITION.search(str(exc))
        position = int(m.group(1)) if m else len(query)
        raise QuerySyntaxError(_reason(str(exc)), query, position) from None
    return _Translator(query, now or utcnow(), default_field, default_operator, types).node(item, None)


def _reason(message: str) -> str:
    message = message.replace("Syntax error in input : ", "").rstrip("!")
    message = re.sub(r"\s+at (position \d+|the end)$", "", message)
    return re.sub(r"\s+", " ", message)


class _Translator:
    def __init__(
        self, query: str, now: datetime, default_field: str, operator: Operator,
        types: Callable[[str], FieldType | None],
    ) -> None:
        self.query = query
        self.now = now
        self.default_field = default_field
        self.operator = operator
        self.types = types

    def error(self, message: str, item: Any) -> QuerySyntaxError:
        pos = getattr(item, "pos", None)
        return QuerySyntaxError(message, self.query, pos if isinstance(pos, int) else None)

    # -- structure ------------------------------------------------------------------------
    def node(self, item: Any, field: str | None) -> ast.Node:
        """Dispatch on the luqum element's class (nearest registered base class wins)."""
        for cls in type(item).__mro__:
            handler = _ELEMENTS.get(cls)
            if handler is not None:
                return handler(self, item, field)
        raise self.error(f"unsupported query element {item!s}", item)

    def search_field(self, item: tree.SearchField, outer: str | None) -> ast.Node:
        if outer is not None:
            raise self.error(f"field {item.name!r} inside the value of field {outer!r}", item)
        name = unescape(item.name)
        if name == "_exists_":
            if not isinstance(item.expr, tree.Word | tree.Phrase):
                raise self.error("_exists_ takes a field name", item.expr)
            return ast.Exists(_term_text(item.expr))
        if name == "*":
            if isinstance(item.expr, tree.Word) and item.expr.value == "*":
                return ast.MatchAll()
            raise self.error("searching every field (*:value) is not supported; name the field", item)
        return self.node(item.expr, name)

    def boolean(self, item: Any, field: str | None) -> ast.Node:
        """Lucene classic ``addClause``: conjunctions change the occurrence of their neighbours."""
        clauses: list[list[Any]] = []  # [occur, node]
        for conj, clause in _merge_words(_flatten(item, None)):
            mods = None
            inner = clause
            if isinstance(clause, tree.Plus):
                mods, inner = _MUST, clause.a
            elif isinstance(clause, tree.Not | tree.Prohibit):
                mods, inner = _MUST_NOT, clause.a
            if clauses and conj == "AND" and clauses[-1][0] != _MUST_NOT:
                clauses[-1][0] = _MUST
            if clauses and self.operator == "AND" and conj == "OR" and clauses[-1][0] != _MUST_NOT:
                clauses[-1][0] = _SHOULD
            if self.operator == "OR":
                required = mods == _MUST or (conj == "AND" and mods != _MUST_NOT)
            else:
                required = mods != _MUST_NOT and conj != "OR"
            occur = _MUST_NOT if mods == _MUST_NOT else (_MUST if required else _SHOULD)
            clauses.append([occur, self.node(inner, field)])
        must = tuple(n for o, n in clauses if o == _MUST)
        should = tuple(n for o, n in clauses if o == _SHOULD)
        must_not = tuple(n for o, n in clauses if o == _MUST_NOT)
        if must:
            should = ()  # optional clauses only score in Lucene; they never filter
        if not must_not and len(must) + len(should) == 1:
            return (must or should)[0]
        return ast.Bool(must, should, must_not)

    # -- values ---------------------------------------------------------------------------
    def kind(self, field: str) -> FieldKind:
        return KINDS.get(self.types(field) or "keyword", KINDS["keyword"])

    def term(self, item: tree.Term, field: str | None) -> ast.Node:
        name = field or self.default_field
        if isinstance(item, tree.Word) and item.value == "*":
            return ast.MatchAll() if field is None else ast.Exists(name)
        kind = self.kind(name)
        try:
            if isinstance(item, tree.Regex):
                return kind.regexp(name, item.value[1:-1])
            if isinstance(item, tree.Word) and item.has_wildcard():
                return kind.wildcard(name, item.value)
            if isinstance(item, tree.Phrase):
                return kind.phrase(name, _term_text(item), self)
            return kind.term(name, _term_text(item), self)
        except ValueError as exc:
            raise self.error(str(exc), item) from None

    def fuzzy(self, item: tree.Fuzzy, field: str | None) -> ast.Node:
        """``term~`` (ES ``AUTO`` edits) or ``term~N`` (at most 2), Damerau-Levenshtein."""
        name = field or self.default_field
        term = _term_text(item.term)
        edits = auto_edits(term) if item._implicit_degree or item.degree < 1 else min(int(item.degree), 2)
        try:
            return self.kind(name).fuzzy(name, term, edits)
        except ValueError as exc:
            raise self.error(str(exc), item) from None

    def proximity(self, item: tree.Proximity, field: str | None) -> ast.Node:
        name = field or self.default_field
        kind = self.kind(name)
        if not isinstance(kind, TextKind):
            return self.term(item.term, field)  # ES: a phrase on a keyword is its exact value
        tokens = analyze(_term_text(item.term))
        return ast.TextPhrase(name, tokens, int(item.degree)) if tokens else ast.MatchNone()

    def range(self, item: Any, field: str) -> ast.Node:
        kind = self.kind(field)
        if isinstance(item, tree.Range):
            low, high = _bound(item.low), _bound(item.high)
            include_low, include_high = item.include_low, item.include_high
        elif isinstance(item, tree.From):
            low, high, include_low, include_high = _bound(item.a), None, item.include, True
        else:
            low, high, include_low, include_high = None, _bound(item.a), True, item.include
        try:
            return kind.range(field, low, high, include_low, include_high, self)
        except ValueError as exc:
            raise self.error(str(exc), item) from None


#: luqum element class -> how it becomes part of the tree
_ELEMENTS: dict[type, Callable[[_Translator, Any, str | None], ast.Node]] = {
    tree.BaseOperation: lambda t, item, field: t.boolean(item, field),
    tree.UnaryOperator: lambda t, item, field: t.boolean(item, field),
    tree.BaseGroup: lambda t, item, field: t.boolean(item.expr, field),
    tree.Boost: lambda t, item, field: t.node(item.expr, field),  # no scoring here: boosts change nothing
    tree.SearchField: lambda t, item, field: t.search_field(item, field),
    tree.Range: lambda t, item, field: t.range(item, field or t.default_field),
    tree.OpenRange: lambda t, item, field: t.range(item, field or t.default_field),
    tree.Fuzzy: lambda t, item, field: t.fuzzy(item, field),
    tree.Proximity: lambda t, item, field: t.proximity(item, field),
    tree.Term: lambda t, item, field: t.term(item, field),
}


def _flatten(item: Any, conj: str | None) -> list[tuple[str | None, Any]]:
    """Clauses of one boolean level in source order, each with the conjunction before it."""
    if isinstance(item, tree.BaseOperation):
        op = item.op or None  # implicit operator: ""
        out: list[tuple[str | None, Any]] = []
        for i, child in enumerate(item.operands):
            out.extend(_flatten(child, conj if i == 0 else op))
        return out
    return [(conj, item)]


def _plain_word(item: Any) -> bool:
    return isinstance(item, tree.Word) and item.value != "*" and not item.has_wildcard()


def _merge_words(clauses: list[tuple[str | None, Any]]) -> list[tuple[str | None, Any]]:
    """Plain words side by side with no operator are one value, as in ES (``split_on_whitespace``
    is off): ``user.name:(alice bob)`` looks for the keyword "alice bob"; on ``message`` the
    analyser splits it again, so bare words still match any of their tokens."""
    out: list[tuple[str | None, Any]] = []
    for conj, clause in clauses:
        if out and conj is None and _plain_word(clause) and _plain_word(out[-1][1]):
            prev_conj, prev = out[-1]
            out[-1] = (prev_conj, tree.Word(f"{prev.value} {clause.value}", pos=prev.pos))
        else:
            out.append((conj, clause))
    return out


def _term_text(item: Any) -> str:
    if isinstance(item, tree.Phrase):
        return unescape(item.value[1:-1])
    if isinstance(item, tree.Prohibit):  # a negative number as a range bound
        return "-" + _term_text(item.a)
    return unescape(str(item.value))


def _bound(item: Any) -> str | None:
    if isinstance(item, tree.Word) and item.value == "*":
        return None
    return _term_text(item)


# -- field kinds: how each ES type reads a value ------------------------------------------


class FieldKind:
    """A keyword field (also the fallback for unknown and ``object`` fields)."""

    range_kind = "str"

    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        return ast.Equals(field, value)

    def phrase(self, field: str, value: str, t: _Translator) -> ast.Node:
        """A quoted value: the same as a bare one, except on ``text`` fields."""
        return self.term(field, value, t)

    def wildcard(self, field: str, raw: str) -> ast.Node:
        return ast.Glob(field, glob_to_sqlite(raw), glob_to_regex(raw))

    def regexp(self, field: str, pattern: str) -> ast.Node:
        return ast.Regexp(field, _check_regex(pattern))

    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        return ast.Fuzzy(field, term, edits)

    def value(self, text: str, t: _Translator) -> Any:
        return text

    def range(
        self, field: str, low: str | None, high: str | None, include_low: bool, include_high: bool,
        t: _Translator,
    ) -> ast.Node:
        lo = None if low is None else self.value(low, t)
        hi = None if high is None else self.value(high, t)
        return ast.Between(field, self.range_kind, lo, hi, include_low, include_high)


class TextKind(FieldKind):
    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        tokens = analyze(value)
        if not tokens:
            return ast.MatchNone()
        if len(tokens) == 1:
            return ast.TextPhrase(field, tokens)
        parts = tuple(ast.TextPhrase(field, (tok,)) for tok in tokens)
        return ast.Bool(must=parts) if t.operator == "AND" else ast.Bool(should=parts)

    def phrase(self, field: str, value: str, t: _Translator) -> ast.Node:
        tokens = analyze(value)
        return ast.TextPhrase(field, tokens) if tokens else ast.MatchNone()

    def wildcard(self, field: str, raw: str) -> ast.Node:
        return ast.TextPattern(field, glob_to_regex(raw.lower()))

    def regexp(self, field: str, pattern: str) -> ast.Node:
        return ast.TextPattern(field, "^(?:" + _check_regex(pattern) + ")$")

    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        return ast.Fuzzy(field, term.lower(), edits, text=True)

    def range(
        self, field: str, low: str | None, high: str | None, include_low: bool, include_high: bool,
        t: _Translator,
    ) -> ast.Node:
        lo = None if low is None else low.lower()
        hi = None if high is None else high.lower()
        return ast.TextRange(field, lo, hi, include_low, include_high)


class IpKind(FieldKind):
    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        raise ValueError(f"fuzzy queries (~) apply to keyword and text fields, not ip field {field!r}")

    range_kind = "ip"

    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        if "/" in value:
            try:
                lo, hi = ip_block(value)
                net = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a CIDR block for ip field {field!r}") from None
            prefix = ipv4_prefix(str(net.network_address), str(net.broadcast_address))
            return ast.Between(field, "ip", lo, hi, prefix=prefix)
        try:
            return ast.Equals(field, canonical_ip(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address for ip field {field!r}") from None

    def wildcard(self, field: str, raw: str) -> ast.Node:
        raise ValueError(f"wildcards do not apply to ip field {field!r}: use a CIDR block like \"10.0.0.0/8\"")

    def regexp(self, field: str, pattern: str) -> ast.Node:
        raise ValueError(f"regular expressions do not apply to ip field {field!r}")

    def range(
        self, field: str, low: str | None, high: str | None, include_low: bool, include_high: bool,
        t: _Translator,
    ) -> ast.Node:
        node = super().range(field, low, high, include_low, include_high, t)
        if low is None or high is None or not isinstance(node, ast.Between):
            return node
        return ast.Between(field, "ip", node.low, node.high, include_low, include_high, ipv4_prefix(low, high))

    def value(self, text: str, t: _Translator) -> Any:
        key = ip_key(text)
        if key is None:
            raise ValueError(f"{text!r} is not an IP address")
        return key


class NumberKind(FieldKind):
    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        raise ValueError(f"fuzzy queries (~) apply to keyword and text fields, not numeric field {field!r}")

    range_kind = "num"

    def __init__(self, integer: bool) -> None:
        self.integer = integer

    def value(self, text: str, t: _Translator) -> Any:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        return int(number) if number.is_integer() else number

    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        try:
            return ast.Equals(field, self.value(value, t))
        except ValueError:
            raise ValueError(f"{value!r} is not a number for numeric field {field!r}") from None

    def wildcard(self, field: str, raw: str) -> ast.Node:
        raise ValueError(f"wildcards do not apply to numeric field {field!r}: use a range like [1 TO 9]")

    def regexp(self, field: str, pattern: str) -> ast.Node:
        raise ValueError(f"regular expressions do not apply to numeric field {field!r}")


class DateKind(FieldKind):
    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        raise ValueError(f"fuzzy queries (~) apply to keyword and text fields, not date field {field!r}")

    range_kind = "date"

    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        span = parse_date(value, t.now)
        return ast.Between(field, "date", span.start, span.end)

    def wildcard(self, field: str, raw: str) -> ast.Node:
        raise ValueError(f"wildcards do not apply to date field {field!r}: use a range")

    def regexp(self, field: str, pattern: str) -> ast.Node:
        raise ValueError(f"regular expressions do not apply to date field {field!r}")

    def range(
        self, field: str, low: str | None, high: str | None, include_low: bool, include_high: bool,
        t: _Translator,
    ) -> ast.Node:
        # As ES: gte/lt take the first millisecond a value names, gt/lte the last.
        lo = hi = None
        if low is not None:
            span = parse_date(low, t.now)
            lo = span.start if include_low else span.end
        if high is not None:
            span = parse_date(high, t.now)
            hi = span.end if include_high else span.start
        return ast.Between(field, "date", lo, hi, include_low, include_high)


class BooleanKind(FieldKind):
    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        raise ValueError(f"fuzzy queries (~) apply to keyword and text fields, not boolean field {field!r}")

    def term(self, field: str, value: str, t: _Translator) -> ast.Node:
        if value not in ("true", "false"):
            raise ValueError(f"{value!r} is not true or false for boolean field {field!r}")
        return ast.Equals(field, value == "true")


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression /{pattern}/: {exc}") from None
    return pattern


#: ES mapping type -> how a query value is read for it
KINDS: dict[str, FieldKind] = {
    "keyword": FieldKind(),
    "object": FieldKind(),
    "text": TextKind(),
    "ip": IpKind(),
    "long": NumberKind(integer=True),
    "float": NumberKind(integer=False),
    "date": DateKind(),
    "boolean": BooleanKind(),
}
