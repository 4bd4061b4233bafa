"""Hostile log files: the line readers' one boundary (collectors.lines) keeps errors with their line,
memory flat whatever the line length, and a damaged file costs only itself."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from collectors.base import ReadResult, read_all
from collectors.journald import JournaldReader
from collectors.jsonl import JsonlReader
from collectors.lines import BoundedLines, LineReader
from collectors.pipeline import ingest
from collectors.syslog import SyslogReader
from eventstore import Store

SSH_FAIL = "Nov 25 08:00:01 web1 sshd[4242]: Failed password for root from 198.51.100.7 port 40000 ssh2\n"
ECS = json.dumps({"@timestamp": "2026-11-25T08:00:00Z", "event.action": "x"}) + "\n"


def _read_measured(reader: LineReader, path: Path) -> tuple[ReadResult, int]:
    """Everything the reader gives, and the peak of Python memory while reading."""
    tracemalloc.start()
    try:
        return read_all(reader, path), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bounded_lines_splits_nothing_it_need_not() -> None:
    data = b"a\nbb\n" + b"c" * 10 + b"\n" + b"d" * 25 + b"\nlast"
    lines = BoundedLines(io.BytesIO(data), limit=8)
    out = [(raw, lines.dropped if len(raw) >= 8 else 0) for raw in lines]
    assert out == [(b"a\n", 0), (b"bb\n", 0), (b"c" * 8, 3), (b"d" * 8, 18), (b"last", 0)]


def test_a_huge_line_is_cut_counted_and_memory_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    with open(path, "w") as fh:
        fh.write(SSH_FAIL)
        fh.write("Nov 25 08:00:02 web1 sshd[1]: " + "A" * (40 << 20) + "\n")  # 40 MB in one line
        fh.write(SSH_FAIL.replace("08:00:01", "08:00:03"))
    reader = SyslogReader()
    reader.max_line = 1 << 16
    out, peak = _read_measured(reader, path)
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 40 MB line"
    assert [p.reason for p in out.problems] == ["line too long"] and out.problems[0].position.startswith("line 2 ")
    assert len(out.events) == 3 and out.events[2]["ztsoc.log.offset"] == path.stat().st_size - len(SSH_FAIL)


def test_zeros_without_a_newline_cost_one_line_of_memory(tmp_path: Path) -> None:
    path = tmp_path / "zeros.jsonl"
    with open(path, "wb") as fh:
        fh.truncate(64 << 20)  # a sparse 64 MB file of NUL bytes
    reader = JsonlReader()
    reader.max_line = 1 << 16
    out, peak = _read_measured(reader, path)
    assert peak < 8 << 20
    assert sorted(p.reason for p in out.problems) == ["invalid JSON", "line too long"] and out.events == []


@pytest.mark.parametrize("reader", [JsonlReader, JournaldReader])
def test_json_nested_too_deep_is_a_problem_of_its_line(tmp_path: Path, reader: type) -> None:
    path = tmp_path / "deep.json"
    entry = ECS if reader is JsonlReader else json.dumps({"__REALTIME_TIMESTAMP": "1795593600000000",
                                                          "MESSAGE": "hello", "__CURSOR": "c1"}) + "\n"
    path.write_text(entry + "[" * 100_000 + "\n" + entry.replace("c1", "c2"))
    out = read_all(reader(), path)
    assert [p.reason for p in out.problems] == ["nested too deep"]
    assert len(out.events) == 2


def test_objects_nested_past_the_depth_bound(tmp_path: Path) -> None:
    doc: dict = {"@timestamp": "2026-11-25T08:00:00Z"}
    inner = doc
    for _ in range(200):
        inner["x"] = {"y": 1}
        inner = inner["x"]
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(doc) + "\n" + ECS)
    out = read_all(JsonlReader(), path)
    assert [p.reason for p in out.problems] == ["nested too deep"] and len(out.events) == 1


def test_any_parser_exception_stays_with_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the parser raises on one line; the others are read, the problem names the line."""
    real = JsonlReader.parse

    def failing(self: JsonlReader, text: str, ctx: object) -> object:
        if "boom" in text:
            raise ZeroDivisionError("injected")
        return real(self, text, ctx)

    monkeypatch.setattr(JsonlReader, "parse", failing)
    path = tmp_path / "x.jsonl"
    path.write_text(ECS + ECS.replace('"x"', '"boom"') + ECS)
    out = read_all(JsonlReader(), path)
    assert len(out.events) == 2
    assert [(p.reason, p.position) for p in out.problems] == [("parser error: ZeroDivisionError",
                                                               f"line 2 (byte {len(ECS)})")]
    assert "failing" in (out.problems[0].raw or "")


def test_a_damaged_gz_among_logs_is_reported_and_the_run_goes_on(tmp_path: Path, sqlite_store: Store) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "auth.log").write_text(SSH_FAIL.replace("08:00:01", "07:00:00"))
    packed = gzip.compress((SSH_FAIL * 5000).encode())
    (folder / "auth.log.2.gz").write_bytes(packed[: len(packed) // 2])
    (folder / "auth.log.3.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 100)
    (folder / "secure").write_text(SSH_FAIL.replace("web1", "web2"))
    report = ingest(sqlite_store, SyslogReader(), [folder])
    assert set(report.problems) == {"unreadable file"} and report.problem_count == 2
    by_file = {Path(f.path).name: f for f in report.files}
    assert by_file["auth.log"].written == 1 and by_file["secure"].written == 1
    assert by_file["auth.log.2.gz"].written > 0  # what the cut file gave before its end is kept


_GOOD_SYSLOG = "2026-11-25T08:00:00Z web1 sshd[1]: Accepted publickey for ann from 198.51.100.7 port 1 ssh2\n"
_GOOD_JOURNAL = json.dumps({"__REALTIME_TIMESTAMP": "1795593600000000", "MESSAGE": "ok", "_HOSTNAME": "web1"}) + "\n"


@pytest.mark.parametrize("reader, bad, good, reason", [
    (SyslogReader, "0001-01-01T00:00:00+01:00 web1 sshd[1]: x\n", _GOOD_SYSLOG, "bad timestamp"),  # overflows into UTC
    (SyslogReader, "9999-12-31T23:59:59-01:00 web1 sshd[1]: x\n", _GOOD_SYSLOG, "bad timestamp"),
    (SyslogReader, "<13>1 0001-01-01T00:00:00+05:00 web1 app - - - x\n", _GOOD_SYSLOG, "bad timestamp"),
    (SyslogReader, "0999-06-01T00:00:00Z web1 sshd[1]: x\n", _GOOD_SYSLOG, "bad timestamp"),  # was '999-06-01T...'
    (JsonlReader, json.dumps({"@timestamp": "0001-01-01T00:00:00Z"}) + "\n", ECS, "bad @timestamp"),
    (JsonlReader, json.dumps({"@timestamp": -62_000_000_000}) + "\n", ECS, "bad @timestamp"),
    (JournaldReader, json.dumps({"__REALTIME_TIMESTAMP": "-62135596800000000", "MESSAGE": "x"}) + "\n", _GOOD_JOURNAL,
     "bad timestamp"),
])
def test_a_time_outside_four_digit_years_is_a_bad_timestamp_of_its_line(tmp_path: Path, reader: type, bad: str,
                                                                         good: str, reason: str) -> None:
    """Such times were a "parser error: OverflowError" (to_iso's conversion to UTC) or were stored with
    a year of one to three digits, a @timestamp that neither sorts nor parses as a time."""
    path = tmp_path / "times.log"
    path.write_text(bad + good)
    out = read_all(reader(), path)
    assert [(p.position, p.reason) for p in out.problems] == [("line 1 (byte 0)", reason)]
    assert len(out.events) == 1 and out.events[0]["@timestamp"].startswith("2026-11-25T")


@pytest.mark.parametrize("reader, line", [
    (JsonlReader, '{"@timestamp": "2026-11-25T08:00:00Z", "n": ' + "7" * 5000 + "}\n"),
    (JournaldReader, '{"__REALTIME_TIMESTAMP": ' + "7" * 5000 + "}\n"),
])
def test_a_number_python_will_not_convert_is_invalid_json_of_its_line(tmp_path: Path, reader: type,
                                                                     line: str) -> None:
    """json.loads raises a plain ValueError past 4,300 digits: it was a "parser error" (a bug's reason)."""
    path = tmp_path / "digits.json"
    path.write_text(line + (ECS if reader is JsonlReader else _GOOD_JOURNAL))
    out = read_all(reader(), path)
    assert [(p.position, p.reason) for p in out.problems] == [("line 1 (byte 0)", "invalid JSON")]
    assert "4300 digits" in (out.problems[0].raw or "") and len(out.events) == 1


@pytest.mark.parametrize("field", ["PRIORITY", "SYSLOG_FACILITY", "_PID"])
def test_a_journal_number_field_with_other_digits_keeps_the_entry(tmp_path: Path, field: str) -> None:
    """'²' passes str.isdigit but not int(): the whole entry was lost to a "parser error: ValueError"."""
    entry = {"__REALTIME_TIMESTAMP": "1795593600000000", "MESSAGE": "Accepted password for ann from 198.51.100.7 "
             "port 1 ssh2", "SYSLOG_IDENTIFIER": "sshd", "PRIORITY": "6", "_PID": "42", field: "\u00b2"}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(entry) + "\n")
    out = read_all(JournaldReader(), path)
    assert out.problems == [] and len(out.events) == 1
    event = out.events[0]
    assert event["event.dataset"] == "system.auth" and event["user.name"] == "ann"
    assert ("process.pid" in event) == (field != "_PID")
    assert ("log.syslog.severity.code" in event) == (field != "PRIORITY")


def test_stored_copies_of_a_repeated_message_are_reingested_once_each(tmp_path: Path) -> None:
    """syslog's "message repeated 3 times" is three events, each carrying ztsoc.auth.repeated = 3. Their
    JSON lines (an export) read back were copied again: nine events (ten thousand from one hostile line)."""
    log = tmp_path / "auth.log"
    log.write_text("2026-11-25T10:00:00Z h sshd[7]: message repeated 3 times: [ Failed password for root from "
                   "10.0.0.9 port 22 ssh2]\n")
    stored = read_all(SyslogReader(tz="UTC"), log).events
    assert len(stored) == 3
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(e) + "\n" for e in stored)
                      + json.dumps({"@timestamp": "2026-11-25T10:00:00Z", "ztsoc.auth.repeated": 10_000}) + "\n")
    again = read_all(JsonlReader(), export)
    assert again.problems == [] and len(again.events) == 4
    assert [e["event.id"] for e in again.events[:3]] == [e["event.id"] for e in stored]


_FAIL = "Failed password for root from 198.51.100.7 port 40000 ssh2"


@pytest.mark.parametrize("pid, forms", [("9" * 5000, ("iso", "5424")), ("9" * 23, ("iso", "5424")),
                                        ("\u00b2", ("5424",))])  # "²" is no \\d: RFC 3164/ISO tags never take it
def test_a_process_id_no_long_holds_keeps_the_event(tmp_path: Path, sqlite_store: Store, pid: str,
                                                    forms: tuple[str, ...]) -> None:
    """The pid is the writer's text (logger --id, a forged line): 5,000 digits were a "parser error"
    (int refused them), 23 digits made the store refuse the whole failed logon (out of the 64-bit
    range), and RFC 5424's "²" passed isdigit into int. Each is kept as log.syslog.procid only."""
    lines = {"iso": f"2026-11-25T08:00:01Z web1 sshd[{pid}]: {_FAIL}\n",
             "5424": f"<38>1 2026-11-25T08:00:02Z web1 sshd {pid} - - {_FAIL}\n"}
    path = tmp_path / "auth.log"
    path.write_text("".join(lines[f] for f in forms) + SSH_FAIL)
    report = ingest(sqlite_store, SyslogReader(tz="UTC"), [path])
    assert report.problem_count == 0 and report.written == len(forms) + 1
    hits = sqlite_store.search("event.outcome:failure AND user.name:root", limit=10).hits
    forged = [h for h in hits if h.get("log.syslog.procid") == pid]
    assert len(forged) == len(forms) and all("process.pid" not in h for h in forged)
    assert [h["process.pid"] for h in hits if h.get("log.syslog.procid") == "4242"] == [4242]


@pytest.mark.parametrize("fields", [{"PRIORITY": "9"}, {"SYSLOG_FACILITY": "99"}, {"SYSLOG_FACILITY": "9" * 5000}])
def test_a_journal_priority_out_of_range_keeps_the_entry(tmp_path: Path, fields: dict[str, str]) -> None:
    """A priority or facility past its range was "bad priority" (facility 99: code 797) or, at 5,000
    digits, a "parser error": the entry was lost for a field the program wrote (and PRIORITY 9 was
    read as severity 1 of facility 2). Now the out-of-range field is left out and the entry kept."""
    entry = {"__REALTIME_TIMESTAMP": "1795593600000000", "MESSAGE": f"{_FAIL}", "SYSLOG_IDENTIFIER": "sshd",
             "PRIORITY": "5", **fields}
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(entry) + "\n")
    out = read_all(JournaldReader(), path)
    assert out.problems == [] and len(out.events) == 1 and out.events[0]["user.name"] == "root"
    assert out.events[0].get("log.syslog.severity.code") == (None if "PRIORITY" in fields else 5)
