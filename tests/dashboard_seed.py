"""A small, known data set for the dashboard tests: events of each dataset and a few alerts."""

from __future__ import annotations

from base64 import b32encode
from datetime import timedelta
from hashlib import sha256

from eventstore.store import Store
from eventstore.timeutil import to_iso, utcnow

LEVELS = ("critical", "high", "high", "medium", "medium", "medium", "low")


def seed(store: Store) -> dict[str, int]:
    now = utcnow().replace(microsecond=0)
    events = []
    for i in range(30):
        t = to_iso(now - timedelta(minutes=5 + i * 7))
        events.append({"@timestamp": t, "event.id": f"flow-{i}", "event.kind": "event", "event.dataset": "network.flow",
                       "event.category": ["network"], "source.ip": f"10.20.1.{i % 3 + 1}", "destination.ip": "10.10.1.10",
                       "destination.port": 443, "source.bytes": 1000 * (i % 3 + 1), "network.transport": "tcp"})
        events.append({"@timestamp": t, "event.id": f"dns-{i}", "event.kind": "event", "event.dataset": "network.dns",
                       "source.ip": "10.20.3.44", "dns.question.name": f"{b32encode(sha256(str(i).encode()).digest()).decode().lower()[:40]}.t.exfil-cdn.example"})
        events.append({"@timestamp": t, "event.id": f"tls-{i}", "event.kind": "event", "event.dataset": "network.tls",
                       "source.ip": "10.20.1.1", "tls.client.server_name": "portal.gov.example"})
        events.append({"@timestamp": t, "event.id": f"pdp-{i}", "event.kind": "event", "event.dataset": "policy.decision",
                       "event.action": "deny" if i % 3 == 0 else "allow",
                       "user.name": "spiffe://gov.example/ns/portal/sa/web", "service.name": "records"})
    events.append({"@timestamp": to_iso(now - timedelta(minutes=30)), "event.id": "policy-change-1",
                   "event.kind": "event", "event.dataset": "policy.change", "event.category": ["configuration"],
                   "event.type": ["change"], "user.name": "jorge.silva", "file.name": "payments-hotfix.yaml",
                   "message": "jorge.silva added payments-hotfix.yaml (rule temporary-refund-access)"})
    store.write_events(events)
    alerts = []
    for i, level in enumerate(LEVELS):
        alerts.append({
            "@timestamp": to_iso(now - timedelta(minutes=10 + i)), "event.id": f"alert-{i}", "event.kind": "alert",
            "event.dataset": "ztsoc.alert", "rule.id": f"rule-{level}", "rule.name": f"Test rule {level}",
            "ztsoc.alert.level": level, "ztsoc.alert.entity.type": "ip", "ztsoc.alert.entity.value": f"10.20.1.{i % 2 + 1}",
            "ztsoc.alert.evidence": [f"flow-{i}"], "ztsoc.alert.first_seen": to_iso(now - timedelta(minutes=20)),
            "ztsoc.alert.last_seen": to_iso(now - timedelta(minutes=10 + i)), "threat.technique.id": ["T1110"],
        })
    store.put_alerts(alerts)
    return {"flows": 30, "dns": 30, "tls": 30, "decisions": 30, "denies": 10, "alerts": len(LEVELS)}
