"""Display names of the values people read in a cell: alert levels, statuses, close reasons.

The stored value (``high``, ``open``, ``true_positive``) is an identifier: it is what a
query, ``--status`` and JSON use, in every language. A table shows ``label(value)``, its
name in the interface language; a value without a name here is shown as it is.
"""

from __future__ import annotations

from typing import Any

from locales import N_, _, overlay

LABELS: dict[str, str] = {
    # alert levels (detections.lifecycle.LEVELS)
    "critical": N_("critical"), "high": N_("high"), "medium": N_("medium"), "low": N_("low"),
    "informational": N_("informational"),
    # alert statuses
    "open": N_("open"), "acknowledged": N_("acknowledged"), "escalated": N_("escalated"),
    "closed": N_("closed"), "all": N_("all"),
    # close reasons
    "true_positive": N_("true positive"), "false_positive": N_("false positive"), "benign": N_("benign"),
    "duplicate": N_("duplicate"),
    # policy: decisions and rule effects, problems' severities, what changed between two policy sets
    "allow": N_("allow"), "deny": N_("deny"), "error": N_("error"), "warning": N_("warning"),
    "added": N_("added"), "removed": N_("removed"), "changed": N_("changed"),
    # exercises' difficulty
    "beginner": N_("beginner"), "intermediate": N_("intermediate"), "advanced": N_("advanced"),
}


#: a level in a narrow column (the TUI's queue): English keeps its four letters
SHORT_LEVELS: dict[str, str] = {"critical": N_("crit"), "high": N_("high"), "medium": N_("medi"), "low": N_("low"),
                                "informational": N_("info")}


def short_level(value: object) -> str:
    """A level's short name in the interface language (``crit``, ``n.trọng``)."""
    text = str(value)
    return _(SHORT_LEVELS[text]) if text in SHORT_LEVELS else text[:4]


def label(value: object) -> str:
    """The display name of a level, status or reason in the interface language."""
    text = str(value)
    return _(LABELS[text]) if text in LABELS else text


def rule_text(alert: Any, key: str = "title") -> str | None:
    """A shipped rule's title (or description, guide, response) in the interface language, by
    ``rule.id``; None when there is no translation (then show what the alert stored)."""
    rule_id = alert.get("rule.id") if hasattr(alert, "get") else None
    text = (overlay("rules").get(str(rule_id)) or {}).get(key) if rule_id else None
    return str(text).strip() if text else None


def rule_title(alert: Any) -> Any:
    """The rule's title as shown: translated when a translation exists, else the stored ``rule.name``."""
    return rule_text(alert) or alert.get("rule.name")


#: Column keys (the JSON keys of a listing) -> their display name. A table's heading is a
#: display: JSON, NDJSON and CSV keep the key in every language (scripts must not change with
#: it). In English a heading stays the key itself, as it always was (analysts learn the ECS
#: names from it and output captured in docs does not move); in another language it is the
#: key's name here, translated. A key not here (``z``, ``dsl``) is shown as it is.
HEADINGS: dict[str, str] = {
    # alerts and rules
    "@timestamp": N_("time"), "event.id": N_("id"), "id": N_("id"), "rule": N_("rule"), "rule.name": N_("rule"),
    "rule.id": N_("rule id"), "rules": N_("rules"), "ztsoc.alert.level": N_("level"), "level": N_("level"),
    "ztsoc.alert.entity.value": N_("entity"), "ztsoc.alert.first_seen": N_("first seen"), "count": N_("count"),
    "matches": N_("matches"), "host.name": N_("host"), "fields": N_("fields"), "type": N_("type"),
    "tags": N_("tags"), "query": N_("query"), "path": N_("file"), "stage": N_("stage"), "reason": N_("reason"),
    "sample": N_("sample"), "events": N_("events"), "alerts": N_("alerts"), "ok": N_("ok"),
    "threat.technique.id": N_("technique"), "threat.tactic.name": N_("tactic"),
    # alert exceptions, dashboard tokens
    "owner": N_("owner"), "expires": N_("expires"), "active": N_("active"), "name": N_("name"),
    "created": N_("created"), "created_by": N_("created by"),
    # exercises and the scoreboard
    "title": N_("title"), "difficulty": N_("difficulty"), "techniques": N_("techniques"),
    "questions": N_("questions"), "points": N_("points"), "trainee": N_("trainee"), "exercise": N_("exercise"),
    "score": N_("score"), "max": N_("out of"), "hints": N_("hints"), "seconds": N_("seconds"),
    # anomaly models
    "kind": N_("kind"), "windows": N_("windows"), "n_windows": N_("windows"), "own_baseline": N_("own baseline"),
    "detector": N_("detector"), "threshold": N_("threshold"), "manifest": N_("manifest"), "label": N_("feature"),
    "value": N_("value"), "baseline_median": N_("baseline median"), "baseline_p99": N_("baseline p99"),
    "baseline": N_("baseline"), "status": N_("status"), "trained_since": N_("trained from"),
    "trained_until": N_("trained until"), "alerting": N_("alerting"), "ztsoc.alert.score": N_("anomaly score"),
    "ztsoc.alert.threshold": N_("threshold"), "message": N_("message"),
    # policy explain and what-if
    "effect": N_("effect"), "matched": N_("matched"), "failed": N_("failed condition"), "detail": N_("detail"),
    "where": N_("where"), "user.name": N_("user"), "service.name": N_("service"),
    "http.request.method": N_("method"), "url.path": N_("URL path"), "old": N_("old decision"),
    "new": N_("new decision"), "new_reason": N_("new reason"),
}


def heading(key: str) -> str:
    """The heading of column ``key`` in the interface language (English: the key itself)."""
    from locales import SOURCE_LANGUAGE, current_language

    if current_language() == SOURCE_LANGUAGE or key not in HEADINGS:
        return key
    return _(HEADINGS[key])
