"""DNS messages (RFC 1035) into ECS ``dns.*`` fields.

Hand-written rather than dpkt's ``DNS`` because the flow meter needs only the header,
the first question and the answer records, and a malformed message must give a reason
instead of an exception from deep inside a library. Compression pointers are followed
with a hop limit, so a pointer loop is a "bad name" problem, not a hang.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

QTYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
    35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA",
}
CLASSES: dict[int, str] = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}
OPCODES: dict[int, str] = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
#: header flag bit -> ECS dns.header_flags value
FLAGS: tuple[tuple[int, str], ...] = ((0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"),
                                      (0x0020, "AD"), (0x0010, "CD"))
DNS_PORTS = frozenset((53, 5353, 5355))
#: type, class, TTL and data length of a resource record, in one unpack
_RR = struct.Struct("!HHIH").unpack_from
_FLAG_NAMES: dict[int, tuple[str, ...]] = {}
MAX_ANSWERS = 50


class DnsError(ValueError):
    """A message that cannot be read; the text is the problem's reason."""


@dataclass(slots=True)
class DnsMessage:
    id: int
    response: bool
    opcode: int
    rcode: int
    flags: list[str]
    qname: str | None = None
    qtype: int | None = None
    qclass: int | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)


def _flags(flags: int) -> list[str]:
    """The header flags' names (a fresh list: it goes into the event), per bit pattern computed once."""
    bits = flags & 0x07B0
    names = _FLAG_NAMES.get(bits)
    if names is None:
        names = _FLAG_NAMES[bits] = tuple(name for bit, name in FLAGS if flags & bit)
    return list(names)


def _name(data: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed name at ``pos``; returns it and the position after it."""
    labels: list[str] = []
    end = -1
    hops = 0
    n = len(data)
    while True:
        if pos >= n:
            raise DnsError("truncated name")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise DnsError("truncated name")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            hops += 1
            if hops > 30:
                raise DnsError("compression loop")
            continue
        if length & 0xC0:
            raise DnsError("bad label")
        label = data[pos + 1:pos + 1 + length]
        if len(label) < length:
            raise DnsError("truncated name")
        labels.append(label.decode("ascii", "backslashreplace"))
        pos += 1 + length
    return ".".join(labels) or ".", (end if end >= 0 else pos)


def _rdata(rtype: int, data: bytes, pos: int, rdlen: int) -> str:
    raw = data[pos:pos + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    if rtype in (2, 5, 12, 39):
        return _name(data, pos)[0]
    if rtype == 15 and rdlen > 2:
        return f"{int.from_bytes(raw[:2], 'big')} {_name(data, pos + 2)[0]}"
    if rtype == 16:
        parts, i = [], 0
        while i < len(raw):
            ln = raw[i]
            parts.append(raw[i + 1:i + 1 + ln].decode("utf-8", "backslashreplace"))
            i += 1 + ln
        return " ".join(parts)
    if rtype == 33 and rdlen > 6:
        prio, weight, port = int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:6], "big")
        return f"{prio} {weight} {port} {_name(data, pos + 6)[0]}"
    if rtype == 6:
        mname, p = _name(data, pos)
        rname, _ = _name(data, p)
        return f"{mname} {rname}"
    return raw.hex()


def parse_dns(data: bytes) -> DnsMessage:
    """Header, first question and answer section of one message (UDP payload, no TCP length)."""
    if len(data) < 12:
        raise DnsError("truncated DNS header")
    ident = (data[0] << 8) | data[1]
    flags = (data[2] << 8) | data[3]
    qd, an = (data[4] << 8) | data[5], (data[6] << 8) | data[7]
    msg = DnsMessage(id=ident, response=bool(flags & 0x8000), opcode=(flags >> 11) & 15, rcode=flags & 15,
                     flags=_flags(flags))
    if msg.opcode not in OPCODES:
        raise DnsError("not DNS")
    pos = 12
    for i in range(qd):
        name, pos = _name(data, pos)
        if pos + 4 > len(data):
            raise DnsError("truncated question")
        if i == 0:
            msg.qname = name
            msg.qtype = (data[pos] << 8) | data[pos + 1]
            msg.qclass = (data[pos + 2] << 8) | data[pos + 3]
        pos += 4
    for _ in range(min(an, MAX_ANSWERS)):
        name, pos = _name(data, pos)
        if pos + 10 > len(data):
            raise DnsError("truncated answer")
        rtype, rclass, ttl, rdlen = _RR(data, pos)
        pos += 10
        if pos + rdlen > len(data):
            raise DnsError("truncated answer")
        msg.answers.append({"name": name, "type": QTYPES.get(rtype, str(rtype)),
                            "class": CLASSES.get(rclass, str(rclass)), "ttl": ttl,
                            "data": _rdata(rtype, data, pos, rdlen)})
        pos += rdlen
    return msg


def dns_fields(query: DnsMessage | None, response: DnsMessage | None) -> dict[str, Any]:
    """ECS fields of one transaction (a query, its response, or both)."""
    main = response or query
    assert main is not None
    doc: dict[str, Any] = {
        "dns.id": str(main.id),
        "dns.type": "answer" if response is not None else "query",
        "dns.op_code": OPCODES.get(main.opcode, str(main.opcode)),
        "dns.header_flags": main.flags,
    }
    q = query if query is not None and query.qname is not None else main
    if q.qname is not None:
        doc["dns.question.name"] = q.qname
        doc["dns.question.type"] = QTYPES.get(q.qtype or 0, str(q.qtype))
        doc["dns.question.class"] = CLASSES.get(q.qclass or 0, str(q.qclass))
    if response is not None:
        doc["dns.response_code"] = RCODES.get(response.rcode, str(response.rcode))
        if response.answers:
            doc["dns.answers"] = response.answers
            ips = [a["data"] for a in response.answers if a["type"] in ("A", "AAAA")]
            if ips:
                doc["dns.resolved_ip"] = ips
    return doc
