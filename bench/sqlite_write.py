"""SQLite write rate: ``SQLiteStore.write_events`` against a plain ``executemany`` of the same rows.

The baseline gets the rows already built (id, epoch ms, hot columns, JSON text) and only runs
``executemany`` into the same table in one transaction per batch, so everything ztsoc does on
top (validation, timestamp parsing, serialisation) counts against it. The official
``bench/ingest.py`` covers both backends; this one is the quick check of the SQLite path.

    .venv/bin/python bench/sqlite_write.py            # 200,000 events
    .venv/bin/python bench/sqlite_write.py --full     # 1,000,000 events
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventstore.sqlite_store import EVENTS, SQLiteStore, insert_sql, prepare_rows
from eventstore.timeutil import to_iso


def events(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = start + timedelta(milliseconds=i * 37)
        out.append({
            "@timestamp": to_iso(ts),
            "event.id": f"flow-{seed}-{i:09d}",
            "event.kind": "event",
            "event.category": ["network"],
            "event.type": ["connection"],
            "event.dataset": "network.flow",
            "source.ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "source.port": rng.randrange(1024, 65535),
            "destination.ip": f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}",
            "destination.port": rng.choice((22, 53, 80, 443, 3389)),
            "network.transport": "tcp",
            "network.community_id": f"1:{rng.getrandbits(120):030x}",
            "source.bytes": rng.randrange(60, 100000),
            "destination.bytes": rng.randrange(60, 100000),
            "host.name": f"sensor-{rng.randrange(4)}",
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="1,000,000 events instead of 200,000")
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    n = 1_000_000 if args.full else 200_000
    docs = events(n)
    batches = [docs[i : i + args.batch] for i in range(0, n, args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        # baseline: the same table, rows prepared in advance, executemany per batch
        base = SQLiteStore(str(Path(tmp) / "baseline.db"))
        base.init()
        rows = [list(prepare_rows(b, EVENTS, [])) for b in batches]
        conn: sqlite3.Connection = base._conn
        sql = insert_sql(EVENTS)
        t0 = time.perf_counter()
        for chunk in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, chunk)
            conn.execute("COMMIT")
        baseline = n / (time.perf_counter() - t0)
        base.close()

        store = SQLiteStore(str(Path(tmp) / "ztsoc.db"))
        store.init()
        t0 = time.perf_counter()
        written = sum(store.write_events(b).written for b in batches)
        ours = n / (time.perf_counter() - t0)
        store.close()
    assert written == n, written
    print(f"events: {n:,}  batch: {args.batch}")
    print(f"baseline executemany (rows prepared in advance): {baseline:,.0f} events/s")
    print(f"ztsoc SQLiteStore.write_events:                  {ours:,.0f} events/s  ({ours / baseline:.2f}x)")


if __name__ == "__main__":
    main()
