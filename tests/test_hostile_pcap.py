"""Hostile captures never blind the sensor: errors stay with their packet, files go on, memory is bounded.

Real packets (scapy) written to real files; each test is an attack or a damage seen in the
wild, and what must still come out of it.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from collectors.base import read_all, read_resumed
from collectors.pcap import apps
from collectors.pcap.collector import PcapReader
from collectors.pcap.flows import FlowMeter, MeterConfig
from collectors.pcap.linktypes import ethernet
from collectors.pcap.reader import Problem
from collectors.pcap.tls import TlsError, parse_client_hello
from collectors.pipeline import ingest
from eventstore import Store
from tests.pcapkit import HTTP_REQUEST, HTTP_RESPONSE, MAC, T0, dns_exchange, eth, tcp_session, timed, write

#: a TLS handshake header cut short: once an IndexError that stopped the whole file and live capture
SIX_BYTES = bytes.fromhex("160301000001")


def _datasets(events: list[dict]) -> Counter[str]:
    return Counter(e["event.dataset"] for e in events)


def test_six_byte_tls_payload_is_a_problem_of_its_packet() -> None:
    with pytest.raises(TlsError, match="truncated"):
        parse_client_hello(SIX_BYTES)


def test_six_byte_tls_payload_costs_nothing_else(tmp_path: Path) -> None:
    pkts = (tcp_session(sport=40001, dport=443, request=SIX_BYTES)
            + tcp_session(sport=40002, request=HTTP_REQUEST, response=HTTP_RESPONSE)
            + dns_exchange())
    path = write(tmp_path / "six.pcap", timed(pkts))
    out = read_all(PcapReader(), path)
    assert _datasets(out.events) == {"network.flow": 3, "network.http": 1, "network.dns": 1}
    assert [p.reason for p in out.problems] == ["malformed TLS: truncated ClientHello"]
    assert out.problems[0].position == "packet 3"


def test_any_decoder_exception_is_a_counted_problem_and_the_flow_goes_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: the HTTP probe raises on one request; its flow is still reported, others decoded.

    Injected through the PROBES registry, a module global read at run time by the interpreted
    and the compiled meter alike (collectors/pcap/native.py): a patched function would not be
    seen by compiled callers, which call each other directly.
    """
    def failing(flow: object, data: bytes, fwd: bool) -> bool:
        if b"/boom" in data:
            raise KeyError("injected")
        return apps._probe_http(flow, data, fwd)  # type: ignore[arg-type]

    probes = tuple(dataclasses.replace(p, matches=failing) if p.name == "http" else p for p in apps.PROBES)
    monkeypatch.setattr(apps, "PROBES", probes)
    pkts = (tcp_session(sport=40001, request=b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n", response=HTTP_RESPONSE)
            + tcp_session(sport=40002, request=HTTP_REQUEST, response=HTTP_RESPONSE))
    out = read_all(PcapReader(), write(tmp_path / "boom.pcap", timed(pkts)))
    assert _datasets(out.events) == {"network.flow": 2, "network.http": 1}
    boom = [p for p in out.problems if p.reason == "decoder error: KeyError"]
    assert len(boom) == 1 and boom[0].position == "packet 3" and "failing" in (boom[0].raw or "")
    flows = {e["source.port"]: e for e in out.events if e["event.dataset"] == "network.flow"}
    assert flows[40001]["network.packets"] == 8  # counted to its end despite the decoder's failure


def test_nsh_nested_thousands_deep_is_bounded() -> None:
    nsh = bytes([0x00, 0x02, 0x00, 0x03]) + b"\0" * 4  # length 2 words, next protocol Ethernet
    two = b"\x02" * 12 + b"\x89\x4f" + nsh + b"\x02" * 12 + b"\x89\x4f" + nsh + b"\x02" * 12 + b"\x08\x00"
    assert ethernet(two + b"\x45" + b"\0" * 19) == (4, 58, -1)  # two levels deep: followed
    deep = b"".join(b"\x02" * 12 + b"\x89\x4f" + nsh for _ in range(3000)) + b"\x02" * 12 + b"\x08\x00"
    assert ethernet(deep)[0] == 0  # 3,000 deep (once a RecursionError): not followed past the bound
    zero = b"\x02" * 12 + b"\x89\x4f" + bytes([0, 0, 0, 3]) + b"\0" * 4
    assert ethernet(zero * 2000)[0] == 0  # NSH length 0: shorter than NSH itself, not followed


def _pcapng(blocks: list[bytes]) -> bytes:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    return shb + b"".join(blocks)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _idb(options: bytes = b"") -> bytes:
    return _block(1, struct.pack("<HHI", 1, 0, 65535) + options)


def _epb(frame: bytes, ts_us: int) -> bytes:
    return _block(6, struct.pack("<IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame)) + frame)


def _udp_frame(sport: int) -> bytes:
    return bytes(Ether(**MAC) / IP(src="169.254.1.1", dst="169.254.1.2") / UDP(sport=sport, dport=9999) / b"x")


@pytest.mark.parametrize("tail", [
    struct.pack("<II", 1, 16) + b"\0" * 4 + struct.pack("<I", 16),  # IDB under 20 bytes
    struct.pack("<II", 6, 24) + b"\0" * 12 + struct.pack("<I", 24),  # EPB under 28 bytes
    struct.pack("<II", 2, 24) + b"\0" * 12 + struct.pack("<I", 24),  # obsolete packet block under 28
    struct.pack("<II", 3, 12) + struct.pack("<I", 12),  # simple packet block without its length
])
def test_short_pcapng_blocks_keep_every_packet_before_them(tmp_path: Path, tail: bytes) -> None:
    t = int(T0 * 1e6)
    data = _pcapng([_idb(), *(_epb(_udp_frame(1000 + i), t + i) for i in range(5))]) + tail
    path = tmp_path / "short.pcapng"
    path.write_bytes(data)
    out = read_all(PcapReader(), path)
    assert _datasets(out.events) == {"network.flow": 5}
    assert [p.reason for p in out.problems] == ["corrupt block length"]


def test_if_tsoffset_running_past_its_block(tmp_path: Path) -> None:
    t = int(T0 * 1e6)
    bad_option = struct.pack("<HH", 14, 8) + b"\0" * 4  # announces 8 bytes, the block ends after 4
    idb = struct.pack("<II", 1, 20 + len(bad_option)) + struct.pack("<HHI", 1, 0, 65535) + bad_option
    idb += struct.pack("<I", len(idb) + 4)
    path = tmp_path / "tsoffset.pcapng"
    path.write_bytes(_pcapng([idb, _epb(_udp_frame(1), t)]))
    out = read_all(PcapReader(), path)
    assert _datasets(out.events) == {"network.flow": 1} and out.problems == []


def _many_flows(tmp_path: Path, n: int, name: str = "many.pcap") -> Path:
    pkts = [Ether(**MAC) / IP(src="169.254.1.1", dst="169.254.1.2") / UDP(sport=1024 + i, dport=9999) / b"x"
            for i in range(n)]
    return write(tmp_path / name, timed(pkts, T0, 0.001))


def test_a_gzip_damaged_part_way_keeps_what_was_read_and_marks_open_flows(tmp_path: Path) -> None:
    plain = _many_flows(tmp_path, 3000).read_bytes()
    packed = gzip.compress(plain, compresslevel=1)
    bad = tmp_path / "cut.pcap.gz"
    bad.write_bytes(packed[: len(packed) * 2 // 3])  # the end of the stream is missing
    out = read_all(PcapReader(), bad, batch_size=500)
    flows = [e for e in out.events if e["event.dataset"] == "network.flow"]
    assert 1000 < len(flows) < 3000
    assert {e["event.reason"] for e in flows} == {"read-error"}
    assert [p.reason for p in out.problems] == ["unreadable file"]
    assert "read-error" in (out.problems[0].raw or "")


def test_a_damaged_gz_in_a_folder_is_reported_and_the_run_goes_on(tmp_path: Path, sqlite_store: Store) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    _many_flows(folder, 10, "a.pcap")
    (folder / "b.pcap.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 200)  # a gzip header, then garbage
    _many_flows(folder, 20, "c.pcap")
    report = ingest(sqlite_store, PcapReader(), [folder])
    assert report.written == 30
    assert report.problem_count == 1 and set(report.problems) == {"unreadable file"}
    assert report.examples[0].source.endswith("b.pcap.gz")


def test_the_flow_table_is_capped_and_evicted_flows_are_reported(tmp_path: Path) -> None:
    path = _many_flows(tmp_path, 1000)
    reader = PcapReader(max_flows=100)
    out = read_all(reader, path)
    flows = [e for e in out.events if e["event.dataset"] == "network.flow"]
    assert len(flows) == 1000 and len({e["source.port"] for e in flows}) == 1000
    reasons = Counter(e["event.reason"] for e in flows)
    assert reasons["evicted"] >= 900 and reasons["evicted"] + reasons["end-of-capture"] == 1000
    assert reader.last_meter is not None and reader.last_meter.stats["flows evicted (table full)"] == reasons["evicted"]


def test_eviction_keeps_the_table_under_its_cap() -> None:
    meter = FlowMeter(lambda p: p, MeterConfig(max_flows=64))
    frame = _udp_frame(1)
    for i in range(2000):
        data = bytearray(frame)
        data[34:36] = (1024 + i).to_bytes(2, "big")
        meter.packet(i, int(T0 * 1e9) + i, 1, bytes(data), len(data))
        assert meter.open <= 64 and len(meter.open_flows()) == meter.open


def test_the_final_flush_honours_the_batch_size(tmp_path: Path) -> None:
    path = _many_flows(tmp_path, 95)
    out = read_all(PcapReader(), path, batch_size=10)
    assert out.batches >= 10 and len(out.events) == 95
    sizes = [len(b.events) for b in PcapReader().batches(path, None, 10)]
    assert max(sizes) <= 10 and sum(sizes) == 95
    resumed = read_resumed(PcapReader(), path, 10)
    assert sorted(e["event.id"] for e in resumed.events) == sorted(e["event.id"] for e in out.events)


def test_evictions_are_split_into_batches_and_resume_exactly(tmp_path: Path) -> None:
    path = _many_flows(tmp_path, 400)
    sizes = [len(b.events) for b in PcapReader(max_flows=64).batches(path, None, 5)]
    assert max(sizes) <= 5 and sum(sizes) == 400
    whole = read_all(PcapReader(max_flows=64), path, batch_size=5)
    resumed = read_resumed(PcapReader(max_flows=64), path, 5)
    assert sorted(e["event.id"] for e in resumed.events) == sorted(e["event.id"] for e in whole.events)


def test_a_gtp_extension_of_length_zero_does_not_hang_the_sensor() -> None:
    """Found by the link_layers harness: one UDP packet to port 2152 looped forever in gtp_u."""
    gtp = bytes([0x36, 0xFF, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85]) + b"\x00" * 8  # E flag, next extension, length 0
    frame = bytes(Ether(**MAC) / IP(src="169.254.1.1", dst="169.254.1.2") / UDP(sport=2152, dport=2152) / gtp)
    meter = FlowMeter(str)
    meter.packet(0, int(T0 * 1e9), 1, frame, len(frame))
    meter.flush()
    assert [e["event.dataset"] for e in meter.events] == ["network.flow"]


def test_a_pcap_header_cut_short_is_one_problem(tmp_path: Path) -> None:
    """Found by the pcap_file harness: the boundary named variables the failing reader had not set yet."""
    path = tmp_path / "cut.pcap"
    path.write_bytes(bytes.fromhex("d4c3b2a1 0200 0000 00000042 00000000 00000400 01"))  # 21 of its 24 bytes
    out = read_all(PcapReader(), path)
    assert out.events == [] and [p.reason for p in out.problems] == ["unreadable file"]
    assert "truncated pcap file header" in (out.problems[0].raw or "")


@pytest.mark.parametrize("idb_options, ticks, readable", [
    (b"", (1 << 64) - 1, False),  # microsecond ticks: year 586,524
    (struct.pack("<HHB3x", 9, 1, 0x80), int(T0), True),  # if_tsresol 2^0: ticks are seconds (2^64 - 1 s below)
    (struct.pack("<HHq", 14, 8, (1 << 63) - 1), 0, False),  # if_tsoffset past time_t
    (struct.pack("<HHq", 14, 8, -(1 << 62)), 0, False),  # if_tsoffset before the epoch
])
def test_a_pcapng_time_no_event_can_carry_is_a_problem_of_its_packet(tmp_path: Path, idb_options: bytes,
                                                                      ticks: int, readable: bool) -> None:
    """A pcapng time out of range (64-bit ticks, any resolution, a signed offset) once failed the whole
    file at the end-of-capture flush (OverflowError in time.gmtime): every flow of it was lost."""
    t = int(T0 * 1e6)
    good = _pcapng([_idb(), *(_epb(_udp_frame(1000 + i), t + i) for i in range(3))])
    second = _pcapng([_idb(idb_options), _epb(_udp_frame(7), ticks), _epb(_udp_frame(8), (1 << 64) - 1)])
    path = tmp_path / "far.pcapng"
    path.write_bytes(good + second)
    out = read_all(PcapReader(), path)
    flows = [e for e in out.events if e["event.dataset"] == "network.flow"]
    assert sorted(e["source.port"] for e in flows) == [7, 1000, 1001, 1002] if readable else [1000, 1001, 1002]
    assert all(e["@timestamp"].startswith("2023-11-14T22:13:20.") for e in flows)
    assert [(p.position, p.reason) for p in out.problems] == [
        *([] if readable else [("packet 3", "timestamp out of range")]), ("packet 4", "timestamp out of range")]


def test_a_dns_query_flood_with_fresh_ids_keeps_memory_flat() -> None:
    """Unanswered queries with fresh ids (a random-subdomain flood) were held until the flow ended: up to
    65,536 parsed queries per flow (37 MB), times every open flow. Past apps.MAX_PENDING the oldest is
    reported as an unanswered query, so every query still comes out, and an answer still pairs."""
    import tracemalloc

    from scapy.layers.dns import DNS, DNSQR

    def query(ident: int) -> bytes:
        return bytes(eth() / IP(src="169.254.1.1", dst="169.254.1.2") / UDP(sport=5353, dport=53)
                     / DNS(id=ident, rd=1, qd=DNSQR(qname=f"{ident:05d}{'a' * 50}.example.org")))

    first = query(0)
    at = len(first) - len(bytes(DNS(id=0, rd=1, qd=DNSQR(qname=f"{0:05d}{'a' * 50}.example.org"))))
    meter = FlowMeter(str)
    t = int(T0 * 1e9)
    n, seen = 20_000, 0
    tracemalloc.start()
    try:
        for i in range(n):
            frame = bytearray(first)
            frame[at:at + 2] = i.to_bytes(2, "big")
            meter.packet(i, t + i * 1000, 1, bytes(frame), len(frame))
            seen += len(meter.events)
            meter.events.clear()  # as the collector hands each batch over
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2 << 20, f"{held} bytes held after {n} unanswered queries"
    answer = bytes(eth() / IP(src="169.254.1.2", dst="169.254.1.1") / UDP(sport=53, dport=5353)
                   / DNS(id=n - 1, qr=1, qd=DNSQR(qname="x.example.org")))
    meter.packet(n, t + n * 1000, 1, answer, len(answer))
    meter.flush()
    dns = [e for e in meter.events if e["event.dataset"] == "network.dns"]
    assert seen + len(dns) == n
    assert [e["event.action"] for e in dns].count("dns-transaction") == 1
    assert meter.stats["DNS queries reported before an answer (pending cap)"] == n - apps.MAX_PENDING


def test_a_pcapng_of_bad_blocks_holds_a_bounded_number_of_problems(tmp_path: Path) -> None:
    """The reader skips damaged blocks without yielding, so nobody could take their problems: a file of
    bad blocks was one problem object per 32 bytes of file, all in one batch (99 MB for 9.6 MB of file)."""
    MAX_HELD_PROBLEMS = 1000

    n = 3 * MAX_HELD_PROBLEMS
    bad = _block(6, struct.pack("<IIIII", 7, 0, 0, 0, 0))  # interface 7 of 1
    path = tmp_path / "bad.pcapng"
    path.write_bytes(_pcapng([_idb(), *[bad] * n, _epb(_udp_frame(1), int(T0 * 1e6))]))
    batches = list(PcapReader().batches(path, None, 100))
    problems = [p for b in batches for p in b.problems]
    assert max(len(b.problems) for b in batches) <= MAX_HELD_PROBLEMS + 1
    assert [p.position for p in problems[:MAX_HELD_PROBLEMS]] == [f"packet {i}" for i in range(MAX_HELD_PROBLEMS)]
    summary = problems[MAX_HELD_PROBLEMS]
    assert (summary.position, summary.reason) == (f"packet {MAX_HELD_PROBLEMS}", "more problems")
    assert summary.raw == (f"{n - MAX_HELD_PROBLEMS} more up to packet {n - 1}, counted, not listed one by one: "
                           f"corrupt packet block ({n - MAX_HELD_PROBLEMS})")
    assert [e["source.port"] for b in batches for e in b.events] == [1]


def test_a_pcapng_section_holds_a_bounded_number_of_interfaces(tmp_path: Path) -> None:
    """An interface description is 20 bytes of file and was an object for the whole section (56 MB of
    memory for a 10 MB file of them); past MAX_INTERFACES they are problems, their packets unreadable."""
    from collectors.pcap.reader import MAX_INTERFACES, CaptureInfo, iter_records

    extra = 100
    epb_last = _block(6, struct.pack("<IIIII", MAX_INTERFACES, 0, 0, 1, 1) + b"x")
    data = _pcapng([_idb()] * (MAX_INTERFACES + extra) + [_epb(_udp_frame(1), int(T0 * 1e6)), epb_last])
    info = CaptureInfo()
    problems: list[Problem] = []
    records = list(iter_records(io.BytesIO(data), problems, info))
    assert len(info.interfaces) == MAX_INTERFACES
    assert [r[0] for r in records] == [0]
    assert Counter(p.reason for p in problems) == {"too many interfaces": extra, "corrupt packet block": 1}


def test_problems_of_a_flow_count_towards_the_batch(tmp_path: Path) -> None:
    """Malformed DNS in one flow makes problems and no events: they all waited for the end of the capture,
    one batch of any size (a problem object per packet, the whole file long)."""
    bad_dns = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"  # a name pointing at itself
    pkt = eth() / IP(src="169.254.1.1", dst="169.254.1.2") / UDP(sport=5000, dport=53) / bad_dns
    path = write(tmp_path / "bad-dns.pcap", timed([pkt] * 1000, T0, 0.0001))
    batches = list(PcapReader().batches(path, None, 100))
    assert max(len(b.events) + len(b.problems) for b in batches) <= 100
    assert sum(len(b.problems) for b in batches) == 1000
    assert [e["event.dataset"] for b in batches for e in b.events] == ["network.flow"]
    resumed = read_resumed(PcapReader(), path, 100)
    assert len(resumed.problems) == 1000 and len(resumed.events) == 1
