"""SQLite write rate: ``SQLiteStore.write_events`` against a plain ``executemany`` of the same rows.

The baseline gets the rows exactly as stored, built ahead by ``sqlite_rows.prepare_rows``
(untimed), and only runs ``executemany`` of ``insert_sql`` into an identical file, one
transaction per slice, so everything ztsoc does on top (reading the documents, validation,
time parsing, JSON encoding, error handling) counts against ztsoc. Slices alternate which side goes first. Both wall time and this process's CPU
time are printed: on a shared machine the wall figure mostly measures the neighbours.
``bench/ingest.py`` is the official two-backend benchmark; this is the quick SQLite check.

    .venv/bin/python bench/sqlite_write.py            # 300,000 events
    .venv/bin/python bench/sqlite_write.py --full     # 1,000,000 events
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventstore.sqlite_rows import prepare_rows
from eventstore.sqlite_store import EVENTS, PRAGMAS, SQLiteStore, insert_sql
from eventstore.timeutil import to_iso


def events(n: int, start: int = 0, seed: int = 7) -> list[dict[str, Any]]:
    """Flow and sshd events shaped like the collectors' (about 700 bytes of JSON each)."""
    rng = random.Random(seed * 1_000_003 + start)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        src = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        doc: dict[str, Any] = {
            "@timestamp": to_iso(t0 + timedelta(milliseconds=i * 37)),
            "event.id": f"{rng.getrandbits(80):020x}", "event.kind": "event",
            "event.category": ["network"], "event.type": ["connection", "end"], "event.dataset": "network.flow",
            "source.ip": src, "source.port": rng.randrange(1024, 65535),
            "destination.ip": f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}",
            "destination.port": rng.choice((22, 53, 80, 443, 3389)), "network.transport": "tcp",
            "network.community_id": f"1:{rng.getrandbits(120):030x}",
            "source.bytes": rng.randrange(60, 100000), "destination.bytes": rng.randrange(60, 100000),
            "observer.name": "sensor-01", "related.ip": [src],
        }
        if i % 10 == 0:
            user = rng.choice(("root", "alice", "bob", "svc-backup"))
            doc.update({"event.dataset": "system.auth", "event.category": ["authentication"], "user.name": user,
                        "host.name": f"srv-{rng.randrange(16):02d}", "event.outcome": "failure",
                        "message": f"Failed password for {user} from {src} port {doc['source.port']} ssh2"})
        out.append(doc)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--full", action="store_true", help="1,000,000 events instead of 300,000")
    ap.add_argument("--slice", type=int, default=50_000, help="events per write_events call / transaction")
    args = ap.parse_args()
    total = 1_000_000 if args.full else 300_000
    sql = insert_sql(EVENTS)
    wall = {"ztsoc": 0.0, "baseline": 0.0}
    cpu = {"ztsoc": 0.0, "baseline": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "ztsoc.db"))
        store.init()
        maker = SQLiteStore(str(Path(tmp) / "baseline.db"))  # the same file layout and pragmas
        maker.init()
        maker.close()
        plain = sqlite3.connect(Path(tmp) / "baseline.db", isolation_level=None)
        for pragma in PRAGMAS:  # the same settings as ztsoc's connection
            plain.execute(f"PRAGMA {pragma}")

        for n, start in enumerate(range(0, total, args.slice)):
            docs = events(min(args.slice, total - start), start)
            rows = prepare_rows(docs, EVENTS, [])

            def ours(d: list[dict[str, Any]] = docs) -> None:
                result = store.write_events(d)
                assert result.written == len(d) and not result.errors, result

            def baseline(r: list[tuple[Any, ...]] = rows) -> None:
                plain.execute("BEGIN IMMEDIATE")
                plain.executemany(sql, r)
                plain.execute("COMMIT")

            sides: list[tuple[str, Callable[[], None]]] = [("ztsoc", ours), ("baseline", baseline)]
            for name, write in sides if n % 2 == 0 else reversed(sides):
                c0, w0 = time.process_time(), time.perf_counter()
                write()
                cpu[name] += time.process_time() - c0
                wall[name] += time.perf_counter() - w0
        assert store.count() == total
        store.close()
        plain.close()
    print(f"{total:,} events, slices of {args.slice:,}")
    for name, label in (("ztsoc", "ztsoc SQLiteStore.write_events"), ("baseline", "baseline executemany (rows built ahead)")):
        print(f"  {label:42s} {total / wall[name]:>9,.0f} events/s wall   {total / cpu[name]:>9,.0f} events/s CPU")
    print(f"  ratio ztsoc/baseline: {wall['baseline'] / wall['ztsoc']:.2f} wall, {cpu['baseline'] / cpu['ztsoc']:.2f} CPU"
          "   (targets: >= 0.9 and >= 50,000 events/s)")


if __name__ == "__main__":
    main()
