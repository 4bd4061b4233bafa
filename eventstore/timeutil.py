"""Time parsing shared by every command: ``15m``, ``24h``, ``7d`` or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    m = _RELATIVE.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 15m, 24h, 7d)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """``7d`` means seven days before ``now``; anything else must be ISO 8601 (UTC if no zone)."""
    if _RELATIVE.match(text):
        return (now or utcnow()) - parse_duration(text)
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (expected 15m, 24h, 7d or an ISO 8601 time)") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_iso(ts: datetime) -> str:
    """The one timestamp format we write: UTC, millisecond precision, ``Z``."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_epoch_ms(ts: datetime | str) -> int:
    if isinstance(ts, str):
        ts = from_iso(ts)
    return int(ts.timestamp() * 1000)
