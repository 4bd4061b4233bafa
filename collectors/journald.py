"""journald's JSON export (``journalctl -o json``, one entry per line) as ECS events.

The message goes through the same ``collectors.authmsg`` parsers as syslog lines, so an
sshd failure reads the same from either source. ``event.id`` comes from the entry's
``__CURSOR`` (journald's own identity of the entry: boot, sequence number, realtime), so
two overlapping exports of the same journal store each entry once; entries without a
cursor fall back to file identity + byte offset.

Hand-written: there is no maintained parser of the export format on PyPI beyond
``json.loads``, which is what this uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.base import Event, event_id
from collectors.lines import LineError, LineReader, load_json
from collectors.syslog import build_event


def _text(value: Any) -> str | None:
    """journald writes non-UTF-8 fields as arrays of byte values."""
    if value is None:
        return None
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return bytes(v & 0xFF for v in value).decode("utf-8", "replace")
        return _text(value[0]) if value else None  # a field repeated in one entry: take the first
    return str(value)


def _number(text: str | None, most: int | None = None) -> bool:
    """ASCII digits only (of a number up to ``most``): ``str.isdigit`` is also true of "²" and other
    digits ``int`` refuses, and a field journald took from the program (``_PID`` of a forged entry,
    ``PRIORITY``, ``SYSLOG_FACILITY``) is the program's text. A priority or facility out of its range
    is left out (the entry is kept), as one that is not a number."""
    if not text or not text.isascii() or not text.isdigit():
        return False
    return most is None or (len(text) <= 3 and int(text) <= most)


class JournaldReader(LineReader):
    name = "journald"

    def parse(self, text: str, ctx: Any) -> Event | None:
        entry = load_json(text)
        if not isinstance(entry, dict):
            raise LineError("not a journal entry", "expected a JSON object")
        # when the program logged it, else when journald received it
        realtime = entry.get("_SOURCE_REALTIME_TIMESTAMP") or entry.get("__REALTIME_TIMESTAMP")
        if realtime is None:
            raise LineError("missing __REALTIME_TIMESTAMP")
        try:
            ts = datetime.fromtimestamp(int(realtime) / 1_000_000, UTC)
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # OSError: EOVERFLOW past the platform's range
            raise LineError("bad timestamp", f"__REALTIME_TIMESTAMP={str(realtime)[:40]!r}") from exc
        message = _text(entry.get("MESSAGE")) or ""
        tag = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM"))
        pid = _text(entry.get("_PID")) or _text(entry.get("SYSLOG_PID"))
        priority = _text(entry.get("PRIORITY"))
        facility = _text(entry.get("SYSLOG_FACILITY"))
        pri = None
        if _number(priority, 7):
            pri = (int(facility) if _number(facility, 23) else 1) * 8 + int(priority)  # type: ignore[arg-type]
        event = build_event(ts, pri, _text(entry.get("_HOSTNAME")), tag, pid if _number(pid) else None, message)
        cursor = _text(entry.get("__CURSOR"))
        if cursor:
            event["event.id"] = event_id(self.name, "cursor", cursor)
        if unit := _text(entry.get("_SYSTEMD_UNIT")):
            event["service.name"] = unit
        if exe := _text(entry.get("_EXE")):
            event["process.executable"] = exe
        if cmdline := _text(entry.get("_CMDLINE")):
            event["process.command_line"] = event.get("process.command_line") or cmdline
        if uid := _text(entry.get("_UID")):
            event["ztsoc.journald.uid"] = uid
        if transport := _text(entry.get("_TRANSPORT")):
            event["ztsoc.journald.transport"] = transport
        return event

    def begin(self, path: Path | None) -> None:
        return None
