"""One event store for ztsoc: the schema, the ``Store`` protocol and its backends.

``open_store(url)`` picks a backend by URL scheme from ``BACKENDS`` (a registry, so a new
backend is one entry, not another branch): ``sqlite:///path/soc.db`` (the embedded default)
or ``http(s)://host:9200`` (Elasticsearch).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from eventstore.errors import QuerySyntaxError, StoreError, StoreUnavailable, StoreURLError
from eventstore.store import AlertChange, Doc, Metric, SearchResult, Store, StoreStatus, WriteResult

__all__ = [
    "BACKENDS",
    "AlertChange",
    "Doc",
    "Metric",
    "QuerySyntaxError",
    "SearchResult",
    "Store",
    "StoreError",
    "StoreStatus",
    "StoreURLError",
    "StoreUnavailable",
    "WriteResult",
    "default_store_url",
    "open_store",
]

#: URL scheme -> "module:factory"; the factory takes the URL and returns a Store.
BACKENDS: dict[str, str] = {
    "sqlite": "eventstore.sqlite_store:SQLiteStore.from_url",
    "http": "eventstore.es_store:ElasticsearchStore.from_url",
    "https": "eventstore.es_store:ElasticsearchStore.from_url",
}


def default_store_url() -> str:
    """``SOC_STORE``, else a SQLite file in the user's data directory."""
    if url := os.environ.get("SOC_STORE"):
        return url
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('ztsoc')) / 'soc.db'}"


def open_store(url: str | None = None, *, init: bool = True) -> Store:
    url = url or default_store_url()
    scheme = urlsplit(url).scheme
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise StoreURLError(f"unknown store URL {url!r}: expected one of {known}")
    module_name, _, attr = target.partition(":")
    factory: object = importlib.import_module(module_name)
    for part in attr.split("."):
        factory = getattr(factory, part)
    store: Store = factory(url)  # type: ignore[operator]
    if init:
        store.init()
    return store
