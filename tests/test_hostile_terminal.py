"""Hostile values through the real collectors, then every data-printing command on a real terminal.

The corpus (``HOSTILE``) is what an attacker can put in a user name, a sudo command line, a
DNS name, an HTTP Host, URI or User-Agent: terminal title changes (``OSC 0``, BEL- and
unterminated), screen clears, colour changes, OSC 8 hyperlinks, C1 CSI, Rich markup (and
the ``[/]`` that crashed ``soc hunt``), emoji codes, bidi overrides, zero-width and tag
characters. It goes in as sshd and sudo syslog lines and as packets in a pcap
(``tests/pcapkit.py``), through ``soc ingest`` and the shipped detection rules (the
password-spraying and sudo-at-night rules fire, the second with a hostile user as its
entity), so every value reaches the store exactly as a collector writes it.

Each command then runs as a process on a pseudo-terminal (so Rich believes it talks to a
terminal and uses colour) and its bytes go through ``pyte``, a terminal emulator; the
triage TUI runs inside ``tmux``. On the resulting screen: every hostile value is shown in
its visible form, the window title never changed, hostile text carries no colour, the rows
around it are still there, and no traceback.
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pcapkit
import pyte
import pytest
from ptyterm import read_some

from collectors.pipeline import ingest
from collectors.registry import get_reader
from detections.runner import run_detections
from eventstore import open_store
from eventstore.timeutil import parse_time
from soc_cli.safe_text import visible

COLS, ROWS = 250, 120
SOURCE = "10.66.0.5"
SINCE = "2026-11-19T00:00:00Z"

#: user names tried from one source (ten or more: the password-spraying rule fires on them)
HOSTILE_USERS = [
    "ZT01\x1b]0;PWNED-TITLE\x07",  # retitle, BEL-terminated
    "ZT02\x1b[2J\x1b[H",  # clear the screen, cursor home
    "ZT03\x1b[31mRED",  # recolour what follows
    "ZT04\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "ZT05\x9b32mC1GREEN",  # C1 CSI (one UTF-8 character)
    "ZT06[red]x[/red]",  # Rich markup
    "ZT07[/]",  # the closing tag that crashed soc hunt
    "ZT08[link=http://evil.example]y[/link]",
    "ZT09\u202eLIVE-txt",  # right-to-left override
    "ZT10:thumbs_up:\u200b\U000e0041",  # emoji code, zero-width space, tag character
    "ZT11\x1b]0;SWALLOWED",  # unterminated: swallowed the following output in Rich
]
SUDO_USER = "ZTSU\x1b]2;SUDO-TITLE\x07[bold]root[/]"
SUDO_COMMAND = "/bin/sh -c \x1b[2J\x1b[3Jecho ZTCMD"
DNS_NAME = "ztdns\x1b]0;DNS-TITLE\x07.example"
HTTP_HOST = "zthost\x1b[5mblink.example"
HTTP_PATH = "/ZTURI\x1b[2J[/]"
HTTP_AGENT = "ZTUA\x1b]0;UA-TITLE\x07[red]agent[/]"


def _syslog() -> str:
    lines = [f"Nov 20 23:00:{i:02d} web01 sshd[{100 + i}]: Failed password for invalid user {u} from {SOURCE} "
             f"port {40000 + i} ssh2\n" for i, u in enumerate(HOSTILE_USERS)]
    lines.append(f"Nov 20 23:05:00 web01 sudo: {SUDO_USER} : TTY=pts/0 ; PWD=/tmp ; USER=root ; "
                 f"COMMAND={SUDO_COMMAND}\n")
    return "".join(lines)


def _packets() -> list[object]:
    request = (f"GET {HTTP_PATH} HTTP/1.1\r\nHost: {HTTP_HOST}\r\nUser-Agent: {HTTP_AGENT}\r\n\r\n").encode()
    return pcapkit.timed(pcapkit.dns_exchange(name=DNS_NAME)
                         + pcapkit.tcp_session(request=request, response=pcapkit.HTTP_RESPONSE),
                         start=parse_time("2026-11-20T23:01:00Z").timestamp())


@dataclass
class World:
    store_url: str
    log: Path
    spray_id: str
    sudo_id: str
    sudo_event: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{d / 'soc.db'}"
    store = open_store(url)
    log = d / "auth.log"
    log.write_text(_syslog(), encoding="utf-8")
    report = ingest(store, get_reader("syslog", year=2026, tz="UTC"), [log])
    assert report.events == len(HOSTILE_USERS) + 1 and report.problem_count == 0
    pcapkit.write(d / "hostile.pcap", _packets())  # type: ignore[arg-type]
    assert ingest(store, get_reader("pcap"), [d / "hostile.pcap"]).problem_count == 0
    # the collectors kept the values as they came: what reaches the store is hostile
    users = {doc["user.name"] for doc in store.scan("event.dataset:system.auth", fields=["user.name"])}
    assert users == {*HOSTILE_USERS, SUDO_USER}
    run_detections(store, since=parse_time(SINCE), until=parse_time("2026-11-22T00:00:00Z"))
    alerts = store.search("*", index="alerts", limit=50).hits
    spray = [a for a in alerts if a.get("rule.name") == "Password spraying from one source"]
    sudo = [a for a in alerts if a.get("ztsoc.alert.entity.value") == SUDO_USER]
    assert spray and sudo, [a.get("rule.name") for a in alerts]
    sudo_event = store.search("event.action:sudo_command", limit=1).hits[0]["event.id"]
    store.close()
    yield World(url, log, str(spray[0]["event.id"]), str(sudo[0]["event.id"]), str(sudo_event))


@dataclass
class Screen:
    screen: pyte.Screen
    raw: bytes
    code: int

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def find(self, needle: str) -> tuple[int, int]:
        for y, line in enumerate(self.screen.display):
            x = line.find(needle)
            if x >= 0:
                return y, x
        raise AssertionError(f"{needle!r} is not on the screen:\n{self.text}")


def on_terminal(*args: str, store_url: str, stop_after: float | None = None, until: bytes | None = None) -> Screen:
    """Run ``soc ARGS`` on a pseudo-terminal of COLS x ROWS; its output through the pyte emulator."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS), "SOC_STORE": store_url,
           "SOC_ANALYST": "analyst", "PYTHONUNBUFFERED": "1"}
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: soc on the terminal
        import fcntl
        import struct
        import termios

        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        os.execve(sys.executable, [sys.executable, "-m", "soc_cli.main", *args], env)
    raw = bytearray()
    deadline = time.monotonic() + 60
    stop_at = time.monotonic() + stop_after if stop_after else None
    while time.monotonic() < deadline:
        if stop_at and time.monotonic() > stop_at and (until is None or until in raw):
            os.kill(pid, signal.SIGTERM)
            stop_at = None
        chunk = read_some(fd, 0.2)
        if chunk is None:
            break
        raw += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(bytes(raw))  # the terminal's line discipline already turned \n into \r\n
    return Screen(screen, bytes(raw), os.waitstatus_to_exitcode(status))


def check(shown: Screen, values: list[str], *, expect_code: int = 0) -> None:
    """The common verdict: exit code, no traceback, title untouched, each value literal and uncoloured."""
    assert shown.code == expect_code, shown.text
    assert "Traceback" not in shown.text and "MarkupError" not in shown.text, shown.text
    assert shown.screen.title == "" and shown.screen.icon_name == "", (shown.screen.title, shown.text)
    for value in values:
        y, x = shown.find(visible(value))
        for i in range(x, x + len(visible(value))):
            cell = shown.screen.buffer[y][i]
            assert cell.fg == "default" and not cell.blink, (value, cell)


def test_the_corpus_is_dangerous_raw() -> None:
    """The same values written raw to the emulator do what the attacker wants: the test can tell."""
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(("before\r\n" + HOSTILE_USERS[0] + HOSTILE_USERS[2] + "\r\n" + HOSTILE_USERS[1] + "after").encode())
    assert screen.title == "PWNED-TITLE"
    assert "before" not in "\n".join(screen.display)  # cleared
    assert screen.buffer[0][0].fg == "red"  # "after", recoloured by ZT03's CSI 31m


def test_alert_list_and_show(world: World) -> None:
    listed = on_terminal("alerts", "--since", SINCE, "--status", "all", store_url=world.store_url)
    check(listed, [SUDO_USER])
    assert listed.find(world.sudo_id[:16]) and listed.find(world.spray_id[:16])  # no row swallowed
    assert "alerts" in listed.screen.display[0] or "alerts" in listed.text.splitlines()[1]

    shown = on_terminal("alerts", "show", world.sudo_id, store_url=world.store_url)
    check(shown, [SUDO_USER])
    for heading in ("Evidence", "History", "rule", "entity"):
        shown.find(heading)

    spray = on_terminal("alerts", "show", world.spray_id, store_url=world.store_url)
    check(spray, HOSTILE_USERS)
    assert spray.screen.display[0].strip().startswith("╭")  # the panel's top: nothing cleared the screen


def test_timeline_and_pivot(world: World) -> None:
    tl = on_terminal("alerts", "timeline", world.spray_id, "--before", "2h", "--after", "2h",
                     store_url=world.store_url)
    check(tl, HOSTILE_USERS)
    assert tl.find(SOURCE)  # the title row is still there

    pivot = on_terminal("pivot", SOURCE, "--since", SINCE, store_url=world.store_url)
    check(pivot, HOSTILE_USERS)
    assert pivot.screen.display[0].startswith(SOURCE)


def test_hunt_shows_markup_literally_and_does_not_crash(world: World) -> None:
    hunt = on_terminal("hunt", "user.name:*", "--since", SINCE, "--limit", "100", store_url=world.store_url)
    check(hunt, [*HOSTILE_USERS, SUDO_USER])
    sudo = on_terminal("hunt", "event.action:sudo_command", "--since", SINCE, "--fields",
                       "user.name,process.command_line", store_url=world.store_url)
    check(sudo, [SUDO_USER, SUDO_COMMAND])
    net = on_terminal("hunt", "event.dataset:(network.dns OR network.http)", "--since", SINCE,
                      "--fields", "event.dataset,dns.question.name,url.domain,url.original,user_agent.original",
                      store_url=world.store_url)
    check(net, [DNS_NAME, HTTP_HOST, HTTP_PATH, HTTP_AGENT])
    # a query with markup and escapes in it: echoed in the title, literally
    quoted = on_terminal("hunt", 'user.name:"ZT07[/]"', "--since", SINCE, store_url=world.store_url)
    check(quoted, ['user.name:"ZT07[/]"', "ZT07[/]"])


def test_events_show_and_the_error_handler(world: World) -> None:
    ev = on_terminal("events", "show", world.sudo_event, store_url=world.store_url)
    check(ev, [])
    assert "ZTCMD" in ev.text and "\\u001b" in ev.text  # JSON escapes
    bad = on_terminal("events", "show", "nope[/]\x1b]0;ERR-TITLE\x07[red]", store_url=world.store_url)
    check(bad, ["nope[/]\x1b]0;ERR-TITLE\x07[red]"], expect_code=2)
    assert "error:" in bad.text
    syntax = on_terminal("hunt", "user.name:(ZT07[/] \x1b[31m", "--since", SINCE, store_url=world.store_url)
    check(syntax, ["user.name:(ZT07[/] \x1b[31m"], expect_code=2)


def test_json_outputs_escape_what_the_terminal_would_run(world: World) -> None:
    out = on_terminal("hunt", "user.name:*", "--since", SINCE, "--ndjson", store_url=world.store_url)
    check(out, [])
    for raw_char in (b"\x1b", b"\xc2\x9b", "\u202e".encode()):
        assert raw_char not in out.raw


def test_tail_prints_lines_literally(world: World, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    shutil.copy(world.log, log)
    tail = on_terminal("tail", str(log), "--year", "2026", "--tz", "UTC", "--store", f"sqlite:///{tmp_path / 't.db'}",
                       store_url=world.store_url, stop_after=1.0, until=b"ZTCMD")
    check(tail, HOSTILE_USERS)
    assert tail.find("tail: 12 events read")


TMUX = shutil.which("tmux")


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by scripts/system-deps.sh")
def test_triage_tui_in_tmux(world: World, tmp_path: Path) -> None:
    sock = str(tmp_path / "tmux.sock")  # a private server, its socket in the test's own folder

    def tmux(*args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, "-S", sock, "-f", "/dev/null", *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    command = (f"env -u COLUMNS -u LINES TERM=xterm-256color SOC_STORE={world.store_url} SOC_ANALYST=analyst "
               f"{sys.executable} -m soc_cli.main triage --status all")
    tmux("new-session", "-d", "-x", "240", "-y", "60", "-s", "t", command)
    try:
        def screen_when(text: str) -> str:
            deadline = time.monotonic() + 60
            shown = ""
            while time.monotonic() < deadline:
                shown = tmux("capture-pane", "-p", "-t", "t")
                if text in shown:
                    return shown
                time.sleep(0.3)
            raise AssertionError(f"{text!r} never appeared:\n{shown}")

        screen_when("Evidence")
        time.sleep(1.0)  # let the first frame settle
        first = tmux("capture-pane", "-p", "-t", "t")
        title = tmux("display", "-p", "-t", "t", "#{pane_title}")
        assert "TITLE" not in title and "SWALLOW" not in title, title
        assert "2 of 2 alerts" in first and "Password" in first and "Sudo" in first, first
        # the detail pane of the alert under the cursor: move to the spraying alert, then its timeline
        for _ in range(10):
            if visible(HOSTILE_USERS[5]) in tmux("capture-pane", "-p", "-t", "t"):
                break
            tmux("send-keys", "-t", "t", "Down")
            time.sleep(0.5)
        shown = screen_when(visible(HOSTILE_USERS[5]))
        for user in HOSTILE_USERS[:3]:
            assert visible(user)[:20] in shown, shown
        tmux("send-keys", "-t", "t", "t")
        timeline = screen_when("entries")
        assert visible(HOSTILE_USERS[0])[:20] in timeline, timeline
        title = tmux("display", "-p", "-t", "t", "#{pane_title}")
        assert "TITLE" not in title and "SWALLOW" not in title, title
        styled = tmux("capture-pane", "-p", "-e", "-t", "t")
        assert "\x1b[31mRED" not in styled  # the hostile colour change never reached the terminal
        tmux("send-keys", "-t", "t", "Escape")
        tmux("send-keys", "-t", "t", "q")
    finally:
        subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True, timeout=30)
