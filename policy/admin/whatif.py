"""``soc policy whatif NEW_POLICY --since 7d``: replay logged decisions under a candidate policy.

Each ``policy.decision`` event is turned back into the request it decided (principal,
namespace, source IP, claims, service, method, path, time, and the caller's risk as it
was then) and decided again by an engine built from the candidate policy, through the
same code path as production. Decisions that were refused before any rule ran (an invalid
token, a missing attribute) do not depend on policy and are counted, not replayed. A
logged request without a recorded risk (its old rules did not need one) is replayed with
no open alerts, and the change says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from eventstore.store import Store
from policy.decision_log import DATASET, request_from_event
from policy.engine import REFUSED, Engine
from policy.request import Risk

_PRE_POLICY = ("invalid token", "a token was presented", "an asserted principal", "missing request attribute",
               REFUSED, "ambiguous path")  # the last: logs written before policy.canonical


@dataclass(frozen=True, slots=True)
class Change:
    decision_id: str
    timestamp: str
    principal: str | None
    service: str
    method: str
    path: str
    old: str
    new: str
    new_rules: tuple[str, ...]
    new_reason: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "@timestamp": self.timestamp, "user.name": self.principal,
                "service.name": self.service, "http.request.method": self.method, "url.path": self.path,
                "old": self.old, "new": self.new, "new_rules": list(self.new_rules), "new_reason": self.new_reason,
                "note": self.note}


@dataclass
class WhatIfReport:
    replayed: int = 0
    unchanged: int = 0
    skipped: int = 0
    changed: int = 0
    transitions: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"replayed": self.replayed, "unchanged": self.unchanged, "changed": self.changed,
                "skipped_pre_policy": self.skipped, **self.transitions}


def logged_decisions(store: Store, since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
    yield from store.scan(f'event.dataset:"{DATASET}"', since=since, until=until)


def whatif(store: Store, candidate: Sequence[str | Path], *, since: datetime | None = None,
           until: datetime | None = None, limit: int | None = None) -> WhatIfReport:
    """Every logged decision that the candidate would decide differently (up to ``limit`` listed)."""
    engine = Engine.from_paths(list(candidate))
    report = WhatIfReport()
    for doc in logged_decisions(store, since, until):
        reasons = doc.get("ztsoc.policy.reason") or []
        first = reasons[0] if isinstance(reasons, list) and reasons else str(reasons or "")
        if first.startswith(_PRE_POLICY):
            report.skipped += 1
            continue
        req = request_from_event(doc)
        note = ""
        if req.risk is None:
            req.risk = Risk()
            note = "risk not recorded; replayed with no open alerts"
        decision = engine.decide(req)
        report.replayed += 1
        old = str(doc.get("event.action") or "")
        if decision.action == old:
            report.unchanged += 1
            continue
        report.changed += 1
        key = f"{old}->{decision.action}"
        report.transitions[key] = report.transitions.get(key, 0) + 1
        if limit is None or len(report.changes) < limit:
            report.changes.append(Change(
                str(doc.get("event.id")), str(doc.get("@timestamp")), req.principal, req.service, req.method,
                req.path, old, decision.action, decision.rules + decision.dry_run_rules, decision.reason,
                note if engine.policy.bucket(req.service).needs_risk else "",
            ))
    return report
