"""``soc scan --store`` applies the analysts' exceptions as ``soc detect run`` does: the covered alert
is stored marked suppressed (never raised into the queue, never dropped), the timeline marks its
matches, and a detection run over the same evidence in another store agrees.

Everything through the real ``soc`` command on real SQLite stores; the exception is saved the way
an analyst saves one (``soc alerts except``)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.evtxgen import Record, write_evtx

SOC = [sys.executable, "-m", "soc_cli.main"]
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RULE_ID = "5d7a1f3e-7f5c-4c47-9a39-2b8d6f0c1a11"
RULE = f"""title: Logon of the break-glass account
id: {RULE_ID}
level: high
logsource: {{product: windows, service: security}}
detection:
  sel: {{EventID: 4624, TargetUserName: breakglass}}
  condition: sel
"""
BURST = "windows_failed_logon_burst"  # a shipped rule the exception does not cover


def _soc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SOC, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"})


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    out = _soc(*args)
    assert out.returncode == 0, (args, out.stderr[-3000:])
    return out


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, Path]:
    """A Security log (a failed-logon burst, then a break-glass logon) and a rules folder."""
    records = [Record(4625, T0 + timedelta(seconds=i), data={"TargetUserName": f"user{i}", "IpAddress": "203.0.113.9",
                                                              "LogonType": "3"}) for i in range(25)]
    records.append(Record(4624, T0 + timedelta(minutes=2), data={"TargetUserName": "breakglass",
                                                                  "IpAddress": "203.0.113.9", "LogonType": "10"}))
    evtx = tmp_path / "Security.evtx"
    write_evtx(evtx, records)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "breakglass.yml").write_text(RULE)
    return evtx, rules


def _except(store: str) -> str:
    """The analyst's exception for the break-glass rule (README: ``soc alerts except``); its id."""
    out = _ok("--store", store, "alerts", "except", "--query", f'rule.id:"{RULE_ID}"', "--owner", "ana",
              "--expires", "30d", "--reason", "planned break-glass drill", "--yes")
    listed = json.loads(_ok("--store", store, "alerts", "exceptions", "--json").stdout)
    assert len(listed) == 1 and listed[0]["id"] in out.stdout
    return str(listed[0]["id"])


def _alerts(store: str, *extra: str) -> dict[tuple[str, str], bool]:
    docs = json.loads(_ok("--store", store, "alerts", "--since", "3650d", "--json", *extra).stdout)
    return {(str(a["rule.id"]), str(a["event.id"])): bool(a.get("ztsoc.alert.suppressed")) for a in docs}


def test_scan_store_applies_exceptions_as_detect_run_does(case: tuple[Path, Path], tmp_path: Path) -> None:
    evtx, rules = case
    scanned = f"sqlite:///{tmp_path / 'scanned.db'}"
    exception_id = _except(scanned)

    out = _ok("scan", str(evtx), "--rules", str(rules), "--store", scanned, "--json")
    rows = json.loads(out.stdout)["matches"]
    marked = {r["rule.id"]: r["ztsoc.alert.exception_id"] for r in rows}
    assert marked[RULE_ID] == exception_id  # the excepted match is in the timeline, marked
    assert marked[BURST] is None and all(e is None for r, e in marked.items() if r != RULE_ID)
    assert "1 suppressed by an exception" in out.stderr

    raised = _alerts(scanned)  # the queue: suppressed alerts are not raised
    assert BURST in {rule for rule, _ in raised} and RULE_ID not in {rule for rule, _ in raised}
    stored = _alerts(scanned, "--include-suppressed")  # ... but stored, marked
    assert {rule for (rule, _), s in stored.items() if s} == {RULE_ID}
    assert set(stored) - set(raised) == {k for k in stored if k[0] == RULE_ID}
    shown = _ok("--store", scanned, "alerts", "show", next(i for (r, i) in stored if r == RULE_ID))
    assert f"suppressed by {exception_id}" in shown.stdout

    # soc detect run over the same evidence, with the same exception saved, agrees alert for alert
    detected = f"sqlite:///{tmp_path / 'detected.db'}"
    _except(detected)
    _ok("--store", detected, "ingest", "evtx", str(evtx))
    _ok("--store", detected, "detect", "run", "--rules", str(rules), "--since", "3650d")
    assert _alerts(detected, "--include-suppressed") == stored

    # the other formats mark the same rows
    table = _ok("scan", str(evtx), "--rules", str(rules), "--store", scanned)
    line = next(x for x in table.stdout.splitlines() if "break-glass" in x)
    assert "(suppressed)" in line
    as_csv = _ok("scan", str(evtx), "--rules", str(rules), "--store", scanned, "--format", "csv")
    by_rule = {r["rule.id"]: r["ztsoc.alert.exception_id"] for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert by_rule == {**{r: "" for r in marked}, RULE_ID: exception_id}


def test_scan_without_store_marks_nothing(case: tuple[Path, Path]) -> None:
    evtx, rules = case
    rows = json.loads(_ok("scan", str(evtx), "--rules", str(rules), "--json").stdout)["matches"]
    assert rows and all(r["ztsoc.alert.exception_id"] is None for r in rows)
