"""The Vietnamese interface: the catalog is complete, the language is chosen from the environment,
the CLI shows Vietnamese with aligned tables in a real terminal (tmux), JSON never changes.

The completeness test extracts the messages the way ``make i18n`` does (Babel's extractor
over ``babel.cfg`` plus every help text of the live command tree) and fails on any message
without a non-fuzzy Vietnamese translation, or whose placeholders differ from the English.
"""

from __future__ import annotations

import gettext
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

import locales
from locales import N_, chosen_language, normalise, po_path, set_language

ROOT = Path(__file__).resolve().parent.parent
#: options, environment variables and ECS field names: never translated
IDENTIFIER = re.compile(r"--[a-z][a-z-]*|\$[A-Z_]+|\b(?:event|source|user|rule|host|process)\.[a-z_.]*[a-z]")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def extracted() -> dict[str, str]:
    """msgid -> where it comes from: Babel's extractor over babel.cfg, then the live command tree."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, str] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        # a plural pair (ngettext) is one catalog entry, found by its singular
        found.setdefault(message[0] if isinstance(message, tuple) else message, filename)
    from soc_cli.i18n import help_texts
    from soc_cli.main import app

    set_language("en")
    try:
        for item in help_texts(app):
            found.setdefault(item.text, f"help of {item.where}")
    finally:
        set_language(None)
    return found


def _fields(text: str) -> list[str]:
    """The ``{name}`` placeholders of a message, in order (``{}`` as '')."""
    return [f for _lit, f, _spec, _conv in string.Formatter().parse(text) if f is not None]


def test_vietnamese_catalog_is_complete() -> None:
    """Every message, help text and message raised below the CLI (context ``raised``) is translated."""
    from locales.raised import CONTEXT
    from soc_cli.i18n import raised_messages

    with po_path("vi").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    assert not catalog.fuzzy, "the catalog header is marked fuzzy: pybabel compile would skip it"
    problems = []
    wanted = [(None, msgid, where) for msgid, where in sorted(extracted().items())]
    wanted += [(CONTEXT, msgid, where) for msgid, where in sorted(raised_messages(ROOT).items())]
    for context, msgid, where in wanted:
        message = catalog.get(msgid, context=context)
        if message is None or not message.string or (isinstance(message.string, tuple) and not all(message.string)):
            problems.append(f"missing: {msgid!r} ({where})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif any(_fields(msgid) != _fields(str(s)) for s in
                 (message.string if isinstance(message.string, tuple) else (message.string,))):
            problems.append(f"placeholders differ: {msgid!r} -> {message.string!r}")
    # Babel's own checkers: python-format (%s) placeholders and plural forms
    for message, errors in catalog.check():
        problems += [f"{message.id!r}: {e}" for e in errors]
    assert not problems, ("\n".join(problems) + "\n\nA new or changed message: run `make i18n`, then give it its "
                          "Vietnamese in locales/vi/LC_MESSAGES/ztsoc.po (terms: locales/vi/GLOSSARY.md).")


def test_translations_use_nfc_and_keep_identifiers() -> None:
    """Precomposed letters (one terminal cell each); ECS fields and options survive translation."""
    with po_path("vi").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    for message in catalog:
        if not message.id:
            continue
        text = str(message.string)
        assert unicodedata.normalize("NFC", text) == text, message.id
        for token in IDENTIFIER.findall(str(message.id)):
            assert token in text, f"{token} lost in {text!r}"


@pytest.mark.parametrize(("env", "lang"), [
    ({"SOC_LANG": "vi"}, "vi"),
    ({"LANG": "vi_VN.UTF-8"}, "vi"),
    ({"LC_ALL": "vi_VN", "LANG": "en_US.UTF-8"}, "vi"),
    ({"LANGUAGE": "fr:vi", "LANG": "en_US.UTF-8"}, "vi"),
    ({"SOC_LANG": "en", "LANG": "vi_VN.UTF-8"}, "en"),
    ({"SOC_LANG": "xx", "LANG": "vi_VN.UTF-8"}, "vi"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({}, "en"),
])
def test_language_choice(env: dict[str, str], lang: str) -> None:
    assert chosen_language(env) == lang


def test_normalise() -> None:
    assert normalise("vi-VN") == "vi" and normalise("vi_VN.UTF-8@x") == "vi" and normalise("de_DE") is None


def test_po_compiled_in_memory_matches_pybabel_compile(tmp_path: Path) -> None:
    """Two ways to the same catalog: the fallback (no .mo) and pybabel's compiled .mo."""
    work = tmp_path / "locales" / "vi" / "LC_MESSAGES"
    work.mkdir(parents=True)
    shutil.copy(po_path("vi"), work / "ztsoc.po")
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "compile", "-D", "ztsoc",
                    "-d", str(tmp_path / "locales")], check=True)
    with (work / "ztsoc.mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    locales.translations.cache_clear()
    original = locales.HERE
    try:
        locales.HERE = tmp_path / "nowhere"  # no catalog at all: English
        assert locales.translations("vi").gettext("events") == "events"
        locales.translations.cache_clear()
        locales.HERE = tmp_path / "locales"
        (work / "ztsoc.mo").unlink()
        in_memory = locales.translations("vi")
    finally:
        locales.HERE = original
        locales.translations.cache_clear()
    with po_path("vi").open("rb") as fh:
        ids = [str(m.id) for m in read_po(fh) if m.id]
    assert ids and all(in_memory.gettext(i) == compiled.gettext(i) for i in ids)
    assert in_memory.gettext("The alert queue (open)") == "Hàng đợi cảnh báo (đang mở)"


def test_underscore_follows_the_language() -> None:
    try:
        set_language("vi")
        assert locales._(N_("critical")) == "nghiêm trọng"
        assert locales.format_number(12345) == "12.345"
        set_language("en")
        assert locales._("critical") == "critical" and locales.format_number(12345) == "12,345"
    finally:
        set_language(None)


def test_demo_next_steps_translate_only_the_explanation() -> None:
    from soc_cli.commands.demo import next_steps

    top = {"event.id": "alert-1", "ztsoc.alert.entity.value": "203.0.113.77"}
    english, vietnamese = locales.in_languages(lambda: next_steps(top), "en", "vi")
    assert [c for c, _w in english] == [c for c, _w in vietnamese]
    assert all(e != v for (_c, e), (_c2, v) in zip(english, vietnamese, strict=True))


def _soc(args: list[str], lang: str, store: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LANG", "SOC_LANG")}
    env.update(SOC_LANG=lang, SOC_STORE=store, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "soc_cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False, input=stdin)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    from eventstore import open_store
    from playbooks.demo import run_demo

    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'soc.db'}"
    store = open_store(url)
    try:
        run_demo(store, folder / "day", flows=150)
    finally:
        store.close()
    return url


@pytest.mark.parametrize("args", [["alerts", "--status", "all", "--json"], ["store", "status", "--json"]])
def test_json_output_is_the_same_in_every_language(demo_store: str, args: list[str]) -> None:
    english, vietnamese = _soc(args, "en", demo_store), _soc(args, "vi", demo_store)
    assert english.returncode == vietnamese.returncode == 0, english.stderr + vietnamese.stderr
    assert json.loads(english.stdout) and english.stdout == vietnamese.stdout


def test_errors_are_translated(demo_store: str) -> None:
    shown = _soc(["hunt", "event.outcome:(", "--since", "1h"], "vi", demo_store)
    assert shown.returncode == 2 and shown.stderr.startswith("lỗi:"), shown.stderr


# --- a real terminal: tmux ----------------------------------------------------------------------

TMUX = shutil.which("tmux")
BOX_ROWS = "┏┃┡│└┗╭╰"
VERTICALS = "┃│╭╮╰╯┏┓┗┛┡┩┳╇┴┬┼╋"


def _run_in_tmux(command: str, until: str, folder: Path, width: int = 160, height: int = 200) -> str:
    assert TMUX is not None
    sock = str(folder / "tmux.sock")  # a private server, its socket in the test's own folder

    def tmux(*args: str) -> str:
        return subprocess.run([TMUX, "-S", sock, "-f", "/dev/null", *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t",
         f"env -u COLUMNS -u LINES -u SOC_LANG -u LANGUAGE -u LC_ALL TERM=xterm-256color LANG=C.UTF-8 {command}; sleep 60")
    try:
        deadline, shown = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-J", "-t", "t")
            if until in shown:
                return shown
            time.sleep(0.3)
        raise AssertionError(f"{until!r} never appeared:\n{shown}")
    finally:
        subprocess.run([TMUX, "-S", sock, "kill-server"], capture_output=True, check=False, timeout=30)


def assert_boxes_aligned(screen: str) -> int:
    """Every box (Rich table or panel) has its vertical lines in the same terminal columns on every row.

    tmux places each character in its own cell; with no combining characters on the screen a
    character's index is its column, so misplaced borders (a width miscounted) show as
    different indices. Returns how many boxes were checked.
    """
    assert not any(unicodedata.combining(ch) for ch in screen), "combining characters on screen"
    boxes, current = [], []
    for line in screen.splitlines():
        row = line.strip()
        if row and row[0] in BOX_ROWS and row[-1] in VERTICALS:
            current.append(line.rstrip())
            if row[0] in "╰└┗":  # the bottom edge: the next box starts afresh
                boxes.append(current)
                current = []
        elif current:
            boxes.append(current)
            current = []
    if current:
        boxes.append(current)
    for box in boxes:
        outer = {len(row) for row in box}
        assert len(outer) == 1, "rows of different widths:\n" + "\n".join(box)
        columns = [{i for i, ch in enumerate(row) if ch in VERTICALS} for row in box if row.lstrip()[0] in "┃│"]
        assert all(c == columns[0] for c in columns), "column borders moved:\n" + "\n".join(box)
    return len(boxes)


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by scripts/system-deps.sh")
def test_help_in_vietnamese_in_tmux(tmp_path: Path) -> None:
    screen = _run_in_tmux(f"SOC_LANG=vi {sys.executable} -m soc_cli.main alerts close --help", "thoát", tmp_path)
    assert "Tùy chọn" in screen and "hàng loạt: mọi cảnh báo khớp chuỗi truy vấn này" in screen, screen
    assert "--reason" in screen and "[bắt buộc]" in screen
    assert assert_boxes_aligned(screen) >= 2


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by scripts/system-deps.sh")
def test_demo_in_vietnamese_in_tmux(tmp_path: Path) -> None:
    command = (f"LANG=vi_VN.UTF-8 {sys.executable} -m soc_cli.main --store sqlite:///{tmp_path}/soc.db demo "
               f"--dir {tmp_path}/day --flows 150")
    screen = _run_in_tmux(command, "soc playbook list", tmp_path)
    for text in ("tạo một ngày làm việc", "thu thập", "quyết định các lời gọi dịch vụ", "phát hiện",
                 "Những gì có trong kho dữ liệu", "Hàng đợi cảnh báo (đang mở)", "mức độ", "thực thể",
                 "Tiếp theo, chuyên viên phân tích sẽ gõ:", "# các cảnh báo đang mở, nghiêm trọng nhất trước",
                 "soc alerts --status open"):
        assert text in screen, f"{text!r} not shown:\n{screen}"
    assert " cao " in screen or " trung bình " in screen  # levels as displayed
    assert "Traceback" not in screen
    assert assert_boxes_aligned(screen) >= 2
    save_screenshot(screen, "soc-demo-vi.svg", "SOC_LANG=vi soc demo (tmux)")


ARTIFACTS = ROOT / "test-artifacts"


def save_screenshot(screen: str, name: str, title: str) -> Path:
    """The tmux screen as an SVG picture (Rich's exporter, Noto/monospace fonts) in test-artifacts/."""
    from rich.console import Console
    from rich.text import Text

    lines = screen.rstrip("\n").splitlines()
    with open(os.devnull, "w") as sink:
        console = Console(record=True, width=max(len(line) for line in lines) + 1, file=sink)
        console.print(Text("\n".join(lines)), soft_wrap=True)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    console.save_svg(str(path), title=title)
    assert path.stat().st_size > 1000
    return path


def test_box_check_catches_a_moved_border() -> None:
    """The alignment check itself: a cell one column too wide, or a combining accent, is caught."""
    good = "┏━━━━┳━━━┓\n┃ ab ┃ c ┃\n┡━━━━╇━━━┩\n│ mứ │ d │\n└────┴───┘"
    assert assert_boxes_aligned(good) == 1
    with pytest.raises(AssertionError):
        assert_boxes_aligned(good.replace("│ mứ │ d │", "│ mứx│ d  │"))
    with pytest.raises(AssertionError):
        assert_boxes_aligned(good.replace("mứ", unicodedata.normalize("NFD", "mứ")))


def test_alert_queue_and_alert_in_vietnamese(demo_store: str) -> None:
    """Headings, level and status names translated; rule ids, ATT&CK ids and ECS values as stored."""
    queue = _soc(["alerts", "--status", "open"], "vi", demo_store)
    assert queue.returncode == 0, queue.stderr
    for text in ("mức độ", "trạng thái", "thực thể", "người xử lý", "đang mở", "ATT&CK"):
        assert text in queue.stdout, f"{text!r} not in:\n{queue.stdout}"
    assert assert_boxes_aligned(queue.stdout) == 1
    top = json.loads(_soc(["alerts", "--status", "open", "--json", "--limit", "1"], "vi", demo_store).stdout)[0]
    shown = _soc(["alerts", "show", top["event.id"]], "vi", demo_store)
    assert shown.returncode == 0, shown.stderr
    for text in ("Bằng chứng", "Lịch sử", "quy tắc", "thời gian ghi nhận", str(top["rule.id"]), top["event.id"]):
        assert text in shown.stdout, f"{text!r} not in:\n{shown.stdout}"
    evidence = _soc(["alerts", "evidence", top["event.id"], "--limit", "3"], "vi", demo_store)
    assert evidence.returncode == 0 and "sự kiện 1-3 trên" in evidence.stdout, evidence.stdout + evidence.stderr
    assert "trang kế với --offset 3" in evidence.stderr


def _shipped_rules() -> dict[str, dict[str, str]]:
    """name -> the English texts of every shipped rule (title, description, guide, response)."""
    import yaml

    out: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "detections" / "rules").glob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                z = doc.get("ztsoc") or {}
                texts = {"title": doc.get("title"), "description": doc.get("description"),
                         "guide": z.get("guide"), "response": z.get("response")}
                out[doc["name"]] = {k: str(v).strip() for k, v in texts.items() if v}
    return out


def test_every_shipped_rule_has_vietnamese_texts() -> None:
    """Title, description, guide and response of each rule; commands in backticks and <placeholders> kept."""
    import yaml

    vietnamese = yaml.safe_load((ROOT / "locales" / "vi" / "rules.yml").read_text(encoding="utf-8"))
    rules = _shipped_rules()
    assert set(vietnamese) == set(rules)
    for name, english in rules.items():
        for key, text in english.items():
            vi = str(vietnamese[name].get(key) or "").strip()
            assert vi and vi != text, f"{name}.{key} not translated"
            assert re.findall(r"`[^`]*`", vi) == re.findall(r"`[^`]*`", text), f"{name}.{key}: commands differ"
            assert set(re.findall(r"<\w+>", vi)) == set(re.findall(r"<\w+>", text)), f"{name}.{key}: placeholders"
            assert unicodedata.normalize("NFC", vi) == vi


def test_rule_texts_shown_in_vietnamese(demo_store: str) -> None:
    top = json.loads(_soc(["alerts", "--status", "open", "--json", "--limit", "1"], "en", demo_store).stdout)[0]
    english = _soc(["alerts", "show", top["event.id"]], "en", demo_store).stdout
    shown = _soc(["alerts", "show", top["event.id"]], "vi", demo_store).stdout
    import yaml

    texts = yaml.safe_load((ROOT / "locales" / "vi" / "rules.yml").read_text(encoding="utf-8"))[top["rule.id"]]
    flat = " ".join(shown.split())
    assert top["rule.name"] in english and texts["title"] in flat and texts["description"].split()[0] in flat
    assert f"quy tắc {texts['title']} ({top['rule.id']})" in flat  # the id stays, the title is translated
    if "guide" in texts:
        assert "Hướng dẫn điều tra" in flat and "Các bước ứng phó" in flat


def test_hunt_store_and_pivot_in_vietnamese(demo_store: str) -> None:
    hunt = _soc(["hunt", "event.dataset:system.auth", "--since", "7d", "--limit", "2"], "vi", demo_store)
    assert hunt.returncode == 0 and "hiển thị 2 trên" in hunt.stdout and "--limit N hoặc --all" in hunt.stderr
    status = _soc(["store", "status"], "vi", demo_store)
    assert status.returncode == 0 and "dung lượng" in status.stdout and "sự kiện" in status.stdout
    pivot = _soc(["pivot", "203.0.113.77", "--since", "7d"], "vi", demo_store)
    assert pivot.returncode == 0 and "tìm dưới dạng ip kể từ 7d: rủi ro" in " ".join(pivot.stdout.split())
    assert "theo tập dữ liệu:" in pivot.stdout and "sự kiện" in pivot.stdout


def test_respond_in_vietnamese(demo_store: str) -> None:
    top = json.loads(_soc(["alerts", "--status", "open", "--json", "--limit", "1"], "en", demo_store).stdout)[0]
    assert top["rule.id"] == "ssh_bruteforce_then_success"
    done = _soc(["respond", top["event.id"], "--answers", "done,yes,done,done,done"], "vi", demo_store)
    assert done.returncode == 0, done.stderr
    flat = " ".join(done.stdout.split())
    for text in ("Khống chế một cuộc dò mật khẩu SSH đã vào được", "Xác nhận lần đăng nhập thành công",
                 "Chuyên viên phân tích SOC đang trực", f"soc pivot {top['ztsoc.alert.entity.value']} --since 24h",
                 "đã ghi 5 bước vào lịch sử của"):
        assert text in flat, f"{text!r} not in:\n{done.stdout}"


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by scripts/system-deps.sh")
def test_triage_tui_in_vietnamese_in_tmux(demo_store: str, tmp_path: Path) -> None:
    command = f"SOC_LANG=vi SOC_ANALYST=lan.pham {sys.executable} -m soc_cli.main --store {demo_store} triage"
    screen = _run_in_tmux(command, "thoát", tmp_path, width=200, height=50)
    for text in ("mức độ", "trạng thái", "người xử lý", "đang mở", "tiếp nhận", "chuyển cấp", "trên"):
        assert text in screen, f"{text!r} not on the triage screen:\n{screen}"
    # the level column's short names: Vietnamese abbreviations, not English's four letters
    assert "tr.bình" in screen or "n.trọng" in screen, screen
    assert not re.search(r"\b(crit|medi|info)\b", screen), screen
    assert "Traceback" not in screen


def test_bulk_change_preview_in_vietnamese(demo_store: str) -> None:
    """The preview and the question in Vietnamese; declining changes nothing.

    The rule is one the demo's incidents raise whatever the hour it runs (sudo_off_hours
    depends on where the generated day's sudo lines fall, so it is absent at some hours).
    """
    declined = _soc(["alerts", "ack", "--query", "rule.id:password_spraying"], "vi", demo_store, stdin="n\n")
    flat = " ".join((declined.stdout + declined.stderr).split())
    assert declined.returncode == 1 and "cảnh báo khớp sẽ thay đổi" in flat and "không có gì thay đổi" in flat, flat
    assert "Dò mật khẩu" not in flat and "Rải mật khẩu từ một nguồn" in flat  # the rule's title, translated


def test_detect_run_summary_in_vietnamese(demo_store: str) -> None:
    shown = _soc(["detect", "run", "--since", "2h"], "vi", demo_store)
    flat = " ".join(shown.stdout.split())
    assert shown.returncode == 0 and "sự kiện từ" in flat and "cảnh báo mới" in flat, shown.stdout + shown.stderr


def test_ingest_report_in_vietnamese(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("Nov 20 23:00:01 web01 sshd[1]: Failed password for root from 10.9.9.9 port 4000 ssh2\n"
                   "this line is not syslog\n", encoding="utf-8")
    shown = _soc(["ingest", "syslog", str(log), "--year", "2026"], "vi", f"sqlite:///{tmp_path / 'soc.db'}")
    flat = " ".join(shown.stdout.split())
    for text in ("tệp", "đã có trong kho", "tổng: 1 tệp", "thấy lần đầu tại",
                 "không có phần đầu syslog", "dòng 2 (byte"):  # the collector's reason and position
        assert text in flat, f"{text!r} not in:\n{shown.stdout}{shown.stderr}"


def test_rules_commands_in_vietnamese(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'soc.db'}"
    validate = _soc(["rules", "validate"], "vi", store)
    assert validate.returncode == 0 and "quy tắc dùng được, 0 lỗi" in validate.stdout, validate.stdout + validate.stderr
    coverage = _soc(["rules", "coverage"], "vi", store)
    assert coverage.returncode == 0 and "kỹ thuật ATT&CK" in " ".join(coverage.stdout.split()), coverage.stderr
    listed = " ".join(_soc(["rules", "list"], "vi", store).stdout.split())
    assert "mã quy tắc" in listed and "Truy vấn DNS có nhãn dài" in listed and "thông tin" in listed, listed


def test_scan_summary_in_vietnamese(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(f"Nov 20 23:00:{i:02d} web01 sshd[{i}]: Failed password for invalid user u{i} from "
                           f"10.9.9.9 port {4000 + i} ssh2\n" for i in range(12)), encoding="utf-8")
    shown = _soc(["scan", str(log)], "vi", f"sqlite:///{tmp_path / 'soc.db'}")
    flat = " ".join((shown.stdout + shown.stderr).split())
    assert "kết quả khớp của" in flat and "theo mức độ:" in flat, flat


def test_ml_lines_in_vietnamese(tmp_path: Path) -> None:
    shown = _soc(["ml", "models", "--models", str(tmp_path / "none")], "vi", f"sqlite:///{tmp_path / 'soc.db'}")
    assert "các mô hình trong" in " ".join(shown.stdout.split()), shown.stdout + shown.stderr
    score = _soc(["ml", "score", "--models", str(tmp_path / "none"), "--since", "1h"], "vi",
                 f"sqlite:///{tmp_path / 'soc.db'}")
    assert score.returncode == 2 and "lỗi: không có mô hình dùng được" in score.stderr, score.stderr


# --- the CLI's own lines, headings, usage errors and errors raised below it (issue 18, CLI side) -----

EXAMPLES = ROOT / "policy" / "examples"
EXPLAIN = ["policy", "explain", str(EXAMPLES / "request.json"), "-p", str(EXAMPLES), "--no-store-risk"]


@pytest.mark.parametrize("args", [["rules", "list", "--json"], ["playbook", "list", "--json"],
                                  ["policy", "test", str(EXAMPLES / "tests.yaml"), "--json"],
                                  [*EXPLAIN[:-1], "--json"]])
def test_json_keys_do_not_change_with_the_language(demo_store: str, args: list[str]) -> None:
    """Tables say their headings in Vietnamese; JSON keeps the keys (and ECS names) in every language,
    and its values too, but for the exercises' titles, which are the exercise's text in that language."""
    english, vietnamese = _soc(args, "en", demo_store), _soc(args, "vi", demo_store)
    assert english.returncode == vietnamese.returncode, english.stderr + vietnamese.stderr
    keys = [[sorted(row) for row in json.loads(out.stdout)] for out in (english, vietnamese)]
    assert keys[0] and keys[0] == keys[1]
    if args[0] != "playbook":
        assert english.stdout == vietnamese.stdout


def test_table_headings_are_display_names(demo_store: str) -> None:
    english, vietnamese = _soc(EXPLAIN, "en", demo_store), _soc(EXPLAIN, "vi", demo_store)
    for heading in ("rule", "effect", "matched", "failed", "detail", "where"):
        assert f" {heading} " in english.stdout, heading  # English: the keys, as before
    for heading in ("quy tắc", "hiệu lực", "khớp", "điều kiện không đạt", "chi tiết", "vị trí"):
        assert heading in vietnamese.stdout, heading
    assert "TỪ CHỐI" in vietnamese.stdout and "DENY" in english.stdout
    assert "không quy tắc cho phép nào khớp (mặc định từ chối)" in vietnamese.stdout  # the engine's reason
    assert "no allow rule matched (default deny)" in english.stdout
    assert "suýt khớp: payments/finance-reads-ledger (" in vietnamese.stdout and ") không đạt ở method" in vietnamese.stdout
    listing = _soc(["playbook", "list"], "vi", demo_store).stdout
    assert all(h in listing for h in ("mã", "tiêu đề", "độ khó", "câu hỏi", "điểm")), listing


def test_every_listing_column_has_a_display_name() -> None:
    """A column key written in a command's listing has its Vietnamese heading (``soc_cli.labels.HEADINGS``)."""
    import ast

    from soc_cli.labels import HEADINGS

    kept = {"z", "dsl"}  # a statistic's symbol and the query DSL's own name read the same in Vietnamese
    missing = []
    for path in sorted((ROOT / "soc_cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("emit", "table", "emit_table") \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.List | ast.Tuple):
                for col in node.args[1].elts:
                    if isinstance(col, ast.Constant) and col.value not in HEADINGS and col.value not in kept:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {col.value!r}")
    assert not missing, "columns without a display name in soc_cli/labels.py HEADINGS:\n" + "\n".join(missing)


def test_no_message_is_marked_inside_an_f_string() -> None:
    """Babel cannot see ``_()`` inside an f-string on Python < 3.12 (one STRING token): such a message
    would never reach the catalog and stay English. Take it out into a variable first."""
    import ast

    found = []
    for package in ("soc_cli", "playbooks", "locales", "dashboards", "detections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.JoinedStr):
                    found += [f"{path.relative_to(ROOT)}:{sub.lineno}: {ast.unparse(sub)}" for sub in ast.walk(node)
                              if isinstance(sub, ast.Call) and getattr(sub.func, "id", None) in KEYWORDS]
    assert not found, "\n".join(found)


def test_usage_errors_in_vietnamese(demo_store: str) -> None:
    """Typer's own messages (its copy of click has no gettext): the usage line, the help hint, the error."""
    shown = _soc(["policy", "lint"], "vi", demo_store)
    assert shown.returncode == 2
    lines = shown.stderr.splitlines()
    assert lines[0].startswith("Cách dùng: soc policy lint [OPTIONS]"), shown.stderr
    assert lines[1] == "Thử 'soc policy lint --help' để xem trợ giúp.", shown.stderr
    assert lines[2].startswith("lỗi: Thiếu đối số '"), shown.stderr
    english = _soc(["policy", "lint"], "en", demo_store)
    assert english.returncode == 2 and english.stderr.splitlines()[1] == "Try 'soc policy lint --help' for help."
    assert english.stderr.splitlines()[2].startswith("error: Missing argument '")
    typo = _soc(["polic"], "vi", demo_store)
    assert typo.returncode == 2 and "lỗi: Không có lệnh 'polic'. Có phải ý bạn là 'policy'?" in typo.stderr
    option = _soc(["hunt", "--bogus"], "vi", demo_store)
    assert option.returncode == 2 and "lỗi: Không có tùy chọn: --bogus" in option.stderr
    since = _soc(["alerts", "--since", "yesterdayish"], "vi", demo_store)
    assert "không phải thời điểm: 'yesterdayish'" in since.stderr, since.stderr  # our own message, inside Typer's
    assert "Cách dùng:" in _soc(["policy", "lint", "--help"], "vi", demo_store).stdout
    number = _soc(["hunt", "--limit", "abc"], "vi", demo_store)  # the words of Typer's copy of click
    assert "lỗi: Giá trị không hợp lệ cho '--limit': 'abc' không phải số nguyên hợp lệ." in number.stderr, number.stderr
    jobs = _soc(["scan", ".", "--jobs", "0"], "vi", demo_store)  # a bounded option (min=1)
    assert jobs.returncode == 2 and "lỗi: Giá trị không hợp lệ cho '--jobs' / '-j': 0 không nằm trong khoảng x>=1." \
        in " ".join(jobs.stderr.split()), jobs.stderr


def test_errors_raised_below_the_cli_in_vietnamese(demo_store: str, tmp_path: Path) -> None:
    """eventstore's, policy's and the query parser's messages, translated where a person reads them."""
    store = _soc(["--store", "foo://x", "store", "status"], "vi", demo_store)
    assert store.returncode == 2
    assert store.stderr.startswith("lỗi: không biết URL kho dữ liệu 'foo://x': cần một trong "), store.stderr
    assert _soc(["--store", "foo://x", "store", "status"], "en", demo_store).stderr.startswith(
        "error: unknown store URL 'foo://x': expected one of ")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    policy = _soc([*EXPLAIN[:3], "-p", str(bad), "--no-store-risk"], "vi", demo_store)
    assert policy.returncode == 2 and f"lỗi: {bad}:2: lỗi: cú pháp YAML: " in policy.stderr, policy.stderr
    query = _soc(["hunt", "source.ip:10.0.0.*", "--since", "all"], "vi", demo_store)
    assert query.returncode == 2, query.stderr
    assert query.stderr.startswith("lỗi: truy vấn sai ở vị trí 10: ký tự đại diện không áp dụng cho trường ip "
                                   "'source.ip': hãy dùng khối CIDR"), query.stderr
    missing = _soc(["policy", "lint", str(tmp_path / "missing.yaml")], "vi", demo_store)
    assert missing.returncode == 1
    assert ":0: lỗi: không đọc được: [Errno 2] Không có tệp hay thư mục: '" in missing.stdout, missing.stdout
    alert = _soc(["alerts", "show", "alert-does-not-exist"], "vi", demo_store)
    assert alert.returncode == 2 and "alert-does-not-exist" in alert.stderr and "không có" in alert.stderr, alert.stderr


@pytest.mark.skipif(TMUX is None, reason="tmux is installed by scripts/system-deps.sh")
def test_translated_headings_aligned_in_tmux(tmp_path: Path) -> None:
    """``soc policy explain`` in a real terminal: Vietnamese headings and level names, every border in line."""
    command = " ".join(["SOC_LANG=vi", sys.executable, "-m", "soc_cli.main", *EXPLAIN, "&& echo", "XONG"])
    screen = _run_in_tmux(command, "XONG", tmp_path, width=150, height=80)
    for text in ("TỪ CHỐI", "quy tắc", "hiệu lực", "điều kiện không đạt", "vị trí", "từ chối", "cho phép"):
        assert text in screen, f"{text!r} not on screen:\n{screen}"
    assert assert_boxes_aligned(screen) >= 1
    save_screenshot(screen, "soc-policy-explain-vi.svg", "SOC_LANG=vi soc policy explain")


def test_tail_summary_in_vietnamese(tmp_path: Path) -> None:
    """``soc tail`` follows until SIGTERM, then says what it read in Vietnamese (numbers the Vietnamese way)."""
    import signal

    log = tmp_path / "auth.log"
    log.write_text("Nov 24 10:00:01 host sshd[1]: Failed password for root from 203.0.113.7 port 22 ssh2\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LANG", "SOC_LANG")}
    env.update(SOC_LANG="vi", SOC_STORE=f"sqlite:///{tmp_path / 'soc.db'}")
    proc = subprocess.Popen([sys.executable, "-m", "soc_cli.main", "tail", str(log), "--year", "2026",
                             "--interval", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        import select

        ready, _w, _x = select.select([proc.stdout], [], [], 120)  # never hang on a follower that says nothing
        assert ready, "soc tail printed nothing in 120 s"
        first = proc.stdout.readline()  # the stored event: the follower is running
        assert "ssh_login" in first and "source.ip=203.0.113.7" in first
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "tail: đã đọc 1 sự kiện, 1 sự kiện mới, 0 vấn đề" in err, err
