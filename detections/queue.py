"""The alert queue: the filters every front end offers, most severe first, grouping.

``soc alerts``, ``soc triage`` and the web dashboard list the same queue the same way:
``AlertFilter`` turns the analyst's filters into one query string, ``list_queue`` sorts by
level then recency (one search per level, since a level is a word, not a number the store
could sort on), and ``group_queue`` counts per group with each group's highest level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detections.lifecycle import ALERT_LEVEL, LEVELS, OPEN_STATUSES
from detections.risk import quote
from eventstore.store import ALERT_ASSIGNEE, ALERT_STATUS, Doc, Store


def level_rank(level: object) -> int:
    """0 for informational up to 4 for critical; -1 for a level we do not know."""
    try:
        return LEVELS.index(str(level))
    except ValueError:
        return -1


def parse_levels(text: str) -> list[str]:
    """``high,critical`` or ``high+`` (this level and above)."""
    out: list[str] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        at_least = part.endswith("+")
        name = part.rstrip("+")
        if name not in LEVELS:
            raise ValueError(f"--level: unknown level {name!r}: expected one of {', '.join(LEVELS)} (or e.g. high+)")
        out.extend(LEVELS[LEVELS.index(name):] if at_least else [name])
    return list(dict.fromkeys(out))


def _terms(field_name: str, values: Iterable[str]) -> str:
    vals = [quote(v) for v in values]
    return f"{field_name}:{vals[0]}" if len(vals) == 1 else f"{field_name}:(" + " OR ".join(vals) + ")"


@dataclass(slots=True)
class AlertFilter:
    """The queue filters every front end offers; ``to_query`` makes them one query string."""

    statuses: list[str] = field(default_factory=lambda: list(OPEN_STATUSES))
    levels: list[str] = field(default_factory=list)
    rule: str | None = None
    entity: str | None = None
    tactic: str | None = None
    technique: str | None = None
    assignee: str | None = None
    query: str | None = None
    include_suppressed: bool = False

    def to_query(self) -> str:
        parts: list[str] = []
        for status in self.statuses:
            if status not in (*OPEN_STATUSES, "closed"):
                raise ValueError(f"--status: unknown status {status!r}: expected open, acknowledged, escalated, "
                                 "closed or all")
        if self.statuses and set(self.statuses) != {*OPEN_STATUSES, "closed"}:
            parts.append(_terms(ALERT_STATUS, self.statuses))
        if self.levels:
            parts.append(_terms(ALERT_LEVEL, self.levels))
        if self.rule:
            parts.append(f"(rule.id:{quote(self.rule)} OR rule.name:{quote(self.rule)})")
        if self.entity:
            parts.append(f"ztsoc.alert.entity.value:{quote(self.entity)}")
        if self.tactic:
            parts.append(f"(threat.tactic.id:{quote(self.tactic)} OR threat.tactic.name:{quote(self.tactic)})")
        if self.technique:
            tech = self.technique.strip().upper()
            parts.append(f"(threat.technique.id:{quote(tech)} OR threat.technique.subtechnique.id:{quote(tech)}"
                         + (f" OR threat.technique.subtechnique.id:{tech}.*" if tech.replace("T", "").isdigit() else "")
                         + ")")
        if self.assignee:
            parts.append(f"{ALERT_ASSIGNEE}:{quote(self.assignee)}")
        if self.query and self.query.strip() not in ("", "*"):
            parts.append(f"({self.query})")
        if not self.include_suppressed:
            parts.append("NOT ztsoc.alert.suppressed:true")
        if not parts:
            return "*"
        if parts[0].startswith("NOT "):
            parts.insert(0, "*")
        return " AND ".join(parts)


@dataclass(frozen=True, slots=True)
class QueuePage:
    total: int
    alerts: list[Doc]


def list_queue(store: Store, flt: AlertFilter, *, since: datetime | None = None, until: datetime | None = None,
               limit: int = 50, fields: Sequence[str] | None = None) -> QueuePage:
    """The queue sorted by level (critical first) then recency: one search per level, newest first.

    The total is the sum of the per-level totals (a level past the page is only counted), so
    each matching alert is looked at once, not once for the count and again for the page.
    """
    base = flt.to_query()
    levels = [lv for lv in reversed(LEVELS) if not flt.levels or lv in flt.levels]
    out: list[Doc] = []
    total = 0
    for level in levels:
        want = max(limit - len(out), 0)
        query = f"{base} AND {ALERT_LEVEL}:{level}"
        if want == 0:
            total += store.count(query, since=since, until=until, index="alerts")
            continue
        res = store.search(query, since=since, until=until, index="alerts", limit=want, sort="@timestamp",
                           descending=True, fields=fields)
        total += res.total
        out.extend(res.hits)
    return QueuePage(total=total, alerts=out)


def group_queue(store: Store, flt: AlertFilter, group_by: Sequence[str], *, since: datetime | None = None,
                until: datetime | None = None, limit: int = 50) -> list[Doc]:
    """Counts per group, most severe groups first: each group with its highest level and its total.

    Groups are ranked by their highest level, then by how many alerts they have at that level.
    Read tier by tier (critical first) and stopping once ``limit`` groups are ranked, so a big
    queue only aggregates its few severe alerts, not every group of every level; then one
    aggregation over just the chosen groups' values gives their totals and counts per level.
    """
    fields = [f.strip() for f in group_by if f.strip()]
    if not fields:
        raise ValueError("--group-by needs at least one field")
    base = flt.to_query()
    levels = [lv for lv in reversed(LEVELS) if not flt.levels or lv in flt.levels]
    chosen: dict[tuple[Any, ...], Doc] = {}
    for level in levels:
        if len(chosen) >= limit:
            break
        tier = store.aggregate(fields, query=f"{base} AND {ALERT_LEVEL}:{level}", since=since, until=until,
                               index="alerts")
        for row in tier:  # the store orders rows by count, then by value
            key = tuple(row.get(f) for f in fields)
            if key not in chosen:
                chosen[key] = {**{f: row.get(f) for f in fields}, "level": level, "count": 0, "by_level": {}}
                if len(chosen) >= limit:
                    break
    if not chosen:
        return []
    # One term list per field (``source.ip:(a OR b ...)``) rather than an OR of per-group ANDs: an
    # index can serve a term list; the few extra combinations it lets through are dropped below.
    terms = []
    for i, f in enumerate(fields):
        values = list(dict.fromkeys(str(key[i]) for key in chosen))
        terms.append(f"{f}:(" + " OR ".join(quote(v) for v in values) + ")")
    rows = store.aggregate([*fields, ALERT_LEVEL], query=f"{base} AND " + " AND ".join(terms), since=since,
                           until=until, index="alerts")
    for row in rows:
        group = chosen.get(tuple(row.get(f) for f in fields))
        if group is not None:
            group["count"] += int(row["count"])
            group["by_level"][str(row.get(ALERT_LEVEL))] = int(row["count"])
    return list(chosen.values())
