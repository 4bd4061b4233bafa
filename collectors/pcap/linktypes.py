"""Link layers: find where the IP packet starts in a frame, for each link type.

``LINKTYPES`` is the registry (link type number from the tcpdump.org list -> decoder).
A decoder takes the frame and returns ``(ip_version, offset, vlan)``: ip_version is 4,
6, or 0 for a frame that carries no IP (ARP, LLC, STP...: counted, not an error); vlan
is the outermost 802.1Q id or -1. ``None`` means the frame is too short to say.

Hand-written with byte indexing because it runs once per packet on the hot path; the
header layouts are those of the tcpdump.org link-type pages.
"""

from __future__ import annotations

from collections.abc import Callable

L3 = tuple[int, int, int]
Decoder = Callable[[bytes], L3 | None]

#: ethertype -> ip version
ETHERTYPE_IP: dict[int, int] = {0x0800: 4, 0x86DD: 6}
VLAN_TAGS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MPLS = frozenset((0x8847, 0x8848))
PPPOE_SESSION = 0x8864
ETAG = 0x893F
NSH = 0x894F


#: encapsulations inside one frame followed at most (NSH -> Ethernet -> NSH...)
MAX_ENCAPSULATIONS = 8

#: PPP protocol -> ip version
PPP_IP: dict[int, int] = {0x0021: 4, 0x0057: 6}


def _after_ethertype(data: bytes, ethertype: int, off: int, vlan: int) -> L3 | None:
    """Walk VLAN tags, MPLS labels, NSH and PPPoE from an ethertype at ``off``.

    A loop, not recursion: an NSH header carrying Ethernet carrying NSH... is followed
    :data:`MAX_ENCAPSULATIONS` deep at most (deeper is not IP traffic anyone sends; the
    frame counts as non-IP), so a crafted frame cannot exhaust the stack.
    """
    n = len(data)
    for _ in range(MAX_ENCAPSULATIONS):
        while ethertype in VLAN_TAGS or ethertype == ETAG:
            if ethertype == ETAG:  # 802.1BR E-Tag: 6 bytes, then the next ethertype
                if off + 8 > n:
                    return None
                ethertype = (data[off + 6] << 8) | data[off + 7]
                off += 8
                continue
            if off + 4 > n:
                return None
            if vlan < 0:
                vlan = ((data[off] << 8) | data[off + 1]) & 0x0FFF
            ethertype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        version = ETHERTYPE_IP.get(ethertype)
        if version is not None:
            return version, off, vlan
        if ethertype in MPLS:
            while off + 4 <= n:
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off >= n:
                return None
            nibble = data[off] >> 4
            return (nibble if nibble in (4, 6) else 0), off, vlan
        if ethertype == NSH:  # Network Service Header: length in 4-byte words, then IPv4 / IPv6 / Ethernet
            if off + 8 > n:
                return None
            length, next_proto = (data[off + 1] & 0x3F) * 4, data[off + 3]
            if length < 8:  # shorter than NSH's own base and service path headers
                return 0, off, vlan
            if next_proto == 3:  # Ethernet: its ethertype, then round again
                if off + length + 14 > n:
                    return None
                ethertype = (data[off + length + 12] << 8) | data[off + length + 13]
                off += length + 14
                continue
            return {1: 4, 2: 6}.get(next_proto, 0), off + length, vlan
        if ethertype == PPPOE_SESSION:
            if off + 8 > n:
                return None
            if data[off + 6] & 1:  # PPP protocol field compression: one byte (0x21 IPv4, 0x57 IPv6)
                return PPP_IP.get(data[off + 6], 0), off + 7, vlan
            return PPP_IP.get((data[off + 6] << 8) | data[off + 7], 0), off + 8, vlan
        return 0, off, vlan
    return 0, off, vlan


def ethernet(data: bytes) -> L3 | None:
    if len(data) < 14:
        return None
    ethertype = (data[12] << 8) | data[13]
    if ethertype == 0x0800:
        return 4, 14, -1
    return _after_ethertype(data, ethertype, 14, -1)


def linux_sll(data: bytes) -> L3 | None:
    """Linux cooked capture v1: 16 bytes, protocol (an ethertype) last."""
    if len(data) < 16:
        return None
    return _after_ethertype(data, (data[14] << 8) | data[15], 16, -1)


def linux_sll2(data: bytes) -> L3 | None:
    """Linux cooked capture v2: 20 bytes, protocol (an ethertype) first."""
    if len(data) < 20:
        return None
    return _after_ethertype(data, (data[0] << 8) | data[1], 20, -1)


def raw_ip(data: bytes) -> L3 | None:
    """Raw IP: the version nibble says which."""
    if not data:
        return None
    nibble = data[0] >> 4
    return (nibble if nibble in (4, 6) else 0), 0, -1


def ipv4(data: bytes) -> L3 | None:
    return (4, 0, -1) if data else None


def ipv6(data: bytes) -> L3 | None:
    return (6, 0, -1) if data else None


#: BSD address families seen in loopback captures (IPv6 differs per OS)
_AF_IP: dict[int, int] = {2: 4, 24: 6, 28: 6, 30: 6}


def null_loopback(data: bytes) -> L3 | None:
    """DLT_NULL: a 4-byte address family in the CAPTURING host's byte order; try both."""
    if len(data) < 4:
        return None
    family = int.from_bytes(data[:4], "little")
    if family not in _AF_IP:
        family = int.from_bytes(data[:4], "big")
    return _AF_IP.get(family, 0), 4, -1


def openbsd_loop(data: bytes) -> L3 | None:
    """DLT_LOOP: the same family, always in network byte order."""
    if len(data) < 4:
        return None
    return _AF_IP.get(int.from_bytes(data[:4], "big"), 0), 4, -1


def ppp(data: bytes) -> L3 | None:
    """PPP (9) and PPP-in-HDLC (50): optional ff 03 address/control, then the protocol (1 or 2 bytes)."""
    off = 2 if data[:2] == b"\xff\x03" else 0
    if len(data) < off + 2:
        return None
    if data[off] & 1:
        return PPP_IP.get(data[off], 0), off + 1, -1
    return PPP_IP.get((data[off] << 8) | data[off + 1], 0), off + 2, -1


def cisco_hdlc(data: bytes) -> L3 | None:
    """Cisco HDLC (104): address, control, then an ethertype (0x0800, 0x86DD; 0x8035 SLARP is not IP)."""
    if len(data) < 4:
        return None
    return _after_ethertype(data, (data[2] << 8) | data[3], 4, -1)


def nflog(data: bytes) -> L3 | None:
    """Linux NFLOG: a 4-byte header (family first) then TLVs; type 9 holds the packet."""
    if len(data) < 4:
        return None
    version = {2: 4, 10: 6}.get(data[0], 0)
    off = 4
    n = len(data)
    while off + 4 <= n:
        length = int.from_bytes(data[off:off + 2], "little")
        tlv_type = int.from_bytes(data[off + 2:off + 4], "little") & 0x7FFF
        if length < 4:
            return None
        if tlv_type == 9:
            return version, off + 4, -1
        off += (length + 3) & ~3
    return 0, n, -1


LINKTYPES: dict[int, Decoder] = {
    0: null_loopback,
    1: ethernet,
    9: ppp,
    12: raw_ip,  # DLT_RAW on OpenBSD
    14: raw_ip,  # DLT_RAW on BSD/OS
    50: ppp,
    101: raw_ip,  # LINKTYPE_RAW
    104: cisco_hdlc,
    108: openbsd_loop,
    113: linux_sll,
    228: ipv4,
    229: ipv6,
    239: nflog,
    276: linux_sll2,
}

LINKTYPE_NAMES: dict[int, str] = {
    0: "null", 1: "ethernet", 9: "ppp", 12: "raw", 14: "raw", 50: "ppp-hdlc", 101: "raw", 104: "c-hdlc", 108: "loop",
    113: "linux-sll", 228: "ipv4", 229: "ipv6", 239: "nflog", 276: "linux-sll2",
}
