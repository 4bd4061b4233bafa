"""The alert model: ECS shape, ATT&CK from tags, deterministic ids, cases that merge and persist."""

from __future__ import annotations

from detections.alerts import AlertBook, RuleInfo, alert_id, merge_alert, pick_entity, threat_fields

RULE = RuleInfo(key="ssh_bruteforce", title="SSH brute force", level="high",
                tags=("attack.credential-access", "attack.t1110.001", "attack.t1078"), uuid="u-1", suppress=600)


def test_threat_fields_from_sigma_tags() -> None:
    t = threat_fields(RULE.tags)
    assert t["threat.framework"] == "MITRE ATT&CK"
    assert t["threat.technique.id"] == ["T1110", "T1078"]
    assert t["threat.technique.subtechnique.id"] == ["T1110.001"]
    assert t["threat.tactic.id"] == ["TA0006"] and t["threat.tactic.name"] == ["Credential Access"]
    assert threat_fields(["cve.2021-44228"]) == {}


def test_ids_are_deterministic_and_distinct() -> None:
    assert alert_id("r", "source.ip=1.2.3.4", 100.0) == alert_id("r", "source.ip=1.2.3.4", 100.0)
    assert alert_id("r", "source.ip=1.2.3.4", 100.0) != alert_id("r", "source.ip=1.2.3.5", 100.0)
    assert alert_id("r", "g", 100.0) != alert_id("r", "g", 101.0)


def test_entity_types() -> None:
    assert pick_entity(RULE, {"source.ip": "10.0.0.1"}, {}) == ("ip", "10.0.0.1")
    assert pick_entity(RULE, {"user.name": "spiffe://gov.example/ns/a/sa/b"}, {}) == ("service",
                                                                                       "spiffe://gov.example/ns/a/sa/b")
    assert pick_entity(RULE, {}, {"winlog.computer_name": "dc-01"}) == ("host", "dc-01")


def test_document_shape() -> None:
    book = AlertBook(None)
    book.record(RULE, {"source.ip": "203.0.113.9"}, 1000.0, 1030.0, ["e1", "e2"], value=12)
    [doc] = book.docs()
    assert doc["event.kind"] == "alert"
    assert doc["rule.id"] == "ssh_bruteforce" and doc["rule.name"] == "SSH brute force" and doc["rule.uuid"] == "u-1"
    assert doc["ztsoc.alert.level"] == "high"
    assert doc["ztsoc.alert.entity.type"] == "ip" and doc["ztsoc.alert.entity.value"] == "203.0.113.9"
    assert doc["source.ip"] == "203.0.113.9"  # exception queries filter on it
    assert doc["ztsoc.alert.evidence"] == ["e1", "e2"] and doc["ztsoc.alert.evidence_count"] == 2
    assert doc["ztsoc.alert.first_seen"] == "1970-01-01T00:16:40.000Z"
    assert doc["ztsoc.alert.last_seen"] == "1970-01-01T00:17:10.000Z"
    assert doc["threat.technique.id"] == ["T1110", "T1078"]


def test_suppression_window_merges_close_findings_and_splits_far_ones() -> None:
    book = AlertBook(None)
    a = book.record(RULE, {"source.ip": "x"}, 0.0, 10.0, ["e1"])
    b = book.record(RULE, {"source.ip": "x"}, 500.0, 510.0, ["e2", "e1"])
    c = book.record(RULE, {"source.ip": "x"}, 2000.0, 2000.0, ["e3"])
    assert a is b and a.evidence == ["e1", "e2"] and a.last == 510.0
    assert c.id != a.id


def test_cases_persist_in_the_store(sqlite_store) -> None:
    book = AlertBook(sqlite_store)
    case = book.record(RULE, {"source.ip": "192.0.2.9"}, 0.0, 10.0, ["e1"])
    assert not sqlite_store.put_alerts(book.docs()).errors  # a valid address: the store refuses "x" now
    book.save()
    again = AlertBook(sqlite_store)  # a restarted runner
    later = again.record(RULE, {"source.ip": "192.0.2.9"}, 300.0, 300.0, ["e2"])
    assert later.id == case.id and later.existed
    [doc] = again.docs()
    assert doc["ztsoc.alert.evidence"] == ["e1", "e2"]  # merged with what the store held


def test_merge_keeps_the_widest_span() -> None:
    old = {"ztsoc.alert.evidence": ["a"], "ztsoc.alert.first_seen": "2026-01-01T00:00:00.000Z",
           "ztsoc.alert.last_seen": "2026-01-01T00:05:00.000Z"}
    new = {"@timestamp": "x", "ztsoc.alert.evidence": ["b"], "ztsoc.alert.first_seen": "2026-01-01T00:03:00.000Z",
           "ztsoc.alert.last_seen": "2026-01-01T00:04:00.000Z"}
    merged = merge_alert(old, new)
    assert merged["ztsoc.alert.evidence"] == ["a", "b"]
    assert merged["ztsoc.alert.first_seen"] == "2026-01-01T00:00:00.000Z"
    assert merged["ztsoc.alert.last_seen"] == "2026-01-01T00:05:00.000Z"
