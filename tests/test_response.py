"""Response playbooks: valid CACAO-shaped files, found by technique, walked with branches, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventstore.store import Store
from playbooks.response import SHIPPED, Step, load_response, load_responses, playbooks_for, walk
from soc_cli.main import app

ALERT = {"event.id": "alert-r1", "@timestamp": "2026-11-24T10:00:00.000Z", "event.kind": "alert",
         "rule.id": "ssh_bruteforce_then_success", "rule.name": "SSH brute force followed by a successful login",
         "ztsoc.alert.level": "high", "ztsoc.alert.entity.type": "ip", "ztsoc.alert.entity.value": "203.0.113.77",
         "threat.technique.id": ["T1110", "T1078"]}


def test_shipped_playbooks_load() -> None:
    playbooks = load_responses()
    assert len(playbooks) >= 3
    assert all(pb.techniques for pb in playbooks)


def test_most_specific_playbook_first() -> None:
    found = playbooks_for(ALERT)
    assert found[0].name == "Contain an SSH brute force that got in"
    assert playbooks_for({"threat.technique.id": ["T1046"]})[0].name.startswith("Isolate a host")
    assert playbooks_for({"threat.technique.id": ["T9999"]}) == []


def test_walk_follows_the_branch_taken() -> None:
    pb = next(p for p in load_responses() if p.name.startswith("Contain an SSH"))

    def answers(reply: str):  # type: ignore[no-untyped-def]
        return lambda step: reply if step.kind == "if-condition" else "done"

    got_in = [s.name for s, _ in walk(pb, answers("yes"), {"__entity__": "203.0.113.77"})]
    assert got_in == ["Confirm the successful login", "Did the source log in successfully?",
                      "Block the source at the perimeter", "Lock the account and end its sessions",
                      "Check what was done as root"]
    failed_only = [s.name for s, _ in walk(pb, answers("no"), {})]
    assert failed_only == ["Confirm the successful login", "Did the source log in successfully?",
                           "Block the source and close as attempted"]
    seen: list[Step] = []
    list(walk(pb, lambda s: seen.append(s) or "done", {"__entity__": "203.0.113.77"}))
    assert "soc pivot 203.0.113.77 --since 24h" in seen[0].commands


def test_dangling_step_is_refused(tmp_path: Path) -> None:
    text = (SHIPPED / "recon-and-exfiltration.yml").read_text()
    bad = tmp_path / "bad.yml"
    bad.write_text(text.replace("on_completion: end--7a0c1f55-61b2-4f61-8e3e-2b8c5d9e2a06",
                                "on_completion: end--missing"))
    with pytest.raises(ValueError, match="no step 'end--missing'"):
        load_response(bad)


def test_an_agent_name_cut_by_an_unquoted_comma_is_refused(tmp_path: Path) -> None:
    """``{name: Platform team (identity provider, SPIRE)}`` is a flow mapping: YAML cuts the name at the
    comma and makes ``SPIRE)`` a key; the schema names the agent instead of showing half a name."""
    text = (SHIPPED / "compromised-identity.yml").read_text()
    quoted = 'name: "Platform team (identity provider, SPIRE)"'
    assert quoted in text
    bad = tmp_path / "bad.yml"
    bad.write_text(text.replace(quoted, "name: Platform team (identity provider, SPIRE)"))
    with pytest.raises(ValueError, match=r"agent_definitions\.individual--platform"):
        load_response(bad)
    agents = load_response(SHIPPED / "compromised-identity.yml").agents
    assert agents["individual--platform"] == {"type": "individual", "name": "Platform team (identity provider, SPIRE)"}


def test_soc_respond_records_each_step(store: Store) -> None:
    store.put_alerts([ALERT])
    from soc_cli.context import STATE

    STATE.close()
    STATE._store = store
    try:
        result = CliRunner().invoke(app, ["respond", "alert-r1", "--answers", "done,no,done"])
    finally:
        STATE._store = None
    assert result.exit_code == 0, result.output
    history = store.get_alert("alert-r1")["ztsoc.alert.history"]  # type: ignore[index]
    notes = [h["note"] for h in history if h["action"] == "respond"]
    assert len(notes) == 3
    assert notes[1].endswith("Did the source log in successfully?: no")
    assert notes[2].endswith("Block the source and close as attempted: done")


def test_alerts_show_lists_the_matching_playbooks(sqlite_store: Store) -> None:
    import json

    sqlite_store.put_alerts([ALERT])
    from soc_cli.context import STATE

    STATE.close()
    STATE._store = sqlite_store
    try:
        result = CliRunner().invoke(app, ["alerts", "show", "alert-r1", "--json"])
    finally:
        STATE._store = None
    assert result.exit_code == 0, result.output
    names = [p["name"] for p in json.loads(result.output)[0]["playbooks"]]
    assert names[0] == "Contain an SSH brute force that got in"
