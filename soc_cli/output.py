"""Everything ``soc`` writes for a person or a script goes through here.

Listings come in three shapes (a Rich table, ``--json``, ``--ndjson``). Values that came
from events and alerts are hostile (``soc_cli.safe_text``), so the builders here take raw
values and make them safe themselves: ``table`` and ``emit`` cells, ``safe`` for any other
cell or line, ``esc`` inside a markup template, ``line`` for a plain line of text, JSON with
the unsafe characters escaped. The two consoles are ``SafeConsole``: even a renderable
built elsewhere has its control characters made visible before it reaches the terminal
(a backstop: layout is computed before it, so a value should already be safe), and emoji
codes are never replaced. The other ways out are here too, each built on the same rule: a
yes/no question (``confirm``), a progress display (``progress``), Markdown from rule files
(``safe_markdown``), CSV (``emit_csv``, formula cells neutralised), a traceback
(``print_traceback``) and log records (``install_log_handler``). ``tests/test_output_discipline.py``
keeps commands on this path.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table

from soc_cli.safe_text import esc, json_safe, plain, safe, visible

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

__all__ = ["SafeConsole", "cell", "confirm", "console", "csv_cell", "emit", "emit_csv", "emit_doc", "emit_json",
           "err_console", "esc", "install_log_handler", "json_text", "line", "print_traceback", "progress",
           "safe", "safe_markdown", "table", "text_column", "visible", "write_generated"]


def safe_segment(seg: Segment) -> Segment:
    """``seg`` as it may reach a terminal: its text through ``visible``, and no hyperlink whose URL
    carries a control character.

    Rich writes a style's link as ``ESC]8;id=..;URL ESC\\`` without escaping the URL, so an
    ``ESC c`` (terminal reset) inside a ``[link=...]`` that came from data would reach the
    terminal as it is; the link is dropped, its text kept. Control segments are Rich's own.
    """
    if seg.control:
        return seg
    text, style = seg.text, seg.style
    link_bad = style is not None and style.link is not None and not style.link.isprintable()
    if text.isprintable() and not link_bad:
        return seg
    return Segment(visible(text, multiline=True),
                   style.update_link(None) if link_bad and style is not None else style)


class SafeConsole(Console):
    """A Rich console whose segments pass ``safe_segment`` on the way out (the backstop)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("emoji", False)
        super().__init__(**kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(safe_segment(seg) for seg in buffer)


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


#: first characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection"), and
#: their fullwidth forms, which some spreadsheet input paths fold to the ASCII ones
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
#: a plain decimal number (ASCII digits only: ``float`` would also take ``-inf``, ``1_0``, `` -5 ``)
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_cell(value: Any, *, terminal: bool = False) -> str:
    """One CSV cell from a stored value: never a live spreadsheet formula, never a terminal control.

    A cell starting with ``= + - @``, TAB or CR (or their fullwidth forms U+FF1D, U+FF0B, U+FF0D,
    U+FF20) gets a ``'`` in front (the OWASP rule; spreadsheets then show the text), the rest of
    the value exact. One exception, deliberately: a cell that is a plain decimal number (``-5``, ``+1.5``, ``-2e3``,
    ASCII digits, nothing else) is left as it is. A spreadsheet reads it as that number and
    nothing more (no operator, reference or function can follow), while the prefix would turn
    every negative number into text that no longer sorts or sums.

    Controls other than line ends and tabs are written as escapes (exact bytes are in
    ``--format jsonl``); for a terminal (``terminal=True``) line ends and tabs too, so a CR
    cannot move the cursor back over the row and each row is one line.
    """
    text = visible(plain(value)) if terminal else visible(plain(value), multiline=True, keep="\r\t")
    if text[:1] in FORMULA_START and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def emit_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A CSV document on standard output, every data cell through ``csv_cell``.

    ``header`` is the program's own column names (ECS keys such as ``@timestamp``, which a
    reader of the file looks up as they are), so it is written without the formula prefix.
    To a file or a pipe: RFC 4180 (CRLF rows, quoted multi-line cells). On a terminal: one
    line a row, line ends inside a cell shown as ``\\n``/``\\r``.
    """
    terminal = sys.stdout.isatty()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n" if terminal else "\r\n")
    writer.writerow([visible(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v, terminal=terminal) for v in row])
    sys.stdout.write(out.getvalue())


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



def confirm(question: str, *, default: bool) -> bool:
    """The one yes/no question ``soc`` asks: ``question`` shown literally (it may name an alert's
    entity, which an attacker chose), answered by the person at the terminal."""
    import typer

    return bool(typer.confirm(visible(question), default=default))


class _SafeSegments:
    """A renderable whose segments pass ``safe_segment``: for renderables that make text of their
    own (Markdown decodes ``&#x202e;``), shown where no ``SafeConsole`` is (the Textual app)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for seg in console.render(self.renderable, options):
            yield safe_segment(seg)


def safe_markdown(text: Any) -> RenderableType:
    """Markdown written in a rule file (an alert's investigation guide, its response steps), for
    the CLI and the triage app alike.

    Made visible before Markdown parses it (so the layout is measured on what is shown), without
    terminal hyperlinks, and each rendered segment made safe again: markdown-it turns entities
    such as ``&#x202e;`` or ``&rlm;`` into the characters themselves.
    """
    from rich.markdown import Markdown

    return _SafeSegments(Markdown(visible(plain(text), multiline=True), hyperlinks=False))


def text_column(template: str, *, style: str = "none") -> ProgressColumn:
    """A progress column of text: ``template`` formatted with the task (``{task.description}``,
    ``{task.fields[events]:,}``), shown literally, never as Rich markup (a file name is data)."""
    from rich.progress import Task, TextColumn
    from rich.text import Text

    class SafeTextColumn(TextColumn):
        def render(self, task: Task) -> Text:
            return safe(self.text_format.format(task=task), str(self.style))

    return SafeTextColumn(template, style=style, markup=False)


def progress(*columns: ProgressColumn, transient: bool = True) -> Progress:
    """The one progress display, on standard error: the task's description in bold, literally,
    then ``columns`` (by default a bar, the percentage and the time left)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    rest = columns or (BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    return Progress(text_column("{task.description}", style="bold"), *rest, console=err_console,
                    transient=transient)


def print_traceback() -> None:
    """The exception being handled, as a traceback on standard error (``--debug``): its messages
    quote data (a rule's name, a query), so it is shown literally."""
    import traceback  # only then: ~4 ms of imports (tokenize, linecache) on every command otherwise

    err_console.print(safe(traceback.format_exc().rstrip("\n"), multiline=True), highlight=False, soft_wrap=True)


class SafeLogHandler(logging.Handler):
    """Log records on standard error, shown literally: a warning may quote a rule's key or a query."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err_console.print(safe(self.format(record), multiline=True), highlight=False, soft_wrap=True)
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


def install_log_handler(level: int = logging.WARNING) -> logging.Handler:
    """Give the root logger the one handler ``soc`` writes log records with (once a process).

    Without a handler Python's last resort writes WARNING and above raw to standard error;
    ``warnings.warn`` messages are routed through it too.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, SafeLogHandler):
            return handler
    handler = SafeLogHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    logging.captureWarnings(True)
    return handler
