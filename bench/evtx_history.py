"""Years of history into each store: the shared EVTX samples through ``soc ingest evtx``'s pipeline.

    .venv/bin/python bench/evtx_history.py              # ../shared/data/evtx-attack-samples
    .venv/bin/python bench/evtx_history.py --rounds 3   # best of 3 per store

The same files (277 EVTX, ~8,250 records from 2013 to 2022, ~440 distinct fields) go
through ``collectors.pipeline.ingest`` (files written together: checkpoints read ahead in one
request, events in shared bulk requests, then the checkpoints in one) into a fresh SQLite file and into a fresh Elasticsearch prefix, back to back. The
baseline is the embedded store in the same run; the target is Elasticsearch within 2x of
its wall time (issue 12, item 5). Printed beside it: how many event indices Elasticsearch
made (the monthly layout made 38 for these files) and where Elasticsearch's time went,
per kind of request, measured at the transport (so the rest is the client's own time).
Skipped with a message when the samples or the node are absent.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "data" / "evtx-attack-samples"
TARGET = 2.0


@contextmanager
def _request_times() -> Iterator[dict[str, list[float]]]:
    """Seconds per kind of request (``PUT _bulk``, ``GET <state>/_doc``...), at the transport."""
    from elastic_transport import Transport

    found: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    original = Transport.perform_request

    def timed(self: Transport, method: str, target: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, method, target, *args, **kwargs)
        finally:
            parts = target.split("?")[0].strip("/").split("/")
            kind = "/".join(p if p.startswith("_") else "<i>" for p in parts[:2])
            slot = found[f"{method} {kind}"]
            slot[0] += 1
            slot[1] += time.perf_counter() - started

    Transport.perform_request = timed  # type: ignore[method-assign]
    try:
        yield found
    finally:
        Transport.perform_request = original  # type: ignore[method-assign]


def _ingest(url: str, paths: Sequence[Path]) -> tuple[float, int, Any]:
    from collectors.pipeline import ingest
    from collectors.registry import READERS
    from eventstore import open_store

    store = open_store(url)
    try:
        reader = READERS["evtx"]
        reader = reader.build() if hasattr(reader, "build") else reader()
        started = time.perf_counter()
        report = ingest(store, reader, paths, batch_size=10_000)
        elapsed = time.perf_counter() - started
        assert report.problem_count == 0, report.as_dict()["problems"]
        return elapsed, report.written, store
    except BaseException:
        store.close()
        raise


def _timed(label: str, run: Callable[[], float], rounds: int) -> float:
    best = min(run() for _ in range(rounds))
    print(f"  {label:44s} {best:8.2f} s")
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/evtx_history.py", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--es-url", default=os.environ.get("SOC_BENCH_ES_URL")
                        or os.environ.get("SOC_TEST_ES_URL") or "http://127.0.0.1:9200")
    args = parser.parse_args(argv)
    paths = sorted(args.samples.rglob("*.evtx")) if args.samples.is_dir() else []
    if not paths:
        print(f"evtx_history: no EVTX files under {args.samples}: skipped")
        return 0
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"evtx_history: {len(paths)} EVTX files from {args.samples}; load average {load} on {os.cpu_count()} CPUs")
    written: dict[str, int] = {}
    requests: dict[str, list[float]] = {}
    indices: list[str] = []

    def sqlite() -> float:
        with tempfile.TemporaryDirectory(prefix="ztsoc-bench-") as tmp:
            elapsed, written["sqlite"], store = _ingest(f"sqlite:///{tmp}/soc.db", paths)
            store.close()
        return elapsed

    def elasticsearch() -> float:
        url = f"{args.es_url.rstrip('/')}/?prefix=bench-{uuid.uuid4().hex[:8]}"
        with _request_times() as found:
            elapsed, written["es"], store = _ingest(url, paths)
        try:
            indices[:] = store._existing_indices(store._events_pattern)
            requests.clear()
            requests.update(found)
        finally:
            store.drop()
            store.close()
        return elapsed

    base = _timed("SQLite (the baseline)", sqlite, args.rounds)
    try:
        es = _timed("Elasticsearch", elasticsearch, args.rounds)
    except Exception as exc:  # no node: report, do not fail the whole bench run
        print(f"  Elasticsearch skipped: {type(exc).__name__}: {exc}")
        return 0
    if written["sqlite"] != written["es"]:
        print(f"  MISMATCH: SQLite stored {written['sqlite']} events, Elasticsearch {written['es']}")
        return 1
    ratio = es / base
    print(f"  {written['es']:,} events each; Elasticsearch / SQLite = {ratio:.1f}x (target <= {TARGET:.0f}x: "
          f"{'met' if ratio <= TARGET else 'missed'}); event indices: {len(indices)}")
    print("  Elasticsearch time by request (count, seconds):")
    for kind, (count, seconds) in sorted(requests.items(), key=lambda kv: -kv[1][1])[:8]:
        print(f"    {kind:40s} {int(count):5d} {seconds:7.2f} s")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
