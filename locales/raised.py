"""Messages raised below the CLI (store, collectors, detections, policy), in the interface language.

Why not ``_()`` where they are raised: ``eventstore`` imports none of ours (ARCHITECTURE.md),
an exception's text also goes to logs and to other programs, where it must stay English, and
the packages below the CLI should not know that a person reads them in Vietnamese. So the
English text is the message's id, and the translation happens once, where a person reads
it (``soc_cli.errors``):

- ``make i18n`` (and the completeness test) finds every message raised in those packages
  by reading their source: the first argument of ``raise SomeError(...)``, the message of a
  policy ``Issue(file, line, message)`` and a collector's problem (``CARRIERS``), a literal or
  an f-string. Each f-string becomes a
  template whose placeholders are named after what is interpolated (``f"unknown engine
  {engine!r}"`` -> ``unknown engine {engine}``). They go into the catalog with the context
  ``raised`` and need a translation like any other message.
- ``translated(text)`` matches a message against those templates (the catalog is the list:
  nothing else to keep in step), fills the translation with the values the English text
  carried, themselves translated when they are messages too (``cannot read x: <a raised
  message>``), and keeps a location prefix (``file.yml:3: ...``) as it is. A text that matches
  nothing (a library's own message, a changed wording not yet in the catalog) is shown as it is.

Hand-written because Babel's extractor takes only literals in marked calls, and gettext has
no lookup from a formatted message back to its template.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from locales import SOURCE_LANGUAGE, current_language, translations

CONTEXT = "raised"
#: the packages whose raised messages a person reads through ``soc`` (``playbooks`` and ``soc_cli`` use
#: ``_()`` too; a message they raise as a plain f-string is found the same way)
PACKAGES: tuple[str, ...] = ("eventstore", "collectors", "detections", "policy", "playbooks", "soc_cli")
#: a template must say something besides its values (``f"{path}: {exc}"`` is a location and a message)
WORDS = re.compile(r"[A-Za-z]{3,}")
#: calls whose arguments at these positions (or keywords) are messages a person reads: a policy
#: problem's message, a collector's problem (why, and where in the file: "line 12 (byte 3456)")
CARRIERS: dict[str, tuple[tuple[int, str], ...]] = {
    "Issue": ((2, "message"),), "ReadProblem": ((1, "position"), (2, "reason")), "Problem": ((1, "reason"),),
}
MAX_DEPTH = 3
#: Bounds on the work one message may cost: a message quotes values an attacker may write (a log
#: line, a file name, a policy value), and matching every template against every ``: ``-suffix,
#: recursively, grew past a minute for a 1,200-character message of repeated ``a: ``. Real
#: messages are short and have a location or two before them; longer ones stay as written.
MAX_TEXT = 1024
MAX_LOCATION_PARTS = 4


@dataclass(frozen=True)
class Found:
    """One message in the source: its template (the msgid) and where it is raised."""

    template: str
    where: str


def _name(expr: ast.expr) -> str:
    """A placeholder's name: what the f-string interpolates, as a translator would call it."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    if isinstance(expr, ast.Subscript):
        key = expr.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.isidentifier():
            return key.value
        return _name(expr.value)
    if isinstance(expr, ast.Call):
        if isinstance(expr.func, ast.Name) and expr.func.id == "len":
            return "n"
        if expr.args:
            return _name(expr.args[0])
        return _name(expr.func)
    return "value"


def template_of(node: ast.expr) -> str | None:
    """The msgid of a literal or an f-string message (None for anything built otherwise)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(node, ast.JoinedStr):
        return None
    parts: list[str] = []
    names: dict[str, str] = {}  # expression -> its placeholder's name
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
        elif isinstance(value, ast.FormattedValue):
            expr = ast.unparse(value.value)
            if expr not in names:
                base = name = _name(value.value).strip("_") or "value"
                n = 1
                while name in names.values():
                    n += 1
                    name = f"{base}{n}"
                names[expr] = name
            parts.append("{" + names[expr] + "}")
        else:
            return None
    return "".join(parts)


def _message_nodes(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
        yield node.exc.args[0]
    if isinstance(node, ast.Call):
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for pos, keyword in CARRIERS.get(func, ()):
            arg = node.args[pos] if len(node.args) > pos else next(
                (k.value for k in node.keywords if k.arg == keyword), None)
            if arg is not None:
                yield arg


def found_in(files: Iterable[Path], root: Path) -> Iterator[Found]:
    """Every message of ``files`` that a person may read (templates with words in them)."""
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for message in _message_nodes(node):
                template = template_of(message)
                if template and WORDS.search(_literal(template)):
                    yield Found(template, f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}")


def source_messages(root: Path, packages: Iterable[str] = PACKAGES) -> Iterator[Found]:
    for package in packages:
        yield from found_in((root / package).rglob("*.py"), root)


def _literal(template: str) -> str:
    return "".join(lit for lit, *_rest in string.Formatter().parse(template))


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    names: tuple[str, ...]
    translation: str
    weight: int  # letters of literal text: the most specific template wins
    #: the template's literal pieces: a text lacking one cannot match, and is not given to the regex
    #: (whose lazy groups backtrack polynomially in the text's length when it almost matches)
    literals: tuple[str, ...] = ()


def compile_template(template: str, translation: str) -> Pattern:
    """``unknown engine {engine}`` -> a regex that matches what that f-string produced."""
    out: list[str] = []
    names: list[str] = []
    literals: list[str] = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if literal:
            literals.append(literal)
        if field is not None:
            if field in names:
                out.append(f"(?P={field})")
            else:
                names.append(field)
                out.append(f"(?P<{field}>.*?)")
    return Pattern(re.compile("".join(out), re.DOTALL), tuple(names), translation, len(_literal(template)),
                   tuple(literals))


@lru_cache(maxsize=4)
def patterns(lang: str) -> tuple[Pattern, ...]:
    """The catalog's raised messages of ``lang``, most specific first."""
    catalog = getattr(translations(lang), "_catalog", {})
    prefix = CONTEXT + "\x04"
    found = []
    for key, value in catalog.items():
        if isinstance(key, str) and key.startswith(prefix) and value:
            try:
                found.append(compile_template(key[len(prefix):], str(value)))
            except (ValueError, re.error):  # a malformed entry: the completeness test names it
                continue
    return tuple(sorted(found, key=lambda p: -p.weight))


def _matched(text: str, lang: str, depth: int) -> str | None:
    for pattern in patterns(lang):
        if not all(literal in text for literal in pattern.literals):
            continue
        m = pattern.regex.fullmatch(text)
        if m:
            values = {name: translated(m.group(name), depth=depth - 1, lang=lang) for name in pattern.names}
            try:
                return pattern.translation.format(**values)
            except (KeyError, IndexError, ValueError):
                return None
    return None


def translated(text: str, *, depth: int = MAX_DEPTH, lang: str | None = None) -> str:
    """``text`` (a message raised below the CLI) in the interface language (or ``lang``: a server
    answering several languages at once); unknown text as it is."""
    lang = lang or current_language()
    if lang == SOURCE_LANGUAGE or not text or depth <= 0 or len(text) > MAX_TEXT:
        return text
    whole = _matched(text, lang, depth)
    if whole is not None:
        return whole
    # a location before the message (``rules/x.yml:12: ...``, ``rule 'r1': when.time: ...``): the rest
    # translated; of the location, only a part that is a whole message itself (``rule 'r1'``)
    head, sep, rest = text.partition(": ")
    for _part in range(MAX_LOCATION_PARTS):
        if not sep:
            break
        inner = _matched(rest, lang, depth)
        if inner is not None:
            return ": ".join(_matched(part, lang, depth) or part for part in head.split(": ")) + sep + inner
        more, sep, rest = rest.partition(": ")
        head = f"{head}: {more}"
    return text
