"""The decoder gaps tshark showed (issue 14): bare-LF and loosely spaced HTTP, pipelined requests,
DNS on any UDP port, SSLv2-format hellos, the second ClientHello after a HelloRetryRequest, Cisco HDLC.
Real packets (scapy) in real capture files, read by the collector."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw
from scapy.utils import wrpcap

from collectors.base import read_all
from collectors.pcap.collector import PcapReader
from collectors.pcap.tls import HRR_RANDOM
from tests.pcapkit import T0, C, S, eth, tcp_session, timed, write


def _events(path: Path, dataset: str) -> list[dict]:
    out = read_all(PcapReader(), path)
    assert out.problems == []
    return [e for e in out.events if e["event.dataset"] == dataset]


def test_bare_lf_and_extra_spaces_in_http(tmp_path: Path) -> None:
    request = b"GET   /lf?x=1  HTTP/1.1\nHost: bare.example\nUser-Agent: curl/8\n\n"
    response = b"HTTP/1.1  404 Not Found\nContent-Length: 3\n\nnot"
    http = _events(write(tmp_path / "lf.pcap", timed(tcp_session(request=request, response=response))),
                   "network.http")
    assert len(http) == 1
    h = http[0]
    assert (h["url.path"], h["url.query"], h["url.domain"], h["user_agent.original"]) == (
        "/lf", "x=1", "bare.example", "curl/8")
    assert h["http.response.status_code"] == 404 and h["http.response.body.bytes"] == 3


def test_a_target_with_spaces_is_read_whole(tmp_path: Path) -> None:
    request = b"GET /uri after space HTTP/1.1\r\nHost: sp.example\r\n\r\n"
    http = _events(write(tmp_path / "sp.pcap", timed(tcp_session(request=request, response=b"HTTP/1.0 400 Bad\r\n\r\n"))),
                   "network.http")
    assert [(h["url.original"], h["http.version"], h["http.response.status_code"]) for h in http] == [
        ("/uri after space", "1.1", 400)]


def test_pipelined_requests_and_answers(tmp_path: Path) -> None:
    requests = b"".join(f"GET /p{i} HTTP/1.1\r\nHost: pipe.example\r\n\r\n".encode() for i in range(3))
    responses = b"".join(f"HTTP/1.1 {200 + i} OK\r\nContent-Length: 2\r\n\r\nok".encode() for i in range(3))
    http = _events(write(tmp_path / "pipe.pcap", timed(tcp_session(request=requests, response=responses))),
                   "network.http")
    got = sorted((h["url.path"], h["http.response.status_code"]) for h in http)
    assert got == [("/p0", 200), ("/p1", 201), ("/p2", 202)]
    assert len({h["event.id"] for h in http}) == 3


def test_dns_on_any_udp_port_by_its_shape(tmp_path: Path) -> None:
    query = eth() / IP(src=C, dst=S) / UDP(sport=40000, dport=5300) / DNS(id=9, rd=1, qd=DNSQR(qname="odd.example"))
    answer = eth() / IP(src=S, dst=C) / UDP(sport=5300, dport=40000) / DNS(id=9, qr=1, qd=DNSQR(qname="odd.example"))
    noise = eth() / IP(src=C, dst=S) / UDP(sport=40001, dport=5301) / Raw(b"\x00\x01" + b"\x00" * 30)
    dns = _events(write(tmp_path / "dns.pcap", timed([query, answer, noise])), "network.dns")
    assert [(d["dns.question.name"], d["destination.port"]) for d in dns] == [("odd.example", 5300)]


def _ext(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def _record(kind: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    hs = bytes([kind]) + len(body).to_bytes(3, "big") + body
    return b"\x16" + version + len(hs).to_bytes(2, "big") + hs


def _client_hello(group: int) -> bytes:
    exts = _ext(0x002B, b"\x02\x03\x04") + _ext(0x000A, struct.pack("!HH", 2, group))
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    return _record(1, body, b"\x03\x01")


def _server_hello(random: bytes) -> bytes:
    exts = _ext(0x002B, b"\x03\x04")
    return _record(2, b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00" + struct.pack("!H", len(exts)) + exts)


def test_one_event_per_client_hello_after_a_hello_retry_request(tmp_path: Path) -> None:
    ccs = b"\x14\x03\x03\x00\x01\x01"
    base = tcp_session(dport=443, close="none")

    def seg(payload: bytes, to_server: bool, seq: int = 0) -> object:
        ip = IP(src=C, dst=S) if to_server else IP(src=S, dst=C)
        tcp = TCP(sport=40000, dport=443, flags="PA", seq=seq) if to_server else TCP(
            sport=443, dport=40000, flags="PA", seq=seq)
        return eth() / ip / tcp / Raw(payload)

    first, retry = _client_hello(0x001D), _server_hello(HRR_RANDOM)
    pkts = [*base, seg(first, True), seg(retry, False),
            seg(ccs + _client_hello(0x0017), True, len(first)), seg(_server_hello(b"\x22" * 32), False, len(retry))]
    tls = _events(write(tmp_path / "hrr.pcap", timed(pkts)), "network.tls")
    assert [(t["tls.established"], t.get("ztsoc.tls.hello_retry", False)) for t in tls] == [(False, True), (True, False)]
    assert tls[0]["tls.client.ja3"] != tls[1]["tls.client.ja3"]  # the groups differ: two hellos, two prints


def test_sslv2_format_client_hello_is_recorded(tmp_path: Path) -> None:
    specs = bytes.fromhex("010080070080")
    hello = b"\x01\x00\x02" + struct.pack("!HHH", len(specs), 0, 16) + specs + b"\x33" * 16
    record = bytes([0x80 | (len(hello) >> 8), len(hello) & 0xFF]) + hello
    tls = _events(write(tmp_path / "v2.pcap", timed(tcp_session(dport=443, request=record))), "network.tls")
    assert len(tls) == 1
    t = tls[0]
    assert (t["tls.version"], t["tls.version_protocol"], t["ztsoc.tls.sslv2_record"]) == ("2.0", "ssl", True)
    assert t["tls.client.supported_ciphers"] == ["0x010080", "0x070080"]


def test_cisco_hdlc_link_type(tmp_path: Path) -> None:
    frames = [b"\x0f\x00\x08\x00" + bytes(IP(src=C, dst=S) / UDP(sport=7000 + i, dport=9) / b"x") for i in range(3)]
    path = tmp_path / "chdlc.pcap"
    pkts = [Raw(f) for f in frames]
    for i, p in enumerate(pkts):
        p.time = T0 + i
    wrpcap(str(path), pkts, linktype=104)
    out = read_all(PcapReader(), path)
    assert Counter(e["event.dataset"] for e in out.events) == {"network.flow": 3} and out.problems == []
