"""The store refuses nothing silently and never wedges: unencodable text, a full disk, a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.jsonl import JsonlReader
from collectors.pipeline import ingest
from eventstore import Store
from eventstore.errors import StoreCorrupt, StoreFull, StoreUnavailable
from eventstore.sqlite_store import SQLiteStore
from eventstore.text import REPLACED_TAG, replace_unencodable


def test_replace_unencodable_keeps_pairs_and_replaces_lone_surrogates() -> None:
    assert replace_unencodable({"a": "plain", "b": ["x", 1]}) is None
    doc = {"user.name": "ad\ud800min", "tags": ["x"], "nested": {"k\udc00": ["\ud83d\ude00", "\udfff"]}}
    out = replace_unencodable(doc)
    assert out == {"user.name": "ad\ufffdmin", "tags": ["x", REPLACED_TAG],
                   "nested": {"k\ufffd": ["\U0001F600", "\ufffd"]}}
    assert doc["user.name"] == "ad\ud800min"  # the caller's document is not changed


def test_a_lone_surrogate_is_stored_replaced_and_marked(tmp_path: Path, store: Store) -> None:
    """Once every ingest stopped at the same batch forever (UnicodeEncodeError on write)."""
    path = tmp_path / "bad.jsonl"
    lines = [{"@timestamp": "2026-11-25T08:00:00Z", "event.id": f"e{i}", "user.name": f"u{i}"} for i in range(5)]
    text = "\n".join(json.dumps(d) for d in lines).replace('"u2"', '"u\\ud800"') + "\n"
    path.write_text(text)
    report = ingest(store, JsonlReader(), [path])
    assert report.written == 5 and report.problem_count == 0
    store.refresh()
    got = store.get_event("e2")
    assert got is not None and got["user.name"] == "u\ufffd" and REPLACED_TAG in got["tags"]
    again = ingest(store, JsonlReader(), [path])
    assert again.written == 0


@pytest.mark.parametrize("ident", ["e\ud8002", "long-" + "x" * 200 + "\udfff"])
def test_a_lone_surrogate_in_the_event_id_is_stored_replaced_and_marked(store: Store, ident: str) -> None:
    """The id is text like any other: both stores store it replaced (and tagged), the same way; a rerun
    stores nothing twice (Elasticsearch once refused the whole document for its id)."""
    events = [{"@timestamp": "2026-11-25T08:00:00Z", "event.id": ident, "user.name": "u"},
              {"@timestamp": "2026-11-25T08:00:01Z", "event.id": "plain", "user.name": "v"}]
    first = store.write_events(events)
    assert (first.written, first.errors) == (2, [])
    store.refresh()
    replaced = ident.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    got = store.get_event(replaced)
    assert got is not None and got["event.id"] == replaced and REPLACED_TAG in got["tags"]
    assert store.count() == 2
    again = store.write_events(events)
    assert (again.written, again.duplicates) == (0, 2)


def _big_events(n: int, start: int = 0) -> list[dict]:
    return [{"@timestamp": "2026-11-25T08:00:00Z", "event.id": f"big{i}", "message": "x" * 4000}
            for i in range(start, start + n)]


def test_a_full_disk_says_so_and_the_store_goes_on_once_there_is_room(tmp_path: Path) -> None:
    """SQLITE_FULL from a real SQLite limit (max_page_count), once reported as 'cannot rollback'."""
    store = SQLiteStore(str(tmp_path / "full.db"))
    store.init()
    store.write_events(_big_events(10))
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages + 5}")
    with pytest.raises(StoreFull, match="SQLITE_FULL") as caught:
        store.write_events(_big_events(200, 10))
    assert "\n" not in str(caught.value) and "rollback" not in str(caught.value)
    assert store.count() == 10  # nothing of the failed batch, everything before it
    store._conn.execute("PRAGMA max_page_count=1073741823")
    assert store.write_events(_big_events(200, 10)).written == 200


def test_a_damaged_file_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "soc.db"
    store = SQLiteStore(str(path))
    store.init()
    store.write_events(_big_events(300))
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for at in range(page * 3, min(len(data), page * 40), page):  # scribble over table and index pages
        data[at + 8:at + 200] = b"\xa5" * 192
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="quick_check") as caught:
        SQLiteStore.from_url(f"sqlite:///{path}?check=quick")
    assert "\n" not in str(caught.value)
    damaged = SQLiteStore(str(path))
    with pytest.raises(StoreCorrupt, match="damaged"):
        list(damaged.scan("*"))
    damaged.close()


def test_a_foreign_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreUnavailable, match=r"not a (SQLite )?database") as caught:
        SQLiteStore(str(path)).init()
    assert "\n" not in str(caught.value)
