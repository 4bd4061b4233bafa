"""Live capture: packets from an interface into the same flow meter, events into the store as flows end.

Two engines (``ENGINES``, a registry):

- ``fast``: a raw ``AF_PACKET`` socket read with ``recv_into`` into one reused buffer,
  a 64 MiB receive buffer (``SO_RCVBUFFORCE``, so bursts wait in the kernel rather than
  being dropped; what is queued when the capture stops is still metered), and the
  kernel's own drop counter (``PACKET_STATISTICS``) read at the end so loss is measured,
  not guessed. On loopback every packet passes the tap twice (going out and coming in);
  only the outgoing copy is kept.
  No TPACKET ring: at the target rate (50,000 packets/s) one ``recv`` per packet costs
  about a microsecond, far below the meter's own cost, so the ring would not move the limit.
- ``tshark``: pyshark drives tshark (deep dissection, every protocol Wireshark knows);
  the raw bytes of each packet go through the same meter, so flows and events have the
  same shape, and tshark's name for the highest protocol fills ``network.protocol``
  where the meter's own probes do not know the flow's protocol.

BPF filters on the fast path are compiled by ``tcpdump -ddd`` for the interface's link
type and attached with ``SO_ATTACH_FILTER``, so unwanted packets never leave the kernel.
Without tcpdump a small filter of our own runs in Python after the header parse:
``tcp|udp|icmp``, ``host ADDR``, ``port N``, joined by ``and`` (anything else is refused
with a clear error rather than silently ignored).

Writing is continuous: flows are reported when they end (FIN/RST, idle or active
timeout), the table is swept every half second of wall time even when no packet comes,
and a writer thread stores each batch so the capture loop never waits on the store.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import queue
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from collectors.base import event_id
from collectors.pcap.flows import FlowMeter, MeterConfig, relaxed_gc
from collectors.pcap.reader import Record

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23
#: ARPHRD (interface hardware type) -> pcap link type of what AF_PACKET/SOCK_RAW returns
ARPHRD_LINKTYPE: dict[int, int] = {1: 1, 772: 1, 65534: 101, 776: 101, 778: 101, 823: 101}
RCVBUF = 64 << 20


class CaptureError(OSError):
    """The interface cannot be captured on (missing, no permission, bad filter)."""


@dataclass(slots=True)
class CaptureStats:
    packets: int = 0  # seen by the meter
    filtered: int = 0  # dropped by the Python fallback filter
    kernel_packets: int = 0  # what the kernel delivered to the socket (PACKET_STATISTICS)
    kernel_drops: int = 0  # what the kernel dropped because we were too slow
    events: int = 0
    written: int = 0
    problems: int = 0
    seconds: float = 0.0
    engine: str = "fast"
    bpf: str | None = None
    bpf_compiler: str | None = None
    stopped_by: str | None = None  # why the capture ended early (interface down...)
    problem_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


# -- BPF ------------------------------------------------------------------------------------------
def compile_bpf(expression: str, iface: str) -> list[tuple[int, int, int, int]]:
    """``tcpdump -ddd`` for this interface's link type: decimal (code, jt, jf, k) per instruction."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise CaptureError("tcpdump is not installed")
    proc = subprocess.run([tcpdump, "-i", iface, "-ddd", expression], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"bad BPF filter {expression!r}: {proc.stderr.strip().splitlines()[-1:]}")
    lines = proc.stdout.split("\n")
    count = int(lines[0])
    return [tuple(int(x) for x in line.split()) for line in lines[1:1 + count]]  # type: ignore[misc]


def attach_bpf(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    insns = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buf = ctypes.create_string_buffer(insns, len(insns))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass(frozen=True, slots=True)
class PyFilter:
    """The fallback filter: ``tcp|udp|icmp``, ``host A``, ``port N``, joined by ``and``."""

    proto: int | None = None
    host: bytes | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> PyFilter:
        words = [w for w in text.replace("(", " ").replace(")", " ").split() if w != "and"]
        proto = host = port = None
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("tcp", "udp", "icmp"):
                proto = {"tcp": 6, "udp": 17, "icmp": 1}[w]
                i += 1
            elif w == "host" and i + 1 < len(words):
                host = ipaddress.ip_address(words[i + 1]).packed
                i += 2
            elif w == "port" and i + 1 < len(words) and words[i + 1].isdigit():
                port = int(words[i + 1])
                i += 2
            else:
                raise ValueError(f"filter {text!r}: without tcpdump only tcp|udp|icmp, host ADDR, port N and 'and' "
                                 "are understood")
        return cls(proto, host, port)

    def matches(self, src: bytes, dst: bytes, proto: int, sport: int, dport: int) -> bool:
        return ((self.proto is None or proto == self.proto) and (self.host is None or self.host in (src, dst))
                and (self.port is None or self.port in (sport, dport)))


# -- engines ------------------------------------------------------------------------------------------
class PacketSource:
    """Yields records ``(index, ts_ns, linktype, data, wirelen)`` until ``stop`` is set; ``None`` = idle tick."""

    name = "?"
    bpf_compiler: str | None = None

    def __init__(self, iface: str, bpf: str | None) -> None:
        self.iface = iface
        self.bpf = bpf
        self.error: str | None = None

    def records(self, stop: threading.Event) -> Iterator[Record | None]:
        raise NotImplementedError

    def kernel_stats(self) -> tuple[int, int]:
        return 0, 0

    def protocol_hint(self, index: int) -> str | None:
        return None

    def close(self) -> None:
        """Release the socket or the subprocess."""


class AfPacketSource(PacketSource):
    name = "fast"

    def __init__(self, iface: str, bpf: str | None) -> None:
        super().__init__(iface, bpf)
        try:
            ifindex = socket.if_nametoindex(iface)
        except OSError as exc:
            raise CaptureError(f"no such interface: {iface}") from exc
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing until bound
        except PermissionError as exc:
            raise CaptureError("raw packet capture needs root or CAP_NET_RAW") from exc
        self.sock = sock
        self.pyfilter: PyFilter | None = None
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.loopback = iface == "lo" or iface.startswith("lo")
        # Every loopback packet passes the tap twice, going out and coming in. The outgoing copy
        # is the one kept: it is seen even when the receive side is too busy to take the packet.
        # With tcpdump the kernel drops the incoming copy (``outbound`` in the filter); without,
        # records() skips it.
        kernel_filter = f"outbound and ({bpf})" if self.loopback and bpf else ("outbound" if self.loopback else bpf)
        self.skip_incoming = False
        if kernel_filter:
            try:
                attach_bpf(sock, compile_bpf(kernel_filter, iface))
                self.bpf_compiler = "tcpdump -ddd (kernel BPF)" if bpf else None
            except CaptureError:
                self.pyfilter = PyFilter.parse(bpf) if bpf else None
                self.bpf_compiler = "ztsoc fallback filter (Python, after parsing)" if bpf else None
                self.skip_incoming = self.loopback
        sock.bind((iface, ETH_P_ALL, 0, 0, b""))
        self.ifindex = ifindex
        sock.settimeout(0.5)

    def records(self, stop: threading.Event) -> Iterator[Record | None]:
        sock = self.sock
        buf = bytearray(65536 + 256)
        view = memoryview(buf)
        recv = sock.recvfrom_into
        index = 0
        linktype = -1
        skip_incoming = self.skip_incoming
        clock = time.time_ns
        draining = False
        while True:
            if not draining and stop.is_set():
                # what the kernel already queued was captured: meter it before stopping
                draining = True
                sock.setblocking(False)
            try:
                n, addr = recv(buf, 0, socket.MSG_TRUNC)
            except (TimeoutError, BlockingIOError):
                if draining:
                    return
                yield None
                continue
            except InterruptedError:
                continue
            except OSError as exc:  # the interface went down or away: end the capture, keep what was metered
                self.error = f"{self.iface}: {exc.strerror or exc}"
                return
            if skip_incoming and addr[2] != PACKET_OUTGOING:
                continue
            if linktype < 0:
                linktype = ARPHRD_LINKTYPE.get(addr[3], 1)
            yield index, clock(), linktype, bytes(view[:min(n, len(buf))]), n
            index += 1

    def kernel_stats(self) -> tuple[int, int]:
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        received, dropped = struct.unpack("II", raw)  # reading resets the kernel's counters
        return received, dropped

    def close(self) -> None:
        self.sock.close()


class TsharkSource(PacketSource):
    """pyshark (tshark underneath): slower, but it names every protocol Wireshark dissects."""

    name = "tshark"
    bpf_compiler = "tshark capture filter (libpcap)"

    def __init__(self, iface: str, bpf: str | None) -> None:
        super().__init__(iface, bpf)
        if shutil.which("tshark") is None:
            raise CaptureError("--engine tshark needs tshark (apt install tshark)")
        self.hints: dict[int, str] = {}
        self.capture: Any = None

    def records(self, stop: threading.Event) -> Iterator[Record | None]:
        """pyshark blocks until a packet comes: it runs in its own thread, and an idle half second is a tick."""
        packets: queue.Queue[Record | BaseException | None] = queue.Queue(maxsize=10_000)
        threading.Thread(target=self._sniff, args=(packets, stop), name="pyshark", daemon=True).start()
        while not stop.is_set():
            try:
                item = packets.get(timeout=0.5)
            except queue.Empty:
                yield None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                self.error = f"tshark: {item}"
                return
            yield item

    def _sniff(self, out: queue.Queue[Record | BaseException | None], stop: threading.Event) -> None:
        import asyncio

        import pyshark

        try:
            asyncio.set_event_loop(asyncio.new_event_loop())
            self.capture = pyshark.LiveCapture(interface=self.iface, bpf_filter=self.bpf, use_json=True,
                                               include_raw=True)
            for index, pkt in enumerate(self.capture.sniff_continuously()):
                if stop.is_set():
                    break
                self.hints[index] = str(pkt.highest_layer).lower().removesuffix("_raw")
                out.put((index, int(float(pkt.sniff_timestamp) * 1e9), 1, pkt.get_raw_packet(), int(pkt.length)))
        except Exception as exc:  # reported through the queue: the capture loop ends with the reason
            out.put(exc)
        else:
            out.put(None)

    def protocol_hint(self, index: int) -> str | None:
        return self.hints.pop(index, None)

    def close(self) -> None:
        if self.capture is not None:
            # pyshark's close() must run on its own event loop, which lives in the sniffing thread;
            # ending the tshark processes it started is what matters, and is safe from here
            for process in list(getattr(self.capture, "_running_processes", ())):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


ENGINES: dict[str, type[PacketSource]] = {"fast": AfPacketSource, "tshark": TsharkSource}


# -- the capture loop -------------------------------------------------------------------------------
class LiveCapture:
    """Capture ``iface`` until ``duration`` seconds pass (or :meth:`stop`), writing events as flows end."""

    def __init__(self, iface: str, write: Callable[[list[dict[str, Any]]], int], *, bpf: str | None = None,
                 engine: str = "fast", config: MeterConfig | None = None, batch_size: int = 2000) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
        self.iface = iface
        self.write = write
        self.batch_size = batch_size
        self.source = ENGINES[engine](iface, bpf)
        started = time.time_ns()
        identity = f"{socket.gethostname()}:{iface}:{started}"
        self.meter = FlowMeter(lambda position: event_id("live", identity, position),
                               config or MeterConfig(), source=f"iface:{iface}")
        self.stats = CaptureStats(engine=engine, bpf=bpf, bpf_compiler=self.source.bpf_compiler)
        self._stop = threading.Event()
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()

    def stop(self) -> None:
        self._stop.set()

    def _writer(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                self.stats.written += self.write(batch)
            except Exception as exc:  # a store failure must not stop the capture loop
                reason = f"store write failed: {type(exc).__name__}"
                self.stats.problem_reasons[reason] = self.stats.problem_reasons.get(reason, 0) + len(batch)
                self.stats.problems += len(batch)
                self.stats.stopped_by = self.stats.stopped_by or f"{reason}: {str(exc)[:200]}"

    def _ship(self) -> None:
        meter = self.meter
        if meter.events:
            batch = meter.events[:]
            meter.events.clear()  # the same list: the meter's running loop holds it
            self.stats.events += len(batch)
            self._queue.put(batch)
        if meter.problems:
            for p in meter.problems:
                self.stats.problem_reasons[p.reason] = self.stats.problem_reasons.get(p.reason, 0) + 1
            self.stats.problems += len(meter.problems)
            meter.problems.clear()

    def run(self, duration: float | None = None, ready: threading.Event | None = None) -> CaptureStats:
        writer = threading.Thread(target=self._writer, name="capture-writer", daemon=True)
        writer.start()
        began = time.monotonic()
        if ready is not None:
            ready.set()
        try:
            # one long feed() over a generator: the meter's loop setup is paid once, not per packet
            with relaxed_gc():
                self.meter.feed(self._records(began + duration if duration else None))
        finally:
            self.stats.seconds = time.monotonic() - began
            self.stats.stopped_by = self.source.error
            with contextlib.suppress(OSError):
                self.stats.kernel_packets, self.stats.kernel_drops = self.source.kernel_stats()
            self.source.close()
            self.meter.flush()
            self._ship()
            self._queue.put(None)
            writer.join()
        return self.stats

    def _records(self, deadline: float | None) -> Iterator[Record]:
        """The source's records, with the housekeeping done between them (ticks, shipping, deadline)."""
        meter = self.meter
        source = self.source
        stats = self.stats
        pyfilter: PyFilter | None = getattr(source, "pyfilter", None)
        hinted = source.name == "tshark"
        events = meter.events
        batch_size = self.batch_size
        monotonic = time.monotonic
        next_tick = monotonic() + 0.5
        for rec in source.records(self._stop):
            if rec is not None:
                if pyfilter is not None and not self._passes(pyfilter, rec):
                    stats.filtered += 1
                    continue
                stats.packets += 1
                yield rec
                if hinted:
                    self._hint(rec)
                if len(events) >= batch_size:
                    self._ship()
                if stats.packets & 63 and not hinted:  # the clock is read every 64 packets, or when idle
                    continue
            now = monotonic()
            if now >= next_tick or rec is None:
                next_tick = now + 0.5
                meter.tick(time.time_ns())
                if events or meter.problems:
                    self._ship()
            if deadline is not None and now >= deadline:
                return

    def _hint(self, rec: Record) -> None:
        """tshark's name for the packet's highest protocol labels a flow our probes could not name."""
        hint = self.source.protocol_hint(rec[0])
        if hint and hint not in ("tcp", "udp", "ip", "ipv6", "eth", "data", "icmp", "icmpv6", "sll"):
            flow = self.meter.flow_of(rec)
            if flow is not None and flow.app is None:
                flow.app = hint

    @staticmethod
    def _passes(flt: PyFilter, rec: Record) -> bool:
        from collectors.pcap.decode import parse_ipv4, parse_ipv6
        from collectors.pcap.linktypes import LINKTYPES

        link = LINKTYPES.get(rec[2])
        l3 = link(rec[3]) if link else None
        if not l3 or not l3[0]:
            return False
        p = parse_ipv4(rec[3], l3[1]) if l3[0] == 4 else parse_ipv6(rec[3], l3[1])
        if isinstance(p, str):
            return True  # let the meter report it
        return flt.matches(p[0], p[1], p[2], p[3], p[4])


def can_capture() -> bool:
    """Root (or CAP_NET_RAW) on Linux."""
    return hasattr(socket, "AF_PACKET") and os.geteuid() == 0
