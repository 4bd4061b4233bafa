"""ICMP and ICMPv6 messages into ``network.icmp`` events.

Echo requests and replies are summarised by their flow (``network.flow`` with
``network.transport: icmp``); every other message (unreachable, time exceeded,
redirect, neighbour discovery...) says something on its own and becomes an event, with
the 5-tuple of the packet it quotes when it is an error. Hand-written: two header bytes
and the quoted IP header are all that is read.
"""

from __future__ import annotations

import socket
from typing import Any

ICMP4_NAMES: dict[int, str] = {
    0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect", 8: "echo-request",
    9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
    13: "timestamp", 14: "timestamp-reply", 17: "address-mask-request", 18: "address-mask-reply",
}
ICMP6_NAMES: dict[int, str] = {
    1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
    128: "echo-request", 129: "echo-reply", 130: "multicast-listener-query", 131: "multicast-listener-report",
    132: "multicast-listener-done", 133: "router-solicitation", 134: "router-advertisement",
    135: "neighbor-solicitation", 136: "neighbor-advertisement", 137: "redirect", 143: "multicast-listener-report-v2",
}
ECHO = {1: frozenset((0, 8)), 58: frozenset((128, 129))}
#: error messages quote the offending packet after an 8-byte ICMP header
ERRORS = {1: frozenset((3, 4, 5, 11, 12)), 58: frozenset((1, 2, 3, 4))}


def is_echo(proto: int, mtype: int) -> bool:
    return mtype in ECHO[proto]


def icmp_fields(proto: int, message: bytes) -> dict[str, Any]:
    """Fields of one ICMP message (``message`` starts at the ICMP header)."""
    mtype, code = message[0], message[1] if len(message) > 1 else 0
    names = ICMP4_NAMES if proto == 1 else ICMP6_NAMES
    doc: dict[str, Any] = {"ztsoc.icmp.type": mtype, "ztsoc.icmp.code": code,
                           "event.action": names.get(mtype, f"type-{mtype}")}
    if mtype in ERRORS[proto]:
        quoted = message[8:]
        if len(quoted) >= 20 and quoted[0] >> 4 == 4:
            ihl = (quoted[0] & 15) * 4
            doc["ztsoc.icmp.quoted.transport"] = quoted[9]
            doc["ztsoc.icmp.quoted.destination.ip"] = socket.inet_ntop(socket.AF_INET, quoted[16:20])
            if quoted[9] in (6, 17) and len(quoted) >= ihl + 4:
                doc["ztsoc.icmp.quoted.destination.port"] = (quoted[ihl + 2] << 8) | quoted[ihl + 3]
        elif len(quoted) >= 40 and quoted[0] >> 4 == 6:
            doc["ztsoc.icmp.quoted.transport"] = quoted[6]
            doc["ztsoc.icmp.quoted.destination.ip"] = socket.inet_ntop(socket.AF_INET6, quoted[24:40])
            if quoted[6] in (6, 17) and len(quoted) >= 44:
                doc["ztsoc.icmp.quoted.destination.port"] = (quoted[42] << 8) | quoted[43]
    return doc
