"""``soc alerts`` and ``soc pivot`` through Typer's CliRunner over both stores, and ``soc`` as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alertseed import T0, alert, auth, flow
from typer.testing import CliRunner, Result

from eventstore import Store, open_store
from soc_cli import output
from soc_cli.context import STATE
from soc_cli.main import app

Run = Callable[..., Result]
SINCE = "2026-11-01T00:00:00Z"


@pytest.fixture
def soc(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Run ``soc`` in-process on the test's store (the same client, so Elasticsearch sees its own writes)."""
    monkeypatch.setenv("SOC_ANALYST", "maria")
    monkeypatch.delenv("SOC_STORE", raising=False)
    monkeypatch.setattr(output.console, "width", 250)  # no folding: the assertions read whole cells
    runner = CliRunner()
    STATE._store, STATE.store_url = store, store.url

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    yield run
    STATE._store, STATE.store_url = None, None


def _seed(store: Store) -> None:
    store.write_events([
        auth("ev1", T0 - timedelta(minutes=3), "root", "10.0.0.5"),
        auth("ev2", T0 - timedelta(minutes=2), "root", "10.0.0.5", outcome="success"),
        flow("ev3", T0 - timedelta(minutes=1), "10.0.0.5", "10.0.0.20", dport=445),
    ])
    store.put_alerts([
        alert("ssh-1", level="critical", evidence=["ev1", "ev2"]),
        alert("ssh-2", level="medium", at=T0 + timedelta(minutes=30)),
        alert("scan-1", rule="port_scan", level="low", entity="10.0.0.8"),
        alert("scan-2", rule="port_scan", level="low", entity="10.0.0.8", at=T0 + timedelta(hours=1)),
        alert("scan-3", rule="port_scan", level="high", entity="10.0.0.9", at=T0 + timedelta(hours=2)),
    ])


def test_list_table_json_ndjson_and_filters(store: Store, soc: Run) -> None:
    _seed(store)
    table = soc("alerts", "--since", SINCE)
    assert table.exit_code == 0, table.output
    assert "SSH brute force then success" in table.output
    assert "5 of 5 alerts" in table.output
    out = soc("alerts", "--since", SINCE, "--json")
    ids = [a["event.id"] for a in json.loads(out.output)]
    assert ids == ["ssh-1", "scan-3", "ssh-2", "scan-2", "scan-1"]
    out = soc("alerts", "--since", SINCE, "--ndjson", "--level", "high+")
    assert [json.loads(line)["event.id"] for line in out.output.splitlines()] == ["ssh-1", "scan-3"]
    out = soc("alerts", "--json", "--technique", "T1046", "--entity", "10.0.0.8")
    assert sorted(a["event.id"] for a in json.loads(out.output)) == ["scan-1", "scan-2"]
    out = soc("alerts", "--json", "--tactic", "TA0006", "--limit", "1")
    assert [a["event.id"] for a in json.loads(out.output)] == ["ssh-1"]
    out = soc("alerts", "--json", "--query", 'source.ip:"10.0.0.9"')
    assert [a["event.id"] for a in json.loads(out.output)] == ["scan-3"]


def test_group_by(store: Store, soc: Run) -> None:
    _seed(store)
    out = soc("alerts", "--group-by", "rule.name,source.ip", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [(r["rule.name"], r["source.ip"], r["count"], r["level"]) for r in rows] == [
        ("SSH brute force then success", "10.0.0.5", 2, "critical"),
        ("Port scan", "10.0.0.9", 1, "high"),
        ("Port scan", "10.0.0.8", 2, "low"),
    ]
    table = soc("alerts", "--group-by", "rule.name")
    assert "Port scan" in table.output and "count" in table.output


def test_show_everything_about_an_alert(store: Store, soc: Run) -> None:
    _seed(store)
    assert soc("alerts", "ack", "ssh-1", "--note", "on it").exit_code == 0
    out = soc("alerts", "show", "ssh-1")
    assert out.exit_code == 0, out.output
    for text in ("SSH brute force then success", "critical", "TA0006 Credential Access", "T1110 Brute Force",
                 "ip 10.0.0.5", "entity risk", "Evidence", "ssh_login failure user=root", "Related alerts",
                 "ssh-2", "Investigation guide", "what it did next", "Response steps",
                 "Lock the account", "History", "maria", "status: open -> acknowledged", "on it"):
        assert text in out.output, text
    data = json.loads(soc("alerts", "show", "ssh-1", "--json").output)[0]
    # the decisive event (the success) first, then the rest in time order
    assert [e["event.id"] for e in data["evidence"]] == ["ev2", "ev1"]
    assert [a["event.id"] for a in data["related"]] == ["ssh-2"]
    assert data["risk"]["alerts"] == 2
    assert data["history"][0]["actor"] == "maria"


def test_single_actions_and_refusals(store: Store, soc: Run) -> None:
    _seed(store)
    assert soc("alerts", "assign", "omar", "scan-1").exit_code == 0
    assert soc("alerts", "escalate", "scan-1", "--note", "looks real").exit_code == 0
    refused = soc("alerts", "ack", "scan-1")
    assert refused.exit_code == 1
    assert "cannot ack alert scan-1: it is escalated" in refused.output
    assert soc("alerts", "close", "scan-1", "--reason", "true_positive", "--note", "blocked").exit_code == 0
    assert soc("alerts", "note", "post-mortem filed", "scan-1").exit_code == 0
    assert soc("alerts", "reopen", "scan-1").exit_code == 0
    done = store.get_alert("scan-1") or {}
    assert done["ztsoc.alert.status"] == "open"
    assert done["ztsoc.alert.assignee"] == "omar"
    assert [h["action"] for h in done["ztsoc.alert.history"]] == ["assign", "escalate", "close", "note", "reopen"]
    bad = soc("alerts", "close", "scan-2", "--reason", "whatever")
    assert isinstance(bad.exception, ValueError)
    assert (store.get_alert("scan-2") or {})["ztsoc.alert.status"] == "open"


def test_assign_and_note_read_as_typed_and_the_first_form_still_works(store: Store, soc: Run) -> None:
    """`assign ID --to USER` and `note ID --note TEXT` (issue 16); `assign USER ID` and `note TEXT ID` kept."""
    _seed(store)
    assert soc("alerts", "assign", "scan-1", "--to", "ana").exit_code == 0
    assert soc("alerts", "note", "scan-1", "--note", "called the user").exit_code == 0
    assert soc("alerts", "assign", "omar", "scan-2").exit_code == 0
    assert soc("alerts", "note", "old form", "scan-2").exit_code == 0
    one, two = store.get_alert("scan-1") or {}, store.get_alert("scan-2") or {}
    assert one["ztsoc.alert.assignee"] == "ana" and two["ztsoc.alert.assignee"] == "omar"
    assert [h.get("note") for h in one["ztsoc.alert.history"]][-1] == "called the user"
    assert [h.get("note") for h in two["ztsoc.alert.history"]][-1] == "old form"
    missing = soc("alerts", "assign")
    assert missing.exit_code == 2 and "--to USER" in missing.output


def test_bulk_close_with_preview_and_confirmation(store: Store, soc: Run) -> None:
    _seed(store)
    soc("alerts", "close", "scan-3", "--reason", "benign")
    declined = soc("alerts", "close", "--query", "rule.id:port_scan", "--reason", "false_positive", input="n\n")
    assert declined.exit_code == 1
    assert "2 of 3 matching alerts will change" in declined.output
    assert "1 left alone" in declined.output
    assert "status: open -> closed" in declined.output
    assert store.count("ztsoc.alert.close_reason:false_positive", index="alerts") == 0
    accepted = soc("alerts", "close", "--query", "rule.id:port_scan", "--reason", "false_positive",
                   "--note", "scanner", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "close: 2 alert(s) changed" in accepted.output
    assert store.count("ztsoc.alert.close_reason:false_positive", index="alerts") == 2
    scripted = soc("alerts", "ack", "--query", "rule.id:ssh_bruteforce", "--yes")
    assert scripted.exit_code == 0
    assert store.count("ztsoc.alert.status:acknowledged", index="alerts") == 2


def test_exceptions_with_impact_preview(store: Store, soc: Run) -> None:
    _seed(store)
    out = soc("alerts", "except", "--query", 'rule.id:port_scan AND source.ip:"10.0.0.8"', "--owner", "net-team",
              "--expires", "30d", "--reason", "vulnerability scanner", "--since", SINCE, "--yes")
    assert out.exit_code == 0, out.output
    assert "2 past alert(s) would have been suppressed" in out.output
    listed = json.loads(soc("alerts", "exceptions", "--json").output)
    assert [(e["owner"], e["active"], e["created_by"]) for e in listed] == [("net-team", True, "maria")]
    from detections.exceptions import apply_exceptions

    marked = apply_exceptions(store, [alert("scan-new", rule="port_scan", entity="10.0.0.8")])
    assert marked[0]["ztsoc.alert.exception_id"] == listed[0]["id"]
    assert soc("alerts", "exceptions", "--delete", listed[0]["id"]).exit_code == 0
    assert json.loads(soc("alerts", "exceptions", "--json").output) == []
    declined = soc("alerts", "except", "--query", "rule.id:port_scan", "--owner", "x", "--reason", "y", input="n\n")
    assert declined.exit_code == 1
    assert json.loads(soc("alerts", "exceptions", "--json", "--all").output) == []


def test_timeline_and_pivot(store: Store, soc: Run) -> None:
    _seed(store)
    out = soc("alerts", "timeline", "ssh-1", "--json")
    assert out.exit_code == 0, out.output
    entries = json.loads(out.output)
    assert [e["event.id"] for e in entries][:4] == ["ev1", "ev2", "ev3", "ssh-1"]
    table = soc("alerts", "timeline", "ssh-1")
    assert "network.flow" in table.output and "system.auth" in table.output
    out = soc("pivot", "10.0.0.5", "--since", SINCE)
    assert out.exit_code == 0, out.output
    assert "searched as ip" in out.output and "10.0.0.20:445" in out.output
    out = soc("pivot", "root", "--kind", "user", "--since", SINCE, "--ndjson")
    assert [json.loads(x)["event.id"] for x in out.output.splitlines()] == ["ev1", "ev2"]


def test_soc_process_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    s = open_store(url)
    s.put_alerts([alert("x1")])
    s.close()
    env = {**os.environ, "SOC_STORE": url, "SOC_ANALYST": "maria"}
    soc = [sys.executable, "-m", "soc_cli.main"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*soc, *args], capture_output=True, text=True, env=env, timeout=60)

    bad = run("alerts", "--query", "rule.id:(x")
    assert bad.returncode == 2
    assert "bad query" in bad.stderr and "Traceback" not in bad.stderr
    missing = run("alerts", "ack", "nope-nope")
    assert missing.returncode == 2
    assert "no alert with id 'nope-nope'" in missing.stderr
    ok = run("alerts", "close", "x1", "--reason", "benign")
    assert ok.returncode == 0, ok.stderr
    assert run("alerts", "--status", "closed", "--json").stdout.count('"x1"') == 1


def test_stored_text_is_never_read_as_markup(store: Store, soc: Run) -> None:
    store.put_alerts([alert("m1", level="high", entity="[red]x[/red]", entity_type="host",
                            fields={"rule.name": "Scan [lab] probe"})])
    out = soc("alerts", "--since", SINCE)
    assert "Scan [lab] probe" in out.output
    assert "[red]x[/red]" in out.output
    shown = soc("alerts", "show", "m1")
    assert "Scan [lab] probe" in shown.output
    timeline = soc("alerts", "timeline", "m1")
    assert "ALERT [high] Scan [lab] probe" in timeline.output


def test_exception_table_shows_range_queries_literally(store: Store, soc: Run) -> None:
    _seed(store)
    query = "rule.id:port_scan AND source.ip:[10.0.0.0 TO 10.0.0.255]"
    out = soc("alerts", "except", "--query", query, "--owner", "net", "--reason", "lab", "--since", SINCE, "--yes")
    assert out.exit_code == 0, out.output
    assert "3 past alert(s) would have been suppressed" in out.output
    listed = soc("alerts", "exceptions")
    assert query in listed.output
