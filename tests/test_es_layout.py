"""The Elasticsearch index layout for real history, and how a store URL names its nodes.

Against the real node: the store rolls its write alias over by itself (the minimal
distribution has no ILM and no data streams), a rolled-over or pre-rollover (monthly)
index stays readable and still turns a re-ingested event into a duplicate, alerts keep
their one index, and a value too long to index does not refuse the event.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import orjson
import pytest
from conftest import es_store_url

from eventstore.errors import StoreURLError
from eventstore.es_store import ElasticsearchStore, Rollover
from eventstore.store import ALERT_STATUS, AlertChange


def _event(i: int, ts: str = "2024-01-15T10:00:00.000Z") -> dict[str, object]:
    return {"@timestamp": ts, "event.id": f"ev-{i:05d}", "event.dataset": "windows.security",
            "host.name": f"ws-{i % 3}", "message": f"logon {i}"}


def _open(url: str, **kwargs: object) -> ElasticsearchStore:
    nodes_prefix = url.split("/?prefix=")
    s = ElasticsearchStore(nodes_prefix[0], prefix=nodes_prefix[1], **kwargs)  # type: ignore[arg-type]
    s.init()
    return s


@pytest.fixture
def url() -> Iterator[str]:
    url = es_store_url()
    yield url
    cleanup = ElasticsearchStore.from_url(url)
    cleanup.drop()
    cleanup.close()


def _event_indices(store: ElasticsearchStore) -> list[str]:
    return sorted(store._es.indices.get(index=f"{store.prefix}-events-*").body)


@pytest.mark.es
def test_rollover_by_size_of_index_and_nothing_written_twice_across_it(url: str) -> None:
    # check_every=1: the conditions are checked before every request of 4 (bulk_docs).
    store = _open(url, rollover=Rollover(max_docs=6, check_every=1), bulk_docs=4, bulk_concurrency=1)
    try:
        first = store.write_events(_event(i) for i in range(8))
        assert (first.written, first.duplicates) == (8, 0)
        # 4 events when the second request was sent: no condition met yet; no empty index made ahead
        assert _event_indices(store) == [f"{store.prefix}-events-000001"]
        # Ingested again (a resume, another process): everything is found, in either index.
        again = _open(url, rollover=Rollover(max_docs=6, check_every=1), bulk_docs=4, bulk_concurrency=1)
        try:
            second = again.write_events([*(_event(i) for i in range(12))])
            assert _event_indices(store) == [f"{store.prefix}-events-000001", f"{store.prefix}-events-000002"]
            assert (second.written, second.duplicates, second.errors) == (4, 8, [])
            assert again.count() == 12
            assert again.count("host.name:ws-0") == 4
            assert again.get_event("ev-00001") is not None  # in the first, rolled-over index
            ids = [e["event.id"] for e in again.scan(batch_size=5)]
            assert ids == sorted(ids) and len(set(ids)) == 12
        finally:
            again.close()
    finally:
        store.close()


@pytest.mark.es
def test_no_rollover_while_no_condition_is_met(url: str) -> None:
    store = _open(url, rollover=Rollover(check_every=1), bulk_docs=10, bulk_concurrency=1)
    try:
        assert store.write_events(_event(i, f"{2013 + i % 10}-06-01T00:00:00.000Z") for i in range(30)).written == 30
        assert _event_indices(store) == [f"{store.prefix}-events-000001"]
    finally:
        store.close()


@pytest.mark.es
def test_a_store_with_monthly_indices_stays_readable_and_deduplicated(url: str) -> None:
    # Built as the store did before rollover: one index per event month, _id = event.id.
    prefix = url.rsplit("prefix=", 1)[1]
    old = _open(url)
    lines = b""
    for i in range(6):
        ts = f"2024-0{1 + i % 2}-15T10:00:00.000Z"
        month = f"2024.0{1 + i % 2}"
        lines += orjson.dumps({"create": {"_index": f"{prefix}-events-{month}", "_id": f"ev-{i:05d}"}}) + b"\n"
        lines += orjson.dumps(_event(i, ts)) + b"\n"
    assert not old._es.bulk(operations=lines, refresh=True)["errors"]
    old.close()
    store = _open(url)
    try:
        assert store.count() == 6  # read before any write: nothing to migrate first
        result = store.write_events([*(_event(i, f"2024-0{1 + i % 2}-15T10:00:00.000Z") for i in range(10))])
        assert (result.written, result.duplicates) == (4, 6)
        assert _event_indices(store) == [f"{prefix}-events-000001", f"{prefix}-events-2024.01",
                                         f"{prefix}-events-2024.02"]
        assert store.count() == 10
        assert store.search("host.name:ws-1", limit=10).total == 3
        rows = store.aggregate(["host.name"])
        assert sum(r["count"] for r in rows) == 10
        # Alerts keep one index, so an update finds the alert whichever index its evidence is in.
        alert = {"@timestamp": "2024-01-15T10:00:00.000Z", "event.id": "al-1", "event.kind": "alert",
                 "rule.name": "r", "ztsoc.alert.evidence": ["ev-00001"]}
        assert store.put_alerts([alert]).written == 1
        updated = store.update_alert("al-1", AlertChange(actor="analyst", action="close", changes={ALERT_STATUS: "closed"}, note="seen"))
        assert updated[ALERT_STATUS] == "closed"
        assert store.get_alert("al-1") == updated
    finally:
        store.close()


@pytest.mark.es
def test_a_value_too_long_to_index_is_kept_not_refused(url: str) -> None:
    store = _open(url)
    try:
        long_line = "powershell -enc " + "QUJD" * 10_000  # 40 kB: above Lucene's term limit
        event = {**_event(1), "process.command_line": long_line, "winlog.event_data.ScriptBlockText": long_line}
        result = store.write_events([event, _event(2)])
        assert (result.written, result.errors) == (2, [])
        stored = store.get_event("ev-00001")
        assert stored is not None and stored["process.command_line"] == long_line
        assert store.count("host.name:ws-1") == 1
    finally:
        store.close()


# -- URLs naming several nodes -------------------------------------------------------------

def test_several_nodes_in_one_url() -> None:
    s = ElasticsearchStore.from_url("http://h1:9200,h2:9201,[::1]:9202/?prefix=p")
    try:
        assert s.nodes == ["http://h1:9200", "http://h2:9201", "http://[::1]:9202"]
        assert s.url == "http://h1:9200,h2:9201,[::1]:9202/?prefix=p"
        hosts = sorted((n.host, n.port) for n in s._es.transport.node_pool.all())
        assert hosts == [("::1", 9202), ("h1", 9200), ("h2", 9201)]
        assert s._es.transport._sniff_on_start is False and s._es.transport._sniff_on_node_failure is False
    finally:
        s.close()


@pytest.mark.es
def test_state_writes_fail_over_when_a_named_node_is_down(url: str) -> None:
    """Each new process starts with every node of the URL looking alive, so the round robin
    sends some first tries to the dead one; checkpoints and rule cursors (``put_states``) must
    go on to another node as every other request does (they had no retry: the 3-node test's
    detection rerun failed with 'Connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # closed again: nothing listens there
    live, prefix = url.split("/?prefix=")
    store = ElasticsearchStore.from_url(f"http://127.0.0.1:{dead_port},{live.removeprefix('http://')}/?prefix={prefix}")
    try:
        store.init()
        pool = store._es.transport.node_pool
        dead = next(n for n in pool.all() if n.config.port == dead_port)
        for i in range(4):  # round robin over two live-looking nodes: half the first tries hit the dead one
            pool.mark_live(dead)
            store.put_states("checkpoint", {f"k{i}": {"n": i}})
        assert store.get_states("checkpoint", [f"k{i}" for i in range(4)]) == {f"k{i}": {"n": i} for i in range(4)}
    finally:
        store.close()


def test_credentials_in_the_url_apply_to_every_node_and_are_never_printed() -> None:
    s = ElasticsearchStore.from_url("https://an%40lyst:p%3Ass@h1:9200,h2:9200/es/?prefix=p")
    try:
        assert s.url == "https://h1:9200,h2:9200/es/?prefix=p"
        assert [n.config.path_prefix for n in s._es.transport.node_pool.all()] == ["/es", "/es"]
        assert s._es._headers["authorization"] == "Basic " + base64.b64encode(b"an@lyst:p:ss").decode()
    finally:
        s.close()


@pytest.mark.es
def test_sniffing_when_asked_finds_the_nodes_the_cluster_publishes(url: str) -> None:
    s = ElasticsearchStore.from_url(url + "&sniff=true")
    try:
        s.init()
        assert s._es.transport._sniff_on_start is True and s._es.transport._sniff_on_node_failure is True
        assert s.count() == 0
    finally:
        s.close()


@pytest.mark.parametrize("url", ["http://h1:9200,/?prefix=p", "http://h1:9200,h2:99999/",
                                 "http://h1:9200/?sniff=maybe", "http://h1:9200/?replicas=2"])
def test_bad_node_lists_are_refused_before_any_request(url: str) -> None:
    with pytest.raises(StoreURLError):
        ElasticsearchStore.from_url(url)


# -- new fields mapped by the store, as the node's dynamic templates would --------------------

def _field_events() -> list[dict[str, object]]:
    base = {"@timestamp": "2024-01-15T10:00:00.000Z", "event.dataset": "windows.sysmon"}
    shapes: list[dict[str, object]] = [
        {"winlog.event_data.Image": "C:\\x.exe", "winlog.event_data.ProcessId": 4242,
         "winlog.event_data.Elevated": True, "winlog.event_data.Ratio": 0.5},
        {"winlog.user_data.Param1": "a", "labels.team": "blue", "labels.count": 3},
        {"custom.note": "free text", "custom.count": 7, "custom.ratio": 1.5, "custom.flag": False},
        {"custom.nested": {"inner": "x", "n": 1}, "custom.list": ["a", "b"]},
        {"dns.answers": [{"name": "a.example", "data": "192.0.2.1"}], "process.command_line": "cmd /c x"},
        {"custom.leaf": "x"},
        {"custom.leaf.child": "y"},  # refused by both: custom.leaf is a keyword, not an object
        {"winlog.event_data.Weird Name (x)": "v"},
        # Refused by both. (Were a new field beside it, the store would have mapped it already:
        # an unused mapping, the one difference from the node's own dynamic mapping.)
        {"odd..name": "x", "winlog.event_data.": "trailing"},
    ]
    return [{**base, "event.id": f"f-{i}", **shape} for i, shape in enumerate(shapes)]


@pytest.mark.es
def test_new_fields_get_the_mappings_the_node_would_give_them(url: str) -> None:
    ours = _open(url)
    prefix = url.rsplit("prefix=", 1)[1]
    theirs = _open(f"{url.split('/?')[0]}/?prefix={prefix}-node")
    theirs._put_mapping = lambda index, properties: None  # type: ignore[method-assign]  # the node maps every field
    try:
        results = [s.write_events(_field_events()) for s in (ours, theirs)]
        assert results[0].written == results[1].written >= 6
        assert [i for i, _ in results[0].errors] == [i for i, _ in results[1].errors]
        mappings = [s._es.indices.get_mapping(index=s._write_index).body for s in (ours, theirs)]
        props = [next(iter(m.values()))["mappings"]["properties"] for m in mappings]
        assert props[0] == props[1]
        assert props[0]["winlog"]["properties"]["event_data"]["properties"]["ProcessId"]["type"] == "keyword"
        assert props[0]["custom"]["properties"]["count"]["type"] == "long"
        assert ours.count("winlog.event_data.ProcessId:4242 AND labels.count:3") == 0
        assert ours.count("winlog.event_data.ProcessId:4242") == 1
    finally:
        theirs.drop()
        theirs.close()
        ours.close()
