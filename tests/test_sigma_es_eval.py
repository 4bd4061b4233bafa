"""What runs in Elasticsearch: pySigma's Lucene queries, and the fallback for what Lucene cannot say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detections.runner import load_compiled, run_detections
from detections.sigma.es_eval import convert, fallback_query


@pytest.fixture(scope="module")
def compiled():
    return load_compiled()


def test_queries_come_from_pysigma_and_include_referenced_rules(compiled) -> None:
    queries = convert(compiled)
    assert queries["windows_logon_failed"].native  # referenced by a correlation, still converted
    assert queries["windows_logon_failed"].query == "(winlog.channel:Security AND event.code:4625)"
    assert queries["dns_long_label"].query.startswith("(event.dataset:network.dns AND dns.question.name:/")


def test_timestamp_parts_use_the_mandatory_fields(compiled) -> None:
    q = convert(compiled)["sudo_off_hours"]
    assert not q.native and "timestamp part" in q.reason
    assert q.query == fallback_query(next(c for c in compiled.base if c.key == "sudo_off_hours"))
    assert 'event.dataset:("system.auth")' in q.query and "@timestamp" not in q.query


@pytest.mark.es
def test_hits_are_confirmed_by_the_predicate(es_store, compiled) -> None:
    t = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 14:00: not "off hours"
    es_store.write_events([{
        "@timestamp": t.isoformat().replace("+00:00", "Z"), "event.id": "day-sudo", "event.dataset": "system.auth",
        "event.action": "sudo_command", "event.outcome": "success", "user.name": "amina.okafor",
    }])
    report = run_detections(es_store, since=t - timedelta(hours=1), until=t + timedelta(hours=1), compiled=compiled)
    assert report.events == 0 and report.alerts == 0  # fetched by the coarse query, rejected by the predicate


@pytest.mark.es
def test_a_regex_lucene_cannot_express_runs_on_mandatory_fields(es_store, tmp_path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "lookahead.yml").write_text("""
title: Lookahead regex (Python has it, Lucene does not)
name: lookahead_rule
id: 7b1c0d2e-0000-4000-8000-0000000000bb
logsource: {product: ztsoc, service: auth}
detection:
  sel:
    user.name|re: '^(?=adm)adm\\.[a-z]+$'
  condition: sel
level: low
tags: [attack.privilege-escalation, attack.t1078]
""")
    t = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    es_store.write_events([{"@timestamp": t.isoformat().replace("+00:00", "Z"), "event.id": "la-1",
                            "event.dataset": "system.auth", "user.name": "adm.tremblay"}])
    cs = load_compiled([rules], shipped=False)
    report = run_detections(es_store, since=t - timedelta(hours=1), until=t + timedelta(hours=1), compiled=cs)
    assert report.per_rule == {"lookahead_rule": 1}
    assert not convert(cs)["lookahead_rule"].native
