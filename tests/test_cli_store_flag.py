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
        ctx = typer.Context(cmd)  # asked, not read from ``.commands``: soc loads its commands on demand
        for name in cmd.list_commands(ctx):
            out += _commands(cmd.get_command(ctx, name), (*path, name))
    return out


def test_no_store_option_reads_the_environment() -> None:
    """A ``--store`` that read ``SOC_STORE`` would beat the global flag: none may."""
    tree = _commands(typer.main.get_command(app))
    with_store = [(p, o) for p, c in tree for o in c.params if "--store" in getattr(o, "opts", ())]
    assert len(with_store) > 30  # the global option and the commands' own
    assert [" ".join(p) for p, o in with_store if o.envvar] == []


def _invocations(tmp: Path, alert_id: str) -> dict[str, list[str]]:
    """One real invocation per command group that touches the store (the long-running ones too,
    where a short form exists); ``tail`` and ``dashboard serve`` are run below, triage's TUI is
    covered by the structural test above."""
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_long_running_commands_use_the_flag_too(tmp_path: Path) -> None:
    """``soc tail`` and ``soc dashboard serve`` run until interrupted: started, checked, stopped."""
    import signal
    import socket
    import time

    env_db = tmp_path / "env.db"
    env = {**os.environ, "SOC_STORE": f"sqlite:///{env_db}"}
    url = f"sqlite:///{tmp_path / 'flag.db'}"
    log = tmp_path / "auth.log"
    log.write_text("Nov 25 07:00:01 web1 sshd[2001]: Failed password for root from 10.0.0.9 port 40000 ssh2\n")
    port = _free_port()
    procs = {
        "tail": subprocess.Popen([*SOC, "--store", url, "tail", str(log), "--year", "2026", "--tz", "UTC",
                                  "--interval", "0.2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        "dashboard": subprocess.Popen([*SOC, "--store", url, "dashboard", "serve", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
    }
    try:
        deadline = time.monotonic() + 60
        tailed = served = False
        while time.monotonic() < deadline and not (tailed and served):
            time.sleep(0.3)
            if not tailed:
                check = open_store(url)
                tailed = check.count('log.file.path:"' + str(log) + '"') == 1
                check.close()
            if not served:
                with socket.socket() as s:
                    served = s.connect_ex(("127.0.0.1", port)) == 0
        assert tailed and served, {k: p.poll() for k, p in procs.items()}
        assert not env_db.exists()
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert not env_db.exists()
