"""Display names of the values people read in a cell: alert levels, statuses, close reasons.

The stored value (``high``, ``open``, ``true_positive``) is an identifier: it is what a
query, ``--status`` and JSON use, in every language. A table shows ``label(value)``, its
name in the interface language; a value without a name here is shown as it is.
"""

from __future__ import annotations

from locales import N_, _

LABELS: dict[str, str] = {
    # alert levels (detections.lifecycle.LEVELS)
    "critical": N_("critical"), "high": N_("high"), "medium": N_("medium"), "low": N_("low"),
    "informational": N_("informational"),
    # alert statuses
    "open": N_("open"), "acknowledged": N_("acknowledged"), "escalated": N_("escalated"),
    "closed": N_("closed"),
    # close reasons
    "true_positive": N_("true positive"), "false_positive": N_("false positive"), "benign": N_("benign"),
    "duplicate": N_("duplicate"),
}


def label(value: object) -> str:
    """The display name of a level, status or reason in the interface language."""
    text = str(value)
    return _(LABELS[text]) if text in LABELS else text
