"""``journalctl -o json`` entries -> the same ECS auth events as syslog, ids from the journal cursor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collectors.base import read_all
from collectors.journald import JournaldReader
from collectors.syslog import SyslogReader
from tests.ecs_allowed import check


def entry(i: int, message: Any, **extra: Any) -> dict[str, Any]:
    """Shaped like journalctl's JSON export (all values strings, underscore fields from the journal)."""
    return {
        "__CURSOR": f"s=7f0e;i={1000 + i};b=93c1;m=1a2b;t=62f1{i:04x};x=c0ffee{i}",
        "__REALTIME_TIMESTAMP": str(1764064800_000000 + i * 1_000_000),
        "__MONOTONIC_TIMESTAMP": str(123456 + i), "_BOOT_ID": "93c1", "PRIORITY": "6", "SYSLOG_FACILITY": "10",
        "SYSLOG_IDENTIFIER": "sshd", "_PID": "812", "_COMM": "sshd", "_EXE": "/usr/sbin/sshd",
        "_CMDLINE": "sshd: root [priv]", "_HOSTNAME": "bastion", "_TRANSPORT": "syslog", "_UID": "0",
        "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": message, **extra,
    }


def write(path: Path, entries: list[Any]) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return path


def test_sshd_entry(tmp_path: Path) -> None:
    path = write(tmp_path / "j.json", [entry(0, "Failed password for root from 198.51.100.2 port 4711 ssh2")])
    [event] = read_all(JournaldReader(), path).events
    assert event["@timestamp"] == "2025-11-25T10:00:00.000Z"
    assert event["event.action"] == "ssh_login" and event["event.outcome"] == "failure"
    assert event["user.name"] == "root" and event["source.ip"] == "198.51.100.2" and event["source.port"] == 4711
    assert event["host.name"] == "bastion" and event["process.pid"] == 812
    assert event["service.name"] == "ssh.service" and event["process.executable"] == "/usr/sbin/sshd"
    assert event["log.syslog.facility.code"] == 10 and event["log.syslog.severity.code"] == 6
    assert event["event.dataset"] == "system.auth"
    check(event)


def test_same_fields_as_the_syslog_reader(tmp_path: Path) -> None:
    msg = "Accepted publickey for alice from 192.0.2.1 port 2222 ssh2: ED25519 SHA256:x"
    [j] = read_all(JournaldReader(), write(tmp_path / "j.json", [entry(0, msg)])).events
    (tmp_path / "s.log").write_text(f"Nov 25 10:00:00 bastion sshd[812]: {msg}\n")
    [s] = read_all(SyslogReader(year=2025, tz="UTC"), tmp_path / "s.log").events
    for key in ("event.action", "event.category", "event.type", "event.outcome", "user.name", "source.ip",
                "source.port", "ztsoc.auth.method", "related.user", "@timestamp", "host.name", "process.pid"):
        assert j[key] == s[key], key


def test_cursor_makes_ids_independent_of_the_export(tmp_path: Path) -> None:
    entries = [entry(i, f"Invalid user u{i} from 10.0.0.{i}") for i in range(5)]
    first = read_all(JournaldReader(), write(tmp_path / "a.json", entries)).events
    overlap = read_all(JournaldReader(), write(tmp_path / "b.json", [*entries[2:], entry(9, "x")])).events
    assert {e["event.id"] for e in first} & {e["event.id"] for e in overlap} == {e["event.id"] for e in first[2:]}


def test_binary_message_and_bad_entries(tmp_path: Path) -> None:
    raw = [*list(b"sudo: caf"), 195, 169, 255]
    text = [
        entry(0, raw, SYSLOG_IDENTIFIER="sudo"),
        "{not json",
        json.dumps(["an", "array"]),
        json.dumps({"MESSAGE": "no time"}),
        json.dumps({**entry(1, "x"), "__REALTIME_TIMESTAMP": "soon"}),
        entry(2, "no cursor", __CURSOR=None),
    ]
    result = read_all(JournaldReader(), write(tmp_path / "j.json", text))
    assert result.events[0]["message"] == "sudo: café\ufffd"
    assert sorted(p.reason for p in result.problems) == [
        "bad timestamp", "invalid JSON", "missing __REALTIME_TIMESTAMP", "not a journal entry"]
    assert len(result.events) == 2 and len({e["event.id"] for e in result.events}) == 2


def test_a_timestamp_past_the_platforms_range_is_one_bad_line(tmp_path) -> None:
    """Found by fuzzing: a huge __REALTIME_TIMESTAMP raised OSError (EOVERFLOW) out of the reader."""
    from collectors.base import read_all
    from collectors.journald import JournaldReader

    path = tmp_path / "j.json"
    path.write_text('{"__REALTIME_TIMESTAMP": "99999999999999999999999", "MESSAGE": "x"}\n'
                    '{"__REALTIME_TIMESTAMP": "1764000000000000", "MESSAGE": "sshd ok", "_COMM": "sshd"}\n')
    result = read_all(JournaldReader(), path)
    assert len(result.events) == 1 and [p.reason for p in result.problems] == ["bad timestamp"]
