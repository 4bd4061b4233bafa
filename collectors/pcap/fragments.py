"""IPv4 and IPv6 fragment reassembly for the flow meter, with bounded memory and time.

A fragmented datagram is ONE packet of its flow, as tshark, Zeek and Suricata count it: the
meter hands every fragment to :meth:`Reassembler.add`, which holds the pieces and, once a
datagram is whole, returns it as a raw IP packet (fragment fields cleared) that the meter
meters like any other; the fragments themselves are not metered. That is also the only way
to read the ports of a datagram whose first fragment is too short to hold its transport
header (the "tiny fragment" evasion of RFC 1858).

Hand-written: the kept libraries reassemble only whole packet lists held in memory (scapy's
``defragment``) or inside their own engines (tshark, Zeek, Suricata), not a stream of raw
frames under a memory bound, which the collector needs on live and hostile traffic.

Policy (documented, because reassemblers that disagree are an evasion technique):

- **Key**: IP version, source, destination, identification (and the protocol for IPv4, as
  RFC 791 says), plus the VLAN and tunnel depth the fragment came in.
- **Overlaps: first wins.** Bytes already held are kept; a later fragment only fills the
  holes (Suricata's and Windows' "first" policy; tshark also keeps the earlier data). An
  overlap is reported as a problem: ``overlapping IP fragments`` when the data differs,
  ``duplicate IP fragment`` when it is the same (a retransmission; still worth seeing).
- **Datagram end**: the first fragment without "more fragments" fixes the length; a later
  one that says otherwise, or data past that end, is ``conflicting IP fragment end``.
- **Tiny first fragment**: a first fragment shorter than its transport header (20 bytes
  of TCP, 8 of UDP, 4 of ICMP) is reported (``tiny first IP fragment``); the datagram is
  still reassembled and metered.
- **Bounds**: at most ``max_fragments`` fragments per datagram (``too many IP fragments``:
  the datagram is dropped), at most 65,535 bytes of IP datagram (``IP fragment beyond 65,535
  bytes``, dropped: the ping of death), at most ``max_datagrams`` datagrams and
  ``max_bytes`` bytes held (the oldest is dropped: ``IP fragment table full``), and a datagram
  not complete within ``timeout`` seconds of capture time is dropped
  (``incomplete fragmented datagram``, also at the end of the capture).
- A fragment cut by the capture's snaplen counts for the bytes its header declares: the
  missing bytes read as zeros, so a short snaplen does not lose datagrams.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

NS = 1_000_000_000
#: IPv6 extension headers before the fragment header (hop-by-hop, routing, destination, mobility, HIP, shim6)
_IPV6_EXTENSIONS = frozenset((0, 43, 60, 135, 139, 140))
_AH, _FRAGMENT = 51, 44
#: the transport header a first fragment must hold (else it is a tiny fragment)
_TRANSPORT_HEADER = {6: 20, 17: 8, 1: 4, 58: 4, 132: 12}
MAX_IP = 65_535

Key = tuple[int, bytes, bytes, int, int, int, int]
Report = Callable[[int, str, str], None]


@dataclass(slots=True)
class Limits:
    timeout: float = 30.0  # Linux's ipfrag_time
    max_fragments: int = 256  # per datagram (a 64 KiB datagram over a 1,280-byte MTU needs 52)
    max_datagrams: int = 8192  # held at once
    max_bytes: int = 32 << 20  # held at once


@dataclass(slots=True)
class Fragment:
    """One fragment, as read from a packet."""

    version: int
    src: bytes
    dst: bytes
    ident: int
    proto: int  # the protocol of the datagram's payload
    offset: int  # of this fragment's data in the datagram's payload, in bytes
    more: bool
    length: int  # bytes of data the header declares
    data: bytes  # the bytes captured (shorter when the snaplen cut the packet)
    header: bytes  # the unfragmentable part: the IPv4 header, or the IPv6 header and extensions before 44
    next_header_at: int  # IPv6: where in ``header`` the byte naming the fragment header lies; IPv4: -1


#: IPv6 next headers after which a fragment header may come
_IPV6_MAYBE = _IPV6_EXTENSIONS | {_AH, _FRAGMENT}


def maybe_fragment(data: bytes, version: int, off: int) -> bool:
    """A cheap look (one or two bytes) before :func:`read_fragment`: could this be a fragment?"""
    if version == 4:
        return len(data) >= off + 8 and bool(data[off + 6] & 0x3F or data[off + 7])
    return len(data) > off + 6 and data[off + 6] in _IPV6_MAYBE


def read_fragment(data: bytes, version: int, off: int) -> Fragment | str | None:
    """The fragment in the IP packet at ``off``; None when it is not a fragment; a reason when unreadable."""
    n = len(data)
    if version == 4:
        if off + 20 > n:
            return None  # parse_ipv4 reports it
        fragword = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF
        if not fragword:
            return None
        ihl = (data[off] & 15) << 2
        total = (data[off + 2] << 8) | data[off + 3]
        if data[off] >> 4 != 4 or ihl < 20 or off + ihl > n or 0 < total < ihl:
            return "bad IPv4 header"
        if total == 0:  # as parse_ipv4: an offloaded packet captured before segmentation
            total = n - off
        end = min(off + total, n)
        return Fragment(4, data[off + 12:off + 16], data[off + 16:off + 20], (data[off + 4] << 8) | data[off + 5],
                        data[off + 9], (fragword & 0x1FFF) << 3, bool(fragword & 0x2000), total - ihl,
                        data[off + ihl:end], data[off:off + ihl], -1)
    if off + 40 > n:
        return None
    proto, pos, at = data[off + 6], off + 40, off + 6
    plen = (data[off + 4] << 8) | data[off + 5]
    end = off + 40 + plen
    while proto in _IPV6_EXTENSIONS or proto == _AH:
        if pos + 2 > n:
            return None
        at = pos
        proto, pos = data[pos], pos + (((data[pos + 1] + 2) << 2) if proto == _AH else ((data[pos + 1] + 1) << 3))
    if proto != _FRAGMENT:
        return None
    if pos + 8 > n or pos + 8 > end:
        return "truncated IPv6 fragment header"
    word = (data[pos + 2] << 8) | data[pos + 3]
    return Fragment(6, data[off + 8:off + 24], data[off + 24:off + 40], int.from_bytes(data[pos + 4:pos + 8], "big"),
                    data[pos], word & 0xFFF8, bool(word & 1), end - pos - 8, data[pos + 8:min(end, n)],
                    data[off:pos], at - off)


class _Datagram:
    __slots__ = ("first_index", "frames", "header", "held", "last", "next_header_at", "pieces", "proto", "started",
                 "total", "wire")

    def __init__(self, index: int, ts: int, proto: int) -> None:
        self.first_index = index
        self.started = self.last = ts
        self.proto = proto
        self.pieces: list[tuple[int, int, bytes]] = []  # (start, end, data), sorted, never overlapping
        self.held = 0  # bytes of data covered
        self.total = -1  # payload length, once the last fragment is seen
        self.header = b""
        self.next_header_at = -1
        self.frames = 0
        self.wire = 0


class Reassembler:
    """Holds fragments until their datagram is whole; see the module docstring for the policy."""

    def __init__(self, report: Report, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.report = report
        self.pending: dict[Key, _Datagram] = {}
        self.bytes_held = 0
        self.datagrams = 0  # reassembled
        self._timeout = int(self.limits.timeout * NS)

    def add(self, index: int, ts: int, frag: Fragment, wirelen: int, vlan: int = -1,
            layer: int = 0) -> tuple[bytes, int] | None:
        """One fragment; ``(datagram, wire bytes of all its fragments)`` when it completes one."""
        key: Key = (frag.version, frag.src, frag.dst, frag.ident, frag.proto if frag.version == 4 else -1, vlan, layer)
        d = self.pending.get(key)
        if d is not None and ts - d.started > self._timeout:
            self._drop(key, index, "incomplete fragmented datagram", "timed out")
            d = None
        if d is None:
            if frag.offset == 0 and not frag.more:  # an atomic fragment (IPv6, RFC 6946): whole already
                return self._build_one(frag), wirelen
            d = self.pending[key] = _Datagram(index, ts, frag.proto)
        d.frames += 1
        d.wire += wirelen
        d.last = ts
        start, end = frag.offset, frag.offset + frag.length
        if end + (len(frag.header) if frag.version == 4 else 0) > MAX_IP:  # IPv4: total length; IPv6: payload
            self._drop(key, index, "IP fragment beyond 65,535 bytes", f"offset {start}, {frag.length} bytes")
            return None
        if d.frames > self.limits.max_fragments:
            self._drop(key, index, "too many IP fragments", f"more than {self.limits.max_fragments}")
            return None
        if not frag.more:
            if d.total >= 0 and d.total != end:
                self.report(index, "conflicting IP fragment end", f"ends at {end}, earlier one at {d.total}")
            elif d.total < 0:
                if d.pieces and d.pieces[-1][1] > end:
                    self.report(index, "conflicting IP fragment end", f"ends at {end}, data held up to {d.pieces[-1][1]}")
                else:
                    d.total = end
        elif d.total >= 0 and end > d.total:
            self.report(index, "conflicting IP fragment end", f"data up to {end} past the end at {d.total}")
        if start == 0 and not d.header:
            d.header, d.next_header_at = frag.header, frag.next_header_at
            need = _TRANSPORT_HEADER.get(frag.proto, 0)
            if frag.more and frag.length < need:
                self.report(index, "tiny first IP fragment", f"{frag.length} bytes, less than the {need}-byte header")
        self._insert(d, index, start, end, frag.data)
        if d.total >= 0 and d.held >= d.total and d.header:
            del self.pending[key]
            self.bytes_held -= d.held
            self.datagrams += 1
            return self._build(frag.version, d), d.wire
        self._bound(index)
        return None

    def _insert(self, d: _Datagram, index: int, start: int, end: int, data: bytes) -> None:
        """First wins: only the parts of [start, end) no piece covers yet are kept."""
        if end <= start:
            return
        kept: list[tuple[int, int, bytes]] = []
        pos = start
        overlap = differs = False
        for ps, pe, pdata in d.pieces:
            if pe <= pos or ps >= end:
                continue
            overlap = True
            lo, hi = max(ps, pos), min(pe, end)
            if pdata[lo - ps:hi - ps] != data[lo - start:hi - start]:
                differs = True
            if ps > pos:
                kept.append((pos, ps, data[pos - start:ps - start]))
            pos = max(pos, pe)
            if pos >= end:
                break
        if pos < end:
            kept.append((pos, end, data[pos - start:end - start]))
        if overlap:
            self.report(index, "overlapping IP fragments" if differs else "duplicate IP fragment",
                        f"bytes {start}-{end}, first-wins")
        if kept:
            d.pieces = sorted(d.pieces + kept)
            added = sum(e - s for s, e, _ in kept)
            d.held += added
            self.bytes_held += added

    def _bound(self, index: int) -> None:
        while self.pending and (len(self.pending) > self.limits.max_datagrams
                                or self.bytes_held > self.limits.max_bytes):
            oldest = next(iter(self.pending))  # insertion order: the first seen, in O(1) under a flood
            self._drop(oldest, index, "IP fragment table full", "the oldest incomplete datagram dropped")

    def _drop(self, key: Key, index: int, reason: str, detail: str) -> None:
        d = self.pending.pop(key)
        self.bytes_held -= d.held
        self.report(index if reason != "incomplete fragmented datagram" else d.first_index, reason,
                    f"{detail}: {d.frames} fragment(s), {d.held} of {d.total if d.total >= 0 else '?'} bytes")

    def expire(self, ts: int) -> None:
        """Drop the datagrams older than the timeout (the meter's sweep calls it)."""
        for key in [k for k, d in self.pending.items() if ts - d.started > self._timeout]:
            self._drop(key, -1, "incomplete fragmented datagram", "timed out")

    def flush(self) -> None:
        """End of input: whatever is still incomplete is reported."""
        for key in list(self.pending):
            self._drop(key, -1, "incomplete fragmented datagram", "end of capture")

    def oldest_index(self) -> int | None:
        """The first fragment's index of the oldest datagram held (a resumed read starts there)."""
        return min((d.first_index for d in self.pending.values()), default=None)

    @staticmethod
    def _payload(d: _Datagram) -> bytes:
        out = bytearray(d.total)
        for s, _e, data in d.pieces:
            if s < d.total:
                chunk = data[:d.total - s]
                out[s:s + len(chunk)] = chunk  # a piece cut by the snaplen leaves zeros
        return bytes(out)

    def _build(self, version: int, d: _Datagram) -> bytes:
        return _datagram(version, d.header, d.next_header_at, d.proto, self._payload(d))

    @staticmethod
    def _build_one(frag: Fragment) -> bytes:
        payload = frag.data + bytes(frag.length - len(frag.data))
        return _datagram(frag.version, frag.header, frag.next_header_at, frag.proto, payload)


def _datagram(version: int, header: bytes, next_header_at: int, proto: int, payload: bytes) -> bytes:
    """The reassembled packet: the first fragment's header with the fragment fields cleared."""
    h = bytearray(header)
    if version == 4:
        total = len(h) + len(payload)
        h[2], h[3] = total >> 8, total & 0xFF
        h[6] = h[7] = 0
    else:
        plen = len(h) - 40 + len(payload)
        h[4], h[5] = plen >> 8, plen & 0xFF
        h[next_header_at] = proto
    return bytes(h) + payload
