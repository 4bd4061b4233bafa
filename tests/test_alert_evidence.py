"""Every match accounted for: an alert over more events than it stores ids for still reaches them all."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detections.alerts import MAX_EVIDENCE
from detections.evidence import alert_group, evidence_events
from detections.runner import load_compiled, run_detections
from detections.sigma.samples import expand

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
N = MAX_EVIDENCE + 260

RULE = """title: Shadow file read
id: 0f4f8e2c-2a8b-4f7e-9d51-5b3c8a1e7d21
level: high
logsource: {product: ztsoc, service: auth}
detection:
  sel: {event.action: sudo-command, process.command_line|contains: /etc/shadow}
  condition: sel
ztsoc: {entity: user.name}
"""


def _events() -> list[dict]:
    out = []
    for i in range(N):
        ts = (T0 + timedelta(seconds=2 * i)).isoformat().replace("+00:00", "Z")
        base = {"@timestamp": ts, "event.dataset": "system.auth", "event.action": "sudo-command",
                "host.name": "web01"}
        out.append({**base, "event.id": f"hit-{i:05d}", "user.name": "mallory",
                    "process.command_line": "/bin/cat /etc/shadow"})
        if i % 10 == 0:  # noise: another user, and the same user doing something else
            out.append({**base, "event.id": f"other-user-{i:05d}", "user.name": "bob",
                        "process.command_line": "/bin/cat /etc/shadow"})
            out.append({**base, "event.id": f"other-cmd-{i:05d}", "user.name": "mallory",
                        "process.command_line": "/bin/ls /tmp"})
    return out


def _rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "shadow.yml").write_text(RULE)
    return folder


def test_evidence_beyond_the_stored_sample_is_found_again(store, tmp_path: Path) -> None:
    store.write_events(_events())
    store.refresh()
    cs = load_compiled([_rules(tmp_path)], shipped=False)
    run_detections(store, since=T0, until=T0 + timedelta(hours=2), compiled=cs)
    alerts = [a for a in store.scan("*", index="alerts") if a["rule.id"] == "0f4f8e2c-2a8b-4f7e-9d51-5b3c8a1e7d21"]
    by_user = {a.get("user.name"): a for a in alerts}
    mallory = by_user["mallory"]
    assert mallory["ztsoc.alert.evidence_count"] == N and len(mallory["ztsoc.alert.evidence"]) == MAX_EVIDENCE
    assert alert_group(mallory) == {"user.name": "mallory"}
    found = [d["event.id"] for d in evidence_events(store, cs, mallory)]
    assert found == [f"hit-{i:05d}" for i in range(N)]  # all of them, oldest first, nothing else
    assert [d["event.id"] for d in evidence_events(store, cs, by_user["bob"])] == \
        [f"other-user-{i:05d}" for i in range(0, N, 10)]


def test_correlation_evidence_is_the_counted_events(sqlite_store, tmp_path: Path) -> None:
    from detections.sigma.loader import load_rules

    rule = load_rules().find("ssh_bruteforce_then_success")
    events = expand(rule.meta.samples["match"], prefix="bf")
    sqlite_store.write_events(events)
    cs = load_compiled()
    first = min(e["@timestamp"] for e in events)
    run_detections(sqlite_store, since=datetime.fromisoformat(first.replace("Z", "+00:00")) - timedelta(minutes=1),
                   until=datetime.fromisoformat(max(e["@timestamp"] for e in events).replace("Z", "+00:00"))
                   + timedelta(minutes=1), compiled=cs)
    alert = next(a for a in sqlite_store.scan("*", index="alerts") if a["rule.id"] == "ssh_bruteforce_then_success")
    found = {d["event.id"] for d in evidence_events(sqlite_store, cs, alert)}
    assert set(alert["ztsoc.alert.evidence"]) <= found
    assert all(d.get("source.ip") == alert.get("source.ip") for d in sqlite_store.scan("*") if d["event.id"] in found)


def test_cli_pages_through_all_of_them(tmp_path: Path) -> None:
    from eventstore import open_store

    url = f"sqlite:///{tmp_path / 'soc.db'}"
    st = open_store(url)
    st.write_events(_events())
    rules = _rules(tmp_path)
    run_detections(st, since=T0, until=T0 + timedelta(hours=2), compiled=load_compiled([rules], shipped=False))
    alert = next(a for a in st.scan("*", index="alerts") if a.get("user.name") == "mallory")
    st.close()
    soc = [sys.executable, "-m", "soc_cli.main", "--store", url, "alerts", "evidence", alert["event.id"][:16],
           "--rules", str(rules)]
    last = subprocess.run([*soc, "--offset", str(N - 5), "--json"], capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr
    assert [d["event.id"] for d in json.loads(last.stdout)] == [f"hit-{i:05d}" for i in range(N - 5, N)]
    every = subprocess.run([*soc, "--all", "--ndjson"], capture_output=True, text=True, timeout=300)
    assert len(every.stdout.splitlines()) == N
    page = subprocess.run([*soc, "--limit", "3"], capture_output=True, text=True, timeout=300,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert page.returncode == 0, page.stderr
    assert f"events 1-3 of {N}" in page.stdout and "next page with --offset 3" in page.stderr


def test_show_puts_what_decides_first(sqlite_store, tmp_path: Path) -> None:
    """The SSH alert's evidence: the success first, each row with the fields the rules look at."""
    from detections.sigma.loader import load_rules
    from soc_cli.commands.alerts import alert_details

    rule = load_rules().find("ssh_bruteforce_then_success")
    events = expand(rule.meta.samples["match"], prefix="bf")
    sqlite_store.write_events(events)
    stamps = sorted(e["@timestamp"] for e in events)
    run_detections(sqlite_store, since=datetime.fromisoformat(stamps[0].replace("Z", "+00:00")) - timedelta(minutes=1),
                   until=datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")) + timedelta(minutes=1),
                   compiled=load_compiled())
    alert = next(a for a in sqlite_store.scan("*", index="alerts") if a["rule.id"] == "ssh_bruteforce_then_success")
    details = alert_details(sqlite_store, alert)
    rows = details["evidence"]
    assert rows[0]["event.outcome"] == "success"
    fields = rows[0]["ztsoc.evidence.fields"]
    assert fields.get("event.outcome") == "success" and fields.get("source.ip") == alert.get("source.ip")
    assert all("ztsoc.evidence.fields" in r for r in rows)
    guide = details["guide"]["investigation"] or ""
    assert "<ip>" not in guide and str(alert.get("source.ip")) in guide
