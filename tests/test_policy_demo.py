"""The demo traffic: every kind of decision lands in the store, and open alerts withdraw access."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from eventstore import Store
from policy.demo import PORTAL, demo_traffic

AT = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)


def _reasons(store: Store, query: str) -> list[str]:
    rows = store.aggregate(["event.reason"], query=f'event.dataset:"policy.decision" AND {query}', limit=100)
    return [str(r["event.reason"]) for r in rows]


def test_demo_traffic_logs_every_kind_of_decision(sqlite_store: Store, tmp_path: Path) -> None:
    summary = demo_traffic(sqlite_store, decisions=300, at=AT, spill_path=tmp_path / "spill.jsonl")
    assert summary.decisions == 300 and summary.spilled == 0
    assert {"allow", "deny", "would_deny"} <= set(summary.by_action)
    assert sqlite_store.count('event.dataset:"policy.decision"') == 300
    denials = _reasons(sqlite_store, "event.action:deny")
    assert any(r.startswith("invalid token") for r in denials)
    assert any("records/no-deletes" in r for r in denials)


def test_open_alert_on_the_portal_withdraws_its_payments_access(sqlite_store: Store, tmp_path: Path) -> None:
    sqlite_store.put_alerts([{
        "event.id": "alert-portal", "@timestamp": "2026-03-04T13:00:00.000Z", "event.kind": "alert",
        "rule.name": "Portal workload beaconing", "ztsoc.alert.status": "open", "ztsoc.alert.level": "high",
        "ztsoc.alert.entity.type": "service", "ztsoc.alert.entity.value": PORTAL,
    }])
    demo_traffic(sqlite_store, decisions=300, at=AT, spill_path=tmp_path / "spill.jsonl")
    charges = sqlite_store.aggregate(
        ["event.action"], query=f'event.dataset:"policy.decision" AND user.name:"{PORTAL}" AND service.name:payments')
    assert charges and {r["event.action"] for r in charges} == {"deny"}
