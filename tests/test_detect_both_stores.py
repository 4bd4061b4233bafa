"""The same events give the same alerts on the embedded store and on Elasticsearch.

SQLite runs the embedded matcher over every event; Elasticsearch runs pySigma's Lucene
queries in the cluster (``detections.sigma.es_eval``). Both feed the same correlation and
alert code, so the alert ids, entities and evidence must be identical.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detections.runner import load_compiled, run_detections
from detections.sigma.es_eval import convert
from detections.sigma.loader import load_rules
from detections.sigma.samples import expand

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def _events() -> list[dict]:
    events: list[dict] = []
    for r in load_rules().rules:
        events += expand(r.meta.samples.get("match") or [], prefix=f"{r.key}-m")
        # near misses a month later: must stay quiet on both stores
        for e in expand(r.meta.samples.get("near_miss") or [], prefix=f"{r.key}-n"):
            ts = datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")) + timedelta(days=40 + len(events) % 7)
            events.append({**e, "@timestamp": ts.isoformat().replace("+00:00", "Z")})
    return events


def _summary(store) -> dict[str, tuple]:
    return {
        a["event.id"]: (a["rule.id"], a.get("ztsoc.alert.entity.value"), a["ztsoc.alert.first_seen"],
                        a["ztsoc.alert.last_seen"], tuple(sorted(a["ztsoc.alert.evidence"])))
        for a in store.scan("*", index="alerts")
    }


@pytest.fixture(scope="module")
def compiled():
    return load_compiled()


def test_same_alerts_on_both_stores(store, compiled, tmp_path) -> None:
    from eventstore import open_store

    sqlite_store = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    events = _events()
    end = T0 + timedelta(days=90)
    for s in (store, sqlite_store):
        assert not s.write_events(events).errors
    # every (rule, event) match, as `soc detect run --matches FILE` writes them (issue 17)
    pairs: list[set[tuple[str, str]]] = [set(), set()]
    reports = [run_detections(s, since=T0, until=end, compiled=compiled,
                              on_match=lambda rule, doc, seen=seen: seen.add((rule, str(doc["event.id"]))))
               for s, seen in zip((store, sqlite_store), pairs, strict=True)]
    assert reports[0].alerts_new == reports[1].alerts_new >= 10
    assert _summary(store) == _summary(sqlite_store)
    assert pairs[0] == pairs[1] and len(pairs[0]) == reports[1].matches > 50
    sqlite_store.close()


@pytest.mark.es
def test_elasticsearch_runs_pysigma_queries(es_store, compiled) -> None:
    queries = convert(compiled)
    native = [q for q in queries.values() if q.native]
    assert len(native) >= len(queries) - 2  # only the |hour rules need the mandatory-field query
    assert any("event.code:4625" in q.query for q in native)
    es_store.write_events(_events())
    report = run_detections(es_store, since=T0, until=T0 + timedelta(days=90), compiled=compiled)
    assert report.backend == "elasticsearch" and report.alerts_new >= 10
    assert report.events < len(_events())  # only what the queries selected reached Python


def test_restarts_on_either_store_match_one_pass(store, compiled, tmp_path) -> None:
    """Events arrive in daily batches and the runner is restarted after each: same alerts as one pass."""
    from eventstore import open_store

    events = sorted((e for e in _events() if "-m-" in e["event.id"]), key=lambda e: e["@timestamp"])
    end = datetime.fromisoformat(events[-1]["@timestamp"].replace("Z", "+00:00")) + timedelta(minutes=1)
    reference = open_store(f"sqlite:///{tmp_path / 'one-pass.db'}")
    reference.write_events(events)
    run_detections(reference, since=T0, until=end, compiled=compiled)
    cut, new = T0, 0
    while cut < end:
        nxt = cut + timedelta(days=1)
        batch = [e for e in events if cut.isoformat() <= e["@timestamp"].replace("Z", "+00:00") < nxt.isoformat()]
        if batch:
            store.write_events(batch)
        new += run_detections(store, since=T0, until=min(nxt, end), compiled=compiled).alerts_new
        cut = nxt
    assert new == len(_summary(reference)) > 0
    assert _summary(store) == _summary(reference)
    reference.close()
