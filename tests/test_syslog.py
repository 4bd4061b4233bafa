"""RFC 3164 / RFC 5424 auth logs: headers, the missing year and zone, bad lines counted, resumable."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

import pytest

from collectors.base import read_all, read_resumed
from collectors.syslog import SyslogReader
from tests.ecs_allowed import check


def write(path: Path, text: str, mtime: str | None = None) -> Path:
    path.write_text(text)
    if mtime:
        ts = datetime.fromisoformat(mtime).timestamp()
        os.utime(path, (ts, ts))
    return path


def test_rfc3164_auth_line(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log",
                 "Mar  3 09:15:02 web1 sshd[2211]: Accepted publickey for alice from 192.0.2.4 port 51000 ssh2\n",
                 mtime="2024-03-04T00:00:00+00:00")
    [event] = read_all(SyslogReader(tz="UTC"), path).events
    assert event["@timestamp"] == "2024-03-03T09:15:02.000Z"
    assert event["host.name"] == "web1"
    assert event["process.name"] == "sshd" and event["process.pid"] == 2211
    assert event["event.dataset"] == "system.auth"
    assert event["event.outcome"] == "success" and event["user.name"] == "alice"
    assert event["event.original"].startswith("Mar  3 09:15:02")
    assert event["ztsoc.log.offset"] == 0 and event["log.file.path"] == str(path)
    check(event)


def test_year_rolls_back_for_lines_after_the_file_was_last_written(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log",
                 "Dec 31 23:59:58 h sshd[1]: Failed password for root from 10.0.0.1 port 1 ssh2\n"
                 "Jan  1 00:00:03 h sshd[1]: Failed password for root from 10.0.0.1 port 1 ssh2\n",
                 mtime="2025-01-01T08:00:00+00:00")
    stamps = [e["@timestamp"] for e in read_all(SyslogReader(tz="UTC"), path).events]
    assert stamps == ["2024-12-31T23:59:58.000Z", "2025-01-01T00:00:03.000Z"]


def test_year_and_zone_options(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log", "Jul  4 12:00:00 h su[9]: (to root) alice on pts/0\n")
    [event] = read_all(SyslogReader(year=2019, tz="Europe/Paris"), path).events
    assert event["@timestamp"] == "2019-07-04T10:00:00.000Z"  # CEST is UTC+2
    [event] = read_all(SyslogReader(year=2019, tz="America/New_York"), path).events
    assert event["@timestamp"] == "2019-07-04T16:00:00.000Z"
    with pytest.raises(ValueError, match="unknown time zone"):
        SyslogReader(tz="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):  # once OSError: file name too long
        SyslogReader(tz="America/Reg" + "x" * 300)


def test_feb_29_in_a_leap_year_only(tmp_path: Path) -> None:
    path = write(tmp_path / "auth.log", "Feb 29 10:00:00 h sshd[1]: Connection closed by 10.0.0.1 port 22\n",
                 mtime="2025-03-01T00:00:00+00:00")
    [event] = read_all(SyslogReader(tz="UTC"), path).events
    assert event["@timestamp"].startswith("2024-02-29")  # 2025 has no 29 February


def test_rfc5424_with_structured_data(tmp_path: Path) -> None:
    line = ('<38>1 2026-11-25T10:11:12.345678+01:00 bastion sshd 4242 AUTH [origin ip="10.0.0.9"]'
            '[meta sequenceId="7" note="a \\"quoted\\" ]"] \ufeffFailed password for invalid user guest from '
            '203.0.113.50 port 61000 ssh2\n')
    [event] = read_all(SyslogReader(), write(tmp_path / "a.log", line)).events
    assert event["@timestamp"] == "2026-11-25T09:11:12.345Z"
    assert event["log.syslog.facility.code"] == 4 and event["log.syslog.severity.code"] == 6
    assert event["host.name"] == "bastion" and event["process.pid"] == 4242
    assert event["log.syslog.msgid"] == "AUTH"
    assert event["log.syslog.structured_data.origin.ip"] == "10.0.0.9"
    assert event["log.syslog.structured_data.meta.note"] == 'a "quoted" ]'
    check(event)
    assert event["user.name"] == "guest" and event["event.outcome"] == "failure"
    assert event["source.ip"] == "203.0.113.50"


def test_iso_traditional_format_and_nil_fields(tmp_path: Path) -> None:
    text = ("2026-11-25T10:00:00.123456+00:00 db1 sudo:    bob : TTY=pts/0 ; PWD=/srv ; USER=root ; COMMAND=/bin/ls\n"
            "<86>1 2026-11-25T10:00:01Z - - - - - session opened\n")
    events = read_all(SyslogReader(), write(tmp_path / "a.log", text)).events
    assert events[0]["event.action"] == "sudo_command" and events[0]["user.effective.name"] == "root"
    assert events[0]["@timestamp"] == "2026-11-25T10:00:00.123Z"
    assert "host.name" not in events[1] and events[1]["message"] == "session opened"


def test_bad_lines_are_counted_and_the_rest_is_read(tmp_path: Path) -> None:
    text = ("not a syslog line at all\n"
            "Nov 25 10:00:00 h sshd[1]: Invalid user x from 10.0.0.1\n"
            "\n"
            "<999>Nov 25 10:00:00 h sshd[1]: bad pri\n"
            "Foo 25 10:00:00 h sshd[1]: bad month\n"
            "Nov 25 10:00:01 h kernel: no pid here\n")
    result = read_all(SyslogReader(tz="UTC"), write(tmp_path / "a.log", text, mtime="2026-11-26T00:00:00+00:00"))
    assert [e["message"] for e in result.events] == ["Invalid user x from 10.0.0.1", "no pid here"]
    assert sorted(p.reason for p in result.problems) == ["bad priority", "bad timestamp", "no syslog header"]
    first = next(p for p in result.problems if p.raw == "not a syslog line at all")
    assert first.position == "line 1 (byte 0)" and first.source == str(tmp_path / "a.log")
    assert result.events[1]["event.dataset"] == "system.syslog"


def test_crlf_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"Nov 25 10:00:00 h sshd[1]: Invalid user \xff\xfe from 10.0.0.1\r\n")
    [event] = read_all(SyslogReader(tz="UTC"), path).events
    assert event["user.name"] == "\ufffd\ufffd" and not event["message"].endswith("\r")


def test_resume_after_any_batch_gives_the_same_events(tmp_path: Path) -> None:
    lines = "".join(f"Nov 25 10:{i // 60:02d}:{i % 60:02d} h sshd[{i}]: Failed password for u{i} from 10.0.{i // 250}.{i % 250}"
                    f" port {1000 + i} ssh2\n" for i in range(300))
    path = write(tmp_path / "a.log", lines + "garbage\n" * 3, mtime="2026-11-26T00:00:00+00:00")
    whole = read_all(SyslogReader(tz="UTC"), path)
    resumed = read_resumed(SyslogReader(tz="UTC"), path, batch_size=7)
    assert resumed.events == whole.events and len(whole.events) == 300
    assert resumed.problems == whole.problems and len(whole.problems) == 3
    for event in whole.events:
        check(event)
    assert {k: whole.checkpoint[k] for k in ("offset", "line")} == {"offset": path.stat().st_size, "line": 303}


def test_year_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        SyslogReader(year=12)


def test_repeated_message_counts_every_attempt(tmp_path: Path) -> None:
    path = write(tmp_path / "a.log", "Nov 25 10:00:00 h sshd[7]: message repeated 3 times: [ Failed password for root "
                                     "from 10.0.0.9 port 22 ssh2]\n", mtime="2026-11-26T00:00:00+00:00")
    events = read_all(SyslogReader(tz="UTC"), path).events
    assert len(events) == 3 and len({e["event.id"] for e in events}) == 3
    assert all(e["event.outcome"] == "failure" and e["user.name"] == "root" for e in events)
    assert [e["event.id"] for e in read_all(SyslogReader(tz="UTC"), path).events] == [e["event.id"] for e in events]


@pytest.mark.parametrize("tz", ["Europe/Paris", "Australia/Lord_Howe", "America/St_Johns", "UTC"])
def test_minute_cache_dates_every_second_as_the_uncached_rule(tmp_path: Path, tz: str) -> None:
    """Each minute is dated once and shared by its seconds: never across a zone change
    (DST, Lord Howe's half hour), a year boundary of the two-day rule, or a leap second."""
    from collectors.syslog import _FileContext
    from eventstore.timeutil import to_iso

    stamps = [(mon, day, hh, mm, ss)
              for mon, day in (("Mar", "30"), ("Apr", " 6"), ("Oct", " 5"), ("Oct", "26"), ("Nov", " 2"),
                               ("Mar", " 9"), ("Dec", "31"), ("Jan", " 1"), ("Jan", " 3"), ("Feb", "29"))
              for hh in ("00", "01", "02", "03", "23") for mm in ("00", "29", "30", "59")
              for ss in ("00", "01", "30", "59", "60")]
    text = "".join(f"{mon} {day} {hh}:{mm}:{ss} h sshd[1]: Invalid user a from 10.0.0.1\n"
                   for mon, day, hh, mm, ss in stamps)
    # the file was last written on 1 Jan 2025 at 00:30:30 UTC: "Jan  3 00:30" still belongs to
    # 2025 at :00 and :29 (two days later, to the second), not at :31
    path = write(tmp_path / "auth.log", text, mtime="2025-01-01T00:30:30+00:00")
    reader = SyslogReader(tz=tz)
    result = read_all(reader, path)
    fresh = _FileContext(reader.begin(path).reference)  # no cache: the rule line by line
    expected, reasons = [], []
    for mon, day, hh, mm, ss in stamps:
        try:
            expected.append(to_iso(reader.bsd_time(mon, day.strip(), hh, mm, ss, fresh)))
        except ValueError as exc:  # LineError
            reasons.append(str(exc))
    assert [e["@timestamp"] for e in result.events] == expected
    assert len(result.problems) == len(reasons) and all(p.reason == "bad timestamp" for p in result.problems)
    assert any(ss == "60" for *_, ss in stamps) and reasons  # leap seconds and 29 Feb 2025/2024 were tried


def test_minute_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collectors.syslog as syslog

    text = "".join(f"Nov {1 + i // 1440:2d} {(i // 60) % 24:02d}:{i % 60:02d}:{i % 7:02d} h sshd[1]: x\n"
                   for i in range(0, 3000, 7))
    path = write(tmp_path / "auth.log", text, mtime="2026-11-26T00:00:00+00:00")
    whole = read_all(SyslogReader(tz="Europe/Paris"), path).events
    monkeypatch.setattr(syslog, "MINUTES_KEPT", 5)
    reader = SyslogReader(tz="Europe/Paris")
    ctx = reader.begin(path)
    parsed = [reader.parse(line, ctx) for line in text.splitlines()]
    assert [e["@timestamp"] for e in parsed if e] == [e["@timestamp"] for e in whole] and len(parsed) == len(whole)
    assert len(ctx.minutes) <= 5


@pytest.mark.parametrize("tz", ["Europe/Paris", "Australia/Lord_Howe", "UTC"])
def test_iso_stamps_through_the_minute_cache_match_the_direct_conversion(tmp_path: Path, tz: str) -> None:
    from collectors.syslog import _iso_time
    from eventstore.timeutil import to_iso

    stamps = [f"2025-{md}{sep}{hh}:{mm}:{ss}{frac}{zone}"
              for md in ("03-30", "04-06", "10-05", "10-26") for sep in ("T", " ") for hh in ("01", "02", "03")
              for mm in ("00", "30", "59") for ss in ("00", "59", "60") for frac in ("", ".5", ".123456", ".1234567")
              for zone in ("", "Z", "+05:45", "-0330")]
    text = "".join(f"{ts} h sshd[1]: Invalid user a from 10.0.0.1\n" for ts in stamps)
    result = read_all(SyslogReader(tz=tz), write(tmp_path / "auth.log", text))
    expected = []
    zone = SyslogReader(tz=tz).tz
    for ts in stamps:
        with contextlib.suppress(ValueError):  # LineError: second 60
            expected.append(to_iso(_iso_time(ts, zone)))
    assert [e["@timestamp"] for e in result.events] == expected
    assert len(result.problems) == len(stamps) - len(expected) > 0
