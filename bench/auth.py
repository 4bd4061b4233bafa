"""Auth-log collectors: sshd lines/s and EVTX records/s, end to end into the embedded store.

Each figure is printed beside its baselines, measured in the same run on the same input:

- sshd syslog: reading the lines alone (a Python ``for line in file`` loop: the floor of
  any line collector) and our parser alone (``SyslogReader``, no store), then ztsoc end to
  end (``collectors.pipeline.ingest`` into a fresh SQLite store: parse, write, checkpoint).
- EVTX: the ``evtx`` Rust parser alone (``records_json`` + ``json.loads``: what any Python
  EVTX collector pays), our reader alone (ECS mapping added), then end to end into SQLite;
  on a generated Security log (``tests/evtxgen.py``: 4624/4625/4672 as a DC writes them),
  and on every EVTX of ``../shared/data`` (evtx-attack-samples, sigma regression data,
  many small files) when present.

Beside each end-to-end figure, "store alone" writes the same events, parsed beforehand,
with ``write_events``: the ceiling any collector meets, since per CPU-second
1/end-to-end = 1/parser + 1/store. Parse-only figures run with the cyclic GC as the
pipeline has it (paused for readers whose events hold no cycles).

Every figure uses ``soc ingest``'s batch size for log readers (``LOG_BATCH``, 10,000).

Rates are given per wall-clock second and per CPU-second of this process (the store's
own threads count; Elasticsearch's work does not), since the test machine is shared.

Usage: ``.venv/bin/python bench/auth.py [--lines N] [--evtx-records N] [--full] [--es URL]``
(default 100,000 sshd lines and 20,000 EVTX records; ``--full``: 1,000,000 and 200,000).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.base import Reader  # noqa: E402
from collectors.evtx import EvtxReader  # noqa: E402
from collectors.pipeline import ingest  # noqa: E402
from collectors.registry import LOG_BATCH  # noqa: E402
from collectors.syslog import SyslogReader  # noqa: E402
from eventstore import open_store  # noqa: E402
from eventstore.gc_pause import gc_paused  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"

TEMPLATES = (
    "Failed password for {user} from {ip} port {port} ssh2",
    "Failed password for invalid user {user} from {ip} port {port} ssh2",
    "Invalid user {user} from {ip} port {port}",
    "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:Zm9vYmFy",
    "Received disconnect from {ip} port {port}:11: Bye Bye [preauth]",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
    "Connection closed by authenticating user {user} {ip} port {port} [preauth]",
    "pam_unix(sshd:session): session opened for user {user} by (uid=0)",
)


def generate_sshd(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            msg = TEMPLATES[i % len(TEMPLATES)].format(user=f"user{i % 997}", ip=f"10.{i % 251}.{(i >> 8) % 256}.{i % 253}",
                                                       port=1024 + i % 60000)
            fh.write(f"Nov {1 + (i // 86400) % 28:2d} {(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d} "
                     f"bastion{i % 3} sshd[{1000 + i % 30000}]: {msg}\n")


def rate(n: int, seconds: tuple[float, float]) -> str:
    wall, cpu = seconds
    return f"{n / wall:>10,.0f}/s wall {n / max(cpu, 1e-9):>10,.0f}/s per CPU-second  ({n:,} in {wall:.2f}s)"


def count_events(reader: Reader, path: Path, batch_size: int) -> int:
    """Read batch by batch, keeping none, with the cyclic GC as the pipeline has it (``gc_paused``)."""
    with gc_paused() if getattr(reader, "no_cycles", False) else contextlib.nullcontext():
        return sum(len(batch.events) for batch in reader.batches(path, None, batch_size))


def store_only(reader: Reader, paths: list[Path], batch_size: int, db: Path) -> tuple[int, tuple[float, float]]:
    """The store's own share: the same batches, read beforehand, written with ``write_events``.

    Whatever the collector does, end to end cannot beat this: it is the ceiling the parser's
    cost is added to (1/end-to-end = 1/parser + 1/store, per CPU-second).
    """
    batches = [b.events for p in paths for b in reader.batches(Path(p), None, batch_size)]
    store = open_store(f"sqlite:///{db}")
    try:
        def write() -> int:
            return sum(store.write_events(events).written for events in batches)
        return timed(write)
    finally:
        store.close()


def ratio(a: tuple[int, tuple[float, float]], b: tuple[int, tuple[float, float]]) -> str:
    """a's rate over b's, per CPU-second."""
    return f"{(a[0] / max(a[1][1], 1e-9)) / max(b[0] / max(b[1][1], 1e-9), 1e-9):.3g}x"


def timed(fn):  # type: ignore[no-untyped-def]
    """Wall time and this process's CPU time: the machine is shared, CPU time shows our own cost."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t, time.process_time() - c)


def bench_sshd(lines: int, tmp: Path, es_url: str | None) -> None:
    log = tmp / "auth.log"
    generate_sshd(log, lines)
    print(f"\nsshd syslog: {lines:,} generated lines ({log.stat().st_size / 1e6:.1f} MB)")

    def read_lines() -> int:
        n = 0
        with log.open("rb") as fh:
            for _ in fh:
                n += 1
        return n

    base = timed(read_lines)
    print(f"  baseline: read lines only (python loop)     {rate(*base)}")
    parse = timed(lambda: count_events(SyslogReader(tz="UTC"), log, LOG_BATCH))
    print(f"  ztsoc parse only (SyslogReader, no store)   {rate(*parse)}  = {ratio(parse, base)} the line loop")
    alone = store_only(SyslogReader(tz="UTC"), [log], LOG_BATCH, tmp / "sshd-store.db")
    print(f"  store alone (write_events, parsed before)   {rate(*alone)}  (the ceiling)")
    store = open_store(f"sqlite:///{tmp / 'sshd.db'}")
    try:
        report, t = timed(lambda: ingest(store, SyslogReader(tz="UTC"), [log], batch_size=LOG_BATCH))
        print(f"  ztsoc end to end into SQLite                {rate(report.written, t)}"
              f"  = {ratio((report.written, t), alone)} the store alone")
        assert report.written == lines and store.count() == lines
    finally:
        store.close()
    if es_url:
        es = open_store(es_url)
        try:
            report, t = timed(lambda: ingest(es, SyslogReader(tz="UTC"), [log], batch_size=LOG_BATCH))
            print(f"  ztsoc end to end into Elasticsearch         {rate(report.written, t)}")
        finally:
            drop = getattr(es, "drop", None)
            if drop:
                drop()
            es.close()


def generate_evtx(path: Path, n: int) -> Path:
    from datetime import UTC, datetime, timedelta

    from tests.evtxgen import Record, write_evtx

    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    records = []
    for i in range(n):
        code = (4624, 4625, 4672, 4634)[i % 4]
        records.append(Record(code, start + timedelta(milliseconds=250 * i), data={
            "SubjectUserSid": "S-1-5-18", "SubjectUserName": "DC01$", "SubjectDomainName": "CORP",
            "TargetUserName": f"user{i % 997}", "TargetDomainName": "CORP", "TargetLogonId": hex(0x3E7 + i),
            "LogonType": "3", "IpAddress": f"10.{i % 251}.{(i >> 8) % 256}.7", "IpPort": str(1024 + i % 60000),
            "WorkstationName": f"WS{i % 50}", "Status": "0xc000006d", "SubStatus": "0xc000006a",
            "ProcessName": "C:\\Windows\\System32\\lsass.exe", "ProcessId": "0x2a8"}))
    return write_evtx(path, records, per_chunk=1000)


def bench_evtx_files(label: str, files: list[str], tmp: Path) -> None:
    size = sum(Path(f).stat().st_size for f in files)
    print(f"\nEVTX {label}: {len(files)} file(s) ({size / 1e6:.1f} MB)")
    from evtx import PyEvtxParser

    def parser_only() -> int:
        n = 0
        for f in files:
            for record in PyEvtxParser(f, 1).records_json():
                json.loads(record["data"])  # type: ignore[index]
                n += 1
        return n

    base = timed(parser_only)
    print(f"  baseline: evtx (Rust) parser + json.loads   {rate(*base)}")
    reader = timed(lambda: sum(count_events(EvtxReader(), Path(f), LOG_BATCH) for f in files))
    print(f"  ztsoc reader only (ECS mapping, no store)   {rate(*reader)}  = {ratio(reader, base)} the parser")
    db = label.split()[0]
    alone = store_only(EvtxReader(), [Path(f) for f in files], LOG_BATCH, tmp / f"{db}-store.db")
    print(f"  store alone (write_events, parsed before)   {rate(*alone)}  (the ceiling)")
    store = open_store(f"sqlite:///{tmp / (db + '.db')}")
    try:
        report, t = timed(lambda: ingest(store, EvtxReader(), files, batch_size=LOG_BATCH))
        # identical files (same content) are one source: their records are stored once
        print(f"  ztsoc end to end into SQLite                {rate(report.events, t)}"
              f"  = {ratio((report.events, t), base)} the parser, {ratio((report.events, t), alone)} the store alone;"
              f" stored {store.count():,}")
    finally:
        store.close()


def bench_evtx(tmp: Path, records: int) -> None:
    generated = generate_evtx(tmp / "Security.evtx", records)
    bench_evtx_files(f"generated Security log, {records:,} records", [str(generated)], tmp)
    files = sorted(glob.glob(str(SHARED / "evtx-attack-samples" / "**" / "*.evtx"), recursive=True)
                   + glob.glob(str(SHARED / "sigma" / "regression_data" / "**" / "*.evtx"), recursive=True))
    if not files:
        print("\nEVTX reference files: ../shared/data has none here: skipped")
        return
    bench_evtx_files("reference samples (../shared/data)", files, tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--evtx-records", type=int, default=20_000)
    ap.add_argument("--full", action="store_true", help="1,000,000 sshd lines, 200,000 EVTX records")
    ap.add_argument("--es", help="also measure into Elasticsearch at this URL (a throw-away prefix is used)")
    args = ap.parse_args()
    lines = 1_000_000 if args.full else args.lines
    records = 200_000 if args.full else args.evtx_records
    es_url = f"{args.es.rstrip('/')}/?prefix=ztsoc-bench-auth-{int(time.time())}" if args.es else None
    with tempfile.TemporaryDirectory(prefix="ztsoc-bench-auth-") as tmp:
        bench_sshd(lines, Path(tmp), es_url)
        bench_evtx(Path(tmp), records)


if __name__ == "__main__":
    main()
