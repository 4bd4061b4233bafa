"""Sigma on Elasticsearch: the selection runs in the cluster, correlation on the hits.

Each base rule becomes a query-DSL clause (``es_dsl``: keyword comparisons with
``case_insensitive``, as Sigma compares, ``|cased`` honoured) and runs over the look-back
window with ``scan_dsl`` (streamed, ``search_after``): Elasticsearch does the selection over
the whole store. The hits are then merged in time order and fed to the same
:class:`~detections.sigma.engine.Evaluation` as the embedded store, so correlation (sliding
windows, distinct values) and alert building are one implementation for both backends.

Two honest adjustments:

- every hit is confirmed with the rule's compiled predicate; the query is built to select a
  superset of what the predicate accepts (``es_dsl`` explains how), so both stores raise the
  same alerts (``tests/test_detect_both_stores.py``, ``compat/sigma_both_stores.py``);
- a rule whose query Elasticsearch refuses runs as a query for its mandatory fields (its
  dataset / channel / event code) confirmed by the predicate, instead of being skipped.

pySigma's Lucene conversion (``convert``) is kept for ``soc rules`` (what an analyst pastes
into Kibana) and for stores that take only query strings.
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
from detections.sigma.es_dsl import rule_query
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


def dsl_queries(cs: CompiledSet) -> dict[str, dict[str, Any]]:
    """Every base rule as query DSL (``es_dsl``: case-insensitive, a superset of the predicate's
    matches); cached on the compiled set. No pySigma conversion is involved: it walks the trees
    the pipeline already produced for the embedded engine."""
    cached: dict[str, dict[str, Any]] | None = getattr(cs, "_dsl", None)
    if cached is None:
        cached = {cr.key: rule_query([c.parsed for c in cr.rule.detection.parsed_condition]) for cr in cs.base}
        cs._dsl = cached  # type: ignore[attr-defined]
    return cached


def _scan(store: Store, cr: CompiledRule, query: str | dict[str, Any], since: datetime | None,
          until: datetime | None) -> Iterator[Doc]:
    """The rule's query; if Elasticsearch refuses it (a regex Lucene cannot parse...), its mandatory fields."""
    from eventstore.errors import QuerySyntaxError, StoreUnavailable

    native = not isinstance(query, str) or query != fallback_query(cr)
    try:
        if isinstance(query, str):
            yield from store.scan(query, since=since, until=until)
        else:
            yield from store.scan_dsl(query, since=since, until=until)  # type: ignore[attr-defined]
        return
    except StoreUnavailable:
        raise
    except (QuerySyntaxError, StoreError) as exc:
        if not native:
            log.warning("rule %s: query refused by the store (%s); skipped this run", cr.key, exc)
            return
        log.warning("rule %s: query refused by the store (%s); using its mandatory fields", cr.key, exc)
    yield from store.scan(fallback_query(cr), since=since, until=until)


def stream_matches(store: Store, cs: CompiledSet, since: datetime | None, until: datetime | None,
                   pipeline: str = "ztsoc") -> Iterator[tuple[Doc, list[CompiledRule]]]:
    """Events matched by any rule in ``[since, until)``, oldest first, each with its rules.

    A store that takes query DSL (``scan_dsl``: Elasticsearch) gets ``es_dsl``'s case-insensitive
    queries; otherwise pySigma's Lucene query strings."""
    queries: dict[str, str | dict[str, Any]]
    if hasattr(store, "scan_dsl"):
        queries = dict(dsl_queries(cs))
    else:
        queries = {key: q.query for key, q in convert(cs, pipeline).items()}
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
