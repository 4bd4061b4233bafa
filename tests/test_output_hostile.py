"""The ways out of ``soc`` that are not tables: prompts, progress, Markdown, CSV, tracebacks, log records.

Each path was found writing attacker data raw to the analyst's terminal (the audit of
``soc_cli``'s output, defects D1-D6): a yes/no prompt naming an alert's entity, a progress
bar rendering a file name as Rich markup, an investigation guide rendered as Markdown in
the triage app, the ``policy whatif`` summary printed as markup, CSV cells that are
spreadsheet formulas or carriage returns, ``--debug`` tracebacks and Python's last-resort
log handler. All now go through ``soc_cli.output``; these tests run the real ``soc`` on a
pseudo-terminal (so Rich and Textual believe a person is there and use colour) and feed
the bytes to ``pyte``, a terminal emulator: the window title never changes, the escape
sequences never arrive, the hostile value is on the screen in its visible form.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyte
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ptyterm import read_some
from rich.style import Style
from rich.text import Text

from detections.exceptions import STATE_KIND as EXCEPTIONS
from detections.exceptions import AlertException
from eventstore import open_store
from soc_cli.output import FORMULA_START, SafeConsole, csv_cell, install_log_handler, safe_markdown
from soc_cli.safe_text import visible

COLS, ROWS = 200, 50
POINTER_SHAPE = re.compile(rb"\x1b\]22;[a-z-]+\x07")
SOC = [sys.executable, "-m", "soc_cli.main"]

#: the alert entity of the response-playbook alert (retitle, clear, recolour, right-to-left override)
ENTITY = "mallory\x1b]0;PWNED-BY-ENTITY\x07\x1b[2J\x1b[31m\u202eRED"
#: a host name that is a live spreadsheet formula, and a command line that moves the cursor back
FORMULA_HOST = "-2+3+cmd|' /C calc'!A0"
CR_COMMAND = "calc\rSAFE: nothing to see here \x1b]0;CMD-TITLE\x07"
FORMULA_TITLE = '=HYPERLINK("http://evil.example","ok")'
#: a rule name (``rule.id``) quoted by an error message, seen with --debug
RULE_NAME = "watch\x1b]0;DEBUG-TITLE\x07\x1b[2J"

WATCHED_RULE = """\
title: Sudo by a watched account
id: 2b6c1d0e-1111-4222-8333-944455556668
name: "watch\\e]0;DEBUG-TITLE\\a\\e[2J"
status: test
description: A watched account ran sudo.
tags:
    - attack.t1078
logsource:
    product: linux
    service: sudo
detection:
    selection:
        process.command_line: /bin/id
    condition: selection
level: high
ztsoc:
    entity: user.name
"""
# the guide: an OSC title (BEL-terminated: Rich drops the BEL, leaving it unterminated), a clear,
# Rich markup, and HTML entities that markdown-it turns into a right-to-left override and a
# left-to-right mark after any sanitising of the source text
GUIDED_RULE = """\
title: "=HYPERLINK(\\"http://evil.example\\",\\"ok\\")"
id: 0b6c1d0e-1111-4222-8333-944455556666
status: test
description: A calculator.
tags:
    - attack.t1548.003
logsource:
    product: linux
    service: sudo
detection:
    selection:
        process.command_line|contains: calc
    condition: selection
level: critical
ztsoc:
    entity: host.name
    guide: "Guide \\e]0;GUIDE-TITLE\\a \\e[2J **bold** [link=http://evil.example]x[/link] ENT&#x202e;ITY&rlm;"
    response: "Resp \\e]0;RESP-TITLE\\a"
"""


def _events() -> str:
    base = {"@timestamp": "2026-03-03T23:40:00Z", "event.dataset": "system.auth", "event.action": "sudo_command",
            "event.outcome": "success"}
    return "".join(json.dumps(e) + "\n" for e in (
        {**base, "user.name": ENTITY, "host.name": "web01", "process.command_line": "/bin/id"},
        {**base, "user.name": "mallory", "host.name": FORMULA_HOST, "process.command_line": CR_COMMAND},
    ))


@dataclass
class Shown:
    """What a run of ``soc`` did to a terminal: its raw bytes, exit code, and where input was typed."""

    raw: bytes
    code: int
    typed_at: list[int] = field(default_factory=list)

    def screen(self, upto: int | None = None) -> pyte.Screen:
        """The emulator's screen after the bytes up to ``upto`` (by default all of them)."""
        screen = pyte.Screen(COLS, ROWS)
        # Textual's own pointer-shape sequence (OSC 22), which pyte would misread as a title (OSC 2)
        pyte.ByteStream(screen).feed(POINTER_SHAPE.sub(b"", self.raw[:upto]))
        return screen

    @staticmethod
    def text(screen: pyte.Screen) -> str:
        return "\n".join(line.rstrip() for line in screen.display)


def on_terminal(*args: str, keys: Callable[[bytes], bytes] | None = None, timeout: float = 90,
                cwd: Path | None = None) -> Shown:
    """Run ``soc ARGS`` on a COLS x ROWS pseudo-terminal; ``keys(raw so far)`` returns what to type next."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS), "SOC_ANALYST": "analyst",
           "PYTHONUNBUFFERED": "1"}
    for name in ("NO_COLOR", "FORCE_COLOR", "SOC_STORE"):
        env.pop(name, None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: soc on the terminal
        import fcntl
        import struct
        import termios

        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        if cwd is not None:
            os.chdir(cwd)
        os.execve(SOC[0], [*SOC, *args], env)
    raw = bytearray()
    typed: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = read_some(fd, 0.1)
            if chunk is None:
                break
            raw += chunk
            if keys is not None:
                send = keys(bytes(raw))
                if send:
                    typed.append(len(raw))
                    os.write(fd, send)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return Shown(bytes(raw), os.waitstatus_to_exitcode(status), typed)


def untouched(shown: Shown, screen: pyte.Screen, *raw_sequences: bytes) -> None:
    """The common verdict: the title never changed, none of ``raw_sequences`` reached the terminal."""
    assert screen.title == "" and screen.icon_name == "", (screen.title, Shown.text(screen))
    for seq in (b"\x1b]0;", b"\x1b]2;", b"\x1b[2J\x1b[31m", "\u202e".encode(), *raw_sequences):
        assert seq not in shown.raw, (seq, shown.raw[-3000:])


@dataclass
class World:
    store_url: str
    events: Path
    rules: Path
    watched_id: str
    guided_id: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Two alerts raised by ``soc scan --store`` from rule files and JSON lines, as an analyst's would be."""
    d = tmp_path_factory.mktemp("hostile-output")
    rules = d / "rules"
    rules.mkdir()
    (rules / "watched.yml").write_text(WATCHED_RULE, encoding="utf-8")
    (rules / "guided.yml").write_text(GUIDED_RULE, encoding="utf-8")
    events = d / "events.jsonl"
    events.write_text(_events(), encoding="utf-8")
    url = f"sqlite:///{d / 'soc.db'}"
    done = subprocess.run([*SOC, "scan", str(events), "--rules", str(rules), "--no-shipped", "--store", url, "-f", "jsonl"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = open_store(url)
    try:
        alerts = store.search("*", index="alerts", limit=10).hits
    finally:
        store.close()
    by_entity = {a.get("ztsoc.alert.entity.value"): str(a["event.id"]) for a in alerts}
    assert set(by_entity) == {ENTITY, FORMULA_HOST}, by_entity
    guided = next(a for a in alerts if a.get("ztsoc.alert.entity.value") == FORMULA_HOST)
    assert "\x1b]0;GUIDE-TITLE" in str(guided.get("ztsoc.alert.guide"))  # the store holds it raw
    return World(url, events, rules, by_entity[ENTITY], by_entity[FORMULA_HOST])


def _answerer(prompt: bytes, answer: bytes) -> Callable[[bytes], bytes]:
    """Keys that type ``answer`` at each new ``prompt``."""
    answered = [0]

    def keys(raw: bytes) -> bytes:
        if raw.count(prompt) > answered[0]:
            answered[0] = raw.count(prompt)
            return answer
        return b""
    return keys


def test_respond_prompt_shows_the_entity_literally(world: World) -> None:
    """D1: the playbook's condition names the alert's entity; the yes/no prompt shows it as escapes."""
    shown = on_terminal("respond", world.watched_id, "--store", world.store_url, keys=_answerer(b"[Y/n]: ", b"y\r"))
    screen = shown.screen()
    assert shown.code == 0, Shown.text(screen)
    untouched(shown, screen)
    prompt = next((line for line in screen.display if "outside its normal pattern?" in line), None)
    assert prompt is not None, Shown.text(screen)
    assert visible(ENTITY) in prompt and "[Y/n]" in prompt
    y = screen.display.index(prompt)
    x = prompt.index(visible(ENTITY))
    assert all(screen.buffer[y][i].fg == "default" for i in range(x, x + len(visible(ENTITY))))
    assert "recorded" in Shown.text(screen)  # the walk went on to the end


HOSTILE_FILE = "[link=http:evil.example\x1bc\x1b7]X[blink red on white]B.log"


def test_ingest_progress_shows_the_file_name_literally(tmp_path: Path) -> None:
    """D2: the progress bar's description names the file being read, never as Rich markup."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    lines = (f"Mar  3 23:{i // 60 % 60:02d}:{i % 60:02d} web01 sshd[{i}]: Failed password for invalid user u{i} "
             f"from 10.0.0.{i % 250} port {1000 + i % 60000} ssh2\n" for i in range(40_000))
    (folder / HOSTILE_FILE).write_text("".join(lines), encoding="utf-8")
    shown = on_terminal("ingest", "syslog", "--year", "2026", "--tz", "UTC", "--batch-size", "200",
                        "--store", f"sqlite:///{tmp_path / 'soc.db'}", str(folder))
    screen = shown.screen()
    assert shown.code == 0, Shown.text(screen)
    description = f"syslog 1/1 {visible(HOSTILE_FILE)}".encode()
    assert description in shown.raw, shown.raw[:3000]  # the bar was drawn, naming the file as it is
    untouched(shown, screen, b"\x1bc", b"\x1b7", b"\x1b]8;", b";5;31;47m")
    assert visible(HOSTILE_FILE) in Shown.text(screen)  # the report's file row, after the bar


def test_the_console_drops_a_link_whose_url_has_controls() -> None:
    """D2's backstop: a renderable built elsewhere with a ``[link=...]`` of data cannot reset the terminal."""
    out = io.StringIO()
    SafeConsole(file=out, force_terminal=True, color_system="truecolor", width=80).print(
        Text("X", style=Style(link="http:evil.example\x1bc\x1b7")), Text("ok", style=Style(link="https://ok.example/")))
    written = out.getvalue()
    assert "\x1bc" not in written and "\x1b7" not in written and "evil" not in written
    assert "X" in written and "\x1b]8;id=" in written and "https://ok.example/" in written  # a clean link stays


def test_triage_app_shows_the_guide_literally(world: World) -> None:
    """D3: the triage app draws the investigation guide (Markdown from the rule file) without its escapes."""
    drawn_at: list[float] = []  # when the detail pane first showed, then (again) when q was typed

    def keys(raw: bytes) -> bytes:
        if not drawn_at and b"Response steps" in raw:
            drawn_at.append(time.monotonic())
        elif len(drawn_at) == 1 and time.monotonic() - drawn_at[0] > 1.5:  # the frame settled: quit
            drawn_at.append(time.monotonic())
            return b"q"
        return b""

    shown = on_terminal("triage", "--status", "all", "--store", world.store_url, keys=keys, timeout=60)
    assert shown.typed_at, shown.raw[-3000:]  # "Response steps" was drawn and q typed
    screen = shown.screen(shown.typed_at[0])
    text = Shown.text(screen)
    untouched(shown, screen, b"\x1b]0;GUIDE", b"\x1b]0;RESP", "\u200f".encode())
    for literal in ("Guide \\x1b]0;GUIDE-TITLE", "[link=http://evil.example]x[/link]", "ENT\\u202eITY\\u200f",
                    "Resp \\x1b]0;RESP-TITLE", "Response steps", "History"):
        assert literal in text, (literal, text)
    assert shown.code == 0


def test_show_prints_the_same_guide_in_its_panel(world: World) -> None:
    """D3 on the command line: ``soc alerts show`` uses the same Markdown builder."""
    shown = on_terminal("alerts", "show", world.guided_id, "--store", world.store_url)
    screen = shown.screen()
    text = Shown.text(screen)
    assert shown.code == 0, text
    untouched(shown, screen, "\u200f".encode())
    guide = next(line for line in screen.display if "Guide \\x1b]0;GUIDE-TITLE" in line)
    assert guide.rstrip().endswith("│") and "ENT\\u202eITY\\u200f" in guide  # the panel's border on its row


def test_safe_markdown_renders_entities_as_escapes() -> None:
    out = io.StringIO()
    SafeConsole(file=out, force_terminal=True, width=80).print(safe_markdown("a&#x202e;b &rlm; [x](http://e&#x1b;c)"))
    assert "a\\u202eb" in out.getvalue() and "\u202e" not in out.getvalue() and "\u200f" not in out.getvalue()


WHATIF_DECISIONS = [
    {"@timestamp": "2026-03-03T12:00:00Z", "event.action": "[link=https://evil.example/]allow[blink]"},
    {"@timestamp": "2026-03-03T12:00:01Z", "event.action": "allow[/x]"},
]


def test_whatif_summary_is_shown_literally(tmp_path: Path) -> None:
    """D4: the summary's keys carry logged ``event.action`` values; no hyperlink, no blink, no MarkupError."""
    base = {"event.dataset": "policy.decision", "event.kind": "event", "event.outcome": "success",
            "service.name": "records", "http.request.method": "GET", "url.path": "/x", "user.name": "bob",
            "ztsoc.policy.reason": ["no rule allows it"]}
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps({**base, **d}) + "\n" for d in WHATIF_DECISIONS), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    done = subprocess.run([*SOC, "ingest", "jsonl", str(log), "--store", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    repo = Path(__file__).resolve().parent.parent
    shown = on_terminal("policy", "whatif", "policy/examples/baseline.yaml", "policy/examples/records.yaml",
                        "--since", "2026-01-01T00:00:00Z", "--store", url, cwd=repo)
    screen = shown.screen()
    text = Shown.text(screen)
    assert shown.code == 0 and "MarkupError" not in text, text
    untouched(shown, screen, b"\x1b]8;", b"\x1b[5m")
    summary = next(line for line in screen.display if line.startswith('{"replayed"'))
    assert '"[link=https://evil.example/]allow[blink]->deny": 1' in summary and '"allow[/x]->deny": 1' in summary


def test_scan_csv_neutralises_formulas(world: World) -> None:
    """D5: to a file, formula cells get a ``'``, every other cell is exact (a spreadsheet reads the text)."""
    done = subprocess.run([*SOC, "scan", str(world.events), "--rules", str(world.rules), "--no-shipped", "-f", "csv"],
                          capture_output=True, timeout=300)  # bytes: text mode would turn the CR into a line feed
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode(), newline="")))
    by_host = {r["host.name"]: r for r in rows}
    assert set(by_host) == {"web01", "'" + FORMULA_HOST}
    guided = by_host["'" + FORMULA_HOST]
    assert guided["rule.name"] == "'" + FORMULA_TITLE
    assert guided["fields"] == "process.command_line=" + visible(CR_COMMAND, keep="\r")  # CR kept in a file
    assert all(cell[:1] not in FORMULA_START for row in rows for cell in row.values())


def test_scan_csv_on_a_terminal_keeps_each_row_on_its_line(world: World) -> None:
    """D5: a CR in a cell no longer sends the cursor back over the row's time, level and rule."""
    shown = on_terminal("scan", str(world.events), "--rules", str(world.rules), "--no-shipped", "-f", "csv")
    screen = shown.screen()
    assert shown.code == 0, Shown.text(screen)
    untouched(shown, screen)
    rows = "".join(screen.display)  # the emulator's rows end to end: a CSV row wraps at COLS
    assert screen.display[1].startswith("2026-03-03T23:40:00.000Z,critical,"), Shown.text(screen)
    assert f",'{FORMULA_HOST}," in rows and "process.command_line=calc\\rSAFE: nothing to see here" in rows


CELLS = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[+-]?[0-9]{0,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),  # numbers, and near misses
    st.builds(lambda first, rest: first + rest, st.sampled_from(sorted(FORMULA_START)), st.text(max_size=10)),
)


@given(CELLS)
def test_csv_cell_is_never_a_formula_and_otherwise_exact(value: str) -> None:
    """Any value: the cell is the value shown (``visible``), with at most a ``'`` in front, and a
    cell left starting with a formula character is an ASCII decimal number a spreadsheet reads as one."""
    for terminal in (False, True):
        cell = csv_cell(value, terminal=terminal)
        shown = visible(value) if terminal else visible(value, multiline=True, keep="\r\t")
        assert cell in (shown, "'" + shown)
        assert (cell == "'" + shown) == (shown[:1] in FORMULA_START and cell != shown)
        if cell[:1] in FORMULA_START:
            assert cell.isascii() and "_" not in cell and cell == cell.strip() and not math.isnan(float(cell)), cell
        if terminal:
            assert "\r" not in cell and "\n" not in cell and "\t" not in cell


@pytest.mark.parametrize(("value", "cell"), [
    ("-5", "-5"), ("+1.5", "+1.5"), ("-2e3", "-2e3"), ("-.5", "-.5"), (-7, "-7"),  # plain numbers: as they are
    ("-5+1", "'-5+1"), ("-inf", "'-inf"), ("-1_0", "'-1_0"), ("-\u0665", "'-\u0665"), ("- 5", "'- 5"),
    ("=1+1", "'=1+1"), ("@SUM(1)", "'@SUM(1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("\uff1d1+1", "'\uff1d1+1"),
    ("a=b", "a=b"), ("", ""),
])
def test_csv_cell_examples(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_debug_traceback_is_shown_literally(world: World) -> None:
    """D6: ``--debug`` prints the traceback; the exception's message quotes the rule's name."""
    shown = on_terminal("--debug", "ml", "explain", world.watched_id, "--store", world.store_url)
    screen = shown.screen()
    text = Shown.text(screen)
    assert shown.code == 2, text
    assert "Traceback (most recent call last)" in text and "ValueError" in text
    untouched(shown, screen, b"\x1b]0;DEBUG")
    assert sum(visible(RULE_NAME) in line for line in screen.display) == 2, text  # traceback and error line


#: an alert exception's id, as a state entry written by hand (or by another tool) may hold it
LOGGED_ID = "exc-1\x1b]0;LOG-TITLE\x07\x1b[2J"


def test_log_records_are_shown_literally(world: World, tmp_path: Path) -> None:
    """Warnings from the packages below reach stderr literally: the detection runner logs a stored
    exception whose query no longer runs, by its id."""
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    store = open_store(url)
    try:  # saved by hand or by an older version: the case the detection runner logs and skips
        broken = AlertException(LOGGED_ID, "rule.name:(", owner="o", reason="r",
                                expires="2999-01-01T00:00:00Z", created="2026-01-01T00:00:00Z", created_by="o")
        store.put_state(EXCEPTIONS, broken.id, broken.to_doc())
    finally:
        store.close()
    done = subprocess.run([*SOC, "ingest", "jsonl", str(world.events), "--store", url], capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    shown = on_terminal("detect", "run", "--since", "2026-03-01T00:00:00Z", "--rules", str(world.rules), "--no-shipped",
                        "--store", url)
    screen = shown.screen()
    text = Shown.text(screen)
    assert f"exception {visible(LOGGED_ID)} skipped" in text, text
    untouched(shown, screen, b"\x1b]0;LOG")


def test_the_log_handler_is_installed_once(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        first = install_log_handler()
        assert install_log_handler() is first and root.handlers.count(first) == 1
    finally:
        root.handlers[:] = before
        logging.captureWarnings(False)
