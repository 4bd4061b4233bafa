"""The risk of an entity (user, host, IP, service identity) from its unresolved alerts.

Used by ``soc alerts show`` / ``soc pivot`` to tell the analyst how worried to be about the
entity behind an alert, and by the policy engine so a caller with fresh, serious, unresolved
alerts loses access without anyone editing policy.

The score is a sum over the entity's alerts that are not closed and not suppressed: each
contributes its level's weight, halved for every ``half_life`` since it was last seen, so an
old alert nobody closed fades instead of locking an identity out for ever. Capped at 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from eventstore.store import Store
from eventstore.timeutil import from_iso, utcnow

#: level -> weight of one fresh alert. Two fresh highs or one critical reach "high" risk.
LEVEL_WEIGHTS: dict[str, float] = {
    "informational": 1.0,
    "low": 10.0,
    "medium": 25.0,
    "high": 40.0,
    "critical": 80.0,
}

#: score threshold -> band, checked from the top.
BANDS: tuple[tuple[float, str], ...] = ((75.0, "critical"), (50.0, "high"), (25.0, "medium"), (1.0, "low"),
                                        (0.0, "none"))

DEFAULT_HALF_LIFE = timedelta(hours=24)
UNRESOLVED = "ztsoc.alert.status:(open OR acknowledged OR escalated) AND NOT ztsoc.alert.suppressed:true"


@dataclass(frozen=True, slots=True)
class Risk:
    entity: str
    score: float
    band: str
    alerts: int
    by_level: dict[str, int] = field(default_factory=dict)
    top_rules: list[str] = field(default_factory=list)


def quote(value: str) -> str:
    """A value as a quoted query-string term, safe whatever characters it holds."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def band(score: float) -> str:
    for threshold, name in BANDS:
        if score >= threshold:
            return name
    return "none"


def entity_risk(store: Store, entity: str, *, now: datetime | None = None,
                half_life: timedelta = DEFAULT_HALF_LIFE, max_alerts: int = 500) -> Risk:
    """Score ``entity`` (an ``ztsoc.alert.entity.value``) from its unresolved alerts."""
    now = now or utcnow()
    hits = store.search(
        f"ztsoc.alert.entity.value:{quote(entity)} AND {UNRESOLVED}", index="alerts", limit=max_alerts,
        sort="@timestamp", descending=True,
        fields=["event.id", "@timestamp", "rule.name", "ztsoc.alert.level", "ztsoc.alert.last_seen"],
    )
    score = 0.0
    by_level: dict[str, int] = {}
    rules: dict[str, float] = {}
    for alert in hits.hits:
        level = str(alert.get("ztsoc.alert.level") or "low")
        by_level[level] = by_level.get(level, 0) + 1
        seen = alert.get("ztsoc.alert.last_seen") or alert.get("@timestamp")
        age = max(timedelta(0), now - from_iso(str(seen))) if seen else timedelta(0)
        weight = LEVEL_WEIGHTS.get(level, LEVEL_WEIGHTS["low"]) * math.pow(0.5, age / half_life)
        score += weight
        name = str(alert.get("rule.name") or "?")
        rules[name] = rules.get(name, 0.0) + weight
    score = round(min(100.0, score), 1)
    top = [name for name, _w in sorted(rules.items(), key=lambda kv: -kv[1])[:5]]
    return Risk(entity=entity, score=score, band=band(score), alerts=hits.total, by_level=by_level, top_rules=top)
