"""Community ID v1 (https://github.com/corelight/community-id-spec) of a flow.

Hand-written (thirty lines) rather than depending on the ``communityid`` package at run
time: that package validates and converts every argument, which costs more than the hash
itself, and it is used here only as the test oracle. Addresses are the packed bytes
(4 or 16), ports host-order ints; for ICMP and ICMPv6 the "ports" are the message type
and code, mapped the way Zeek pairs requests with replies.
"""

from __future__ import annotations

import hashlib
import struct
from binascii import b2a_base64

TCP, UDP, ICMP, ICMP6, SCTP = 6, 17, 1, 58, 132
_PORTED = frozenset((TCP, UDP, SCTP, ICMP, ICMP6))
_SEED = struct.Struct("!H").pack
_PORTS = struct.Struct("!HH").pack
_sha1 = hashlib.sha1

#: request <-> reply types: a two-way ICMP message is ordered like ports are
ICMP4_PAIRS: dict[int, int] = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS: dict[int, int] = {128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136, 136: 135,
                               139: 140, 140: 139, 144: 145, 145: 144}


def community_id(saddr: bytes, daddr: bytes, proto: int, sport: int = 0, dport: int = 0, seed: int = 0) -> str:
    """``1:<base64 sha1>`` of the canonically ordered tuple."""
    one_way = False
    if proto in (ICMP, ICMP6):
        pairs = ICMP4_PAIRS if proto == ICMP else ICMP6_PAIRS
        reply = pairs.get(sport)
        if reply is None:
            one_way = True
        else:
            dport = reply
    if not one_way and (saddr > daddr or (saddr == daddr and sport > dport)):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    data = _SEED(seed) + saddr + daddr + bytes((proto, 0))
    if proto in _PORTED:
        data += _PORTS(sport, dport)
    return "1:" + b2a_base64(_sha1(data).digest(), newline=False).decode("ascii")
