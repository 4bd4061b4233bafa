"""Synthetic captures for the pcap and live benchmarks: TCP/HTTP, TLS and DNS sessions.

Built with ``struct`` from byte templates (scapy would take minutes for a million
packets). Sessions are interleaved, a few hundred open at once, so the flow table sees
realistic concurrency; addresses come from 198.18.0.0/15, the range RFC 2544 sets aside
for benchmarks. Checksums are left zero: neither ztsoc nor tshark verify them.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

ETH = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"


def _ip(src: int, dst: int, proto: int, payload_len: int) -> bytes:
    return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + payload_len, 0, 0x4000, 64, proto, 0, src, dst)


def tcp_frame(src: int, dst: int, sport: int, dport: int, flags: int, seq: int, ack: int, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
    return ETH + _ip(src, dst, 6, 20 + len(payload)) + tcp + payload


def udp_frame(src: int, dst: int, sport: int, dport: int, payload: bytes) -> bytes:
    return ETH + _ip(src, dst, 17, 8 + len(payload)) + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def dns_query(ident: int, name: str) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00" + struct.pack("!HH", 1, 1)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + q


def dns_response(ident: int, name: str, ip: int) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00" + struct.pack("!HH", 1, 1)
    ans = b"\xc0\x0c" + struct.pack("!HHIHI", 1, 1, 300, 4, ip)
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + q + ans


def client_hello(sni: str) -> bytes:
    ciphers = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
               0x009D, 0x002F, 0x0035]
    name = sni.encode()
    exts = [
        (0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
        (0x0017, b""), (0xFF01, b"\x00"),
        (0x000A, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018)),
        (0x000B, b"\x01\x00"), (0x0023, b""),
        (0x0010, b"\x00\x0c\x02h2\x08http/1.1"),
        (0x000D, struct.pack("!H", 8) + struct.pack("!HHHH", 0x0403, 0x0804, 0x0401, 0x0503)),
        (0x002B, b"\x04\x03\x04\x03\x03"),
        (0x0033, struct.pack("!HHH", 36, 0x001D, 32) + bytes(32)),
    ]
    ext = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in exts)
    body = (b"\x03\x03" + bytes(32) + b"\x20" + bytes(32) + struct.pack("!H", 2 * len(ciphers))
            + b"".join(struct.pack("!H", c) for c in ciphers) + b"\x01\x00" + struct.pack("!H", len(ext)) + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_hello() -> bytes:
    ext = struct.pack("!HHH", 0x002B, 2, 0x0304)
    body = b"\x03\x03" + bytes(32) + b"\x20" + bytes(32) + b"\x13\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def _session(kind: int, n: int, rng: random.Random) -> list[bytes]:
    client = 0xC6120000 | (n % 60000 + 1)
    server = 0xC6130000 | (n % 250 + 1)
    sport = 1024 + n % 60000
    if kind < 2:  # DNS
        name = f"host{n % 5000}.example.org"
        return [udp_frame(client, server, sport, 53, dns_query(n & 0xFFFF, name)),
                udp_frame(server, client, 53, sport, dns_response(n & 0xFFFF, name, 0xC6140000 | (n & 0xFFFF)))]
    dport = 80 if kind < 6 else 443
    pkts = [tcp_frame(client, server, sport, dport, 0x02, 1000, 0),
            tcp_frame(server, client, dport, sport, 0x12, 5000, 1001),
            tcp_frame(client, server, sport, dport, 0x10, 1001, 5001)]
    if dport == 80:
        req = (f"GET /item/{n}?q={n % 97} HTTP/1.1\r\nHost: www{n % 300}.example.org\r\n"
               f"User-Agent: bench/1.0\r\nAccept: */*\r\n\r\n").encode()
        pkts.append(tcp_frame(client, server, sport, dport, 0x18, 1001, 5001, req))
        pkts.append(tcp_frame(server, client, dport, sport, 0x18, 5001, 1001 + len(req),
                              b"HTTP/1.1 200 OK\r\nContent-Length: 2800\r\nContent-Type: text/html\r\n\r\n" + bytes(1300)))
    else:
        hello = client_hello(f"svc{n % 300}.example.org")
        pkts.append(tcp_frame(client, server, sport, dport, 0x18, 1001, 5001, hello))
        pkts.append(tcp_frame(server, client, dport, sport, 0x18, 5001, 1001 + len(hello), server_hello() + bytes(1200)))
    for _ in range(rng.randint(1, 5)):
        pkts.append(tcp_frame(server, client, dport, sport, 0x10, 6000, 2000, bytes(1400)))
        pkts.append(tcp_frame(client, server, sport, dport, 0x10, 2000, 7400))
    pkts += [tcp_frame(client, server, sport, dport, 0x11, 2000, 9000),
             tcp_frame(server, client, dport, sport, 0x11, 9000, 2001),
             tcp_frame(client, server, sport, dport, 0x10, 2001, 9001)]
    return pkts


def frames(packets: int, concurrency: int = 300, seed: int = 7) -> Iterator[bytes]:
    """``packets`` frames of interleaved sessions (kinds: 2/10 DNS, 4/10 HTTP, 4/10 TLS)."""
    rng = random.Random(seed)
    open_sessions: list[list[bytes]] = []
    n = 0
    made = 0
    while made < packets:
        while len(open_sessions) < concurrency:
            open_sessions.append(_session(n % 10, n, rng)[::-1])
            n += 1
        i = rng.randrange(len(open_sessions))
        sess = open_sessions[i]
        yield sess.pop()
        made += 1
        if not sess:
            open_sessions[i] = open_sessions[-1]
            open_sessions.pop()


def write_pcap(path: Path, packets: int, start: float = 1_700_000_000.0, gap_us: int = 100) -> Path:
    """A classic little-endian microsecond pcap of ``packets`` frames, one every ``gap_us``."""
    us = int(start * 1_000_000)
    with open(path, "wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        pack = struct.Struct("<IIII").pack
        for frame in frames(packets):
            fh.write(pack(us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
            fh.write(frame)
            us += gap_us
    return path
