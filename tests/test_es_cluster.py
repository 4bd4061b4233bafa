"""A node of a 3-node cluster killed (``kill -9``) while ``soc ingest`` and ``soc detect run`` run.

The cluster is the project's own (``scripts/es-cluster.sh``, three master+data nodes on
loopback with small heaps), started here on free ports when no ``SOC_TEST_ES_CLUSTER_URL``
names one (``make es-cluster-up`` prints it), and stopped afterwards. The store URL names all three nodes; indices have one replica
(``auto_expand_replicas``), so the killed node's shards are promoted on the others.

Two real CLI processes run at once, then the node holding the events' primary shard is
killed: an ingest of 20,000 events read from a pipe (half before the kill, half after)
and a detection pass over the shipped rules' sample events (a time range the ingest does
not touch, so its alerts are known in advance from the embedded store), killed into once
it has sent its first search. Whatever fails is run again, as an operator would:
afterwards every event is stored exactly once and the alerts equal the embedded store's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from conftest import ES_URL
from test_detect_both_stores import T0, _events, _summary

from detections.runner import load_compiled, run_detections
from eventstore import open_store
from eventstore.es_store import ElasticsearchStore

pytestmark = [pytest.mark.es, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "es-cluster.sh"
SOC = Path(sys.executable).with_name("soc")
SINCE, UNTIL = "2026-03-01T00:00:00Z", "2026-06-01T00:00:00Z"
FILLER = 20_000


def _free_base() -> str:
    """A base port with its three HTTP and three transport ports free (other runs may hold 9250)."""
    for base in range(9250, 9400, 10):
        try:
            with contextlib.ExitStack() as stack:
                for port in (*range(base, base + 3), *range(base + 100, base + 103)):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return str(base)
        except OSError:
            continue
    pytest.skip("no free ports for a 3-node cluster between 9250 and 9500")


_ENV = {**os.environ, "ES_CLUSTER_PORT": os.environ.get("ES_CLUSTER_PORT") or "9250"}


def _script(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env=_ENV)
    if done.returncode != 0:
        pytest.fail(f"es-cluster.sh {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The nodes' URL; a cluster started here is stopped after, a given one is left whole."""
    if not ES_URL:
        pytest.skip("SOC_TEST_ES_URL is not set: run `make test` (Elasticsearch tests need the JDK it installs)")
    given = os.environ.get("SOC_TEST_ES_CLUSTER_URL")
    if given:
        yield given.rstrip("/")
        _script("up")  # restart the node the test killed
        return
    _ENV["ES_CLUSTER_PORT"] = _free_base()
    _script("up")
    try:
        yield _script("url")
    finally:
        _script("down", timeout=120)


def _filler(path: Path) -> None:
    """Flows in 2025: outside the detection range, so they raise nothing."""
    with path.open("wb") as out:
        for i in range(FILLER):
            out.write(orjson.dumps({
                "@timestamp": f"2025-01-{1 + i % 28:02d}T10:{i % 60:02d}:{i % 59:02d}.000Z", "event.id": f"fill-{i:06d}",
                "event.dataset": "network.flow", "source.ip": f"10.1.{i % 250}.{i // 250 % 250}",
                "destination.port": 443 + i % 3, "message": f"flow {i}"}) + b"\n")


def _primary_node(store: ElasticsearchStore) -> int:
    shards = store._es.cat.shards(index=f"{store.prefix}-events-*", format="json").body
    primary = next(s for s in shards if s["prirep"] == "p" and s["state"] == "STARTED")
    return int(primary["node"].removeprefix("ztsoc-c"))


def _filler_stored(store: ElasticsearchStore) -> int:
    store._es.indices.refresh(index=f"{store.prefix}-events-*")
    return int(store._es.count(index=f"{store.prefix}-events-*", q="event.id:fill-*")["count"])


def _searches(store: ElasticsearchStore) -> int:
    """Searches the cluster ran on this store's indices so far (stats calls are not searches)."""
    stats = store._es.indices.stats(index=f"{store.prefix}-*", metric="search").body
    return int(stats["_all"]["total"]["search"]["query_total"])


def _finish(proc: subprocess.Popen[bytes], argv: list[str], env: dict[str, str]) -> int:
    """Wait; if the kill made the run fail, run it again (the resume). How many runs it took."""
    proc.wait(timeout=600)
    if proc.returncode == 0:
        return 1
    again = subprocess.run(argv, env=env, capture_output=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    return 2


def test_a_node_killed_during_ingest_and_detection_loses_and_doubles_nothing(cluster: str, tmp_path: Path) -> None:
    url = f"{cluster}/?prefix=ztsoc-test-{uuid.uuid4().hex[:10]}"
    store = ElasticsearchStore.from_url(url)
    store.init()
    reference = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        samples = _events()
        assert not store.write_events(samples).errors
        assert not reference.write_events(samples).errors
        run_detections(reference, since=T0, until=datetime(2026, 6, 1, tzinfo=UTC), compiled=load_compiled())
        expected = _summary(reference)
        assert len(expected) >= 10
        filler = tmp_path / "flows.jsonl"
        _filler(filler)

        env = {**os.environ, "SOC_STORE": url}
        # The ingest reads a pipe: half the events now, the rest after the kill, so it is
        # certainly mid-run when the node dies. (Its rerun, if needed, reads the whole file.)
        lines = filler.read_bytes().splitlines(keepends=True)
        ingest_argv = [str(SOC), "ingest", "jsonl", str(filler), "--batch-size", "1000"]
        ingest = subprocess.Popen([*ingest_argv[:3], "-", *ingest_argv[4:]], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert ingest.stdin is not None
        ingest.stdin.write(b"".join(lines[: FILLER // 2]))
        ingest.stdin.flush()
        deadline = time.monotonic() + 300
        while _filler_stored(store) < FILLER // 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        # The detection is killed into once it has sent its first search to the cluster.
        searches = _searches(store)
        detect_argv = [str(SOC), "detect", "run", "--since", SINCE, "--until", UNTIL]
        detect = subprocess.Popen(detect_argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while _searches(store) == searches and detect.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = _primary_node(store)
        assert ingest.poll() is None and detect.poll() is None, "both runs must still be going at the kill"
        _script("kill", str(victim))
        ingest.stdin.write(b"".join(lines[FILLER // 2:]))
        ingest.stdin.close()

        runs = {"ingest": _finish(ingest, ingest_argv, env), "detect": _finish(detect, detect_argv, env)}
        print(f"killed node {victim}; runs it took: {runs}")
        health = store._es.cluster.health(wait_for_nodes="2", timeout="60s")
        assert health["number_of_nodes"] == 2

        # Nothing lost, nothing doubled: every id once, across every events index.
        ids = [e["event.id"] for e in store.scan(fields=["event.id"], batch_size=5000)]
        assert len(ids) == len(set(ids)) == FILLER + len(samples), runs
        assert store.count("event.id:fill-*") == FILLER
        # The alerts are the embedded store's, one each.
        assert _summary(store) == expected, runs
        assert store.count(index="alerts") == len(expected)
    finally:
        reference.close()
        store.drop()
        store.close()
