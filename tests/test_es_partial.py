"""No partial answer passes as whole: a shard that fails makes the whole call fail, with its reason.

Elasticsearch answers HTTP 200 when some shards fail, with ``_shards.failed > 0`` and the hits
of the others. The failures here are real ones made on the node, each in one index only:
an index whose ``index.max_regex_length`` is lower than the query's regex (one month refuses
the query, the other answers), and an index made by another writer where ``user.name`` is a
``text`` field (its shard cannot aggregate by it, the others can: a partial aggregation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from eventstore.errors import PartialAnswer
from eventstore.es_store import ElasticsearchStore
from eventstore.timeutil import from_iso
from tests.conftest import es_store_url

pytestmark = pytest.mark.es


def _event(i: int, month: str) -> dict[str, object]:
    return {"event.id": f"p-{month}-{i}", "@timestamp": f"{month}-03T10:00:{i:02d}Z", "event.dataset": "system.auth",
            "user.name": f"user{i % 3}", "message": f"login attempt {i}"}


@pytest.fixture
def es() -> Iterator[ElasticsearchStore]:
    store = ElasticsearchStore.from_url(es_store_url())
    store.init()
    try:
        yield store
    finally:
        store.drop()
        store.close()


def test_a_shard_refusing_the_query_is_an_error(es: ElasticsearchStore) -> None:
    es.write_events([_event(i, "2026-01") for i in range(5)])
    es._es.indices.rollover(alias=es._events_alias)  # a second event index, as a size/age rollover makes
    es.write_events([_event(i, "2026-02") for i in range(5)])
    assert es.count() == 10
    es._es.indices.put_settings(index=f"{es.prefix}-events-000001", settings={"index.max_regex_length": 4})
    query = "user.name:/user[0-9]+/"
    with pytest.raises(PartialAnswer, match=r"1 of 2 shards failed \(index .*-events-000001\).*max_regex_length"):
        es.search(query)
    with pytest.raises(PartialAnswer, match="1 of 2 shards failed"):
        es.count(query)
    with pytest.raises(PartialAnswer):
        list(es.scan(query))
    with pytest.raises(PartialAnswer):
        es.aggregate(["user.name"], query=query)
    assert es.count("user.name:user1") == 4  # queries every shard can run still answer

    env = {**os.environ, "SOC_STORE": es.url}
    run = subprocess.run([sys.executable, "-m", "soc_cli.main", "hunt", query, "--since", "3650d", "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "partial answer refused: 1 of 2 shards failed" in lines[0], run.stderr


def test_a_partial_aggregation_is_an_error(es: ElasticsearchStore) -> None:
    es.write_events([_event(i, "2026-03") for i in range(6)])
    other = f"{es.prefix}-events-1999.01"  # a monthly index of an older writer: user.name is text there
    es._es.indices.create(index=other, mappings={"properties": {"user": {"properties": {"name": {"type": "text"}}}}})
    es._es.index(index=other, id="x", document={"event.id": "x", "@timestamp": "1999-01-05T00:00:00Z",
                                                 "user.name": "someone"}, refresh=True)
    with pytest.raises(PartialAnswer, match=r"1 of 2 shards failed \(index .*-events-1999.01\)"):
        es.aggregate(["user.name"])
    with pytest.raises(PartialAnswer):  # a window that holds the broken index's event still refuses
        es.aggregate(["user.name"], since=from_iso("1998-01-01T00:00:00Z"))
    # A window that excludes it: Elasticsearch may skip that shard (its @timestamp range cannot match)
    # or run it and fail. Either is honest: a refusal, or the full answer of the window. Never a
    # silent part of it.
    try:
        rows = es.aggregate(["user.name"], since=from_iso("2026-01-01T00:00:00Z"))
    except PartialAnswer:
        pass
    else:
        assert sorted(r["count"] for r in rows) == [2, 2, 2]
    es._es.indices.delete(index=other)
    assert sorted(r["count"] for r in es.aggregate(["user.name"])) == [2, 2, 2]
