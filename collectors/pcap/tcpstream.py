"""TCP sequence tracking for the flows whose payloads are decoded (HTTP, TLS, DNS over TCP).

Hand-written (no kept library tracks sequence numbers on a Python hot path): each
direction keeps the next sequence number it expects and at most :data:`MAX_HOLES`
ranges it skipped (a segment that arrived ahead of a missing one). A segment is then

- *in order*: it starts where the last ended; given to the decoder, which may join it to
  what it holds (a message head split across segments);
- *a retransmission*: every byte of it was seen already; dropped and counted, so a
  resent request is not reported twice. A segment that overlaps the end of what was seen
  is cut to its new bytes (and counted too);
- *ahead* (a gap: a segment missing, lost by the capture or late): given to the decoder
  as not following the previous bytes, and the skipped range is remembered;
- *out of order*: it falls into a remembered range: given to the decoder on its own (not
  joined: nothing is held back waiting for it) and counted.

The range just before the first bytes seen (:data:`BEFORE`) counts as a hole: the first
segments may come reordered. A keep-alive (one byte or none, one before the expected number) is neither. Sequence
numbers wrap at 2**32: every comparison is a difference modulo 2**32 read as signed.
Memory per direction is a few integers and the bounded list of holes; only flows with an
application decoder have it, so the meter's per-packet cost is unchanged for the others.
"""

from __future__ import annotations

from typing import Any

MASK = 0xFFFFFFFF
WRAP = 1 << 32
HALF = 1 << 31
#: what the bytes a direction last accepted are, in ``Direction.kind``
IN_ORDER = 0  # they continue the bytes accepted before them
AHEAD = 1  # the first bytes, or bytes after a gap: whatever was held of the stream cannot be continued
LATE = 2  # bytes that fill a gap: read on their own, the stream's place is unchanged

#: skipped ranges remembered per direction; past it the oldest is forgotten (its bytes, if they
#: come, are then taken for a retransmission: the capture had lost them anyway)
MAX_HOLES = 8
#: bytes this far before the first ones seen count as not seen yet (a window): when the first
#: segments of a capture come reordered, the earlier ones are late, not retransmitted
BEFORE = 65536


class Direction:
    """One direction of a TCP connection: what was seen of its byte stream."""

    __slots__ = ("first", "gaps", "holes", "kind", "nxt", "out_of_order", "retransmitted")

    def __init__(self) -> None:
        self.nxt = -1  # the next sequence number expected; -1: no payload seen yet
        self.first = 0  # the sequence number of the first byte seen
        #: (first sequence number, length) of skipped ranges; None until a segment is not in order
        #: (most connections never need it: no list is made for them)
        self.holes: list[tuple[int, int]] | None = None
        self.kind = AHEAD  # what the bytes last accepted are: IN_ORDER, AHEAD or LATE
        self.retransmitted = self.out_of_order = self.gaps = 0

    def accept(self, seq: int, data: bytes) -> bytes | None:
        """The new bytes of a segment (``data`` or its tail), or None when it brings none."""
        n = len(data)
        nxt = self.nxt
        end = (seq + n) & MASK
        if nxt < 0:  # the first bytes: the ones just before them may still come (segments reordered)
            self.nxt, self.kind, self.first = end, AHEAD, seq
            return data
        ahead = (seq - nxt) & MASK
        if ahead == 0:
            self.nxt, self.kind = end, IN_ORDER
            return data
        if ahead < HALF:  # bytes [nxt, seq) were not seen
            self.gaps += 1
            holes = self._holes()
            holes.append((nxt, ahead))
            if len(holes) > MAX_HOLES:
                del holes[0]
            self.nxt, self.kind = end, AHEAD
            return data
        back = WRAP - ahead  # the segment starts this many bytes before nxt
        if back < n:  # it runs past nxt: its tail is new
            if not self._fill(seq, back):
                self.retransmitted += 1
            else:
                self.out_of_order += 1
            self.nxt, self.kind = end, IN_ORDER
            return data[back:]
        if back == 1 and n <= 1:  # a keep-alive: one byte (or none) just before the expected one
            return None
        if self._fill(seq, n):
            self.out_of_order += 1
            self.kind = LATE
            return data
        self.retransmitted += 1
        return None

    def _holes(self) -> list[tuple[int, int]]:
        if self.holes is None:  # the window before the first byte is the first hole
            self.holes = [((self.first - BEFORE) & MASK, BEFORE)]
        return self.holes

    def _fill(self, seq: int, n: int) -> bool:
        """Remove [seq, seq+n) from the holes; True if it covered any of them."""
        if self.holes is None and (seq - self.first) & MASK < HALF:
            return False  # no gap so far, and it starts at or after the first byte: nothing to fill
        found = False
        kept: list[tuple[int, int]] = []
        for start, length in self._holes():
            a = (seq - start) & MASK  # where the segment starts, from the hole's start (signed)
            if a >= HALF:
                a -= WRAP
            b = a + n
            if b <= 0 or a >= length:
                kept.append((start, length))
                continue
            found = True
            if a > 0:
                kept.append((start, a))
            if b < length:
                kept.append(((start + b) & MASK, length - b))
        self.holes = kept[-MAX_HOLES:]
        return found


class TcpStream:
    """Both directions of a decoded TCP flow, and what they count for its flow record."""

    __slots__ = ("orig", "resp")

    def __init__(self) -> None:
        self.orig, self.resp = Direction(), Direction()

    def accept(self, fwd: bool, seq: int, data: bytes) -> bytes | None:
        return (self.orig if fwd else self.resp).accept(seq, data)

    def side(self, fwd: bool) -> Direction:
        return self.orig if fwd else self.resp

    def take_fields(self) -> dict[str, Any]:
        """The counts for the flow record being written, zeroed for the record that may follow it."""
        o, r = self.orig, self.resp
        fields = {"ztsoc.tcp.retransmitted_segments": o.retransmitted + r.retransmitted,
                  "ztsoc.tcp.out_of_order_segments": o.out_of_order + r.out_of_order,
                  "ztsoc.tcp.gaps": o.gaps + r.gaps}
        for d in (o, r):
            d.retransmitted = d.out_of_order = d.gaps = 0
        return fields
