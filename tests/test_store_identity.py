"""Store identity and versions, both backends: a store records its schema version; a store of
another application is never adopted (nothing written to it); a newer schema is refused with
one line naming the version needed; an older one is migrated with a message."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import es_store_url

from eventstore import es_templates, open_store
from eventstore.errors import StoreError
from eventstore.es_store import ElasticsearchStore
from eventstore.sqlite_store import APPLICATION_ID, SCHEMA_VERSION


def _pragmas(path: Path) -> tuple[int, int, str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("PRAGMA application_id").fetchone()[0], conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master")))
    finally:
        conn.close()


def test_a_new_sqlite_store_records_its_identity_and_version(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'new.db'}")
    store.close()
    app, version, _, names = _pragmas(tmp_path / "new.db")
    assert (app, version) == (APPLICATION_ID, SCHEMA_VERSION)
    assert {"events", "alerts", "state"} <= set(names)


def test_a_foreign_sqlite_file_is_never_adopted(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.commit()
    conn.close()
    before = _pragmas(path)
    with pytest.raises(StoreError, match=re.escape("is not a ztsoc store (it holds table(s) customers")):
        open_store(f"sqlite:///{path}")
    out = subprocess.run([sys.executable, "-m", "soc_cli.main", "store", "status", "--store", f"sqlite:///{path}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "not a ztsoc store" in out.stderr
    assert _pragmas(path) == before  # no table added, not even switched to WAL


def test_a_newer_sqlite_schema_is_refused_naming_the_version(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    open_store(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert f"reads schema {SCHEMA_VERSION + 1}" in str(info.value) and "\n" not in str(info.value)


def test_an_older_sqlite_store_is_migrated_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = open_store(f"sqlite:///{path}")
    store.write_events([{"@timestamp": "2026-03-01T12:00:00Z", "event.id": "kept", "event.dataset": "x"}])
    store.close()
    conn = sqlite3.connect(path)  # what a ztsoc before the application id left: user_version 2, id 0
    conn.execute("PRAGMA application_id=0")
    conn.execute("PRAGMA user_version=2")
    conn.close()
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.notices == [f"SQLite store {path}: schema 2 migrated to {SCHEMA_VERSION}"]  # type: ignore[attr-defined]
        assert store.get_event("kept") is not None
    finally:
        store.close()
    assert _pragmas(path)[:2] == (APPLICATION_ID, SCHEMA_VERSION)


@pytest.fixture
def es_url() -> str:
    return es_store_url()


def _drop(url: str) -> None:
    s = ElasticsearchStore.from_url(url)
    s.drop()
    s.close()


@pytest.mark.es
def test_elasticsearch_records_refuses_and_migrates(es_url: str) -> None:
    store = ElasticsearchStore.from_url(es_url)
    try:
        store.init()
        meta = store._es.indices.get_mapping(index=f"{store.prefix}-state")[f"{store.prefix}-state"]["mappings"]["_meta"]
        assert meta == es_templates.store_meta()
        assert store.notices == []
        # newer
        store._es.indices.put_mapping(index=f"{store.prefix}-state", meta={"managed_by": "ztsoc", "schema_version": 99})
        with pytest.raises(StoreError, match="reads schema 99"):
            ElasticsearchStore.from_url(es_url).init()
        # older: a state index as a ztsoc without recorded versions made it
        store._es.indices.delete(index=f"{store.prefix}-state")
        store._es.indices.create(index=f"{store.prefix}-state", mappings=es_templates.state_mappings())
        again = ElasticsearchStore.from_url(es_url)
        again.init()
        assert again.notices == [f"Elasticsearch store {again.url}: schema 1 migrated to "
                                 f"{es_templates.STORE_SCHEMA_VERSION}"]
        again.close()
    finally:
        store.close()
        _drop(es_url)


@pytest.mark.es
def test_elasticsearch_never_adopts_a_foreign_index(es_url: str) -> None:
    probe = ElasticsearchStore.from_url(es_url)
    name = f"{probe.prefix}-state"
    probe._es.indices.create(index=name, mappings={"properties": {"customer": {"type": "keyword"}}})
    try:
        with pytest.raises(StoreError, match="not a ztsoc store's index"):
            ElasticsearchStore.from_url(es_url).init()
        assert not probe._es.indices.exists_index_template(name=f"{probe.prefix}-events")  # nothing put
    finally:
        probe._es.indices.delete(index=name)
        probe.close()
