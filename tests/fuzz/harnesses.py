"""Fuzz harnesses: one per parser of outside input, in a registry (``HARNESSES``).

A harness takes the fuzzer's bytes and drives one parser the way the collector or the
command does; the parser may refuse the input only with the error it documents
(``allowed``); anything else is a crash. The per-packet and per-line boundaries hide
crashes from users (they become counted problems), so the harnesses of the meter and the
line readers also fail on a problem whose reason says "decoder error" / "parser error":
the fuzzer must see the bug the boundary contains.

Run by ``python -m tests.fuzz`` (atheris, coverage-guided) in ``make test`` (a few
seconds each, ``tests/test_fuzz.py``) and ``make fuzz`` (long). Seeds: :func:`seeds`
(generated here, plus files from ``../shared/data`` when present). Every crash found is
kept under ``tests/fuzz/regressions/<harness>/`` and replayed by ``tests/test_fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from eventstore.errors import QuerySyntaxError
from policy.identity.jwt import TokenError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"


class Crash(AssertionError):
    """The parser failed in a way it does not document (or a boundary reported a bug)."""


@dataclass(frozen=True, slots=True)
class Harness:
    name: str
    run: Callable[[bytes], None]
    #: exceptions that are the parser's documented refusal of bad input
    allowed: tuple[type[BaseException], ...] = ()
    seeds: Callable[[], list[bytes]] = field(default=lambda: [])

    def __call__(self, data: bytes) -> None:
        with contextlib.suppress(self.allowed):
            self.run(data)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- packets ------------------------------------------------------------------------------------
def _meter_problems(meter: Any) -> None:
    bugs = [p for p in meter.problems if p.reason.startswith("decoder error")]
    if bugs:
        raise Crash(f"{bugs[0].reason}: {bugs[0].detail}")


def pcap_file(data: bytes) -> None:
    """A whole capture file through the reader and the meter, as ``soc ingest pcap`` reads it."""
    from collectors.pcap.flows import FlowMeter
    from collectors.pcap.reader import iter_records

    problems: list[Any] = []
    meter = FlowMeter(str)
    meter.feed(iter_records(io.BytesIO(data), problems))
    meter.flush()
    _meter_problems(meter)


def packet(data: bytes) -> None:
    """One frame of any known link type (first byte picks it) through the meter: link layers,
    tunnels, IPv4/IPv6/TCP/UDP/ICMP and the DNS/HTTP/TLS decoders."""
    from collectors.pcap.flows import FlowMeter
    from collectors.pcap.linktypes import LINKTYPES

    if not data:
        return
    types = sorted(LINKTYPES)
    meter = FlowMeter(str)
    frames = data[1:].split(b"\xde\xad\xbe\xef")  # several frames: a flow's later payloads too
    for i, frame in enumerate(frames[:16]):
        meter.packet(i, 1_700_000_000_000_000_000 + i, types[data[0] % len(types)], frame, len(frame))
    meter.flush()
    _meter_problems(meter)


def link_layers(data: bytes) -> None:
    from collectors.pcap.decode import IP_TUNNELS, UDP_TUNNELS, parse_ipv4, parse_ipv6
    from collectors.pcap.linktypes import LINKTYPES

    for decode in LINKTYPES.values():
        decode(data)
    parse_ipv4(data, 0)
    parse_ipv6(data, 0)
    for tunnel in (*IP_TUNNELS.values(), *UDP_TUNNELS.values()):
        tunnel(data, 0, len(data))


def dns_message(data: bytes) -> None:
    from collectors.pcap import dns

    msg = dns.parse_dns(data)
    dns.dns_fields(msg if not msg.response else None, msg if msg.response else None)


def http_message(data: bytes) -> None:
    """A message head, and the same bytes as one direction's stream (heads, bodies, chunked framing):
    ``data[0]`` gives the segment size; fails when the stream holds more than its bounds."""
    from collectors.pcap import http

    req = http.parse_request(data)
    resp = http.parse_response(data)
    if req is not None:
        http.http_fields(req, resp)
    if not data:
        return
    size, rest = data[0] % 64 + 1, data[1:]
    stream = http.HttpStream()
    for i, at in enumerate(range(0, len(rest), size)):
        for head, _index, _ts, _order in stream.heads(rest[at:at + size], i, 0):
            msg = http.parse_head(head) if head is not None else None
            if msg is not None:
                stream.body(http.body_length(msg))
        if len(stream.buf) > http.MAX_HEAD or len(stream.line) > http.MAX_HEAD:
            raise Crash("HTTP stream state past its bounds")


def _segments(data: bytes) -> list[bytes]:
    """The fuzzer's bytes as one TCP connection's frames (port 80): handshake, then segments.

    ``data``: client and server initial sequence numbers (4 bytes each), then records of
    ``flags, length, payload``: flags bit 0 the direction (1: the server), bits 1-2 where the
    segment goes (0: the next bytes, 1: the same sequence number as the direction's last
    segment, 2: a signed byte further, 3: an explicit 4-byte sequence number).
    """
    from bench.pcapgen import tcp_frame

    if len(data) < 8:
        return []
    client, server = 0xA9FE0A01, 0xA9FE0A02
    isn = [int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")]
    nxt = [(isn[0] + 1) & 0xFFFFFFFF, (isn[1] + 1) & 0xFFFFFFFF]
    last = list(nxt)
    frames = [tcp_frame(client, server, 40000, 80, 0x02, isn[0], 0),
              tcp_frame(server, client, 80, 40000, 0x12, isn[1], nxt[0]),
              tcp_frame(client, server, 40000, 80, 0x10, nxt[0], nxt[1])]
    at = 8
    while at + 2 <= len(data) and len(frames) < 200:
        flags, length = data[at], data[at + 1]
        at += 2
        side, mode = flags & 1, (flags >> 1) & 3
        seq = nxt[side]
        if mode == 1:
            seq = last[side]
        elif mode == 2 and at < len(data):
            seq = (nxt[side] + int.from_bytes(data[at:at + 1], "big", signed=True)) & 0xFFFFFFFF
            at += 1
        elif mode == 3 and at + 4 <= len(data):
            seq = int.from_bytes(data[at:at + 4], "big")
            at += 4
        payload = data[at:at + length]
        at += length
        if not payload:
            continue
        last[side] = seq
        if mode == 0:
            nxt[side] = (seq + len(payload)) & 0xFFFFFFFF
        src, dst, sport, dport = (client, server, 40000, 80) if side == 0 else (server, client, 80, 40000)
        frames.append(tcp_frame(src, dst, sport, dport, 0x18, seq, nxt[1 - side], payload))
    return frames


def tcp_stream(data: bytes) -> None:
    """Segment sequences of one HTTP connection (resent, overlapping, out of order, wrapping) through the
    meter: TCP sequence tracking, the reordering window and HTTP heads joined across segments. Also
    fails when the per-flow state outgrows its bounds (held head bytes, remembered holes, held
    segments, unanswered requests)."""
    from collectors.pcap.flows import FlowMeter
    from collectors.pcap.http import MAX_HEAD
    from collectors.pcap.tcpstream import MAX_HELD_BYTES, MAX_HELD_SEGMENTS, MAX_HOLES

    meter = FlowMeter(str)
    for i, frame in enumerate(_segments(data)):
        meter.packet(i, 1_700_000_000_000_000_000 + i * 1000, 1, frame, len(frame))
        for flow in meter.flows.values():
            state = flow.state
            if state is None or not hasattr(state, "up"):
                continue
            if max(len(state.up.buf), len(state.down.buf), len(state.up.line), len(state.down.line)) >= MAX_HEAD \
                    or len(state.pending) > 64 or max(
                    len(state.tcp.orig.holes or ()), len(state.tcp.resp.holes or ())) > MAX_HOLES:
                raise Crash("per-flow HTTP/TCP state past its bounds")
            for side in (state.tcp.orig, state.tcp.resp):  # the reordering window: its bounds, one segment over
                if len(side.held or ()) > MAX_HELD_SEGMENTS + 1 or side.held_bytes > MAX_HELD_BYTES + 65535:
                    raise Crash("TCP reordering window past its bounds")
    meter.flush()
    _meter_problems(meter)


def tls_hello(data: bytes) -> None:
    from collectors.pcap import tls

    tls.parse_server_hello(data)
    if tls.hello_length(data) is not None:
        tls.tls_fields(tls.parse_client_hello(data), None)


def icmp_message(data: bytes) -> None:
    from collectors.pcap import icmp

    if len(data) > 1:  # the meter hands the decoder non-empty messages only
        icmp.icmp_fields(1 if data[0] & 1 else 58, data[1:])


# -- logs -----------------------------------------------------------------------------------------
def _lines(reader: Any, data: bytes) -> None:
    """The reader's own loop (boundary included) over the bytes as a pipe."""
    for batch in reader.stream_batches(io.BytesIO(data), 1000):
        bugs = [p for p in batch.problems if p.reason.startswith("parser error")]
        if bugs:
            raise Crash(f"{bugs[0].reason}: {bugs[0].raw}")


@cache
def _reader(name: str) -> Any:
    """One reader per kind for the whole run (they keep no state between files)."""
    from collectors.journald import JournaldReader
    from collectors.jsonl import JsonlReader
    from collectors.syslog import SyslogReader

    return {"syslog": lambda: SyslogReader(year=2026, tz="UTC"), "journald": JournaldReader,
            "jsonl": JsonlReader}[name]()


def syslog_lines(data: bytes) -> None:
    _lines(_reader("syslog"), data)


def journald_lines(data: bytes) -> None:
    _lines(_reader("journald"), data)


def json_lines(data: bytes) -> None:
    _lines(_reader("jsonl"), data)


def evtx_record(data: bytes) -> None:
    """The EVTX mapping of one record as the evtx parser gives it (JSON), as the reader calls it."""
    import orjson

    from collectors.evtx import record_to_event

    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if isinstance(record, dict):
        record_to_event(record)


@cache
def _matchers() -> tuple[Any, tuple[str, ...], tuple[dict[str, str], ...]]:
    """The shipped rules and a rule per Sigma semantics case (every modifier and value type the
    matcher knows) in one matcher, the fields they look at, and the index values they require."""
    from detections.sigma.engine import compile_ruleset
    from detections.sigma.loader import load_rules
    from detections.sigma.matcher import INDEX_FIELDS, Matcher, compile_rule, detection_fields
    from detections.sigma.pipelines import get_pipeline
    from tests.test_sigma_matcher import SEMANTICS, _rule

    rules = list(compile_ruleset(load_rules(), "ztsoc").base)
    for n, (detection, _doc, _expected) in enumerate(SEMANTICS):
        with contextlib.suppress(Exception):  # a case that is meant to be refused
            rules.append(compile_rule(_rule(detection), get_pipeline(), key=f"semantics-{n}"))
    names = sorted({f for cr in rules for f in detection_fields(cr)})
    # the index values each rule requires (one of each), so some event is a candidate of every rule
    heads = {tuple(sorted((f, min(vals)) for f, vals in cr.required.items() if f in INDEX_FIELDS)) for cr in rules}
    return Matcher(rules), tuple(names), tuple(dict(h) for h in sorted(heads))


def sigma_match(data: bytes) -> None:
    """A JSON event through every rule's predicate, as ``soc scan`` and ``soc detect run`` match it.

    Events come from outside (JSON lines keep any JSON value), so each field a rule looks at
    may hold a string, number, bool, null, list or object: the object is used as it is, and
    its values are also given to the rules' fields in turn, so every predicate meets them.
    ``soc scan`` matches without a per-rule guard (a fault would stop the rest of the file):
    any exception is a crash.
    """
    import orjson

    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict):
        doc = {"message": doc}
    matcher, names, heads = _matchers()
    values = list(doc.values()) or [None]
    spread = {name: values[i % len(values)] for i, name in enumerate(names)}
    matcher.match(doc)
    for head in heads:
        matcher.match({**spread, **head})


# -- queries, rules, policies, exercises ---------------------------------------------------------
def lucene_query(data: bytes) -> None:
    from eventstore.query import parse

    parse(_text(data))


@cache
def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="ztsoc-fuzz-"))


def sigma_rule(data: bytes) -> None:
    from detections.sigma.loader import load_file

    path = _scratch() / "rule.yml"
    path.write_bytes(data)
    load_file(path)  # documented: never raises for bad content


def policy_yaml(data: bytes) -> None:
    from policy.language import parse_policy_text

    parse_policy_text(_text(data), "fuzz.yaml")


@cache
def _verifier() -> Any:
    from policy.identity import TokenVerifier
    from policy.identity.jwt import trust_config_from_dict

    os.environ.setdefault("ZTSOC_FUZZ_HMAC", "fuzz-secret-fuzz-secret-fuzz-secret!")
    trust = trust_config_from_dict({"issuers": [{"issuer": "https://idp.fuzz", "audience": "records", "hmac": True,
                                                 "hmac_secret_env": "ZTSOC_FUZZ_HMAC"}]})
    return TokenVerifier(trust, cache_size=16)


def bearer_token(data: bytes) -> None:
    from policy.identity.spiffe import SpiffeId, SpiffeIdError

    text = _text(data)
    with contextlib.suppress(SpiffeIdError):
        SpiffeId.parse(text)
    _verifier().verify(text)


@cache
def _check_service() -> Any:
    """The gRPC ext_authz front over a small policy, the caller a trusted Envoy that reports attributes."""
    from policy.canonical import FrontConfig, proxies_from_config
    from policy.engine import Engine
    from policy.grpc_authz import CheckService
    from policy.language import policy_set_from_text
    from policy.risk import StaticRisk
    from policy.server import DecisionHandler

    policy = ("apiVersion: ztsoc/v1\nkind: Policy\nname: f\nrules:\n"
              "  - {name: no-admin, effect: deny, destination: {paths: ['/admin/...']}}\n"
              "  - {name: reads, effect: allow, destination: {services: [records], methods: [GET]}}\n")
    engine = Engine.from_policy_set(policy_set_from_text(policy, "f.yaml"), verifier=_verifier(), risk=StaticRisk())
    front = FrontConfig(proxies_from_config([{"name": "envoy", "addresses": ["127.0.0.1/32"],
                                              "client_address": "reported", "reported_service": True}]))
    return CheckService(DecisionHandler(engine, front=front))


def ext_authz_check(data: bytes) -> None:
    """A CheckRequest (Envoy's wire format) through the gRPC front: always an answer, never an internal error."""
    from policy.protos import envoy_ext_authz_pb2 as pb

    resp = _check_service().decide(pb.CheckRequest.FromString(data), "ipv4:127.0.0.1:5000")
    headers = {h.header.key: h.header.value
               for h in (resp.ok_response.headers if resp.HasField("ok_response") else resp.denied_response.headers)}
    if "internal error" in headers.get("x-ztsoc-reason", ""):
        raise Crash(f"the gRPC front failed on a CheckRequest: {headers['x-ztsoc-reason']}")
    if resp.HasField("ok_response") != (resp.status.code == 0) or not headers.get("x-ztsoc-decision-id"):
        raise Crash(f"inconsistent CheckResponse: {resp}")


def _check_seeds() -> list[bytes]:
    from policy.protos import envoy_ext_authz_pb2 as pb

    out = []
    for method, path, extra in (("GET", "/records/1?q=1", [("authorization", "Bearer a.b.c")]),
                                ("DELETE", "/admin/x", []), ("get", "/%2e%2e/admin", [("host", "records")])):
        check = pb.CheckRequest()
        check.attributes.source.address.socket_address.address = "10.0.0.1"
        check.attributes.context_extensions["ztsoc-service"] = "records"
        http = check.attributes.request.http
        http.method, http.path, http.host = method, path, "records.example"
        for k, v in [(":method", method), (":path", path), *extra]:
            http.header_map.headers.add(key=k, raw_value=v.encode())
        out.append(check.SerializeToString())
        http.ClearField("header_map")
        http.headers.update(dict(extra))
        out.append(check.SerializeToString())
    return out


def exercise_yaml(data: bytes) -> None:
    from playbooks.exercise import load_exercise

    path = _scratch() / "exercise.yaml"
    path.write_bytes(data)
    load_exercise(path)


# -- seeds ----------------------------------------------------------------------------------------
def _shared(pattern: str, limit: int, max_bytes: int = 1 << 16) -> list[bytes]:
    if not SHARED.is_dir():
        return []
    found = [p for p in sorted(SHARED.glob(pattern)) if p.is_file() and p.stat().st_size <= max_bytes]
    return [p.read_bytes() for p in found[:limit]]


@cache
def _frames() -> list[bytes]:
    """Real frames made by scapy: TCP with HTTP and TLS, DNS over UDP, ICMP, VLAN, IPv6, GRE, VXLAN."""
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN

    hello = bytes.fromhex("16030100310100002d0303") + b"\x11" * 32 + bytes.fromhex("000002c02f0100000200000000")
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    ip = IP(src="169.254.1.1", dst="169.254.1.2")
    pkts = [
        eth / ip / TCP(sport=40000, dport=80, flags="PA") / b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        eth / ip / TCP(sport=80, dport=40000, flags="PA") / b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        eth / ip / TCP(sport=40001, dport=443, flags="PA") / hello,
        eth / ip / UDP(sport=33333, dport=53) / DNS(id=1, rd=1, qd=DNSQR(qname="example.org")),
        eth / ip / ICMP(type=3, code=3) / IP(src="169.254.1.2", dst="169.254.1.1") / UDP(sport=1, dport=2),
        eth / Dot1Q(vlan=7) / ip / UDP(sport=1, dport=2) / b"x",
        eth / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2, flags="S"),
        eth / ip / GRE() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6),
        eth / ip / UDP(sport=4789, dport=4789) / VXLAN(vni=1) / eth / ip / TCP(sport=7, dport=8),
    ]
    return [bytes(p) for p in pkts]


def _pcap_of(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(f), len(f)) + f
    return out


def _pcap_seeds() -> list[bytes]:
    return [_pcap_of(_frames()), _pcap_of(_frames()[:2]), *_shared("pcaps/**/*.pcap", 24, 1 << 15)]


def _packet_seeds() -> list[bytes]:
    from collectors.pcap.linktypes import LINKTYPES

    eth = sorted(LINKTYPES).index(1)
    return [bytes([eth]) + f for f in _frames()] + [bytes([eth]) + b"\xde\xad\xbe\xef".join(_frames()[:2])]


def _segment(side: int, payload: bytes, mode: int = 0, extra: bytes = b"") -> bytes:
    return bytes([side | mode << 1, len(payload)]) + extra + payload


def _stream_seeds() -> list[bytes]:
    """Connections: a request resent, a head split in three, pipelining with a body, a wrap near 2**32."""
    req, resp = b"GET /a HTTP/1.1\r\nHost: a.example\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    post = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /"
    isns = (b"\x00\x00\x03\xe8\x00\x00\x13\x88", b"\xff\xff\xff\xf0\xff\xff\xff\xfa")
    return [isns[0] + _segment(0, req) + _segment(0, req, 1) + _segment(1, resp),
            isns[0] + _segment(0, CHUNKED[0][:100]) + _segment(0, CHUNKED[0][100:]) + _segment(1, CHUNKED[1]),
            # reordered: the head's start, its tail (explicit sequence number), then its middle
            isns[0] + _segment(0, req[:10]) + _segment(0, req[20:], 3, (1021).to_bytes(4, "big"))
            + _segment(0, req[10:20], 3, (1011).to_bytes(4, "big")) + _segment(1, resp),
            isns[1] + _segment(0, req[:9]) + _segment(0, req[9:20]) + _segment(0, req[20:]) + _segment(1, resp),
            isns[0] + _segment(0, post + req) + _segment(1, resp + resp) + _segment(0, req[:5], 2, b"\x10"),
            isns[1] + _segment(0, req[:12]) + _segment(0, req[12:], 1) + _segment(1, resp[:20]) + _segment(1, resp[20:])]


def _payload_seeds() -> list[bytes]:
    return [f[54:] for f in _frames()] + [f[42:] for f in _frames()] + [f[14:] for f in _frames()]


#: chunked bodies (extensions, trailers, a body that looks like a request) and requests after them
CHUNKED = [b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nGET /\r\n1a\r\n"
           b"GET /no HTTP/1.1\r\n\r\nxxxxx\r\n0\r\nX-T: 1\r\n\r\nGET /two HTTP/1.1\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\nHTTP\n0\n\nHTTP/1.1 204 No\r\n\r\n"]


def _http_seeds() -> list[bytes]:
    return _payload_seeds() + [bytes([n]) + m for m in CHUNKED for n in (0, 6, 63)]


AUTH = [b"Nov 25 08:00:01 web1 sshd[4242]: Failed password for root from 198.51.100.7 port 40000 ssh2\n",
        b"<38>1 2026-11-25T08:00:00.123Z web1 sshd 99 - - Accepted publickey for alice from 10.0.0.5 port 2 ssh2\n",
        b"2026-11-25T08:00:00.5+01:00 web1 sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh\n"]
JOURNAL = [json.dumps({"__REALTIME_TIMESTAMP": "1764057600000000", "MESSAGE": "Failed password for root from "
                       "198.51.100.7 port 22 ssh2", "SYSLOG_IDENTIFIER": "sshd", "_PID": "12", "__CURSOR": "s=1",
                       "_HOSTNAME": "web1", "PRIORITY": "5"}).encode() + b"\n"]
ECS_LINES = [json.dumps({"@timestamp": "2026-11-25T08:00:00Z", "event": {"action": "x"}, "source": {"ip": "10.0.0.1"},
                         "tags": ["a"]}).encode() + b"\n"]
EVTX = [json.dumps({"Event": {"System": {"EventID": 4625, "Channel": "Security", "Computer": "dc1",
                                         "TimeCreated": {"#attributes": {"SystemTime": "2026-11-25T08:00:00.123456Z"}},
                                         "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                                         "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}}},
                              "EventData": {"TargetUserName": "bob", "IpAddress": "10.0.0.9", "LogonType": 3,
                                            "Status": "0xc000006d"}}}).encode()]
QUERIES = [b'event.action:"ssh-login" AND source.ip:10.0.0.0/8', b"user.name:(alice OR bob) -event.outcome:success",
           b"destination.port:[1 TO 1024] AND @timestamp:>now-1h", b'url.path:/admin* OR message:"a \\"b\\""']


def _match_seeds() -> list[bytes]:
    """The semantics cases' events, and values of every JSON type."""
    from tests.test_sigma_matcher import SEMANTICS

    odd = {"a": None, "b": True, "c": 2**70, "d": -1.5e308, "e": [1, "x", None, {"f": []}], "g": {"h": {"i": "j"}},
           "k": "", "l": "\u0000\ud7ff", "m": [], "n": "10.0.0.1", "o": "2026-11-25T08:00:00Z"}
    return [json.dumps(doc, default=str).encode() for doc in [*(case[1] for case in SEMANTICS), odd]]


def _repo_files(folder: str, pattern: str) -> list[bytes]:
    root = HERE.parents[1] / folder
    return [p.read_bytes() for p in sorted(root.glob(pattern))[:12]]


HARNESSES: dict[str, Harness] = {h.name: h for h in (
    Harness("pcap_file", pcap_file, (ValueError,), _pcap_seeds),
    Harness("packet", packet, (), _packet_seeds),
    Harness("link_layers", link_layers, (), lambda: [f for f in _frames()]),
    Harness("dns", dns_message, (ValueError,), lambda: [f[42:] for f in _frames()]),
    Harness("http", http_message, (), _http_seeds),
    Harness("tcp_stream", tcp_stream, (), _stream_seeds),
    Harness("tls", tls_hello, (ValueError,), _payload_seeds),
    Harness("icmp", icmp_message, (), lambda: [b"\x01" + f[34:] for f in _frames()]),
    Harness("syslog", syslog_lines, (), lambda: AUTH + [b"".join(f.splitlines(True)[:20]) for f in
                                                        _shared("auth/*.log", 2, 1 << 20)]),
    Harness("journald", journald_lines, (), lambda: JOURNAL),
    Harness("jsonl", json_lines, (), lambda: ECS_LINES),
    Harness("evtx_mapping", evtx_record, (ValueError, KeyError, TypeError), lambda: EVTX),
    Harness("sigma_match", sigma_match, (), _match_seeds),
    Harness("lucene", lucene_query, (QuerySyntaxError,), lambda: QUERIES),
    Harness("sigma", sigma_rule, (), lambda: _repo_files("detections/rules", "*.yml")),
    Harness("policy_yaml", policy_yaml, (ValueError,), lambda: _repo_files("policy/examples", "**/*.yaml")),
    Harness("token", bearer_token, (ValueError, TokenError), lambda: [b"eyJhbGciOiJIUzI1NiJ9.e30.c2ln"]),
    Harness("ext_authz_check", ext_authz_check, (DecodeError,), _check_seeds),
    Harness("exercise_yaml", exercise_yaml, (ValueError,), lambda: _repo_files("playbooks/exercises", "*.yml")),
)}


def seeds(name: str) -> list[bytes]:
    return HARNESSES[name].seeds()
