"""Sample-event templates: repeat, spacing, counters, integer fields; rule closure for tests."""

from __future__ import annotations

import json

import pytest

from detections.sigma.loader import load_rules
from detections.sigma.samples import closure, expand, load_events


def test_expand_repeats_with_counters() -> None:
    docs = expand([{"@timestamp": "2026-03-02T09:00:00Z", "user.name": "u{i%2}", "destination.port": "{i+1000}",
                    "host.name": "h{i}", "_ints": ["destination.port"], "_repeat": 3, "_every": "250ms"}], prefix="x")
    assert [d["@timestamp"] for d in docs] == ["2026-03-02T09:00:00.000Z", "2026-03-02T09:00:00.250Z",
                                               "2026-03-02T09:00:00.500Z"]
    assert [d["user.name"] for d in docs] == ["u0", "u1", "u0"]
    assert [d["destination.port"] for d in docs] == [1000, 1001, 1002]
    assert [d["event.id"] for d in docs] == ["x-00000", "x-00001", "x-00002"]
    assert all(not k.startswith("_") for d in docs for k in d)


def test_closure_brings_the_referenced_rules() -> None:
    rs = load_rules()
    keys = {r.key for r in closure(rs, rs.find("ssh_bruteforce_then_success")).rules}
    assert keys == {"ssh_bruteforce_then_success", "ssh_bruteforce", "ssh_auth_failed", "ssh_auth_success"}


def test_load_events_formats_and_errors(tmp_path) -> None:
    jl = tmp_path / "e.jsonl"
    jl.write_text(json.dumps({"@timestamp": "2026-03-02T09:00:00Z", "a": 1}) + "\n\n")
    assert load_events(jl)[0]["event.id"] == "e-1"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"@timestamp": "x"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        load_events(bad)
    no_ts = tmp_path / "n.json"
    no_ts.write_text('[{"a": 1}]')
    with pytest.raises(ValueError, match="no @timestamp"):
        load_events(no_ts)
