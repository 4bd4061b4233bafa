"""``locales.raised``: messages raised below the CLI found in the source and translated where shown.

The English f-string and the matcher are two implementations of one message that must agree:
every template found in the source is rendered with generated values the way its f-string
would, and the Vietnamese must carry those values back out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import locales
from locales.raised import CONTEXT, found_in, template_of, translated
from soc_cli.i18n import raised_messages

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vietnamese() -> Iterator[None]:
    locales.set_language("vi")
    yield
    locales.set_language(None)


def _template(code: str) -> str | None:
    return template_of(ast.parse(code, mode="eval").body)


def test_an_f_string_becomes_a_template_named_after_its_values() -> None:
    assert _template('f"unknown engine {engine!r}: expected one of {\', \'.join(ENGINES)}"') == \
        "unknown engine {engine}: expected one of {ENGINES}"
    assert _template('f"give two sets (got {len(sets)}) at {self.path} {data[\'id\']} {x + 1}"') == \
        "give two sets (got {n}) at {path} {id} {value}"
    assert _template('f"{a} and {b.a} and {a}"') == "{a} and {a2} and {a}"  # one name per expression
    assert _template('"literal {braces}"') == "literal {{braces}}"
    assert _template("'a' + b") is None


def test_found_in_reads_raises_and_policy_issues(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text('def f(x, path):\n'
                      '    if x:\n'
                      '        raise ValueError(f"bad thing {x!r} in {path}")\n'
                      '    issues.append(Issue(path, 3, f"duplicate key {x!r}"))\n'
                      '    raise ValueError(f"{path}: {x}")\n'  # a location and a message: no words, not a template
                      '    raise KeyError(x)\n')
    found = {(f.template, f.where) for f in found_in([source], tmp_path)}
    assert found == {("bad thing {x} in {path}", "pkg/mod.py:3"), ("duplicate key {x}", "pkg/mod.py:4")}


def test_translated_fills_values_keeps_locations_and_leaves_the_unknown(vietnamese: None) -> None:
    assert translated("no alert with id 'alert-9'") == "không có cảnh báo nào mã 'alert-9'"
    # a location before a message is kept; a message inside a message is translated too
    assert translated("rules/x.yml:12: duplicate key 'a'") == "rules/x.yml:12: khóa trùng lặp 'a'"
    assert translated("p.yaml: cannot read: no such file or folder: x") == \
        "p.yaml: không đọc được: không có tệp hay thư mục: x"
    assert translated("something a library said") == "something a library said"
    assert translated("") == ""


def test_english_is_left_exactly_as_raised() -> None:
    locales.set_language("en")
    try:
        assert translated("no alert with id 'alert-9'") == "no alert with id 'alert-9'"
    finally:
        locales.set_language(None)


@lru_cache(maxsize=1)
def _templates() -> list[str]:
    return sorted(raised_messages(ROOT))


#: values as an f-string would interpolate them: repr()s, paths, numbers, text with spaces and colons
VALUES = st.one_of(st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=12),
                   st.integers(0, 10**6).map(str), st.text("abc/._-", min_size=1, max_size=10).map(repr))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_raised_message_round_trips_through_its_translation(data: st.DataObject) -> None:
    """Each message found in the source, rendered with generated values, comes out in Vietnamese carrying
    every value (the Vietnamese names the same placeholders, the matcher finds them back)."""
    import string

    template = data.draw(st.sampled_from(_templates()))
    names = [f for _l, f, _s, _c in string.Formatter().parse(template) if f is not None]
    values = {name: f"⟨{data.draw(VALUES)}⟩" for name in names}  # brackets: a value never reads as words
    english = template.format(**values)
    locales.set_language("vi")
    try:
        vietnamese = translated(english)
        catalog = locales.translations("vi")
        expected = catalog.pgettext(CONTEXT, template)
    finally:
        locales.set_language(None)
    assert vietnamese != english or expected == template, template
    for value in values.values():
        assert value in vietnamese, (template, english, vietnamese)


def test_every_raised_message_is_recognised_with_plain_values() -> None:
    """All of them, once each (the generated test above draws a sample): none is taken by another template."""
    import string

    locales.set_language("vi")
    try:
        wrong = []
        for template in _templates():
            names = [f for _l, f, _s, _c in string.Formatter().parse(template) if f is not None]
            values = {name: f"⟨v{i}⟩" for i, name in enumerate(names)}
            expected = locales.translations("vi").pgettext(CONTEXT, template).format(**values)
            got = translated(template.format(**values))
            if got != expected:
                wrong.append(f"{template!r}: {got!r} != {expected!r}")
    finally:
        locales.set_language(None)
    assert not wrong, "\n".join(wrong)


def test_listed_decision_reasons_are_still_written_by_the_policy_engine() -> None:
    """``soc_cli.i18n.DECISION_REASONS`` repeats f-strings of the engine: each must still be there."""
    from soc_cli.i18n import DECISION_REASONS

    written = set()
    for path in (ROOT / "policy" / "engine.py", ROOT / "policy" / "admin" / "explain.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr | ast.Constant):
                template = template_of(node)
                if template:
                    written.add(template)
    assert set(DECISION_REASONS) <= written, set(DECISION_REASONS) - written


#: bad policies (tests/test_policy_schema_messages.py's and a few more) -> every schema message kind
BAD_POLICY_RULES = (
    "  - name: office\n    effect: allow\n    destination: {services: [s]}\n    when: {time: {from: 9am, to: '17:00'}}\n",
    "  - name: a\n    efect: allow\n    destination: {services: [s], methods: [GETT]}\n",
    "  - name: Bad\n    effect: allow\n    destination: {services: s}\n    when: {time: {from: '09:00'}, claims: {}}\n",
    "  - name: b\n    effect: permit\n    destination: {services: [s], paths: [nope]}\n    zzz: 1\n",
    "  - effect: allow\n",  # no name: the rule by its number
)
#: words of policy.schema_messages that must not be left in a Vietnamese message
ENGLISH = ("unknown key", "did you mean", "allowed here", "is not allowed", "use one of", "use HH:MM", "missing",
           "should be", "needs", "is empty", "give at least", "too small", "use lower-case", "a path starts",
           "expected form", "rule '", "(top)")


@pytest.mark.parametrize("body", BAD_POLICY_RULES)
def test_policy_schema_messages_are_translated_whole(tmp_path: Path, body: str) -> None:
    """The schema messages are put together from parts in policy.schema_messages, not raised: the real
    lint output under Vietnamese has none of their English left (a reworded part there fails here)."""
    from policy.admin.lint import lint
    from soc_cli.errors import issue_text

    (tmp_path / "p.yaml").write_text("apiVersion: ztsoc/v1\nkind: Policy\nname: t\nrules:\n" + body)
    issues = [i for i in lint([tmp_path]) if i.severity == "error"]
    assert issues
    locales.set_language("vi")
    try:
        shown = [issue_text(i) for i in issues]
    finally:
        locales.set_language(None)
    for text, issue in zip(shown, issues, strict=True):
        left = [w for w in ENGLISH if w in text]
        assert not left, f"{issue.message!r} -> {text!r}: {left} left in English"
        assert text.startswith(f"{issue.file}:{issue.line}: lỗi: ")


class _CountingRegex:
    """A template's regex that counts the texts given to it."""

    def __init__(self, regex: object, calls: list[str]) -> None:
        self.regex, self.calls = regex, calls

    def fullmatch(self, text: str) -> object:
        self.calls.append(text)
        return self.regex.fullmatch(text)  # type: ignore[attr-defined]


def test_an_attacker_written_message_costs_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message quotes values an attacker may write. ``a: `` repeated 341 times once cost every
    template against every ``: ``-suffix, recursively (over a minute); now only templates whose
    literal text it holds are tried, at most a few locations deep, and a longer text stays as it is."""
    import dataclasses

    import locales.raised as raised

    calls: list[str] = []
    counted = tuple(dataclasses.replace(p, regex=_CountingRegex(p.regex, calls))  # type: ignore[arg-type]
                    for p in raised.patterns("vi"))
    monkeypatch.setattr(raised, "patterns", lambda lang: counted)
    hostile = "a: " * 341
    assert translated(hostile, lang="vi") == hostile
    assert len(calls) < 100, len(calls)
    calls.clear()
    longer = "x: " * (raised.MAX_TEXT // 3 + 1)
    assert translated(longer, lang="vi") == longer and calls == []
    # the bounds keep real messages: a location, then a message that carries one
    assert translated("rules/x.yml:12: duplicate key 'a'", lang="vi") == "rules/x.yml:12: khóa trùng lặp 'a'"
