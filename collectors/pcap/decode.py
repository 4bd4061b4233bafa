"""IPv4 / IPv6 and transport headers: the 5-tuple, TCP flags and where the payload lies.

Hand-written with byte indexing for speed (it runs on every packet). :func:`parse_ip`
returns a plain tuple (building a NamedTuple per packet costs more than the parse):

``(src, dst, proto, sport, dport, tcp_flags, payload_start, payload_end, frag, tcp_seq)``

- ``src``/``dst``: packed addresses (4 or 16 bytes), compared and hashed as bytes;
- ``sport``/``dport``: ports for TCP, UDP and SCTP; for ICMP and ICMPv6 the Community ID
  "port equivalents" (type, and the paired reply type or the code), so a request and
  its reply fall into the same bidirectional flow;
- ``payload_start``/``payload_end``: the transport payload inside the frame (bounded by
  the IP length, so Ethernet padding is not payload; shorter when the capture's snaplen
  cut the packet);
- ``frag``: ``None`` for an unfragmented packet, else ``(ip_id, first)``; a later
  fragment carries no transport header, so its ports are 0 and its payload empty;
- ``tcp_seq``: the TCP sequence number (0 for other transports), for the decoders that
  follow a TCP byte stream (:mod:`tcpstream`).

A packet whose IP or transport header cannot be read gives a ``str``: the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from collectors.pcap.community_id import ICMP4_PAIRS, ICMP6_PAIRS

Parsed = tuple[bytes, bytes, int, int, int, int, int, int, "tuple[int, bool] | None", int]

TCP, UDP, ICMP, ICMP6, SCTP = 6, 17, 1, 58, 132
#: IPv6 extension headers walked to find the transport (fragment, 44, is handled apart)
IPV6_EXTENSIONS = frozenset((0, 43, 60, 135, 139, 140))
AH = 51

TRANSPORT_NAMES: dict[int, str] = {
    1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp",
    89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}


def transport_name(proto: int) -> str:
    return TRANSPORT_NAMES.get(proto, str(proto))


def parse_ip(data: bytes, version: int, off: int) -> Parsed | str:
    if version == 4:
        return parse_ipv4(data, off)
    return parse_ipv6(data, off)


def parse_ipv4(data: bytes, off: int) -> Parsed | str:
    n = len(data)
    if off + 20 > n:
        return "truncated IPv4 header"
    vihl = data[off]
    ihl = (vihl & 15) << 2
    if vihl >> 4 != 4 or ihl < 20:
        return "bad IPv4 header"
    total = (data[off + 2] << 8) | data[off + 3]
    end = off + total
    if end > n:
        end = n  # cut by the snaplen
    elif total < ihl:
        if total == 0:  # TSO / offloaded packets captured before segmentation
            end = n
        else:
            return "bad IPv4 length"
    proto = data[off + 9]
    src = data[off + 12:off + 16]
    dst = data[off + 16:off + 20]
    fragword = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
    frag = None
    if fragword:
        first = not (fragword & 0x1FFF)
        frag = ((data[off + 4] << 8) | data[off + 5], first)
        if not first:
            return src, dst, proto, 0, 0, 0, end, end, frag, 0
    return _transport(data, off + ihl, end, src, dst, proto, frag, ICMP4_PAIRS)


def parse_ipv6(data: bytes, off: int) -> Parsed | str:
    n = len(data)
    if off + 40 > n:
        return "truncated IPv6 header"
    if data[off] >> 4 != 6:
        return "bad IPv6 header"
    plen = (data[off + 4] << 8) | data[off + 5]
    end = off + 40 + plen
    if end > n or plen == 0:  # cut by the snaplen, or a jumbogram
        end = n
    proto = data[off + 6]
    src = data[off + 8:off + 24]
    dst = data[off + 24:off + 40]
    pos = off + 40
    frag = None
    while True:
        if proto in IPV6_EXTENSIONS:
            if pos + 2 > end:
                return "truncated IPv6 extension header"
            proto, pos = data[pos], pos + ((data[pos + 1] + 1) << 3)
        elif proto == 44:
            if pos + 8 > end:
                return "truncated IPv6 fragment header"
            offset_word = ((data[pos + 2] << 8) | data[pos + 3]) >> 3
            ident = int.from_bytes(data[pos + 4:pos + 8], "big")
            first = offset_word == 0
            frag = (ident, first)
            proto, pos = data[pos], pos + 8
            if not first:
                return src, dst, proto, 0, 0, 0, end, end, frag, 0
        elif proto == AH:
            if pos + 2 > end:
                return "truncated IPv6 extension header"
            proto, pos = data[pos], pos + ((data[pos + 1] + 2) << 2)
        else:
            break
    if pos > end:
        return "truncated IPv6 extension header"
    return _transport(data, pos, end, src, dst, proto, frag, ICMP6_PAIRS)


def _transport(data: bytes, pos: int, end: int, src: bytes, dst: bytes, proto: int,
               frag: tuple[int, bool] | None, pairs: dict[int, int]) -> Parsed | str:
    if proto == TCP:
        if pos + 14 > end:
            return "truncated TCP header"
        doff = (data[pos + 12] >> 4) << 2
        if doff < 20:
            return "bad TCP header length"
        start = pos + doff
        if start > end:
            start = end
        return (src, dst, proto, (data[pos] << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3],
                data[pos + 13], start, end, frag, int.from_bytes(data[pos + 4:pos + 8], "big"))
    if proto in (UDP, SCTP):
        hdr = 8 if proto == UDP else 12
        if pos + 4 > end:
            return "truncated UDP header" if proto == UDP else "truncated SCTP header"
        start = pos + hdr if pos + hdr <= end else end
        return (src, dst, proto, (data[pos] << 8) | data[pos + 1], (data[pos + 2] << 8) | data[pos + 3],
                0, start, end, frag, 0)
    if proto in (ICMP, ICMP6):
        if pos + 2 > end:
            return "truncated ICMP header"
        mtype = data[pos]
        reply = pairs.get(mtype)
        return src, dst, proto, mtype, data[pos + 1] if reply is None else reply, 0, pos, end, frag, 0
    return src, dst, proto, 0, 0, 0, pos, end, frag, 0


#: (data, ip version, offset) -> parsed or reason; a registry so tests can name each
PARSERS: dict[int, Callable[[bytes, int], Parsed | str]] = {4: parse_ipv4, 6: parse_ipv6}


# -- tunnels ------------------------------------------------------------------------------------
# What a tunnel carries is metered as a flow of its own (the outer flow stays too), because
# that is the conversation an analyst (and tshark) means. Each decoder returns the inner
# packet as (link type, bytes) or None; the registries key them by IP protocol and UDP port.
RAW, ETHERNET, PPP_LINK = 101, 1, 9
GRE_PAYLOADS: dict[int, tuple[int, int]] = {  # GRE protocol -> (link type, bytes to skip after GRE)
    0x0800: (RAW, 0), 0x86DD: (RAW, 0), 0x6558: (ETHERNET, 0), 0x88BE: (ETHERNET, 8), 0x880B: (PPP_LINK, 0),
}


def gre_inner(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    if pe - ps < 4:
        return None
    flags, ptype = data[ps], (data[ps + 2] << 8) | data[ps + 3]
    version = data[ps + 1] & 7
    off = ps + 4 + 4 * (bool(flags & 0x80) or bool(flags & 0x40))  # checksum / routing present
    off += 4 * bool(flags & 0x20) + 4 * bool(flags & 0x10)  # key, sequence
    if version == 1:  # PPTP's enhanced GRE: key always, acknowledgment when A is set
        off = ps + 8 + 4 * bool(flags & 0x10) + 4 * bool(data[ps + 1] & 0x80)
    if ptype == 0x22EB:  # ERSPAN type III: 12 bytes, 8 more with the optional subheader
        if off + 12 > pe:
            return None
        return ETHERNET, data[off + 12 + (8 if data[off + 11] & 1 else 0):pe]
    kind = GRE_PAYLOADS.get(ptype)
    if kind is None or off + kind[1] >= pe:
        return None
    return kind[0], data[off + kind[1]:pe]


def ip_in_ip(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    return (RAW, data[ps:pe]) if pe > ps else None


def vxlan(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    if pe - ps < 8 + 14 or not data[ps] & 0x08:  # the I flag: a valid VNI
        return None
    return ETHERNET, data[ps + 8:pe]


def geneve(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    if pe - ps < 8:
        return None
    off = ps + 8 + (data[ps] & 0x3F) * 4
    ptype = (data[ps + 2] << 8) | data[ps + 3]
    kind = {0x6558: ETHERNET, 0x0800: RAW, 0x86DD: RAW}.get(ptype)
    return (kind, data[off:pe]) if kind is not None and off < pe else None


def teredo(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    off = ps
    if data[off:off + 2] == b"\x00\x01" and off + 4 <= pe:  # authentication indicator
        off += 13 + data[off + 2] + data[off + 3]
    if data[off:off + 2] == b"\x00\x00":  # origin indication
        off += 8
    return (RAW, data[off:pe]) if off + 40 <= pe and data[off] >> 4 == 6 else None


def gtp_u(data: bytes, ps: int, pe: int) -> tuple[int, bytes] | None:
    if pe - ps < 8 or data[ps] >> 5 != 1 or data[ps + 1] != 0xFF:  # version 1, G-PDU
        return None
    off = ps + 8
    if data[ps] & 0x07:
        off += 4
        if off > pe:
            return None
        next_ext = data[off - 1]
        while next_ext and off < pe:
            if not data[off]:  # an extension header of length 0 would be read forever
                return None
            off += data[off] * 4
            next_ext = data[off - 1] if off <= pe else 0
    return (RAW, data[off:pe]) if off < pe and data[off] >> 4 in (4, 6) else None


TunnelDecoder = Callable[[bytes, int, int], "tuple[int, bytes] | None"]
IP_TUNNELS: dict[int, TunnelDecoder] = {4: ip_in_ip, 41: ip_in_ip, 47: gre_inner}
UDP_TUNNELS: dict[int, TunnelDecoder] = {4789: vxlan, 6081: geneve, 3544: teredo, 2152: gtp_u}
