"""Many files, one write: the ingest pipeline's grouped path (``collectors.pipeline._Writer``).

Small files are written together (one ``write_batches``, then one ``put_states`` for their
checkpoints) and their checkpoints read ahead in one request. What must not change:

- a refusal in the middle of a group (here a real one: ``index.mapping.total_fields.limit``
  on the test's own index refuses the events that bring a new field, and only those) stops
  the checkpoint of the file it hit, before it, while the other files of the group move; the
  rerun, once the limit is lifted, stores exactly what was refused: nothing lost, nothing twice;
- files sharing an identity in one run (a copy, files beginning with the same line) are
  each resolved after the one before is checkpointed, on both stores;
- the point of it: a folder of small files costs a fixed number of requests, not a few
  per file (counted at the transport, not timed).
"""

from __future__ import annotations

import collections
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elastic_transport import Transport

from collectors import pipeline
from collectors.jsonl import JsonlReader
from collectors.pipeline import CHECKPOINT_KIND, ingest
from collectors.syslog import SyslogReader
from eventstore.errors import StoreRefused
from eventstore.es_store import ElasticsearchStore
from eventstore.store import Store


def _file(path: Path, name: str, n: int, extra_every: int = 0) -> Path:
    """``n`` events with ids ``<name>-<i>``; every ``extra_every``-th also brings a new field."""
    lines = []
    for i in range(n):
        doc: dict[str, Any] = {"@timestamp": f"2026-03-01T12:00:{i % 60:02d}.000Z", "event.id": f"{name}-{i}",
                               "event.dataset": "app.test", "source.ip": f"10.0.0.{i % 250}",
                               "destination.port": 443}
        if extra_every and i % extra_every == 0:
            doc[f"ztsoc_test.{name}"] = f"value {i}"
        lines.append(json.dumps(doc) + "\n")
    path.write_text("".join(lines))
    return path


def _ids(store: Store) -> list[str]:
    return [d["event.id"] for d in store.scan("*", fields=["event.id"], batch_size=1000)]


@pytest.mark.es
def test_a_refusal_mid_group_stops_that_file_only_and_the_rerun_stores_exactly_the_rest(
        es_store: Store, tmp_path: Path) -> None:
    assert isinstance(es_store, ElasticsearchStore)
    seed = _file(tmp_path / "seed.jsonl", "seed", 10)
    assert ingest(es_store, JsonlReader(), [seed]).written == 10  # the index and its fields exist
    # c: every 3rd event brings a field of its own; e: every event does; a, b, d, f: known fields
    files = [_file(tmp_path / f"{name}.jsonl", name, 20, extra_every={"c": 3, "e": 1}.get(name, 0))
             for name in "abcdef"]
    refused = {"c": 7, "e": 20}  # events with a new field: refused while the limit holds
    indices = f"{es_store.prefix}-events*"
    es_store._es.indices.put_settings(index=indices, settings={"index.mapping.total_fields.limit": 1})
    try:
        with pytest.raises(StoreRefused) as info:
            ingest(es_store, JsonlReader(), files, batch_size=1000)  # one group: all six files
        assert "Limit of total fields" in str(info.value) and "run the same command again" in str(info.value)
        assert info.value.refused == sum(refused.values())
        saved = {doc["path"] for _, doc in es_store.list_state(CHECKPOINT_KIND)}
        # the files stored whole moved (those after the refusal too); c and e did not
        assert {Path(p).stem for p in saved} == {"seed", "a", "b", "d", "f"}
        # c's events without the new field were stored: its checkpoint stays before them all
        assert es_store.count() == 10 + 4 * 20 + (20 - refused["c"])
    finally:
        es_store._es.indices.put_settings(index=indices, settings={"index.mapping.total_fields.limit": None})

    again = ingest(es_store, JsonlReader(), files, batch_size=1000)
    by_name = {Path(f.path).stem: f for f in again.files}
    assert (again.written, again.problem_count) == (sum(refused.values()), 0)
    assert (by_name["c"].written, by_name["c"].duplicates) == (refused["c"], 20 - refused["c"])
    assert (by_name["e"].written, by_name["e"].duplicates) == (20, 0)
    assert all(by_name[n].events == 0 for n in "abdf")  # resumed at their end: nothing read again
    ids = _ids(es_store)
    assert len(ids) == len(set(ids)) == 10 + 6 * 20
    assert (ingest(es_store, JsonlReader(), files, batch_size=1000).events, es_store.count()) == (0, 130)


@pytest.mark.es
def test_when_the_checkpoints_are_refused_too_the_refusal_is_named_and_nothing_moves(
        es_store: Store, tmp_path: Path) -> None:
    """As under the disk flood stage, where every index is blocked: the files stored whole
    cannot move either; the error names the events' refusal, and the rerun stores them once."""
    assert isinstance(es_store, ElasticsearchStore)
    seed = _file(tmp_path / "seed.jsonl", "seed", 10)
    assert ingest(es_store, JsonlReader(), [seed]).written == 10
    files = [_file(tmp_path / f"{name}.jsonl", name, 20, extra_every=1 if name == "b" else 0) for name in "abc"]
    events, state = f"{es_store.prefix}-events*", f"{es_store.prefix}-state"
    es_store._es.indices.put_settings(index=events, settings={"index.mapping.total_fields.limit": 1})
    es_store._es.indices.put_settings(index=state, settings={"index.blocks.write": True})
    try:
        with pytest.raises(StoreRefused) as info:
            ingest(es_store, JsonlReader(), files, batch_size=1000)
        assert "Limit of total fields" in str(info.value) and info.value.refused == 20
    finally:
        es_store._es.indices.put_settings(index=state, settings={"index.blocks.write": None})
        es_store._es.indices.put_settings(index=events, settings={"index.mapping.total_fields.limit": None})
    assert {Path(doc["path"]).stem for _, doc in es_store.list_state(CHECKPOINT_KIND)} == {"seed"}
    again = ingest(es_store, JsonlReader(), files, batch_size=1000)
    assert (again.written, again.duplicates, again.problem_count) == (20, 40, 0)  # a and c were stored
    ids = _ids(es_store)
    assert len(ids) == len(set(ids)) == 70


def _syslog(path: Path, host: str, n: int) -> Path:
    first = "Mar  1 10:00:00 gw kernel: started\n"  # the same first line: one identity, a lineage
    path.write_text(first + "".join(f"Mar  1 10:00:{i % 60:02d} {host} sshd[{100 + i}]: Accepted password for u{i} "
                                    f"from 10.0.0.{i % 250} port {2000 + i} ssh2\n" for i in range(n)))
    return path


def test_files_sharing_an_identity_in_one_run_are_each_stored_once(store: Store, tmp_path: Path) -> None:
    a = _syslog(tmp_path / "a.log", "web1", 12)
    b = _syslog(tmp_path / "b.log", "db7", 30)
    c = _syslog(tmp_path / "c.log", "mx2", 5)
    copy = tmp_path / "copy-of-b.log"
    shutil.copy(b, copy)
    reader = SyslogReader(year=2026, tz="UTC")
    report = ingest(store, reader, [a, b, copy, c], batch_size=1000)
    by_name = {Path(f.path).name: f for f in report.files}
    assert [by_name[n].written for n in ("a.log", "b.log", "copy-of-b.log", "c.log")] == [13, 31, 0, 6]
    assert by_name["copy-of-b.log"].duplicate_of == str(b)  # resolved after b's checkpoint moved
    assert len({by_name[n].identity for n in ("a.log", "b.log", "c.log")}) == 3
    assert store.count() == 13 + 31 + 6
    again = ingest(store, reader, [a, b, copy, c], batch_size=1000)
    assert (again.events, again.written) == (0, 0) and all(f.resumed for f in again.files)


@pytest.fixture
def requests() -> Iterator[collections.Counter[str]]:
    """Requests per kind (``POST _mget``, ``PUT _bulk``, ``GET <index>/_doc``...) at the transport."""
    counts: collections.Counter[str] = collections.Counter()
    original = Transport.perform_request

    def counted(self: Transport, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        parts = target.split("?")[0].strip("/").split("/")
        counts[f"{method} " + "/".join(p if p.startswith("_") else "<index>" for p in parts[:2])] += 1
        return original(self, method, target, *args, **kwargs)

    Transport.perform_request = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        Transport.perform_request = original  # type: ignore[method-assign]


def _bulks(requests: collections.Counter[str]) -> int:
    return sum(n for kind, n in requests.items() if kind.endswith("_bulk"))  # to an index or not


@pytest.mark.es
def test_a_folder_of_small_files_costs_a_few_requests_not_a_few_per_file(
        es_store: Store, tmp_path: Path, requests: collections.Counter[str]) -> None:
    files = [_file(tmp_path / f"f{k:02d}.jsonl", f"f{k:02d}", 5) for k in range(40)]
    report = ingest(es_store, JsonlReader(), files, batch_size=1000)
    assert (report.written, len(report.files)) == (200, 40)
    per_file = {kind: n for kind, n in requests.items() if n >= 40}
    assert not per_file, per_file
    assert requests["POST <index>/_mget"] == 1  # every checkpoint read ahead at once
    assert _bulks(requests) == 2  # the 200 events, then the 40 checkpoints
    assert requests["GET <index>/_doc"] == requests["PUT <index>/_doc"] == 0
    requests.clear()
    again = ingest(es_store, JsonlReader(), files, batch_size=1000)
    assert (again.events, again.written) == (0, 0)
    assert _bulks(requests) == 0 and requests["POST <index>/_mget"] == 1


@pytest.mark.es
def test_checkpoints_are_read_ahead_by_a_bounded_window_of_files_and_bytes(
        es_store: Store, tmp_path: Path, requests: collections.Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    files = [_file(tmp_path / f"f{k:02d}.jsonl", f"f{k:02d}", 5) for k in range(12)]
    size = max(f.stat().st_size for f in files)
    monkeypatch.setattr(pipeline, "LOOKAHEAD_BYTES", int(2.5 * size))  # two files a window
    report = ingest(es_store, JsonlReader(), files, batch_size=1000)
    assert (report.written, requests["POST <index>/_mget"], _bulks(requests)) == (60, 6, 2)
    monkeypatch.setattr(pipeline, "LOOKAHEAD_BYTES", 1)  # a file larger than the window: a window of one
    monkeypatch.setattr(pipeline, "LOOKAHEAD", 1)
    requests.clear()
    assert ingest(es_store, JsonlReader(), files, batch_size=1000).events == 0
    assert requests["POST <index>/_mget"] == 12
