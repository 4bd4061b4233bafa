"""One id rule: every command that takes an event or alert id takes any unique prefix a list shows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detections.lifecycle import find_alert
from eventstore import open_store
from eventstore.errors import AlertNotFound
from eventstore.ids import AmbiguousId, IdNotFound, find_event, resolve_id

EVENTS = [{"@timestamp": f"2026-11-20T08:00:{i:02d}Z", "event.id": eid, "event.dataset": "system.auth",
           "event.action": "ssh_login", "event.outcome": "failure", "user.name": "root", "source.ip": "192.0.2.9"}
          for i, eid in enumerate(["abcd1111aaaa", "abcd2222bbbb", "abcd2222cccc", "ffff0000dddd"])]


def test_prefixes_resolve_on_both_stores(store) -> None:
    store.write_events(EVENTS)
    store.put_alerts([{**EVENTS[0], "event.id": "alert-0123456789", "event.kind": "alert", "rule.id": "r",
                       "rule.name": "r", "ztsoc.alert.status": "new", "ztsoc.alert.level": "low"}])
    store.refresh()
    assert resolve_id(store, "abcd1111aaaa") == "abcd1111aaaa"  # whole id
    assert find_event(store, "abcd1")["event.id"] == "abcd1111aaaa"  # unique prefix
    assert find_event(store, " ffff0 ")["event.id"] == "ffff0000dddd"
    with pytest.raises(AmbiguousId) as amb:
        find_event(store, "abcd2")
    assert set(amb.value.matches) == {"abcd2222bbbb", "abcd2222cccc"}  # the error names them
    assert "abcd2222bbbb" in str(amb.value) and "abcd2222cccc" in str(amb.value)
    with pytest.raises(IdNotFound):
        find_event(store, "0000")
    with pytest.raises(IdNotFound, match="4 characters"):
        find_event(store, "ab")
    assert find_alert(store, "alert-01")["event.id"] == "alert-0123456789"
    with pytest.raises(AlertNotFound):
        find_alert(store, "abcd1")  # an event's id is not an alert's


def _soc(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soc_cli.main", "--store", url, *args], capture_output=True,
                          text=True, timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_every_command_takes_a_prefix_and_hunt_tells_the_whole_truth(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    st = open_store(url)
    st.write_events(EVENTS)
    st.put_alerts([{**EVENTS[0], "event.id": "alert-0123456789", "event.kind": "alert", "rule.id": "r",
                    "rule.name": "r", "ztsoc.alert.status": "new", "ztsoc.alert.level": "low"}])
    st.close()
    show = _soc(url, "events", "show", "ffff0")
    assert show.returncode == 0 and "ffff0000dddd" in show.stdout, show.stderr
    amb = _soc(url, "events", "show", "abcd2")
    assert amb.returncode == 2 and "abcd2222bbbb" in amb.stderr and "abcd2222cccc" in amb.stderr
    assert _soc(url, "respond", "alert-01", "--list").returncode == 0
    explain = _soc(url, "ml", "explain", "alert-01")
    assert explain.returncode == 2 and "not an anomaly alert" in explain.stderr  # found by prefix, then refused
    # hunting: how many there are, of how many, and over which time range
    hunt = _soc(url, "hunt", "user.name:root", "--since", "all", "--limit", "2", "--json")
    assert len(json.loads(hunt.stdout)) == 2
    assert "showing 2 of 4" in hunt.stderr and "from the start to now" in hunt.stderr and "--all" in hunt.stderr
    every = _soc(url, "hunt", "user.name:root", "--since", "all", "--all", "--ndjson")
    assert [json.loads(x)["event.id"] for x in every.stdout.splitlines()] == [e["event.id"] for e in EVENTS]
    table = _soc(url, "hunt", "*", "--since", "2026-11-20T08:00:01Z", "--until", "2026-11-20T08:00:03Z")
    assert "showing 2 of 2" in table.stdout and "2026-11-20T08:00:01" in table.stdout
