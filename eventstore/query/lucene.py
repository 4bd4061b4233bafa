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
Every error is a ``QuerySyntaxError`` with the 0-based position of the fault, including a query
longer than ``MAX_QUERY_CHARS`` or nested deeper than ``MAX_DEPTH`` (parentheses here, groups and
operators inside a ``/regex/`` in ``lucene_regex``): nothing recurses past those.
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
from eventstore.query.lucene_regex import compile_lucene
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
from eventstore.schema import FieldType, field_type, flattened_root
from eventstore.timeutil import utcnow

DEFAULT_FIELD = "message"
Operator = Literal["OR", "AND"]
#: Elasticsearch's query_string default; a SOC store answers like Kibana does.
DEFAULT_OPERATOR: Operator = "OR"

#: How deep parentheses may nest. Every level costs stack in each walk of the query: the translator
#: recurses per level (Python's recursion limit: ~300 levels raised RecursionError, a traceback in
#: ``soc hunt`` and a 500 on the dashboard), and SQLite's parser, which has a fixed stack (100 entries
#: in 3.40) and answered "parser stack overflow" for the SQL of 11 levels (24 since ``sqlite.WhereBuilder``
#: spends less per level). Refused here, once, so every front reports a bad query and every compiled
#: form (SQL, the ES query string) stays within what its backend parses; analysts' queries nest a few.
MAX_DEPTH = 20
#: The longest query string, and the most words (terms, operators, phrases: what whitespace and
#: parentheses separate) in it: luqum's parser grows an operation by copying its operands (quadratic),
#: so 16,000 words took 5 s before anything else was checked; 4,096 (1,024 clauses with an operator
#: and a NOT each) parse in well under a second.
MAX_QUERY_CHARS = 65_536
MAX_WORDS = 4096
#: Lucene's default ``maxClauseCount``, counted as Lucene 9 does (every leaf of the whole tree;
#: Elasticsearch refuses past its own limit too): SQLite plans an ``OR`` of n terms in about n^2
#: time (2,000 tokens of ``message`` took 3 s), and a 20,000-character query holds 5,000.
MAX_CLAUSES = 1024

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
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query longer than {MAX_QUERY_CHARS} characters", query, MAX_QUERY_CHARS)
    text = query.strip()
    if text in ("", "*", "*:*"):
        return ast.MatchAll()
    lexed, origin = _operators(query)
    try:
        item = luqum_parse(lexed)
    except ParseError as exc:
        m = _POSITION.search(str(exc))
        position = origin[min(int(m.group(1)), len(origin) - 1)] if m else len(query)
        raise QuerySyntaxError(_reason(str(exc)), query, position) from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # luqum's own checks (a fuzzy degree "~.") fail so
        raise QuerySyntaxError(f"{type(exc).__name__} in the query's terms", query, len(query)) from None
    return _Translator(query, now or utcnow(), default_field, default_operator, types, origin).node(item, None)


#: Characters that end a term in Lucene's classic grammar (``&`` and ``|`` do not: ``a&&b`` is one term).
_TERM_END = frozenset(' \t\n\r\u3000()[]{}:^~"!/')
_TOKEN_START = frozenset(' \t\n\r\u3000()')
#: Control characters inside ``/regex/``, carried through luqum in private-use stand-ins.
_CONTROL_IN = {"\n": "\ue000", "\r": "\ue001", "\t": "\ue002"}
_CONTROL_OUT = str.maketrans({v: k for k, v in _CONTROL_IN.items()})


def _operators(query: str) -> tuple[str, list[int]]:
    """Lucene's other spellings of the operators, which luqum reads as words: ``&&`` ``||`` ``!``
    become ``AND`` ``OR`` ``NOT`` where Lucene's lexer takes them as operators (``&&`` alone, not
    ``a&&b``). Quoted phrases, ``/regex/`` and range bounds are copied as they are. A ``/`` inside a
    term starts a regex Lucene never closes (``10.0.0.0/8`` unquoted): refused as Elasticsearch does.
    Parentheses nest at most ``MAX_DEPTH`` deep (counted here, where quotes, regexes and ranges are
    known, before anything recurses). Returns the text for luqum and, per character of it, its offset
    in ``query``."""
    out: list[str] = []
    origin: list[int] = []
    i, n = 0, len(query)

    def emit(text: str, at: int) -> None:
        out.append(text)
        origin.extend([at] * len(text))

    def copy_to(end: int) -> None:
        nonlocal i
        for k in range(i, end):
            emit(query[k], k)
        i = end

    def closing(start: int, stop: str) -> int:
        k = start + 1
        while k < n and query[k] not in stop:
            k += 2 if query[k] == "\\" else 1
        return min(k + 1, n)

    at_start = True
    depth = 0
    words, between = 0, True  # words so far; whether the last character separated two
    colons = 0  # in the current term: `field:value` has one; Lucene refuses `a:b:c` and `t:12:00`
    while i < n:
        ch = query[i]
        if ch not in _TOKEN_START and between:
            words += 1
            if words > MAX_WORDS:
                raise QuerySyntaxError(f"more than {MAX_WORDS} words and operators", query, i)
        between = ch in _TOKEN_START
        if ch in _TOKEN_START:
            colons = 0
        elif ch == ":":
            colons += 1
            if colons > 1:
                raise QuerySyntaxError("unexpected ':' (escape it: \\:)", query, i)
        if ch == "/" and not at_start and query.find("/", i + 1) < 0:
            raise QuerySyntaxError("unexpected '/' inside a term (quote a CIDR block: \"10.0.0.0/8\")", query, i)
        if ch == "/":
            # Lucene ends the term here and reads a regex up to the next `/` (so `8.8.8.8/32 OR x:1/2`
            # holds the regex /32 OR x:1/): the same split, luqum needs a space to see it
            if not at_start:
                emit(" ", i)
            end = closing(i, "/")
            for k in range(i, end):  # luqum refuses control characters inside a regex; Lucene does not
                emit(_CONTROL_IN.get(query[k], query[k]), k)
            i = end
            at_start = False
        elif ch == "\\":
            copy_to(min(i + 2, n))
            at_start = False
        elif ch == '"':
            copy_to(closing(i, '"'))
            at_start = False
        elif ch in "[{":
            copy_to(closing(i, "]}"))
            at_start = False
        elif ch == "!" and not (i + 1 < n and query[i + 1] in " \t\n\r\u3000"):
            emit(" NOT ", i)
            i += 1
            at_start = True
        elif at_start and query[i:i + 2] in ("&&", "||") and (i + 2 >= n or query[i + 2] in _TERM_END):
            emit(" AND " if ch == "&" else " OR ", i)
            i += 2
            at_start = True
        else:
            if ch == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    raise QuerySyntaxError(f"parentheses nested more than {MAX_DEPTH} deep", query, i)
            elif ch == ")":
                depth = max(depth - 1, 0)  # an unmatched one is luqum's to report
            emit(ch, i)
            i += 1
            at_start = ch in _TOKEN_START or ch in ":+-"
    origin.append(n)
    return "".join(out), origin


def _reason(message: str) -> str:
    message = message.replace("Syntax error in input : ", "").rstrip("!")
    message = re.sub(r"\s+at (position \d+|the end)$", "", message)
    return re.sub(r"\s+", " ", message)


class _Translator:
    def __init__(
        self, query: str, now: datetime, default_field: str, operator: Operator,
        types: Callable[[str], FieldType | None], origin: list[int] | None = None,
    ) -> None:
        self.query = query
        self.origin = origin
        self.now = now
        self.default_field = default_field
        self.operator = operator
        self.types = types
        self.clauses = 0

    def error(self, message: str, item: Any) -> QuerySyntaxError:
        pos = getattr(item, "pos", None)
        if isinstance(pos, int) and self.origin is not None:
            pos = self.origin[min(pos, len(self.origin) - 1)]
        return QuerySyntaxError(message, self.query, pos if isinstance(pos, int) else None)

    # -- structure ------------------------------------------------------------------------
    def node(self, item: Any, field: str | None) -> ast.Node:
        """Dispatch on the luqum element's class (nearest registered base class wins)."""
        for cls in type(item).__mro__:
            handler = _ELEMENTS.get(cls)
            if handler is not None:
                return handler(self, item, field)
        raise self.error(f"unsupported query element {item!s}", item)

    def clause(self, node: ast.Node, item: Any) -> ast.Node:
        """Count ``node``'s leaves (a ``text`` value is one per token) toward ``MAX_CLAUSES``."""
        self.clauses += len(node.must) + len(node.should) + len(node.must_not) if isinstance(node, ast.Bool) else 1
        if self.clauses > MAX_CLAUSES:
            raise self.error(f"more than {MAX_CLAUSES} clauses (terms, and tokens of text values)", item)
        return node

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
            if isinstance(clause, tree.Plus | tree.Not | tree.Prohibit) and isinstance(
                    clause.a, tree.Plus | tree.Not | tree.Prohibit):
                # Lucene's grammar takes one modifier per clause: `NOT NOT x`, `NOT +x` do not parse
                raise self.error(f"unexpected {_modifier(clause.a)!r}", clause.a)
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
        if flattened_root(field) is not None:
            return KINDS["flattened"]
        return KINDS.get(self.types(field) or "keyword", KINDS["keyword"])

    def term(self, item: tree.Term, field: str | None) -> ast.Node:
        name = field or self.default_field
        if isinstance(item, tree.Word) and item.value == "*":
            return ast.MatchAll() if field is None else ast.Exists(name)
        kind = self.kind(name)
        try:
            if isinstance(item, tree.Regex):
                return kind.regexp(name, item.value[1:-1].translate(_CONTROL_OUT))
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
    tree.Range: lambda t, item, field: t.clause(t.range(item, field or t.default_field), item),
    tree.OpenRange: lambda t, item, field: t.clause(t.range(item, field or t.default_field), item),
    tree.Fuzzy: lambda t, item, field: t.clause(t.fuzzy(item, field), item),
    tree.Proximity: lambda t, item, field: t.clause(t.proximity(item, field), item),
    tree.Term: lambda t, item, field: t.clause(t.term(item, field), item),
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


def _modifier(item: Any) -> str:
    return "+" if isinstance(item, tree.Plus) else "-" if isinstance(item, tree.Prohibit) else "NOT"


def _plain_word(item: Any) -> bool:
    return isinstance(item, tree.Word) and item.value != "*" and not item.has_wildcard()


def _merge_words(clauses: list[tuple[str | None, Any]]) -> list[tuple[str | None, Any]]:
    """Plain words side by side with no operator are one value, as in ES (``split_on_whitespace``
    is off): ``user.name:(alice bob)`` looks for the keyword "alice bob"; on ``message`` the
    analyser splits it again, so bare words still match any of their tokens."""
    out: list[tuple[str | None, Any]] = []
    run: list[str] = []  # the plain words that make up out[-1] so far: joined once, at the run's end

    def close_run() -> None:
        if len(run) > 1:  # one Word per run (merging pairwise rescanned the growing value: quadratic)
            conj, first = out[-1]
            out[-1] = (conj, tree.Word(" ".join(run), pos=first.pos))

    for conj, clause in clauses:
        plain = _plain_word(clause)
        if run and conj is None and plain:
            run.append(clause.value)
            continue
        close_run()
        out.append((conj, clause))
        run = [clause.value] if plain else []
    close_run()
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
        _check_wildcard(raw)
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
        """As ES with ``analyze_wildcard``: the literal parts go through the analyser first. A prefix
        (``C\\:\\\\*``, ``a-b*``) is its tokens, the last one a prefix, OR-ed; other patterns keep
        their wildcards with each literal part replaced by its tokens run together."""
        stars, i = [], 0
        while i < len(raw):
            if raw[i] == "\\":
                i += 2
                continue
            if raw[i] in "*?":
                stars.append(i)
            i += 1
        if stars == [len(raw) - 1] and raw.endswith("*"):
            tokens = analyze(unescape(raw[:-1]))
            if not tokens:
                return ast.MatchNone()
            _check_wildcard(tokens[-1] + "*")
            parts: list[ast.Node] = [ast.TextPhrase(field, (tok,)) for tok in tokens[:-1]]
            parts.append(ast.TextPattern(field, "^" + re.escape(tokens[-1]) + ".*$"))
            return parts[0] if len(parts) == 1 else ast.Bool(should=tuple(parts))
        pieces: list[str] = []
        start = 0
        for i in [*stars, len(raw)]:
            pieces.append("".join(analyze(unescape(raw[start:i]))))
            if i < len(raw):
                pieces.append(raw[i])
            start = i + 1
        pattern = "".join(p if p in ("*", "?") else p.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
                          for p in pieces)
        _check_wildcard(pattern)
        return ast.TextPattern(field, glob_to_regex(pattern))

    def regexp(self, field: str, pattern: str) -> ast.Node:
        return ast.TextPattern(field, _check_regex(pattern), lucene=True)

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


class FlattenedKind(FieldKind):
    """A key of a ``flattened`` object (``dns.answers.data``): a keyword for terms, prefixes and closed
    ranges; Elasticsearch's query string answers no document for a regex, a fuzzy term or an open
    range on it (measured on 8.19), so neither does this."""

    def regexp(self, field: str, pattern: str) -> ast.Node:
        return ast.MatchNone()

    def fuzzy(self, field: str, term: str, edits: int) -> ast.Node:
        return ast.MatchNone()

    def range(
        self, field: str, low: str | None, high: str | None, include_low: bool, include_high: bool,
        t: _Translator,
    ) -> ast.Node:
        if low is None or high is None:
            return ast.MatchNone()
        return super().range(field, low, high, include_low, include_high, t)


#: Lucene refuses a wildcard whose automaton is too big: more than 1000 characters in a row
#: ("input automaton is too large: 1001"), or too costly to determinize after a ``*`` that is not
#: the last character (measured on 8.19: ``*`` then 445 characters, ``*`` 314 characters ``*``).
MAX_WILDCARD_CHARS = 1000
MAX_AFTER_STAR = (445, 314)  # (pattern not ending with *, ending with *)


def _check_wildcard(raw: str) -> None:
    if len(raw) - raw.count("*") > MAX_WILDCARD_CHARS:
        raise ValueError(f"wildcard pattern longer than {MAX_WILDCARD_CHARS} characters (Lucene's automaton limit)")
    inner = raw.rstrip("*")
    if "*" in inner:
        after = inner[inner.index("*"):]
        limit = MAX_AFTER_STAR[raw.endswith("*")]
        if len(after) - after.count("*") > limit:
            raise ValueError("wildcard pattern too costly for Lucene's automaton "
                             f"(more than {limit} characters after a leading *)")


def _check_regex(pattern: str) -> str:
    """A Lucene regex (its own syntax, see ``lucene_regex``), refused here if Lucene would refuse it."""
    compile_lucene(pattern)
    return pattern


#: ES mapping type -> how a query value is read for it
KINDS: dict[str, FieldKind] = {
    "keyword": FieldKind(),
    "object": FieldKind(),
    "flattened": FlattenedKind(),
    "text": TextKind(),
    "ip": IpKind(),
    "long": NumberKind(integer=True),
    "float": NumberKind(integer=False),
    "date": DateKind(),
    "boolean": BooleanKind(),
}
