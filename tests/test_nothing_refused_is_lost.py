"""Nothing refused is lost.

- An event Elasticsearch refuses for a reason that is not the event's (a write block here,
  set on the test's own indices of the real node) stops the ingest before its checkpoint
  with a message naming the block; once the block is lifted, the same ingest stores it.
- Only events invalid for the mapping are problems, written to the errors file with the
  whole document; both stores refuse the same ones (``eventstore.validate``), checked
  against the node's own verdicts on generated values.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.jsonl import JsonlReader
from collectors.pipeline import CHECKPOINT_KIND, ingest
from eventstore import open_store
from eventstore.errors import StoreRefused
from eventstore.es_store import ElasticsearchStore
from eventstore.store import Store
from eventstore.validate import problem


def _lines(path: Path, start: int, n: int, extra: dict[str, Any] | None = None) -> Path:
    path.write_text("".join(json.dumps({
        "@timestamp": f"2026-03-01T12:{i // 60 % 60:02d}:{i % 60:02d}.000Z", "event.id": f"ev-{i}",
        "event.dataset": "app.test", "source.ip": f"10.0.0.{i % 250}", "destination.port": 443, **(extra or {}),
    }) + "\n" for i in range(start, start + n)))
    return path


@pytest.mark.es
def test_a_write_block_stops_the_checkpoint_and_a_rerun_stores_everything(es_store: Store, tmp_path: Path) -> None:
    assert isinstance(es_store, ElasticsearchStore)
    first = _lines(tmp_path / "a.jsonl", 0, 40)
    second = _lines(tmp_path / "b.jsonl", 40, 100)
    assert ingest(es_store, JsonlReader(), [first]).written == 40
    indices = f"{es_store.prefix}-events*"
    es_store._es.indices.put_settings(index=indices, settings={"index.blocks.write": True})
    try:
        with pytest.raises(StoreRefused) as info:
            ingest(es_store, JsonlReader(), [first, second], batch_size=30)
        assert "index write" in str(info.value) and "blocked" in str(info.value)
        assert "run the same command again" in str(info.value)
        saved = {key for key, _ in es_store.list_state(CHECKPOINT_KIND)}
        assert len(saved) == 1  # only the first file's checkpoint: nothing of the second moved
    finally:
        es_store._es.indices.put_settings(index=indices, settings={"index.blocks.write": None})
    report = ingest(es_store, JsonlReader(), [first, second], batch_size=30)
    assert (report.written, report.problem_count) == (100, 0)
    assert es_store.count() == 140
    assert len(es_store.list_state(CHECKPOINT_KIND)) == 2


def test_invalid_events_are_problems_with_their_document(store: Store, tmp_path: Path) -> None:
    source = _lines(tmp_path / "a.jsonl", 0, 5)
    with source.open("a") as fh:
        fh.write(json.dumps({"@timestamp": "2026-03-01T13:00:00.000Z", "event.id": "bad-ip",
                             "source.ip": "10.0.0.300"}) + "\n")
        fh.write(json.dumps({"@timestamp": "2026-03-01T13:00:01.000Z", "event.id": "bad-port",
                             "destination.port": "https"}) + "\n")
    errors = tmp_path / "errors.jsonl"
    report = ingest(store, JsonlReader(), [source], errors_file=errors)
    assert (report.written, report.problem_count) == (5, 2)
    lines = [json.loads(x) for x in errors.read_text().splitlines()]
    assert {x["document"]["event.id"]: x["raw"] for x in lines} == {
        "bad-ip": "source.ip: '10.0.0.300' is not an IP address",
        "bad-port": "destination.port: 'https' is not a number"}
    assert store.count() == 5


_VALUES: dict[str, list[Any]] = {
    "ip": ["10.1.2.3", "::1", "fe80::1", "::ffff:10.0.0.1", "2001:db8::", "010.0.0.1", "10.0.0", "", " 10.0.0.1",
           "10.0.0.0/8", "host", 12, 1.5, True, {"a": 1}, None],
    "long": [0, -7, 443, 2**62, 443.9, -1.5, "443", "443.7", "-12", "1e3", "", " 44", "https", "0x10", "NaN",
             1e30, True, False, {"a": 1}, None],
    "float": [0.5, -3, 1e308, "1.5", " 2.5 ", "-1e-3", "", "NaN", "Infinity", "1e400", "abc", True, {"a": 1}, None],
    "boolean": [True, False, "true", "false", "", "True", "FALSE", "yes", 1, 0, "1", {"a": 1}, None],
    "keyword": ["x", "", 7, 2.5, True, {"a": 1}, None],
}
_FIELDS = {"ip": ["source.ip", "destination.ip", "host.ip"], "long": ["destination.port", "process.pid"],
           "float": ["event.risk_score"], "boolean": ["tls.established"], "keyword": ["user.name", "host.name"]}


def _generated(seed: int, n: int) -> list[dict[str, Any]]:
    """Events with one to three typed fields each, values drawn from what collectors and hostile
    input produce (scalars, lists, mixed lists, objects)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        doc: dict[str, Any] = {"@timestamp": "2026-03-01T12:00:00.000Z", "event.id": f"g-{i}"}
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(sorted(_VALUES))
            value: Any = rng.choice(_VALUES[kind])
            if rng.random() < 0.2:
                value = [rng.choice(_VALUES[kind]) for _ in range(rng.randint(1, 3))]
            doc[rng.choice(_FIELDS[kind])] = value
        docs.append(doc)
    return docs


@pytest.mark.es
def test_validation_agrees_with_the_node_and_both_stores_keep_the_same_events(es_store: Store, tmp_path: Path
                                                                              ) -> None:
    assert isinstance(es_store, ElasticsearchStore)
    docs = _generated(12, 400)
    # the node's own verdict on each document, without our validation in front
    index = f"{es_store.prefix}-events-verdicts"
    body = b"".join(orjson.dumps({"create": {"_index": index, "_id": d["event.id"]}}) + b"\n" + orjson.dumps(d)
                    + b"\n" for d in docs)
    answer = es_store._es.bulk(operations=body, filter_path="items.*.status")
    node = {d["event.id"]: next(iter(item.values()))["status"] < 300 for d, item in zip(docs, answer["items"],
                                                                                          strict=True)}
    ours = {d["event.id"]: problem(d) is None for d in docs}
    disagree = sorted((k, ours[k], node[k]) for k in ours if ours[k] != node[k])
    assert not disagree, [(k, next(d for d in docs if d["event.id"] == k)) for k, _, _ in disagree[:5]]
    assert 0.2 < sum(ours.values()) / len(docs) < 0.8  # both verdicts are well represented
    es_store._es.indices.delete(index=index)

    sqlite = open_store(f"sqlite:///{tmp_path / 'same.db'}")
    try:
        results = [s.write_events(docs) for s in (sqlite, es_store)]
        assert results[0].errors == results[1].errors
        assert results[0].written == results[1].written == sum(ours.values())
    finally:
        sqlite.close()
