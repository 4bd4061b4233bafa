"""``soc ingest``: generated per reader, exit codes 0/1/2, JSON report, quiet in a pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eventstore import open_store

SOC = [sys.executable, "-m", "soc_cli.main"]


def soc(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOC, "--store", f"sqlite:///{db}", *args], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[1])


def auth_log(path: Path, bad: int = 0) -> Path:
    lines = [f"Nov 25 10:00:{i:02d} srv sshd[{i}]: Failed password for root from 10.0.0.{i} port 22 ssh2"
             for i in range(20)]
    lines += ["this is not syslog"] * bad
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ok_then_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "soc.db"
    log = auth_log(tmp_path / "auth.log")
    run = soc("ingest", "syslog", str(log), "--tz", "UTC", "--year", "2026", "--json", db=db)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["events"], report["written"], report["problems"]) == (20, 20, {})
    assert run.stderr == ""  # a pipe: no progress bar
    table = soc("ingest", "syslog", str(log), db=db)
    assert table.returncode == 0 and "already stored" in table.stdout and "total: 1 files" in table.stdout
    again = json.loads(soc("ingest", "syslog", str(log), "--json", db=db).stdout)
    assert again["events"] == 0 and again["files"][0]["resumed"]  # the checkpoint is at the end
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.count("event.outcome:failure AND user.name:root") == 20
        hit = store.search("source.ip:10.0.0.3").hits[0]
        assert hit["@timestamp"] == "2026-11-25T10:00:03.000Z"
    finally:
        store.close()


def test_problems_exit_1_and_errors_file(tmp_path: Path) -> None:
    errors = tmp_path / "errors.jsonl"
    run = soc("ingest", "syslog", str(auth_log(tmp_path / "auth.log", bad=3)), "--errors", str(errors),
              db=tmp_path / "soc.db")
    assert run.returncode == 1, run.stderr
    assert "no syslog header" in run.stdout and "3" in run.stdout
    rows = [json.loads(line) for line in errors.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["position"].startswith("line 21") and rows[0]["raw"] == "this is not syslog"


def test_bad_input_exit_2(tmp_path: Path) -> None:
    missing = soc("ingest", "syslog", str(tmp_path / "nope.log"), db=tmp_path / "soc.db")
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr and "Traceback" not in missing.stderr
    log = auth_log(tmp_path / "auth.log")
    bad_tz = soc("ingest", "syslog", str(log), "--tz", "Nowhere/Land", db=tmp_path / "soc.db")
    assert bad_tz.returncode == 2 and "unknown time zone" in bad_tz.stderr
    bad_batch = soc("ingest", "jsonl", str(log), "--batch-size", "0", db=tmp_path / "soc.db")
    assert bad_batch.returncode == 2


def test_every_registered_reader_has_a_subcommand(tmp_path: Path) -> None:
    from collectors.registry import READERS

    run = soc("ingest", "--help", db=tmp_path / "soc.db")
    assert run.returncode == 0
    for name in READERS:
        assert name in run.stdout
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text('{"@timestamp": "2026-11-25T10:00:00Z", "event": {"dataset": "test.x"}}\n')
    assert soc("ingest", "jsonl", str(jsonl), db=tmp_path / "soc.db").returncode == 0


def test_journalctl_piped_into_soc_ingest(tmp_path: Path) -> None:
    entries = "".join(json.dumps({
        "__CURSOR": f"s=ab;i={i};b=cd;m=1;t=2;x=3", "__REALTIME_TIMESTAMP": str(1764064800_000000 + i),
        "_HOSTNAME": "bastion", "SYSLOG_IDENTIFIER": "sshd", "_PID": "99",
        "MESSAGE": f"Invalid user guest{i} from 192.0.2.{i} port 2200"}) + "\n" for i in range(12))
    db = tmp_path / "soc.db"
    for expected_new in (12, 0):
        run = subprocess.run([*SOC, "--store", f"sqlite:///{db}", "ingest", "journald", "-", "--json"],
                             input=entries, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["written"] == expected_new
