"""``soc_cli.safe_text``: the one sanitiser, against Rich's own markup parser and the JSON decoder."""

from __future__ import annotations

import io
import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from soc_cli.output import SafeConsole
from soc_cli.safe_text import UNSAFE_CATEGORIES, esc, json_safe, safe, visible

# every kind of character, with the dangerous ones (C0, DEL, C1, bidi, markup brackets) over-represented
DANGER = "\x1b\x07\x9b\x9d\x00\x7f\t\n\r\u202e\u2066\u200b\u2028\ud800\U000e0041[]/\\:"
texts = st.text(st.one_of(st.characters(codec=None), st.sampled_from(DANGER)), max_size=60)


def _clean(text: str) -> bool:
    return not any(unicodedata.category(ch) in UNSAFE_CATEGORIES for ch in text)


def test_examples() -> None:
    assert visible("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert visible("tab\tnl\n\x9b\u202e\U000e0041") == "tab\\tnl\\n\\x9b\\u202e\\U000e0041"
    assert visible("Nguyễn Văn A DOMAIN\\user") == "Nguyễn Văn A DOMAIN\\user"  # kept as is
    assert visible("a\nb", multiline=True) == "a\nb"
    assert safe("[red]x[/red]").plain == "[red]x[/red]" and safe("[red]x[/red]").spans == []
    assert Text.from_markup(esc("[/] [link=http://e]y[/link] :thumbs_up:"), emoji=False).plain == \
        "[/] [link=http://e]y[/link] :thumbs_up:"


@settings(max_examples=400, deadline=None)
@given(texts)
def test_visible_leaves_nothing_unsafe_and_only_adds(text: str) -> None:
    shown = visible(text)
    assert _clean(shown)
    assert shown == text or len(shown) > len(text)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_esc_is_literal_under_rich_markup(text: str) -> None:
    """Rich's parser, given ``esc(value)``, gives back exactly the visible value: no tag, no crash."""
    expected = visible(text)
    if expected.endswith("\\"):
        expected = expected[:-1] + "\\x5c"
    rendered = Text.from_markup(esc(text), emoji=False)
    assert rendered.plain == expected
    assert rendered.spans == []
    framed = Text.from_markup(f"[bold]{esc(text)}[/bold][red]![/]", emoji=False)  # a tag right after it
    assert framed.plain == expected + "!"
    spans = {(s.start, s.end, str(s.style)) for s in framed.spans if s.end > s.start}
    assert spans == {(0, len(expected), "bold"), (len(expected), len(expected) + 1, "red")} - {(0, 0, "bold")}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(texts, st.one_of(texts, st.integers(), st.lists(texts, max_size=3)), max_size=4))
def test_json_safe_is_the_same_json(doc: dict[str, object]) -> None:
    out = json_safe(json.dumps(doc, ensure_ascii=False))
    assert all(ch == "\n" or unicodedata.category(ch) not in UNSAFE_CATEGORIES for ch in out)
    assert json.loads(out) == doc


@settings(max_examples=200, deadline=None)
@given(texts)
def test_the_console_backstop(text: str) -> None:
    """A renderable built without ``safe`` still reaches the terminal with its controls visible."""
    buf = io.StringIO()
    console = SafeConsole(file=buf, force_terminal=True, color_system="truecolor", width=200)
    console.print(Text(text, style="bold"), end="")
    written = buf.getvalue()
    body = written.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert "\x1b" not in body and _clean(body.replace("\n", ""))
