"""The Elasticsearch backend of the ``Store`` protocol (the way past one machine).

Layout (see ``eventstore.es_templates``): events go through the write alias ``P-events``
to rollover indices ``P-events-000001``, ``-000002``...; one ``P-alerts`` index and one
``P-state`` index per prefix ``P``. Reads cover ``P-events-*``, which also holds the
monthly indices ``P-events-YYYY.MM`` of stores made before rollover (read, never written).

Why rollover and not an index per event month: back-filled history (EVTX samples from
2013 to 2022) made a shard per month, 60 shards for 25k events. The minimal distribution
has neither data streams nor ILM, so the store rolls the alias over itself (the core
``_rollover`` API with size/age conditions), before the first bulk request of each
``write_events``/``write_batches`` and every ``Rollover.check_every`` events (or
``check_seconds``) within one; never ahead of events to write (no empty index is made).

Never twice: the document ``_id`` is the ``event.id`` and writes are ``op_type=create``,
so writing an event again into the same index is a counted duplicate (409). Since a
rollover changes the index, a batch is first looked up (one ``ids`` query) in the other
event indices, which are no longer written (each is refreshed when rolled over); the
lookup is skipped while the write index is the only event index. A batch always goes to
the concrete index it was built for, never through the alias, so a resend after a dropped
connection hits the index of the first try even if another process rolled over meanwhile.

Several nodes: the client round-robins over every node named in the URL and sets a node
that fails aside (sniffing for more nodes is off unless ``?sniff=true``: behind a proxy
or NAT the addresses nodes publish are not reachable).

Hand-written here, and why:

- the bulk loop: ``helpers.streaming_bulk`` re-serialises each action through the client
  and parses full item responses; we build the NDJSON body once with orjson, ask the node
  only for item statuses (``filter_path``), keep two requests in flight (the next batch is
  serialised while the node indexes this one; the caller waits beyond that), retry only the
  items refused with 429, and back off on whole-request 429/5xx and dropped connections
  (idempotent creates make resending safe: an item that landed before the drop comes back
  as a duplicate);
- lazy refresh: writes never wait for a refresh; the first read after a write refreshes
  the indices this process touched, so a process always reads its own writes; other
  processes see them after ``refresh()``, which writers call where a command's work is done
  (an ingest, a detection run), and which ``close()`` calls too; single alert updates
  and alert upserts are visible when they return (the next ``soc alerts`` sees them);
- alert upserts: the node has no scripting module, so the merge (keep the analyst's
  lifecycle fields and history) happens here, guarded by ``if_seq_no``/``if_primary_term``
  and retried on conflict.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import orjson
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
    UnsupportedProductError,
)
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import ConnectionTimeout as ESConnectionTimeout

from eventstore import es_templates
from eventstore.alerts import apply_change, merge_alert
from eventstore.errors import (
    AlertNotFound,
    PartialAnswer,
    QuerySyntaxError,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    StoreURLError,
)
from eventstore.schema import field_type
from eventstore.store import (
    AlertChange,
    Doc,
    Index,
    Metric,
    SearchResult,
    StoreStatus,
    WriteResult,
)
from eventstore.text import replace_unencodable
from eventstore.timeutil import from_iso, to_iso, utcnow
from eventstore.validate import problem

T = TypeVar("T")

DEFAULT_PREFIX = "ztsoc"
_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")
#: Whole-request statuses worth resending: the node is busy or briefly away.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Item statuses worth resending (rejected execution: the write queue was full).
ITEM_RETRY_STATUSES = frozenset({429, 503})
_BULK_FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.reason"
_MAX_WINDOW = 10_000  # index.max_result_window
_URL_PARAMS = frozenset({"prefix", "sniff"})
#: Field paths remembered per write index (hostile input could bring a new one per event).
_MAX_KNOWN_FIELDS = 50_000
_ORJSON_OPTS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
_JAVA_EXCEPTION = re.compile(r"^[\w.$]+(?:Exception|Error): ")
_LINE_COL = re.compile(r"line (\d+), column (\d+)")
#: Lucene's parse message: ``Encountered " <KIND> "IMAGE "" at line 1, column 6.`` (0-based column)
_ENCOUNTERED = re.compile(r'Encountered " (\S+) "(.*?) "" at line')


@dataclass(frozen=True, slots=True)
class _Pending:
    """One bulk item, serialised once: ``ident`` names it in errors. An event's action line
    names no index: its request does (``/<index>/_bulk``), decided when the request is full."""

    ident: str
    lines: bytes
    #: which batch of ``write_batches`` it belongs to (its counts and errors go there)
    group: int = 0


@dataclass(frozen=True, slots=True)
class Rollover:
    """When the store starts a new event index (the conditions of the ``_rollover`` API).

    Size bounds a shard (Elastic advises 10-50 GB); age bounds how much one index holds in
    wall-clock time, so retention can drop whole indices; ``min_docs`` keeps an idle store
    from rolling over into empty indices. ``max_docs`` is for tests and small clusters.
    """

    max_primary_shard_size: str = "20gb"
    max_age: str = "30d"
    max_docs: int | None = None
    min_docs: int = 1
    #: Events, or seconds, between two checks (each check is a refresh and a ``_rollover`` call).
    check_every: int = 1_000_000
    check_seconds: float = 60.0

    def conditions(self) -> dict[str, Any]:
        found: dict[str, Any] = {"max_primary_shard_size": self.max_primary_shard_size, "max_age": self.max_age,
                                 "min_docs": self.min_docs}
        if self.max_docs is not None:
            found["max_docs"] = self.max_docs
        return found


def _json_type(value: Any) -> str | None:
    """The node's dynamic-mapping name for a JSON value's type; ``None`` for objects and lists."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return None


def _check_timestamp(ts: Any) -> None:
    """Refuse a ``@timestamp`` that is not a time (the fast path covers what we write, ``...Z``)."""
    if isinstance(ts, str):
        if len(ts) >= 20 and ts[-1] == "Z" and ts[4] == "-" and ts[7] == "-" and ts[:4].isdigit():
            return
        from_iso(ts)
    elif isinstance(ts, datetime):
        return
    elif isinstance(ts, int | float) and not isinstance(ts, bool):
        datetime.fromtimestamp(ts / 1000, UTC)
    else:
        raise ValueError(f"@timestamp is {type(ts).__name__}, expected an ISO 8601 string")


def _epoch_ms_ceil(ts: datetime) -> int:
    """Stored times have millisecond precision: ``doc >= t`` iff ``doc >= ceil(t)`` in ms."""
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    micros = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return -(-micros // 1000)


def _reason(error: Any) -> str:
    """One line from an ES error object: ``type: reason (caused by ...)``."""
    if not isinstance(error, Mapping):
        return str(error)
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    if isinstance(cause, Mapping) and cause.get("reason"):
        text += f" ({cause['reason']})"
    return text


def _all_reasons(error: Any) -> list[str]:
    """Every ``reason`` in an error body, outermost first (parse details sit deep inside)."""
    found: list[str] = []
    stack = [error]
    while stack:
        node = stack.pop(0)
        if isinstance(node, Mapping):
            if isinstance(node.get("reason"), str):
                found.append(node["reason"])
            for key in ("caused_by", "root_cause", "failed_shards", "reason"):
                child = node.get(key)
                if isinstance(child, list):
                    stack.extend(child)
                elif isinstance(child, Mapping):
                    stack.append(child)
    return found


def _error_types(error: Any) -> set[str]:
    types: set[str] = set()
    stack = [error]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("type"), str):
                types.add(node["type"])
            for value in node.values():
                if isinstance(value, Mapping | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return types


def _positioned_error(reasons: Iterable[str], query: str) -> QuerySyntaxError | None:
    """Lucene's parser message (``... at line 1, column 6``, 0-based column) as an error with a position."""
    for reason in reasons:
        m = _LINE_COL.search(reason)
        if not m:
            continue
        line, column = int(m.group(1)), int(m.group(2))
        offset = sum(len(x) + 1 for x in query.split("\n")[: line - 1])
        position = min(offset + column, len(query))
        if "<EOF>" in reason:
            # Lucene puts EOF on the last character or just past it; either way: the end.
            position, message = len(query), "unexpected end of query"
        else:
            found = _ENCOUNTERED.search(reason)
            token = found.group(2).strip() if found else ""
            message = f"unexpected {token!r}" if token else reason.split("\n")[0]
        return QuerySyntaxError(message, query, position)
    return None


def _query_error(exc: ApiError, query: str) -> QuerySyntaxError | None:
    """A ``QuerySyntaxError`` if the node refused the query string itself, with the position."""
    body = exc.body if isinstance(exc.body, Mapping) else {}
    return _query_error_body(body.get("error", {}), query)


def _query_error_body(error: Any, query: str) -> QuerySyntaxError | None:
    """``_query_error`` on an error object (a failed ``_msearch`` item has no exception)."""
    types = _error_types(error)
    if not types & {"query_shard_exception", "parse_exception", "query_string_parse_exception",
                    "number_format_exception", "search_phase_execution_exception"}:
        return None
    reasons = _all_reasons(error)
    if (positioned := _positioned_error(reasons, query)) is not None:
        return positioned
    # Not a parse error but a value the field cannot hold (an IP, a number, a date).
    detail = next((r for r in reversed(reasons) if r and not r.startswith("all shards failed")), None)
    if "query_shard_exception" in types or "parse_exception" in types or "number_format_exception" in types:
        return QuerySyntaxError((detail or "query refused").removeprefix("failed to create query: "), query)
    return None


class ElasticsearchStore:
    """``Store`` over a real Elasticsearch 8 node; see the module docstring for the layout."""

    backend = "elasticsearch"
    #: Buckets per composite-aggregation page (``after_key`` pages through the rest).
    composite_page = 5000

    def __init__(
        self,
        node_url: str | Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | tuple[str, str] | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        bulk_docs: int = 2500,
        bulk_bytes: int = 8 * 1024 * 1024,
        bulk_concurrency: int = 2,
        max_retries: int = 8,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        request_timeout: float = 60.0,
        sniff: bool = False,
        rollover: Rollover | None = None,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            raise StoreURLError(f"bad index prefix {prefix!r}: lowercase letters, digits, '.', '_' or '-'")
        if "-events" in prefix:
            # P-events-* would also match this prefix's indices: two stores would read each other.
            raise StoreURLError(f"bad index prefix {prefix!r}: it may not contain '-events'")
        self.prefix = prefix
        self.nodes = [n.rstrip("/") for n in ([node_url] if isinstance(node_url, str) else node_url)]
        if not self.nodes:
            raise StoreURLError("no Elasticsearch node named")
        #: Every node, for messages (``http://h1:9200,h2:9200``); never carries a secret.
        self.node_url = _join_nodes(self.nodes)
        self.url = f"{self.node_url}/?prefix={prefix}"
        self.rollover = rollover or Rollover()
        self.bulk_docs = bulk_docs
        self.bulk_bytes = bulk_bytes
        self.bulk_concurrency = bulk_concurrency
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        names = es_templates.index_names(prefix)
        self._events_pattern = names["events_pattern"]
        self._events_alias = names["events_alias"]
        self._events_first = names["events_first"]
        self._alerts = names["alerts"]
        self._state = names["state"]
        self._dirty: set[str] = set()
        #: what opening did that the user should know (a schema migrated), one line each
        self.notices: list[str] = []
        #: The concrete index new events go to, and every events index (for the lookup).
        self._write_index: str | None = None
        self._event_indices: frozenset[str] = frozenset()
        self._since_check = 0  # events sent since the last rollover check
        #: Field paths the write index maps (leaves, objects), loaded per write index: a batch
        #: bringing new fields gets them put in one request (see ``_new_properties``).
        self._fields_of: str | None = None
        self._leaves: set[str] = set()
        self._objects: set[str] = set()
        self._known: set[str] = set()
        self._checked_at = float("-inf")  # monotonic time of that check
        kwargs: dict[str, Any] = {
            "request_timeout": request_timeout,
            "max_retries": 2,
            "retry_on_timeout": True,
        }
        if basic_auth:
            kwargs["basic_auth"] = basic_auth
        if api_key:
            kwargs["api_key"] = api_key
        if sniff:
            kwargs.update(sniff_on_start=True, sniff_on_node_failure=True, min_delay_between_sniffing=60)
        if any(n.startswith("https:") for n in self.nodes):
            kwargs["verify_certs"] = verify_certs
            if ca_certs:
                kwargs["ca_certs"] = ca_certs
        try:
            self._es = Elasticsearch(self.nodes, **kwargs)
        except ValueError as exc:
            raise StoreURLError(f"bad Elasticsearch URL {node_url!r}: {exc}") from exc
        # The bulk loop does its own retrying, with backoff, item by item.
        self._bulk_es = self._es.options(max_retries=0, retry_on_status=())

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> ElasticsearchStore:
        """``http(s)://[user:pass@]h1:9200[,h2:9200...][/path]/?prefix=NAME[&sniff=true]``.

        Secrets also come from the environment (``SOC_ES_USER``/``SOC_ES_PASSWORD``,
        ``SOC_ES_API_KEY``) and so does the CA file (``SOC_ES_CA``): a URL gets printed.
        """
        nodes, userinfo, query = _split_nodes(url)
        params = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - _URL_PARAMS)
        if unknown:
            known = ", ".join(repr(p) for p in sorted(_URL_PARAMS))
            raise StoreURLError(f"bad Elasticsearch URL {url!r}: unknown parameter {unknown[0]!r} (only {known})")
        prefix = (params.get("prefix") or [DEFAULT_PREFIX])[-1] or DEFAULT_PREFIX
        sniff_text = (params.get("sniff") or ["false"])[-1].lower()
        if sniff_text not in ("true", "false", "1", "0"):
            raise StoreURLError(f"bad Elasticsearch URL {url!r}: sniff must be true or false")
        user_part, has_password, password_part = userinfo.partition(":")
        user = unquote(user_part) if userinfo else os.environ.get("SOC_ES_USER")
        password = unquote(password_part) if has_password else os.environ.get("SOC_ES_PASSWORD")
        basic_auth = (user, password or "") if user else None
        return cls(nodes, prefix=prefix, basic_auth=basic_auth, api_key=_api_key(os.environ.get("SOC_ES_API_KEY")),
                   ca_certs=os.environ.get("SOC_ES_CA") or None, sniff=sniff_text in ("true", "1"))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Connection-level failures become one clear line instead of a transport traceback."""
        try:
            yield
        except UnsupportedProductError as exc:
            raise StoreUnavailable(f"{self.node_url} does not answer as Elasticsearch: {exc}") from exc
        except AuthenticationException as exc:
            raise StoreUnavailable(
                f"Elasticsearch at {self.node_url} refused the credentials (401): "
                "set SOC_ES_USER/SOC_ES_PASSWORD or SOC_ES_API_KEY") from exc
        except AuthorizationException as exc:
            raise StoreUnavailable(f"Elasticsearch at {self.node_url} denied access (403): {exc.message}") from exc
        except ESConnectionTimeout as exc:
            raise StoreUnavailable(f"Elasticsearch at {self.node_url} timed out") from exc
        except ESConnectionError as exc:
            raise StoreUnavailable(f"cannot reach Elasticsearch at {self.node_url}: {_first_cause(exc)}") from exc
        except TransportError as exc:
            raise StoreUnavailable(f"Elasticsearch at {self.node_url}: {exc}") from exc

    def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self._errors():
            return fn(*args, **kwargs)

    # -- lifecycle ----------------------------------------------------------------------
    def init(self) -> None:
        with self._errors():
            try:
                self._es.cluster.health(timeout="10s")
            except (AuthenticationException, AuthorizationException, UnsupportedProductError):
                raise  # worded by _errors()
            except ApiError as exc:
                raise StoreUnavailable(
                    f"{self.node_url} does not answer as Elasticsearch (HTTP {exc.meta.status} on /_cluster/health)"
                ) from exc
            found = self._stored_version()  # refuses a foreign or newer store before writing anything
            self._put_templates()
            # The alert index is made by its first write, through the templates; the state
            # index exists from the start: it also checks queries on an empty store.
            self._create_index(self._state)
            if found != es_templates.STORE_SCHEMA_VERSION:
                self._es.indices.put_mapping(index=self._state, meta=es_templates.store_meta())
                if found is not None:
                    self.notices.append(f"Elasticsearch store {self.url}: schema {found} migrated to "
                                        f"{es_templates.STORE_SCHEMA_VERSION}")

    def _stored_version(self) -> int | None:
        """The schema version recorded in the state index (``None``: no store under this prefix)."""
        try:
            mapping = self._es.indices.get_mapping(index=self._state)
        except NotFoundError:
            return None
        answers: list[Any] = list(dict(mapping.body).values())
        body: dict[str, Any] = (answers[0].get("mappings") if answers else None) or {}
        meta = body.get("_meta") or {}
        wanted = es_templates.STORE_SCHEMA_VERSION
        if meta.get("managed_by") == "ztsoc":
            version = int(meta.get("schema_version", 1))
        elif {"kind", "key", "value"} <= set(body.get("properties", {})):
            version = 1  # made before the version was recorded
        else:
            raise StoreError(f"{self._state} on {self.node_url} is not a ztsoc store's index (no ztsoc mapping): "
                             "choose another prefix with ?prefix=NAME")
        if version > wanted:
            raise StoreError(f"{self.url} has store schema {version}; this ztsoc reads schema {wanted} and older: "
                             f"open it with a ztsoc that reads schema {version}")
        return version

    def _put_templates(self) -> None:
        wanted = es_templates.schema_hash()
        events_template = f"{self.prefix}-events"
        try:
            current = self._es.indices.get_index_template(name=events_template)
            meta = current["index_templates"][0]["index_template"].get("_meta", {})
            if meta.get("schema_hash") == wanted:
                return
        except NotFoundError:
            pass
        try:
            for name, body in es_templates.component_templates(self.prefix).items():
                self._es.cluster.put_component_template(name=name, **body)
            for name, body in es_templates.index_templates(self.prefix).items():
                self._es.indices.put_index_template(name=name, **body)
        except ApiError as exc:
            raise StoreError(f"Elasticsearch refused the ztsoc index templates: {_reason(_body_error(exc))}") from exc
        # Indices made under an older schema get the new fields too (mappings only grow).
        existing = self._existing_indices(f"{self._events_pattern},{self._alerts}")
        if existing:
            mappings = es_templates.ecs_mappings()
            try:
                self._es.indices.put_mapping(index=",".join(existing), **mappings)
            except ApiError as exc:
                raise StoreError(
                    f"the schema changed a field type already mapped in {self.prefix}-*: "
                    f"{_reason(_body_error(exc))}") from exc

    def _create_index(self, name: str) -> None:
        try:
            self._es.indices.create(index=name)
        except ApiError as exc:
            if "resource_already_exists_exception" not in _error_types(_body_error(exc)):
                raise StoreError(f"cannot create index {name}: {_reason(_body_error(exc))}") from exc

    def _existing_indices(self, pattern: str) -> list[str]:
        found = self._call(self._es.indices.get, index=pattern, ignore_unavailable=True,
                           allow_no_indices=True, expand_wildcards="open,closed")
        return sorted(found.body)

    def close(self) -> None:
        # the next command, in any process, must read what this one wrote
        with contextlib.suppress(StoreError):
            self.refresh()
        self._es.close()

    def refresh(self) -> None:
        """Everything this client wrote, visible to every reader (one refresh of the indices written)."""
        self._refresh()

    def drop(self) -> None:
        """Delete this prefix's indices and templates (tests, and ``soc store`` resets)."""
        with self._errors():
            names = self._existing_indices(f"{self._events_pattern},{self._alerts},{self._state}")
            for start in range(0, len(names), 50):  # explicit names: wildcard deletes may be forbidden
                self._es.indices.delete(index=",".join(names[start:start + 50]), ignore_unavailable=True)
            for name in es_templates.index_templates(self.prefix):
                with contextlib.suppress(NotFoundError):
                    self._es.indices.delete_index_template(name=name)
            for name in es_templates.component_templates(self.prefix):
                with contextlib.suppress(NotFoundError):
                    self._es.cluster.delete_component_template(name=name)
        self._dirty.clear()
        self._write_index, self._event_indices, self._fields_of = None, frozenset(), None

    # -- writing events -----------------------------------------------------------------
    def _ensure_write_index(self) -> str:
        """The concrete index behind the write alias, made on first use (with its alias).

        A store from before rollover has monthly indices and no alias: it gets a first
        rollover index next to them; the monthly ones stay readable and are looked up
        before writing, so re-ingesting their events still counts duplicates.
        """
        if self._write_index is not None:
            return self._write_index
        with self._errors():
            try:
                found = self._es.indices.get_alias(name=self._events_alias)
            except NotFoundError:
                found = None
            if not found:
                try:
                    self._es.indices.create(index=self._events_first,
                                            aliases={self._events_alias: {"is_write_index": True}})
                    self._checked_at = time.monotonic()  # a new index meets no rollover condition
                except ApiError as exc:
                    if "resource_already_exists_exception" not in _error_types(_body_error(exc)):
                        raise StoreError(f"cannot create index {self._events_first}: "
                                         f"{_reason(_body_error(exc))}") from exc
                found = self._es.indices.get_alias(name=self._events_alias)
        writers = [name for name, body in found.items()
                   if body.get("aliases", {}).get(self._events_alias, {}).get("is_write_index")]
        if len(writers) != 1:
            raise StoreError(f"alias {self._events_alias} has no single write index ({sorted(found)})")
        self._write_index = writers[0]
        self._event_indices = frozenset(self._existing_indices(self._events_pattern))
        return self._write_index

    def _events_index(self) -> str:
        """Where the next batch goes: checks the rollover conditions every so many events or seconds."""
        due = (self._since_check >= self.rollover.check_every
               or time.monotonic() - self._checked_at >= self.rollover.check_seconds)
        return self._roll_over() if due else self._ensure_write_index()

    def _roll_over(self) -> str:
        """Roll the write alias over if the current index met a condition; the write index."""
        self._since_check, self._checked_at = 0, time.monotonic()
        current = self._ensure_write_index()
        if current in self._dirty:
            # The node counts documents in refreshed segments only.
            self._call(self._es.indices.refresh, index=current, ignore_unavailable=True)
        try:
            answer = self._call(self._es.indices.rollover, alias=self._events_alias,
                                conditions=self.rollover.conditions())
        except ApiError as exc:
            raise StoreError(f"cannot roll {self._events_alias} over: {_reason(_body_error(exc))}") from exc
        old, new = answer["old_index"], answer["new_index"]
        if answer.get("rolled_over"):
            # The old index is written no more: refreshed once, the duplicate lookup sees all of it.
            self._call(self._es.indices.refresh, index=old, ignore_unavailable=True)
        # ``old_index`` is the alias's write index as the node saw it (another process may have
        # rolled over since we looked): no need to read the alias again.
        self._write_index = new if answer.get("rolled_over") else old
        if not {old, self._write_index} <= self._event_indices:
            self._event_indices = frozenset(self._existing_indices(self._events_pattern))
        return self._write_index

    def _known_fields(self, index: str) -> set[str]:
        """Every field path ``index`` maps (and those already handed to the node)."""
        if self._fields_of != index:
            found: dict[str, Any] = self._call(self._es.indices.get_mapping, index=index).body
            first: dict[str, Any] = next(iter(found.values()), {})
            props = first.get("mappings", {}).get("properties", {})
            self._leaves, self._objects = set(), set()
            stack: list[tuple[str, dict[str, Any]]] = [("", props)]
            while stack:
                base, level = stack.pop()
                for name, spec in level.items():
                    path = f"{base}{name}"
                    if "properties" in spec or spec.get("type", "object") in ("object", "nested"):
                        self._objects.add(path)
                        stack.append((f"{path}.", spec.get("properties", {})))
                    else:
                        self._leaves.add(path)
            self._known = self._leaves | self._objects
            self._fields_of = index
        return self._known

    def _new_properties(self, new: Mapping[str, str | None]) -> dict[str, Any]:
        """The mappings of a request's new fields, as the dynamic templates would give them
        (put by ``_put_mapping`` before the request's events).

        The node otherwise makes a cluster-state update for every document that brings a
        field (92 of the 8,248 shared EVTX records, the larger part of their ingest time).
        A field the templates do not decide, or one inside a non-object (a flattened field),
        is left to the node; so is the whole request if the node refuses the mapping. The one
        difference from the node's own mapping: a new field of a document the node then
        refuses for another reason is mapped anyway (unused; tests/test_es_layout.py).
        """
        properties: dict[str, Any] = {}
        for path in sorted(new):
            json_type = new[path]
            if len(self._known) < _MAX_KNOWN_FIELDS:
                self._known.add(path)  # decided once, whatever the outcome
            parts = path.split(".")
            if (json_type is None or "" in parts or path in self._objects
                    or any(".".join(parts[:i]) in self._leaves for i in range(1, len(parts)))):
                continue
            mapping = es_templates.dynamic_mapping(path, json_type)
            if mapping is None:
                continue
            node = properties
            for part in parts[:-1]:
                child = node.setdefault(part, {"properties": {}})
                if "properties" not in child:
                    break
                node = child["properties"]
            else:
                if parts[-1] not in node:
                    node[parts[-1]] = mapping
                    self._leaves.add(path)
                    self._objects.update(".".join(parts[:i]) for i in range(1, len(parts)))
        return properties

    def _put_mapping(self, index: str, properties: dict[str, Any]) -> None:
        if properties:
            with contextlib.suppress(ApiError):
                self._call(self._es.indices.put_mapping, index=index, properties=properties)

    def _unseen(self, batch: list[_Pending], tally: _Tally, target: str) -> list[_Pending]:
        """The batch without events already stored in another event index (counted as duplicates)."""
        if not self._event_indices - {target}:
            return batch
        ids = [_doc_id(p.ident) for p in batch]
        seen: set[str] = set()
        step = _MAX_WINDOW // 2  # room for an id stored twice already (room, not a promise)
        for start in range(0, len(ids), step):
            chunk = ids[start:start + step]
            body = self._call(self._es.search, index=self._events_pattern, size=2 * len(chunk), source=False,
                              query={"bool": {"filter": [{"ids": {"values": chunk}}],
                                              "must_not": [{"term": {"_index": target}}]}},
                              filter_path="hits.hits._id", ignore_unavailable=True, allow_no_indices=True).body
            seen.update(hit["_id"] for hit in body.get("hits", {}).get("hits", []))
        if not seen:
            return batch
        fresh: list[_Pending] = []
        for p, i in zip(batch, ids, strict=True):
            if i in seen:
                tally.duplicates[p.group] += 1
            else:
                fresh.append(p)
        return fresh

    def _send_events(self, batch: list[_Pending], tally: _Tally, index: str, properties: dict[str, Any],
                     after: threading.Event | None = None, mapped: threading.Event | None = None) -> None:
        """One request's events: its new fields mapped first (after the previous request's: a field
        is mapped as its first batch has it, whichever request reaches the node first), then the
        events not already in another event index."""
        try:
            if after is not None:
                after.wait()
            self._put_mapping(index, properties)
        finally:
            if mapped is not None:
                mapped.set()
        fresh = self._unseen(batch, tally, index)
        if fresh:
            self._send(fresh, tally, index=index)

    def write_events(self, events: Iterable[Doc]) -> WriteResult:
        return self.write_batches([events])[0]

    def write_batches(self, batches: Iterable[Iterable[Doc]]) -> list[WriteResult]:
        """Several batches (an ingest's small files) through the same bulk requests.

        ``batches`` may be produced while the requests are in flight (the ingest reads its next
        files while the node indexes). Each event keeps its batch number, so the counts and
        errors come back per batch, with positions within the batch. When anything is refused,
        ``StoreRefused.results`` holds the result of every batch with nothing refused (``None``
        for the others): the caller may move the checkpoints of those, and of those only. No
        request at all while no event is valid (the write index is made by the first).

        The calling thread only validates and serialises: finding (or making) the write index
        starts at the first event, in the background, and each request's new fields are mapped
        by the thread that sends it, just before its events.
        """
        total = _Tally()
        window: deque[tuple[_Tally, Future[None]]] = deque()
        pool: ThreadPoolExecutor | None = None
        part = _Tally()  # this request's errors, merged in batch order whatever finishes first
        batch: list[_Pending] = []
        size = 0
        dumps = orjson.dumps
        fields: dict[str, str | None] = {}  # this request's field names: the JSON type of the first value
        finding: Future[str] | None = None  # the write index, looked up (or made) at the first event
        mapped: threading.Event | None = None  # the previous request's fields are mapped

        def flush() -> None:
            nonlocal pool, finding, mapped
            index = finding.result() if finding is not None else self._events_index()
            finding = None
            known = self._known_fields(index)
            properties = self._new_properties({k: t for k, t in fields.items() if k not in known})
            fields.clear()
            self._dirty.add(index)
            self._since_check += len(batch)
            if pool is None:
                self._send_events(batch, part, index, properties)
                total.merge(part)
                return
            # Serialise the next batch while the node indexes this one (back-pressure: at most
            # ``bulk_concurrency`` requests in flight, the caller waits for the oldest).
            after, mapped = mapped, threading.Event()
            window.append((part, pool.submit(self._send_events, batch, part, index, properties, after, mapped)))
            while len(window) >= self.bulk_concurrency:
                done, future = window.popleft()
                future.result()
                total.merge(done)

        try:
            groups = 0
            for group, events in enumerate(batches):
                groups = group + 1
                errors = part.errors
                for position, event in enumerate(events):
                    ident = _check_id(event, position, group, errors)
                    if ident is None:
                        continue
                    if pool is None and self.bulk_concurrency > 1:
                        pool = ThreadPoolExecutor(self.bulk_concurrency, thread_name_prefix="ztsoc-bulk")
                        finding = pool.submit(self._events_index)
                    if not event.keys() <= fields.keys():
                        for name in event.keys() - fields.keys():
                            fields[name] = _json_type(event[name])
                    if (why := problem(event)) is not None:  # what the mapping refuses: the same as SQLite
                        errors.append((group, ident, why))
                        continue
                    try:
                        _check_timestamp(event["@timestamp"])
                        try:
                            source = dumps(event, option=_ORJSON_OPTS)
                        except TypeError:  # lone surrogates: stored replaced and tagged, as the SQLite store does,
                            event = replace_unencodable(event) or event  # the id too (it is the document's _id)
                            ident = event["event.id"]
                            source = dumps(event, option=_ORJSON_OPTS)
                    except KeyError:
                        errors.append((group, ident, "missing @timestamp"))
                        continue
                    except (ValueError, TypeError) as exc:
                        errors.append((group, ident, f"cannot store: {exc}"))
                        continue
                    lines = b'{"create":{"_id":' + dumps(_doc_id(ident)) + b"}}\n" + source + b"\n"
                    batch.append(_Pending(ident, lines, group))
                    size += len(lines)
                    if len(batch) >= self.bulk_docs or size >= self.bulk_bytes:
                        flush()
                        part, batch, size = _Tally(), [], 0
                        errors = part.errors
            if batch:
                flush()
            else:
                total.merge(part)
            while window:
                done, future = window.popleft()
                future.result()
                total.merge(done)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        total.stop_if_refused(f"Elasticsearch at {self.node_url}", groups)
        return [total.result(g) for g in range(groups)]

    def _send(self, batch: list[_Pending], tally: _Tally, *, index: str | None = None,
              conflict_is_duplicate: bool = True) -> list[_Pending]:
        """One bulk request with retries (to ``index`` when the items name none); returns the
        items refused with 409 when asked to."""
        pending = batch
        conflicts: list[_Pending] = []
        attempt = 0
        while pending:
            body = b"".join(p.lines for p in pending)
            try:
                response = self._bulk_es.bulk(operations=body, index=index,  # type: ignore[arg-type]
                                              filter_path=_BULK_FILTER)
            except ApiError as exc:
                if exc.meta.status in RETRY_STATUSES and attempt < self.max_retries:
                    attempt += 1
                    self._backoff(attempt)
                    continue
                if isinstance(exc, AuthenticationException | AuthorizationException | UnsupportedProductError):
                    with self._errors():
                        raise
                tries = f" after {attempt + 1} tries" if exc.meta.status in RETRY_STATUSES else ""
                reason = f"bulk request refused (HTTP {exc.meta.status}){tries}: {_reason(_body_error(exc))}"
                tally.refused.extend((p.group, p.ident, reason) for p in pending)
                return conflicts
            except (ESConnectionError, ESConnectionTimeout) as exc:
                if attempt < self.max_retries:
                    attempt += 1
                    self._backoff(attempt)
                    continue
                raise StoreUnavailable(
                    f"cannot reach Elasticsearch at {self.node_url} after {attempt + 1} tries: {_first_cause(exc)}"
                ) from exc
            if not response.get("errors"):
                tally.written.update(p.group for p in pending)
                return conflicts
            retry: list[_Pending] = []
            for item, result in zip(pending, response["items"], strict=True):
                outcome = next(iter(result.values()))
                status = outcome.get("status", 0)
                if 200 <= status < 300:
                    tally.written[item.group] += 1
                elif status == 409:
                    if conflict_is_duplicate:
                        tally.duplicates[item.group] += 1
                    else:
                        conflicts.append(item)
                elif status in ITEM_RETRY_STATUSES:
                    retry.append(item)
                elif _invalid_document(status, outcome.get("error")):
                    tally.errors.append((item.group, item.ident, _reason(outcome.get("error"))))
                else:  # a block, a read-only index, a full disk, a missing index: not the event's fault
                    tally.refused.append((item.group, item.ident, f"HTTP {status}: {_reason(outcome.get('error'))}"))
            if retry and attempt >= self.max_retries:
                tally.refused.extend((p.group, p.ident, f"rejected by a busy node (HTTP 429) after {attempt + 1} tries")
                                     for p in retry)
                retry = []
            if retry:
                attempt += 1
                self._backoff(attempt)
            pending = retry
        return conflicts

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))

    # -- reading ------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Make this process's writes visible before it reads (lazily, once per write burst)."""
        if not self._dirty:
            return
        names = ",".join(sorted(self._dirty))
        self._call(self._es.indices.refresh, index=names, ignore_unavailable=True, allow_no_indices=True)
        self._dirty.clear()

    def _target(self, index: Index) -> str:
        if index == "events":
            return self._events_pattern
        if index == "alerts":
            return self._alerts
        raise ValueError(f"unknown index {index!r}: expected 'events' or 'alerts'")

    @staticmethod
    def _query(query: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
        filters: list[dict[str, Any]] = []
        text = (query or "").strip()
        if text and text != "*":
            filters.append({"query_string": {
                "query": text, "default_field": "message", "analyze_wildcard": True,
                "allow_leading_wildcard": True,
            }})
        window: dict[str, Any] = {}
        if since is not None:
            window["gte"] = _epoch_ms_ceil(since)
        if until is not None:
            window["lt"] = _epoch_ms_ceil(until)
        if window:
            filters.append({"range": {"@timestamp": {**window, "format": "epoch_millis"}}})
        return {"bool": {"filter": filters}} if filters else {"match_all": {}}

    def _search(self, text: str, /, **kwargs: Any) -> dict[str, Any]:
        """``search`` with a refused query string (``text``) turned into ``QuerySyntaxError``."""
        self._refresh()
        try:
            body = self._call(self._es.search, ignore_unavailable=True, allow_no_indices=True, **kwargs).body
        except ApiError as exc:
            raise self._translate(exc, text) from exc
        _check_whole(body)
        if not body.get("_shards", {}).get("total"):
            self._validate(text)
        return body

    def _validate(self, text: str) -> None:
        """No index was searched, so the node never parsed the query: have it parse it now."""
        if not text.strip() or text.strip() == "*":
            return
        answer = self._call(self._es.indices.validate_query, index=self._state, explain=True,
                            query=self._query(text, None, None), ignore_unavailable=True)
        if answer.get("valid", True):
            return
        errors = [e.get("error", "") for e in answer.get("explanations", []) if not e.get("valid", True)]
        detail = (errors[0] if errors else "query refused").split("; ")[-1].split("\n")[0]
        raise _positioned_error(errors, text) or QuerySyntaxError(_JAVA_EXCEPTION.sub("", detail), text)

    def _translate(self, exc: ApiError, query: str) -> StoreError:
        if exc.meta.status == 400 and (err := _query_error(exc, query)) is not None:
            return err
        return StoreError(f"Elasticsearch refused the request (HTTP {exc.meta.status}): {_reason(_body_error(exc))}")

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
        order = "desc" if descending else "asc"
        sort_spec = [{sort: {"order": order, "unmapped_type": "keyword"}}]
        if sort != "event.id":
            sort_spec.append({"event.id": {"order": order, "unmapped_type": "keyword"}})
        source: Any = {"includes": list(fields)} if fields else True
        body_query = self._query(query, since, until)
        hits: list[Doc] = []
        total = 0
        after: list[Any] | None = None
        limit = max(0, limit)
        while True:
            size = min(limit - len(hits), _MAX_WINDOW)
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            body = self._search(query, index=self._target(index), query=body_query, sort=sort_spec,
                                size=size, source=source, track_total_hits=after is None, **extra)
            if after is None:
                total = body["hits"]["total"]["value"]
            page = body["hits"]["hits"]
            hits.extend(h.get("_source", {}) for h in page)
            if len(hits) >= limit or len(page) < size or not page:
                break
            after = page[-1]["sort"]
        return SearchResult(total=total, hits=hits)

    def count(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events",
    ) -> int:
        self._refresh()
        try:
            result = self._call(self._es.count, index=self._target(index), query=self._query(query, since, until),
                                ignore_unavailable=True, allow_no_indices=True)
        except ApiError as exc:
            raise self._translate(exc, query) from exc
        _check_whole(result.body)
        if not result.get("_shards", {}).get("total"):
            self._validate(query)
        return int(result["count"])

    def scan(
        self, query: str = "*", *, since: datetime | None = None, until: datetime | None = None,
        index: Index = "events", fields: Sequence[str] | None = None, batch_size: int = 5000,
    ) -> Iterator[Doc]:
        return self._scan(query, self._query(query, since, until), index, fields, batch_size)

    def scan_dsl(
        self, dsl: Mapping[str, Any], *, since: datetime | None = None, until: datetime | None = None,
        fields: Sequence[str] | None = None, batch_size: int = 5000,
    ) -> Iterator[Doc]:
        """``scan`` for a query-DSL clause instead of a query string: Sigma rules, whose keyword
        comparisons need ``case_insensitive`` (``detections.sigma.es_dsl``)."""
        window = self._query("", since, until)
        filters = [dict(dsl), *window.get("bool", {}).get("filter", [])]
        return self._scan("", {"bool": {"filter": filters}}, "events", fields, batch_size)

    def _scan(self, query: str, body_query: dict[str, Any], index: Index, fields: Sequence[str] | None,
              batch_size: int) -> Iterator[Doc]:
        sort_spec = [{"@timestamp": {"order": "asc", "unmapped_type": "date"}},
                     {"event.id": {"order": "asc", "unmapped_type": "keyword"}}]
        source: Any = {"includes": list(fields)} if fields else True
        size = max(1, min(batch_size, _MAX_WINDOW))
        after: list[Any] | None = None
        while True:
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            body = self._search(query, index=self._target(index), query=body_query, sort=sort_spec, size=size,
                                source=source, track_total_hits=False, **extra)
            page = body["hits"]["hits"]
            for hit in page:
                yield hit.get("_source", {})
            if len(page) < size:
                return
            after = page[-1]["sort"]

    # -- many queries at once (the detection runner) ------------------------------------
    _TIME_ORDER = ({"@timestamp": {"order": "asc", "unmapped_type": "date"}},
                   {"event.id": {"order": "asc", "unmapped_type": "keyword"}})

    def event_pages(self, requests: Sequence[PageRequest], *, since: datetime | None, until: datetime | None,
                    size: int = 1000, timeout: float = 30.0) -> list[Page]:
        """One page of events, oldest first, for each request, in one ``_msearch``.

        Each request is judged alone: a query the node refuses, a search that ran past
        ``timeout`` seconds or one a shard failed comes back as that page's ``error`` while
        the others keep their hits (one slow rule must not cost the run). A full page carries
        ``after`` to ask for the next one."""
        self._refresh()
        size = max(1, min(size, _MAX_WINDOW))
        body: list[dict[str, Any]] = []
        for req in requests:
            query = self._query(req.query, since, until) if isinstance(req.query, str) else self._within(
                req.query, since, until)
            search: dict[str, Any] = {"query": query, "sort": list(self._TIME_ORDER), "size": size,
                                      "track_total_hits": False, "timeout": f"{max(1, int(timeout * 1000))}ms"}
            if req.after is not None:
                search["search_after"] = req.after
            body += [{"index": self._events_pattern, "ignore_unavailable": True, "allow_no_indices": True}, search]
        if not body:
            return []
        client = self._es.options(request_timeout=timeout * 2 + 30)
        answer = self._call(client.msearch, searches=body).body
        pages: list[Page] = []
        for req, item in zip(requests, answer.get("responses", []), strict=True):
            if "error" in item:
                text = req.query if isinstance(req.query, str) else ""
                # the innermost reason names the fault ("all shards failed" names none)
                reason = next((r for r in reversed(_all_reasons(item["error"]))
                               if r and not r.startswith("all shards failed")), _reason(item["error"]))
                if text and (err := _query_error_body(item["error"], text)) is not None:
                    reason = str(err)
                pages.append(Page([], None, reason, refused=item.get("status") == 400))
                continue
            if item.get("timed_out"):
                pages.append(Page([], None, f"timed out after {timeout:g} s"))
                continue
            try:
                _check_whole(item)
            except StoreError as exc:
                pages.append(Page([], None, str(exc)))
                continue
            hits = item["hits"]["hits"]
            pages.append(Page([h.get("_source", {}) for h in hits], hits[-1]["sort"] if len(hits) == size else None))
        return pages

    def scan_filter(self, query: Mapping[str, Any], *, since: datetime | None = None, until: datetime | None = None,
                    batch_size: int = 5000, keep_alive: str = "2m") -> Iterator[Doc]:
        """Every event matching a query DSL filter, oldest first, through one point in time.

        The point in time keeps the pages consistent while collectors keep writing (a large
        look-back reads many pages); ``search_after`` walks it in (``@timestamp``, ``event.id``)
        order, the order the detection engine needs."""
        self._refresh()
        size = max(1, min(batch_size, _MAX_WINDOW))
        try:
            pit = self._call(self._es.open_point_in_time, index=self._events_pattern, keep_alive=keep_alive,
                             ignore_unavailable=True)["id"]
        except NotFoundError:
            return
        try:
            after: list[Any] | None = None
            while True:
                extra: dict[str, Any] = {"search_after": after} if after is not None else {}
                try:
                    body = self._call(self._es.search, pit={"id": pit, "keep_alive": keep_alive},
                                      query=self._within(query, since, until), sort=list(self._TIME_ORDER),
                                      size=size, track_total_hits=False, **extra).body
                except ApiError as exc:
                    raise StoreError(f"Elasticsearch refused the search (HTTP {exc.meta.status}): "
                                     f"{_reason(_body_error(exc))}") from exc
                _check_whole(body)
                pit = body.get("pit_id", pit)
                page = body["hits"]["hits"]
                for hit in page:
                    yield hit.get("_source", {})
                if len(page) < size:
                    return
                after = page[-1]["sort"]
        finally:
            with contextlib.suppress(ApiError, StoreError, TransportError):
                self._es.close_point_in_time(id=pit)

    @staticmethod
    def _within(query: Mapping[str, Any], since: datetime | None, until: datetime | None) -> dict[str, Any]:
        window = ElasticsearchStore._query("*", since, until)
        if "match_all" in window:
            return dict(query)
        return {"bool": {"filter": [*window["bool"]["filter"], dict(query)]}}

    def get_event(self, event_id: str) -> Doc | None:
        body = self._search("", index=self._events_pattern, query={"ids": {"values": [_doc_id(event_id)]}}, size=1)
        hits = body["hits"]["hits"]
        return hits[0]["_source"] if hits else None

    # -- aggregation --------------------------------------------------------------------
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
        metrics = dict(metrics or {})
        sources: list[dict[str, Any]] = []
        names: list[tuple[str, str]] = []  # (source name, output key)
        if interval_seconds:
            if interval_seconds < 1:
                raise ValueError("interval_seconds must be at least 1")
            sources.append({"t": {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{interval_seconds}s"}}})
            names.append(("t", "@timestamp"))
        for i, name in enumerate(group_by):
            if interval_seconds and name == "@timestamp":
                continue  # already the time bucket
            sources.append({f"g{i}": {"terms": {"field": name}}})
            names.append((f"g{i}", name))
        sub_aggs: dict[str, Any] = {}
        for i, (key, metric) in enumerate(metrics.items()):
            sub_aggs.update(self._metric_aggs(f"m{i}", key, metric))
        rows: list[Doc] = []
        if not sources:
            # No grouping: one row over everything matched.
            body = self._search(query, index=self._target(index), query=self._query(query, since, until),
                                size=0, track_total_hits=True, aggs=sub_aggs or None)
            total = body["hits"]["total"]["value"]
            if total:
                rows.append(self._row({}, total, body.get("aggregations", {}), metrics))
            return rows[:limit] if limit is not None else rows
        composite: dict[str, Any] = {"sources": sources, "size": self.composite_page}
        while True:
            aggs: dict[str, Any] = {"groups": {"composite": composite}}
            if sub_aggs:
                aggs["groups"]["aggs"] = sub_aggs
            body = self._search(query, index=self._target(index), query=self._query(query, since, until),
                                size=0, track_total_hits=False, aggs=aggs)
            groups = body.get("aggregations", {}).get("groups", {})
            for bucket in groups.get("buckets", []):
                key = bucket["key"]
                group = {out: self._group_value(out, key[src], src == "t") for src, out in names}
                rows.append(self._row(group, bucket["doc_count"], bucket, metrics))
            after = groups.get("after_key")
            if not after or not groups.get("buckets"):
                break
            composite = {**composite, "after": after}
        group_keys = [out for _, out in names]
        rows.sort(key=lambda r: (-r["count"], *(_sort_key(k, r[k]) for k in group_keys)))
        return rows[:limit] if limit is not None else rows

    @staticmethod
    def _metric_aggs(name: str, key: str, metric: Metric) -> dict[str, Any]:
        if metric.op == "count":
            return {}
        if metric.field is None:
            raise ValueError(f"metric {key!r}: {metric.op} needs a field")
        if metric.op == "cardinality":
            return {name: {"cardinality": {"field": metric.field, "precision_threshold": 40000}}}
        if metric.op == "sum":
            # ES sums an absent field to 0; SQL gives NULL. The value_count tells them apart.
            return {name: {"sum": {"field": metric.field}}, f"{name}_n": {"value_count": {"field": metric.field}}}
        if metric.op in ("min", "max", "avg"):
            return {name: {metric.op: {"field": metric.field}}}
        raise ValueError(f"metric {key!r}: unknown op {metric.op!r}")

    @staticmethod
    def _row(group: Doc, count: int, bucket: Mapping[str, Any], metrics: Mapping[str, Metric]) -> Doc:
        row: Doc = {**group, "count": count}
        for i, (key, metric) in enumerate(metrics.items()):
            if metric.op == "count":
                row[key] = count
                continue
            agg = bucket.get(f"m{i}", {})
            value = agg.get("value")
            kind = field_type(metric.field or "")
            if metric.op == "cardinality":
                row[key] = int(value or 0)
            elif value is None or (metric.op == "sum" and not bucket.get(f"m{i}_n", {}).get("value")):
                row[key] = None
            elif kind == "date" and metric.op in ("min", "max"):
                row[key] = to_iso(datetime.fromtimestamp(value / 1000, UTC))
            elif kind == "long" and metric.op != "avg" and float(value).is_integer():
                row[key] = int(value)
            else:
                row[key] = value
        return row

    @staticmethod
    def _group_value(name: str, value: Any, is_bucket: bool) -> Any:
        if is_bucket or field_type(name) == "date":
            return to_iso(datetime.fromtimestamp(value / 1000, UTC)) if isinstance(value, int | float) else value
        return value

    # -- alerts -------------------------------------------------------------------------
    def put_alerts(self, alerts: Iterable[Doc]) -> WriteResult:
        tally = _Tally()
        batch: dict[str, Doc] = {}
        for position, alert in enumerate(alerts):
            ident = _check_id(alert, position, 0, tally.errors)
            if ident is None:
                continue
            batch.pop(ident, None)
            batch[ident] = dict(alert)
            if len(batch) >= 500:
                self._upsert_alerts(batch, tally)
                batch = {}
        if batch:
            self._upsert_alerts(batch, tally)
        if self._alerts in self._dirty:  # read your writes: `soc alerts` right after a run lists them
            self._call(self._es.indices.refresh, index=self._alerts, ignore_unavailable=True)
            self._dirty.discard(self._alerts)
        tally.stop_if_refused(f"Elasticsearch at {self.node_url}")  # the runner keeps its cursors
        return tally.result(0)

    def _upsert_alerts(self, incoming: dict[str, Doc], tally: _Tally) -> None:
        todo = incoming
        for _ in range(self.max_retries + 2):
            found = self._call(self._es.mget, index=self._alerts, ids=[_doc_id(i) for i in todo], realtime=True)
            items: list[_Pending] = []
            for doc, (ident, alert) in zip(found["docs"], todo.items(), strict=True):
                merged = merge_alert(alert, doc.get("_source") if doc.get("found") else None)
                if (why := problem(merged)) is not None:  # as the SQLite store refuses it
                    tally.errors.append((0, ident, why))
                    continue
                if doc.get("found"):
                    meta = {"index": {"_index": self._alerts, "_id": doc["_id"],
                                      "if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]}}
                else:
                    meta = {"create": {"_index": self._alerts, "_id": doc["_id"]}}
                try:
                    lines = orjson.dumps(meta) + b"\n" + orjson.dumps(merged, option=_ORJSON_OPTS) + b"\n"
                except TypeError as exc:
                    tally.errors.append((0, ident, f"cannot store: {exc}"))
                    continue
                items.append(_Pending(ident, lines))
            if not items:
                return
            self._dirty.add(self._alerts)
            conflicts = self._send(items, tally, conflict_is_duplicate=False)
            if not conflicts:
                return
            todo = {p.ident: incoming[p.ident] for p in conflicts}
        tally.errors.extend((0, ident, "alert kept changing under concurrent writers") for ident in todo)

    def get_alert(self, alert_id: str) -> Doc | None:
        try:
            doc = self._call(self._es.get, index=self._alerts, id=_doc_id(alert_id), realtime=True)
        except NotFoundError:
            return None
        return dict(doc["_source"])

    def get_alerts(self, alert_ids: Sequence[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        ids = list(alert_ids)
        for start in range(0, len(ids), 1000):
            part = ids[start:start + 1000]
            answer = self._call(self._es.mget, index=self._alerts, ids=[_doc_id(i) for i in part], realtime=True)
            found.update((ident, dict(doc["_source"])) for ident, doc in zip(part, answer["docs"], strict=True)
                         if doc.get("found"))
        return found

    def update_alert(self, alert_id: str, change: AlertChange) -> Doc:
        for _ in range(self.max_retries + 2):
            try:
                current = self._call(self._es.get, index=self._alerts, id=_doc_id(alert_id), realtime=True)
            except NotFoundError as exc:
                raise AlertNotFound(f"no alert with id {alert_id!r}") from exc
            doc = apply_change(dict(current["_source"]), change)
            try:
                # refresh: the analyst's next listing, in any process, shows the change
                self._call(self._es.index, index=self._alerts, id=_doc_id(alert_id), document=doc,
                           if_seq_no=current["_seq_no"], if_primary_term=current["_primary_term"], refresh=True)
            except ConflictError:
                continue  # someone else changed it: re-read and re-apply on top
            return doc
        raise StoreError(f"alert {alert_id!r} kept changing under concurrent writers; try again")

    # -- state --------------------------------------------------------------------------
    @staticmethod
    def _state_id(kind: str, key: str) -> str:
        return hashlib.sha1(f"{kind}\x00{key}".encode()).hexdigest()

    def get_state(self, kind: str, key: str) -> Doc | None:
        try:
            doc = self._call(self._es.get, index=self._state, id=self._state_id(kind, key), realtime=True)
        except NotFoundError:
            return None
        value = doc["_source"].get("value")
        return dict(value) if isinstance(value, Mapping) else None

    def put_state(self, kind: str, key: str, value: Doc) -> None:
        document = {"kind": kind, "key": key, "@timestamp": to_iso(utcnow()), "value": value}
        try:
            self._call(self._es.index, index=self._state, id=self._state_id(kind, key), document=document)
        except ApiError as exc:
            raise StoreError(f"cannot save state {kind}/{key}: {_reason(_body_error(exc))}") from exc
        self._dirty.add(self._state)

    def get_states(self, kind: str, keys: Sequence[str]) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            part = keys[start:start + 1000]
            answer = self._call(self._es.mget, index=self._state, ids=[self._state_id(kind, k) for k in part],
                                realtime=True)
            for key, doc in zip(part, answer["docs"], strict=True):
                value = doc.get("_source", {}).get("value") if doc.get("found") else None
                if isinstance(value, Mapping):
                    found[key] = dict(value)
        return found

    def put_states(self, kind: str, values: Mapping[str, Doc]) -> None:
        """One bulk request per thousand entries; any refused entry is an error (state must not be half-saved)."""
        now = to_iso(utcnow())
        items = list(values.items())
        for start in range(0, len(items), 1000):
            lines = b"".join(
                orjson.dumps({"index": {"_index": self._state, "_id": self._state_id(kind, key)}}) + b"\n"
                + orjson.dumps({"kind": kind, "key": key, "@timestamp": now, "value": value}, option=_ORJSON_OPTS)
                + b"\n" for key, value in items[start:start + 1000])
            # through the client that retries on another node (idempotent: same ids, same values); the
            # bulk loop's client does not, so with a node down a third of these failed at once
            answer = self._call(self._es.bulk, operations=lines, filter_path=_BULK_FILTER)  # type: ignore[arg-type]
            if answer.get("errors"):
                first = next(next(iter(i.values())) for i in answer["items"] if next(iter(i.values()))
                             .get("status", 500) >= 300)
                raise StoreError(f"cannot save state {kind}: {_reason(first.get('error'))}")
        self._dirty.add(self._state)

    def delete_state(self, kind: str, key: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._call(self._es.delete, index=self._state, id=self._state_id(kind, key))
        self._dirty.add(self._state)

    def list_state(self, kind: str) -> list[tuple[str, Doc]]:
        # another process's put_state is read by realtime get; a listing is a search: refresh
        # the (small) state index first so it lists what other processes stored too
        self._dirty.add(self._state)
        out: list[tuple[str, Doc]] = []
        after: list[Any] | None = None
        while True:
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            body = self._search("", index=self._state, query={"term": {"kind": kind}},
                                sort=[{"key": "asc"}], size=1000, **extra)
            page = body["hits"]["hits"]
            out.extend((h["_source"]["key"], h["_source"].get("value") or {}) for h in page)
            if len(page) < 1000:
                return out
            after = page[-1]["sort"]

    # -- status -------------------------------------------------------------------------
    def status(self) -> StoreStatus:
        body = self._search("", index=self._events_pattern, size=0, track_total_hits=True, aggs={
            "datasets": {"terms": {"field": "event.dataset", "size": 10_000}},
            "first": {"min": {"field": "@timestamp"}},
            "last": {"max": {"field": "@timestamp"}},
        })
        aggs = body.get("aggregations", {})
        per_dataset = {b["key"]: b["doc_count"] for b in aggs.get("datasets", {}).get("buckets", [])}
        alerts = self.count(index="alerts")
        size = 0
        if names := self._existing_indices(f"{self._events_pattern},{self._alerts},{self._state}"):
            stats = self._call(self._es.indices.stats, index=",".join(names), metric="store")
            size = stats.get("_all", {}).get("total", {}).get("store", {}).get("size_in_bytes", 0)

        def when(name: str) -> str | None:
            value = aggs.get(name, {}).get("value")
            return to_iso(datetime.fromtimestamp(value / 1000, UTC)) if value is not None else None

        return StoreStatus(backend=self.backend, url=self.url, events=body["hits"]["total"]["value"], alerts=alerts,
                           per_dataset=dict(sorted(per_dataset.items())), size_bytes=int(size),
                           first_event=when("first"), last_event=when("last"))


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A query (Lucene text or query DSL) and where its previous page ended."""

    query: str | Mapping[str, Any]
    after: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class Page:
    hits: list[Doc]
    after: list[Any] | None = None  # set when the page was full: more may follow
    error: str | None = None  # this request alone failed (refused, timed out, a shard failed)
    refused: bool = False  # the node refused the query itself (HTTP 400): asking again will not help


@dataclass
class _Tally:
    """Counts per batch of ``write_batches`` (batch 0 for everything else)."""

    written: Counter[int] = field(default_factory=Counter)
    duplicates: Counter[int] = field(default_factory=Counter)
    #: (batch, event id or position in the batch, reason) of each event invalid for the mapping
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    #: refused for a reason that passes or an operator fixes (not the event's fault): not an error
    #: to report and forget, but a stop (``StoreRefused``) before the caller's checkpoint
    refused: list[tuple[int, str, str]] = field(default_factory=list)

    def merge(self, other: _Tally) -> None:
        self.written.update(other.written)
        self.duplicates.update(other.duplicates)
        self.errors.extend(other.errors)
        self.refused.extend(other.refused)

    def result(self, group: int) -> WriteResult:
        return WriteResult(written=self.written[group], duplicates=self.duplicates[group],
                           errors=[(ident, why) for g, ident, why in self.errors if g == group])

    def stop_if_refused(self, store: str, groups: int = 1) -> None:
        """Raise ``StoreRefused`` naming the first cause when anything was refused, with the
        results of the batches that had nothing refused."""
        if not self.refused:
            return
        _, first, cause = self.refused[0]
        cause = cause.rstrip("; ")
        stopped = {g for g, _, _ in self.refused}
        raise StoreRefused(
            f"{store} refused {len(self.refused):,} event(s) (first: {first}): {cause}; "
            "nothing from them on was checkpointed: fix the cause and run the same command again",
            cause, len(self.refused), [None if g in stopped else self.result(g) for g in range(groups)])


def _invalid_document(status: int, error: Any) -> bool:
    """A 400 is the document's fault (a value the mapping refuses), except a mapping limit an
    operator raises (``index.mapping.total_fields.limit``): that one stops, to be stored later."""
    if status != 400:
        return False
    return "limit of total fields" not in _reason(error).lower()


def _doc_id(ident: str) -> str:
    """The ``_id`` of an ``event.id``: itself, or a digest when longer than the 512 bytes ES allows."""
    if len(ident) <= 128 or len(ident.encode()) <= 512:
        return ident
    return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()


def _check_id(doc: Any, position: int, group: int, errors: list[tuple[int, str, str]]) -> str | None:
    """The document's ``event.id``, or an error entry named by its position in its batch."""
    if not isinstance(doc, Mapping):
        errors.append((group, str(position), "not a JSON object"))
        return None
    ident = doc.get("event.id")
    if ident is None:
        errors.append((group, str(position), "missing event.id"))
        return None
    if not isinstance(ident, str) or not ident:
        errors.append((group, str(position), f"event.id must be a non-empty string, got {ident!r}"))
        return None
    return ident




def _sort_key(name: str, value: Any) -> tuple[int, Any]:
    """Group values ascending as the node orders them: numbers, then IPs by address, then text."""
    if isinstance(value, bool | int | float):
        return (0, value)
    if field_type(name) == "ip" and isinstance(value, str):
        key = _ip_order(value)
        if key is not None:
            return (1, key)
    return (2, "" if value is None else str(value))


@functools.lru_cache(maxsize=65536)
def _ip_order(text: str) -> bytes | None:
    """16 bytes, IPv4 mapped into IPv6: how an ``ip`` field sorts (``::1`` < ``9.0.0.1`` < ``10.0.0.9``)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.packed if address.version == 6 else b"\0" * 10 + b"\xff\xff" + address.packed


def _check_whole(body: Mapping[str, Any]) -> None:
    """Refuse an answer that covers only part of the data: Elasticsearch says 200 with
    ``_shards.failed > 0`` (one index refused the query, a circuit breaker tripped in one
    shard's aggregation), ``timed_out`` (hits so far) or ``terminated_early``; passing that on
    would turn "2 of 3 indices answered" into a wrong count with exit 0."""
    shards = body.get("_shards") or {}
    failed = int(shards.get("failed") or 0)
    if failed:
        failures = shards.get("failures") or [{}]
        first = failures[0] if isinstance(failures[0], Mapping) else {}
        where = f" (index {first['index']})" if first.get("index") else ""
        reason = first.get("reason")
        detail = (f"{reason.get('type', 'error')}: {reason.get('reason', '')}" if isinstance(reason, Mapping)
                  else str(reason or "unknown reason")).replace("failed to create query: ", "")
        raise PartialAnswer(
            f"partial answer refused: {failed} of {shards.get('total', '?')} shards failed{where}: {detail}")
    if body.get("timed_out"):
        raise PartialAnswer("partial answer refused: the search timed out on the node before it covered all data")
    if body.get("terminated_early"):
        raise PartialAnswer("partial answer refused: the search stopped early on the node")


def _body_error(exc: ApiError) -> Any:
    body = exc.body
    if isinstance(body, Mapping):
        return body.get("error", body)
    return body or exc.message


def _first_cause(exc: Exception) -> str:
    """The innermost error's message (e.g. 'Connection refused'), not the wrapper chain."""
    errors = getattr(exc, "errors", ()) or ()
    inner: BaseException = errors[0] if errors else exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        nxt = inner.__cause__ or inner.__context__
        if nxt is None:
            break
        inner = nxt
    text = str(inner) or type(inner).__name__
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return m.group(1).strip() if m else text.splitlines()[0][:200]


def _split_nodes(url: str) -> tuple[list[str], str, str]:
    """``(node URLs, userinfo, query)`` of a store URL naming one or several nodes.

    ``urlsplit`` reads ``h1:9200,h2:9200`` as one host with a bad port, so the host list is
    split here; every node shares the scheme, the credentials and the path.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if parts.scheme not in ("http", "https") or not hosts:
        raise StoreURLError(f"bad Elasticsearch URL {url!r}: expected http(s)://host:9200/?prefix=NAME")
    path = parts.path.rstrip("/")
    nodes: list[str] = []
    for host in hosts.split(","):
        one = urlsplit(f"{parts.scheme}://{host.strip()}")
        try:
            port = one.port
        except ValueError as exc:
            raise StoreURLError(f"bad Elasticsearch URL {url!r}: {exc}") from exc
        if not one.hostname:
            raise StoreURLError(f"bad Elasticsearch URL {url!r}: empty host in {hosts!r}")
        name = one.hostname if ":" not in one.hostname else f"[{one.hostname}]"
        node = urlunsplit((parts.scheme, f"{name}:{port}" if port else name, path, "", ""))
        if node not in nodes:
            nodes.append(node)
    return nodes, userinfo, parts.query


def _api_key(value: str | None) -> str | tuple[str, str] | None:
    """``SOC_ES_API_KEY`` as Kibana shows it (the base64 "encoded" form) or as ``id:api_key``."""
    if not value:
        return None
    key_id, colon, secret = value.partition(":")
    return (key_id, secret) if colon else value


def _join_nodes(nodes: Sequence[str]) -> str:
    """``http://h1:9200,h2:9200/path`` back from node URLs sharing scheme and path."""
    if len(nodes) == 1:
        return nodes[0]
    first = urlsplit(nodes[0])
    netlocs = [urlsplit(n).netloc for n in nodes]
    return urlunsplit((first.scheme, ",".join(netlocs), first.path, "", ""))
