"""``soc ingest pcap`` end to end: batches, resume after a crash, both stores, files and folders."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from scapy.packet import Raw

from collectors.base import read_all, read_resumed
from collectors.pcap.collector import PcapReader
from collectors.pipeline import ingest
from collectors.registry import get_reader
from eventstore import Store, open_store
from tests.conftest import es_store_url
from tests.pcapkit import HTTP_REQUEST, HTTP_RESPONSE, T0, dns_exchange, tcp_session, timed, write


def mixed_capture(tmp_path: Path, sessions: int = 40, name: str = "mixed.pcap", fmt: str = "pcap") -> Path:
    """Interleaved HTTP sessions and DNS exchanges: 40 sessions -> 40 flows + 20 HTTP + 20 DNS events."""
    rng = random.Random(1)
    streams = []
    for n in range(sessions):
        if n % 2:
            streams.append(tcp_session(sport=20000 + n, request=HTTP_REQUEST, response=HTTP_RESPONSE))
        else:
            streams.append(dns_exchange(f"h{n}.example", ident=n, sport=30000 + n))
    pkts = []
    while streams:
        s = rng.choice(streams)
        pkts.append(s.pop(0))
        if not s:
            streams.remove(s)
    return write(tmp_path / name, timed(pkts, T0, 0.05), fmt)


EXPECTED = {"network.flow": 40, "network.http": 20, "network.dns": 20}


def test_read_all_counts_and_stable_ids(tmp_path: Path) -> None:
    path = mixed_capture(tmp_path)
    first = read_all(PcapReader(), path, batch_size=7)
    assert Counter(e["event.dataset"] for e in first.events) == EXPECTED
    assert first.problems == [] and first.checkpoint and first.checkpoint["done"]
    again = read_all(PcapReader(), path, batch_size=1000)
    assert sorted(e["event.id"] for e in again.events) == sorted(e["event.id"] for e in first.events)
    assert len({e["event.id"] for e in first.events}) == 80


def test_resuming_after_every_batch_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    path = mixed_capture(tmp_path)
    whole = read_all(PcapReader(), path, batch_size=1000)
    for size in (1, 3, 10):
        resumed = read_resumed(PcapReader(), path, batch_size=size)
        got = [e["event.id"] for e in resumed.events]
        assert len(got) == len(set(got)), f"batch size {size}: an event was produced twice"
        assert sorted(got) == sorted(e["event.id"] for e in whole.events)
        assert resumed.events == sorted(resumed.events, key=lambda e: got.index(e["event.id"]))


def test_gzip_and_pcapng_copies_give_the_same_events(tmp_path: Path) -> None:
    plain = mixed_capture(tmp_path)
    gz = tmp_path / "mixed.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = read_all(PcapReader(), plain).events
    b = read_all(PcapReader(), gz).events
    assert a == [dict(e, **{"ztsoc.source.name": str(plain)}) for e in b]
    ng = read_all(PcapReader(), mixed_capture(tmp_path, name="mixed.pcapng", fmt="pcapng")).events
    assert Counter(e["event.dataset"] for e in ng) == EXPECTED


def test_truncated_capture_keeps_what_it_read(tmp_path: Path) -> None:
    path = mixed_capture(tmp_path)
    path.write_bytes(path.read_bytes()[:-30])
    res = read_all(PcapReader(), path)
    assert [p.reason for p in res.problems] == ["truncated packet"]
    assert len([e for e in res.events if e["event.dataset"] == "network.flow"]) == 40


def test_ingest_into_the_store_twice_stores_once(store: Store, tmp_path: Path) -> None:
    path = mixed_capture(tmp_path)
    gz = tmp_path / "sub" / "copy.pcap.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(mixed_capture(tmp_path, 10, "small.pcap").read_bytes()))
    (tmp_path / "sub" / "README.txt").write_text("not a capture")
    report = ingest(store, get_reader("pcap"), [path], batch_size=16)
    assert (report.events, report.written, report.problem_count) == (80, 80, 0)
    assert store.count("event.dataset:network.flow") == 40
    assert store.count("event.dataset:network.dns AND dns.question.name:h0.example") == 1
    assert store.count("network.protocol:http AND http.response.status_code:404") == 20
    again = ingest(store, get_reader("pcap"), [path])
    assert again.written == 0
    folder = ingest(store, get_reader("pcap"), [tmp_path / "sub"])  # the .txt is not a capture: skipped
    assert [Path(f.path).name for f in folder.files] == ["copy.pcap.gz"] and folder.written == 20
    rows = store.aggregate(["ztsoc.flow.state"], query="event.dataset:network.flow")
    # 20 HTTP sessions closed by FIN both ways, 20 answered DNS flows, and the folder's 10 sessions
    assert {r["ztsoc.flow.state"]: r["count"] for r in rows} == {"SF": 50}


def test_garbage_file_is_one_problem_and_the_other_files_go_on(sqlite_store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 100)
    good = mixed_capture(tmp_path)
    report = ingest(sqlite_store, get_reader("pcap"), [bad, good])
    assert report.written == 80 and dict(report.problems) == {"unreadable file": 1}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("es", marks=pytest.mark.es)])
def test_kill_minus_nine_then_resume_matches_a_clean_run(tmp_path: Path, backend: str) -> None:
    """A real crash: a child ingesting the capture SIGKILLs itself between writing a batch and
    committing its checkpoint (the worst moment), three times at different batches; then a
    last run resumes. Same ids as a clean run, none twice."""
    path = mixed_capture(tmp_path, sessions=300)
    clean = open_store(f"sqlite:///{tmp_path / 'clean.db'}")
    ingest(clean, PcapReader(), [path], batch_size=10)
    want = {d["event.id"] for d in clean.scan("*", fields=["event.id"])}
    clean.close()
    url = f"sqlite:///{tmp_path / 'crash.db'}" if backend == "sqlite" else es_store_url()
    code = (
        "import os, signal, sys\n"
        "from collectors.pipeline import ingest\n"
        "from collectors.pcap.collector import PcapReader\n"
        "from eventstore import open_store\n"
        "store = open_store(sys.argv[1]); calls = [0]; put = store.put_states\n"
        "def put_states(*a, **k):\n"  # the pipeline's checkpoint write, after the batch's events
        "    calls[0] += 1\n"
        "    if calls[0] == int(sys.argv[3]): os.kill(os.getpid(), signal.SIGKILL)\n"
        "    put(*a, **k)\n"
        "store.put_states = put_states\n"
        "ingest(store, PcapReader(), [sys.argv[2]], batch_size=10)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for kill_at in (3, 5, 9):
        child = subprocess.run([sys.executable, "-c", code, url, str(path), str(kill_at)], env=env, timeout=120)
        assert child.returncode == -signal.SIGKILL
    if backend == "es":
        # the killed writers never refreshed (the store refreshes lazily, before its own reads): make what
        # they stored visible, as any later reader eventually sees it, before counting
        node, prefix = url.split("/?prefix=")
        urllib.request.urlopen(urllib.request.Request(f"{node}/{prefix}-*/_refresh", method="POST"), timeout=60)
    final = open_store(url)
    try:
        # Elasticsearch shows the killed writers' documents after its next refresh (about a second)
        deadline = time.monotonic() + 30
        while (stored_before := final.count()) == 0 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert 0 < stored_before < len(want)
        report = ingest(final, PcapReader(), [path], batch_size=10)
        got = [d["event.id"] for d in final.scan("*", fields=["event.id"])]
    finally:
        drop = getattr(final, "drop", None)
        if drop is not None:  # the Elasticsearch test index
            drop()
        final.close()
    # the last run resumed: it read less than the whole capture
    assert report.files[0].resumed and report.events < len(want)
    if backend == "sqlite":  # (Elasticsearch counts only what it has refreshed: a killed writer's last bulk may not be)
        assert report.written == len(want) - stored_before
    assert len(got) == len(set(got)) and set(got) == want


def _soc(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "soc_cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_soc_ingest_pcap_command(tmp_path: Path) -> None:
    """The command line: a folder with a capture and a gzip copy, a JSON report, then nothing new."""
    folder = tmp_path / "caps"
    folder.mkdir()
    plain = mixed_capture(folder, sessions=10, name="a.pcap")
    (folder / "b.pcapng.gz").write_bytes(gzip.compress(mixed_capture(tmp_path, 6, "b.pcapng", "pcapng").read_bytes()))
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    first = _soc("--store", store, "ingest", "pcap", str(folder), "--json", "--idle-timeout", "60")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["written"] == 20 + 12 and [Path(f["path"]).name for f in report["files"]] == ["a.pcap", "b.pcapng.gz"]
    again = _soc("--store", store, "ingest", "pcap", str(plain), "--json")
    assert json.loads(again.stdout)["written"] == 0



def test_a_capture_of_unreadable_packets_is_handed_over_in_batches(tmp_path: Path) -> None:
    """802.11 frames (link type 105, not decoded): one problem per packet, in batches, memory flat."""
    path = tmp_path / "wifi.pcap"
    write(path, timed([Raw(b"\x80\x00" + bytes(40)) for _ in range(30)]), linktype=105)
    res = read_all(PcapReader(), path, batch_size=10)
    assert res.events == [] and len(res.problems) == 30 and res.batches >= 3
    assert {p.reason for p in res.problems} == {"unsupported link type"}
    assert res.problems[0].position == "packet 0" and res.problems[0].raw == "link type 105"
    assert len(read_resumed(PcapReader(), path, batch_size=10).problems) == 30
