"""``soc scan``: a folder of mixed evidence in, one row per match out, bad files reported and skipped."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.sniff import UnknownFormat, reader_for
from tests import pcapkit
from tests.evtxgen import Record, write_evtx

SOC = [sys.executable, "-m", "soc_cli.main"]
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

ADMIN_LOGON_RULE = """title: Logon of the break-glass account
id: 5d7a1f3e-7f5c-4c47-9a39-2b8d6f0c1a11
level: high
logsource: {product: windows, service: security}
detection:
  sel: {EventID: 4624, TargetUserName: breakglass}
  condition: sel
"""


def _soc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # a wide terminal: table cells on one line
    return subprocess.run([*SOC, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """A collected folder: a Security log with a failed-logon burst and one break-glass logon, a
    gzipped auth.log with an SSH brute force that succeeds, a capture, and files that are not logs."""
    folder = tmp_path / "evidence"
    (folder / "dc01").mkdir(parents=True)
    records = [Record(4625, T0 + timedelta(seconds=i), data={"TargetUserName": f"user{i}", "IpAddress": "203.0.113.9",
                                                              "LogonType": "3"}) for i in range(25)]
    records.append(Record(4624, T0 + timedelta(minutes=2), data={"TargetUserName": "breakglass",
                                                                  "IpAddress": "203.0.113.9", "LogonType": "10"}))
    write_evtx(folder / "dc01" / "Security.evtx", records)
    lines = [f"Nov 20 08:{i // 60:02d}:{i % 60:02d} web01 sshd[{100 + i}]: Failed password for root from 198.51.100.7 "
             f"port {40000 + i} ssh2" for i in range(30)]
    lines.append("Nov 20 08:01:00 web01 sshd[200]: Accepted password for root from 198.51.100.7 port 41000 ssh2")
    with gzip.open(folder / "auth.log.1.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    pcapkit.write(folder / "traffic.pcap", pcapkit.timed(pcapkit.dns_exchange("example.org")))
    (folder / "notes.md").write_text("# what we collected\n\nsee ticket 42\n")
    (folder / "screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "broken.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    return folder


def test_reader_is_chosen_by_content(evidence: Path, tmp_path: Path) -> None:
    assert reader_for(evidence / "dc01" / "Security.evtx") == "evtx"
    assert reader_for(evidence / "auth.log.1.gz") == "syslog"
    assert reader_for(evidence / "traffic.pcap") == "pcap"
    (tmp_path / "a.json").write_text('{"@timestamp": "2026-11-20T08:00:00Z", "event.dataset": "x"}\n')
    (tmp_path / "j.json").write_text('{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "1"}\n')
    (tmp_path / "iso.log").write_text("2026-11-20T08:00:00.123+07:00 host sshd[1]: x\n")
    assert [reader_for(tmp_path / n) for n in ("a.json", "j.json", "iso.log")] == ["jsonl", "journald", "syslog"]
    for name, why in (("notes.md", "not syslog"), ("screenshot.png", "binary"), ("broken.gz", "damaged gzip")):
        with pytest.raises(UnknownFormat, match=why):
            reader_for(evidence / name)


def test_scan_folder_timeline_summaries_and_bad_files(evidence: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "breakglass.yml").write_text(ADMIN_LOGON_RULE)
    out = _soc("scan", str(evidence), "--rules", str(rules), "--json")
    assert out.returncode == 1, out.stderr  # three files could not be read: reported, the rest scanned
    doc = json.loads(out.stdout)
    summary = doc["summary"]
    assert summary["files"] == 3 and summary["events"] > 50
    assert sorted(p.split(":")[0].rsplit("/", 1)[1] for p in summary["problems"]) == \
        ["broken.gz", "notes.md", "screenshot.png"]
    by_rule = {r["rule.id"]: r["matches"] for r in summary["by_rule"]}
    # a single-event rule (one row per matching event), and correlations (one row per alert)
    assert by_rule["5d7a1f3e-7f5c-4c47-9a39-2b8d6f0c1a11"] == 1
    assert by_rule["windows_failed_logon_burst"] >= 1
    assert by_rule["ssh_bruteforce_then_success"] >= 1
    assert summary["by_level"]["high"] >= 1
    row = next(m for m in doc["matches"] if m["rule.id"] == "5d7a1f3e-7f5c-4c47-9a39-2b8d6f0c1a11")
    # the row shows what the rule looks at, and where the event came from
    assert row["fields"] == {"winlog.event_data.TargetUserName": "breakglass"}
    assert row["host.name"] and row["log.file.path"].endswith("Security.evtx")
    assert [m["@timestamp"] for m in doc["matches"]] == sorted(m["@timestamp"] for m in doc["matches"])


def test_scan_formats_agree(evidence: Path) -> None:
    target = str(evidence / "dc01")
    jsonl = _soc("scan", target, "--format", "jsonl")
    table_csv = _soc("scan", target, "--format", "csv")
    assert jsonl.returncode == table_csv.returncode == 0, jsonl.stderr
    lines = [json.loads(x) for x in jsonl.stdout.splitlines()]
    rows = list(csv.DictReader(io.StringIO(table_csv.stdout)))
    assert lines and [r["rule.id"] for r in rows] == [x["rule.id"] for x in lines]
    assert "match(es) of" in jsonl.stderr and "by level:" in jsonl.stderr  # summaries kept off stdout
    table = _soc("scan", target)
    assert table.returncode == 0 and "Burst of failed Windows logons" in table.stdout and "by level:" in table.stdout


def test_scan_min_level(evidence: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "breakglass.yml").write_text(ADMIN_LOGON_RULE)
    out = _soc("scan", str(evidence / "dc01"), "--rules", str(rules), "--min-level", "high", "--json")
    assert {m["ztsoc.alert.level"] for m in json.loads(out.stdout)["matches"]} == {"high"}
    bad = _soc("scan", str(evidence / "dc01"), "--min-level", "severe")
    assert bad.returncode == 2 and "--min-level" in bad.stderr


def test_scan_keeps_events_and_alerts_with_store(evidence: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'case.db'}"
    out = _soc("scan", str(evidence / "dc01"), str(evidence / "auth.log.1.gz"), "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    alerts = _soc("--store", store, "alerts", "--since", "3650d", "--json")
    assert alerts.returncode == 0, alerts.stderr
    rules = {a["rule.id"] for a in json.loads(alerts.stdout)}
    assert {"windows_failed_logon_burst", "ssh_bruteforce_then_success"} <= rules
    again = _soc("scan", str(evidence / "dc01"), str(evidence / "auth.log.1.gz"), "--store", store, "--json")
    assert again.returncode == 0 and "0 new event(s)" in again.stderr  # nothing stored twice
    assert json.loads(_soc("--store", store, "alerts", "--since", "3650d", "--json").stdout).__len__() == \
        len(json.loads(alerts.stdout))


def test_parallel_and_serial_scans_agree(evidence: Path) -> None:
    one = _soc("scan", str(evidence), "--jobs", "1", "--format", "jsonl")
    two = _soc("scan", str(evidence), "--jobs", "2", "--format", "jsonl")
    assert one.returncode == two.returncode == 1  # the same bad files reported by both
    assert one.stdout == two.stdout and one.stdout


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    out = _soc("scan", str(tmp_path / "nope"))
    assert out.returncode == 2 and "no such file or folder" in out.stderr


def test_default_jobs_one_process_for_a_small_input(evidence: Path, tmp_path: Path) -> None:
    """Workers only pay for themselves on a large input (and on idle CPUs): small folders stay in one process."""
    from collectors.sniff import expand
    from soc_cli.commands.scan import _PARALLEL_BYTES, _default_jobs

    files = list(expand([evidence]))
    assert sum(p.stat().st_size for p in files) < _PARALLEL_BYTES
    assert _default_jobs(files) == 1
    big = tmp_path / "big.log"
    with big.open("wb") as fh:  # sparse: the size is what counts
        fh.truncate(_PARALLEL_BYTES)
    assert 1 <= _default_jobs([big]) <= (os.cpu_count() or 1)
