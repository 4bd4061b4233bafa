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
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    """The alert with this id, or the only one whose id starts with it (``eventstore.ids``)."""
    from eventstore.ids import resolve_id

    return _get(store, resolve_id(store, id_or_prefix, "alerts"))
