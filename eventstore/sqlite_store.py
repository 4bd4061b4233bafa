"""The embedded event store: one SQLite file, the default backend.

Each document is kept whole as JSON (``doc``) beside indexed copies of its hot fields
(``schema.HOT_FIELDS`` for events; status, level, rule and entity for alerts) and its time as
epoch milliseconds (``ts``), so the common hunts (a dataset, an address, a user, a host over
a time range) use an index and everything else still works through the JSON.

WAL mode and a busy timeout let a collector write while analysts read from other processes.
Writes are rows made by ``eventstore.sqlite_rows`` (validated, time in epoch ms, JSON),
stored 100 to an ``INSERT OR IGNORE`` statement on the ``event.id`` primary key inside one
transaction per batch, so a batch written twice is stored once and the count of duplicates
is simply the rows SQLite did not change.

Queries are Lucene query strings, parsed by ``eventstore.query`` (luqum) into a typed tree
and translated by ``eventstore.query.sqlite``; this module owns the tables and the calls of
the ``Store`` protocol. Hand-written because no library maps a Lucene/ECS store onto SQLite.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from eventstore.alerts import apply_change, merge_alert
from eventstore.errors import (
    AlertNotFound,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreURLError,
)
from eventstore.query import parse
from eventstore.query.sqlite import TS_FIELD, Layout, WhereBuilder, json_path, register_functions
from eventstore.query.values import ip_key
from eventstore.schema import HOT_FIELDS, field_type
from eventstore.sqlite_rows import (
    FULL,
    Columns,
    Problems,
    Row,
    careful_row,
    dumps,
    prepare_row_groups,
    prepare_rows,
)
from eventstore.store import (
    ALERT_STATUS,
    AlertChange,
    Doc,
    Index,
    Metric,
    SearchResult,
    StoreStatus,
    WriteResult,
)
from eventstore.timeutil import to_iso

SCHEMA_VERSION = 3
#: ``PRAGMA application_id`` of a ztsoc store ("ztso"): a SQLite file of another application is
#: never adopted (``file(1)`` and ``sqlite3`` show it too)
APPLICATION_ID = 0x7A74736F
#: the tables ztsoc makes: a file without our application id holding only these (and a
#: ``user_version``) is a store made before the id was recorded
OUR_TABLES = frozenset({"events", "alerts", "state"})
#: documents per write transaction (a caller's batch is usually smaller)
CHUNK = 100_000
#: rows prepared at a time inside that transaction, then stored. Each switch between making
#: rows and SQLite's inserts leaves the other's working set (documents; the B-tree pages of the
#: table and its seven indexes) to be fetched again: 20,000 rows a step (~20 MB of rows, five
#: a chunk) cost 5-7 % less CPU a stored event than 5,000 (per-slice medians 0.92-0.95 in five
#: interleaved runs of 1M bench events); 10,000 and 50,000 measured between the two
STEP = 20_000
#: rows per INSERT statement (see ``insert_rows``; at most 9 values a row, far below SQLite's
#: 32,766 parameters; 50 to 200 measured alike; 250, 500, 1,000 and 3,640 no cheaper and
#: mostly dearer, likely because their bound copies of the JSON outgrow the CPU caches)
ROWS_PER_INSERT = 100


#: every connection's settings (public so a benchmark's baseline can use the same)
PRAGMAS = (
    # 16 KiB pages: fewer b-tree splits for ~1 KB documents and seven indexes (measured ~20 %
    # cheaper inserts than 4 KiB); only takes on a new file, so it comes before WAL
    "page_size=16384",
    "journal_mode=WAL",
    "synchronous=NORMAL",  # WAL: durable at checkpoints, never corrupt; no fsync per batch
    "busy_timeout=30000",
    "temp_store=MEMORY",
    # up to 256 MiB of page cache (allocated as used): past a few hundred thousand events the
    # seven indexes outgrow 64 MiB and inserts slow by a third (measured at 800,000 events)
    "cache_size=-262144",
)


def _column(field: str) -> str:
    return field.replace("@", "").replace(".", "_")


EVENTS = Layout("events", {f: _column(f) for f in HOT_FIELDS if f != TS_FIELD})
ALERTS = Layout(
    "alerts",
    {f: _column(f) for f in (
        ALERT_STATUS, "ztsoc.alert.level", "rule.id", "rule.name", "host.name", "user.name", "source.ip",
        "ztsoc.alert.entity.value",
        # the queue hides suppressed alerts on every listing: a column, not a JSON parse per row
        "ztsoc.alert.suppressed",
    )},
)
LAYOUTS: dict[str, Layout] = {"events": EVENTS, "alerts": ALERTS}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class _Unbindable(Exception):
    """The fast path produced a row SQLite cannot bind: redo the chunk checking each document."""


def _ddl(layout: Layout) -> list[str]:
    t = layout.table
    cols = "".join(f", {c} TEXT" for c in layout.hot.values())
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {t} (event_id TEXT PRIMARY KEY, ts INTEGER NOT NULL{cols}, "
        "multi TEXT, doc TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {t}_ts ON {t}(ts, event_id)",
        f"CREATE INDEX IF NOT EXISTS {t}_multi ON {t}(multi) WHERE multi IS NOT NULL",
    ]
    # partial: most events lack most hot fields (a flow has no user.name), and a NULL costs
    # nothing to skip; every comparison on the column implies IS NOT NULL, so queries still use them
    stmts += [
        f"CREATE INDEX IF NOT EXISTS {t}_{c} ON {t}({c}, ts, event_id) WHERE {c} IS NOT NULL" for c in layout.hot.values()
    ]
    return stmts


def insert_sql(layout: Layout, conflict: str = "IGNORE", rows: int = 1, columns: Columns = FULL) -> str:
    """The statement that stores ``rows`` rows of ``sqlite_rows`` holding ``columns`` (public
    for the ingest benchmark); the columns a row does not hold are left NULL."""
    hot = list(layout.hot.values())
    if columns == FULL:
        cols = ["event_id", "ts", *hot, "multi", "doc"]
    else:
        cols = ["event_id", "ts", *(hot[i] for i in columns), "doc"]
    one = f"({', '.join('?' * len(cols))})"
    return f"INSERT OR {conflict} INTO {layout.table} ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"


def insert_rows(conn: sqlite3.Connection, layout: Layout, rows: list[Row], columns: Columns = FULL) -> None:
    """``rows`` stored ``ROWS_PER_INSERT`` to a statement (the rest by ``executemany``): each
    statement opens the table's and its indexes' cursors once for all its rows, where
    ``executemany`` opens them for every row (measured: ~25 % less CPU per event than one
    ``executemany`` of the same rows; the benchmark shows both). Rows go in their order, so
    with ``INSERT OR IGNORE`` the first of two rows with one id is the one stored."""
    full = len(rows) - len(rows) % ROWS_PER_INSERT
    if full:
        many = insert_sql(layout, rows=ROWS_PER_INSERT, columns=columns)
        for start in range(0, full, ROWS_PER_INSERT):
            params: list[Any] = []
            for row in rows[start : start + ROWS_PER_INSERT]:
                params += row  # a third of the time of a chain over the rows (its iterator per value)
            conn.execute(many, params)
    if full < len(rows):
        conn.executemany(insert_sql(layout, columns=columns), rows[full:])


def _project(doc: Doc, fields: Sequence[str] | None) -> Doc:
    if not fields:
        return doc
    out: Doc = {}
    for name in fields:
        if "*" in name or "?" in name:
            out.update((k, v) for k, v in doc.items() if fnmatchcase(k, name))
        elif name in doc:
            out[name] = doc[name]
    return out


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite:"):
        raise StoreURLError(f"not a SQLite store URL: {url!r} (expected sqlite:///path/to/soc.db)")
    rest = url[len("sqlite:"):].split("?", 1)[0]
    if rest.startswith("///"):
        path = "/" + rest[3:].lstrip("/")
    elif rest.startswith("//"):
        path = rest[2:]
    else:
        path = rest
    if path in ("", "/"):
        raise StoreURLError(f"SQLite store URL names no file: {url!r} (expected sqlite:///path/to/soc.db)")
    if path.lstrip("/") == ":memory:":
        return ":memory:"
    return str(Path(path).expanduser())


def _ceil_ms(ts: datetime) -> int:
    """Stored times are whole milliseconds: ``doc >= t`` iff ``doc >= ceil(t)``, same for ``<``."""
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return -((_EPOCH - ts) // _MS)


@functools.lru_cache(maxsize=65536)
def _ms_to_iso(ms: int) -> str:
    """Cached: an aggregation's time buckets repeat on every row of every group."""
    return to_iso(_EPOCH + timedelta(milliseconds=ms))


@dataclass(frozen=True, slots=True)
class _MetricPlan:
    name: str
    op: str
    field: str | None
    columns: tuple[str, ...]  # the inner query's column names this metric reads


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    """The store's public calls raise store errors that say what happened (see ``_store_error``)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except (sqlite3.DatabaseError, orjson.JSONDecodeError) as exc:
                raise self._store_error(exc) from exc
        return generator

    @functools.wraps(method)
    def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, orjson.JSONDecodeError) as exc:
            raise self._store_error(exc) from exc
    return wrapper


def _row_groups(docs: list[Any], errors: Problems, at: int) -> dict[Columns, list[Row]]:
    """The step's rows, grouped by the columns they hold (``sqlite_rows.prepare_row_groups``),
    each group stored by its own statements, so no NULL is ever bound.

    Groups go to SQLite one after the other, so within a step rowids follow the groups, not
    the documents (every read orders by time and id, never by rowid). When an id is in the
    step twice, the first document's row must be the one stored (``INSERT OR IGNORE`` keeps
    the first it meets, as Elasticsearch's ``create`` does): such a step is made again as
    whole rows in the documents' order."""
    mark = len(errors)
    groups = prepare_row_groups(docs, EVENTS, errors, at)
    if len(groups) > 1:
        count = sum(map(len, groups.values()))
        if len({row[0] for rows in groups.values() for row in rows}) != count:
            del errors[mark:]
            groups = {FULL: prepare_rows(docs, EVENTS, errors, at)}
    return groups


class SQLiteStore:
    """The ``Store`` protocol on one SQLite file (see the module docstring)."""

    backend = "sqlite"

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._lock = threading.RLock()
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the folder of {path}: {exc}") from exc
        #: what opening did that the user should know (a schema migrated), one line each
        self.notices: list[str] = []
        try:
            self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._found_version = self._identity()  # before any PRAGMA changes the file
            for pragma in PRAGMAS:
                self._conn.execute(f"PRAGMA {pragma}")
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {path}: {exc}") from exc
        register_functions(self._conn)

    def _identity(self) -> int:
        """The file's store schema version (0: empty); refuses a foreign file or a newer schema
        without writing anything to it."""
        conn = self._conn
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")}
        ours = app == APPLICATION_ID or (app == 0 and (not tables or (tables <= OUR_TABLES and version >= 1)))
        if not ours:
            conn.close()
            held = f"it holds table(s) {', '.join(sorted(tables)[:5])}" if tables else "an empty database"
            mark = f", application id {app:#x}" if app else ""
            raise StoreError(f"{self.path} is not a ztsoc store ({held}{mark}): name another file with --store")
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{self.path} has store schema {version}; this ztsoc reads schema {SCHEMA_VERSION} "
                             f"and older: open it with a ztsoc that reads schema {version}")
        return int(version)

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        store = cls(_path_from_url(url), url)
        if "check=quick" in url.partition("?")[2].split("&"):  # sqlite:///soc.db?check=quick
            problems = store.quick_check()
            if problems:
                store.close()
                raise StoreCorrupt(f"SQLite store {store.path} is damaged: PRAGMA quick_check: {'; '.join(problems[:3])}")
        return store

    def quick_check(self) -> list[str]:
        """``PRAGMA quick_check``: what is damaged in the file (empty when it is sound)."""
        try:
            with self._lock:
                rows = [line.strip() for r in self._conn.execute("PRAGMA quick_check").fetchall()
                        for line in str(r[0]).splitlines() if line.strip() and not line.startswith("***")]
        except sqlite3.DatabaseError as exc:
            return [f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}"]
        return [] if rows == ["ok"] else rows

    def _store_error(self, exc: Exception) -> StoreError:
        """One line saying what a failure IS: a full disk, a damaged file, a foreign file, or else."""
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        where = f"SQLite store {self.path}"
        if name == "SQLITE_FULL":
            return StoreFull(f"{where}: the disk is full (SQLITE_FULL); nothing of the failed write was stored")
        if name == "SQLITE_NOTADB":
            return StoreCorrupt(f"{where} is not a SQLite database (SQLITE_NOTADB): a foreign or overwritten file")
        if name.startswith("SQLITE_CORRUPT") or isinstance(exc, orjson.JSONDecodeError):
            problems = self.quick_check()
            found = "; ".join(problems[:3]) if problems else "ok (the damage is inside a stored document)"
            return StoreCorrupt(f"{where} is damaged ({name}: {exc}); PRAGMA quick_check: {found}")
        return StoreUnavailable(f"{where}: {name}: {exc}")

    # -- lifecycle ------------------------------------------------------------------------
    def init(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                for layout in LAYOUTS.values():
                    if 0 < version < 2:  # version 1 had (column, ts) hot indexes: rebuild them covering
                        for column in layout.hot.values():
                            self._conn.execute(f"DROP INDEX IF EXISTS {layout.table}_{column}")
                    self._add_missing_columns(layout)
                    for stmt in _ddl(layout):
                        self._conn.execute(stmt)
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS state (kind TEXT NOT NULL, key TEXT NOT NULL, "
                    "doc TEXT NOT NULL, PRIMARY KEY (kind, key))"
                )
                self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self._conn.execute("COMMIT")
                if 0 < version < SCHEMA_VERSION:
                    self.notices.append(f"SQLite store {self.path}: schema {version} migrated to {SCHEMA_VERSION}")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _add_missing_columns(self, layout: Layout) -> None:
        """A file made by an older version lacks newer hot columns: add them, filled from the documents."""
        have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({layout.table})")}
        if not have:
            return  # a new file: the CREATE TABLE makes every column
        for field_name, column in layout.hot.items():
            if column not in have:
                path = '$."' + field_name + '"'
                self._conn.execute(f"ALTER TABLE {layout.table} ADD COLUMN {column} TEXT")
                self._conn.execute(
                    f"UPDATE {layout.table} SET {column} = json_extract(doc, ?) "
                    "WHERE json_type(doc, ?) NOT IN ('array', 'object')", (path, path))

    def close(self) -> None:
        with self._lock:
            # keeps the planner's statistics fresh (0x10000: every table, not only those queried
            # on this connection: without statistics SQLite picks a weak index for AND queries);
            # closing must not fail on a busy or read-only file
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize=0x10002")
            self._conn.close()

    def refresh(self) -> None:
        """Committed transactions are visible to every reader already (WAL)."""

    # -- events ---------------------------------------------------------------------------
    def write_batches(self, batches: Iterable[Iterable[Doc]]) -> list[WriteResult]:
        """A transaction per batch, as ``write_events``: no round trip to save, and a failure
        leaves the batches before it committed (their results are lost with the exception;
        the caller's checkpoints stay before them, so a rerun counts them as duplicates)."""
        return [self.write_events(batch) for batch in batches]

    def write_events(self, events: Iterable[Doc]) -> WriteResult:
        """One transaction per ``CHUNK`` documents (the caller's batch, usually), fed to SQLite
        ``STEP`` rows at a time (bounding the rows' memory; see ``STEP`` for its size).
        The cyclic GC is paused meanwhile: the rows are short-lived tuples, and the collections
        they trigger rescan the caller's documents (about 3 % of the write, measured).

        No savepoint per step (a statement journal costs ~15 % of the insert): when SQLite cannot
        bind a row of the fast path (a list in a hot field...), the whole transaction is rolled
        back and the chunk redone with every document checked."""
        errors: Problems = []
        written = duplicates = 0
        iterator = iter(events)
        position = 0
        paused = gc.isenabled()
        gc.disable()
        try:
            while chunk := list(islice(iterator, CHUNK)):
                with self._lock:
                    try:
                        w, d = self._insert_chunk(chunk, position, errors, checked=False)
                    except _Unbindable:
                        errors[:] = [e for e in errors if e[0] < position]
                        w, d = self._insert_chunk(chunk, position, errors, checked=True)
                written += w
                duplicates += d
                position += len(chunk)
        finally:
            if paused:
                gc.enable()
        errors.sort(key=lambda e: e[0])
        return WriteResult(written=written, duplicates=duplicates, errors=[(key, why) for _, key, why in errors])

    def _insert_chunk(self, chunk: list[Any], position: int, errors: Problems, *, checked: bool) -> tuple[int, int]:
        """(written, duplicates) of one chunk in one transaction."""
        conn = self._conn
        hot = tuple(EVENTS.hot)
        written = duplicates = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(chunk), STEP):
                docs = chunk[start : start + STEP]
                at = position + start
                if checked:
                    groups = {FULL: [r for i, doc in enumerate(docs, at) if (r := careful_row(doc, i, hot, errors))]}
                else:
                    groups = _row_groups(docs, errors, at)
                before = conn.total_changes
                try:
                    for columns, rows in groups.items():
                        insert_rows(conn, EVENTS, rows, columns)
                except (sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError, TypeError) as exc:
                    if checked:
                        raise
                    raise _Unbindable from exc
                changed = conn.total_changes - before
                written += changed
                # every row has its time: only ids already stored are left
                duplicates += sum(map(len, groups.values())) - changed
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite already rolled back on SQLITE_FULL: keep ITS error, not ours
                conn.execute("ROLLBACK")
            raise
        return written, duplicates

    def get_event(self, event_id: str) -> Doc | None:
        return self._get(EVENTS, event_id)

    def _get(self, layout: Layout, event_id: str) -> Doc | None:
        with self._lock:
            row = self._conn.execute(f"SELECT doc FROM {layout.table} WHERE event_id = ?", (event_id,)).fetchone()
        return orjson.loads(row[0]) if row else None

    # -- reading --------------------------------------------------------------------------
    def _has_multi(self, layout: Layout) -> bool:
        sql = f"SELECT EXISTS (SELECT 1 FROM {layout.table} WHERE multi IS NOT NULL)"
        return bool(self._conn.execute(sql).fetchone()[0])

    def _filter(
        self, query: str, since: datetime | None, until: datetime | None, index: Index,
    ) -> tuple[Layout, WhereBuilder, str]:
        layout = LAYOUTS.get(index)
        if layout is None:
            raise StoreError(f"unknown index {index!r}: expected events or alerts")
        node = parse(query)
        builder = WhereBuilder(layout, multi=self._has_multi(layout))
        parts = [builder.where(node)]
        if since is not None:
            parts.append(f"e.ts >= {builder.param(_ceil_ms(since))}")
        if until is not None:
            parts.append(f"e.ts < {builder.param(_ceil_ms(until))}")
        return layout, builder, " AND ".join(parts)

    def search(
        self,
        query: str = "*",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        index: Index = "events",
        sort: str = "@timestamp",
        descending: bool = True,
        limit: int = 100,
        fields: Sequence[str] | None = None,
    ) -> SearchResult:
        with self._lock:
            layout, b, where = self._filter(query, since, until, index)
            key = b.sort_key(sort, descending)
            order = "DESC" if descending else "ASC"
            # missing values last, as in ES; @timestamp is never missing, and leaving the
            # IS NULL term out lets the (ts, event_id) index deliver the order
            nulls = "" if sort == TS_FIELD else f"({key}) IS NULL, "
            count_sql = f"SELECT COUNT(*) FROM {layout.table} e WHERE {where}"
            # rowids first, documents after: the sort then carries keys, not whole documents
            hits_sql = (
                f"SELECT e.rowid FROM {layout.table} e WHERE {where} "
                f"ORDER BY {nulls}{key} {order}, e.event_id {order} LIMIT {b.param(max(limit, 0))}"
            )
            self._conn.execute("BEGIN")
            try:
                total = self._conn.execute(count_sql, b.params).fetchone()[0]
                ids = [r[0] for r in self._conn.execute(hits_sql, b.params)] if limit > 0 else []
                docs = dict(self._by_rowid(layout, ids))
            finally:
                self._conn.execute("COMMIT")
        return SearchResult(total=total, hits=[_project(orjson.loads(docs[i]), fields) for i in ids])

    def _by_rowid(self, layout: Layout, ids: list[int]) -> Iterator[tuple[int, str]]:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = f"SELECT rowid, doc FROM {layout.table} WHERE rowid IN ({', '.join('?' * len(part))})"
            yield from self._conn.execute(sql, part)

    def count(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events",
    ) -> int:
        with self._lock:
            layout, b, where = self._filter(query, since, until, index)
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {layout.table} e WHERE {where}", b.params).fetchone()[0])

    def scan(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events", fields: Sequence[str] | None = None, batch_size: int = 5000,
    ) -> Iterator[Doc]:
        """Keyset pages on (ts, event_id): no read transaction stays open between batches."""
        with self._lock:
            layout, b, where = self._filter(query, since, until, index)
        last_ts, last_id = b.param(0), b.param("")
        first_sql = f"SELECT e.ts, e.event_id, e.doc FROM {layout.table} e WHERE {where} ORDER BY e.ts, e.event_id LIMIT {int(batch_size)}"
        next_sql = (
            f"SELECT e.ts, e.event_id, e.doc FROM {layout.table} e WHERE {where} "
            f"AND (e.ts, e.event_id) > ({last_ts}, {last_id}) ORDER BY e.ts, e.event_id LIMIT {int(batch_size)}"
        )
        sql, params = first_sql, dict(b.params)
        while True:
            with self._lock:
                rows = self._conn.execute(sql, params).fetchall()
            for _, _, doc in rows:
                yield _project(orjson.loads(doc), fields)
            if len(rows) < batch_size:
                return
            params[last_ts[1:]], params[last_id[1:]] = rows[-1][0], rows[-1][1]
            sql = next_sql

    def aggregate(
        self,
        group_by: Sequence[str],
        metrics: Mapping[str, Metric] | None = None,
        *,
        query: str = "*",
        since: datetime | None = None,
        until: datetime | None = None,
        index: Index = "events",
        interval_seconds: int | None = None,
        limit: int | None = None,
    ) -> list[Doc]:
        """One row per combination of group values (a document with an array field counts once
        per distinct value, like an ES composite aggregation); exact cardinality."""
        if interval_seconds is not None and interval_seconds < 1:
            raise ValueError("interval_seconds must be at least 1")
        metrics = dict(metrics or {})
        group = list(group_by)
        if interval_seconds and TS_FIELD not in group:
            group.insert(0, TS_FIELD)
        with self._lock:
            layout, b, where = self._filter(query, since, until, index)
            joins: list[str] = []
            select: list[str] = []
            conds: list[str] = []
            for i, name in enumerate(group):
                if name == TS_FIELD:
                    if interval_seconds:
                        iv = b.param(int(interval_seconds * 1000))
                        select.append(f"(e.ts - ((e.ts % {iv}) + {iv}) % {iv}) AS g{i}")
                    else:
                        select.append(f"e.ts AS g{i}")
                    continue
                column = layout.column(name)
                if column is not None and not b.multi:
                    select.append(f"e.{column} AS g{i}")
                    conds.append(f"e.{column} IS NOT NULL")
                else:
                    joins.append(f"json_each(e.doc, {b.param(json_path(name))}) AS j{i}")
                    conv = "zepoch({})" if field_type(name) == "date" else "{}"
                    select.append(f"{conv.format(f'j{i}.value')} AS g{i}")
                    conds.append(f"j{i}.value IS NOT NULL AND j{i}.type NOT IN ('object', 'array')")
            plans = [self._metric_plan(name, m, k, layout, b, select) for k, (name, m) in enumerate(metrics.items())]
            gcols = [f"g{i}" for i in range(len(group))]
            outer = [*gcols, "COUNT(*) AS n", *(_OUTER[p.op](p) for p in plans)]
            inner = (
                f"SELECT {'DISTINCT' if joins else ''} e.rowid AS rid{''.join(', ' + s for s in select)} "
                f"FROM {layout.table} e{''.join(', ' + j for j in joins)} WHERE {' AND '.join([where, *conds])}"
            )
            sql = f"SELECT {', '.join(outer)} FROM ({inner})" + (f" GROUP BY {', '.join(gcols)}" if gcols else "")
            rows = self._conn.execute(sql, b.params).fetchall()
        out: list[tuple[tuple[Any, ...], Doc]] = []
        for row in rows:
            count = row[len(group)]
            if not count:
                continue
            doc: Doc = {}
            keys: list[Any] = []
            for name, value in zip(group, row, strict=False):
                keys.append(_sort_key(name, value))
                doc[name] = _group_value(name, value)
            doc["count"] = count
            for plan, value in zip(plans, row[len(group) + 1 :], strict=True):
                doc[plan.name] = _metric_value(plan, value)
            out.append(((-count, *keys), doc))
        out.sort(key=lambda item: item[0])
        docs = [d for _, d in out]
        return docs[:limit] if limit is not None else docs

    def _metric_plan(
        self, name: str, metric: Metric, k: int, layout: Layout, b: WhereBuilder, select: list[str]
    ) -> _MetricPlan:
        if metric.op == "count":
            return _MetricPlan(name, "count", None, ())
        if not metric.field:
            raise StoreError(f"metric {name!r} ({metric.op}) needs a field")
        if metric.op not in _OUTER:
            raise StoreError(f"unknown metric {metric.op!r}: expected one of {', '.join(_OUTER)}")
        f = metric.field
        column = "e.ts" if f == TS_FIELD else (f"e.{layout.column(f)}" if layout.column(f) and not b.multi else None)
        conv = b.value_conv(f) if f != TS_FIELD else "{}"
        if metric.op == "cardinality":
            if column is not None:
                select.append(f"{column} AS m{k}")
                return _MetricPlan(name, "cardinality_col", f, (f"m{k}",))
            select.append(f"(SELECT json_group_array(value) FROM json_each(e.doc, {b.param(json_path(f))})) AS m{k}")
            return _MetricPlan(name, "cardinality", f, (f"m{k}",))
        agg = {"sum": "SUM", "min": "MIN", "max": "MAX", "avg": "SUM"}[metric.op]
        source = column if column is not None else None
        if source is not None:
            select.append(f"{conv.format(source)} AS m{k}")
            if metric.op == "avg":
                select.append(f"({source} IS NOT NULL) AS c{k}")
        else:
            path = b.param(json_path(f))
            select.append(f"(SELECT {agg}({conv.format('value')}) FROM json_each(e.doc, {path})) AS m{k}")
            if metric.op == "avg":
                select.append(f"(SELECT COUNT(value) FROM json_each(e.doc, {path})) AS c{k}")
        cols = (f"m{k}", f"c{k}") if metric.op == "avg" else (f"m{k}",)
        return _MetricPlan(name, metric.op, f, cols)

    # -- alerts ---------------------------------------------------------------------------
    def put_alerts(self, alerts: Iterable[Doc]) -> WriteResult:
        """Upsert: a refreshed alert keeps the analyst's lifecycle fields and history.

        ``written`` counts every alert stored (new or refreshed); the same id twice in one
        batch is stored once, the last one winning.
        """
        errors: Problems = []
        batch: dict[str, tuple[int, Doc]] = {}
        for position, doc in enumerate(alerts):
            ident = doc.get("event.id") if isinstance(doc, dict) else None
            if not isinstance(ident, str) or not ident:
                errors.append((position, str(ident or position), "missing event.id"))
                continue
            batch.pop(ident, None)
            batch[ident] = (position, doc)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                existing = self._get_many(ALERTS, list(batch))
                hot = tuple(ALERTS.hot)
                rows = [
                    r for ident, (i, doc) in batch.items()
                    if (r := careful_row(merge_alert(doc, existing.get(ident)), i, hot, errors))
                ]
                self._conn.executemany(insert_sql(ALERTS, "REPLACE"), rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        errors.sort(key=lambda e: e[0])
        return WriteResult(written=len(rows), duplicates=0, errors=[(key, why) for _, key, why in errors])

    def _get_many(self, layout: Layout, ids: list[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = f"SELECT event_id, doc FROM {layout.table} WHERE event_id IN ({', '.join('?' * len(part))})"
            found.update((i, orjson.loads(d)) for i, d in self._conn.execute(sql, part))
        return found

    def get_alert(self, alert_id: str) -> Doc | None:
        return self._get(ALERTS, alert_id)

    def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Doc]:
        with self._lock:
            return self._get_many(ALERTS, list(alert_ids))

    def update_alert(self, alert_id: str, change: AlertChange) -> Doc:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT doc FROM alerts WHERE event_id = ?", (alert_id,)).fetchone()
                if row is None:
                    raise AlertNotFound(f"no alert with id {alert_id!r}")
                alert = apply_change(orjson.loads(row[0]), change)
                problems: Problems = []
                new_row = careful_row(alert, 0, tuple(ALERTS.hot), problems)
                if new_row is None:
                    raise StoreError(f"alert {alert_id}: {problems[0][2]}")
                rows = [new_row]
                self._conn.executemany(insert_sql(ALERTS, "REPLACE"), rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return alert

    # -- state ----------------------------------------------------------------------------
    def get_state(self, kind: str, key: str) -> Doc | None:
        with self._lock:
            row = self._conn.execute("SELECT doc FROM state WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return orjson.loads(row[0]) if row else None

    def put_state(self, kind: str, key: str, value: Doc) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO state (kind, key, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
                (kind, key, dumps(value)),
            )

    def get_states(self, kind: str, keys: Sequence[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        keys = list(keys)
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                sql = f"SELECT key, doc FROM state WHERE kind = ? AND key IN ({', '.join('?' * len(part))})"
                found.update((k, orjson.loads(d)) for k, d in self._conn.execute(sql, [kind, *part]))
        return found

    def put_states(self, kind: str, values: Mapping[str, Doc]) -> None:
        rows = [(kind, key, dumps(value)) for key, value in values.items()]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO state (kind, key, doc) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def delete_state(self, kind: str, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM state WHERE kind = ? AND key = ?", (kind, key))

    def list_state(self, kind: str) -> list[tuple[str, Doc]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, doc FROM state WHERE kind = ? ORDER BY key", (kind,)).fetchall()
        return [(k, orjson.loads(d)) for k, d in rows]

    # -- status ---------------------------------------------------------------------------
    def status(self) -> StoreStatus:
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                events = c.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                alerts = c.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
                per = c.execute(
                    "SELECT event_dataset, COUNT(*) AS n FROM events WHERE event_dataset IS NOT NULL "
                    "GROUP BY event_dataset ORDER BY n DESC, event_dataset"
                ).fetchall()
                first, last = c.execute("SELECT MIN(ts), MAX(ts) FROM events").fetchone()
                pages = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
            finally:
                c.execute("COMMIT")
        size = pages
        if self.path != ":memory:":
            size = sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))
        return StoreStatus(
            backend=self.backend,
            url=self.url,
            events=events,
            alerts=alerts,
            per_dataset=dict(per),
            size_bytes=size,
            first_event=_ms_to_iso(first) if first is not None else None,
            last_event=_ms_to_iso(last) if last is not None else None,
        )




# -- aggregate helpers --------------------------------------------------------------------

_OUTER = {
    "count": lambda p: "COUNT(*)",
    "cardinality": lambda p: f"zcard({p.columns[0]})",
    "cardinality_col": lambda p: f"COUNT(DISTINCT {p.columns[0]})",
    "sum": lambda p: f"SUM({p.columns[0]})",
    "min": lambda p: f"MIN({p.columns[0]})",
    "max": lambda p: f"MAX({p.columns[0]})",
    "avg": lambda p: f"SUM({p.columns[0]}) * 1.0 / NULLIF(SUM({p.columns[1]}), 0)",
}


def _group_value(field: str, value: Any) -> Any:
    kind = "date" if field == TS_FIELD else field_type(field)
    if kind == "date" and isinstance(value, int):
        return _ms_to_iso(value)
    if kind == "boolean" and isinstance(value, int):
        return bool(value)
    return value


def _sort_key(field: str, value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    if field_type(field) == "ip" and isinstance(value, str):
        key = ip_key(value)
        if key is not None:
            return (1, key)
    return (2, str(value))


def _metric_value(plan: _MetricPlan, value: Any) -> Any:
    is_date = plan.field is not None and (plan.field == TS_FIELD or field_type(plan.field) == "date")
    if plan.op in ("min", "max") and value is not None and is_date:
        return _ms_to_iso(int(value))
    return value


for _name in ("init", "write_events", "get_event", "search", "count", "scan", "aggregate", "put_alerts", "get_alert",
              "update_alert", "get_state", "put_state", "delete_state", "list_state", "status"):
    setattr(SQLiteStore, _name, _translated(getattr(SQLiteStore, _name)))
