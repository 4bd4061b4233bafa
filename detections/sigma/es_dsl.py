"""Sigma rules as Elasticsearch query DSL that never misses what the embedded engine matches.

Why not pySigma's Lucene query strings: a ``query_string`` over ``keyword`` fields is
case-sensitive and Sigma is not (``ParentImage|endswith: '\\WmiPrvSe.exe'`` missed
``...\\WmiPrvSE.exe``), a Lucene regex is anchored where Sigma's is a search, and a rule with
one construct Lucene lacks fell back whole to its mandatory fields. Here each comparison
becomes a ``term`` / ``prefix`` / ``wildcard`` query with ``case_insensitive: true``
(``|cased`` values without it), so keyword matching is Sigma's own; no mapping change and no
extra indexed sub-field are needed.

The contract, which makes Elasticsearch's alerts identical to SQLite's: every hit is
confirmed by the rule's compiled predicate (``es_eval``), so the query must select a
**superset** of the events the predicate accepts. Each comparison is translated either
exactly, or, when Elasticsearch cannot say it exactly (``|cidr`` on a keyword, a regex
beyond Lucene's syntax, a field reference, a value on a ``text`` field...), by a superset:
``match_all`` where the comparison stands positively, ``match_none`` under a ``NOT`` (the
polarity flips at each ``NOT``, so the whole query stays a superset). Two more supersets keep
exact comparisons honest: a keyword value longer than the mapping's ``ignore_above`` is not
indexed (the event is kept through the ``_ignored`` field), and the embedded engine reads a
Windows data field under its alias names (``Threat Name`` for ``ThreatName``), so a positive
comparison on ``winlog.event_data.X`` also keeps events without ``X``.

Hand-written because pySigma has no query-DSL backend; it walks the condition tree that the
processing pipeline already produced for the embedded engine (``CompiledRule.rule``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from eventstore.schema import FIELDS, field_type

Query = dict[str, Any]
MATCH_ALL: Query = {"match_all": {}}
MATCH_NONE: Query = {"match_none": {}}

_RANGE_OPS = {CompareOperators.LT: "lt", CompareOperators.LTE: "lte", CompareOperators.GT: "gt",
              CompareOperators.GTE: "gte"}
#: What Lucene's regular expressions read like Python's: literals, escaped punctuation, ``.``,
#: classes without escapes, groups without ``(?``, ``| * + ?``. Anything else (``\\d``, anchors,
#: lookaround, lazy quantifiers, ``\\n``, ``{m,n}``: its automaton after ``.*`` is refused as too
#: costly) is answered by a superset instead.
_LUCENE_SAFE_REGEX = re.compile(r"(?:[^\\^$()\[\]@&~<>#\"{}]|\\[^A-Za-z0-9]|\((?!\?)|\)|\[\^?(?:[^\\\]\[]|\\[^A-Za-z0-9])+\])*")
_LAZY = re.compile(r"[*+?}]\?")


def rule_query(trees: Sequence[Any]) -> Query:
    """The query for a rule's condition trees (several conditions are OR-ed)."""
    return _or([to_dsl(t, positive=True) for t in trees if t is not None])


def to_dsl(node: Any, *, positive: bool) -> Query:
    """A superset of ``node``'s matches when ``positive``, a subset otherwise (under a NOT)."""
    if isinstance(node, ConditionAND):
        return _and([to_dsl(a, positive=positive) for a in node.args])
    if isinstance(node, ConditionOR):
        if positive and _heavy(node.args):
            return MATCH_ALL
        return _or([to_dsl(a, positive=positive) for a in node.args], _ignored_fields(node.args, positive))
    if isinstance(node, ConditionNOT):
        inner = to_dsl(node.args[0], positive=not positive)
        if inner == MATCH_ALL:
            return MATCH_NONE
        if inner == MATCH_NONE:
            return MATCH_ALL
        return {"bool": {"must_not": [inner]}}
    if isinstance(node, ConditionFieldEqualsValueExpression):
        query, exact = _field_value(node.field, node.value)
        if query is None or not (exact or positive):
            return MATCH_ALL if positive else MATCH_NONE
        if positive:
            extra = _unindexed(node.field) + _ignored_fields([node], positive)
            return _or([query, *extra]) if extra else query
        return query
    # A keyword (a value of any field) or a construct we do not know: the superset.
    return MATCH_ALL if positive else MATCH_NONE


def _and(parts: list[Query]) -> Query:
    if any(p == MATCH_NONE for p in parts):
        return MATCH_NONE
    parts = [p for p in parts if p != MATCH_ALL]
    if not parts:
        return MATCH_ALL
    return parts[0] if len(parts) == 1 else {"bool": {"filter": parts}}


def _or(parts: list[Query], extra: Sequence[Query] = ()) -> Query:
    if any(p == MATCH_ALL for p in parts):
        return MATCH_ALL
    parts = [p for p in parts if p != MATCH_NONE]
    if not parts:
        return MATCH_NONE
    parts = [*parts, *(e for e in extra if e not in parts)]
    return parts[0] if len(parts) == 1 else {"bool": {"should": parts, "minimum_should_match": 1}}


def _kind(name: str) -> str | None:
    kind = field_type(name)
    if kind is None:
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        while parent:
            if FIELDS.get(parent) == "object":
                return "flattened"
            parent = parent.rsplit(".", 1)[0] if "." in parent else ""
        return "keyword"  # an unknown string is mapped as a keyword (a number would refuse: see es_eval)
    return kind


def _ignored_fields(nodes: Sequence[Any], positive: bool) -> list[Query]:
    """Events whose value on a compared keyword field was too long to index (``ignore_above``)."""
    if not positive:
        return []
    names = sorted({n.field for n in nodes if isinstance(n, ConditionFieldEqualsValueExpression)
                    and _kind(n.field) == "keyword" and _pattern(n.value)})
    return [{"term": {"_ignored": name}} for name in names]


#: More wildcard values than this on one field (a rule listing ~800 ``*MD5=...*`` hashes) cost the
#: node more than streaming the rule's other constraints to the predicate: the list becomes a superset.
HEAVY_PATTERNS = 64


def _heavy(nodes: Sequence[Any]) -> bool:
    per_field: dict[str, int] = {}
    for n in nodes:
        if isinstance(n, ConditionFieldEqualsValueExpression) and _pattern(n.value):
            per_field[n.field] = per_field.get(n.field, 0) + 1
    return any(count > HEAVY_PATTERNS for count in per_field.values())


def _pattern(value: Any) -> bool:
    """A wildcard or regex comparison (only those can match a value too long to be indexed)."""
    if isinstance(value, SigmaExpansion):
        return any(_pattern(v) for v in value.values)
    return isinstance(value, SigmaRegularExpression) or (isinstance(value, SigmaString) and value.contains_special())


def _unindexed(name: str) -> list[Query]:
    """The embedded engine also finds ``winlog.event_data.X`` under an alias of ``X``."""
    if name.startswith("winlog.event_data."):
        return [{"bool": {"must_not": [{"exists": {"field": name}}]}}]
    return []


def _field_value(name: str, value: Any) -> tuple[Query | None, bool]:
    """The query for one comparison and whether it is exact (None: Elasticsearch cannot say it).

    An inexact query is a superset: used only where the comparison stands positively."""
    kind = _kind(name)
    aliased = name.startswith("winlog.event_data.")  # absence of X is not absence of its aliases
    if isinstance(value, SigmaExpansion):
        found = [_field_value(name, v) for v in value.values]
        if any(q is None for q, _ in found):
            return None, False
        return _or([q for q, _ in found if q is not None]), all(exact for _, exact in found)
    if isinstance(value, SigmaExists):
        if value.exists:
            return (None, False) if aliased else ({"exists": {"field": name}}, True)
        return {"bool": {"must_not": [{"exists": {"field": name}}]}}, not aliased
    if isinstance(value, SigmaNull):
        if kind != "keyword":
            return None, False
        return {"bool": {"should": [{"bool": {"must_not": [{"exists": {"field": name}}]}}, {"term": {name: ""}}],
                         "minimum_should_match": 1}}, not aliased
    if isinstance(value, SigmaString):  # SigmaCasedString too
        return _string(name, kind, value, cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaBool):
        if kind == "boolean":
            return {"term": {name: value.boolean}}, True
        if kind in ("keyword", "flattened"):
            return {"term": {name: {"value": "true" if value.boolean else "false", "case_insensitive": True}}}, True
        return None, False
    if isinstance(value, SigmaCompareExpression):
        if kind in ("long", "float") and value.op in _RANGE_OPS:
            return {"range": {name: {_RANGE_OPS[value.op]: value.number.number}}}, True
        return None, False
    if isinstance(value, SigmaNumber):
        number = value.number
        if kind in ("long", "float"):
            return {"term": {name: number}}, True
        if kind in ("keyword", "flattened"):
            text = str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)
            return {"term": {name: text}}, True
        return None, False
    if isinstance(value, SigmaCIDRExpression):
        return ({"term": {name: str(value.network)}}, True) if kind == "ip" else (None, False)
    if isinstance(value, SigmaRegularExpression):
        return regex_superset(name, value), False  # Lucene's `.` also matches a newline: never exact
    return None, False


def regex_superset(name: str, value: SigmaRegularExpression) -> Query | None:
    """A query that matches at least what Python's ``re.search`` does, if one is known.

    Best: the literal every match contains (``detections.sigma.matcher.regex_literal``) as a
    case-insensitive ``*literal*`` wildcard, cheap and never refused; else the regex itself in
    Lucene's syntax when it reads the same (``.*(re).*``: Lucene's regexes are anchored)."""
    from detections.sigma.matcher import MIN_LITERAL, regex_literal

    pattern = str(value.regexp)
    kind = _kind(name)
    literal = regex_literal(pattern)
    if len(literal) >= MIN_LITERAL:
        query, _ = _parts_query(name, kind, [SpecialChars.WILDCARD_MULTI, literal, SpecialChars.WILDCARD_MULTI],
                                cased=False)
        if query is not None:
            return query
    if kind != "keyword" or _LAZY.search(pattern) or not _LUCENE_SAFE_REGEX.fullmatch(pattern):
        return None
    body: dict[str, Any] = {"value": f".*({pattern}).*", "flags": "NONE"}
    if SigmaRegularExpressionFlag.IGNORECASE in value.flags:
        body["case_insensitive"] = True
    return {"regexp": {name: body}}


def _string(name: str, kind: str | None, value: SigmaString, *, cased: bool) -> tuple[Query | None, bool]:
    parts = [SpecialChars.WILDCARD_MULTI if isinstance(p, Placeholder) else p
             for p in value.s if not (isinstance(p, str) and p == "")]
    return _parts_query(name, kind, parts, cased=cased)


def _parts_query(name: str, kind: str | None, parts: list[Any], *, cased: bool) -> tuple[Query | None, bool]:
    """Literal text and ``*``/``?`` wildcards as a term, prefix or wildcard query."""
    plain = all(isinstance(p, str) for p in parts)
    text = "".join(p for p in parts if isinstance(p, str))
    if kind == "ip":
        if plain:
            try:
                return {"term": {name: str(ipaddress.ip_address(text))}}, False  # "::FFFF:1.2.3.4" is 1.2.3.4
            except ValueError:
                return MATCH_NONE, True  # not an address: no ip value equals it
        return None, False
    if kind in ("long", "float"):
        if plain:
            try:
                return {"term": {name: float(text) if kind == "float" else int(text)}}, False  # "007" is 7
            except ValueError:
                return None, False
        return None, False
    if kind not in ("keyword", "flattened"):
        return None, False
    exact = True
    if not cased and not text.isascii():
        # Lucene folds only ASCII letters: a non-ASCII letter becomes `?` (any one character).
        folded: list[Any] = []
        for p in parts:
            if not isinstance(p, str) or p.isascii():
                folded.append(p)
                continue
            for c in p:
                if c.isascii() or c.lower() == c.upper():
                    folded.append(c)
                elif len(c.lower()) == 1 and len(c.upper()) == 1:
                    folded.append(SpecialChars.WILDCARD_SINGLE)
                else:
                    return None, False  # its case changes its length: no pattern says that
        parts, plain, exact = folded, False, False
    options = {} if cased or text.lower() == text.upper() else {"case_insensitive": True}
    if plain:
        return {"term": {name: {"value": text, **options}}}, exact
    if (len(parts) == 2 and isinstance(parts[0], str) and parts[1] is SpecialChars.WILDCARD_MULTI
            and kind == "keyword"):
        return {"prefix": {name: {"value": parts[0], **options}}}, exact
    if kind == "flattened":
        return None, False  # keyed flattened fields take no wildcard queries
    pattern = "".join(
        "*" if p is SpecialChars.WILDCARD_MULTI else "?" if p is SpecialChars.WILDCARD_SINGLE
        else re.sub(r"([\\*?])", r"\\\1", str(p))
        for p in parts)
    return {"wildcard": {name: {"value": pattern, **options}}}, exact
