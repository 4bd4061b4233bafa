"""Alerts and events for the triage tests, shaped like the detection runner's output.

Plain ECS documents written with the store's own ``put_alerts`` / ``write_events``, so the
lifecycle, exceptions, timeline, CLI and triage-app tests run against real stores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore.timeutil import to_iso

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

RULES: dict[str, dict[str, Any]] = {
    "ssh_bruteforce": {"rule.name": "SSH brute force then success", "threat.tactic.id": ["TA0006"],
                       "threat.tactic.name": ["Credential Access"], "threat.technique.id": ["T1110"],
                       "threat.technique.name": ["Brute Force"], "threat.technique.subtechnique.id": ["T1110.001"],
                       "ztsoc.alert.guide": "Find the account that logged in and what it did next.",
                       "ztsoc.alert.response": "Lock the account, block the source at the edge."},
    "port_scan": {"rule.name": "Port scan", "threat.tactic.id": ["TA0007"], "threat.tactic.name": ["Discovery"],
                  "threat.technique.id": ["T1046"], "threat.technique.name": ["Network Service Discovery"]},
    "policy_denials": {"rule.name": "Repeated policy denials", "threat.tactic.id": ["TA0008"],
                       "threat.tactic.name": ["Lateral Movement"], "threat.technique.id": ["T1021"],
                       "threat.technique.name": ["Remote Services"]},
}


def alert(ident: str, *, rule: str = "ssh_bruteforce", level: str = "high", entity: str = "10.0.0.5",
          entity_type: str = "ip", at: datetime | None = None, evidence: list[str] | None = None,
          fields: dict[str, Any] | None = None) -> dict[str, Any]:
    ts = at or T0
    doc: dict[str, Any] = {
        "event.id": ident,
        "@timestamp": to_iso(ts),
        "event.kind": "alert",
        "rule.id": rule,
        **RULES[rule],
        "threat.framework": "MITRE ATT&CK",
        "ztsoc.alert.level": level,
        "ztsoc.alert.entity.type": entity_type,
        "ztsoc.alert.entity.value": entity,
        "ztsoc.alert.evidence": evidence or [],
        "ztsoc.alert.evidence_count": len(evidence or []),
        "ztsoc.alert.first_seen": to_iso(ts - timedelta(minutes=5)),
        "ztsoc.alert.last_seen": to_iso(ts),
    }
    if entity_type == "ip":
        doc["source.ip"] = entity
    doc.update(fields or {})
    return doc


def flow(ident: str, at: datetime, src: str, dst: str, dport: int = 22) -> dict[str, Any]:
    return {"event.id": ident, "@timestamp": to_iso(at), "event.kind": "event", "event.dataset": "network.flow",
            "event.category": ["network"], "source.ip": src, "source.port": 40000, "destination.ip": dst,
            "destination.port": dport, "network.transport": "tcp", "network.bytes": 1200, "related.ip": [src, dst]}


def dns(ident: str, at: datetime, src: str, name: str) -> dict[str, Any]:
    return {"event.id": ident, "@timestamp": to_iso(at), "event.kind": "event", "event.dataset": "network.dns",
            "source.ip": src, "destination.ip": "10.0.0.53", "dns.question.name": name, "dns.question.type": "A",
            "related.ip": [src, "10.0.0.53"]}


def auth(ident: str, at: datetime, user: str, src: str, outcome: str = "failure",
         host: str = "web01") -> dict[str, Any]:
    return {"event.id": ident, "@timestamp": to_iso(at), "event.kind": "event", "event.dataset": "system.auth",
            "event.category": ["authentication"], "event.action": "ssh_login", "event.outcome": outcome,
            "user.name": user, "source.ip": src, "host.name": host, "related.user": [user], "related.ip": [src]}


def decision(ident: str, at: datetime, principal: str, service: str, action: str = "deny") -> dict[str, Any]:
    """Laid out as ``policy.decision_log`` writes it: the caller in ``user.name``, the callee in ``service.name``."""
    return {"event.id": ident, "@timestamp": to_iso(at), "event.kind": "event", "event.dataset": "policy.decision",
            "event.action": action, "user.name": principal, "service.name": service,
            "url.path": "/api/v1/records", "http.request.method": "GET", "related.user": [principal]}
