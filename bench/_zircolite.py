"""Zircolite's method, the parts that need no pySigma: events in an in-memory SQLite table, SQL run over it.

Zircolite (the Sigma-over-EVTX tool responders reach for; not on PyPI) puts every event in one
in-memory table (a column per field, ``COLLATE NOCASE``, a Python ``REGEXP``) and runs each rule
as one SQL query converted by pySigma's SQLite backend; its shipped rule packs are those queries
converted in advance, as JSON. ``bench/sigma.py`` converts; ``bench/scan.py``'s pre-converted
baseline loads the queries from such a JSON file and so never imports pySigma nor parses a rule.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path


def read_events(files: list[Path]) -> list[dict]:
    """The EVTX files' events by ztsoc's reader (faster than Zircolite's evtx_dump + flattening: the
    baseline is favoured)."""
    from collectors.base import read_all
    from collectors.evtx import EvtxReader

    reader = EvtxReader()
    events: list[dict] = []
    for path in files:
        try:
            events.extend(read_all(reader, path).events)
        except (OSError, ValueError) as exc:
            print(f"  skipped {path.name}: {exc}", file=sys.stderr)
    return events


def _regexp(pattern: str, value: object) -> bool:
    if value is None:
        return False
    try:
        return re.search(pattern, str(value)) is not None
    except re.error:
        return False


def events_table(events: list[dict]) -> sqlite3.Connection:
    """The events in an in-memory table as Zircolite has them: one column per field, ``COLLATE NOCASE``."""
    # SQLite column names are case-insensitive (ProcessId / ProcessID): one column for both
    columns = sorted({k.lower(): k for e in events for k, v in e.items() if not isinstance(v, dict | list)}.values())
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    cols = ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in columns)
    db.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY, {cols})")
    index = {c.lower(): i for i, c in enumerate(columns)}
    rows = []
    for n, e in enumerate(events):
        row: list[object] = [n] + [None] * len(columns)
        for k, v in e.items():
            i = index.get(k.lower())
            if i is not None and not isinstance(v, dict | list):
                row[i + 1] = v
        rows.append(row)
    db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * (len(columns) + 1))})", rows)
    return db


def run_queries(db: sqlite3.Connection, queries: list[tuple[str, str]], events: list[dict]) -> set[tuple[str, str]]:
    """(rule key, event id) of every row each query returns."""
    found: set[tuple[str, str]] = set()
    for key, q in queries:
        try:
            for (row_id,) in db.execute(q):
                found.add((key, str(events[row_id].get("event.id"))))
        except sqlite3.Error:
            continue  # e.g. a column no event has: the rule cannot match here
    return found
