"""Two captures that begin alike (the same header and first packets) are two captures.

A capture's identity is the hash of its first 4 KiB (decompressed): a second, distinct capture
sharing them was skipped as "done" (or resumed from the first one's packets). Each pcap
checkpoint now carries a mark of the bytes it read (``collectors.base.mark_matches``, the check
the line readers use), and ``collectors.pipeline.resolve`` gives a capture that does not match
an identity of its own. A copy of the same capture (renamed, gzipped) still resumes.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from collectors.base import read_all
from collectors.pcap.collector import PcapReader, capture_identity
from collectors.pipeline import IngestReport, ingest, ingest_file
from eventstore import Store
from tests.pcapkit import T0, dns_exchange, timed, write

HEAD_EXCHANGES = 40  # 80 DNS packets: well past the 4 KiB the identity hashes


def _capture(path: Path, tail_names: list[str]) -> Path:
    pkts = [p for n in range(HEAD_EXCHANGES) for p in dns_exchange(f"h{n}.example", ident=n, sport=30000 + n)]
    pkts += [p for i, name in enumerate(tail_names)
             for p in dns_exchange(name, ident=1000 + i, sport=31000 + i)]
    return write(path, timed(pkts, T0, 0.01))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = _capture(tmp_path / "a.pcap", [f"a{i}.example" for i in range(10)])
    b = _capture(tmp_path / "b.pcap", [f"b{i}.example" for i in range(30)])
    assert a.read_bytes()[:6000] == b.read_bytes()[:6000] and a.read_bytes() != b.read_bytes()
    assert capture_identity(a) == capture_identity(b)  # what used to conflate them
    return a, b


def _events(path: Path) -> int:
    return len(read_all(PcapReader(), path).events)


def test_captures_sharing_their_first_4_kib_are_both_stored(store: Store, pair: tuple[Path, Path]) -> None:
    a, b = pair
    first = ingest(store, PcapReader(), [a])
    second = ingest(store, PcapReader(), [b])
    assert first.written == _events(a) == 2 * (HEAD_EXCHANGES + 10)
    # before: b was "done" already (a's checkpoint) and nothing of it was stored
    assert second.written == _events(b) == 2 * (HEAD_EXCHANGES + 30) and second.duplicates == 0
    assert not second.files[0].resumed and second.files[0].identity != first.files[0].identity
    store.refresh()
    assert store.count() == first.written + second.written
    again = ingest(store, PcapReader(), [a, b])
    assert again.events == 0 and all(f.resumed for f in again.files)


def test_a_renamed_or_gzipped_copy_is_the_same_capture(store: Store, pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ingest(store, PcapReader(), [a, b])
    copy = tmp_path / "copy-of-b.pcap.gz"
    with b.open("rb") as src, gzip.open(copy, "wb") as dst:
        shutil.copyfileobj(src, dst)
    renamed = Path(shutil.copy(a, tmp_path / "renamed.pcap"))
    report = ingest(store, PcapReader(), [copy, renamed])
    assert report.events == 0 and all(f.resumed for f in report.files)
    ids = {Path(f.path).name: f.identity for f in ingest(store, PcapReader(), [a, b]).files}
    assert [f.identity for f in report.files] == [ids["b.pcap"], ids["a.pcap"]]


class _Stop(Exception):
    """Raised after the first committed batch: the run stops there, as after a crash."""


def test_interrupted_captures_sharing_their_head_resume_independently(store: Store, pair: tuple[Path, Path]) -> None:
    a, b = pair

    def stop(_batch: object) -> None:
        raise _Stop

    with pytest.raises(_Stop):  # a: one batch of 16 events stored and its checkpoint committed, then the run dies
        ingest_file(store, PcapReader(), a, IngestReport("pcap"), batch_size=16, on_batch=stop)
    store.refresh()
    assert store.count() == 16
    # b begins like a but is another capture: it starts from its first packet, not from a's checkpoint
    second = ingest(store, PcapReader(), [b], batch_size=16)
    assert not second.files[0].resumed and second.written == _events(b) and second.duplicates == 0
    # a goes on from its own checkpoint: everything of it stored once
    resumed = ingest(store, PcapReader(), [a], batch_size=16)
    assert resumed.files[0].resumed and resumed.written == _events(a) - 16
    store.refresh()
    assert store.count() == _events(a) + _events(b)


def test_captures_of_the_same_size_differing_only_at_their_end(store: Store, tmp_path: Path) -> None:
    """Same head, same size: the done checkpoint's mark holds the first capture's last bytes."""
    a = _capture(tmp_path / "a.pcap", [f"a{i}.example" for i in range(10)])
    b = _capture(tmp_path / "b.pcap", [f"a{i}.example" for i in range(9)] + ["b9.example"])
    assert a.stat().st_size == b.stat().st_size and a.read_bytes() != b.read_bytes()
    first, second = ingest(store, PcapReader(), [a]), ingest(store, PcapReader(), [b])
    assert first.written == second.written == _events(b)
    assert not second.files[0].resumed
