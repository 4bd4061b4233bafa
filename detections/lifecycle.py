"""The alert lifecycle: what an analyst may do to an alert, and the audit trail it leaves.

The CLI (``soc alerts ack|assign|escalate|close|reopen|note``), the triage app and the web
dashboard all call these functions, so a transition refused in one is refused in all and
every change lands in the alert's history the same way (who, when, from, to, note) through
``Store.update_alert``. The rules are a table (``ACTIONS``: action name -> the statuses it
may start from and what it changes), not an if-chain, so adding an action is one entry.

Bulk actions go in two steps on purpose: ``plan_bulk`` reads what a query matches and
sorts it into "will change" and "refused, because ..." without writing anything (the
preview the analyst confirms), then ``apply_bulk`` writes exactly the planned alerts.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventstore.errors import AlertNotFound
from eventstore.store import (
    ALERT_ASSIGNEE,
    ALERT_REASON,
    ALERT_STATUS,
    AlertChange,
    Doc,
    Store,
)

CLOSE_REASONS: tuple[str, ...] = ("true_positive", "false_positive", "benign", "duplicate")
LEVELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
ALERT_LEVEL = "ztsoc.alert.level"
OPEN_STATUSES: tuple[str, ...] = ("open", "acknowledged", "escalated")


class TransitionError(ValueError):
    """An action the alert's current state does not allow; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Request:
    """What the analyst asked for: the action and its arguments."""

    action: str
    actor: str
    note: str | None = None
    assignee: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """One lifecycle action: from which statuses, and how it computes the changed fields."""

    name: str
    allowed_from: tuple[str, ...]
    changes: Callable[[Doc, Request], dict[str, Any]]
    help: str
    refusal_hint: str = ""


def _status(to: str) -> Callable[[Doc, Request], dict[str, Any]]:
    return lambda _alert, _req: {ALERT_STATUS: to}


def _assign(alert: Doc, req: Request) -> dict[str, Any]:
    if not req.assignee or not req.assignee.strip():
        raise TransitionError("assign needs a user name")
    if alert.get(ALERT_ASSIGNEE) == req.assignee:
        raise TransitionError(f"alert {alert.get('event.id')} is already assigned to {req.assignee}")
    return {ALERT_ASSIGNEE: req.assignee.strip()}


def _close(_alert: Doc, req: Request) -> dict[str, Any]:
    if req.reason not in CLOSE_REASONS:
        raise TransitionError(f"close needs --reason, one of: {', '.join(CLOSE_REASONS)} (got {req.reason!r})")
    return {ALERT_STATUS: "closed", ALERT_REASON: req.reason}


def _reopen(_alert: Doc, _req: Request) -> dict[str, Any]:
    return {ALERT_STATUS: "open", ALERT_REASON: None}


def _note(_alert: Doc, req: Request) -> dict[str, Any]:
    if not req.note or not req.note.strip():
        raise TransitionError("note needs some text")
    return {}


#: action name -> rule. Closing needs a reason; a note changes no field but is still history.
ACTIONS: dict[str, Action] = {
    "ack": Action("ack", ("open",), _status("acknowledged"), "acknowledge: someone is looking at it",
                  "only an open alert can be acknowledged"),
    "assign": Action("assign", OPEN_STATUSES, _assign, "give the alert to an analyst",
                     "reopen it first to assign it"),
    "escalate": Action("escalate", ("open", "acknowledged"), _status("escalated"),
                       "hand the alert to the next tier / incident response",
                       "only an open or acknowledged alert can be escalated"),
    "close": Action("close", OPEN_STATUSES, _close, "close with a reason (and a note)",
                    "it is already closed; reopen it to change the reason"),
    "reopen": Action("reopen", ("closed",), _reopen, "put a closed alert back in the queue",
                     "only a closed alert can be reopened"),
    "note": Action("note", ("open", "acknowledged", "escalated", "closed"), _note,
                   "add a note to the history"),
}


def analyst_name() -> str:
    """Who is acting: ``SOC_ANALYST`` when set (shared terminals, automation), else the OS user."""
    return os.environ.get("SOC_ANALYST") or getpass.getuser()


def status_of(alert: Mapping[str, Any]) -> str:
    return str(alert.get(ALERT_STATUS) or "open")


def plan_change(alert: Doc, req: Request) -> AlertChange:
    """The change ``req`` makes to ``alert``, or ``TransitionError`` saying why not. Writes nothing."""
    action = ACTIONS.get(req.action)
    if action is None:
        raise TransitionError(f"unknown action {req.action!r}: expected one of {', '.join(ACTIONS)}")
    current = status_of(alert)
    alert_id = alert.get("event.id", "?")
    if current not in action.allowed_from:
        hint = f"; {action.refusal_hint}" if action.refusal_hint else ""
        raise TransitionError(f"cannot {action.name} alert {alert_id}: it is {current}{hint}")
    new = action.changes(alert, req)
    changes: dict[str, Any] = {}
    for name, value in new.items():
        if alert.get(name) != value:
            changes[name] = value
    if not changes and action.name != "note":
        raise TransitionError(f"cannot {action.name} alert {alert_id}: nothing would change")
    note = req.note.strip() if req.note and req.note.strip() else None
    return AlertChange(actor=req.actor, action=action.name, changes=changes, note=note)


def describe_change(alert: Mapping[str, Any], change: AlertChange) -> dict[str, Any]:
    """``{field: {"from": old, "to": new}}`` for a preview table or the history."""
    return {name: {"from": alert.get(name), "to": value} for name, value in change.changes.items()}


def _get(store: Store, alert_id: str) -> Doc:
    alert = store.get_alert(alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert with id {alert_id!r}")
    return alert


def perform(store: Store, alert_id: str, req: Request) -> Doc:
    """Check and apply one action on one alert; returns the alert as stored afterwards."""
    alert = _get(store, alert_id)
    change = plan_change(alert, req)
    return store.update_alert(alert_id, change)


# -- one function per action, the names the CLI and the dashboard call ---------------------------

def ack(store: Store, alert_id: str, *, actor: str | None = None, note: str | None = None) -> Doc:
    return perform(store, alert_id, Request("ack", actor or analyst_name(), note=note))


def assign(store: Store, alert_id: str, user: str, *, actor: str | None = None, note: str | None = None) -> Doc:
    return perform(store, alert_id, Request("assign", actor or analyst_name(), note=note, assignee=user))


def escalate(store: Store, alert_id: str, *, actor: str | None = None, note: str | None = None) -> Doc:
    return perform(store, alert_id, Request("escalate", actor or analyst_name(), note=note))


def close(store: Store, alert_id: str, reason: str, *, actor: str | None = None, note: str | None = None) -> Doc:
    return perform(store, alert_id, Request("close", actor or analyst_name(), note=note, reason=reason))


def reopen(store: Store, alert_id: str, *, actor: str | None = None, note: str | None = None) -> Doc:
    return perform(store, alert_id, Request("reopen", actor or analyst_name(), note=note))


def add_note(store: Store, alert_id: str, note: str, *, actor: str | None = None) -> Doc:
    return perform(store, alert_id, Request("note", actor or analyst_name(), note=note))


# -- bulk -----------------------------------------------------------------------------------------

@dataclass(slots=True)
class PlannedChange:
    alert: Doc
    change: AlertChange


@dataclass(slots=True)
class BulkPlan:
    """What a bulk action would do: the alerts it changes and those it refuses, with the reason."""

    request: Request
    query: str
    matched: int = 0
    changes: list[PlannedChange] = field(default_factory=list)
    refused: list[tuple[Doc, str]] = field(default_factory=list)

    def refusal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for alert, _reason in self.refused:
            key = status_of(alert)
            counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass(frozen=True, slots=True)
class BulkResult:
    changed: int
    failed: list[tuple[str, str]]


#: Fields a bulk preview needs; the rest of each alert is not read.
PREVIEW_FIELDS: tuple[str, ...] = (
    "event.id", "@timestamp", "rule.id", "rule.name", ALERT_LEVEL, ALERT_STATUS, ALERT_ASSIGNEE, ALERT_REASON,
    "ztsoc.alert.entity.type", "ztsoc.alert.entity.value",
)


def plan_bulk(store: Store, query: str, req: Request, *, since: datetime | None = None,
              until: datetime | None = None) -> BulkPlan:
    """Sort every alert the query matches into changes and refusals. Reads only; writes nothing."""
    plan = BulkPlan(request=req, query=query)
    for alert in store.scan(query, since=since, until=until, index="alerts", fields=PREVIEW_FIELDS):
        plan.matched += 1
        try:
            plan.changes.append(PlannedChange(alert, plan_change(alert, req)))
        except TransitionError as exc:
            plan.refused.append((alert, str(exc)))
    return plan


#: backend -> concurrent writers for a bulk action. Elasticsearch makes each single-document
#: write durable on its own (a translog fsync per request) but commits concurrent requests
#: together, so parallel writers multiply its throughput; SQLite serialises writers anyway.
BULK_WORKERS: dict[str, int] = {"sqlite": 1}
DEFAULT_BULK_WORKERS = 8


def apply_bulk(store: Store, plan: BulkPlan, *, progress: Callable[[int], None] | None = None,
               workers: int | None = None) -> BulkResult:
    """Write the planned changes one alert at a time, so each gets its own history entry.

    The preview's snapshot is what the analyst confirmed, so exactly those changes are written;
    an alert deleted in between is reported in ``failed``, the rest go on.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(planned: PlannedChange) -> tuple[str, str | None]:
        alert_id = str(planned.alert["event.id"])
        try:
            store.update_alert(alert_id, planned.change)
        except AlertNotFound as exc:
            return alert_id, str(exc)
        return alert_id, None

    n = workers or BULK_WORKERS.get(store.backend, DEFAULT_BULK_WORKERS)
    changed = 0
    failed: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        for i, (alert_id, error) in enumerate(pool.map(one, plan.changes), 1):
            if error is None:
                changed += 1
            else:
                failed.append((alert_id, error))
            if progress is not None:
                progress(i)
    return BulkResult(changed=changed, failed=failed)


def iter_actions() -> Iterator[Action]:
    yield from ACTIONS.values()


def validate_ids(ids: Iterable[str]) -> list[str]:
    out = [i.strip() for i in ids if i and i.strip()]
    if not out:
        raise ValueError("give an alert id or --query")
    return out


def find_alert(store: Store, id_or_prefix: str) -> Doc:
    """The alert with this id, or the only one whose id starts with it (ids are long hashes)."""
    text = id_or_prefix.strip()
    alert = store.get_alert(text)
    if alert is not None:
        return alert
    if len(text) >= 4 and all(c.isalnum() or c in "-_" for c in text):
        hits = store.search(f"event.id:{text}*", index="alerts", limit=2, fields=["event.id"]).hits
        if len(hits) == 1:
            return _get(store, str(hits[0]["event.id"]))
        if len(hits) > 1:
            raise ValueError(f"alert id prefix {text!r} is ambiguous: give more characters")
    raise AlertNotFound(f"no alert with id {text!r}")


# -- the queue: filters, ordering by level then recency, grouping ----------------------------------

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
    from detections.risk import quote

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
        from detections.risk import quote

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
    from detections.risk import quote

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


# -- the rule's investigation guide --------------------------------------------------------------

#: Keys a rule file may use for its guide and its response steps (top level or under ``ztsoc:``).
GUIDE_KEYS: tuple[str, ...] = ("investigation", "investigation_guide", "guide", "triage")
RESPONSE_KEYS: tuple[str, ...] = ("response", "response_steps", "respond", "remediation")


@dataclass(frozen=True, slots=True)
class Guide:
    investigation: str | None = None
    response: list[str] = field(default_factory=list)
    falsepositives: list[str] = field(default_factory=list)
    source: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"investigation": self.investigation, "response": self.response,
                "falsepositives": self.falsepositives, "source": self.source}


def _rule_files(extra_dirs: Sequence[str] = ()) -> list[Any]:
    from pathlib import Path

    dirs = [Path(__file__).with_name("rules"), *(Path(d) for d in extra_dirs)]
    return [p for d in dirs if d.is_dir() for p in sorted(d.rglob("*.y*ml"))]


def _as_steps(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        lines = [ln.strip().lstrip("-*0123456789. ").strip() for ln in value.strip().splitlines()]
        return [ln for ln in lines if ln]
    return [str(v) for v in value]


#: path -> (mtime, guides by rule key) so ``show`` and the triage pane parse each rule file once.
_GUIDE_CACHE: dict[str, tuple[float, dict[str, Guide]]] = {}


def _guides_in(path: Any) -> dict[str, Guide]:
    import yaml

    try:
        mtime = path.stat().st_mtime
        cached = _GUIDE_CACHE.get(str(path))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[str, Guide] = {}
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        custom: dict[str, Any] = doc["ztsoc"] if isinstance(doc.get("ztsoc"), dict) else {}
        merged = {**doc, **custom}
        text = next((merged[k] for k in GUIDE_KEYS if merged.get(k)), None)
        steps = next((merged[k] for k in RESPONSE_KEYS if merged.get(k)), None)
        if isinstance(text, dict):  # {"summary": ..., "steps": [...]} style
            steps = steps or text.get("steps") or text.get("response")
            text = text.get("summary") or text.get("text")
        guide = Guide(investigation=str(text).strip() if text else None, response=_as_steps(steps),
                      falsepositives=_as_steps(doc.get("falsepositives")), source=str(path))
        for key in (doc.get("name"), doc.get("id")):
            if key:
                found[str(key)] = guide
    found.setdefault(path.stem, next(iter(found.values()), Guide(source=str(path))))
    _GUIDE_CACHE[str(path)] = (mtime, found)
    return found


def rule_guide(alert: Mapping[str, Any], rule_dirs: Sequence[str] = ()) -> Guide:
    """The investigation guide and response steps of the rule that raised ``alert``.

    The detection runner copies them onto the alert (``ztsoc.alert.guide`` / ``.response``,
    from the rule's ``ztsoc:`` block), which is what an analyst should read: the guide as it
    was when the alert fired. Older alerts fall back to the rule file (by name, id or file name).
    """
    guide, response = alert.get("ztsoc.alert.guide"), alert.get("ztsoc.alert.response")
    if guide or response:
        return Guide(investigation=str(guide).strip() if guide else None, response=_as_steps(response),
                     source="alert")
    for key in (alert.get("rule.id"), alert.get("rule.uuid")):
        if not key:
            continue
        for path in _rule_files(rule_dirs):
            hit = _guides_in(path).get(str(key))
            if hit is not None:
                return hit
    desc = alert.get("rule.description")
    return Guide(investigation=str(desc) if desc else None)
