"""Output in the three shapes every listing offers: a Rich table, ``--json``, ``--ndjson``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def emit_json(rows: Iterable[Any], *, ndjson: bool = False) -> None:
    out = sys.stdout
    if ndjson:
        for row in rows:
            out.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    else:
        json.dump(list(rows), out, default=str, ensure_ascii=False, indent=2)
        out.write("\n")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> Table:
    tbl = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        tbl.add_column(col, overflow="fold")
    for row in rows:
        tbl.add_row(*(cell(row.get(col)) for col in columns))
    return tbl


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool, ndjson: bool,
         title: str | None = None) -> None:
    """The one way a listing prints, so every command keeps the convention."""
    if ndjson:
        emit_json(rows, ndjson=True)
    elif as_json:
        emit_json(rows)
    else:
        console.print(table(rows, columns, title=title))
