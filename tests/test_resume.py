"""The kill test: ``kill -9`` a real ``soc ingest`` at random points, resume, compare with a clean run.

Nothing lost (every event of the clean run is stored), nothing doubled (the stored count
equals the clean run's), on both stores. The kill points are chosen by progress (a random
fraction of the file, read from the checkpoint the running ingest commits, plus a random
delay) so that every kill lands mid-run, between or inside batch writes.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.pipeline import CHECKPOINT_KIND
from eventstore import Store, open_store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]


def generate(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            who = f"invalid user u{i % 700}" if i % 3 == 0 else f"u{i % 700}"
            fh.write(f"Nov 25 {(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d} srv{i % 5} sshd[{1000 + i % 9000}]: "
                     f"Failed password for {who} from 10.{i % 200}.{(i // 200) % 250}.{i % 250} port {1024 + i} ssh2\n")
            if i % 997 == 0:
                fh.write("corrupted line without a header\n")
    return path


def generate_evtx(path: Path, n: int) -> Path:
    from tests.evtxgen import Record, write_evtx

    start_at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    return write_evtx(path, [
        Record(4625 if i % 4 else 4624, start_at + timedelta(seconds=i),
               data={"TargetUserName": f"u{i % 300}", "LogonType": "3", "IpAddress": f"10.0.{i % 250}.{i % 7}"})
        for i in range(n)], per_chunk=200)


READER_ARGS = {"syslog": ["--tz", "UTC", "--year", "2026"], "evtx": []}
#: events per write and checkpoint of the ingest under test: many small batches, many places to land
BATCH = 500


def start(url: str, reader: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "soc_cli.main", "--store", url, "ingest", reader, str(log),
                             *READER_ARGS[reader], "--batch-size", str(BATCH), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def progress(url: str) -> int:
    """How far the running ingest has committed (byte offset or record), read through a second connection."""
    s = open_store(url, init=False)
    try:
        states = s.list_state(CHECKPOINT_KIND)
    except Exception:  # the store may not be initialised yet by the child
        return 0
    finally:
        s.close()
    cps = [doc["checkpoint"] for _, doc in states]
    return max((int(cp.get("offset", cp.get("record", 0))) for cp in cps), default=0)


def settle(store: Store, expected: int) -> None:
    """Elasticsearch shows another process's writes after its next refresh (about a second)."""
    deadline = time.monotonic() + 30
    while store.count() < expected and time.monotonic() < deadline:
        time.sleep(0.25)


def all_ids(store: Store) -> list[str]:
    return [d["event.id"] for d in store.scan("*", fields=["event.id"], batch_size=5000)]


@pytest.mark.parametrize(("reader", "lines"), [("syslog", 12_000), ("evtx", 4_000)])
def test_kill_9_at_random_points_loses_and_doubles_nothing(store: Store, tmp_path: Path, reader: str,
                                                            lines: int) -> None:
    if reader == "syslog":
        log = generate(tmp_path / "auth.log", lines)
        size, exit_code = log.stat().st_size, 1  # the corrupted lines are problems: exit 1, all else stored
    else:
        log = generate_evtx(tmp_path / "Security.evtx", lines)
        size, exit_code = lines, 0
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    clean = start(clean_url, reader, log)
    # how long a batch takes here, from the clean run's first checkpoint to its end: the delay
    # after a kill point stays within one batch, so the kill lands mid-run however fast ingest is
    # (a fixed 0.15 s outlasted the last batches of a 12,000-line log once writes got faster)
    first, deadline = None, time.monotonic() + 300
    while clean.poll() is None and time.monotonic() < deadline:
        if first is None and progress(clean_url) > 0:
            first = time.monotonic()
        time.sleep(0.01)
    batch_seconds = (time.monotonic() - first) / max(1, math.ceil(lines / BATCH) - 1) if first is not None else 0.0
    assert clean.wait(timeout=300) == exit_code
    reference = open_store(clean_url)
    try:
        expected = sorted(all_ids(reference))
    finally:
        reference.close()
    assert len(expected) == lines

    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    points = sorted(rng.uniform(0.05, 0.85) for _ in range(4))
    url, kills, seen = store.url, 0, []
    for point in points:
        proc = start(url, reader, log)
        deadline = time.monotonic() + 240
        while proc.poll() is None and progress(url) < point * size and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, batch_seconds))  # land anywhere: between a write and its checkpoint too
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        stored = store.count()
        seen.append((round(point, 3), stored))
        assert stored <= lines, seen
    assert kills >= 3, f"only {kills} kills landed mid-run: {seen}"
    final = start(url, reader, log)
    _, err = final.communicate(timeout=300)
    # 1 only if a corrupted line lies after the last committed batch (problems are reported once)
    assert final.returncode in (0, exit_code), err.decode()
    settle(store, len(expected))
    got = sorted(all_ids(store))
    assert len(got) == len(expected), f"stored {len(got)}, clean run {len(expected)}; kills at {seen}"
    assert got == expected, f"ids differ; kills at {seen}"
