"""The one interface every part of ztsoc reads and writes through.

Two backends implement it (``eventstore.sqlite_store`` and ``eventstore.es_store``) and
one conformance suite (``tests/test_store_conformance.py``) proves they give the same
answers. Documents are flat dicts keyed by ECS dotted names (``{"source.ip": "10.0.0.1"}``):
that is what collectors emit, what Sigma field mappings name, what Elasticsearch accepts
and returns unchanged, and what ``--json`` prints.

Two document families live in the store, chosen with ``index=``:

- ``events``: everything collected or decided (flows, DNS, auth, policy decisions);
  written once, idempotent by ``event.id``.
- ``alerts``: ``event.kind: alert`` documents; upserted by ``event.id`` so a detection
  rerun refreshes an alert instead of duplicating it, while the analyst's lifecycle
  fields (``ztsoc.alert.*``) and the audit history survive.

Small named documents (collector and rule cursors, exceptions, model metadata, the
trainees' scoreboard) are ``state``: ``(kind, key) -> dict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

Doc = dict[str, Any]
Index = Literal["events", "alerts"]

#: Alert lifecycle fields, owned by analysts; a detection rerun never overwrites them.
ALERT_STATUS = "ztsoc.alert.status"
ALERT_ASSIGNEE = "ztsoc.alert.assignee"
ALERT_REASON = "ztsoc.alert.close_reason"
ALERT_HISTORY = "ztsoc.alert.history"
ALERT_LIFECYCLE_FIELDS = (ALERT_STATUS, ALERT_ASSIGNEE, ALERT_REASON, ALERT_HISTORY)
ALERT_STATUSES = ("open", "acknowledged", "escalated", "closed")


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int = 0
    duplicates: int = 0
    #: (event.id or position in the batch, reason) for each document refused
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    hits: list[Doc]


@dataclass(frozen=True, slots=True)
class Metric:
    """One value computed per bucket: ``count``, ``cardinality``, ``sum``, ``min``, ``max``, ``avg``."""

    op: Literal["count", "cardinality", "sum", "min", "max", "avg"]
    field: str | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    backend: str
    url: str
    events: int
    alerts: int
    per_dataset: dict[str, int]
    size_bytes: int
    first_event: str | None = None
    last_event: str | None = None


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One entry of an alert's audit trail (``ztsoc.alert.history``)."""

    actor: str
    action: str
    changes: Mapping[str, Any]
    note: str | None = None


@runtime_checkable
class Store(Protocol):
    """What every backend offers. Times are aware datetimes; ``None`` means unbounded."""

    backend: str
    url: str

    def init(self) -> None:
        """Create tables / index templates; safe to call again."""

    def close(self) -> None:
        """Release the connection; what this client wrote is visible to every reader first."""

    def refresh(self) -> None:
        """Make everything this client wrote visible to every other reader now.

        Writers call it where a command's work is done (end of an ingest, of a detection run),
        so the next command, in any process, reads what this one wrote. The embedded store's
        commits are visible at once (nothing to do); Elasticsearch refreshes the indices written.
        """

    # -- events -------------------------------------------------------------------------
    def write_events(self, events: Iterable[Doc]) -> WriteResult:
        """Store a batch; each needs ``event.id`` and ``@timestamp``. Same id twice: stored once."""
        ...

    def write_batches(self, batches: Iterable[Iterable[Doc]]) -> list[WriteResult]:
        """``write_events`` for each batch, one result per batch (positions within the batch),
        in as few round trips as the backend needs: an ingest of many small files sends
        them together. When the store refuses some (``StoreRefused``), its ``results`` say
        which batches were stored whole."""
        ...

    def get_event(self, event_id: str) -> Doc | None: ...

    # -- reading (both indices) ---------------------------------------------------------
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
        """Lucene query string (Kibana syntax) over ``[since, until)``; ties broken by ``event.id``."""
        ...

    def count(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events",
    ) -> int: ...

    def scan(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events", fields: Sequence[str] | None = None, batch_size: int = 5000,
    ) -> Iterator[Doc]:
        """Every match, oldest first by (``@timestamp``, ``event.id``), streamed in batches."""
        ...

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
        """Group matching documents by fields (and a time bucket when ``interval_seconds``).

        Each row has the group fields (``@timestamp`` as the bucket start, ISO, when bucketed),
        ``"count"``, and one key per metric. Documents missing a group field are left out.
        Rows are ordered by count descending, then by the group values ascending.
        """
        ...

    # -- alerts -------------------------------------------------------------------------
    def put_alerts(self, alerts: Iterable[Doc]) -> WriteResult:
        """Upsert by ``event.id``; an existing alert keeps its lifecycle fields and history."""
        ...

    def get_alert(self, alert_id: str) -> Doc | None: ...

    def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Doc]:
        """Many ``get_alert`` in one round trip: id -> alert, for the ids that exist."""
        ...

    def update_alert(self, alert_id: str, change: AlertChange) -> Doc:
        """Apply ``change.changes`` and append the change to the history; returns the new alert."""
        ...

    # -- state --------------------------------------------------------------------------
    def get_state(self, kind: str, key: str) -> Doc | None: ...

    def put_state(self, kind: str, key: str, value: Doc) -> None: ...

    def get_states(self, kind: str, keys: Sequence[str]) -> dict[str, Doc]:
        """Many ``get_state`` in one round trip (a detection run reads a cursor per rule)."""
        ...

    def put_states(self, kind: str, values: Mapping[str, Doc]) -> None:
        """Many ``put_state`` in one round trip / transaction: thousands of rule cursors at the end
        of a run cost one request, not one (fsynced) write each."""
        ...

    def delete_state(self, kind: str, key: str) -> None: ...

    def list_state(self, kind: str) -> list[tuple[str, Doc]]: ...

    def status(self) -> StoreStatus: ...
