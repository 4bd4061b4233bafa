"""The reader contract's helpers: ids and identities that make re-reads idempotent."""

from __future__ import annotations

from pathlib import Path

from collectors.base import event_id, first_line_identity, head_identity, id_prefix, read_all, read_resumed
from collectors.syslog import SyslogReader

LINES = [f"Nov 25 10:00:{i % 60:02d} host sshd[{100 + i}]: Failed password for root from 10.0.0.{i % 250} port 22 ssh2"
         for i in range(57)]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_event_id_is_deterministic_and_position_sensitive() -> None:
    a = event_id("syslog", "abc", 10)
    assert a == event_id("syslog", "abc", 10)
    assert a != event_id("syslog", "abc", 11)
    assert a != event_id("syslog", "abd", 10)
    assert a != event_id("jsonl", "abc", 10)
    assert len(a) == 40 and int(a, 16) >= 0


def test_id_prefix_makes_the_same_ids_as_event_id() -> None:
    import hashlib

    prefix = id_prefix("syslog", "abc")
    for position in (0, 7, 10, 123_456_789):
        assert hashlib.sha1(prefix + b"%d" % position).hexdigest() == event_id("syslog", "abc", position)


def test_identity_follows_content_not_path(tmp_path: Path) -> None:
    one = write(tmp_path / "auth.log", LINES)
    two = write(tmp_path / "copy.log", LINES)
    assert first_line_identity(one) == first_line_identity(two)
    assert head_identity(one) == head_identity(two)
    other = write(tmp_path / "other.log", LINES[1:])
    assert first_line_identity(other) != first_line_identity(one)


def test_first_line_identity_is_stable_while_the_file_grows(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log", LINES[:1])
    before = first_line_identity(path)
    with path.open("a") as fh:
        fh.write(LINES[1] + "\n")
    assert first_line_identity(path) == before


def test_read_resumed_equals_read_all(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log", LINES)
    whole = read_all(SyslogReader(tz="UTC"), path, batch_size=1000)
    for size in (1, 5, 56, 57, 100):
        pieces = read_resumed(SyslogReader(tz="UTC"), path, batch_size=size)
        assert [e["event.id"] for e in pieces.events] == [e["event.id"] for e in whole.events]
        assert pieces.events == whole.events
    assert len(whole.events) == len(LINES)
    assert len({e["event.id"] for e in whole.events}) == len(LINES)
