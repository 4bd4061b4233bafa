"""``soc rules ...`` and ``soc detect run`` through the real ``soc`` process and Typer's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from detections.sigma.loader import load_rules
from detections.sigma.samples import expand

SOC = [sys.executable, "-m", "soc_cli.main"]


def _soc(*args: str, store: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [*SOC]
    if store:
        cmd += ["--store", store]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)


def test_rules_list_json() -> None:
    out = _soc("rules", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    keys = {r["rule.id"] for r in rows}
    assert {"port_scan", "password_spraying", "ssh_bruteforce_then_success"} <= keys
    assert next(r for r in rows if r["rule.id"] == "port_scan")["type"] == "value_count"


def test_rules_validate_passes_on_shipped_and_fails_with_reasons(tmp_path: Path) -> None:
    ok = _soc("rules", "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.yml").write_text("title: x\nid: 3c1e2d4f-0000-4000-8000-00000000000a\nlogsource: {product: x}\n")
    out = _soc("rules", "validate", "--rules", str(bad), "--json")
    assert out.returncode == 1
    [problem] = json.loads(out.stdout)
    assert problem["path"].endswith("broken.yml") and problem["reason"]


def test_rules_test_on_samples_and_on_a_file(tmp_path: Path) -> None:
    assert _soc("rules", "test", "password_spraying").returncode == 0
    rule = load_rules().find("port_scan")
    events = tmp_path / "flows.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in expand(rule.meta.samples["match"])))
    out = _soc("rules", "test", "port_scan", "--on", str(events), "--json")
    assert out.returncode == 0, out.stderr
    [alert] = json.loads(out.stdout)
    assert alert["rule.id"] == "port_scan" and alert["ztsoc.alert.evidence_count"] == 60
    quiet = tmp_path / "quiet.yml"
    quiet.write_text(yaml.safe_dump(rule.meta.samples["near_miss"]))
    out = _soc("rules", "test", "port_scan", "--on", str(quiet), "--json")
    assert json.loads(out.stdout) == []


def test_rules_coverage() -> None:
    out = _soc("rules", "coverage", "--json")
    assert out.returncode == 0
    techniques = {r["threat.technique.id"] for r in json.loads(out.stdout)}
    assert {"T1110", "T1110.003", "T1046", "T1071.004", "T1550.001"} <= techniques


def _samples_store(tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A store holding every shipped rule's matching samples."""
    from eventstore import open_store

    url = f"sqlite:///{tmp_path / 'soc.db'}"
    store = open_store(url)
    events: list[dict[str, Any]] = []
    for r in load_rules().rules:
        events += expand(r.meta.samples.get("match") or [], prefix=r.key)
    store.write_events(events)
    store.close()
    return url, events


def test_detect_run_twice_counts_once(tmp_path: Path) -> None:
    from eventstore import open_store

    url, _ = _samples_store(tmp_path)
    args = ["detect", "run", "--since", "2026-02-28T00:00:00Z", "--until", "2026-03-11T00:00:00Z", "--json"]
    first = _soc(*args, store=url)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["alerts_new"] == 10
    second = _soc(*args, "--reset", store=url)
    report = json.loads(second.stdout)[0]
    # the same alerts again (the novelty rule stays quiet: its pair is in the baseline now)
    assert report["alerts_new"] == 0 and report["alerts_updated"] >= 9
    store = open_store(url)
    assert store.count(index="alerts") == 10
    store.close()
    bad = _soc("detect", "run", "--since", "yesterday", store=url)
    assert bad.returncode == 2


def test_since_on_a_store_with_cursors_re_evaluates_that_window(tmp_path: Path) -> None:
    """`detect run --since` after a run: the window again, the same alerts updated, none doubled (issue 16).

    Without --since a run starts at each rule's cursor (minus the look-back) and reads almost
    nothing; --matches writes every (rule, event id) pair the run saw (issue 17).
    """
    from eventstore import open_store

    url, events = _samples_store(tmp_path)
    until = ["--until", "2026-03-11T00:00:00Z", "--json"]
    first = json.loads(_soc("detect", "run", "--since", "2026-02-28T00:00:00Z", *until, store=url).stdout)[0]
    assert first["alerts_new"] == 10
    counts = _evidence_counts(url)
    cursor_only = json.loads(_soc("detect", "run", *until, store=url).stdout)[0]
    assert cursor_only["events"] < first["events"] and cursor_only["since"] > "2026-03-10"
    matches = tmp_path / "matches.jsonl"
    again = _soc("detect", "run", "--since", "2026-02-28T00:00:00Z", *until, "--matches", str(matches), store=url)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)[0]
    assert report["events"] == first["events"] and report["since"].startswith("2026-02-2")
    assert report["alerts_new"] == 0 and report["alerts_updated"] >= 9
    store = open_store(url)
    try:
        assert store.count(index="alerts") == 10
        rows = [json.loads(ln) for ln in matches.read_text().splitlines()]
        assert len(rows) == report["matches"] > 0
        ids = {e["event.id"] for e in events}
        assert all(r["event.id"] in ids for r in rows)
        assert {"network_flow", "ssh_auth_failed"} <= {r["rule"] for r in rows}
    finally:
        store.close()
    assert _evidence_counts(url) == counts


def _evidence_counts(url: str) -> dict[str, int]:
    from eventstore import open_store

    store = open_store(url)
    try:
        return {a["event.id"]: a["ztsoc.alert.evidence_count"] for a in store.scan("*", index="alerts")}
    finally:
        store.close()
