"""TCP sequence tracking (collectors/pcap/tcpstream.py) against a model that remembers every byte seen.

The model numbers bytes from 0 without wrapping and keeps them in a set; the tracker keeps
one number and a few holes, modulo 2**32, from an initial sequence number near the wrap.
Both must classify every segment alike (in order, ahead, late, retransmitted, keep-alive),
return the same new bytes and count the same when the tracker stops waiting at once (its
reordering window flushed after every segment). With the window: every byte sent is given
to the decoder, a stream reordered within the window comes out whole and in order, and
the window never holds more than its bounds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.pcap.tcpstream import (
    AHEAD,
    IN_ORDER,
    LATE,
    MASK,
    MAX_HELD_BYTES,
    MAX_HELD_SEGMENTS,
    MAX_HOLES,
    Direction,
    TcpStream,
)


@dataclass
class Model:
    seen: set[int] = field(default_factory=set)
    hi: int = -1
    retransmitted: int = 0
    out_of_order: int = 0
    gaps: int = 0

    def holes(self) -> int:
        runs, inside = 0, False
        for b in range(-1, self.hi):  # from before the first byte: the window before it is a hole
            if b not in self.seen and not inside:
                runs += 1
            inside = b not in self.seen
        return runs

    def accept(self, off: int, data: bytes) -> tuple[bytes | None, int | None]:
        n, end = len(data), off + len(data)
        new = set(range(off, end))
        if self.hi < 0:
            self.hi, kind, out = end, AHEAD, data
        elif off == self.hi:
            self.hi, kind, out = end, IN_ORDER, data
        elif off > self.hi:
            self.gaps += 1
            self.hi, kind, out = end, AHEAD, data
        elif end > self.hi:
            if set(range(off, self.hi)) - self.seen:
                self.out_of_order += 1
            else:
                self.retransmitted += 1
            kind, out = IN_ORDER, data[self.hi - off:]
            self.hi = end
        elif n == 1 and off == self.hi - 1:
            return None, None  # a keep-alive
        elif new - self.seen:
            self.out_of_order += 1
            kind, out = LATE, data
        else:
            self.retransmitted += 1
            return None, None
        self.seen |= new
        return out, kind


STREAM = bytes(range(256)) * 8


def accept_now(d: Direction, seq: int, data: bytes) -> bytes | None:
    """``accept`` without waiting: a segment the window holds is given at once, after its gap."""
    got = d.accept(seq, data)
    if got is None and d.held:
        d.flush()
        got = d.release()
        assert d.release() is None and not d.held
    return got


@settings(max_examples=300, deadline=None)
@given(isn=st.one_of(st.integers(0, MASK), st.integers(MASK - 3000, MASK)),
       segments=st.lists(st.tuples(st.integers(0, 1800), st.integers(1, 200)), min_size=1, max_size=30))
def test_the_tracker_agrees_with_a_model_that_keeps_every_byte(isn: int, segments: list[tuple[int, int]]) -> None:
    d, m = Direction(), Model()
    for off, n in segments:
        data = STREAM[off:off + n]
        expected = m.accept(off, data)
        if m.holes() > MAX_HOLES:
            return  # past the tracker's bound: it forgets the oldest hole on purpose (tested apart)
        got = accept_now(d, (isn + off) & MASK, data)
        assert got == expected[0], (off, n)
        if got is not None:
            assert d.kind == expected[1], (off, n)
        assert (d.retransmitted, d.out_of_order, d.gaps) == (m.retransmitted, m.out_of_order, m.gaps)
    assert m.seen == set().union(*(range(o, o + n) for o, n in segments))  # every byte sent was handed over


def test_a_stream_that_wraps_past_two_to_the_32() -> None:
    d = Direction()
    isn = MASK - 4  # the fifth byte is sequence number 0
    assert d.accept(isn, b"GET /") == b"GET /" and d.kind == AHEAD
    assert d.accept((isn + 5) & MASK, b"x HTTP") == b"x HTTP" and d.kind == IN_ORDER
    assert d.accept(isn, b"GET /") is None and d.retransmitted == 1  # before the wrap, seen: resent
    assert d.accept((isn + 3) & MASK, b"T /x HTTP/1.1") == b"P/1.1" and d.retransmitted == 2  # overlap over the wrap


def test_keepalives_and_bare_acks_are_not_retransmissions() -> None:
    d = Direction()
    d.accept(1000, b"hello")
    assert d.accept(1004, b"\x00") is None  # a keep-alive: one garbage byte just before the next expected
    assert d.retransmitted == 0 and d.nxt == 1005


def test_holes_are_bounded() -> None:
    d = Direction()
    d.accept(0, b"a")
    for i in range(1, 50):
        accept_now(d, i * 10, b"b")  # 49 gaps, each a hole
    assert d.holes is not None and len(d.holes) == MAX_HOLES and d.gaps == 49
    assert d.accept(15, b"c") is None  # in a hole forgotten long ago: taken for a retransmission
    assert d.accept(485, b"c") == b"c" and d.kind == LATE  # in a remembered one (the last): late bytes


def test_counts_go_to_one_flow_record_then_start_again() -> None:
    s = TcpStream()
    s.accept(True, 1, b"abc")
    s.accept(True, 1, b"abc")
    s.accept(False, 9, b"x")
    assert s.accept(False, 20, b"y") is None  # held: bytes 10-19 may still come
    s.resp.flush()
    assert s.resp.release() == b"y" and s.resp.kind == AHEAD  # they did not: read after the gap
    assert s.take_fields() == {"ztsoc.tcp.retransmitted_segments": 1, "ztsoc.tcp.out_of_order_segments": 0,
                               "ztsoc.tcp.gaps": 1, "ztsoc.tcp.reorder_overflows": 0}
    assert set(s.take_fields().values()) == {0}


def _deliver(d: Direction, seq: int, data: bytes, out: list[tuple[bytes, int]]) -> None:
    got = d.accept(seq, data)
    if got is not None:
        out.append((got, d.kind))
    piece = d.release()
    while piece is not None:
        out.append((piece, d.kind))
        piece = d.release()
    assert len(d.held or ()) <= MAX_HELD_SEGMENTS + 1 and d.held_bytes <= MAX_HELD_BYTES + len(data)


@settings(max_examples=300, deadline=None)
@given(isn=st.one_of(st.integers(0, MASK), st.integers(MASK - 3000, MASK)), seed=st.integers(0, 2**32),
       sizes=st.lists(st.integers(1, 1460), min_size=1, max_size=40), reach=st.integers(1, 4))
def test_a_stream_reordered_within_the_window_comes_out_whole(isn: int, seed: int, sizes: list[int],
                                                               reach: int) -> None:
    """Each segment moved at most ``reach`` places (fewer than the window holds): the bytes come out in
    order, every piece in order after the first, nothing counted as a gap."""
    stream = bytes(random.Random(seed).randrange(256) for _ in range(sum(sizes)))
    segments, at = [], 0
    for n in sizes:
        segments.append((at, stream[at:at + n]))
        at += n
    first, rest = segments[0], segments[1:]
    rng = random.Random(seed)
    keyed = sorted(range(len(rest)), key=lambda i: i + rng.uniform(0, reach))  # a local shuffle
    d, out = Direction(), []
    for seg in [first] + [rest[i] for i in keyed]:
        _deliver(d, (isn + seg[0]) & MASK, seg[1], out)
    assert not d.held and d.overflows == 0  # (4 places of 1,460 bytes at most: within both bounds)
    assert b"".join(p for p, _ in out) == stream
    assert [k for _, k in out[1:]] == [IN_ORDER] * (len(out) - 1) and d.gaps == 0


@settings(max_examples=300, deadline=None)
@given(isn=st.integers(0, MASK), order=st.permutations(list(range(12))), lost=st.sets(st.integers(1, 11), max_size=3))
def test_every_byte_sent_is_given_whatever_the_order_and_losses(isn: int, order: list[int], lost: set[int]) -> None:
    d, out, size = Direction(), [], 100
    for i in order:
        if i not in lost:
            _deliver(d, (isn + i * size) & MASK, STREAM[i * size:(i + 1) * size], out)
    d.flush()
    _deliver(d, isn, b"", out)
    assert not d.held and d.held_bytes == 0
    assert sum(len(p) for p, _ in out) >= size * (12 - len(lost))


def test_the_window_is_bounded_and_stops_waiting_when_full() -> None:
    d, out = Direction(), []
    _deliver(d, 0, b"a" * 10, out)
    for i in range(MAX_HELD_SEGMENTS):  # bytes 10-19 never come
        _deliver(d, 20 + i * 10, b"b" * 10, out)
    assert out == [(b"a" * 10, AHEAD)] and d.held is not None and len(d.held) == MAX_HELD_SEGMENTS
    _deliver(d, 20 + MAX_HELD_SEGMENTS * 10, b"c" * 10, out)  # one more: waiting stops, all are read
    assert [k for _, k in out[1:]] == [AHEAD] + [IN_ORDER] * MAX_HELD_SEGMENTS and not d.held
    assert (d.gaps, d.overflows) == (1, 1)
    assert accept_now(d, 10, b"z" * 10) == b"z" * 10 and d.kind == LATE  # the lost bytes, late: read alone
    big = Direction()
    big.accept(0, b"x")
    assert big.accept(2, b"y" * (MAX_HELD_BYTES + 1)) is not None and big.kind == AHEAD  # too big to hold
    assert (big.gaps, big.overflows) == (1, 1)
    far = Direction()
    far.accept(0, b"x")
    assert far.accept(1 + 70000, b"y") is not None and far.overflows == 1  # too far ahead to wait for


def test_a_held_segment_resent_is_a_retransmission() -> None:
    d = Direction()
    d.accept(0, b"ab")
    assert d.accept(4, b"ef") is None and d.accept(4, b"ef") is None and d.retransmitted == 1
    assert d.accept(2, b"cd") == b"cd" and d.out_of_order == 1 and d.release() == b"ef" and d.release() is None


def test_out_of_order_counts_every_segment_that_came_after_bytes_following_it() -> None:
    d, out = Direction(), []
    _deliver(d, 0, b"a", out)
    for seq in (3, 2, 1):  # the last first, then back: the two earlier ones each came late
        _deliver(d, seq, b"x", out)
    assert [p for p, _ in out] == [b"a", b"x", b"x", b"x"] and (d.out_of_order, d.gaps) == (2, 0)
