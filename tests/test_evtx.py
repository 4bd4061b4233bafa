"""EVTX records -> ECS: the logon family mapped, every other record kept with winlog.* fields.

``record_to_event`` is tested on records shaped exactly as PyPI ``evtx`` returns them
(``records_json()``'s ``data``); the reader itself runs on real files from
``../shared/data`` when they are there.
"""

from __future__ import annotations

import glob
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.base import read_all, read_resumed
from collectors.evtx import LOGON_FAMILY, EvtxReader, header_record_count, record_to_event
from collectors.pipeline import ingest
from eventstore import Store
from tests.ecs_allowed import check
from tests.evtxgen import Record, write_evtx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def record(event_id: int, data: dict[str, Any] | None, *, channel: str | None = "Security",
           provider: str = "Microsoft-Windows-Security-Auditing", **system: Any) -> dict[str, Any]:
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": provider, "Guid": "{54849625-5478-4994-A5BA-3E3B0328C30D}"}},
            "EventID": event_id, "Version": 2, "Level": 0, "Task": 12544, "Opcode": 0, "Keywords": "0x8020000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": "2019-05-12T08:00:01.1234567Z"}}, "EventRecordID": 88,
            "Correlation": None, "Execution": {"#attributes": {"ProcessID": 624, "ThreadID": 700}},
            "Channel": channel, "Computer": "DC01.corp.local", "Security": None, **system},
        **({"EventData": data} if data is not None else {}),
    }}


LOGON = {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "DC01$", "SubjectDomainName": "CORP",
         "SubjectLogonId": "0x3e7", "TargetUserSid": "S-1-5-21-1-2-3-1104", "TargetUserName": "alice",
         "TargetDomainName": "CORP", "TargetLogonId": "0x8dcdc", "LogonType": 3, "LogonProcessName": "NtLmSsp ",
         "AuthenticationPackageName": "NTLM", "WorkstationName": "WS7", "ProcessId": "0x0", "ProcessName": "-",
         "IpAddress": "::ffff:10.0.0.7", "IpPort": "49812"}


def test_4624_logon() -> None:
    e = record_to_event(record(4624, LOGON))
    assert e["@timestamp"] == "2019-05-12T08:00:01.123Z"
    assert e["event.code"] == "4624" and e["winlog.event_id"] == "4624"
    assert (e["event.dataset"], e["event.action"], e["event.outcome"]) == ("windows.security", "logged-in", "success")
    assert e["event.category"] == ["authentication", "session"] and e["event.type"] == ["start"]
    assert (e["user.name"], e["user.domain"], e["user.id"]) == ("alice", "CORP", "S-1-5-21-1-2-3-1104")
    assert (e["source.ip"], e["source.port"], e["source.domain"]) == ("10.0.0.7", 49812, "WS7")
    assert (e["winlog.logon.type"], e["winlog.logon.id"]) == ("Network", "0x8dcdc")
    assert e["winlog.event_data.LogonType"] == "3" and e["winlog.event_data.TargetUserName"] == "alice"
    assert (e["host.name"], e["winlog.computer_name"], e["winlog.channel"]) == ("DC01.corp.local",) * 2 + ("Security",)
    assert e["winlog.provider_name"] == "Microsoft-Windows-Security-Auditing" and e["winlog.record_id"] == "88"
    assert e["winlog.process.pid"] == 624 and e["related.user"] == ["alice"] and e["related.ip"] == ["10.0.0.7"]
    assert "process.pid" not in e  # ProcessId 0x0 / ProcessName "-" mean none
    check(e)


def test_4625_failure_reason() -> None:
    e = record_to_event(record(4625, {**LOGON, "Status": "0xc000006d", "SubStatus": "0xC000006A",
                                      "ProcessId": "0x2a8", "ProcessName": "C:\\Windows\\System32\\lsass.exe"}))
    assert e["event.outcome"] == "failure" and e["event.reason"] == "bad password"
    assert e["process.name"] == "lsass.exe" and e["process.pid"] == 0x2A8
    check(e)


@pytest.mark.parametrize(("code", "data", "expected"), [
    (4768, {"TargetUserName": "bob", "TargetDomainName": "CORP", "Status": "0x0", "IpAddress": "::ffff:10.1.1.1",
            "ServiceName": "krbtgt"}, {"event.outcome": "success", "service.name": "krbtgt", "source.ip": "10.1.1.1"}),
    (4769, {"TargetUserName": "bob@CORP", "ServiceName": "MSSQLSvc", "Status": "0x1b"}, {"event.outcome": "failure"}),
    (4771, {"TargetUserName": "bob", "Status": "0x18", "IpAddress": "10.1.1.2"},
     {"event.reason": "pre-authentication failed (bad password)", "event.outcome": "failure"}),
    (4776, {"TargetUserName": "carol", "Workstation": "WS9", "Status": "0xc0000064"},
     {"event.outcome": "failure", "source.domain": "WS9", "event.reason": "user name does not exist"}),
    (4648, {**LOGON, "TargetServerName": "FS01"}, {"user.name": "DC01$", "user.target.name": "alice",
                                                   "destination.domain": "FS01"}),
    (4672, {"SubjectUserName": "admin", "PrivilegeList": "SeDebugPrivilege\n\t\t\tSeBackupPrivilege"},
     {"event.category": ["iam"], "event.type": ["admin"], "user.roles": ["SeDebugPrivilege", "SeBackupPrivilege"]}),
    (4720, {"SubjectUserName": "admin", "TargetUserName": "eve", "TargetSid": "S-1-5-21-9"},
     {"event.type": ["user", "creation"], "user.name": "admin", "user.target.name": "eve",
      "user.target.id": "S-1-5-21-9"}),
    (4726, {"SubjectUserName": "admin", "TargetUserName": "eve"}, {"event.type": ["user", "deletion"]}),
    (4732, {"SubjectUserName": "admin", "MemberName": "CN=Eve Smith\\, Jr,OU=Users,DC=corp", "MemberSid": "S-1-5-21-9",
            "TargetUserName": "Administrators", "TargetSid": "S-1-5-32-544"},
     {"event.action": "added-member-to-group", "group.name": "Administrators", "user.target.name": "Eve Smith, Jr"}),
    (4634, {"TargetUserName": "alice", "LogonType": 10}, {"event.type": ["end"], "winlog.logon.type": "RemoteInteractive"}),
])
def test_logon_family(code: int, data: dict[str, Any], expected: dict[str, Any]) -> None:
    e = record_to_event(record(code, data))
    for key, value in expected.items():
        assert e.get(key) == value, (key, e)
    check(e)


def test_every_family_member_is_mapped_to_ecs() -> None:
    assert set(LOGON_FAMILY) == {4624, 4625, 4634, 4647, 4648, 4672, 4768, 4769, 4771, 4776, 4720, 4722, 4723,
                                 4724, 4725, 4726, 4728, 4732, 4756}
    for code in LOGON_FAMILY:
        e = record_to_event(record(code, {"TargetUserName": "x", "SubjectUserName": "y"}))
        assert e["event.dataset"] == "windows.security" and e["event.action"]
        check(e)


def test_other_records_keep_their_winlog_fields() -> None:
    sysmon = record(1, {"Image": "C:\\x.exe", "CommandLine": "x.exe -a", "ProcessId": 42, "Hashes": None},
                    channel="Microsoft-Windows-Sysmon/Operational", provider="Microsoft-Windows-Sysmon")
    e = record_to_event(sysmon)
    assert e["event.dataset"] == "windows.microsoft_windows_sysmon_operational" and "event.action" not in e
    assert e["winlog.event_data.Image"] == "C:\\x.exe" and e["winlog.event_data.ProcessId"] == "42"
    assert "winlog.event_data.Hashes" not in e
    # 4624 from a provider that is not the Security auditing one is not a logon
    assert "event.action" not in record_to_event(record(4624, LOGON, channel="Application", provider="Other"))
    # unnamed <Data> elements and UserData
    unnamed = record_to_event(record(104, {"Data": [{"#text": "a"}, {"#text": "b"}]}, channel="System"))
    assert unnamed["winlog.event_data.param1"] == "a" and unnamed["winlog.event_data.param2"] == "b"
    # ... and all of them as ``Data``, which SigmaHQ's Application/System rules test
    assert unnamed["winlog.event_data.Data"] == "a\nb"
    user_data = record(1102, None, channel="Security", provider="Microsoft-Windows-Eventlog")
    user_data["Event"]["UserData"] = {"LogFileCleared": {"SubjectUserName": "admin", "#attributes": {"xmlns": "x"}}}
    assert record_to_event(user_data)["winlog.user_data.LogFileCleared.SubjectUserName"] == "admin"
    # ETW traces have no channel
    assert record_to_event(record(6, {}, channel=None, provider="Microsoft-Windows-RPC"))["event.dataset"] == \
        "windows.microsoft_windows_rpc"


def test_bad_record() -> None:
    broken = record(4624, LOGON)
    broken["Event"]["System"]["EventID"] = "abc"
    with pytest.raises(ValueError, match="EventID"):
        record_to_event(broken)


def test_not_an_evtx_file(tmp_path: Path) -> None:
    path = tmp_path / "x.evtx"
    path.write_text("hello")
    with pytest.raises(ValueError):
        read_all(EvtxReader(), path)
    with pytest.raises(ValueError, match="not an EVTX"):
        header_record_count(path)


def generated(path: Path, n: int = 60, per_chunk: int = 25) -> Path:
    """Logons and failures as a DC writes them, plus Sysmon records (kept with winlog.* only)."""
    records = []
    for i in range(n):
        when = datetime(2026, 11, 25, 9, i // 60, i % 60, 123456, tzinfo=UTC)
        if i % 3 == 2:
            records.append(Record(1, when, channel="Microsoft-Windows-Sysmon/Operational",
                                  provider="Microsoft-Windows-Sysmon",
                                  data={"Image": "C:\\Windows\\cmd.exe", "CommandLine": f"cmd /c job{i}"}))
        else:
            records.append(Record(4625 if i % 3 else 4624, when, data={
                "TargetUserName": f"user{i % 7}", "TargetDomainName": "CORP", "LogonType": "3",
                "IpAddress": f"10.0.0.{i}", "IpPort": "445", "Status": "0xc000006d", "SubStatus": "0xc000006a"}))
    return write_evtx(path, records, per_chunk=per_chunk)


def test_generated_file_every_record(tmp_path: Path) -> None:
    path = generated(tmp_path / "Security.evtx")
    assert header_record_count(path) == 60
    result = read_all(EvtxReader(), path)
    assert len(result.events) == 60 and not result.problems
    logons = [e for e in result.events if e["event.dataset"] == "windows.security"]
    assert len(logons) == 40
    assert {e["event.outcome"] for e in logons} == {"success", "failure"}
    failed = next(e for e in logons if e["event.code"] == "4625")
    assert failed["event.reason"] == "bad password" and failed["winlog.logon.type"] == "Network"
    assert failed["@timestamp"].startswith("2026-11-25T09:00:01.123")
    sysmon = next(e for e in result.events if e["event.code"] == "1")
    assert sysmon["winlog.event_data.CommandLine"] == "cmd /c job2" and "event.action" not in sysmon
    assert [e["winlog.record_id"] for e in result.events] == [str(i) for i in range(1, 61)]
    for e in result.events:
        check(e)
    resumed = read_resumed(EvtxReader(), path, batch_size=7)
    assert resumed.events == result.events


def test_corrupt_record_and_chunk_are_counted(tmp_path: Path) -> None:
    path = generated(tmp_path / "a.evtx", n=30, per_chunk=10)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(4096 + 512, 4096 + 65536) if data[i:i + 4] == b"**\x00\x00"]
    data[starts[2] + 30:starts[2] + 60] = b"\xee" * 30  # garble record 3
    data[4096 + 2 * 65536:4096 + 2 * 65536 + 8] = b"XXXXXXXX"  # break the third chunk's header
    path.write_bytes(bytes(data))
    result = read_all(EvtxReader(), path)
    assert len(result.events) == 9 + 10
    assert [p.reason for p in result.problems] == ["unreadable record", "unreadable record"]
    assert result.problems[0].position == "record 3" and "record number 3" in (result.problems[0].raw or "")


def test_evtx_into_both_stores(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    generated(folder / "dc1.evtx")
    generated(folder / "dc1-copy.evtx")  # same bytes: one source, stored once
    generated(folder / "small.evtx", n=9)
    (folder / "notes.txt").write_text("not an event log")
    report = ingest(store, EvtxReader(), [folder], batch_size=16)
    assert [Path(f.path).name for f in report.files] == ["dc1-copy.evtx", "dc1.evtx", "small.evtx"]
    assert report.written == 69 and report.problem_count == 0
    assert store.count("event.dataset:windows.security AND event.outcome:failure") == 20 + 3
    assert store.count("winlog.event_data.LogonType:3") == 46
    again = ingest(store, EvtxReader(), [folder])
    assert again.events == 0 and store.count() == 69


def _samples() -> list[str]:
    return sorted(glob.glob(str(SHARED / "evtx-attack-samples" / "**" / "*.evtx"), recursive=True))


@pytest.mark.skipif(not _samples(), reason="../shared/data/evtx-attack-samples is not present")
def test_real_files_every_record_and_resume() -> None:
    files = [f for f in _samples() if 40 < header_record_count(Path(f)) < 400][:3]
    assert files
    for f in files:
        whole = read_all(EvtxReader(), Path(f))
        assert len(whole.events) + len(whole.problems) == header_record_count(Path(f))
        resumed = read_resumed(EvtxReader(), Path(f), batch_size=17)
        assert [e["event.id"] for e in resumed.events] == [e["event.id"] for e in whole.events]
        for e in whole.events:
            assert e["winlog.channel"] is not None or e["event.dataset"].startswith("windows.")
            assert e["winlog.event_id"] == e["event.code"]
            check(e)


def test_truncated_copy_is_reported_not_silent(tmp_path: Path) -> None:
    path = generated(tmp_path / "a.evtx", n=30, per_chunk=10)
    data = path.read_bytes()
    path.write_bytes(data[:4096 + 2 * 65536 + 3000])  # the third chunk cut short
    result = read_all(EvtxReader(), path)
    assert len(result.events) == 20
    [problem] = result.problems
    assert problem.reason == "records missing" and "announce 30 records, 20 were read" in (problem.raw or "")


@pytest.mark.parametrize("extra", [{}, {"Extra": 7}, {"Extra": None}, {"Extra": 2.5}, {"Extra": True},
                                   {"Data": [{"#text": "a"}]}, {"Nested": {"A": "b"}}, {"#attributes": {"x": "y"}}])
def test_event_data_fast_path_gives_what_flatten_data_gives(extra: dict[str, Any]) -> None:
    """The fast path (flat strings, numbers, nulls) and flatten_data agree, keys, values and order."""
    from collectors.evtx import flatten_data

    data = {**{k: str(v) for k, v in LOGON.items()}, **extra, "Status": "0xc000006d"}
    event = record_to_event(record(4625, data))
    expected: dict[str, Any] = {}
    flatten_data(data, "winlog.event_data.", expected)
    assert {k: v for k, v in event.items() if k.startswith("winlog.event_data.")} == expected
    assert [k for k in event if k.startswith("winlog.event_data.")] == list(expected)
    assert event["user.name"] == "alice" and event["event.outcome"] == "failure"  # the by-name view


@pytest.mark.parametrize(("written", "stamp"), [
    ("2019-05-12T08:00:01.123456Z", "2019-05-12T08:00:01.123Z"),  # as the parser writes it: taken as is
    ("2019-05-12T08:00:01.1234567Z", "2019-05-12T08:00:01.123Z"),  # 7 digits: general route
    ("2019-05-12T10:00:01.999999+02:00", "2019-05-12T08:00:01.999Z"),
    ("2019-05-12 08:00:01.123456Z", "2019-05-12T08:00:01.123Z"),
])
def test_time_created(written: str, stamp: str) -> None:
    rec = record(4624, LOGON, TimeCreated={"#attributes": {"SystemTime": written}})
    assert record_to_event(rec)["@timestamp"] == stamp


def test_time_created_not_a_time() -> None:
    rec = record(4624, LOGON, TimeCreated={"#attributes": {"SystemTime": "2019-13-12T08:00:01.123456Z"}})
    with pytest.raises(ValueError, match=r"month must be in 1\.\.12"):  # the general route's words
        record_to_event(rec)


def test_unnamed_data_reaches_rules_that_test_data() -> None:
    """SigmaHQ's Application/System rules say ``Data|contains``; the EVTX reader must give them ``Data``."""
    from sigma.collection import SigmaCollection

    from detections.sigma.matcher import compile_rule
    from detections.sigma.pipelines import get_pipeline

    rule = SigmaCollection.from_yaml("""
title: ntds.dit copied by ntdsutil (after SigmaHQ win_esent_ntdsutil_abuse)
id: 11111111-2222-4333-8444-555555555556
logsource: {product: windows, service: application}
detection:
  sel: {Provider_Name: ESENT, EventID: 216, Data|contains: 'ntds.dit'}
  filter: {Data|contains: 'C:\\Windows\\NTDS\\'}
  condition: sel and not filter
""").rules[0]
    compiled = compile_rule(rule, get_pipeline())
    copy = record(216, {"Data": [{"#text": "NTDS"}, {"#text": "1"}, {"#text": "C:\\Temp\\x\\NTDS.DIT"}]},
                  channel="Application", provider="ESENT")
    in_place = record(216, {"Data": [{"#text": "NTDS"}, {"#text": "C:\\Windows\\NTDS\\ntds.dit"}]},
                      channel="Application", provider="ESENT")
    assert compiled.matches(record_to_event(copy))
    assert not compiled.matches(record_to_event(in_place))  # the rule's `not Data|contains` filter holds


@pytest.mark.parametrize("execution", [("9" * 5000, "7"), ("18446744073709551615", "7"), ("\u00b2", "7"),
                                       ("4242", "not a thread")])
def test_an_execution_id_no_long_holds_keeps_the_event(tmp_path: Path, sqlite_store: Store,
                                                       execution: tuple[str, str]) -> None:
    """A crafted System/Execution ProcessID or ThreadID cost the whole record: 5,000 digits, "²" or text
    were a "bad record" (int refused them), a u64 past 2^63 made the store refuse the event. Now the
    id that is no long is left out and the failed logon is stored."""
    when = datetime(2026, 11, 25, 9, 0, 1, tzinfo=UTC)
    data = {"TargetUserName": "alice", "LogonType": "3", "Status": "0xc000006d", "SubStatus": "0xc000006a",
            "IpAddress": "198.51.100.7"}
    path = write_evtx(tmp_path / "Security.evtx", [Record(4625, when, data=data, execution=execution),
                                                   Record(4625, when, data=data, execution=("4242", "7"))])
    report = ingest(sqlite_store, EvtxReader(), [path])
    assert report.problem_count == 0 and report.written == 2
    hits = sqlite_store.search("event.code:4625 AND user.name:alice", limit=10).hits
    ids = sorted(((h.get("winlog.process.pid"), h.get("winlog.process.thread.id")) for h in hits), key=str)
    crafted = (4242 if execution[0] == "4242" else None, 7 if execution[1] == "7" else None)
    assert ids == sorted([(4242, 7), crafted], key=str)
