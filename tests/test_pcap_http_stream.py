"""HTTP over a TCP byte stream (collectors/pcap/http.py HttpStream, tcpstream): retransmissions read once,
heads split across segments joined (bounded), bodies skipped, sequence numbers wrapping.

Real packets made by scapy with the sequence numbers a real stack would use, written to
pcap files and read by the collector (and once by ``soc ingest pcap``); tshark, when
installed, reads the same files and must find the same requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from collectors.base import read_all
from collectors.pcap.collector import PcapReader
from collectors.pcap.flows import FlowMeter
from collectors.pcap.http import MAX_HEAD
from collectors.pcap.tcpstream import MASK
from eventstore import open_store
from tests.pcapkit import C, S, eth, timed, write

CISN, SISN = 1000, 5000


class Conn:
    """One TCP connection's packets, with the sequence numbers each side would send."""

    def __init__(self, sport: int = 40000, dport: int = 80, cisn: int = CISN, sisn: int = SISN) -> None:
        self.sport, self.dport = sport, dport
        self.cseq, self.sseq = (cisn + 1) & MASK, (sisn + 1) & MASK
        self.packets: list[Packet] = [
            eth() / IP(src=C, dst=S) / TCP(sport=sport, dport=dport, flags="S", seq=cisn),
            eth() / IP(src=S, dst=C) / TCP(sport=dport, dport=sport, flags="SA", seq=sisn, ack=self.cseq),
            eth() / IP(src=C, dst=S) / TCP(sport=sport, dport=dport, flags="A", seq=self.cseq, ack=self.sseq)]

    def client(self, data: bytes, seq: int | None = None) -> Packet:
        """The client sends ``data`` (at ``seq``: a resend or out of order; else the next bytes)."""
        at = self.cseq if seq is None else seq
        p = eth() / IP(src=C, dst=S) / TCP(sport=self.sport, dport=self.dport, flags="PA", seq=at, ack=self.sseq) / Raw(data)
        if seq is None:
            self.cseq = (self.cseq + len(data)) & MASK
        self.packets.append(p)
        return p

    def server(self, data: bytes) -> Packet:
        p = eth() / IP(src=S, dst=C) / TCP(sport=self.dport, dport=self.sport, flags="PA", seq=self.sseq,
                                           ack=self.cseq) / Raw(data)
        self.sseq = (self.sseq + len(data)) & MASK
        self.packets.append(p)
        return p

    def close(self) -> list[Packet]:
        self.packets += [
            eth() / IP(src=C, dst=S) / TCP(sport=self.sport, dport=self.dport, flags="FA", seq=self.cseq, ack=self.sseq),
            eth() / IP(src=S, dst=C) / TCP(sport=self.dport, dport=self.sport, flags="FA", seq=self.sseq,
                                           ack=(self.cseq + 1) & MASK),
            eth() / IP(src=C, dst=S) / TCP(sport=self.sport, dport=self.dport, flags="A", seq=(self.cseq + 1) & MASK,
                                           ack=(self.sseq + 1) & MASK)]
        return self.packets


def request(path: str, host: str = "www.example", extra: str = "", body: bytes = b"") -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}" if not body else (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{extra}")
    return head.encode() + b"\r\n" + body


def response(status: int = 200, body: bytes = b"ok") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def read(tmp_path: Path, packets: list[Packet], name: str = "c.pcap") -> tuple[list[dict], list[dict], list]:
    out = read_all(PcapReader(), write(tmp_path / name, timed(packets)))
    http = [e for e in out.events if e["event.dataset"] == "network.http"]
    flows = [e for e in out.events if e["event.dataset"] == "network.flow"]
    return http, flows, out.problems


def retransmission_capture() -> list[Packet]:
    c = Conn()
    first = c.client(request("/once"))
    c.packets.append(first.copy())  # the same segment again: no ACK came in time
    c.server(response())
    return c.close()


def split_capture() -> list[Packet]:
    c = Conn(sport=40001)
    c.client(b"GET /split?q=1 HTTP/1.1\r\n")
    c.client(b"Host: split.example\r\nUser-Agent: ztsoc-test\r\n")
    c.client(b"\r\n")
    c.server(response(404, b"missing"))
    return c.close()


def test_a_retransmitted_request_is_one_event_and_counted(tmp_path: Path) -> None:
    http, flows, problems = read(tmp_path, retransmission_capture())
    assert [(h["url.path"], h["http.response.status_code"]) for h in http] == [("/once", 200)]
    assert flows[0]["ztsoc.tcp.retransmitted_segments"] == 1 and problems == []
    assert flows[0]["ztsoc.tcp.out_of_order_segments"] == 0 and flows[0]["ztsoc.tcp.gaps"] == 0


def test_a_head_split_across_three_segments_is_one_event(tmp_path: Path) -> None:
    http, flows, problems = read(tmp_path, split_capture())
    (h,) = http
    assert (h["http.request.method"], h["url.original"], h["url.domain"], h["user_agent.original"]) == (
        "GET", "/split?q=1", "split.example", "ztsoc-test")
    assert h["http.response.status_code"] == 404 and h["ztsoc.source.position"] == "packet 3"  # where it began
    assert flows[0]["ztsoc.tcp.retransmitted_segments"] == 0 and problems == []


def test_sequence_numbers_wrapping_inside_a_request(tmp_path: Path) -> None:
    c = Conn(cisn=MASK - 10)  # the request's 10th byte is sequence number 0
    first = c.client(b"GET /wrapped HTTP/1.1\r\n")
    c.client(b"Host: wrap.example\r\n\r\n")
    c.packets.append(first.copy())  # resent across the wrap
    c.server(response())
    http, flows, _ = read(tmp_path, c.close())
    assert [(h["url.path"], h["url.domain"]) for h in http] == [("/wrapped", "wrap.example")]
    assert flows[0]["ztsoc.tcp.retransmitted_segments"] == 1


def test_an_endless_head_is_one_problem_and_memory_stays_flat() -> None:
    c = Conn()
    c.client(b"GET /endless HTTP/1.1\r\n")
    for _ in range(400):  # 560 kB of header lines, never the blank line
        c.client(b"X-Filler: " + b"a" * 1388 + b"\r\n")
    c.client(b"GET /after HTTP/1.1\r\nHost: b\r\n\r\n")  # a segment that starts a new request
    frames = [bytes(p) for p in timed(c.close())]
    meter = FlowMeter(lambda pos: f"id:{pos}")
    tracemalloc.start()
    try:
        held = []
        for i, f in enumerate(frames):
            meter.packet(i, 1_700_000_000_000_000_000 + i, 1, f, len(f))
            for flow in meter.flows.values():
                if flow.state is not None:
                    held.append(len(flow.state.up.buf))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    meter.flush()
    assert max(held) < MAX_HEAD and peak < 512 * 1024
    assert [(p.reason, p.index) for p in meter.problems] == [("HTTP head too long", 3)]
    http = [e for e in meter.events if e["event.dataset"] == "network.http"]
    assert [h["url.path"] for h in http] == ["/after"]  # the stream found its feet again


def test_pipelined_heads_split_and_bodies_skipped(tmp_path: Path) -> None:
    c = Conn()
    trap = b"GET /not-a-request HTTP/1.1\r\nHost: body\r\n\r\n"  # a body that looks like a request
    two = request("/first", body=trap) + request("/second")
    c.client(two[:len(two) - 20])
    c.client(two[len(two) - 20:] + request("/third")[:9])  # the third head starts at the end of this one
    c.client(request("/third")[9:])
    c.client(trap)  # the same bytes again, now where a head is due: a request of its own
    c.server(response(201) + response(202))
    c.server(response(203) + response(204, b""))
    http, _, problems = read(tmp_path, c.close())
    got = [(h["http.request.method"], h["url.path"], h.get("http.response.status_code")) for h in http]
    assert got == [("POST", "/first", 201), ("GET", "/second", 202), ("GET", "/third", 203),
                   ("GET", "/not-a-request", 204)]
    assert len({h["event.id"] for h in http}) == 4 and problems == []


def test_a_body_segment_that_looks_like_a_request_is_skipped(tmp_path: Path) -> None:
    c = Conn()
    body = b"GET /inside-the-body HTTP/1.1\r\nHost: x\r\n\r\n" + b"z" * 100
    c.client(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    c.client(body)  # the whole body in its own segment, starting like a request
    c.server(response())
    http, _, _ = read(tmp_path, c.close())
    assert [(h["http.request.method"], h["url.path"]) for h in http] == [("POST", "/upload")]


def test_a_head_response_with_a_length_has_no_body(tmp_path: Path) -> None:
    c = Conn()
    c.client(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
    c.server(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + response(404, b"no"))
    http, _, _ = read(tmp_path, c.close())
    assert [(h["url.path"], h["http.response.status_code"]) for h in http] == [("/h", 200), ("/g", 404)]


def test_segments_out_of_order_are_each_read(tmp_path: Path) -> None:
    c = Conn()
    one, two = request("/one"), request("/two")
    p1 = c.client(one)
    p2 = c.client(two)
    c.packets[-2:] = [p2, p1]  # the second request's segment arrives first
    c.server(response() + response())
    http, flows, _ = read(tmp_path, c.close())
    assert sorted(h["url.path"] for h in http) == ["/one", "/two"]
    assert flows[0]["ztsoc.tcp.out_of_order_segments"] == 1 and flows[0]["ztsoc.tcp.retransmitted_segments"] == 0


def test_keepalives_are_not_retransmissions(tmp_path: Path) -> None:
    c = Conn()
    c.client(request("/k"))
    c.server(response())
    for _ in range(3):  # a keep-alive probe: one byte, one before the next sequence number
        c.client(b"\x00", seq=(c.cseq - 1) & MASK)
        c.packets.append(eth() / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="A", seq=c.cseq, ack=c.sseq))
    http, flows, _ = read(tmp_path, c.close())
    assert len(http) == 1 and flows[0]["ztsoc.tcp.retransmitted_segments"] == 0


def test_soc_ingest_pcap_stores_one_event_per_request(tmp_path: Path) -> None:
    cap = tmp_path / "caps"
    cap.mkdir()
    write(cap / "retransmitted.pcap", timed(retransmission_capture()))
    write(cap / "split.pcap", timed(split_capture()))
    db = tmp_path / "soc.db"
    run = subprocess.run([sys.executable, "-m", "soc_cli.main", "--store", f"sqlite:///{db}", "ingest", "pcap",
                          str(cap), "--json"], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["problems"] == {}
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.count("event.dataset:network.http") == 2
        assert store.count('event.dataset:network.http AND url.domain:"split.example"') == 1
        assert store.count("event.dataset:network.flow AND ztsoc.tcp.retransmitted_segments:1") == 1
    finally:
        store.close()


def _tshark_requests(path: Path, *options: str) -> list[tuple[str, str, str]]:
    out = subprocess.run(["tshark", "-n", *options, "-r", str(path), "-Y", "http.request && !icmp", "-T", "fields",
                          "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.host",
                          "-E", "occurrence=a", "-E", "aggregator=|"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    found = []
    for line in out.splitlines():
        methods, uris, hosts = (f.split("|") for f in line.split("\t"))
        found += zip(methods, uris, hosts, strict=True)
    return sorted(found)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (the oracle)")
def test_tshark_finds_the_same_requests(tmp_path: Path) -> None:
    """Differential: retransmission, split heads, pipelining and a wrapped stream, against tshark's reassembly."""
    c = Conn(sport=40009, cisn=MASK - 30)
    c.client(b"GET /a HTTP/1.1\r\nHo")
    resent = c.client(b"st: one.example\r\n\r\nGET /b HTTP/1.1\r\nHost: two.example\r\n\r\n")
    c.packets.append(resent.copy())
    c.server(response() + response())
    packets = retransmission_capture() + split_capture() + c.close()
    path = write(tmp_path / "mixed.pcap", timed(packets))
    out = read_all(PcapReader(), path)
    ours = sorted((e["http.request.method"], e["url.original"], e["url.domain"]) for e in out.events
                  if e["event.dataset"] == "network.http")
    assert ours == _tshark_requests(path)
    assert len(ours) == 4


def test_data_in_the_syn_starts_after_its_sequence_number(tmp_path: Path) -> None:
    """TCP Fast Open: the SYN carries the head's start; the SYN itself takes one sequence number."""
    c = Conn()
    start = b"GET /fast-open HTTP/1.1\r\nHo"
    c.packets[0] = c.packets[0] / Raw(start)
    c.cseq = (CISN + 1 + len(start)) & MASK
    c.client(b"st: tfo.example\r\n\r\n")
    c.server(response())
    http, flows, _ = read(tmp_path, c.close())
    assert [(h["url.path"], h["url.domain"]) for h in http] == [("/fast-open", "tfo.example")]
    assert flows[0]["ztsoc.tcp.gaps"] == 0


# -- chunked bodies ---------------------------------------------------------------------------------
def chunked(method: str, path: str, chunks: list[bytes], trailers: bytes = b"", ext: bytes = b"") -> bytes:
    """A request with a chunked body: each chunk's size in hex (with an extension), then the trailers."""
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), ext, c) for c in chunks)
    return (f"{method} {path} HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + body + b"0\r\n" + trailers + b"\r\n")


#: a chunk that looks like a request: read as one, it would be a request the client never made
DECOY = b"GET /decoy HTTP/1.1\r\nHost: body\r\n\r\n"


def test_requests_after_a_chunked_body_are_each_an_event(tmp_path: Path) -> None:
    c = Conn()
    upload = chunked("POST", "/upload", [DECOY, b"x" * 3000, DECOY], trailers=b"X-Sum: 1\r\n", ext=b";name=v")
    c.client(upload + request("/second") + request("/third"))
    c.server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nHTTP\r\n0\r\n\r\n" + response(202)
             + response(203))
    http, _, problems = read(tmp_path, c.close())
    got = [(h["http.request.method"], h["url.path"], h.get("http.response.status_code")) for h in http]
    assert got == [("POST", "/upload", 200), ("GET", "/second", 202), ("GET", "/third", 203)]
    assert problems == []


def test_a_chunked_body_split_anywhere_is_framed_the_same() -> None:
    """Every place one cut can fall (size lines, line ends, trailers), and 1-byte segments."""
    from collectors.pcap import http as h

    whole = chunked("POST", "/u", [DECOY, b"ab"], trailers=b"T: 1\r\n") + request("/next") + request("/last")

    def heads(pieces: list[bytes]) -> list[bytes]:
        s, out = h.HttpStream(), []
        for i, piece in enumerate(pieces):
            for head, _index, _ts, _order in s.heads(piece, i, 0):
                assert head is not None
                out.append(head.split(b"\r\n")[0])
                msg = h.parse_head(head)
                assert msg is not None
                s.body(h.body_length(msg))
            assert len(s.line) <= h.MAX_HEAD and len(s.buf) <= h.MAX_HEAD
        return out

    expected = [b"POST /u HTTP/1.1", b"GET /next HTTP/1.1", b"GET /last HTTP/1.1"]
    for cut in range(4, len(whole)):  # the first segment starts a request (4 bytes: how a stream is found)
        assert heads([whole[:cut], whole[cut:]]) == expected, cut
    assert heads([whole[:4]] + [whole[i:i + 1] for i in range(4, len(whole))]) == expected


@pytest.mark.parametrize("framing", [
    b"fffffffffffffffff\r\n",          # 17 hex digits: no size anyone sends
    b"zz\r\n",                         # not hex
    b"0x10\r\n",                       # what int(x, 16) would take, HTTP does not
    b"1_0\r\n",
    b"3\r\nabcGET /x HTTP/1.1\r\n\r\n",  # the chunk's data does not end where its size says
    b"1;" + b"e" * 2000 + b"\r\n",     # a size line past MAX_CHUNK_LINE
    b"0\r\n" + b"T: " + b"t" * 20000,  # a trailer line past MAX_HEAD
])
def test_unreadable_chunk_framing_waits_for_the_next_request(tmp_path: Path, framing: bytes) -> None:
    """The stream gives up on the body (as before chunks were read) and finds its feet on the next segment
    that starts a request; nothing inside the broken body is read as one."""
    c = Conn()
    c.client(b"POST /broken HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + framing
             + b"\r\nGET /inside HTTP/1.1\r\n\r\n")
    c.client(request("/after"))
    c.server(response() + response())
    http, _, problems = read(tmp_path, c.close())
    assert [h["url.path"] for h in http] == ["/broken", "/after"] and problems == []


def test_a_hostile_chunk_size_is_skipped_without_memory() -> None:
    """A size of 2**64 - 1: everything after is body (as with such a Content-Length); nothing is held."""
    from collectors.pcap import http as h

    s = h.HttpStream()
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    for found, *_ in s.heads(head + b"ffffffffffffffff\r\n" + DECOY, 0, 0):
        assert found is not None
        s.body(h.body_length(h.parse_head(found)))  # type: ignore[arg-type]
    assert s.skip == 0xFFFFFFFFFFFFFFFF - len(DECOY) and s.line == b"" and s.buf == b""
    assert list(s.heads(DECOY * 100, 1, 0)) == []


def test_a_chunked_response_to_head_has_no_body(tmp_path: Path) -> None:
    c = Conn()
    c.client(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n" + request("/g"))
    c.server(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + response(404, b"no"))
    http, _, _ = read(tmp_path, c.close())
    assert [(h["url.path"], h["http.response.status_code"]) for h in http] == [("/h", 200), ("/g", 404)]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (the oracle)")
def test_tshark_finds_the_same_requests_after_chunked_bodies(tmp_path: Path) -> None:
    """Differential: chunked uploads (split over segments, with extensions and trailers) and requests after them."""
    c = Conn(sport=40011)
    upload = chunked("POST", "/upload", [DECOY, b"y" * 2000], trailers=b"X-Sum: 1\r\n", ext=b";a=b")
    stream = upload + request("/second", host="two.example") + chunked("PUT", "/put", [b"z" * 10]) + request("/last")
    for at in range(0, len(stream), 700):
        c.client(stream[at:at + 700])
    c.server(response() * 4)
    path = write(tmp_path / "chunked.pcap", timed(c.close()))
    out = read_all(PcapReader(), path)
    ours = sorted((e["http.request.method"], e["url.original"], e["url.domain"]) for e in out.events
                  if e["event.dataset"] == "network.http")
    assert ours == _tshark_requests(path)
    assert [m for m, _, _ in ours] == ["GET", "GET", "POST", "PUT"]


# -- segments out of order: the reordering window (tcpstream) -----------------------------------------
def test_a_head_split_across_reordered_segments_is_one_event(tmp_path: Path) -> None:
    c = Conn()
    head = b"GET /reordered?q=1 HTTP/1.1\r\nHost: late.example\r\nUser-Agent: ztsoc-test\r\n\r\n"
    parts = [head[:10], head[10:30], head[30:50], head[50:]]
    sent = [c.client(p) for p in parts]
    c.packets[-4:] = [sent[0], sent[3], sent[2], sent[1]]  # after the start: the tail, then back to the middle
    c.server(response())
    c.client(request("/next"))
    c.server(response(204, b""))
    http, flows, problems = read(tmp_path, c.close())
    got = [(h["url.original"], h.get("url.domain"), h.get("http.response.status_code")) for h in http]
    assert got == [("/reordered?q=1", "late.example", 200), ("/next", "www.example", 204)]
    assert http[0]["ztsoc.source.position"] == "packet 3"  # where the head starts: its first bytes' packet
    assert flows[0]["ztsoc.tcp.gaps"] == 0 and flows[0]["ztsoc.tcp.reorder_overflows"] == 0
    assert flows[0]["ztsoc.tcp.out_of_order_segments"] == 2 and problems == []  # the middle two came late


def test_pipelined_requests_reordered_are_each_an_event_in_order(tmp_path: Path) -> None:
    c = Conn()
    stream = request("/a") + request("/b", body=b"x" * 50) + request("/c")
    sent = [c.client(stream[i:i + 17]) for i in range(0, len(stream), 17)]
    order = [0] + [k for j in range(1, len(sent), 2) for k in (j + 1, j) if k < len(sent)]  # 0, 2 1, 4 3, ...
    c.packets[-len(sent):] = [sent[k] for k in order]
    c.server(response() * 3)
    http, flows, _ = read(tmp_path, c.close())
    assert [(h["url.path"], h["http.response.status_code"]) for h in http] == [("/a", 200), ("/b", 200), ("/c", 200)]
    assert flows[0]["ztsoc.tcp.gaps"] == 0


def test_a_lost_segment_is_a_gap_once_the_window_is_full_or_the_flow_ends(tmp_path: Path) -> None:
    c = Conn()
    c.client(request("/before"))
    c.client(b"GET /lost HTTP/1.1\r\nHost: x\r\n\r\n")
    del c.packets[-1]  # never captured
    c.client(request("/after-gap"))  # waits in the window for the lost bytes, then read after the gap
    c.server(response() * 3)
    http, flows, _ = read(tmp_path, c.close())
    assert sorted(h["url.path"] for h in http) == ["/after-gap", "/before"]
    assert flows[0]["ztsoc.tcp.gaps"] == 1 and flows[0]["ztsoc.tcp.reorder_overflows"] == 0  # the flow's end


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (the oracle)")
def test_tshark_finds_the_same_requests_in_reordered_segments(tmp_path: Path) -> None:
    c = Conn(sport=40013)
    stream = request("/one", host="a.example") + request("/two", host="b.example", body=b"q" * 30) + request("/3")
    sent = [c.client(stream[i:i + 23]) for i in range(0, len(stream), 23)]
    c.packets[-len(sent):] = sent[:1] + list(reversed(sent[1:5])) + sent[5:]  # the 2nd to 5th last to first
    c.server(response() * 3)
    path = write(tmp_path / "reordered.pcap", timed(c.close()))
    out = read_all(PcapReader(), path)
    ours = sorted((e["http.request.method"], e["url.original"], e["url.domain"]) for e in out.events
                  if e["event.dataset"] == "network.http")
    # tshark reorders only when asked (its default: out-of-order segments are not reassembled)
    assert ours == _tshark_requests(path, "-o", "tcp.reassemble_out_of_order:TRUE") and len(ours) == 3
    assert len(_tshark_requests(path)) < 3  # (without it, tshark loses requests)


def test_a_tls_client_hello_in_reordered_segments_is_read(tmp_path: Path) -> None:
    from tests.test_pcap_apps import client_hello, server_hello

    c = Conn(dport=443)
    hello = client_hello(sni="reordered.example")
    parts = [hello[:40], hello[40:120], hello[120:]]
    sent = [c.client(p) for p in parts]
    c.packets[-3:] = [sent[0], sent[2], sent[1]]
    c.server(server_hello())
    out = read_all(PcapReader(), write(tmp_path / "tls.pcap", timed(c.close())))
    (tls,) = [e for e in out.events if e["event.dataset"] == "network.tls"]
    assert tls["tls.client.server_name"] == "reordered.example" and out.problems == []


def test_the_windows_of_all_flows_together_stay_bounded() -> None:
    """Many connections each leaving a segment waiting for bytes that never come: the meter's windows
    together hold at most MAX_HELD_TOTAL (plus one segment); past it, a window stops waiting at once."""
    from bench.pcapgen import tcp_frame
    from collectors.pcap.tcpstream import MAX_HELD_TOTAL

    meter = FlowMeter(str)
    ahead = b"a" * 9000
    flows = MAX_HELD_TOTAL // len(ahead) + 200
    peak = i = 0
    for n in range(flows):
        client, sport = 0x0A000000 + n // 60000, 1024 + n % 60000
        for frame in (tcp_frame(client, 0x0A800001, sport, 80, 0x02, 1000, 0),
                      tcp_frame(client, 0x0A800001, sport, 80, 0x18, 1001, 1, b"GET /x HTTP/1.1\r\n"),
                      tcp_frame(client, 0x0A800001, sport, 80, 0x18, 1001 + 17 + 100, 1, ahead)):  # 100 bytes lost
            meter.packet(i, 1_700_000_000_000_000_000 + i, 1, frame, len(frame))
            i += 1
        peak = max(peak, meter.held_bytes)
        assert meter.events == [] or all(e["event.dataset"] != "network.http" for e in meter.events)
    assert MAX_HELD_TOTAL - len(ahead) < peak <= MAX_HELD_TOTAL
    assert sum(len(f.state.tcp.orig.held or ()) for f in meter.open_flows()) == peak // len(ahead)
    meter.flush()
    assert meter.held_bytes == 0
    flow_records = [e for e in meter.events if e["event.dataset"] == "network.flow"]
    assert len(flow_records) == flows and sum(e["ztsoc.tcp.gaps"] for e in flow_records) == flows
    # the flows whose window the budget stopped (the others waited until the flush)
    assert sum(e["ztsoc.tcp.reorder_overflows"] for e in flow_records) == flows - peak // len(ahead)
