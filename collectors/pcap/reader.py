"""Stream the records of a pcap or pcapng file, plain or gzip, in flat memory.

Hand-written with ``struct`` because the hot path must run at several hundred thousand
packets per second: scapy's ``PcapReader`` does about 6,000/s and dpkt about 100,000/s
here, while reading fixed headers out of one large buffer does well over a million.
The file is read in chunks of :data:`CHUNK` bytes and never loaded whole; a gzip file
is decompressed as a stream.

What comes out is a :class:`Record` per packet: its index in the file (0-based, counting
every packet record, readable or not, so ids derived from it are stable), the capture
time in nanoseconds since the epoch, the link type, the captured bytes and the length
on the wire. Records that cannot be read are reported through ``problems`` (a list the
caller owns) and reading goes on where the format allows it: a damaged pcapng block is
skipped by its length, while a pcap record header with an impossible length ends the
file (a classic pcap has no way to resynchronise).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
#: bytes on each side of the buffer's start that ``_Buffer.window`` gives
WINDOW = 4096
#: Larger records than this are taken as corruption (the largest real snaplen is 262144).
MAX_RECORD = 1 << 20
#: capture times the events can carry: from the epoch to the end of year 9999 (ISO 8601's four-digit
#: years; ``time.gmtime`` fails past the platform's ``time_t``). A pcap record's 32-bit seconds always
#: fit; a pcapng one (64-bit ticks of any resolution, plus a signed ``if_tsoffset``) may not
MAX_TS_NS = 253_402_300_800 * 1_000_000_000
#: problems of skipped records held until the caller takes them (after each batch); past it they are
#: counted in one summary problem. A reader skipping damaged blocks yields nothing, so its caller cannot
#: take them: a file of nothing but bad blocks once became one problem object per 32 bytes of file
MAX_HELD_PROBLEMS = 1000
#: interfaces of one pcapng section, at most (the obsolete packet block's id is 16 bits); each is an
#: object while the section lasts, and an interface description is only 20 bytes of file
MAX_INTERFACES = 1 << 16

PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    # magic as it appears in the file -> (struct byte order, ns per timestamp fraction unit)
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


#: (index, ts_ns, linktype, data, wirelen): a plain tuple, built a million times a second
Record = tuple[int, int, int, bytes, int]


@dataclass(slots=True)
class Problem:
    """A record that could not be read: packet index (or -1 for the file) and a short reason."""

    index: int
    reason: str
    detail: str = ""


@dataclass(slots=True)
class MoreProblems(Problem):
    """The problems past :data:`MAX_HELD_PROBLEMS`, as counts by reason (the detail says which packets)."""

    counts: dict[str, int] = field(default_factory=dict)
    last: int = -1

    def add(self, problem: Problem) -> None:
        self.counts[problem.reason] = self.counts.get(problem.reason, 0) + 1
        self.last = max(self.last, problem.index)
        listed = ", ".join(f"{reason} ({n})" for reason, n in self.counts.items())
        self.detail = (f"{sum(self.counts.values())} more up to packet {self.last}, counted, not listed one by one: "
                       f"{listed}")


#: the summary's reason, written in a ``Problem`` call so that the message catalogue finds it (locales.raised)
MORE_PROBLEMS = Problem(-1, "more problems").reason


def _report(problems: list[Problem], problem: Problem) -> None:
    """A skipped record's problem: listed while fewer than :data:`MAX_HELD_PROBLEMS` wait, else counted."""
    if len(problems) < MAX_HELD_PROBLEMS:
        problems.append(problem)
        return
    last = problems[-1]
    if not isinstance(last, MoreProblems):
        last = MoreProblems(problem.index, MORE_PROBLEMS)
        problems.append(last)
    last.add(problem)


@dataclass(slots=True)
class Interface:
    linktype: int
    snaplen: int
    #: nanoseconds = ticks * num // den
    num: int = 1000
    den: int = 1
    offset_ns: int = 0


@dataclass(slots=True)
class CaptureInfo:
    format: str = "?"
    interfaces: list[Interface] = field(default_factory=list)
    #: the stream being read (``window`` gives a piece of what was read, for checkpoint marks)
    stream: _Buffer | None = None


def open_capture(path: Path | str) -> BinaryIO:
    """The decompressed byte stream of a capture (gzip recognised by its magic, not its name)."""
    fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    head = fh.read(2)
    fh.seek(0)
    if head == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


class _Buffer:
    """A sliding window over a stream: ``need(n)`` guarantees n bytes at ``pos`` or EOF.

    A stream that fails part-way (a damaged or cut .gz) keeps what it gave before: the
    error is raised only when bytes past it are needed, so every record before it is read.
    Reads use ``read1`` (one underlying read or decompression step) so a failing read loses
    nothing already decompressed.
    """

    __slots__ = ("behind", "buf", "consumed", "eof", "error", "fh", "pos", "read")

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.read = getattr(fh, "read1", fh.read)
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.error: BaseException | None = None
        self.consumed = 0  # bytes of the stream before buf[0]
        self.behind = b""  # the last bytes before buf[0] (at most WINDOW)

    def need(self, n: int) -> bool:
        if len(self.buf) - self.pos >= n:
            return True
        if self.eof:
            if self.error is not None:
                raise self.error
            return False
        rest = self.buf[self.pos:]
        if self.pos:  # once per refill (a MiB): what a checkpoint's mark can name at the end of a file
            self.behind = self.buf[max(0, self.pos - WINDOW):self.pos]
        self.consumed += self.pos
        chunks = [rest]
        have = len(rest)
        while have < n:
            try:
                chunk = self.read(max(CHUNK, n - have))
            except (OSError, EOFError, zlib.error) as exc:
                self.error = exc
                chunk = b""
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            have += len(chunk)
        self.buf = b"".join(chunks)
        self.pos = 0
        if have < n and self.error is not None:
            raise self.error
        return have >= n

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def window(self) -> tuple[int, bytes]:
        """The last ``WINDOW`` bytes read from the stream (fewer in a shorter one) and the offset of the first.

        Bytes the file certainly holds where it says (offsets in the decompressed stream): at the
        end of the buffer (the furthest read), the file's last bytes once it is read to its end.
        """
        tail = self.buf[-WINDOW:]
        if len(tail) < WINDOW:
            tail = (self.behind + self.buf)[-WINDOW:]
        return self.consumed + len(self.buf) - len(tail), tail


def iter_records(fh: BinaryIO, problems: list[Problem], info: CaptureInfo | None = None,
                 start: int = 0) -> Iterator[Record]:
    """Every packet record of a pcap or pcapng stream; records before index ``start`` are skipped undecoded.

    A plain function returning the format's generator (no ``yield from`` layer per packet);
    a stream that is neither format raises ``ValueError`` here, at the call.
    """
    info = info if info is not None else CaptureInfo()
    buf = info.stream = _Buffer(fh)
    if not buf.need(4):
        raise ValueError("empty file: not a pcap or pcapng capture")
    magic = buf.buf[:4]
    if magic == PCAPNG_SHB:
        info.format = "pcapng"
        return _iter_pcapng(buf, problems, info, start)
    if magic in PCAP_MAGICS:
        info.format = "pcap"
        return _iter_pcap(buf, problems, info, start)
    raise ValueError(f"not a pcap or pcapng capture (magic {magic.hex()})")


def _iter_pcap(buf: _Buffer, problems: list[Problem], info: CaptureInfo, start: int) -> Iterator[Record]:
    order, scale = PCAP_MAGICS[buf.buf[:4]]
    if not buf.need(24):
        raise ValueError("truncated pcap file header")
    _, _, _, _, snaplen, network = struct.unpack_from(order + "HHiIII", buf.buf, 4)
    linktype = network & 0x0FFFFFFF
    info.interfaces.append(Interface(linktype, snaplen, scale, 1))
    buf.pos = 24
    hdr = struct.Struct(order + "IIII").unpack_from
    index = 0
    # hot loop: the buffer is held in locals and refilled only when a record crosses its end;
    # the second's nanoseconds are computed once per second (packets mostly share it)
    b, pos, blen = buf.buf, buf.pos, len(buf.buf)
    last_sec, sec_ns = -1, 0
    while True:
        if pos + 16 > blen:
            buf.pos = pos
            if not buf.need(16):
                if len(buf.buf) - buf.pos:
                    problems.append(Problem(index, "truncated record header",
                                            f"{len(buf.buf) - buf.pos} bytes at end"))
                return
            b, pos, blen = buf.buf, buf.pos, len(buf.buf)
        sec, frac, incl, orig = hdr(b, pos)
        end = pos + 16 + incl
        if end > blen:
            if incl > MAX_RECORD:
                buf.pos = pos
                problems.append(Problem(index, "corrupt record header",
                                        f"captured length {incl} at byte {buf.offset}; rest of file unreadable"))
                return
            buf.pos = pos
            if not buf.need(16 + incl):
                problems.append(Problem(index, "truncated packet", f"{incl} bytes announced, file ends first"))
                return
            b, pos, blen = buf.buf, buf.pos, len(buf.buf)
            end = pos + 16 + incl
        if index >= start:
            if sec != last_sec:
                last_sec, sec_ns = sec, sec * 1_000_000_000
            yield index, sec_ns + frac * scale, linktype, b[pos + 16:end], orig
        pos = end
        index += 1


# pcapng block types
_SHB, _IDB, _EPB, _SPB, _OPB = 0x0A0D0D0A, 1, 6, 3, 2
_PACKET_BLOCKS = frozenset((_EPB, _SPB, _OPB))
#: the smallest total length of each block type that holds its fixed fields (header and trailer included)
_MIN_BLOCK: dict[int, int] = {_SHB: 12, _IDB: 20, _EPB: 32, _SPB: 16, _OPB: 32}


def _tsresol(value: int) -> tuple[int, int]:
    """if_tsresol -> (num, den) so that ns = ticks * num // den."""
    if value & 0x80:
        return 1_000_000_000, 1 << (value & 0x7F)
    exp = value & 0x7F
    return (10 ** (9 - exp), 1) if exp <= 9 else (1, 10 ** (exp - 9))


def _iter_pcapng(buf: _Buffer, problems: list[Problem], info: CaptureInfo, start: int) -> Iterator[Record]:
    order = "<"
    index = 0
    last_ts = 0  # a simple packet block has no time of its own
    ifaces = info.interfaces
    while True:
        if not buf.need(12):
            if len(buf.buf) - buf.pos:
                problems.append(Problem(index, "truncated block", f"{len(buf.buf) - buf.pos} bytes at end"))
            return
        b = buf.buf
        pos = buf.pos
        if b[pos:pos + 4] == PCAPNG_SHB:
            bom = b[pos + 8:pos + 12]
            order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                problems.append(Problem(index, "corrupt section header", f"byte-order magic {bom.hex()}"))
                return
        btype, blen = struct.unpack_from(order + "II", b, pos)
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
            problems.append(Problem(index, "corrupt block length",
                                    f"block type {btype:#x} length {blen} at byte {buf.offset}; rest unreadable"))
            return
        if not buf.need(blen):
            problems.append(Problem(index, "truncated block", f"block type {btype:#x} of {blen} bytes cut short"))
            return
        b = buf.buf
        pos = buf.pos
        body = pos + 8
        end = pos + blen - 4
        buf.pos = pos + blen
        if blen < _MIN_BLOCK.get(btype, 12):  # too short for its fixed fields: skipped by its length
            _report(problems, Problem(index if btype in _PACKET_BLOCKS else -1, "corrupt block length",
                                      f"block type {btype:#x} of {blen} bytes, shorter than its fixed fields"))
            if btype in _PACKET_BLOCKS:
                index += 1
            continue
        if btype in (_EPB, _OPB):
            if btype == _EPB:
                iface, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", b, body)
            else:
                iface, _drops, hi, lo, incl, orig = struct.unpack_from(order + "HHIIII", b, body)
            if index >= start:
                if iface >= len(ifaces) or body + 20 + incl > end:
                    _report(problems, Problem(index, "corrupt packet block",
                                              f"interface {iface} of {len(ifaces)}, captured length {incl}"))
                else:
                    itf = ifaces[iface]
                    ts = ((hi << 32) | lo) * itf.num // itf.den + itf.offset_ns
                    if 0 <= ts < MAX_TS_NS:
                        last_ts = ts
                        yield index, ts, itf.linktype, b[body + 20:body + 20 + incl], orig
                    else:
                        _report(problems, _bad_time(index, ts))
            index += 1
        elif btype == _SPB:
            if index >= start and ifaces:
                (orig,) = struct.unpack_from(order + "I", b, body)
                itf = ifaces[0]
                incl = min(orig, end - body - 4, itf.snaplen or orig)
                yield index, last_ts, itf.linktype, b[body + 4:body + 4 + incl], orig
            index += 1
        elif btype == _IDB:
            if len(ifaces) >= MAX_INTERFACES:  # its packets are then "corrupt packet block"s (no such interface)
                _report(problems, Problem(-1, "too many interfaces",
                                          f"interface {len(ifaces)} of a section that may have {MAX_INTERFACES}"))
                continue
            linktype, _, snaplen = struct.unpack_from(order + "HHI", b, body)
            itf = Interface(linktype, snaplen)
            _idb_options(b, body + 8, end, order, itf)
            ifaces.append(itf)
        elif btype == _SHB:
            ifaces.clear()  # interface ids restart in each section


def _bad_time(index: int, ts_ns: int) -> Problem:
    """A packet whose time no event can carry (before 1970 or after 9999): reported, not metered.

    Why here: the reader is where a record's time is made, so no decoder downstream meets a time
    ``time.gmtime`` cannot format (it once failed the whole file at the end-of-capture flush).
    """
    return Problem(index, "timestamp out of range", f"{ts_ns // 1_000_000_000} seconds since the epoch")


def _idb_options(b: bytes, pos: int, end: int, order: str, itf: Interface) -> None:
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", b, pos)
        if code == 0:
            return
        if pos + 4 + length > end:  # an option running past its block: the rest is not options
            return
        value = b[pos + 4:pos + 4 + length]
        if code == 9 and length >= 1:
            itf.num, itf.den = _tsresol(value[0])
        elif code == 14 and length == 8:
            itf.offset_ns = struct.unpack(order + "q", value)[0] * 1_000_000_000
        pos += 4 + ((length + 3) & ~3)
