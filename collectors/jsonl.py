"""JSON lines already in ECS (``soc ingest jsonl``): flat (``{"source.ip": ...}``) or nested
(``{"source": {"ip": ...}}``), flattened to the dotted names the store speaks.

An ``event.id`` in the input is kept (the producer knows its events' identity, and a
re-export then dedupes); otherwise it is derived from file identity + byte offset.
``@timestamp`` is required and normalised to UTC ISO; ``event.kind`` defaults to ``event``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from collectors.base import Event, clip
from collectors.lines import LineError, LineReader, load_json, utc_stamp
from eventstore.timeutil import from_iso

#: objects under these keys stay whole (their keys are data, not field names)
OPAQUE = frozenset({"dns.answers", "ztsoc.alert.explanation", "ztsoc.alert.history"})


#: objects nested deeper than this are not field names any producer writes: the line is refused
MAX_DEPTH = 32


def flatten(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    out = {} if out is None else out
    if depth > MAX_DEPTH:
        raise LineError("nested too deep", f"objects nested more than {MAX_DEPTH} deep at {prefix[:200]}")
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in OPAQUE:
            flatten(value, name + ".", out, depth + 1)
        else:
            out[name] = value
    return out


def normalise_timestamp(value: Any) -> str:
    """``@timestamp`` of the line's value (epoch seconds or milliseconds, or ISO text); ``ValueError`` if none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value  # epoch milliseconds or seconds
        return utc_stamp(datetime.fromtimestamp(seconds, UTC))
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    return utc_stamp(from_iso(value.strip()))


class JsonlReader(LineReader):
    name = "jsonl"
    keep_original = False  # the line IS the event
    expands_repeats = False  # one line, one event: a stored copy of a repeated message, exported, stays one

    def parse(self, text: str, ctx: Any) -> Event | None:
        doc = load_json(text)
        if not isinstance(doc, dict):
            raise LineError("not a JSON object", text[:200])
        event = flatten(doc)
        ts = event.get("@timestamp")
        if ts is None:
            raise LineError("missing @timestamp", text[:200])
        try:
            event["@timestamp"] = normalise_timestamp(ts)
        except LineError as exc:
            raise LineError("bad @timestamp", f"{clip(repr(ts), 200)}: {exc.detail}") from exc
        except (ValueError, OverflowError, OSError) as exc:
            raise LineError("bad @timestamp", f"{clip(repr(ts), 200)}: {exc}") from exc
        event.setdefault("event.kind", "event")
        eid = event.get("event.id")
        if eid is not None and (not isinstance(eid, str) or not eid):
            event["event.id"] = str(eid) if eid not in ("", None) else None
            if event["event.id"] is None:
                del event["event.id"]
        return event
