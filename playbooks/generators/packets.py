"""Crafting whole conversations as packets and writing them as a pcap.

scapy builds a packet in about 450 µs on this machine, which makes a working day of
traffic take minutes; dpkt builds the same bytes in about 25 µs, so conversations are
built with dpkt. The TLS ClientHello is assembled by hand (dpkt only parses TLS).
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

MSS = 1400


def _mac(ip: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(ip)


def _ip(src: str, dst: str, proto: int, payload: dpkt.Packet, ttl: int = 64) -> dpkt.ip.IP:
    pkt = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=ttl, data=payload)
    pkt.len = len(pkt)
    return pkt


def _frame(src: str, dst: str, proto: int, payload: dpkt.Packet) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=_mac(src), dst=_mac(dst), data=_ip(src, dst, proto, payload)))


def client_hello(server_name: str, rng: random.Random) -> bytes:
    """A TLS 1.2-framed ClientHello offering TLS 1.3, with SNI: enough for SNI and JA3/JA4."""
    name = server_name.encode()
    sni = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    exts = [
        (0, sni),
        (10, struct.pack("!H", 6) + struct.pack("!HHH", 29, 23, 24)),  # supported groups
        (11, b"\x01\x00"),  # ec point formats
        (13, struct.pack("!H", 8) + struct.pack("!HHHH", 0x0403, 0x0804, 0x0401, 0x0503)),
        (16, struct.pack("!H", 12) + b"\x02h2\x08http/1.1"),  # ALPN
        (43, b"\x04\x03\x04\x03\x03"),  # supported versions: 1.3, 1.2
    ]
    ext_bytes = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in exts)
    ciphers = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    body = (
        b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
        + struct.pack("!H", 2 * len(ciphers)) + b"".join(struct.pack("!H", c) for c in ciphers)
        + b"\x01\x00" + struct.pack("!H", len(ext_bytes)) + ext_bytes
    )
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


@dataclass
class Capture:
    """Timestamped frames, written in time order as one pcap (Ethernet link type)."""

    frames: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, ts: float, frame: bytes) -> None:
        self.frames.append((ts, frame))

    def write(self, path: Path) -> int:
        self.frames.sort(key=lambda f: f[0])
        with path.open("wb") as fh:
            writer = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, frame in self.frames:
                writer.writepkt(frame, ts=ts)
        return len(self.frames)

    # -- conversations ------------------------------------------------------------------
    def tcp_session(
        self, ts: float, client: str, server: str, sport: int, dport: int, *,
        request: bytes = b"", response_size: int = 0, rtt: float = 0.002, rng: random.Random,
    ) -> float:
        """Handshake, request, response in MSS segments, FIN both ways. Returns the end time."""
        cseq, sseq = rng.getrandbits(32), rng.getrandbits(32)
        t = ts

        def send(src: str, dst: str, sp: int, dp: int, flags: int, seq: int, ack: int, data: bytes = b"") -> None:
            seg = dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                               win=64240, data=data)
            self.add(t, _frame(src, dst, 6, seg))

        SYN, ACK, PSH, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN
        send(client, server, sport, dport, SYN, cseq, 0)
        t += rtt / 2
        send(server, client, dport, sport, SYN | ACK, sseq, cseq + 1)
        t += rtt / 2
        cseq += 1
        sseq += 1
        send(client, server, sport, dport, ACK, cseq, sseq)
        if request:
            send(client, server, sport, dport, PSH | ACK, cseq, sseq, request)
            cseq += len(request)
        t += rtt / 2
        remaining = response_size
        while remaining > 0:
            chunk = min(MSS, remaining)
            send(server, client, dport, sport, PSH | ACK if chunk == remaining else ACK, sseq, cseq, b"\x17" * chunk)
            sseq += chunk
            remaining -= chunk
            t += 0.0002
        t += rtt / 2
        send(client, server, sport, dport, FIN | ACK, cseq, sseq)
        t += rtt / 2
        send(server, client, dport, sport, FIN | ACK, sseq, cseq + 1)
        t += rtt / 2
        send(client, server, sport, dport, ACK, cseq + 1, sseq + 1)
        return t

    def tcp_rejected(self, ts: float, client: str, server: str, sport: int, dport: int, rng: random.Random) -> None:
        seq = rng.getrandbits(32)
        self.add(ts, _frame(client, server, 6, dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN, seq=seq)))
        self.add(ts + 0.0005, _frame(server, client, 6, dpkt.tcp.TCP(
            sport=dport, dport=sport, flags=dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, seq=0, ack=seq + 1)))

    def dns_lookup(self, ts: float, client: str, resolver: str, name: str, answers: Iterable[str],
                   rng: random.Random, rcode: int = dpkt.dns.DNS_RCODE_NOERR) -> None:
        qid, sport = rng.getrandbits(16), rng.randint(20000, 60000)
        query = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
        query.op = dpkt.dns.DNS_RD
        self.add(ts, _frame(client, resolver, 17, dpkt.udp.UDP(sport=sport, dport=53, data=bytes(query))))
        reply = dpkt.dns.DNS(id=qid, qd=query.qd, an=[
            dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=300, ip=socket.inet_aton(a)) for a in answers
        ])
        reply.op = dpkt.dns.DNS_QR | dpkt.dns.DNS_RD | dpkt.dns.DNS_RA
        reply.rcode = rcode
        self.add(ts + 0.001, _frame(resolver, client, 17, dpkt.udp.UDP(sport=53, dport=sport, data=bytes(reply))))


def bulk_upload(capture: Capture, ts: float, client: str, server: str, sport: int, dport: int, size: int,
                rng: random.Random, segment: int = 60_000) -> float:
    """A large upload as a few jumbo segments (TSO-style, as captured on the sender): bytes without a packet storm."""
    seq, sseq = rng.getrandbits(32), rng.getrandbits(32)
    SYN, ACK, PSH, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN
    t = ts

    def send(src: str, dst: str, sp: int, dp: int, flags: int, s: int, a: int, data: bytes = b"") -> None:
        capture.add(t, _frame(src, dst, 6, dpkt.tcp.TCP(sport=sp, dport=dp, flags=flags, seq=s & 0xFFFFFFFF,
                                                        ack=a & 0xFFFFFFFF, win=64240, data=data)))

    send(client, server, sport, dport, SYN, seq, 0)
    t += 0.02
    send(server, client, dport, sport, SYN | ACK, sseq, seq + 1)
    seq, sseq = seq + 1, sseq + 1
    t += 0.02
    send(client, server, sport, dport, ACK, seq, sseq)
    chunk = b"\x17" * segment
    sent = 0
    while sent < size:
        n = min(segment, size - sent)
        send(client, server, sport, dport, PSH | ACK, seq, sseq, chunk[:n])
        seq += n
        sent += n
        t += 0.005
    send(client, server, sport, dport, FIN | ACK, seq, sseq)
    t += 0.02
    send(server, client, dport, sport, FIN | ACK, sseq, seq + 1)
    send(client, server, sport, dport, ACK, seq + 1, sseq + 1)
    return t
