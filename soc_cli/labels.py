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
}


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
