"""Errors every backend raises the same way, so callers handle them once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventstore.store import WriteResult


class StoreError(Exception):
    """Base class of everything the store raises on purpose."""


class StoreURLError(StoreError):
    """The store URL names no backend we know, or is malformed."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached (Elasticsearch down, SQLite file unreadable)."""


class StoreFull(StoreUnavailable):
    """The store's disk is full (SQLITE_FULL): nothing of the failed write was stored."""


class StoreCorrupt(StoreUnavailable):
    """The store's file is damaged (SQLITE_CORRUPT, a page that no longer holds what was written)."""


class QuerySyntaxError(StoreError):
    """A query string that does not parse; ``position`` is the 0-based offset of the fault."""

    def __init__(self, message: str, query: str, position: int | None = None) -> None:
        self.query = query
        self.position = position
        self.reason = message
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"bad query{where}: {message}")

    def pointer(self) -> str:
        """The query with a caret under the fault, for a terminal."""
        if self.position is None:
            return self.query
        return f"{self.query}\n{' ' * self.position}^"


class PartialAnswer(StoreError):
    """The backend answered for only part of the data (failed shards, a timed-out search, a partial
    aggregation): never passed on as a whole answer."""


class AlertNotFound(StoreError):
    """No alert has that id."""


class StoreRefused(StoreError):
    """The store refused writes for a reason that passes or that an operator fixes (a write
    block, a read-only index, a full disk, a node too busy after every retry), not because the
    events are invalid: nothing from the refused events on may be checkpointed, so a rerun
    stores them. ``cause`` names the reason as the node gave it.

    ``results`` (from ``Store.write_batches``): per batch written, its ``WriteResult`` when none
    of its events was refused, else ``None``; empty when unknown (then no batch counts as stored)."""

    def __init__(self, message: str, cause: str, refused: int, results: Sequence[WriteResult | None] = ()) -> None:
        super().__init__(message)
        self.cause = cause
        self.refused = refused
        self.results = list(results)
