"""Sigma on Elasticsearch: pySigma's Lucene queries run in the cluster, correlation on the hits.

Each base rule is converted once by pySigma's Elasticsearch backend (``LuceneBackend``) with
our pipeline, and run over the look-back window with ``Store.scan`` (a point-in-time
search, streamed): Elasticsearch does the selection over the whole store. The hits are then
merged in time order and fed to the same :class:`~detections.sigma.engine.Evaluation` as the
embedded store, so correlation (sliding windows, distinct values) and alert building are
one implementation for both backends.

Two honest adjustments:

- every hit is confirmed with the rule's compiled predicate, because Lucene over keyword
  fields is case-sensitive and Sigma is not: a hit the predicate rejects is dropped, so
  Elasticsearch never reports more than the embedded engine would;
- a rule the backend cannot convert (e.g. ``|hour`` timestamp parts, field references), or whose
  regular expression uses what Lucene lacks (anchors, lookaround, ``\\d``: Elasticsearch would take
  them literally and silently match nothing), or whose query Elasticsearch refuses, runs as a
  query for its mandatory fields (its dataset / channel / event code) confirmed by the
  predicate, instead of being skipped.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sigma.rule import SigmaRule

from detections.sigma.engine import CompiledSet, epoch
from detections.sigma.matcher import CompiledRule, EventView
from eventstore.errors import StoreError
from eventstore.store import Doc, Store

log = logging.getLogger(__name__)

#: PCRE constructs Lucene's regular expressions do not have (anchors, lookaround, flags, \\d \\w \\s \\b,
#: lazy quantifiers): Elasticsearch would read them literally and silently match nothing.
_LUCENE_UNSUPPORTED = re.compile(r"(?<![\\[])[$^]|\(\?|\\[dDwWsSbBAZ]|[*+?}]\?")


@dataclass(frozen=True, slots=True)
class RuleQuery:
    key: str
    query: str
    native: bool  # True: pySigma's conversion; False: the mandatory-fields fallback
    reason: str = ""


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


def convert(cs: CompiledSet, pipeline: str = "ztsoc") -> dict[str, RuleQuery]:
    """Lucene for every base rule (cached on the compiled set: conversion is the slow part)."""
    cached: dict[str, RuleQuery] | None = getattr(cs, "_lucene", None)
    if cached is not None:
        return cached
    from sigma.backends.elasticsearch import LuceneBackend

    from detections.sigma.pipelines import get_pipeline

    backend = LuceneBackend(get_pipeline(pipeline))
    out: dict[str, RuleQuery] = {}
    for cr in cs.base:
        rule = copy.deepcopy(cr.payload.rule if cr.payload is not None else cs.rules[cr.key].rule)
        assert isinstance(rule, SigmaRule)
        rule._output = True  # referenced by a correlation: we still need its events
        odd = _unconvertible(cr)
        if odd:
            out[cr.key] = RuleQuery(cr.key, fallback_query(cr), False, odd)
            continue
        try:
            queries = backend.convert_rule(rule)
            text = " OR ".join(f"({q})" for q in queries if q)
            out[cr.key] = RuleQuery(cr.key, text or "*", True) if text else RuleQuery(cr.key, fallback_query(cr), False,
                                                                                       "empty conversion")
        except Exception as exc:  # pySigma raises many types for constructs Lucene cannot express
            out[cr.key] = RuleQuery(cr.key, fallback_query(cr), False, f"{type(exc).__name__}: {exc}"[:200])
    cs._lucene = out  # type: ignore[attr-defined]
    return out


def _unconvertible(cr: CompiledRule) -> str:
    """Constructs the Lucene backend mistranslates without an error (``|hour`` becomes a plain value)."""
    from sigma.rule import SigmaDetection, SigmaDetectionItem
    from sigma.types import SigmaRegularExpression, SigmaTimestampPart

    def walk(item: SigmaDetection | SigmaDetectionItem) -> str:
        if isinstance(item, SigmaDetectionItem):
            if any(isinstance(v, SigmaTimestampPart) for v in item.value):
                return f"timestamp part on {item.field}"
            for v in item.value:
                if isinstance(v, SigmaRegularExpression) and _LUCENE_UNSUPPORTED.search(str(v.regexp)):
                    return f"regular expression beyond Lucene's syntax on {item.field}"
            return ""
        for sub in item.detection_items:
            found = walk(sub)
            if found:
                return found
        return ""

    for det in cr.rule.detection.detections.values():
        found = walk(det)
        if found:
            return found
    return ""


def _scan(store: Store, cr: CompiledRule, q: RuleQuery, since: datetime | None,
          until: datetime | None) -> Iterator[Doc]:
    """The rule's query; if Elasticsearch refuses it (a regex Lucene cannot parse...), its mandatory fields."""
    from eventstore.errors import QuerySyntaxError, StoreUnavailable

    try:
        yield from store.scan(q.query, since=since, until=until)
        return
    except StoreUnavailable:
        raise
    except (QuerySyntaxError, StoreError) as exc:
        if not q.native:
            log.warning("rule %s: query refused by the store (%s); skipped this run", cr.key, exc)
            return
        log.warning("rule %s: query refused by the store (%s); using its mandatory fields", cr.key, exc)
    yield from store.scan(fallback_query(cr), since=since, until=until)


def stream_matches(store: Store, cs: CompiledSet, since: datetime | None, until: datetime | None,
                   pipeline: str = "ztsoc") -> Iterator[tuple[Doc, list[CompiledRule]]]:
    """Events matched by any rule in ``[since, until)``, oldest first, each with its rules."""
    queries = convert(cs, pipeline)
    found: dict[str, tuple[float, Doc, list[CompiledRule]]] = {}
    for cr in cs.base:
        q = queries.get(cr.key)
        if q is None:
            continue
        for doc in _scan(store, cr, q, since, until):
            if not cr.predicate(EventView(doc)):
                continue
            eid = str(doc.get("event.id"))
            entry = found.get(eid)
            if entry is None:
                found[eid] = (epoch(doc), doc, [cr])
            elif cr not in entry[2]:
                entry[2].append(cr)
    for _ts, doc, rules in sorted(found.values(), key=lambda e: (e[0], str(e[1].get("event.id")))):
        yield doc, rules


def explain(cs: CompiledSet, pipeline: str = "ztsoc") -> list[dict[str, Any]]:
    """What runs in Elasticsearch for each rule (``soc rules list --lucene`` style output)."""
    return [{"rule": q.key, "native": q.native, "query": q.query, "reason": q.reason}
            for q in convert(cs, pipeline).values()]
