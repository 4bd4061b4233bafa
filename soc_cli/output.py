"""Everything ``soc`` writes for a person or a script goes through here.

Listings come in three shapes (a Rich table, ``--json``, ``--ndjson``). Values that came
from events and alerts are hostile (``soc_cli.safe_text``), so the builders here take raw
values and make them safe themselves: ``table`` and ``emit`` cells, ``safe`` for any other
cell or line, ``esc`` inside a markup template, ``line`` for a plain line of text, JSON with
the unsafe characters escaped. The two consoles are ``SafeConsole``: even a renderable
built elsewhere has its control characters made visible before it reaches the terminal
(a backstop: layout is computed before it, so a value should already be safe), and emoji
codes are never replaced. ``tests/test_output_discipline.py`` keeps commands on this path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.table import Table

from soc_cli.safe_text import esc, json_safe, plain, safe, visible

__all__ = ["SafeConsole", "cell", "console", "emit", "emit_doc", "emit_json", "emit_text", "err_console", "esc", "json_text", "line",
           "safe", "table", "visible", "write_generated"]


class SafeConsole(Console):
    """A Rich console whose text segments pass ``visible`` on the way out (control segments are Rich's own)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            seg if seg.control or seg.text.isprintable() else Segment(visible(seg.text, multiline=True), seg.style)
            for seg in buffer)


console = SafeConsole()
err_console = SafeConsole(stderr=True)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """One JSON document as text, non-ASCII kept readable, unsafe characters as ``\\u`` escapes."""
    return json_safe(json.dumps(value, default=str, ensure_ascii=False, indent=indent))


def emit_json(rows: Iterable[Any], *, ndjson: bool = False) -> None:
    out = sys.stdout
    if ndjson:
        for row in rows:
            out.write(json_text(row) + "\n")
    else:
        out.write(json_text(list(rows), indent=2) + "\n")


def emit_doc(value: Any) -> None:
    """One JSON document (a summary, a report), indented, on standard output."""
    sys.stdout.write(json_text(value, indent=2) + "\n")


def line(*parts: Any, sep: str = "  ") -> None:
    """One line of plain text on standard output, each part shown literally (``soc tail``'s event lines)."""
    sys.stdout.write(visible(sep.join(plain(p) for p in parts)) + "\n")
    sys.stdout.flush()


def emit_text(text: str) -> None:
    """Line-oriented text made of data (CSV): controls other than line ends and tabs shown as escapes.

    The exact bytes of a value are in ``--json``/``--ndjson`` (escaped losslessly there).
    """
    sys.stdout.write(visible(text, multiline=True, keep="\r\t"))


def write_generated(text: str) -> None:
    """Text this program generated itself from its own files (a JSON Schema, Kibana NDJSON), as it is."""
    sys.stdout.write(text)


def cell(value: Any) -> str:
    """A stored value as text (lists joined, objects as JSON); for display, wrap it in ``safe``."""
    return plain(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None,
          headings: bool = True) -> Table:
    """A table of raw rows: every cell and the title are shown literally.

    Each heading is the column key's display name in the interface language
    (``soc_cli.labels.heading``); ``headings=False`` keeps the keys, for listings whose
    columns are event fields the analyst names in the next query (``soc hunt --fields``).
    """
    from soc_cli.labels import heading

    tbl = Table(title=safe(title) if title is not None else None, show_lines=False, header_style="bold")
    for col in columns:
        tbl.add_column(safe(heading(col) if headings else col), overflow="fold")
    for row in rows:
        tbl.add_row(*(safe(row.get(col)) for col in columns))
    return tbl


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool, ndjson: bool,
         title: str | None = None, headings: bool = True) -> None:
    """The one way a listing prints, so every command keeps the convention: JSON keys are the
    column keys in every language, a table's headings their display names (``table``)."""
    if ndjson:
        emit_json(rows, ndjson=True)
    elif as_json:
        emit_json(rows)
    else:
        console.print(table(rows, columns, title=title, headings=headings))

