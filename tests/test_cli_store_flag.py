"""``--store`` beats ``SOC_STORE`` in every command group (issue 19.2).

Each command's own ``--store`` used to read ``SOC_STORE`` too, so with the variable set it was
never empty and overrode the global ``soc --store URL``. The order now is: the command's flag,
the global flag, ``SOC_STORE``, the default file. Every command runs as a real ``soc`` process
with ``SOC_STORE`` naming a SQLite file that must never be created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from eventstore import open_store
from soc_cli.main import app
from tests.alertseed import alert

SOC = [sys.executable, "-m", "soc_cli.main"]
EXAMPLES = Path(__file__).resolve().parents[1] / "policy" / "examples"


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):  # a group (Typer's groups are not click.Group subclasses)
        for name, sub in cmd.commands.items():
            out += _commands(sub, (*path, name))
    return out


def test_no_store_option_reads_the_environment() -> None:
    """A ``--store`` that read ``SOC_STORE`` would beat the global flag: none may."""
    tree = _commands(typer.main.get_command(app))
    with_store = [(p, o) for p, c in tree for o in c.params if "--store" in getattr(o, "opts", ())]
    assert len(with_store) > 30  # the global option and the commands' own
    assert [" ".join(p) for p, o in with_store if o.envvar] == []


def _invocations(tmp: Path, alert_id: str) -> dict[str, list[str]]:
    """One real invocation per command group that touches the store (the long-running ones too,
    where a short form exists); the structural test above covers the rest (triage's TUI,
    ``dashboard serve``, ``tail``)."""
    req = tmp / "req.json"
    req.write_text(json.dumps({"service": "records", "method": "DELETE", "path": "/records/citizens/1",
                               "principal": "registrar-2", "roles": ["registrar"]}))
    events = tmp / "events.jsonl"
    events.write_text(json.dumps({"@timestamp": "2026-11-20T09:00:00Z", "message": "hello"}) + "\n")
    return {
        "store": ["store", "status", "--json"],
        "hunt": ["hunt", "*", "--since", "3650d"],
        "alerts": ["alerts", "--json", "--status", "all"],
        "alerts-sub": ["alerts", "show", alert_id],
        "pivot": ["pivot", "10.0.0.5", "--since", "3650d"],
        "detect": ["detect", "run"],
        "ml": ["ml", "explain", alert_id],  # not an anomaly alert: exit 2, after reading the flag's store
        "policy": ["policy", "decide", str(req), "-p", str(EXAMPLES), "--log"],
        "playbook": ["playbook", "scoreboard"],
        "respond": ["respond", alert_id, "--list"],
        "ingest": ["ingest", "jsonl", str(events)],
        "capture": ["capture", "-i", "lo", "--duration", "0.2"],
    }


#: The command's own flag always won over the variable; a few groups show it still does.
COMMAND_FORM = ("store", "alerts-sub", "policy", "ingest", "ml")


@pytest.mark.parametrize("where", ["global", "command"])
def test_the_flag_beats_soc_store_in_every_group(tmp_path: Path, where: str) -> None:
    flag = open_store(f"sqlite:///{tmp_path / 'flag.db'}")
    flag.put_alerts([alert("a-flag-1")])
    flag.close()
    env_db = tmp_path / "env.db"
    env = {**os.environ, "SOC_STORE": f"sqlite:///{env_db}", "SOC_ANALYST": "maria"}
    url = f"sqlite:///{tmp_path / 'flag.db'}"
    failed: list[str] = []
    for group, args in _invocations(tmp_path, "a-flag-1").items():
        if where == "command" and group not in COMMAND_FORM:
            continue
        cmd = [*SOC, "--store", url, *args] if where == "global" else [*SOC, *args, "--store", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if env_db.exists():
            failed.append(f"{group}: used SOC_STORE")
            env_db.unlink()
        elif proc.returncode not in (0, 1, 2) or "Traceback" in proc.stderr or "No such option" in proc.stderr:
            failed.append(f"{group}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert failed == []
    check = open_store(url)
    assert check.count("message:hello") == 1  # ingest wrote to the flag's store
    assert check.count('event.dataset:"policy.decision"') == 1
    check.close()
