"""ECS JSON lines, flat or nested, flattened; given ids kept, missing ones derived."""

from __future__ import annotations

import json
from pathlib import Path

from collectors.base import read_all
from collectors.jsonl import JsonlReader, flatten


def test_flatten_nested_and_opaque() -> None:
    doc = {"source": {"ip": "10.0.0.1", "geo": {"country_iso_code": "FR"}}, "dns": {"answers": [{"data": "x"}]},
           "tags": ["a"], "event.kind": "event"}
    assert flatten(doc) == {"source.ip": "10.0.0.1", "source.geo.country_iso_code": "FR",
                            "dns.answers": [{"data": "x"}], "tags": ["a"], "event.kind": "event"}


def test_read_flat_nested_and_bad(tmp_path: Path) -> None:
    lines = [
        json.dumps({"@timestamp": "2026-11-25T10:00:00+01:00", "event": {"id": "given-1", "dataset": "x.y"},
                    "user": {"name": "alice"}}),
        json.dumps({"@timestamp": "2026-11-25T09:00:01Z", "source.ip": "10.1.1.1"}),
        json.dumps({"@timestamp": 1764061202000, "message": "epoch ms"}),
        "",
        "{broken",
        json.dumps([1, 2]),
        json.dumps({"message": "no time"}),
        json.dumps({"@timestamp": "yesterday-ish"}),
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = read_all(JsonlReader(), path)
    a, b, c = result.events
    assert a["event.id"] == "given-1" and a["user.name"] == "alice" and a["@timestamp"] == "2026-11-25T09:00:00.000Z"
    assert a["event.kind"] == "event" and "event.original" not in a
    assert b["source.ip"] == "10.1.1.1" and len(b["event.id"]) == 40
    assert c["@timestamp"] == "2025-11-25T09:00:02.000Z"
    assert sorted(p.reason for p in result.problems) == [
        "bad @timestamp", "invalid JSON", "missing @timestamp", "not a JSON object"]
    again = read_all(JsonlReader(), path)
    assert [e["event.id"] for e in again.events] == [e["event.id"] for e in result.events]
