"""The alert rules both backends apply the same way: pure functions, no I/O.

A detection rerun refreshes an alert but never the analyst's part of it (``merge_alert``);
an analyst's change is applied and appended to the history, which is append-only
(``apply_change``). Kept here, once, so the two backends cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from eventstore.errors import StoreError
from eventstore.store import ALERT_HISTORY, ALERT_LIFECYCLE_FIELDS, ALERT_STATUS, AlertChange, Doc
from eventstore.timeutil import to_iso, utcnow


def merge_alert(incoming: Doc, existing: Doc | None) -> Doc:
    """A detection rerun refreshes the alert; the analyst's lifecycle fields and history stay."""
    merged = dict(incoming)
    if existing is None:
        merged.setdefault(ALERT_STATUS, "open")
        merged.setdefault(ALERT_HISTORY, [])
        return merged
    for name in ALERT_LIFECYCLE_FIELDS:
        if name in existing:
            merged[name] = existing[name]
        else:
            merged.pop(name, None)
    return merged


def apply_change(alert: Doc, change: AlertChange) -> Doc:
    """The alert with ``change`` applied and recorded in its history."""
    diff: dict[str, dict[str, Any]] = {}
    for name, value in change.changes.items():
        if name == ALERT_HISTORY:
            raise StoreError("the alert history is append-only")
        diff[name] = {"from": alert.get(name), "to": value}
        if value is None:
            alert.pop(name, None)
        else:
            alert[name] = value
    entry: Doc = {"@timestamp": to_iso(utcnow()), "actor": change.actor, "action": change.action, "changes": diff,
                  "note": change.note}
    history = alert.get(ALERT_HISTORY)
    alert[ALERT_HISTORY] = [*(history if isinstance(history, list) else []), entry]
    return alert
