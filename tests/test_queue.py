"""The alert queue over both stores: filters, level-then-recency order, grouping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alertseed import T0, alert

from detections import lifecycle, queue
from detections.queue import AlertFilter
from eventstore import Store


def test_queue_sorted_by_level_then_recency(store: Store) -> None:
    store.put_alerts([
        alert("low-new", level="low", at=T0 + timedelta(hours=5)),
        alert("crit-old", level="critical", at=T0),
        alert("high-old", level="high", at=T0 + timedelta(hours=1)),
        alert("high-new", level="high", at=T0 + timedelta(hours=3)),
        alert("med", level="medium", rule="port_scan", entity="10.0.0.8"),
        alert("closed-crit", level="critical", at=T0 + timedelta(hours=9)),
    ])
    lifecycle.close(store, "closed-crit", "duplicate", actor="x")
    page = queue.list_queue(store, AlertFilter(), limit=10)
    assert [a["event.id"] for a in page.alerts] == ["crit-old", "high-new", "high-old", "med", "low-new"]
    assert page.total == 5
    page = queue.list_queue(store, AlertFilter(statuses=["closed"]), limit=10)
    assert [a["event.id"] for a in page.alerts] == ["closed-crit"]
    page = queue.list_queue(store, AlertFilter(levels=queue.parse_levels("high+")), limit=2)
    assert [a["event.id"] for a in page.alerts] == ["crit-old", "high-new"]
    assert page.total == 3
    assert [a["event.id"] for a in queue.list_queue(store, AlertFilter(technique="T1046")).alerts] == ["med"]
    assert queue.list_queue(store, AlertFilter(technique="T1110.001")).total == 4
    assert queue.list_queue(store, AlertFilter(tactic="Discovery")).total == 1
    assert queue.list_queue(store, AlertFilter(rule="Port scan")).total == 1
    assert queue.list_queue(store, AlertFilter(entity="10.0.0.8")).total == 1


def test_group_by_rule_and_source(store: Store) -> None:
    store.put_alerts([alert(f"s{i}", entity="10.0.0.5", level="medium") for i in range(3)]
                     + [alert("s9", entity="10.0.0.5", level="critical")]
                     + [alert(f"p{i}", rule="port_scan", entity="10.0.0.8", level="low") for i in range(5)])
    groups = queue.group_queue(store, AlertFilter(), ["rule.name", "source.ip"])
    assert groups[0]["rule.name"] == "SSH brute force then success"
    assert groups[0]["source.ip"] == "10.0.0.5"
    assert groups[0]["count"] == 4
    assert groups[0]["level"] == "critical"
    assert groups[1]["count"] == 5
    assert groups[1]["level"] == "low"


def test_group_tiers_totals_and_array_fields(store: Store) -> None:
    store.put_alerts([alert(f"h{i}", entity="10.0.0.1", level="high") for i in range(2)]
                     + [alert(f"l{i}", entity="10.0.0.1", level="low") for i in range(5)]
                     + [alert(f"x{i}", entity="10.0.0.2", level="high") for i in range(3)]
                     + [alert("c1", rule="port_scan", entity="10.0.0.3", level="critical")])
    groups = queue.group_queue(store, AlertFilter(), ["source.ip"])
    assert [(g["source.ip"], g["level"], g["count"]) for g in groups] == [
        ("10.0.0.3", "critical", 1), ("10.0.0.2", "high", 3), ("10.0.0.1", "high", 7)]
    assert groups[2]["by_level"] == {"high": 2, "low": 5}
    assert [g["source.ip"] for g in queue.group_queue(store, AlertFilter(), ["source.ip"], limit=2)] == [
        "10.0.0.3", "10.0.0.2"]
    tactics = queue.group_queue(store, AlertFilter(), ["threat.tactic.id"])
    assert [(g["threat.tactic.id"], g["count"]) for g in tactics] == [("TA0007", 1), ("TA0006", 10)]


def test_filter_validation() -> None:
    with pytest.raises(ValueError, match="unknown level"):
        queue.parse_levels("severe")
    assert queue.parse_levels("medium+") == ["medium", "high", "critical"]
    with pytest.raises(ValueError, match="unknown status"):
        AlertFilter(statuses=["pending"]).to_query()
    q = AlertFilter(rule='we"ird').to_query()
    assert 'rule.id:"we\\"ird"' in q
