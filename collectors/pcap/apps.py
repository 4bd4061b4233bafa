"""Application decoders on top of the flow meter: which protocol a flow speaks, and its messages.

``PROBES`` is the registry: each entry looks at the first payload of a flow and says
whether it is its protocol; the matching :class:`AppHandler` then receives the flow's
payloads while it still wants them (``flow.probes`` > 0) and emits DNS transactions,
HTTP exchanges and TLS handshakes through :meth:`FlowMeter.app_event`. A payload that
claims a protocol but does not parse is a problem with the reason, never an exception.
On TCP, every handler first passes the segment through its flow's :class:`TcpStream`
(sequence numbers): a retransmission is dropped there, so it is never a second message,
and the counts go on the flow record (:meth:`AppDecoders.flow_fields`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collectors.pcap import dns, http, icmp, tls
from collectors.pcap.decode import TCP, UDP
from collectors.pcap.reader import Problem
from collectors.pcap.tcpstream import IN_ORDER, LATE, MAX_HELD_TOTAL, Direction, TcpStream

if TYPE_CHECKING:
    from collectors.pcap.flows import Flow, FlowMeter

FOREVER = 1 << 40


class AppHandler:
    name = "?"

    def __init__(self, meter: FlowMeter) -> None:
        self.meter = meter

    def payload(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        raise NotImplementedError

    def finish(self, flow: Flow) -> None:
        """The flow ends: report what is still pending."""

    # -- TCP: a segment through its direction's sequence tracking, then to _read in stream order --
    def segment(self, flow: Flow, side: Direction, seq: int, data: bytes, fwd: bool, index: int, ts: int) -> None:
        before = side.held_bytes
        new = side.accept(seq, data, index, ts)
        if new is not None:  # None: a retransmission (read the first time), or held in the reordering window
            self._read(flow, side, new, fwd, index, ts)
        if side.held:
            self._drain(flow, side, fwd)
        held = side.held_bytes
        if held != before:  # the meter's windows together stay under MAX_HELD_TOTAL
            meter = self.meter
            meter.held_bytes += held - before
            if meter.held_bytes > MAX_HELD_TOTAL and held:
                side.overflows += 1
                side.flush()
                self._drain(flow, side, fwd)
                meter.held_bytes -= held

    def _drain(self, flow: Flow, side: Direction, fwd: bool) -> None:
        """What the reordering window gives now, each piece with its own packet."""
        new = side.release()
        while new is not None:
            self._read(flow, side, new, fwd, side.index, side.ts)
            new = side.release()

    def flush_tcp(self, flow: Flow, tcp: TcpStream, read: bool = True) -> None:
        """The flow ends: segments still waiting for missing bytes are read after their gap (or,
        ``read`` False, dropped: the decoder is done with the flow)."""
        for fwd in (True, False):
            side = tcp.side(fwd)
            if side.held:
                held = side.held_bytes
                if read:
                    side.flush()
                    self._drain(flow, side, fwd)
                else:
                    side.forget()
                self.meter.held_bytes -= held

    def _read(self, flow: Flow, side: Direction, data: bytes, fwd: bool, index: int, ts: int) -> None:
        """New bytes of a TCP direction, in stream order (``side.kind``: after a gap, or filling one)."""


# -- DNS ------------------------------------------------------------------------------------
#: requests of one flow waiting for their answer, at most (DNS queries by id, HTTP requests in order).
#: Past it the oldest is reported unanswered: a query flood with fresh ids (random-subdomain attacks
#: against a server that does not answer) once held up to 65,536 parsed queries per flow (37 MB, and
#: more with answers packed into the queries) for as long as the flow lived, times every open flow
MAX_PENDING = 64


@dataclass(slots=True)
class _DnsState:
    pending: dict[int, tuple[dns.DnsMessage, int, int, bool]] = field(default_factory=dict)
    tcp: TcpStream | None = None  # DNS over TCP only


class DnsHandler(AppHandler):
    name = "dns"

    def payload(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        state: _DnsState = flow.state
        if flow.proto != TCP:
            self._message(flow, state, data, fwd, index, ts)
            return
        if state.tcp is None:
            state.tcp = TcpStream()
        self.segment(flow, state.tcp.side(fwd), seq, data, fwd, index, ts)  # a resent query is not a second one

    def _read(self, flow: Flow, side: Direction, data: bytes, fwd: bool, index: int, ts: int) -> None:
        if len(data) >= 14:  # else a length prefix alone, or a segment in the middle of a message
            self._message(flow, flow.state, data[2:2 + ((data[0] << 8) | data[1])], fwd, index, ts)

    def _message(self, flow: Flow, state: _DnsState, data: bytes, fwd: bool, index: int, ts: int) -> None:
        try:
            msg = dns.parse_dns(data)
        except dns.DnsError as exc:
            self.meter.problems.append(Problem(index, f"malformed DNS: {exc}", f"{len(data)} bytes"))
            self.meter.stats[f"malformed DNS: {exc}"] += 1
            return
        if not msg.response:
            old = state.pending.pop(msg.id, None)
            if old is None and len(state.pending) >= MAX_PENDING:  # queries never answered: the oldest goes out
                old = state.pending.pop(next(iter(state.pending)))
                self.meter.stats["DNS queries reported before an answer (pending cap)"] += 1
            if old is not None:
                self._emit(flow, old[0], None, old[1], old[2], None, old[3])
            state.pending[msg.id] = (msg, index, ts, fwd)
            return
        query = state.pending.pop(msg.id, None)
        if query is None:
            self._emit(flow, None, msg, index, ts, None, not fwd)
        else:
            self._emit(flow, query[0], msg, query[1], query[2], ts, query[3])

    def _emit(self, flow: Flow, query: dns.DnsMessage | None, response: dns.DnsMessage | None, index: int,
              ts: int, end: int | None, query_fwd: bool) -> None:
        fields = dns.dns_fields(query, response)
        fields["event.action"] = "dns-transaction" if query is not None and response is not None else (
            "dns-query" if response is None else "dns-response")
        self.meter.app_event(flow, "network.dns", str(index), index, ts, fields, end, reverse=not query_fwd)

    def finish(self, flow: Flow) -> None:
        state: _DnsState | None = flow.state
        if state is not None:
            if state.tcp is not None:
                self.flush_tcp(flow, state.tcp)
            for msg, index, ts, fwd in state.pending.values():
                self._emit(flow, msg, None, index, ts, None, fwd)
            state.pending.clear()


def _probe_dns(flow: Flow, data: bytes, fwd: bool) -> bool:
    return (flow.sport in dns.DNS_PORTS or flow.dport in dns.DNS_PORTS) and (
        flow.proto == UDP or flow.dport == 53 or flow.sport == 53)


#: ports of protocols that borrow DNS's message format but are not DNS (NetBIOS name service)
NOT_DNS = frozenset((137,))


def _probe_dns_shape(flow: Flow, data: bytes, fwd: bool) -> bool:
    """DNS on any other UDP port, recognised by its shape: a standard query with one question,
    no answers, and a question that parses as a name (tshark's heuristic, made stricter)."""
    if flow.proto != UDP or flow.sport in NOT_DNS or flow.dport in NOT_DNS:
        return False
    if len(data) < 17 or data[4:6] != b"\x00\x01" or data[2] & 0xF8 or data[3] & 0x40:
        return False  # not: a query (QR 0) of opcode 0 with one question and Z clear
    if data[6:10] != b"\x00\x00\x00\x00" or data[10] or data[11] > 1:
        return False  # a query carries no answers nor authority, and at most the EDNS record
    try:
        msg = dns.parse_dns(data)
    except dns.DnsError:
        return False
    name = msg.qname or ""
    return bool(name) and name.replace("-", "").replace("_", "").replace(".", "").isalnum() and name.isascii()


# -- HTTP -----------------------------------------------------------------------------------
@dataclass(slots=True)
class _HttpState:
    pending: deque[tuple[http.HttpRequest, int, int, bool]] = field(default_factory=deque)
    tcp: TcpStream = field(default_factory=TcpStream)
    up: http.HttpStream = field(default_factory=http.HttpStream)  # from the flow's originator
    down: http.HttpStream = field(default_factory=http.HttpStream)


class HttpHandler(AppHandler):
    name = "http"

    def payload(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        tcp: TcpStream = flow.state.tcp
        self.segment(flow, tcp.orig if fwd else tcp.resp, seq, data, fwd, index, ts)

    def _read(self, flow: Flow, side: Direction, new: bytes, fwd: bool, index: int, ts: int) -> None:
        state: _HttpState = flow.state
        stream = state.up if fwd else state.down
        if side.kind != IN_ORDER:
            if side.kind == LATE:  # fills a gap: read on its own, the stream's place is kept
                stream = http.HttpStream()
            else:  # after a gap: what the stream held cannot be continued
                stream.reset()
        elif stream.skip >= len(new) and not stream.buf:  # inside a body: the common case of a download
            stream.skip -= len(new)
            return
        elif stream.skip == http.UNKNOWN and new[:4] not in http.PREFIXES:
            return
        for head, hindex, hts, order in stream.heads(new, index, ts):
            if head is None:
                problem = Problem(hindex, "HTTP head too long", f"no end of the head in its first {http.MAX_HEAD} bytes")
                self.meter.problems.append(problem)
                self.meter.stats[problem.reason] += 1
                continue
            msg = http.parse_head(head)
            if isinstance(msg, http.HttpResponse):
                pending = state.pending.popleft() if state.pending else None
                stream.body(http.body_length(msg, pending[0].method if pending else None))
                if pending is not None:
                    req, rindex, rts, rfwd = pending
                    self._emit(flow, req, msg, rindex, rts, hts, rfwd)
            elif msg is not None:
                msg.order = order
                stream.body(http.body_length(msg))
                if len(state.pending) >= MAX_PENDING:  # a client that never gets answers: report, keep memory flat
                    old, oindex, ots, ofwd = state.pending.popleft()
                    self.meter.stats["HTTP requests reported before a response (pending cap)"] += 1
                    self._emit(flow, old, None, oindex, ots, None, ofwd)
                state.pending.append((msg, hindex, hts, fwd))

    def _emit(self, flow: Flow, req: http.HttpRequest, resp: http.HttpResponse | None, index: int, ts: int,
              end: int | None, fwd: bool) -> None:
        fields = http.http_fields(req, resp)
        fields["event.action"] = "http-request"
        fields["event.category"] = ["network", "web"]
        if resp is not None:
            fields["event.outcome"] = "success" if resp.status < 400 else "failure"
        # a pipelined request's event id: its packet, then its place in the segment
        position = f"{index}.{req.order}" if req.order else str(index)
        self.meter.app_event(flow, "network.http", position, index, ts, fields, end, reverse=not fwd)

    def finish(self, flow: Flow) -> None:
        state: _HttpState | None = flow.state
        if state is not None:
            self.flush_tcp(flow, state.tcp)
            while state.pending:
                req, index, ts, fwd = state.pending.popleft()
                self._emit(flow, req, None, index, ts, None, fwd)


def _probe_http(flow: Flow, data: bytes, fwd: bool) -> bool:
    return flow.proto == TCP and data[:4] in http.PREFIXES


# -- TLS ------------------------------------------------------------------------------------
@dataclass(slots=True)
class _TlsState:
    buf: bytes = b""
    need: int = 0
    index: int = 0
    ts: int = 0
    fwd: bool = True
    hello: tls.ClientHello | None = None
    tcp: TcpStream = field(default_factory=TcpStream)


class TlsHandler(AppHandler):
    name = "tls"

    def payload(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        tcp: TcpStream = flow.state.tcp
        self.segment(flow, tcp.side(fwd), seq, data, fwd, index, ts)  # a resent segment is not appended twice

    def _read(self, flow: Flow, side: Direction, data: bytes, fwd: bool, index: int, ts: int) -> None:
        state: _TlsState = flow.state
        if state.hello is None:
            if not state.buf:
                if data[:2] == b"\x14\x03" and len(data) > 6:  # a ChangeCipherSpec first (after a HelloRetryRequest)
                    data = data[5 + ((data[3] << 8) | data[4]):]
                need = tls.hello_length(data)
                if need is None:
                    return
                state.buf, state.need, state.index, state.ts, state.fwd = data, need, index, ts, fwd
            elif fwd == state.fwd:
                state.buf += data
            else:
                return
            if len(state.buf) < state.need and len(state.buf) < tls.MAX_HELLO:
                return
            try:
                state.hello = tls.parse_client_hello(state.buf)
            except tls.TlsError as exc:
                self.meter.problems.append(Problem(state.index, f"malformed TLS: {exc}", f"{len(state.buf)} bytes"))
                self.meter.stats[f"malformed TLS: {exc}"] += 1
                flow.probes = 0
            state.buf = b""
            return
        if fwd != state.fwd:
            server = tls.parse_server_hello(data)
            if server is not None or data[:1] == b"\x15":  # ServerHello, or an alert instead
                self._emit(flow, state, server, ts)
                if server is not None and server.retry:  # HelloRetryRequest: the client says hello again
                    flow.probes = FOREVER

    def _emit(self, flow: Flow, state: _TlsState, server: tls.ServerHello | None, end: int | None) -> None:
        """One event per ClientHello (a HelloRetryRequest's flow sends two)."""
        assert state.hello is not None
        fields = tls.tls_fields(state.hello, server)
        fields["event.action"] = "tls-client-hello"
        self.meter.app_event(flow, "network.tls", str(state.index), state.index, state.ts, fields, end,
                             reverse=not state.fwd)
        state.hello = None
        flow.probes = 0

    def finish(self, flow: Flow) -> None:
        state: _TlsState | None = flow.state
        if state is not None:
            self.flush_tcp(flow, state.tcp, read=flow.probes > 0)  # (once the handshake is read, the rest is not)
            if state.hello is not None:
                self._emit(flow, state, None, None)


def _probe_tls(flow: Flow, data: bytes, fwd: bool) -> bool:
    return flow.proto == TCP and tls.hello_length(data) is not None


# -- SSH (name only) ----------------------------------------------------------------------
def _probe_ssh(flow: Flow, data: bytes, fwd: bool) -> bool:
    return flow.proto == TCP and data[:4] == b"SSH-"


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    matches: Callable[[Flow, bytes, bool], bool]
    handler: type[AppHandler] | None
    state: Callable[[], Any] | None = None


#: tried in order on a flow's first payloads; the first that matches names the flow's protocol
PROBES: tuple[Probe, ...] = (
    Probe("dns", _probe_dns, DnsHandler, _DnsState),
    Probe("http", _probe_http, HttpHandler, _HttpState),
    Probe("tls", _probe_tls, TlsHandler, _TlsState),
    Probe("ssh", _probe_ssh, None),
    Probe("dns", _probe_dns_shape, DnsHandler, _DnsState),  # last: any UDP port, by the message's shape
)


class AppDecoders:
    """The meter's single entry to the decoders, so the hot path makes one call per payload."""

    def __init__(self, meter: FlowMeter) -> None:
        self.meter = meter
        self.handlers: dict[str, AppHandler] = {p.name: p.handler(meter) for p in PROBES if p.handler is not None}

    def payload(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        """A payload of a flow whose protocol is not known yet: probe it, then hand it over."""
        if flow.icmp:
            flow.handler = self.icmp
            self.icmp(flow, data, fwd, index, ts, seq)
            return
        for probe in PROBES:
            if probe.matches(flow, data, fwd):
                flow.app = probe.name
                if probe.handler is None or probe.state is None:
                    flow.probes = 0
                    return
                flow.state = probe.state()
                flow.probes = FOREVER
                handler = self.handlers[probe.name]
                flow.handler = handler.payload
                handler.payload(flow, data, fwd, index, ts, seq)
                return
        flow.probes -= 1

    def icmp(self, flow: Flow, data: bytes, fwd: bool, index: int, ts: int, seq: int) -> None:
        if not icmp.is_echo(flow.proto, data[0]):
            fields = icmp.icmp_fields(flow.proto, data)
            fields["network.protocol"] = "icmp" if flow.proto == 1 else "ipv6-icmp"
            self.meter.app_event(flow, "network.icmp", str(index), index, ts, fields, reverse=not fwd)

    def finish(self, flow: Flow) -> None:
        if flow.state is not None and flow.app is not None:
            handler = self.handlers.get(flow.app)
            if handler is not None:
                handler.finish(flow)

    def flow_fields(self, flow: Flow) -> dict[str, Any]:
        """What a decoded TCP flow's sequence numbers showed, for its flow record (zeroed for the next)."""
        tcp: TcpStream | None = getattr(flow.state, "tcp", None)
        return tcp.take_fields() if tcp is not None else {}
