"""The capture reader: pcap (µs/ns, both byte orders), pcapng, gzip, damaged files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from collectors.pcap.reader import CaptureInfo, Problem, iter_records, open_capture
from tests.pcapkit import T0, dns_exchange, tcp_session, timed, write


def records(path: Path, start: int = 0) -> tuple[list[tuple[int, int, int, bytes, int]], list[Problem], CaptureInfo]:
    problems: list[Problem] = []
    info = CaptureInfo()
    with open_capture(path) as fh:
        out = list(iter_records(fh, problems, info, start))
    return out, problems, info


@pytest.mark.parametrize("fmt,kw", [("pcap", {}), ("pcap", {"nano": True}), ("pcapng", {})])
def test_formats_agree_on_every_record(tmp_path: Path, fmt: str, kw: dict) -> None:
    pkts = timed(tcp_session() + dns_exchange(), gap=0.25)
    recs, problems, info = records(write(tmp_path / f"c.{fmt}", pkts, fmt, **kw))
    assert problems == []
    assert info.format == fmt and info.interfaces[0].linktype == 1
    assert [r[0] for r in recs] == list(range(len(pkts)))
    assert [r[3] for r in recs] == [bytes(p) for p in pkts]
    assert [r[4] for r in recs] == [len(p) for p in pkts]
    assert recs[1][1] == int(T0 * 1e9) + 250_000_000  # exact to the microsecond at least
    assert recs[-1][1] - recs[0][1] == (len(pkts) - 1) * 250_000_000


def test_big_endian_pcap(tmp_path: Path) -> None:
    frame = bytes(tcp_session()[0])
    body = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body += struct.pack(">IIII", 1_700_000_000, 5, len(frame), len(frame)) + frame
    p = tmp_path / "be.pcap"
    p.write_bytes(body)
    recs, problems, _ = records(p)
    assert problems == [] and recs[0][1] == 1_700_000_000 * 10**9 + 5000 and recs[0][3] == frame


def test_gzip_is_read_as_a_stream(tmp_path: Path) -> None:
    plain = write(tmp_path / "c.pcap", timed(tcp_session()))
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert records(gz)[0] == records(plain)[0]


def test_truncated_last_record_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    p = write(tmp_path / "c.pcap", timed(tcp_session()))
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    recs, problems, _ = records(p)
    assert len(recs) == 5  # 6 packets, the last one cut
    assert [(x.index, x.reason) for x in problems] == [(5, "truncated packet")]


def test_corrupt_record_length_stops_the_file_with_a_reason(tmp_path: Path) -> None:
    p = write(tmp_path / "c.pcap", timed(tcp_session()))
    data = bytearray(p.read_bytes())
    first_len = struct.unpack_from("<I", data, 24 + 8)[0]
    second = 24 + 16 + first_len
    struct.pack_into("<I", data, second + 8, 50_000_000)
    p.write_bytes(bytes(data))
    recs, problems, _ = records(p)
    assert len(recs) == 1 and problems[0].reason == "corrupt record header"


def test_garbage_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "notes.pcap"
    p.write_bytes(b"this is not a capture at all")
    with pytest.raises(ValueError, match="not a pcap or pcapng"):
        records(p)


def test_pcapng_damaged_block_is_reported(tmp_path: Path) -> None:
    p = write(tmp_path / "c.pcapng", timed(tcp_session()), "pcapng")
    data = p.read_bytes()
    p.write_bytes(data[:-6])
    recs, problems, _ = records(p)
    assert len(recs) == 5 and problems[0].reason == "truncated block"


def test_start_skips_records_without_renumbering(tmp_path: Path) -> None:
    p = write(tmp_path / "c.pcapng", timed(tcp_session()), "pcapng")
    recs, _, _ = records(p, start=3)
    assert [r[0] for r in recs] == [3, 4, 5]


def test_memory_stays_flat_on_a_large_file(tmp_path: Path) -> None:
    """The reader holds one chunk, never the file: a 40 MB capture keeps one frame alive at a time."""
    frame = bytes(tcp_session(request=b"x" * 1400)[3])
    p = tmp_path / "big.pcap"
    with open(p, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        rec = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame
        fh.write(rec * 28_000)
    import tracemalloc

    tracemalloc.start()
    count = 0
    with open_capture(p) as fh:
        for _ in iter_records(fh, []):
            count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 28_000
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {p.stat().st_size} byte file"
