"""Exercises in Vietnamese: every shipped exercise has a complete ``vi`` overlay, an overlay only
changes texts (answers are checked the same way), free-text answers accept Vietnamese with or
without diacritics, and one exercise is played start to finish in Vietnamese through ``soc``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from locales import in_languages, set_language
from playbooks.answers import check, fold
from playbooks.exercise import (
    PLACEHOLDER,
    SHIPPED,
    ExerciseError,
    _text_pairs,
    load_exercise,
    overlay_path,
)

SHIPPED_FILES = sorted(SHIPPED.glob("*.yml"))


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: p.stem)
def test_every_exercise_has_a_complete_vietnamese_overlay(path: Path) -> None:
    assert overlay_path(path, "vi").is_file(), f"no playbooks/exercises/vi/{path.name}"
    english, vietnamese = load_exercise(path, "en"), load_exercise(path, "vi")
    for where, en, vi in _text_pairs(english, vietnamese):
        assert vi != en, f"{path.name}: {where} is not translated"
        assert re.search(r"[ăâđêôơưàáảãạèéẻẽẹìíỉĩịòóỏõọùúủũụỳýỷỹỵ]", vi, re.I), f"{where}: no Vietnamese letters"
        assert set(PLACEHOLDER.findall(vi)) == set(PLACEHOLDER.findall(en)), f"{path.name}: {where} placeholders"
    # only texts change: the incident, answers and solutions are the exercise's own
    assert [(q.answer, q.solution, q.points) for q in english.questions] == \
        [(q.answer, q.solution, q.points) for q in vietnamese.questions]
    assert (english.params, english.draws, english.seed) == (vietnamese.params, vietnamese.draws, vietnamese.seed)


def test_the_language_comes_from_the_environment_by_default() -> None:
    path = SHIPPED / "ssh-brute-force.yml"
    try:
        set_language("vi")
        assert load_exercise(path).title == "Gõ cửa máy chủ trung gian"
        set_language("en")
        assert load_exercise(path).title == "Knocking on the jump host"
    finally:
        set_language(None)


def _with_overlay(tmp_path: Path, overlay: str) -> Path:
    source = SHIPPED / "password-spray.yml"
    (tmp_path / "vi").mkdir()
    (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "vi" / source.name).write_text(overlay, encoding="utf-8")
    return tmp_path / source.name


def test_an_overlay_with_an_extra_question_names_file_and_line(tmp_path: Path) -> None:
    path = _with_overlay(tmp_path, "id: password-spray\nquestions:\n  - text: a\n  - text: b\n  - text: c\n"
                                   "  - text: d\n")
    with pytest.raises(ExerciseError, match=r"vi/password-spray.yml:6: questions: the exercise has 3"):
        load_exercise(path, "vi")


def test_an_overlay_naming_an_unknown_draw_is_refused(tmp_path: Path) -> None:
    path = _with_overlay(tmp_path, "id: password-spray\nhints:\n  - text: 'xem ${nothing}'\n")
    with pytest.raises(ExerciseError, match=r"vi/password-spray.yml:3: hints.0"):
        load_exercise(path, "vi")


def test_an_overlay_of_another_exercise_is_refused(tmp_path: Path) -> None:
    path = _with_overlay(tmp_path, "id: dns-tunnel\ntitle: x\n")
    with pytest.raises(ExerciseError, match=r":1: id"):
        load_exercise(path, "vi")


def test_a_partial_overlay_keeps_the_english_of_what_it_leaves_out(tmp_path: Path) -> None:
    path = _with_overlay(tmp_path, "id: password-spray\nquestions:\n  - text: Từ địa chỉ nào?\n")
    ex = load_exercise(path, "vi")
    assert ex.questions[0].text == "Từ địa chỉ nào?" and ex.questions[1].text.startswith("How many")
    assert ex.title == "One password, many accounts"


@pytest.mark.parametrize(("given", "ok"), [
    ("tấn công dò mật khẩu", True), ("tan cong do mat khau", True), ("TẤN CÔNG DÒ MẬT KHẨU", True),
    ("Tan Cong Do Mat Khau", True), ("tấn công dò mật khẩu ", True), ("tan cong", False),
])
def test_free_text_answers_accept_vietnamese_with_or_without_diacritics(given: str, ok: bool) -> None:
    assert check({"kind": "exact", "value": "Tấn công dò mật khẩu"}, given) is ok
    assert check({"kind": "one_of", "values": ["rải mật khẩu", "tấn công dò mật khẩu"]}, given) is ok


def test_folding() -> None:
    assert fold("Đường hầm DNS") == "duong ham dns"
    # a case-sensitive answer (a command line) is compared exactly, as before
    key = {"kind": "exact", "value": "/bin/cat /etc/shadow", "case_sensitive": True}
    assert check(key, "/bin/cat /etc/shadow") and not check(key, "/BIN/cat /etc/shadow")


def _soc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "soc_cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


def test_an_exercise_played_start_to_finish_in_vietnamese(tmp_path: Path) -> None:
    main = f"sqlite:///{tmp_path / 'main.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "SOC_LANG")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), SOC_STORE=main, SOC_TRAINEE="lan.pham", COLUMNS="200",
               LANG="vi_VN.UTF-8")
    start = _soc(env, "playbook", "start", "ssh-brute-force")
    assert start.returncode == 0, start.stderr
    played = load_exercise(SHIPPED / "ssh-brute-force.yml", "vi").instance()
    for text in (played.title, "Trỏ các lệnh của bạn tới kho dữ liệu riêng của bài tập:",
                 f"Qua đêm, máy chủ trung gian {played.params['host']}", "1. Cuộc dò mật khẩu (brute force)",
                 "(10 điểm)"):
        assert text in start.stdout, f"{text!r} not in:\n{start.stdout}"
    exported = re.search(r"export SOC_STORE=(\S+)", start.stdout)
    assert exported
    env["SOC_STORE"] = exported.group(1)

    wrong = _soc(env, "playbook", "answer", "2", "root")
    assert wrong.returncode == 1 and "chưa đúng" in wrong.stdout
    hint = _soc(env, "playbook", "hint", "2")
    taken = played.hints_for(2)[0]
    assert hint.returncode == 0
    assert f"gợi ý {taken.number} (trừ {taken.cost} điểm của câu hỏi 2)" in " ".join(hint.stdout.split())
    assert "cho thấy mọi việc địa chỉ đó đã làm" in hint.stdout
    for q in played.questions:
        done = _soc(env, "playbook", "answer", str(q.number), str(q.answer["value"]))
        assert done.returncode == 0 and "đúng" in done.stdout, done.stdout + done.stderr
    status = _soc(env, "playbook", "status")
    assert "học viên lan.pham" in status.stdout and "gợi ý 1/3" in status.stdout
    score = _soc(env, "playbook", "score")
    assert score.returncode == 0, score.stderr
    total = played.max_points - played.hints_for(2)[0].cost
    out = " ".join(score.stdout.split())
    assert f"lan.pham: {total}/{played.max_points} điểm (đã trả lời 4/4" in out, out
    assert "Tổng kết" in out and f"{played.params['attempts']} lần đoán, một lần thành công" in out
    missing = _soc(env, "playbook", "hint", "9")
    assert missing.returncode == 2 and "lỗi:" in missing.stderr and "không có câu hỏi 9" in missing.stderr


RESPONSE_FILES = sorted((SHIPPED.parent / "response").glob("*.yml"))


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=lambda p: p.stem)
def test_every_response_playbook_has_a_complete_vietnamese_overlay(path: Path) -> None:
    """Name, description, agents and every step's texts; variables (__entity__) and commands kept."""
    from playbooks.response import STEP_TEXTS, load_response

    assert (path.parent / "vi" / path.name).is_file()
    english, vietnamese = in_languages(lambda: load_response(path), "en", "vi")
    assert vietnamese.name != english.name and vietnamese.description != english.description
    assert vietnamese.id == english.id and vietnamese.start == english.start
    for agent, info in english.agents.items():
        assert vietnamese.agents[agent]["name"] != info.get("name"), agent
    for step_id, step in english.workflow.items():
        translated = vietnamese.workflow[step_id]
        assert {k: v for k, v in translated.items() if k not in STEP_TEXTS} == \
            {k: v for k, v in step.items() if k not in STEP_TEXTS}, step_id  # commands, links: the same
        for key in STEP_TEXTS:
            if key in step:
                assert translated[key] != step[key], f"{step_id}.{key} not translated"
                assert re.findall(r"__\w+__", translated[key]) == re.findall(r"__\w+__", step[key])


@pytest.mark.parametrize(("typed", "value", "lang", "right"), [
    ("41.720", 41720, "vi", True),    # a Vietnamese trainee writes thousands with a dot
    ("41.720", 41720, "en", False),   # in English that is 41.72
    ("41,720", 41720, "vi", True),    # the English habit is understood in Vietnamese too
    ("41,720", 41720, "en", True),
    ("2,5", 2.5, "vi", True),         # the decimal comma
    ("2.5", 2.5, "vi", True),
    ("2,5", 2.5, "en", False),        # English drops the comma: 25
    ("4.1720", 41720, "vi", False),   # misplaced grouping is no number (Babel's strict parse)
    ("bốn mươi", 40, "vi", False),
])
def test_number_answers_as_the_trainee_writes_them(typed: str, value: float, lang: str, right: bool) -> None:
    set_language(lang)
    try:
        assert check({"kind": "number", "value": value}, typed) is right
    finally:
        set_language(None)
