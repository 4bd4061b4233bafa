"""What only the embedded store has: its URL, its file, its indexes, its write path.

Answers shared with Elasticsearch live in test_store_conformance.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventstore import AlertChange, Metric, StoreError, StoreURLError, open_store
from eventstore.query import parse
from eventstore.query.sqlite import WhereBuilder
from eventstore.sqlite_rows import prepare_rows
from eventstore.sqlite_store import EVENTS, SQLiteStore

REPO = Path(__file__).resolve().parents[1]


def ev(i: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"@timestamp": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z", "event.id": f"e{i:05d}",
                           "event.dataset": "test.data", "source.ip": f"10.0.{i // 256 % 256}.{i % 256}"}
    doc.update(extra)
    return doc


# -- URL and file -------------------------------------------------------------------------


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "a" / "b" / "soc.db"
    s = SQLiteStore.from_url(f"sqlite:///{nested}")  # four slashes: an absolute path
    assert s.path == str(nested) and nested.parent.is_dir()
    s.close()
    assert SQLiteStore.from_url(f"sqlite://{nested}").path == str(nested)
    memory = SQLiteStore.from_url("sqlite:///:memory:")
    assert memory.path == ":memory:"
    memory.init()
    assert memory.write_events([ev(1)]).written == 1
    assert memory.status().size_bytes > 0
    monkeypatch.chdir(tmp_path)
    rel = SQLiteStore.from_url("sqlite:rel/soc.db")
    assert rel.path == "rel/soc.db" and (tmp_path / "rel").is_dir()
    with pytest.raises(StoreURLError):
        SQLiteStore.from_url("sqlite://")
    with pytest.raises(StoreURLError):
        SQLiteStore.from_url("postgres:///x")


def test_open_store_reopens_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'soc.db'}"
    s = open_store(url)
    assert s.write_events([ev(1), ev(2)]).written == 2
    s.put_state("cursor", "x", {"offset": 7})
    s.close()
    again = open_store(url)  # init() again on an existing file is harmless
    assert again.count() == 2 and again.get_state("cursor", "x") == {"offset": 7}
    assert again.write_events([ev(2), ev(3)]).written == 1
    again.close()


def test_wal_and_concurrent_writer_process(tmp_path: Path) -> None:
    """A collector process writes while this one reads: no 'database is locked', nothing lost."""
    db = tmp_path / "soc.db"
    store = open_store(f"sqlite:///{db}")
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # type: ignore[attr-defined]
    writer = textwrap.dedent(f"""
        from eventstore import open_store
        s = open_store("sqlite:///{db}")
        for b in range(20):
            docs = [{{"@timestamp": "2024-05-01T10:00:00Z", "event.id": f"w{{b}}-{{i}}", "event.dataset": "w"}}
                    for i in range(200)]
            assert s.write_events(docs).written == 200
        s.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=REPO, stderr=subprocess.PIPE, text=True)
    seen = []
    while proc.poll() is None:
        seen.append(store.count("event.dataset:w"))
        scanned = sum(1 for _ in store.scan("event.dataset:w", batch_size=500))
        assert scanned >= seen[-1]
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert store.count("event.dataset:w") == 4000
    assert seen == sorted(seen) and all(n % 200 == 0 for n in seen)  # whole batches appear, one at a time
    store.close()


# -- writes -------------------------------------------------------------------------------


def test_write_path_errors_and_positions(sqlite_store: SQLiteStore) -> None:
    batch: list[Any] = [
        ev(1),
        "not a dict",
        {"@timestamp": "2024-05-01T10:00:00Z", "event.id": 17},
        ev(2, **{"@timestamp": 1714557600000}),  # epoch millis
        ev(3, **{"@timestamp": "2024-05-01T12:00:00+02:00"}),
        ev(4, **{"@timestamp": "now"}),
        ev(5, **{"labels.weird": {1, 2}}),  # a set is not JSON
        ev(6),
    ]
    res = sqlite_store.write_events(batch)
    assert res.written == 4 and res.duplicates == 0
    assert [key for key, _ in res.errors] == ["1", "2", "e00004", "e00005"]
    assert "not a JSON object" in res.errors[0][1] and "bad @timestamp" in res.errors[2][1]
    assert sqlite_store.count('@timestamp:"2024-05-01T10:00:00Z"') == 2  # the epoch-ms one and the +02:00 one


def test_hot_field_holding_an_array(sqlite_store: SQLiteStore) -> None:
    """A list in a hot column's field: the column stays empty, queries fall back to the JSON."""
    batch = [ev(1, **{"host.name": ["h1", "h2"]}), ev(2, **{"host.name": "h2"}), ev(3, **{"host.name": ["h3"]}),
             {"event.id": "no-ts"}]
    res = sqlite_store.write_events(batch)
    assert (res.written, [k for k, _ in res.errors]) == (3, ["no-ts"])  # the error is reported once
    assert sqlite_store.count("host.name:h2") == 2
    assert sqlite_store.count("host.name:h1") == 1
    assert sqlite_store.count("host.name:h3") == 1  # a one-element list goes to the column
    assert sqlite_store.count("NOT host.name:h2") == 1
    assert sqlite_store.count("_exists_:host.name") == 3
    assert sqlite_store.aggregate(["host.name"]) == [
        {"host.name": "h2", "count": 2}, {"host.name": "h1", "count": 1}, {"host.name": "h3", "count": 1}]
    assert sqlite_store.get_event("e00001")["host.name"] == ["h1", "h2"]  # type: ignore[index]


def test_unbindable_row_redoes_the_batch_checked(sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row SQLite cannot bind, steps into a batch: the batch is redone checking each document,
    nothing is written twice and each error is reported once."""
    import eventstore.sqlite_store as mod

    monkeypatch.setattr(mod, "STEP", 2)
    batch = [ev(1), ev(2), ev(3, **{"user.name": ["a", "b"]}), {"event.id": "x"}, ev(5), ev(1)]
    res = sqlite_store.write_events(batch)
    assert (res.written, res.duplicates, res.errors) == (4, 1, [("x", "missing @timestamp")])
    assert sqlite_store.count("user.name:b") == 1 and sqlite_store.count() == 4


def test_steps_of_the_real_size_store_what_one_statement_would(sqlite_store: SQLiteStore) -> None:
    """A batch over two steps at the real ``STEP``: a duplicate across the step boundary keeps
    the first row, a refused document in the second step is reported once, every stored row is
    the careful one."""
    from eventstore.sqlite_rows import careful_row
    from eventstore.sqlite_store import STEP, insert_sql

    batch: list[Any] = [ev(i) for i in range(STEP + 50)]
    batch[STEP + 10] = ev(3, **{"event.dataset": "the duplicate"})  # an id of the first step
    batch[STEP + 20] = {"event.id": "x"}
    res = sqlite_store.write_events(batch)
    assert (res.written, res.duplicates, res.errors) == (STEP + 48, 1, [("x", "missing @timestamp")])
    plain = SQLiteStore(":memory:")
    try:
        plain.init()
        rows = [r for i, doc in enumerate(batch) if (r := careful_row(doc, i, tuple(EVENTS.hot), []))]
        plain._conn.executemany(insert_sql(EVENTS), rows)
        table = "SELECT * FROM events ORDER BY event_id"
        assert sqlite_store._conn.execute(table).fetchall() == plain._conn.execute(table).fetchall()
    finally:
        plain.close()


def test_an_id_twice_in_a_step_keeps_the_first_document(sqlite_store: SQLiteStore) -> None:
    """Rows go to SQLite grouped by the columns they hold; when an id is in two groups of one
    step, the first document is still the one stored (as Elasticsearch's ``create`` keeps it),
    whichever group it is in, and the step's errors are reported once."""
    kept = ev(7, **{"event.dataset": "kept"})
    again = ev(7, **{"user.name": "again"})  # the same id with user.name: another group, met first
    batch: list[Any] = [ev(2, **{"user.name": "u"}), kept, ev(1), {"event.id": "x"}, again, ev(3)]
    res = sqlite_store.write_events(batch)
    assert (res.written, res.duplicates, res.errors) == (4, 1, [("x", "missing @timestamp")])
    stored = sqlite_store.get_event("e00007")
    assert stored is not None and "user.name" not in stored and stored["event.dataset"] == "kept"
    batch = [ev(9), ev(8, **{"user.name": "kept"}), ev(8, **{"event.dataset": "again"})]
    res = sqlite_store.write_events(batch)
    assert (res.written, res.duplicates, res.errors) == (2, 1, [])
    assert sqlite_store.get_event("e00008")["user.name"] == "kept"  # type: ignore[index]
    assert sqlite_store.count("user.name:kept") == 1 and sqlite_store.count("user.name:again") == 0


def test_prepare_rows_is_what_is_stored() -> None:
    errors: list[tuple[int, str, str]] = []
    rows = prepare_rows([ev(1), {"x": 1}], EVENTS, errors)
    assert len(rows) == 1 and rows[0][0] == "e00001" and rows[0][1] == 1714557601000  # the time as epoch ms
    assert errors == [(1, "1", "missing event.id")]


# -- reading ------------------------------------------------------------------------------


def test_hot_fields_use_their_index(sqlite_store: SQLiteStore) -> None:
    conn = sqlite_store._conn
    for query, index in [("user.name:root", "events_user_name"), ("event.dataset:network.flow", "events_event_dataset"),
                         ('source.ip:"10.0.0.1"', "events_source_ip"), ("host.name:web*", "events_host_name")]:
        b = WhereBuilder(EVENTS)
        plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM events e WHERE {b.where(parse(query))}", b.params)
        assert index in " ".join(str(r[3]) for r in plan), query


def test_text_regexp_and_projection(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write_events([
        ev(1, message="Connection closed by 10.0.0.9 port 22 [preauth]", **{"process.name": "sshd"}),
        ev(2, message="session opened for user Root by (uid=0)", **{"process.name": "sudo"}),
    ])
    assert sqlite_store.count("message:ROOT") == 1
    assert sqlite_store.count('message:"closed by 10.0.0.9"') == 1
    assert sqlite_store.count("message:uid*") == 1
    assert sqlite_store.count("process.name:/s+hd|su.o/") == 2
    assert sqlite_store.count("process.name:/ssh/") == 0  # anchored, as in Lucene
    hit = sqlite_store.search("process.name:sudo", fields=["source.*", "event.id"]).hits[0]
    assert hit == {"source.ip": "10.0.0.2", "event.id": "e00002"}


def test_scan_pages_survive_writes_between_batches(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write_events([ev(i) for i in range(30)])
    it = sqlite_store.scan(batch_size=10)
    first = [next(it)["event.id"] for _ in range(10)]
    sqlite_store.write_events([ev(100 + i, **{"@timestamp": "2024-05-01T09:00:00Z"}) for i in range(5)])  # older
    rest = [d["event.id"] for d in it]
    assert first + rest == [f"e{i:05d}" for i in range(30)]  # keyset pages: no repeats, no skips


def test_time_window_and_sort_on_other_types(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write_events([ev(1, **{"source.ip": "10.0.0.10"}), ev(2, **{"source.ip": "10.0.0.9"}),
                               ev(3, **{"source.ip": "2001:db8::1"})])
    assert [h["source.ip"] for h in sqlite_store.search(sort="source.ip", descending=False).hits] == [
        "10.0.0.9", "10.0.0.10", "2001:db8::1"]
    since = datetime(2024, 5, 1, 10, 0, 2, tzinfo=UTC)
    assert sqlite_store.count(since=since) == 2
    # sub-millisecond bounds: [10:00:01.0005, 10:00:02.0005) holds only the 10:00:02.000 event
    assert sqlite_store.count(since=datetime(2024, 5, 1, 10, 0, 1, 500, tzinfo=UTC),
                              until=datetime(2024, 5, 1, 10, 0, 2, 500, tzinfo=UTC)) == 1
    with pytest.raises(StoreError):
        sqlite_store.count(index="nope")  # type: ignore[arg-type]


def test_aggregate_other_metrics(sqlite_store: SQLiteStore) -> None:
    sqlite_store.write_events([ev(i, **{"event.start": f"2024-04-30T23:59:{i:02d}Z", "source.bytes": [i, 10]})
                               for i in range(1, 4)])
    [row] = sqlite_store.aggregate(["event.dataset"], {
        "last": Metric("max", "event.start"), "bytes": Metric("sum", "source.bytes"),
        "avg": Metric("avg", "source.bytes"), "ips": Metric("cardinality", "source.ip")})
    # arrays: every value counts (1+2+3 + 3*10), the average is over the six values
    assert row == {"event.dataset": "test.data", "count": 3, "last": "2024-04-30T23:59:03.000Z", "bytes": 36,
                   "avg": 6.0, "ips": 3}
    with pytest.raises(StoreError):
        sqlite_store.aggregate([], {"x": Metric("sum")})
    with pytest.raises(ValueError):
        sqlite_store.aggregate([], interval_seconds=0)


# -- alerts and status --------------------------------------------------------------------


def test_alert_history_is_append_only(sqlite_store: SQLiteStore) -> None:
    sqlite_store.put_alerts([ev(1, **{"event.kind": "alert", "ztsoc.alert.level": "high"})])
    with pytest.raises(StoreError):
        sqlite_store.update_alert("e00001", AlertChange("eve", "rewrite", {"ztsoc.alert.history": []}))
    assert sqlite_store.count("ztsoc.alert.level:high", index="alerts") == 1  # a hot alert column


def test_status_counts_and_size(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'soc.db'}")
    store.write_events([ev(i, **{"event.dataset": "a" if i % 3 else "b"}) for i in range(30)])
    st = store.status()
    assert (st.backend, st.events, st.alerts) == ("sqlite", 30, 0)
    assert st.per_dataset == {"a": 20, "b": 10}
    assert st.first_event == "2024-05-01T10:00:00.000Z" and st.last_event == "2024-05-01T10:00:29.000Z"
    assert st.size_bytes >= os.path.getsize(tmp_path / "soc.db") > 0
    store.close()


def test_a_file_from_schema_version_2_gains_the_new_hot_column(tmp_path: Path) -> None:
    """Files made before ``ztsoc.alert.suppressed`` became a column keep working, filled from the documents."""
    import sqlite3 as _sqlite3

    from eventstore import open_store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url)
    store.put_alerts([{"event.id": "a1", "@timestamp": "2026-11-20T10:00:00.000Z", "ztsoc.alert.suppressed": True},
                      {"event.id": "a2", "@timestamp": "2026-11-20T10:00:00.000Z"}])
    store.close()
    con = _sqlite3.connect(tmp_path / "old.db")  # make it look like a version-2 file
    con.execute("DROP INDEX alerts_ztsoc_alert_suppressed")
    con.execute("ALTER TABLE alerts DROP COLUMN ztsoc_alert_suppressed")
    con.execute("PRAGMA user_version=2")
    con.commit()
    con.close()
    store = open_store(url)
    try:
        assert store.count("ztsoc.alert.suppressed:true", index="alerts") == 1
        assert store.count("NOT ztsoc.alert.suppressed:true", index="alerts") == 1
    finally:
        store.close()
