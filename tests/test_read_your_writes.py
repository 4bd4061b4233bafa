"""Read your writes: when an ingest, a detection run or a lifecycle command returns, the next
command, in any process, sees what it wrote.

Proven on the real Elasticsearch node with the periodic refresh switched off for the test's
indices (``refresh_interval: -1``), so only the store's own refreshes can make a document
visible: a second client (its own connection, nothing written, the way another ``soc``
process reads) must see every event, alert, lifecycle change and state entry at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import es_store_url

from collectors.jsonl import JsonlReader
from collectors.pipeline import ingest
from detections import lifecycle
from detections.runner import load_compiled, run_detections
from eventstore import es_templates
from eventstore.es_store import ElasticsearchStore

pytestmark = pytest.mark.es

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def pair() -> Iterator[tuple[ElasticsearchStore, ElasticsearchStore]]:
    """(writer, reader): two clients of one prefix whose indices never refresh on their own."""
    url = es_store_url()
    writer = ElasticsearchStore.from_url(url)
    writer.init()
    settings = es_templates.settings()
    settings["index"]["refresh_interval"] = "-1"
    writer._es.cluster.put_component_template(name=f"{writer.prefix}-settings", template={"settings": settings})
    writer._es.indices.put_settings(index=f"{writer.prefix}-state", settings={"index": {"refresh_interval": "-1"}})
    reader = ElasticsearchStore.from_url(url)
    reader.init()
    try:
        yield writer, reader
    finally:
        reader.close()
        writer.drop()
        writer.close()


def _failed_logons(n: int) -> list[dict[str, object]]:
    return [{"@timestamp": (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
             "event.id": f"evt-{i}", "event.dataset": "windows.security", "event.code": "4625",
             "winlog.channel": "Security", "winlog.event_id": "4625", "winlog.computer_name": "ws-01",
             "host.name": "ws-01", "user.name": f"user{i % 3}"} for i in range(n)]


def test_ingest_then_another_client_counts_every_event(pair: tuple[ElasticsearchStore, ElasticsearchStore],
                                                       tmp_path: Path) -> None:
    writer, reader = pair
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in _failed_logons(30)))
    report = ingest(writer, JsonlReader(), [source])
    assert report.written == 30
    assert reader.count() == 30


def test_detection_run_then_another_client_lists_its_alerts(pair: tuple[ElasticsearchStore, ElasticsearchStore]
                                                            ) -> None:
    writer, reader = pair
    writer.write_events(_failed_logons(25))
    report = run_detections(writer, since=T0, until=T0 + timedelta(hours=1), compiled=load_compiled())
    assert report.alerts_new >= 1
    listed = {a["event.id"] for a in reader.search(index="alerts", limit=1000).hits}
    assert listed == set(report.alert_ids)


def test_lifecycle_change_then_another_client_sees_it(pair: tuple[ElasticsearchStore, ElasticsearchStore]) -> None:
    writer, reader = pair
    writer.put_alerts([{"@timestamp": "2026-03-01T12:00:00.000Z", "event.id": "alert-1", "event.kind": "alert",
                        "rule.id": "r1", "rule.name": "r"}])
    assert reader.count("ztsoc.alert.status:closed", index="alerts") == 0
    lifecycle.close(writer, "alert-1", "benign", actor="ann")
    assert reader.count("ztsoc.alert.status:closed", index="alerts") == 1
    lifecycle.reopen(writer, "alert-1", actor="ann")
    assert reader.count("ztsoc.alert.status:open", index="alerts") == 1


def test_state_stored_by_one_client_is_listed_by_another(pair: tuple[ElasticsearchStore, ElasticsearchStore]
                                                         ) -> None:
    writer, reader = pair
    writer.put_state("exception", "e1", {"query": "user.name:svc"})
    assert reader.list_state("exception") == [("e1", {"query": "user.name:svc"})]


def test_close_makes_plain_writes_visible(pair: tuple[ElasticsearchStore, ElasticsearchStore]) -> None:
    writer, reader = pair
    other = ElasticsearchStore.from_url(writer.url)
    other.write_events(_failed_logons(5))
    assert reader.count() == 0  # no refresh on write: the bulk path stays fast
    other.close()
    assert reader.count() == 5
