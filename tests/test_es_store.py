"""What only the Elasticsearch backend does, proven against the real node.

The behaviour both backends share lives in ``tests/test_store_conformance.py``; here:
mappings really applied from the schema, idempotent creates across processes, retries on
429/503 through a real local HTTP proxy in front of the node, lazy refresh, optimistic
concurrency on alerts, and the one-line errors for an unreachable or wrong URL.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from conftest import ES_URL, es_store_url

from eventstore import open_store
from eventstore.errors import AlertNotFound, QuerySyntaxError, StoreRefused, StoreUnavailable, StoreURLError
from eventstore.es_store import ElasticsearchStore
from eventstore.store import ALERT_HISTORY, ALERT_STATUS, AlertChange, Metric

pytestmark = pytest.mark.es


def _event(i: int, ts: str = "2024-01-15T10:00:00.000Z", extra: dict[str, object] | None = None) -> dict[str, object]:
    return {"@timestamp": ts, "event.id": f"ev-{i:05d}", "event.dataset": "network.flow",
            "source.ip": f"10.0.{i // 250}.{i % 250}", "destination.port": 443, "message": f"flow {i}",
            **(extra or {})}


@pytest.fixture
def store() -> Iterator[ElasticsearchStore]:
    s = ElasticsearchStore.from_url(es_store_url())
    s.init()
    try:
        yield s
    finally:
        s.drop()
        s.close()


# -- a real HTTP proxy in front of the node, which can refuse requests first --------------

@dataclass
class ProxyPlan:
    """What the proxy does to the next ``_bulk`` requests before it forwards them."""

    refuse: list[int] = field(default_factory=list)  # whole-request statuses to answer first
    reject_item: int | None = None  # on the next bulk, answer this item with 429 itself
    bulk_calls: int = 0
    items_seen: list[int] = field(default_factory=list)


def _proxy_handler(upstream: str, plan: ProxyPlan) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, body: bytes | None) -> tuple[int, bytes, dict[str, str]]:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length",
                                                                                  "accept-encoding")}
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read(), dict(resp.headers)
            except urllib.error.HTTPError as err:
                return err.code, err.read(), dict(err.headers)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if self.path.split("?")[0].endswith("/_bulk") and body is not None:
                plan.bulk_calls += 1
                lines = body.rstrip(b"\n").split(b"\n")
                plan.items_seen.append(len(lines) // 2)
                if plan.refuse:
                    status = plan.refuse.pop(0)
                    error = {"error": {"type": "es_rejected_execution_exception", "reason": "proxy says busy"},
                             "status": status}
                    self._reply(status, json.dumps(error).encode(), {"Content-Type": "application/json",
                                                                     "X-Elastic-Product": "Elasticsearch"})
                    return
                if plan.reject_item is not None:
                    k, plan.reject_item = plan.reject_item, None
                    kept = lines[: 2 * k] + lines[2 * k + 2:]
                    status, out, headers = self._forward(b"\n".join(kept) + b"\n")
                    answer = json.loads(out)
                    answer["errors"] = True
                    answer.setdefault("items", []).insert(k, {"create": {"status": 429, "error": {
                        "type": "es_rejected_execution_exception", "reason": "proxy rejected this item"}}})
                    self._reply(status, json.dumps(answer).encode(), headers)
                    return
            self._reply(*self._forward(body))

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


@pytest.fixture
def proxy() -> Iterator[tuple[str, ProxyPlan]]:
    if not ES_URL:
        pytest.skip("SOC_TEST_ES_URL is not set")
    plan = ProxyPlan()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(ES_URL.rstrip("/"), plan))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", plan
    finally:
        server.shutdown()
        server.server_close()


def _proxied_store(proxy_url: str) -> ElasticsearchStore:
    prefix = es_store_url().rsplit("prefix=", 1)[1]
    s = ElasticsearchStore(proxy_url, prefix=prefix, initial_backoff=0.01, max_backoff=0.05, max_retries=4)
    s.init()
    return s


# -- mappings -------------------------------------------------------------------------------

def test_templates_and_mappings_come_from_the_schema(store: ElasticsearchStore) -> None:
    es = store._es
    store.write_events([_event(1, extra={"labels.env": "prod", "labels.n": 5, "custom.when": "2024-01-01T00:00:00Z",
                                      "dns.answers": [{"name": "a.example", "data": "192.0.2.1"}],
                                      "event.risk_score": 0.7})])
    index = f"{store.prefix}-events-000001"
    props = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["@timestamp"]["type"] == "date"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["destination"]["properties"]["port"]["type"] == "long"
    assert props["message"]["type"] == "text"
    assert props["event"]["properties"]["dataset"]["type"] == "keyword"
    assert props["event"]["properties"]["risk_score"]["type"] == "double"
    assert props["dns"]["properties"]["answers"]["type"] == "flattened"
    assert props["ztsoc"]["properties"]["alert"]["properties"]["history"] == {"type": "object", "enabled": False}
    # Dynamic namespaces are keywords whatever the JSON type; unknown strings too, never dates.
    assert props["labels"]["properties"]["env"]["type"] == "keyword"
    assert props["labels"]["properties"]["n"]["type"] == "keyword"
    assert props["custom"]["properties"]["when"]["type"] == "keyword"
    settings = es.indices.get_settings(index=index)[index]["settings"]["index"]
    # One shard; a replica only once a second node can hold it (none on the single test node).
    assert (settings["number_of_shards"], settings["auto_expand_replicas"]) == ("1", "0-1")
    assert settings["number_of_replicas"] == str(min(1, es.cluster.health()["number_of_data_nodes"] - 1))
    names = {t["name"] for t in es.indices.get_index_template(name=f"{store.prefix}-*")["index_templates"]}
    assert names == {f"{store.prefix}-events", f"{store.prefix}-alerts", f"{store.prefix}-state"}
    # Inside the flattened object and the dynamic namespace, values are searchable.
    assert store.count("dns.answers.data:192.0.2.1") == 1
    assert store.count("labels.n:5 AND labels.env:prod") == 1


def test_years_of_history_make_one_index_not_one_per_month(store: ElasticsearchStore) -> None:
    result = store.write_events([
        _event(1, "2013-01-31T23:30:00.000Z"),
        _event(2, "2024-01-31T20:30:00-05:00"),
        _event(3, "2022-03-01T00:00:00.000Z"),
    ])
    assert result.written == 3
    names = set(store._es.indices.get(index=f"{store.prefix}-events-*").body)
    assert names == {f"{store.prefix}-events-000001"}
    aliases = store._es.indices.get_alias(name=f"{store.prefix}-events").body
    assert aliases == {f"{store.prefix}-events-000001": {"aliases": {f"{store.prefix}-events": {"is_write_index": True}}}}
    assert [e["event.id"] for e in store.scan(batch_size=1)] == ["ev-00001", "ev-00003", "ev-00002"]


def test_create_is_idempotent_across_processes_and_timestamp_spellings(store: ElasticsearchStore) -> None:
    events = [_event(i) for i in range(50)]
    assert store.write_events(events).written == 50
    again = ElasticsearchStore.from_url(store.url)  # a second process: nothing cached
    try:
        again.init()
        same_instant = {**events[0], "@timestamp": "2024-01-15T11:00:00+01:00"}
        result = again.write_events([*events, same_instant])
        assert (result.written, result.duplicates, result.errors) == (0, 51, [])
        assert again.count() == 50
    finally:
        again.close()


def test_ids_longer_than_elasticsearch_allows_still_work(store: ElasticsearchStore) -> None:
    long_id = "pcap:/var/captures/" + "x" * 600 + ":42"  # _id is limited to 512 bytes
    event = {**_event(1), "event.id": long_id}
    assert store.write_events([event]).written == 1
    assert store.write_events([event]).duplicates == 1
    found = store.get_event(long_id)
    assert found is not None and found["event.id"] == long_id
    store.put_alerts([{**event, "rule.name": "r"}])
    store.update_alert(long_id, AlertChange(actor="bob", action="close", changes={ALERT_STATUS: "closed"}))
    alert = store.get_alert(long_id)
    assert alert is not None and alert[ALERT_STATUS] == "closed"


def test_refused_documents_are_reported_and_the_rest_stored(store: ElasticsearchStore) -> None:
    result = store.write_events([
        _event(1), {"event.id": "no-time"}, {"@timestamp": "2024-01-15T10:00:00Z"},
        _event(2, extra={"source.ip": "not-an-ip"}), _event(3), _event(4, ts="yesterday"),
    ])
    assert result.written == 2
    reasons = dict(result.errors)
    assert reasons["no-time"] == "missing @timestamp"
    assert reasons["2"] == "missing event.id"
    assert "source.ip" in reasons["ev-00002"] and "not-an-ip" in reasons["ev-00002"]
    assert "yesterday" in reasons["ev-00004"]
    assert store.count() == 2


def test_many_batches_in_flight_report_errors_in_input_order(store: ElasticsearchStore) -> None:
    store.bulk_docs = 4  # 30 events: 8 bulk requests, two in flight at a time
    events: list[dict[str, object]] = [_event(i) for i in range(30)]
    events[2] = {"@timestamp": "2024-01-15T10:00:00Z"}  # refused before sending (batch 1)
    events[13] = _event(13, extra={"destination.port": "https"})  # refused by the node (batch 4)
    events[25] = {"event.id": "late"}  # refused before sending (batch 7)
    result = store.write_events(iter(events))
    assert result.written == 27
    assert [ident for ident, _ in result.errors] == ["2", "ev-00013", "late"]
    assert store.count() == 27


# -- back-pressure ------------------------------------------------------------------------

def test_bulk_retries_whole_requests_refused_with_429_and_503(proxy: tuple[str, ProxyPlan]) -> None:
    url, plan = proxy
    s = _proxied_store(url)
    try:
        plan.refuse = [429, 503, 429]
        result = s.write_events(_event(i) for i in range(30))
        assert (result.written, result.duplicates, result.errors) == (30, 0, [])
        assert plan.bulk_calls == 4  # three refusals, then the one that landed
        assert s.count() == 30
    finally:
        s.drop()
        s.close()


def test_bulk_resends_only_the_items_rejected_with_429(proxy: tuple[str, ProxyPlan]) -> None:
    url, plan = proxy
    s = _proxied_store(url)
    try:
        plan.reject_item = 7
        result = s.write_events(_event(i) for i in range(20))
        assert (result.written, result.duplicates, result.errors) == (20, 0, [])
        assert plan.items_seen == [20, 1]
        assert s.get_event("ev-00007") is not None
    finally:
        s.drop()
        s.close()


def test_bulk_gives_up_after_its_retries_and_stops_naming_the_cause(proxy: tuple[str, ProxyPlan]) -> None:
    """A node still busy after every retry is not the events' fault: the write stops (StoreRefused,
    so no checkpoint passes them) instead of reporting them as bad events."""
    url, plan = proxy
    s = _proxied_store(url)
    try:
        plan.refuse = [429] * 10
        with pytest.raises(StoreRefused) as info:
            s.write_events(_event(i) for i in range(3))
        assert info.value.refused == 3
        assert "HTTP 429" in str(info.value) and "after 5 tries" in str(info.value) and "ev-00000" in str(info.value)
        assert plan.bulk_calls == 5  # first try + max_retries
    finally:
        s.drop()
        s.close()


# -- refresh ------------------------------------------------------------------------------

def test_writes_do_not_refresh_but_the_next_read_sees_them(store: ElasticsearchStore) -> None:
    es = store._es
    store.write_events([_event(0)])
    index = f"{store.prefix}-events-000001"
    es.indices.put_settings(index=index, settings={"index": {"refresh_interval": "-1"}})
    es.indices.refresh(index=index)
    store._dirty.clear()
    store.write_events([_event(i) for i in range(1, 40)])
    # Another reader that does not refresh still sees only the first event: no refresh on write.
    assert es.count(index=index)["count"] == 1
    assert store.count() == 40
    assert store.search(limit=1).total == 40
    assert store._dirty == set()


# -- errors -------------------------------------------------------------------------------

def test_unreachable_node_is_one_clear_line() -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store("http://127.0.0.1:9/?prefix=nowhere")
    message = str(info.value)
    assert "cannot reach Elasticsearch at http://127.0.0.1:9" in message
    assert "\n" not in message


@pytest.mark.parametrize(("status", "expected"), [
    (200, "does not answer as Elasticsearch"),  # a web server, no X-Elastic-Product header
    (404, "does not answer as Elasticsearch"),
    (401, "refused the credentials"),  # a secured node without SOC_ES_USER / SOC_ES_API_KEY
])
def test_wrong_server_or_missing_credentials_is_named(status: int, expected: str) -> None:
    class Answer(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"error": {"type": "security_exception", "reason": "missing authentication"}}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StoreUnavailable, match=expected) as info:
            open_store(f"http://127.0.0.1:{server.server_address[1]}/?prefix=x")
        assert "\n" not in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9200/?prefix=Upper", "http://127.0.0.1:9200/?index=x",
                                 "http://127.0.0.1:9200/?prefix=ztsoc-events-old",
                                 "http://:9200/", "http://127.0.0.1:99999/"])
def test_mistyped_urls_are_refused_before_any_request(url: str) -> None:
    with pytest.raises(StoreURLError):
        ElasticsearchStore.from_url(url)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_ES_USER", "analyst")
    monkeypatch.setenv("SOC_ES_PASSWORD", "s3cret")
    s = ElasticsearchStore.from_url("https://es.example:9200/?prefix=p")
    try:
        assert s.url == "https://es.example:9200/?prefix=p"  # no secret in what gets printed
        node = s._es.transport.node_pool.get()
        assert node.config.verify_certs is True
        assert s._es._headers["authorization"].startswith("Basic ")
    finally:
        s.close()


def test_query_errors_point_at_the_fault(store: ElasticsearchStore) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        store.search("event.dataset:x AND AND y")
    assert info.value.position == 20
    with pytest.raises(QuerySyntaxError) as info:
        store.count("source.ip:(10.0.0.1")
    assert info.value.position == len("source.ip:(10.0.0.1")
    with pytest.raises(QuerySyntaxError, match="not an IP"):
        store.count("source.ip:nope")


def test_query_errors_on_a_store_without_events(store: ElasticsearchStore) -> None:
    # No event index exists yet, so no shard would parse the query: the node validates it.
    assert store._existing_indices(store._events_pattern) == []
    with pytest.raises(QuerySyntaxError) as info:
        store.search("event.dataset:(network.flow")
    assert info.value.position == len("event.dataset:(network.flow")
    with pytest.raises(QuerySyntaxError, match="not an IP"):
        store.count("source.ip:nope", index="alerts")
    assert store.count("event.dataset:network.flow") == 0


# -- aggregation paging, alerts under concurrency, drop -----------------------------------

def test_aggregate_pages_through_composite_buckets(store: ElasticsearchStore) -> None:
    store.write_events([_event(i, extra={"destination.port": 1000 + i % 7}) for i in range(70)])
    store.composite_page = 3
    rows = store.aggregate(["destination.port"], {"srcs": Metric("cardinality", "source.ip")})
    assert len(rows) == 7
    assert [r["destination.port"] for r in rows] == list(range(1000, 1007))
    assert all(r["count"] == 10 and r["srcs"] == 10 for r in rows)
    # naming @timestamp beside a time bucket groups by the bucket, once (as SQLite does)
    assert store.aggregate(["@timestamp"], interval_seconds=86400) == [
        {"@timestamp": "2024-01-15T00:00:00.000Z", "count": 70}]


def test_concurrent_alert_updates_all_land_in_the_history(store: ElasticsearchStore) -> None:
    store.put_alerts([{"@timestamp": "2024-01-15T10:00:00.000Z", "event.id": "al-1", "rule.name": "r"}])

    def note(n: int) -> None:
        other = ElasticsearchStore.from_url(store.url)
        try:
            other.update_alert("al-1", AlertChange(actor=f"a{n}", action="comment", changes={}, note=f"n{n}"))
        finally:
            other.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(note, range(6)))
    alert = store.get_alert("al-1")
    assert alert is not None
    assert sorted(h["note"] for h in alert[ALERT_HISTORY]) == [f"n{n}" for n in range(6)]
    # A detection rerun refreshes the alert but keeps the analysts' work.
    store.update_alert("al-1", AlertChange(actor="bob", action="acknowledge",
                                           changes={ALERT_STATUS: "acknowledged"}))
    store.put_alerts([{"@timestamp": "2024-01-15T11:00:00.000Z", "event.id": "al-1", "rule.name": "r v2"}])
    alert = store.get_alert("al-1")
    assert alert is not None
    assert (alert["rule.name"], alert[ALERT_STATUS], len(alert[ALERT_HISTORY])) == ("r v2", "acknowledged", 7)
    with pytest.raises(AlertNotFound):
        store.update_alert("missing", AlertChange(actor="bob", action="close", changes={}))


def test_drop_removes_only_this_prefix(store: ElasticsearchStore) -> None:
    neighbour = ElasticsearchStore.from_url(es_store_url())
    neighbour.init()
    try:
        store.write_events([_event(1)])
        neighbour.write_events([_event(1)])
        store.drop()
        assert store._existing_indices(f"{store.prefix}-*") == []
        assert neighbour.count() == 1
        store.init()  # usable again after a drop
        assert store.count() == 0
    finally:
        neighbour.drop()
        neighbour.close()


def test_status_reports_datasets_size_and_span(store: ElasticsearchStore) -> None:
    store.write_events([_event(1, "2024-01-15T10:00:00.000Z"),
                        _event(2, "2024-02-01T00:00:00.000Z", extra={"event.dataset": "network.dns"})])
    st = store.status()
    assert (st.backend, st.events, st.alerts) == ("elasticsearch", 2, 0)
    assert st.per_dataset == {"network.dns": 1, "network.flow": 1}
    assert (st.first_event, st.last_event) == ("2024-01-15T10:00:00.000Z", "2024-02-01T00:00:00.000Z")
    assert st.size_bytes > 0
    since = datetime(2024, 1, 20, tzinfo=UTC)
    assert [h["event.id"] for h in store.search(since=since).hits] == ["ev-00002"]


# -- the templates as data (no node needed) ----------------------------------------------

def test_every_schema_field_is_mapped_at_its_path() -> None:
    from eventstore import es_templates
    from eventstore.schema import FIELDS

    props = es_templates.properties()
    for name, kind in FIELDS.items():
        node: dict[str, object] = {"properties": props}
        for part in name.split("."):
            node = node["properties"][part]  # type: ignore[index]
        expected = {"float": "double"}.get(kind, kind)
        if kind == "object":
            assert node["type"] in ("object", "flattened"), name
        else:
            assert node["type"] == expected, name


def test_a_field_that_is_also_a_parent_is_refused() -> None:
    from eventstore import es_templates

    for fields in ({"a.b": "keyword", "a": "keyword"}, {"a": "object", "a.b.c": "ip"}):
        with pytest.raises(ValueError, match="'a' is not an object"):
            es_templates.properties(fields)  # type: ignore[arg-type]
