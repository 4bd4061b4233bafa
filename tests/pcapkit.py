"""Captures crafted with scapy for the pcap tests: real packets, known contents, expected counts.

Every builder returns scapy packets with ``.time`` set (10 ms apart unless told), so the
tests can write them as pcap or pcapng and know exactly what the meter must report.
Addresses are link-local (169.254/16, fe80::/fd00::): these packets only live in files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap, wrpcapng

C, S = "169.254.10.1", "169.254.10.2"
C6, S6 = "fd00::1", "fd00::2"
T0 = 1_700_000_000.0
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def timed(packets: Iterable[Packet], start: float = T0, gap: float = 0.01) -> list[Packet]:
    out = []
    for i, p in enumerate(packets):
        p.time = start + i * gap
        out.append(p)
    return out


def eth() -> Ether:
    return Ether(**MAC)


def tcp_session(sport: int = 40000, dport: int = 80, request: bytes = b"", response: bytes = b"",
                close: str = "fin", src: str = C, dst: str = S, l2: Any = None) -> list[Packet]:
    """Handshake, optional request/response, then ``close``: fin | rst-orig | rst-resp | none."""
    l2 = l2 if l2 is not None else eth()
    ip = IP if ":" not in src else IPv6

    def c2s(flags: str, payload: bytes = b"") -> Packet:
        p = l2.copy() / ip(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
        return p / Raw(payload) if payload else p

    def s2c(flags: str, payload: bytes = b"") -> Packet:
        p = l2.copy() / ip(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags=flags)
        return p / Raw(payload) if payload else p

    pkts = [c2s("S"), s2c("SA"), c2s("A")]
    if request:
        pkts.append(c2s("PA", request))
    if response:
        pkts.append(s2c("PA", response))
    if close == "fin":
        pkts += [c2s("FA"), s2c("FA"), c2s("A")]
    elif close == "rst-orig":
        pkts.append(c2s("R"))
    elif close == "rst-resp":
        pkts.append(s2c("R"))
    return pkts


def dns_exchange(name: str = "example.org", ident: int = 4242, answer: str = "192.0.2.7",
                 rcode: int = 0, sport: int = 33333) -> list[Packet]:
    q = eth() / IP(src=C, dst=S) / UDP(sport=sport, dport=53) / DNS(id=ident, rd=1, qd=DNSQR(qname=name))
    an = [DNSRR(rrname=name, type="A", ttl=60, rdata=answer)] if rcode == 0 else []
    r = eth() / IP(src=S, dst=C) / UDP(sport=53, dport=sport) / DNS(
        id=ident, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=name), an=an)
    return [q, r]


HTTP_REQUEST = (b"GET /search?q=zero+trust HTTP/1.1\r\nHost: intranet.example:8080\r\n"
                b"User-Agent: Mozilla/5.0 (ztsoc-test)\r\nReferer: http://intranet.example/\r\n\r\n")
HTTP_RESPONSE = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"


def icmp_echo() -> list[Packet]:
    return [eth() / IP(src=C, dst=S) / ICMP(type=8, id=1, seq=1),
            eth() / IP(src=S, dst=C) / ICMP(type=0, id=1, seq=1)]


def write(path: Path, packets: list[Packet], fmt: str = "pcap", **kw: Any) -> Path:
    (wrpcapng if fmt == "pcapng" else wrpcap)(str(path), packets, **kw)
    return path


def vlan(tag: int, inner: int | None = None) -> Packet:
    l2 = eth() / Dot1Q(vlan=tag)
    return l2 / Dot1Q(vlan=inner) if inner is not None else l2
