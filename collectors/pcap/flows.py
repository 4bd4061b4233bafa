"""The flow meter: packets in, ECS ``network.*`` events out.

One bidirectional record per 5-tuple (the first packet's sender is the originator; a
TCP flow first seen at its SYN-ACK is turned round), split the way flow exporters do:
by an idle timeout, an active timeout, and at a TCP close (RST, or FIN both ways) when a
new SYN reuses the ports. Bytes are frame bytes as on the wire, the figure ``tshark -z
conv`` reports. ``ztsoc.flow.state`` is Zeek's ``conn_state`` computed from the TCP
flags seen each way (:func:`conn_state`).

The meter is pure code: it never reads files or sockets, so the pcap reader and the
live capture feed the same one. ``packet()`` is the hot path: plain locals, byte
indexing, one or two dict look-ups per packet; application decoders (:mod:`apps`) run
only on the payload of flows still being probed or already identified.

Every event id is ``make_id(position)`` with the position the index of the first packet
of the flow or message: reading the same capture again gives the same ids. Flows that
are still open at a point are what a resumed read must see again, hence
:meth:`FlowMeter.resume_index`.
"""

from __future__ import annotations

import gc
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from collectors.base import clip, where_raised
from collectors.pcap.community_id import community_id
from collectors.pcap.decode import (
    ICMP,
    ICMP6,
    IP_TUNNELS,
    TCP,
    UDP,
    UDP_TUNNELS,
    parse_ipv4,
    parse_ipv6,
    transport_name,
)
from collectors.pcap.fragments import Fragment, Limits, Reassembler, maybe_fragment, read_fragment
from collectors.pcap.linktypes import LINKTYPES
from collectors.pcap.reader import Problem, Record

NS = 1_000_000_000
#: the link type reassembled datagrams are fed back as (LINKTYPE_RAW)
RAW_LINKTYPE = 101
#: how often (capture time) closed TCP flows are looked at
CLOSE_SWEEP = NS // 2
#: tunnels inside tunnels are followed this deep
MAX_LAYERS = 3
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: the fast path's one unpack of an Ethernet II + IPv4 + TCP/UDP frame: ethertype, version/IHL,
#: total length, flags/fragment offset, protocol, addresses and ports (12 bytes: the flow key,
#: :func:`flow_key`), TCP sequence number, data offset and flags
ETH_IPV4 = struct.Struct("!12xHBxHxxHxB2x12sI4xBB")

Event = dict[str, Any]
#: reasons a flow record is written while the flow may go on (no "end" in its event.type)
STILL_OPEN = frozenset(("end-of-capture", "active-timeout", "read-error", "evicted"))


@dataclass(slots=True)
class MeterConfig:
    idle_timeout: float = 120.0
    active_timeout: float = 1800.0
    #: a closed TCP flow waits this long for its last ACKs before it is reported
    close_delay: float = 2.0
    #: how often (capture time) the table is swept for expired flows
    sweep_interval: float = 5.0
    #: run the DNS / HTTP / TLS / ICMP decoders
    decode_apps: bool = True
    #: payload-bearing packets of an unidentified flow given to the protocol probes
    probe_packets: int = 4
    #: IP fragment reassembly bounds (timeout, fragments per datagram, memory)
    fragments: Limits = field(default_factory=Limits)
    #: a reassembled datagram's bytes: "wire" (every fragment's frame) or "last" (the frame
    #: that completed it, what ``tshark -z conv`` counts); its packets are 1 either way
    fragment_bytes: str = "last"
    #: open flows kept at most; past it the least recently seen eighth is reported ("evicted") and
    #: forgotten, as Zeek and NFStream do. Sized for a small sensor (softflowd's default is 8,192):
    #: an office of a few hundred hosts keeps a few thousand flows open within the 2-minute idle
    #: timeout; 10,000 open flows take about 5 MB (about 530 bytes each), so peak RSS stays flat
    #: however many flows a capture opens (``bench/pcap.py --concurrent``). A busier link raises it
    #: (``--max-flows``); past the cap, flows are split (reported, then counted anew), never lost.
    max_flows: int = 10_000


#: what follows the packed addresses and ports in a flow key: nothing for TCP (the fast path's
#: 12-byte slice is the key as it is), the protocol number for everything else
_PROTO_TAG: tuple[bytes, ...] = tuple(b"" if p == TCP else bytes((p,)) for p in range(256))
_PORTS = struct.Struct("!HH")
#: a flow key's tuple, by the key's family (length): addresses, ports (the protocol tag after them)
_TUPLE4, _TUPLE6 = struct.Struct("!4s4sHH").unpack_from, struct.Struct("!16s16sHH").unpack_from
_KEY4, _KEY6 = struct.Struct("!4s4sHH").pack, struct.Struct("!16s16sHH").pack


def flow_key(src: bytes, dst: bytes, sport: int, dport: int, proto: int) -> bytes:
    """A flow's key in the meter's table: the packed addresses, the ports and the protocol's tag.

    One bytes object (hashed once, no tuple of five to build and hash per packet). For IPv4
    TCP it is exactly bytes 26 to 38 of an Ethernet frame, so the fast path slices it out.
    Lengths tell the families apart (12/13 bytes IPv4, 36/37 IPv6).
    """
    return src + dst + _PORTS.pack(sport, dport) + _PROTO_TAG[proto]


def reverse_key(key: bytes) -> bytes:
    """The key of the same flow seen the other way (addresses and ports swapped)."""
    if len(key) < 36:
        src, dst, sport, dport = _TUPLE4(key)
        return _KEY4(dst, src, dport, sport) + key[12:]
    src, dst, sport, dport = _TUPLE6(key)
    return _KEY6(dst, src, dport, sport) + key[36:]


class Flow:
    """One open flow: a compact record (slots; addresses and ports live in its key only).

    The meter's table holds each flow under both directions' keys, so a packet finds its flow
    with one look-up and its direction by comparing its key with ``key`` (the originator's).
    """

    __slots__ = (
        "app",
        "base",
        "closing",
        "done",
        "first_index",
        "handler",
        "icmp",
        "key",
        "last",
        "layer",
        "oby",
        "oflags",
        "opk",
        "probes",
        "proto",
        "rby",
        "rflags",
        "rkey",
        "rpk",
        "split",
        "start",
        "state",
        "tunnel",
        "vlan",
    )

    def __init__(self, key: bytes, proto: int, index: int, ts: int, vlan: int, probes: int) -> None:
        self.key = key  # the originator's direction
        self.rkey = reverse_key(key)  # the responder's
        self.proto = proto
        self.first_index = index
        self.start = self.last = ts
        self.opk = self.oby = self.rpk = self.rby = 0
        self.oflags = self.rflags = 0
        self.vlan = vlan
        self.app: str | None = None
        #: the decoder that takes this flow's payloads once its protocol is known
        #: (flow, payload, from the originator, packet index, time, TCP sequence number)
        self.handler: Callable[[Flow, bytes, bool, int, int, int], None] | None = None
        self.probes = probes
        self.state: Any = None
        self.split = 0  # 1: continues a flow cut by the active timeout
        self.icmp = 0
        self.tunnel = False  # carries a tunnel: what it carries is metered too (FlowMeter._tunnel)
        self.closing = False  # in the meter's list of closed flows waiting for their last ACKs
        self.done = False  # reported (its event is out); a closing-list entry then is only skipped
        self.layer = 0  # 0: the packet itself; 1: inside a tunnel; 2: inside a tunnel in a tunnel...
        self.base: dict[str, Any] | None = None  # the fields its events share (FlowMeter._base)

    # the tuple, read from the key (events, probes and tests; never the per-packet path)
    def endpoints(self) -> tuple[bytes, bytes, int, int]:
        """``(src, dst, sport, dport)`` of the originator's direction, in one unpack."""
        return _TUPLE4(self.key) if len(self.key) < 36 else _TUPLE6(self.key)

    @property
    def src(self) -> bytes:
        return self.key[:4] if len(self.key) < 36 else self.key[:16]

    @property
    def dst(self) -> bytes:
        return self.key[4:8] if len(self.key) < 36 else self.key[16:32]

    @property
    def sport(self) -> int:
        a = 8 if len(self.key) < 36 else 32
        return (self.key[a] << 8) | self.key[a + 1]

    @property
    def dport(self) -> int:
        a = 10 if len(self.key) < 36 else 34
        return (self.key[a] << 8) | self.key[a + 1]

    @property
    def closed(self) -> bool:
        return bool((self.oflags | self.rflags) & RST) or bool(self.oflags & self.rflags & FIN)


@contextmanager
def relaxed_gc(threshold: int = 100_000) -> Iterator[None]:
    """Run the collector with a higher first-generation GC threshold, then restore the old one.

    Metering allocates several small objects per packet and none of them form reference
    cycles, yet each 700 allocations trigger a collection that walks the young objects and,
    every so often, the whole heap (open flows, pending events): about a quarter of the run
    time, measured. Reference counting still frees everything at once; only the cycle
    detector runs less often.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def conn_state(flow: Flow) -> str:
    """Zeek's conn_state from the flags each side sent (approximated without sequence numbers)."""
    o, r = flow.oflags, flow.rflags
    if flow.proto != TCP:
        return "SF" if flow.rpk else "S0"
    o_syn, r_syn = o & SYN, r & SYN
    if o_syn and not r_syn:
        if o & RST:
            return "RSTOS0"
        if r & RST:
            return "REJ"
        if o & FIN:
            return "SH"
        return "S0" if not flow.rpk else "OTH"
    if r_syn and not o_syn:
        if r & RST:
            return "RSTRH"
        if r & FIN:
            return "SHR"
        return "OTH"
    if not o_syn:
        return "OTH"
    if o & RST:
        return "RSTO"
    if r & RST:
        return "RSTR"
    if o & FIN and r & FIN:
        return "SF"
    if o & FIN:
        return "S2"
    if r & FIN:
        return "S3"
    return "S1"


_IP_TEXT: dict[bytes, str] = {}


def ip_text(addr: bytes) -> str:
    """The text form of a packed address, cached: the same hosts come back flow after flow."""
    text = _IP_TEXT.get(addr)
    if text is None:
        if len(_IP_TEXT) > 4096:  # bounded: memory stays flat whatever the number of hosts
            _IP_TEXT.clear()
        text = _IP_TEXT[addr] = socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)
    return text


_ISO_SECONDS: dict[int, str] = {}
_MILLIS: tuple[str, ...] = tuple(f"{ms:03d}Z" for ms in range(1000))


def iso_ns(ts_ns: int) -> str:
    """UTC, millisecond precision, ``Z``: the one timestamp format of the store."""
    sec, rest = divmod(ts_ns, NS)
    prefix = _ISO_SECONDS.get(sec)
    if prefix is None:
        if len(_ISO_SECONDS) > 4096:
            _ISO_SECONDS.clear()
        prefix = _ISO_SECONDS[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    return prefix + _MILLIS[rest // 1_000_000]


class FlowMeter:
    """Feed it packets with :meth:`packet`; take ``events`` and ``problems`` as they fill."""

    def __init__(self, make_id: Callable[[str], str], config: MeterConfig | None = None,
                 source: str = "capture") -> None:
        from collectors.pcap.apps import AppDecoders

        self.config = config or MeterConfig()
        self.make_id = make_id
        self.source = source
        #: every open flow under both directions' keys (:func:`flow_key`); :meth:`open_flows` lists them once
        self.table: dict[bytes, Flow] = {}
        self.open = 0  # flows in the table
        #: bytes held in the TCP reordering windows of all open flows (apps.AppHandler.segment keeps it
        #: under tcpstream.MAX_HELD_TOTAL)
        self.held_bytes = 0
        self.defrag = Reassembler(self._problem, self.config.fragments)
        self._held_vlan = -1
        self.events: list[Event] = []
        self.problems: list[Problem] = []
        self.stats: Counter[str] = Counter()
        self.non_ip = 0
        self.next_index = 0
        self.apps = AppDecoders(self)
        self._idle = int(self.config.idle_timeout * NS)
        self._active = int(self.config.active_timeout * NS)
        self._close = int(self.config.close_delay * NS)
        self._sweep_every = int(self.config.sweep_interval * NS)
        self._next_sweep = 0
        self._next_idle_sweep = 0
        #: no open flow can have passed the active timeout before this time: the earliest start of any
        #: flow plus the timeout (so the hot loop compares, rather than subtracts, for most packets)
        self._active_from = 1 << 63
        self._closing: list[Flow] = []
        self._layer = 0
        self._probes = self.config.probe_packets if self.config.decode_apps else 0
        self._max_flows = max(1, self.config.max_flows)
        self._unknown_links: set[int] = set()

    # -- the hot path -------------------------------------------------------------------------
    def packet(self, index: int, ts: int, linktype: int, data: bytes, wirelen: int) -> None:
        """One packet (live capture); files go through :meth:`feed`, which saves a call per packet."""
        self.feed(((index, ts, linktype, data, wirelen),))

    def feed(self, records: Iterable[Record], max_events: int = 1 << 62) -> bool:
        """Meter records until they run out (True) or ``max_events`` events and problems are waiting (False).

        ``next_index`` is then the index after the last record taken, so the caller can resume
        the same iterator after draining ``events``.
        """
        get = self.table.get
        events = self.events
        problems = self.problems
        idle, active, active_from = self._idle, self._active, self._active_from
        apps_payload = self.apps.payload
        general = self._general
        eth_ipv4 = ETH_IPV4.unpack_from
        next_sweep = self._next_sweep
        it = iter(records)
        index, linktype, data = self.next_index - 1, -1, b""  # what the boundary names if the source fails first
        while True:  # the decoder boundary: one packet's exception is that packet's problem
            try:
                for index, ts, linktype, data, wirelen in it:
                    # Fast path, inlined on purpose (it is most of any capture): Ethernet II, IPv4
                    # without options, unfragmented, TCP or UDP with a complete header (the IPv4 length
                    # covering the UDP one: what parse_ipv4 would refuse goes the long way). Anything else
                    # goes through _general, which handles every case through the registries.
                    if linktype == 1 and len(data) >= 54:
                        ethertype, vihl, total, fragword, proto, key, seq, doff, flags = eth_ipv4(data)
                    else:
                        ethertype = 0
                    if ethertype == 0x0800 and vihl == 0x45 and not fragword & 0x3FFF and (
                            (proto == 6 and doff >= 0x50) or (proto == 17 and total >= 28)):
                        pe = 14 + total
                        if pe > len(data):
                            pe = len(data)
                        if proto == 6:
                            ps = 34 + ((doff >> 4) << 2)
                        else:
                            key += b"\x11"  # flow_key's tag of UDP
                            flags = 0
                            ps = 42
                        vlan = -1
                    else:
                        parsed = general(index, linktype, data, ts, wirelen)
                        if parsed is None:
                            if len(problems) >= max_events:  # a capture of unreadable packets: hand them over too
                                self.next_index = index + 1
                                return False
                            continue
                        key, proto, flags, ps, pe, seq, vlan = parsed
                    if ts >= next_sweep:
                        self._sweep(ts)
                        next_sweep = self._next_sweep
                    flow = get(key)
                    if flow is None:
                        flow = self._new_flow(key, proto, index, ts, vlan, flags)
                        active_from = self._active_from
                    if ts - flow.last > idle or (ts > active_from and ts - flow.start > active) or (
                            flags & 0x12 == SYN and proto == TCP and flow.closed and flow.opk + flow.rpk > 1):
                        flow = self._restart(flow, key, proto, index, ts, vlan, flags)
                        active_from = self._active_from
                    fwd = key == flow.key
                    if fwd:
                        flow.opk += 1
                        flow.oby += wirelen
                        flow.oflags |= flags
                    else:
                        flow.rpk += 1
                        flow.rby += wirelen
                        flow.rflags |= flags
                    flow.last = ts
                    if flags & 5 and not flow.closing and flow.closed:  # FIN or RST: closed now?
                        flow.closing = True
                        self._closing.append(flow)
                    if pe > ps and flow.probes:
                        # a SYN takes one sequence number: data it carries (TCP Fast Open) starts after it
                        (flow.handler or apps_payload)(flow, data[ps:pe], fwd, index, ts, seq + (flags >> 1 & 1))
                    if flow.tunnel:
                        self._tunnel(index, ts, data, ps, pe, flow, wirelen)
                    # problems count too: a flood of malformed DNS in one flow makes problems and no events
                    if len(events) + len(problems) >= max_events:
                        self.next_index = index + 1
                        return False
                self.next_index = index + 1
                return True
            except Exception as exc:  # any decoder bug stays with its packet
                self._packet_failed(it, exc, index, linktype, data)
                next_sweep, active_from = self._next_sweep, self._active_from

    def _packet_failed(self, records: Iterator[Record], exc: Exception, index: int, linktype: int,
                       data: bytes) -> None:
        """The boundary's handler: an unexpected exception while metering one packet.

        It becomes a problem of that packet (the reason names the exception, the detail
        where it was raised), the flow it belongs to stops being decoded (its counters go
        on), and the caller carries on with the next packet. An exception raised by the
        record source itself (the file reader) is not a packet's: it goes up.
        """
        tb = exc.__traceback__
        if tb is not None and tb.tb_next is not None and tb.tb_next.tb_frame.f_code is getattr(
                records, "gi_code", None):
            raise exc
        self._problem(index, f"decoder error: {type(exc).__name__}", f"{clip(str(exc), 200)} (in {where_raised(exc)})")
        try:
            flow = self.flow_of((index, 0, linktype, data, len(data)))
        except Exception:  # the packet cannot even be placed: nothing to stop
            flow = None
        if flow is not None:
            flow.probes, flow.handler, flow.state = 0, None, None

    def _tunnel(self, index: int, ts: int, data: bytes, ps: int, pe: int, flow: Flow, wirelen: int) -> None:
        """Meter what a tunnel carries as a flow of its own (one level per call, at most MAX_LAYERS)."""
        if self._layer >= MAX_LAYERS:
            return
        decoder = (UDP_TUNNELS.get(flow.dport) or UDP_TUNNELS[flow.sport]) if flow.proto == 17 else IP_TUNNELS[flow.proto]
        inner = decoder(data, ps, pe)
        if inner is None:
            return
        self.stats["tunnelled packets"] += 1
        self._layer += 1
        try:
            self.feed(((index, ts, inner[0], inner[1], wirelen),))
        finally:
            self._layer -= 1

    def tick(self, now_ns: int) -> None:
        """Wall-clock time passes with no packet (live capture): expire what is due."""
        if now_ns >= self._next_sweep:
            self._sweep(now_ns)

    def flow_of(self, record: Record) -> Flow | None:
        """The open flow a record belongs to (slow path: for callers outside the hot loop)."""
        link = LINKTYPES.get(record[2])
        l3 = link(record[3]) if link else None
        if not l3 or not l3[0]:
            return None
        p = parse_ipv4(record[3], l3[1]) if l3[0] == 4 else parse_ipv6(record[3], l3[1])
        if isinstance(p, str):
            return None
        src, dst, proto, sport, dport = p[:5]
        return self.table.get(flow_key(src, dst, sport, dport, proto))

    @property
    def flows(self) -> dict[bytes, Flow]:
        """Every open flow by its originator's key, oldest first (a new dict: for callers outside the hot path)."""
        return {f.key: f for f in self._each_flow()}

    def open_flows(self) -> list[Flow]:
        """Every open flow once, oldest first (the table holds each under both directions' keys)."""
        return list(self._each_flow())

    def _each_flow(self) -> Iterator[Flow]:
        return (f for k, f in self.table.items() if k is f.key)

    def _general(self, index: int, linktype: int, data: bytes, ts: int = 0,
                 wirelen: int = 0) -> tuple[bytes, int, int, int, int, int, int] | None:
        """Any link type, IPv6, VLANs, fragments, IP options; None (counted) when there is no flow to meter.

        What it returns: the flow key (:func:`flow_key`), protocol, TCP flags, payload start and end,
        TCP sequence number, VLAN.

        A fragment goes to the reassembler (:mod:`fragments`) and is not metered itself: the
        datagram it completes, if any, is fed back as one raw IP packet.
        """
        link = LINKTYPES.get(linktype)
        if link is None:
            self._problem(index, "unsupported link type", f"link type {linktype}")
            return None
        l3 = link(data)
        if l3 is None:
            self._problem(index, "truncated link-layer header", f"{len(data)} bytes")
            return None
        version, off, vlan = l3
        if self._held_vlan >= 0 and linktype == RAW_LINKTYPE:
            vlan, self._held_vlan = self._held_vlan, -1
        if not version:
            self.non_ip += 1
            return None
        if maybe_fragment(data, version, off):
            frag = read_fragment(data, version, off)
            if isinstance(frag, str):
                self._problem(index, frag, f"{len(data)} bytes captured")
                return None
            if frag is not None:
                self._fragment(index, ts, frag, wirelen, vlan)
                return None
        p = parse_ipv4(data, off) if version == 4 else parse_ipv6(data, off)
        if isinstance(p, str):
            self._problem(index, p, f"{len(data)} bytes captured")
            return None
        src, dst, proto, sport, dport, flags, ps, pe, _frag, seq = p
        return src + dst + _PORTS.pack(sport, dport) + _PROTO_TAG[proto], proto, flags, ps, pe, seq, vlan

    # -- flow life ------------------------------------------------------------------------------
    def _new_flow(self, key: bytes, proto: int, index: int, ts: int, vlan: int, flags: int) -> Flow:
        if proto == TCP and flags & 0x12 == 0x12:  # first seen at the SYN-ACK: the sender is the responder
            key = reverse_key(key)
        flow = Flow(key, proto, index, ts, vlan, self._probes)
        if ts + self._active < self._active_from:
            self._active_from = ts + self._active
        if proto in (ICMP, ICMP6):
            flow.icmp = 1
        elif proto in IP_TUNNELS or (proto == UDP and (flow.dport in UDP_TUNNELS or flow.sport in UDP_TUNNELS)):
            flow.tunnel = True
        flow.layer = self._layer
        if self.open >= self._max_flows:
            self._evict()
        table = self.table
        table[key] = table[flow.rkey] = flow
        self.open += 1
        return flow

    def _evict(self) -> None:
        """The table is full: report and forget the least recently seen eighth of it.

        In bulk, so the sort is paid once per ``max_flows / 8`` new flows (well under a
        microsecond per new flow), never per packet. An evicted flow that speaks again starts
        a new record, as after an idle timeout.
        """
        flows = self.open_flows()
        count = max(1, len(flows) >> 3)
        cut = sorted(f.last for f in flows)[count - 1]
        evicted = 0
        for flow in flows:
            if flow.last <= cut and evicted < count:
                self._end(flow, "evicted")
                evicted += 1
        self.stats["flows evicted (table full)"] += evicted

    def _restart(self, old: Flow, key: bytes, proto: int, index: int, ts: int, vlan: int, flags: int) -> Flow:
        active = ts - old.start > self._active and ts - old.last <= self._idle
        self._end(old, "active-timeout" if active else ("idle-timeout" if ts - old.last > self._idle else "tcp-reuse"))
        new = self._new_flow(key, proto, index, ts, vlan, flags)
        if active:
            new.split = 1
            new.app, new.state, new.probes, new.handler = old.app, old.state, old.probes, old.handler
            old.state = None
        return new

    def _end(self, flow: Flow, reason: str) -> None:
        table = self.table
        del table[flow.key]
        if flow.rkey != flow.key:  # (a flow from a host and port to themselves has one key)
            del table[flow.rkey]
        self.open -= 1
        flow.done = True
        try:
            self.apps.finish(flow)
        except Exception as exc:  # the boundary again: the flow's own event still goes out
            self._problem(flow.first_index, f"decoder error: {type(exc).__name__}", clip(str(exc), 200))
        self.events.append(self.flow_event(flow, reason))

    def _fragment(self, index: int, ts: int, frag: Fragment, wirelen: int, vlan: int) -> None:
        """Hold a fragment; meter the datagram it completes as one packet (as tshark, Zeek, Suricata do)."""
        self.stats["ip fragments"] += 1
        done = self.defrag.add(index, ts, frag, wirelen, vlan, self._layer)
        if done is not None:
            self.stats["reassembled datagrams"] += 1
            self._held_vlan = vlan  # the raw datagram has no link layer: its fragments' VLAN, once
            try:
                self.feed(((index, ts, RAW_LINKTYPE, done[0], done[1] if self.config.fragment_bytes == "wire"
                            else wirelen),))
            finally:
                self._held_vlan = -1

    def _sweep(self, ts: int) -> None:
        """Every half second of capture time: report closed TCP flows; every sweep_interval: idle ones.

        Closed flows are kept in their own short list, so the frequent half of the sweep costs
        nothing for the open ones and memory follows the number of OPEN flows, not the capture.
        """
        self._next_sweep = (ts // CLOSE_SWEEP + 1) * CLOSE_SWEEP
        close = self._close
        if self._closing:
            keep = []
            for flow in self._closing:
                if flow.done:
                    continue  # already reported (reuse of the ports, or the idle sweep)
                if ts - flow.last > close:
                    self._end(flow, "tcp-close")
                else:
                    keep.append(flow)
            self._closing = keep
        if ts < self._next_idle_sweep:
            return
        self._next_idle_sweep = (ts // self._sweep_every + 1) * self._sweep_every
        idle = self._idle
        # the active timeout is applied by the packet that crosses it (so the next part can carry on)
        for flow in [f for k, f in self.table.items() if ts - f.last > idle and k is f.key]:
            self._end(flow, "idle-timeout")
        if self.defrag.pending:
            self.defrag.expire(ts)

    def flush(self, reason: str = "end-of-capture", limit: int | None = None) -> bool:
        """End of input: report every open flow and every unanswered message; True when none is left.

        ``reason`` marks the flows still open: ``read-error`` when the input failed part-way
        (the flows are what was read of them before the failure). ``limit``: end at most that
        many flows now (oldest first), so a caller can store their events before making more:
        100,000 open flows would otherwise become 100,000 events in memory at once.
        """
        flows = list(islice(self._each_flow(), limit)) if limit else self.open_flows()  # O(limit), oldest first
        for flow in flows:
            self._end(flow, "tcp-close" if flow.closed else reason)
        if self.open:
            return False
        self.defrag.flush()
        return True

    def resume_index(self, next_index: int) -> int:
        """The first packet a resumed read must start from to rebuild every open flow."""
        starts = [f.first_index for f in self.table.values()]
        held = self.defrag.oldest_index()
        if held is not None:
            starts.append(held)
        return min(starts, default=next_index)

    def _problem(self, index: int, reason: str, detail: str) -> None:
        self.stats[reason] += 1
        self.problems.append(Problem(index, reason, detail))

    # -- events -------------------------------------------------------------------------------
    def _base(self, flow: Flow) -> Event:
        """The fields every event of a flow shares (tuple, transport, Community ID), built once per flow.

        Events copy it (one C-level dict merge) instead of formatting addresses and hashing
        the Community ID again for the flow record and each DNS/HTTP/TLS message.
        """
        base = flow.base
        if base is None:
            saddr, daddr, sport, dport = flow.endpoints()
            src, dst = ip_text(saddr), ip_text(daddr)
            base = {
                "event.kind": "event",
                "network.transport": transport_name(flow.proto),
                "network.type": "ipv4" if len(saddr) == 4 else "ipv6",
                "network.iana_number": str(flow.proto),
                "network.community_id": community_id(saddr, daddr, flow.proto, sport, dport),
                "source.ip": src,
                "destination.ip": dst,
                "ztsoc.source.name": self.source,
            }
            if not flow.icmp:
                base["source.port"] = sport
                base["destination.port"] = dport
            if flow.vlan >= 0:
                base["network.vlan.id"] = str(flow.vlan)
            flow.base = base
        return base

    def base_fields(self, flow: Flow) -> Event:
        """What every event of a flow shares: the tuple, its transport, its Community ID (a fresh dict)."""
        base = self._base(flow)
        src, dst = base["source.ip"], base["destination.ip"]
        doc: Event = {**base, "event.category": ["network"], "related.ip": [src, dst] if src != dst else [src]}
        if flow.app:
            doc["network.protocol"] = flow.app
        return doc

    def flow_event(self, flow: Flow, reason: str) -> Event:
        base = self._base(flow)
        src, dst = base["source.ip"], base["destination.ip"]
        types = ["connection"] if flow.split else ["connection", "start"]
        if reason not in STILL_OPEN:
            types.append("end")
        start = iso_ns(flow.start)
        first = flow.first_index
        opk, rpk, oby, rby = flow.opk, flow.rpk, flow.oby, flow.rby
        doc: Event = {
            **base,
            "event.category": ["network"],
            "related.ip": [src, dst] if src != dst else [src],
            "@timestamp": start,
            "event.id": self.make_id(f"{first}.{flow.layer}:flow" if flow.layer else f"{first}:flow"),
            "event.dataset": "network.flow",
            "event.action": "network-flow",
            "event.type": types,
            "event.start": start,
            "event.end": iso_ns(flow.last),
            "event.duration": flow.last - flow.start,
            "event.reason": reason,
            "source.packets": opk,
            "source.bytes": oby,
            "destination.packets": rpk,
            "destination.bytes": rby,
            "network.packets": opk + rpk,
            "network.bytes": oby + rby,
            "ztsoc.flow.state": conn_state(flow),
            "ztsoc.source.position": f"packet {first}",
        }
        if flow.app:
            doc["network.protocol"] = flow.app
        if flow.icmp:
            doc["ztsoc.icmp.type"] = flow.sport
        if flow.layer:
            doc["tags"] = ["tunnelled"]
        if flow.state is not None:  # a decoded TCP flow: what its sequence numbers showed (tcpstream)
            doc.update(self.apps.flow_fields(flow))
        return doc

    def app_event(self, flow: Flow, dataset: str, position: str, index: int, ts: int, fields: Event,
                  end: int | None = None, reverse: bool = False) -> None:
        """An application event of a flow (DNS transaction, HTTP exchange, TLS handshake...)."""
        base = self._base(flow)
        src, dst = base["source.ip"], base["destination.ip"]
        start = iso_ns(ts)
        if flow.layer:
            position = f"{position}.{flow.layer}"
        doc: Event = {
            **base,
            "event.category": ["network"],
            "related.ip": [src, dst] if src != dst else [src],
            "@timestamp": start,
            "event.id": self.make_id(f"{position}:{dataset}"),
            "event.dataset": dataset,
            "event.type": ["protocol", "info"] if dataset != "network.icmp" else ["info"],
            "ztsoc.source.position": f"packet {index}",
        }
        if flow.app:
            doc["network.protocol"] = flow.app
        if reverse:  # a message whose sender is the flow's responder (e.g. a server-initiated one)
            doc["source.ip"], doc["destination.ip"] = dst, src
            if not flow.icmp:
                doc["source.port"], doc["destination.port"] = base["destination.port"], base["source.port"]
        if end is not None:
            doc["event.start"] = start
            doc["event.end"] = iso_ns(end)
            doc["event.duration"] = end - ts
        doc.update(fields)
        self.events.append(doc)
