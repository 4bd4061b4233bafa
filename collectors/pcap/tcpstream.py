"""TCP sequence tracking for the flows whose payloads are decoded (HTTP, TLS, DNS over TCP).

Hand-written (no kept library tracks sequence numbers on a Python hot path): each
direction keeps the next sequence number it expects and at most :data:`MAX_HOLES`
ranges it skipped (a segment that arrived ahead of a missing one). A segment is then

- *in order*: it starts where the last ended; given to the decoder, which may join it to
  what it holds (a message head split across segments);
- *a retransmission*: every byte of it was seen already; dropped and counted, so a
  resent request is not reported twice. A segment that overlaps the end of what was seen
  is cut to its new bytes (and counted too);
- *ahead* (a gap: a segment missing, late or lost by the capture): held in a small
  reordering window (:data:`MAX_HELD_SEGMENTS` segments, :data:`MAX_HELD_BYTES` bytes, at
  most :data:`MAX_REORDER` bytes ahead) until the missing bytes come; then the late segment
  and the held ones are given to the decoder in order (:meth:`Direction.release`), so a
  message head split across reordered segments is joined as if they had come in order.
  When the window is full, a segment cannot be held, or the flow ends, waiting stops: the
  held segments are given to the decoder as not following the previous bytes (a gap,
  counted), and the skipped range is remembered. Waiting stopped by a bound (not by the
  flow's end) is counted apart (``overflows``: a sign of loss or of segments sent far out
  of order on purpose);
- *out of order*: it fills missing bytes (in the window, or a remembered range after
  waiting stopped: then it is given to the decoder on its own, not joined) and is counted.

The range just before the first bytes seen (:data:`BEFORE`) counts as a hole: the first
segments may come reordered. A keep-alive (one byte or none, one before the expected number) is neither. Sequence
numbers wrap at 2**32: every comparison is a difference modulo 2**32 read as signed.
Memory per direction is a few integers, the bounded list of holes and the bounded window
(no list at all until a segment comes ahead); only flows with an application decoder
have it, so the meter's per-packet cost is unchanged for the others.
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
#: the reordering window of a direction: segments held waiting for missing bytes before them,
#: and their bytes at most (a head split over a few full-size segments fits; memory per
#: direction stays under MAX_HELD_BYTES plus one segment)
MAX_HELD_SEGMENTS = 8
MAX_HELD_BYTES = 16384
#: a segment further ahead than this (bytes from the next expected one) is not waited for
MAX_REORDER = 65536
#: bytes held by the windows of all a meter's flows at most (a capture with many flows waiting at
#: once, say 10,000 each holding 16 KiB both ways, would otherwise hold 320 MB): past it, the
#: window that grew stops waiting (``apps.AppHandler.segment``)
MAX_HELD_TOTAL = 8 << 20


class Direction:
    """One direction of a TCP connection: what was seen of its byte stream."""

    __slots__ = ("first", "flushing", "gaps", "held", "held_bytes", "holes", "index", "kind", "nxt", "out_of_order",
                 "overflows", "retransmitted", "ts")

    def __init__(self) -> None:
        self.nxt = -1  # the next sequence number expected; -1: no payload seen yet
        self.first = 0  # the sequence number of the first byte seen
        #: (first sequence number, length) of skipped ranges; None until a segment is not in order
        #: (most connections never need it: no list is made for them)
        self.holes: list[tuple[int, int]] | None = None
        self.kind = AHEAD  # what the bytes last accepted are: IN_ORDER, AHEAD or LATE
        self.retransmitted = self.out_of_order = self.gaps = self.overflows = 0
        #: the reordering window: (sequence number, bytes, packet index, time) of segments that came
        #: ahead of missing bytes, by sequence; None until one does
        self.held: list[tuple[int, bytes, int, int]] | None = None
        self.held_bytes = 0
        self.flushing = False  # waiting stopped: release() gives every held segment, gaps and all
        self.index = self.ts = 0  # the packet index and time of the bytes release() gave last

    def accept(self, seq: int, data: bytes, index: int = 0, ts: int = 0) -> bytes | None:
        """The new bytes of a segment (``data`` or its tail), or None when it brings none now
        (resent, or held in the window: :meth:`release` gives what can then be read)."""
        n = len(data)
        nxt = self.nxt
        end = (seq + n) & MASK
        if nxt < 0:  # the first bytes: the ones just before them may still come (segments reordered)
            self.nxt, self.kind, self.first = end, AHEAD, seq
            return data
        ahead = (seq - nxt) & MASK
        if ahead == 0:
            if self.held:  # it came after bytes that follow it: they are read after it (release)
                self.out_of_order += 1
            self.nxt, self.kind = end, IN_ORDER
            return data
        if ahead < HALF:  # bytes [nxt, seq) were not seen (yet)
            if self._hold(seq, data, ahead, index, ts):
                return None
            self.overflows += 1  # too big or too far ahead to wait for
            self._gap(nxt, ahead)
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

    def _gap(self, nxt: int, missing: int) -> None:
        """Bytes [nxt, nxt + missing) are given up on: a gap, remembered as a hole."""
        self.gaps += 1
        holes = self._holes()
        holes.append((nxt, missing))
        if len(holes) > MAX_HOLES:
            del holes[0]

    def _hold(self, seq: int, data: bytes, ahead: int, index: int, ts: int) -> bool:
        """Put a segment that came ``ahead`` bytes early in the window; False when it cannot wait
        (too far ahead, or the window was empty and it does not fit). A full window stops
        waiting: the segment joins it and :meth:`release` then gives every held one."""
        n = len(data)
        held = self.held
        if not held:
            if ahead > MAX_REORDER or n > MAX_HELD_BYTES:
                return False
            if held is None:
                held = self.held = []
        at = len(held)
        for i in range(len(held)):
            other = (held[i][0] - self.nxt) & MASK
            if other == ahead and len(held[i][1]) >= n:  # the same segment again
                self.retransmitted += 1
                return True
            if other > ahead:
                at = i
                break
        if at < len(held):  # bytes that follow it came first: it is out of order too
            self.out_of_order += 1
        held.insert(at, (seq, data, index, ts))
        self.held_bytes += n
        if len(held) > MAX_HELD_SEGMENTS or self.held_bytes > MAX_HELD_BYTES or ahead > MAX_REORDER:
            self.flushing = True
            self.overflows += 1
        return True

    def forget(self) -> int:
        """Drop the held segments unread (their decoder is done with the flow); how many bytes they were."""
        held, self.held, self.held_bytes, self.flushing = self.held_bytes, None, 0, False
        return held

    def flush(self) -> None:
        """Stop waiting (the flow ends): :meth:`release` gives every held segment."""
        if self.held:
            self.flushing = True

    def release(self) -> bytes | None:
        """The next bytes the window can give (after :meth:`accept`, until None), with their packet
        in :attr:`index` / :attr:`ts` and :attr:`kind` IN_ORDER, or AHEAD after a gap given up."""
        held = self.held
        while held:
            seq, data, index, ts = held[0]
            n = len(data)
            ahead = (seq - self.nxt) & MASK
            if 0 < ahead < HALF and not self.flushing:
                return None  # still missing bytes before it
            del held[0]
            self.held_bytes -= n
            end = (seq + n) & MASK
            self.index, self.ts = index, ts
            if ahead == 0:
                self.nxt, self.kind = end, IN_ORDER
                return data
            if ahead < HALF:  # waiting stopped: the bytes before it are given up
                self._gap(self.nxt, ahead)
                self.nxt, self.kind = end, AHEAD
                return data
            back = WRAP - ahead  # bytes read since it was held overlap it
            if back < n:
                self.nxt, self.kind = end, IN_ORDER
                return data[back:]
            self.retransmitted += 1  # every byte of it was read meanwhile
        self.flushing = False
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

    def accept(self, fwd: bool, seq: int, data: bytes, index: int = 0, ts: int = 0) -> bytes | None:
        return (self.orig if fwd else self.resp).accept(seq, data, index, ts)

    def side(self, fwd: bool) -> Direction:
        return self.orig if fwd else self.resp

    def take_fields(self) -> dict[str, Any]:
        """The counts for the flow record being written, zeroed for the record that may follow it."""
        o, r = self.orig, self.resp
        fields = {"ztsoc.tcp.retransmitted_segments": o.retransmitted + r.retransmitted,
                  "ztsoc.tcp.out_of_order_segments": o.out_of_order + r.out_of_order,
                  "ztsoc.tcp.gaps": o.gaps + r.gaps,
                  "ztsoc.tcp.reorder_overflows": o.overflows + r.overflows}
        for d in (o, r):
            d.retransmitted = d.out_of_order = d.gaps = d.overflows = 0
        return fields
