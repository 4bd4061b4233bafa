"""The README is executable (issue 16): every command of its shell blocks runs, in order, as typed.

The same for the other docs a user follows (``DOCS``: policy/examples/README.md), after it, on the same store.

A fresh demo store (``SOC_STORE`` and ``HOME``/``XDG_*`` in a temporary directory, so nothing
of the user's is read or written) takes the README from ``$ make demo`` (run as ``soc demo``,
which is what the target does after installing) to the trainee's scoreboard. Each command
must exit as documented (0, or the ``exits N`` its comment states) and its output must have
the shape the README shows (``tests/readme_runner.py``: ids, numbers, times and paths are
free, every other word of a shown line must be there).

What a reader types that names things of their own machine is mapped here, in one table:
the ids a list printed (``ID``, ``ALERT``, the README's ``alert-...``) become the id of the
same alert in this store; ``/var/log/auth.log`` becomes the demo's ``auth.log``; ``captures/``,
``journal.json``, ``Security.evtx`` and ``events.ndjson`` are the demo's files or small valid
ones written here; ``~/sigma/rules`` (under the temporary ``HOME``) holds a usable rule and a broken one.
Blocks and commands the README marks with ``<!-- readme-test: ... -->`` (servers, interactive
screens, followers) are reported, not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.evtxgen import Record, write_evtx
from tests.readme_runner import Block, Command, mismatches, parse

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "policy/examples/README.md")
TIMEOUT = 240
ALERT_ID = re.compile(r"\balert-[0-9a-f]{32}\b")
#: a make target, after any VAR=value assignments (`SOC_LANG=vi make demo`): only `make demo` runs, as `soc demo`
MAKE = re.compile(r"^(?:\w+=\S*\s+)*make\b")


def test_parser_and_matcher_on_a_small_document() -> None:
    doc = "\n".join([
        "```sh", "soc alerts ack ID          # looks at it", "soc alerts answer x  # a wrong one exits 1", "```",
        "<!-- readme-test: skip (a server) -->", "```sh", "soc policy serve", "```",
        "<!-- readme-test: not-run \"soc triage\" (interactive) -->", "```", "$ soc triage", "$ soc demo",
        "│ alert-3abbde45622ee1a3 │ high │ SSH brute force followed by a successful │ 203.0.113.77 │",
        "rules   19", "...", "```", "```yaml", "a: 1", "```"])
    blocks = parse(doc)
    assert [len(b.commands) for b in blocks] == [2, 1, 2, 0]
    assert [c.exit_code for c in blocks[0].commands] == [0, 1]
    assert blocks[0].commands[0].line == "soc alerts ack ID"
    assert blocks[1].skip == "a server"
    assert blocks[2].not_run == ("soc triage",) and blocks[2].not_run_reason == "interactive"
    shown = blocks[2].commands[1].shown
    wide = ("│ alert-6af399e7919ce8e38824ad2d0ad96121 │ high │ SSH brute force followed by a successful login │ "
            "203.0.113.77 │\nrules                            20\n")
    assert mismatches(["│ id │ x │ identity │ ns/portal/sa/citizen-portal│"],
                      "│ id │ x │ identity │ spiffe://province.example/ns/portal/sa/citizen-portal │") == []
    assert mismatches(shown, wide) == []
    assert mismatches(shown, wide.replace("high", "low")) == [shown[0].strip()]
    assert mismatches(shown, wide.replace("rules", "rows")) == ["rules   19"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("readme")
    home, work = base / "home", base / "work"
    for d in (home, work):
        d.mkdir()
    return {"base": base, "home": home, "work": work}


def _env(bench: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOC_", "XDG_"))}
    env.update({
        "HOME": str(bench["home"]), "XDG_DATA_HOME": str(bench["home"] / ".local/share"),
        "XDG_CACHE_HOME": str(bench["home"] / ".cache"), "XDG_CONFIG_HOME": str(bench["home"] / ".config"),
        "SOC_STORE": f"sqlite:///{bench['base'] / 'soc.db'}", "SOC_ANALYST": "kofi", "COLUMNS": "200",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "TERM": "dumb",
        "PYTHONPATH": str(ROOT),
    })
    if "SOC_CACHE_DIR" in os.environ:     # the compiled-rule cache of the test run (conftest)
        env["SOC_CACHE_DIR"] = os.environ["SOC_CACHE_DIR"]
    return env


def _prepare_files(bench: dict[str, Path]) -> None:
    """The files the admin's commands name, after `soc demo` wrote its own."""
    work, home = bench["work"], bench["home"]
    demo = home / ".cache/ztsoc/demo"
    (work / "policy").symlink_to(ROOT / "policy")
    (work / "captures").mkdir(exist_ok=True)
    shutil.copy(demo / "network.pcap", work / "captures/network.pcap")
    shutil.copy(demo / "auth.log", work / "auth.log")
    shutil.copy(demo / "windows.jsonl", work / "events.ndjson")
    whoami = ("title: Whoami run\nid: 7c1b1f7e-5d2a-4c1e-9a51-0d3b1c2e4f10\nstatus: test\nlevel: low\n"
              "logsource: {product: windows, category: process_creation}\n"
              "detection: {sel: {Image|endswith: '\\\\whoami.exe'}, condition: sel}\n")
    rules = home / "sigma/rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "whoami.yml").write_text(whoami)
    # the responder's `soc scan evidence/ --rules sigma/rules/windows`: collected files and a rule folder
    (work / "sigma/rules/windows").mkdir(parents=True, exist_ok=True)
    (work / "sigma/rules/windows/whoami.yml").write_text(whoami)
    (work / "evidence").mkdir(exist_ok=True)
    shutil.copy(demo / "auth.log", work / "evidence/auth.log")
    shutil.copy(demo / "windows.jsonl", work / "evidence/windows.jsonl")
    (rules / "broken.yml").write_text(     # what `validate` is for: it names this one (exit 1)
        "title: Broken\nid: 7c1b1f7e-5d2a-4c1e-9a51-0d3b1c2e4f11\nlogsource: {product: windows}\n"
        "detection: {sel: {Image|nosuchmodifier: x}, condition: sel}\n")
    start = int(datetime.now(UTC).timestamp()) - 3600
    entries = [{"__CURSOR": f"s=7f0e;i={i};b=93c1", "__REALTIME_TIMESTAMP": str((start + i) * 1_000_000),
                "_HOSTNAME": "jump-01", "SYSLOG_IDENTIFIER": "sshd", "_PID": "812",
                "MESSAGE": f"Failed password for amina.okafor from 203.0.113.9 port {50000 + i} ssh2"}
               for i in range(3)]
    (work / "journal.json").write_text("".join(json.dumps(e) + "\n" for e in entries))
    write_evtx(work / "Security.evtx", [
        Record(4625, datetime.now(UTC), computer="portal-win-01.gov.example",
               data={"TargetUserName": "li.wei", "IpAddress": "198.51.100.23", "LogonType": "3"})])


#: ids the README shows as examples of a prefix, and which event of the demo's SSH alert stands for them
EVENT_PREFIXES = ("3f2a9c",)


def _substitute(line: str, ids: dict[str, str], default_id: str) -> str:
    line = line.replace("/var/log/auth.log*", "auth.log").replace("/var/log/auth.log", "auth.log")
    if line.startswith("make demo"):
        line = "soc demo" + line[len("make demo"):]
    line = ALERT_ID.sub(lambda m: ids.get(m.group(0), default_id), line)
    for prefix in EVENT_PREFIXES:
        line = re.sub(rf"\b{prefix}\b", ids.get("event", prefix), line)
    return re.sub(r"(?<![\w.'\"-])(ID|ALERT)(?![\w.'\"-])", default_id, line)


def _alert_map(readme_blocks: list[Block], env: dict[str, str]) -> tuple[dict[str, str], str]:
    """README alert id -> this store's id of the alert with the same entity (from the demo's table)."""
    proc = subprocess.run(["soc", "alerts", "--status", "all", "--json", "--limit", "500"], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=True)
    alerts = json.loads(proc.stdout)
    by_entity = {str(a.get("ztsoc.alert.entity.value")): str(a["event.id"]) for a in alerts}
    by_rule = {str(a.get("rule.id")): str(a["event.id"]) for a in alerts}
    mapping: dict[str, str] = {}
    for block in readme_blocks:
        for cmd in block.commands:
            for row in cmd.shown:
                m = ALERT_ID.search(row)
                cells = [c.strip() for c in row.split("│") if c.strip()]
                if m and len(cells) >= 4 and cells[3] in by_entity:
                    mapping[m.group(0)] = by_entity[cells[3]]
    ssh = next((a for a in alerts if a.get("rule.id") == "ssh_bruteforce_then_success"), {})
    evidence = ssh.get("ztsoc.alert.evidence") or [""]
    mapping["event"] = str(evidence[0])[:8]    # a prefix, as lists show them
    return mapping, by_rule.get("ssh_bruteforce_then_success", "")


def _cwd(bench: dict[str, Path], doc: str) -> Path:
    """The README's commands share one folder; another doc gets its own (its `policy keys` makes a fresh set)."""
    if doc == DOCS[0]:
        return bench["work"]
    cwd = bench["base"] / doc.replace("/", "-")
    if not cwd.exists():
        cwd.mkdir()
        (cwd / "policy").symlink_to(ROOT / "policy")
    return cwd


def _run(cmd: Command, line: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, input="y\n" * 40)
    return proc.returncode, proc.stdout + proc.stderr


def test_every_readme_command_runs_as_documented(bench: dict[str, Path]) -> None:
    env = _env(bench)
    blocks = [(doc, b) for doc in DOCS for b in parse((ROOT / doc).read_text())]
    ids: dict[str, str] = {}
    default_id = ""
    ran, left_out, failures = 0, [], []
    started = time.monotonic()
    for doc, block in blocks:
        if not block.commands:
            continue
        if block.skip:
            left_out.append(f"{doc}:{block.where} block ({block.skip})")
            continue
        for cmd in block.commands:
            if cmd.line.startswith(block.not_run):
                left_out.append(f"{doc}:{cmd.where} {cmd.line!r} ({block.not_run_reason})")
                continue
            if MAKE.match(cmd.line) and not cmd.line.startswith("make demo"):
                left_out.append(f"{doc}:{cmd.where} {cmd.line!r} (a make target: CI runs `make test`)")
                continue
            line = _substitute(cmd.line, ids, default_id)
            code, out = _run(cmd, line, env, _cwd(bench, doc))
            ran += 1
            if line.startswith("soc demo"):
                _prepare_files(bench)
                ids, default_id = _alert_map([b for _, b in blocks], env)
                assert default_id, "the demo raised no SSH brute-force alert"
            if code != cmd.exit_code:
                failures.append(f"{doc}:{cmd.where} `{line}` exited {code}, documented {cmd.exit_code}:\n"
                                f"{out[-1500:]}")
                continue
            missing = mismatches(cmd.shown, out)
            if missing:
                failures.append(f"{doc}:{cmd.where} `{line}`: shown lines not in the output: {missing}\n"
                                f"--- output ---\n{out[-3000:]}")
    report = (f"{ran} README commands run in {time.monotonic() - started:.0f} s; left out:\n  "
              + "\n  ".join(left_out))
    print(report)
    assert ran > 40, report
    assert not failures, "\n\n".join(failures) + "\n\n" + report
