"""Fixtures shared by the whole suite: a fresh store of each backend.

``store`` is parametrised over both backends, so any test that takes it runs on the
embedded SQLite store and on the real Elasticsearch node that ``make test`` starts
(``SOC_TEST_ES_URL``). Each Elasticsearch test gets its own index prefix and drops it
afterwards, so tests never see each other's documents.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import Store, open_store

ES_URL = os.environ.get("SOC_TEST_ES_URL")

# the dashboard's browser fixtures (Chromium, a seeded dashboard, a page that records errors)
pytest_plugins = ["tests.dashboard_browser"]

# the compiled-rule cache of the test run, apart from the user's own (~/.cache/ztsoc)
os.environ.setdefault("SOC_CACHE_DIR", tempfile.mkdtemp(prefix="ztsoc-test-cache-"))


def es_store_url() -> str:
    if not ES_URL:
        pytest.skip("SOC_TEST_ES_URL is not set: run `make test` (it starts Elasticsearch) or `make es-up`")
    return f"{ES_URL.rstrip('/')}/?prefix=ztsoc-test-{uuid.uuid4().hex[:10]}"


def _open(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'soc.db'}")
    return open_store(es_store_url())


def _drop(store: Store) -> None:
    drop = getattr(store, "drop", None)
    if drop is not None:
        drop()
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("es", marks=pytest.mark.es)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, initialised store of each backend."""
    s = _open(request.param, tmp_path)
    try:
        yield s
    finally:
        _drop(s)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = _open("sqlite", tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def es_store(tmp_path: Path) -> Iterator[Store]:
    s = _open("es", tmp_path)
    try:
        yield s
    finally:
        _drop(s)
