"""Sigma on Elasticsearch: the selection runs in the cluster, every rule is isolated from the others.

Each base rule is a query-DSL clause (``es_dsl``: keyword comparisons with ``case_insensitive``,
as Sigma compares, ``|cased`` honoured, built to select a superset of what the rule's predicate
accepts). Rules then take one of two paths, chosen per rule by :func:`plan` (measured on the
SigmaHQ Windows set: ``bench/sigma.py --stores``):

- **in the cluster**: a light query (exact terms and prefixes, no leading wildcard, no regular
  expression, a bounded number of clauses) goes to the node with many others in one
  ``_msearch``, each search with its own time budget (``timeout``); a rule with more hits than
  a page continues with ``search_after`` pages;
- **streamed**: a heavy query (``endswith``/``contains``, i.e. leading wildcards, the slow case
  of a keyword index; hundreds of values; regular expressions; a superset that selects
  everything) is not sent. The cluster selects, in one point-in-time scan, the events the
  streamed rules can possibly match (their mandatory event codes / channels / datasets,
  compared without case), and the embedded matcher (Aho-Corasick over the rules' literals)
  decides, exactly as it does on SQLite.

Every hit is confirmed by the rule's compiled predicate, so both stores raise the same alerts
(``tests/test_detect_both_stores.py``, ``tests/test_sigma_both_stores.py``).

A rule that fails (a search past its budget, a failed shard, a predicate that raises) is
recorded in ``failed`` with its reason and gives no events this run; the runner keeps its
cursor, so the next run retries it. A query the node refuses outright moves its rule to the
streamed path for this run. The others are unaffected.

pySigma's Lucene conversion (``convert``) is kept for ``soc rules`` (what an analyst pastes
into Kibana).
"""

from __future__ import annotations

import copy
import heapq
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sigma.rule import SigmaRule

from detections.sigma.engine import CompiledSet, epoch
from detections.sigma.es_dsl import MATCH_ALL, rule_query
from detections.sigma.matcher import CompiledRule, EventView, Matcher
from eventstore.errors import StoreError, StoreUnavailable
from eventstore.store import Doc, Store

log = logging.getLogger(__name__)

#: PCRE constructs Lucene's regular expressions do not have (anchors, lookaround, flags, \\d \\w \\s \\b,
#: lazy quantifiers): Elasticsearch would read them literally and silently match nothing.
_LUCENE_UNSUPPORTED = re.compile(r"(?<![\\[])[$^]|\(\?|\\[dDwWsSbBAZ]|[*+?}]\?")
#: fields whose mandatory values pre-filter the streamed rules' events in the cluster
PREFILTER_FIELDS: tuple[str, ...] = ("event.code", "winlog.channel", "event.dataset", "event.action",
                                     "event.category")
#: in-cluster rules per ``_msearch`` request, hits per page, seconds each search may take
MSEARCH_RULES = 100
PAGE_SIZE = 1000
RULE_BUDGET = 30.0
#: a query with more leaf clauses than this is streamed (the node would test each on every event)
MAX_CLAUSES = 64


@dataclass(frozen=True, slots=True)
class RuleQuery:
    key: str
    query: str
    native: bool  # True: pySigma's conversion; False: the mandatory-fields fallback
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """Which base rules run in the cluster (with their Lucene) and which are streamed."""

    in_cluster: dict[str, dict[str, Any]]
    streamed: list[CompiledRule]
    #: query DSL selecting every event a streamed rule can match (``None``: no streamed rule)
    prefilter: dict[str, Any] | None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fallback_query(cr: CompiledRule) -> str:
    """The rule's mandatory equalities as Lucene (``event.dataset:"x" AND event.code:("1" OR "3")``)."""
    parts = []
    for name, values in sorted(cr.required.items()):
        if not values or name.startswith("@"):
            continue
        field = name.replace(" ", "\\ ")
        alts = " OR ".join(_quote(v) for v in sorted(values))
        parts.append(f"{field}:({alts})")
    return " AND ".join(parts) or "*"


def _backend(pipeline: str) -> Any:
    from sigma.backends.elasticsearch import LuceneBackend

    from detections.sigma.pipelines import get_pipeline

    return LuceneBackend(get_pipeline(pipeline))


def _convert_one(backend: Any, cs: CompiledSet, cr: CompiledRule) -> RuleQuery:
    rule = copy.deepcopy(cr.payload.rule if cr.payload is not None else cs.rules[cr.key].rule)
    assert isinstance(rule, SigmaRule)
    rule._output = True  # referenced by a correlation: we still need its events
    odd = _unconvertible(cr)
    if odd:
        return RuleQuery(cr.key, fallback_query(cr), False, odd)
    try:
        queries = backend.convert_rule(rule)
    except Exception as exc:  # pySigma raises many types for constructs Lucene cannot express
        return RuleQuery(cr.key, fallback_query(cr), False, f"{type(exc).__name__}: {exc}"[:200])
    text = " OR ".join(f"({q})" for q in queries if q)
    return RuleQuery(cr.key, text, True) if text else RuleQuery(cr.key, fallback_query(cr), False, "empty conversion")


def convert(cs: CompiledSet, pipeline: str = "ztsoc") -> dict[str, RuleQuery]:
    """Lucene for every base rule (cached on the compiled set: conversion is the slow part)."""
    cached: dict[str, RuleQuery] | None = getattr(cs, "_lucene", None)
    if cached is not None:
        return cached
    backend = _backend(pipeline)
    out = {cr.key: _convert_one(backend, cs, cr) for cr in cs.base}
    cs._lucene = out  # type: ignore[attr-defined]
    return out


def _items(cr: CompiledRule) -> Iterator[Any]:
    from sigma.rule import SigmaDetection, SigmaDetectionItem

    stack: list[Any] = list(cr.rule.detection.detections.values())
    while stack:
        item = stack.pop()
        if isinstance(item, SigmaDetectionItem):
            yield item
        elif isinstance(item, SigmaDetection):
            stack.extend(item.detection_items)


def _unconvertible(cr: CompiledRule) -> str:
    """Constructs the Lucene backend mistranslates without an error (``|hour`` becomes a plain value)."""
    from sigma.types import SigmaRegularExpression, SigmaTimestampPart

    for item in _items(cr):
        if any(isinstance(v, SigmaTimestampPart) for v in item.value):
            return f"timestamp part on {item.field}"
        for v in item.value:
            if isinstance(v, SigmaRegularExpression) and _LUCENE_UNSUPPORTED.search(str(v.regexp)):
                return f"regular expression beyond Lucene's syntax on {item.field}"
    return ""


def dsl_queries(cs: CompiledSet, rules: Sequence[CompiledRule] | None = None) -> dict[str, dict[str, Any]]:
    """Base rules (all, or ``rules``) as query DSL (``es_dsl``: case-insensitive, a superset of
    the predicate's matches); cached on the compiled set. No pySigma conversion is involved: it
    walks the trees the pipeline already produced for the embedded engine (parsing a condition
    costs milliseconds: only the rules that may run in the cluster are converted)."""
    cached: dict[str, dict[str, Any]] = getattr(cs, "_dsl", None) or {}
    for cr in cs.base if rules is None else rules:
        if cr.key not in cached:
            cached[cr.key] = rule_query(_trees(cr) or [c.parsed for c in cr.rule.detection.parsed_condition])
    cs._dsl = cached  # type: ignore[attr-defined]
    return cached


def light(query: Mapping[str, Any]) -> bool:
    """Cheap for the node: no leading wildcard (a walk over the whole terms dictionary of the
    field, per segment), no regular expression, at most ``MAX_CLAUSES`` leaves, not everything."""
    if query == MATCH_ALL:
        return False
    leaves = 0
    stack: list[Any] = [query]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, Mapping):
            continue
        for kind, body in node.items():
            if kind == "bool":
                stack.extend(v for k, v in body.items() if k != "minimum_should_match")
            elif kind == "regexp":
                return False
            elif kind == "wildcard":
                value = next(iter(body.values()))
                text = value.get("value", "") if isinstance(value, Mapping) else str(value)
                if text[:1] in ("*", "?"):
                    return False
                leaves += 1
            else:
                leaves += 1
    return leaves <= MAX_CLAUSES


def _prefilter(rules: Sequence[CompiledRule]) -> dict[str, Any] | None:
    """One query DSL for the events any of ``rules`` can match: for each rule, its mandatory values
    on ``PREFILTER_FIELDS`` (compared without case, as Sigma does); rules that share fields are
    merged (a superset: the matcher decides). A rule with none of those fields: every event."""
    if not rules:
        return None
    shapes: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for cr in rules:
        fields = tuple(f for f in PREFILTER_FIELDS if cr.required.get(f))
        if not fields:
            return {"match_all": {}}
        # merge on all but the first field (event.code): one clause per channel/dataset combination
        key = fields + tuple(sorted(v.lower() for f in fields[1:] for v in cr.required[f]))
        slot = shapes.setdefault(key, {f: set() for f in fields})
        for f in fields:
            slot[f].update(cr.required[f])
    clauses = []
    for slot in shapes.values():
        clauses.append({"bool": {"filter": [_any_of(f, values) for f, values in slot.items()]}})
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}


def _any_of(field: str, values: set[str]) -> dict[str, Any]:
    plain = sorted(v for v in values if v == v.lower() and v == v.upper())
    cased = sorted(v for v in values if v not in plain)
    options: list[dict[str, Any]] = [{"terms": {field: plain}}] if plain else []
    options += [{"term": {field: {"value": v, "case_insensitive": True}}} for v in cased]
    return options[0] if len(options) == 1 else {"bool": {"should": options, "minimum_should_match": 1}}


def plan(cs: CompiledSet) -> Plan:
    """Sort the base rules into in-cluster and streamed (cached on the compiled set).

    Streamed: a rule whose values start with a wildcard, use a regular expression or list more
    than ``MAX_CLAUSES`` values (seen on its detection items, before any conversion), and a rule
    whose channel / dataset the streamed rules read anyway (matching it on events already
    streamed costs nothing more; measured: a search per such rule cost more than the stream).
    The rest goes to the cluster if its query DSL is light (``light``)."""
    cached: Plan | None = getattr(cs, "_es_plan", None)
    if cached is not None:
        return cached
    heavy = {cr.key for cr in cs.base if _heavy(cr)}
    sources = {v.lower() for cr in cs.base if cr.key in heavy for f in _SOURCE_FIELDS for v in cr.required.get(f, ())}
    candidates = [cr for cr in cs.base if cr.key not in heavy and not _read_anyway(cr, sources)]
    queries = dsl_queries(cs, candidates)
    in_cluster = {cr.key: queries[cr.key] for cr in candidates if light(queries[cr.key])}
    streamed = [cr for cr in cs.base if cr.key not in in_cluster]
    result = Plan(in_cluster, streamed, _prefilter(streamed))
    cs._es_plan = result  # type: ignore[attr-defined]
    return result


#: the fields naming where an event comes from (a Windows channel, a dataset)
_SOURCE_FIELDS = ("winlog.channel", "event.dataset")


def _trees(cr: CompiledRule) -> list[Any]:
    """The rule's processed condition trees as pySigma objects (made from its plain form)."""
    try:
        return cr.trees
    except Exception:  # a damaged tree from the cache: the rule fails in the run, with its reason
        return []


def _heavy(cr: CompiledRule) -> bool:
    from sigma.conditions import ConditionFieldEqualsValueExpression
    from sigma.types import SigmaRegularExpression, SigmaString, SpecialChars

    if cr.anchors and any(kind != "eq" for _field, kind, _key in cr.anchors):
        return True  # a substring or basename anchor: a leading wildcard (known without the trees)
    leaves = 0
    stack: list[Any] = list(_trees(cr))
    if not stack:
        return True
    while stack:
        node = stack.pop()
        if isinstance(node, ConditionFieldEqualsValueExpression):
            leaves += 1
            v = node.value
            if isinstance(v, SigmaRegularExpression):
                return True
            if isinstance(v, SigmaString) and v.s and v.s[0] in (SpecialChars.WILDCARD_MULTI,
                                                                   SpecialChars.WILDCARD_SINGLE):
                return True
        else:
            stack.extend(getattr(node, "args", ()))
    return leaves > MAX_CLAUSES


def _read_anyway(cr: CompiledRule, sources: set[str]) -> bool:
    """The rule's channel/dataset values are all read by the streamed rules already."""
    mine = {v.lower() for f in _SOURCE_FIELDS for v in cr.required.get(f, ())}
    return bool(mine) and mine <= sources


#: (milliseconds since the epoch, event.id, the event, the rules it matched): the order Elasticsearch
#: sorts by (``@timestamp`` is kept to the millisecond, then ``event.id``), so both paths merge
Entry = tuple[int, str, Doc, list[CompiledRule]]


def _ms(doc: Doc) -> int:
    return round(epoch(doc) * 1_000_000) // 1000


def _in_cluster(store: Any, cs: CompiledSet, queries: Mapping[str, Mapping[str, Any]], since: datetime | None,
                until: datetime | None, failed: dict[str, str], refused: list[CompiledRule]) -> list[Entry]:
    """Every in-cluster rule's hits, through ``_msearch`` pages; (time, id, doc, rules), oldest first.

    A rule whose query the node refuses outright goes to ``refused`` (streamed this run instead)."""
    from eventstore.es_store import PageRequest

    by_key = {cr.key: cr for cr in cs.base}
    found: dict[str, Entry] = {}
    todo: list[tuple[str, list[Any] | None]] = [(key, None) for key in queries]
    while todo:
        batch, todo = todo[:MSEARCH_RULES], todo[MSEARCH_RULES:]
        try:
            pages = store.event_pages([PageRequest(queries[k], after) for k, after in batch],
                                      since=since, until=until, size=PAGE_SIZE, timeout=RULE_BUDGET)
        except StoreUnavailable as exc:  # the whole request timed out: these rules fail, the others go on
            for key, _ in batch:
                failed[key] = str(exc)
            continue
        for (key, after), page in zip(batch, pages, strict=True):
            if page.refused and after is None:
                refused.append(by_key[key])
                log.warning("rule %s: query refused by the store (%s); streamed this run", key, page.error)
                continue
            if page.error is not None:
                failed[key] = page.error
                continue
            cr = by_key[key]
            for doc in page.hits:
                if not _confirmed(cr, doc, failed):
                    continue
                eid = str(doc.get("event.id"))
                entry = found.get(eid)
                if entry is None:
                    found[eid] = (_ms(doc), eid, doc, [cr])
                elif cr not in entry[3]:
                    entry[3].append(cr)
            if page.after is not None and key not in failed:
                todo.append((key, page.after))
    for key in failed:
        for entry in found.values():
            entry[3][:] = [cr for cr in entry[3] if cr.key != key]
    return sorted((e for e in found.values() if e[3]), key=lambda e: (e[0], e[1]))


def _confirmed(cr: CompiledRule, doc: Doc, failed: dict[str, str]) -> bool:
    try:
        return bool(cr.predicate(EventView(doc)))
    except Exception as exc:
        failed[cr.key] = f"evaluation failed on event {doc.get('event.id')}: {type(exc).__name__}: {exc}"[:300]
        return False


def _streamed(store: Any, rules: Sequence[CompiledRule], prefilter: Mapping[str, Any] | None,
              since: datetime | None, until: datetime | None, failed: dict[str, str]) -> Iterator[Entry]:
    """The pre-filtered events, oldest first, each with the streamed rules the embedded matcher finds."""
    if not rules or prefilter is None:
        return
    matcher = Matcher(list(rules))
    try:
        for doc in store.scan_filter(prefilter, since=since, until=until):
            matched = matcher.match_isolated(doc, failed)
            if matched:
                yield _ms(doc), str(doc.get("event.id")), doc, matched
    except StoreError as exc:  # the scan broke off: none of the streamed rules saw all its events
        for cr in rules:
            failed.setdefault(cr.key, f"scan of its events failed: {exc}")


def stream_matches(store: Store, cs: CompiledSet, since: datetime | None, until: datetime | None,
                   pipeline: str = "ztsoc", *, failed: dict[str, str] | None = None,
                   ) -> Iterator[tuple[Doc, list[CompiledRule]]]:
    """Events matched by any rule in ``[since, until)``, oldest first, each with its rules.

    Rules that fail land in ``failed`` (rule key -> reason) and are left out of the matches."""
    failed = {} if failed is None else failed
    p = plan(cs)
    refused: list[CompiledRule] = []
    clustered = _in_cluster(store, cs, p.in_cluster, since, until, failed, refused)
    streamed, prefilter = (p.streamed, p.prefilter) if not refused else (
        [*p.streamed, *refused], _prefilter([*p.streamed, *refused]))
    stream = _streamed(store, streamed, prefilter, since, until, failed)
    pending: Entry | None = None
    for entry in heapq.merge(clustered, stream, key=lambda e: (e[0], e[1])):
        if pending is not None and pending[1] == entry[1]:
            pending[3].extend(cr for cr in entry[3] if cr not in pending[3])
            continue
        if pending is not None:
            yield from _emit(pending, failed)
        pending = entry
    if pending is not None:
        yield from _emit(pending, failed)


def _emit(entry: Entry, failed: Mapping[str, str]) -> Iterator[tuple[Doc, list[CompiledRule]]]:
    rules = [cr for cr in entry[3] if cr.key not in failed] if failed else entry[3]
    if rules:
        yield entry[2], rules


def explain(cs: CompiledSet, pipeline: str = "ztsoc") -> list[dict[str, Any]]:
    """What runs in Elasticsearch for each rule (``soc rules list --lucene`` style output)."""
    p = plan(cs)
    queries = convert(cs, pipeline)
    return [{"rule": q.key, "native": q.native, "query": q.query, "reason": q.reason,
             "path": "cluster" if q.key in p.in_cluster else "streamed"} for q in queries.values()]
