"""Application events from real packets: DNS transactions, HTTP exchanges, TLS hellos, ICMP errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SignatureAlgorithms,
    TLS_Ext_SupportedGroups,
    TLS_Ext_SupportedPointFormat,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_SupportedVersion_SH,
)
from scapy.layers.tls.handshake import TLSClientHello, TLSServerHello
from scapy.layers.tls.record import TLS
from scapy.packet import Packet, Raw

from collectors.pcap.flows import FlowMeter
from tests.pcapkit import (
    C6,
    HTTP_REQUEST,
    HTTP_RESPONSE,
    S6,
    C,
    S,
    dns_exchange,
    eth,
    tcp_session,
    timed,
    write,
)


def run(packets: list[Packet]) -> FlowMeter:
    m = FlowMeter(lambda pos: f"id:{pos}")
    m.feed((i, round(p.time * 1e9), 1, bytes(p), len(p)) for i, p in enumerate(timed(packets)))
    m.flush()
    return m


def of(m: FlowMeter, dataset: str) -> list[dict]:
    return [e for e in m.events if e["event.dataset"] == dataset]


# -- DNS ---------------------------------------------------------------------------------------
def test_dns_transaction_pairs_query_and_answer() -> None:
    m = run(dns_exchange("intranet.example.org", 77, "192.0.2.44"))
    (d,) = of(m, "network.dns")
    assert d["dns.question.name"] == "intranet.example.org" and d["dns.question.type"] == "A"
    assert d["dns.response_code"] == "NOERROR" and d["dns.id"] == "77" and d["dns.type"] == "answer"
    assert d["dns.answers"] == [{"name": "intranet.example.org", "type": "A", "class": "IN", "ttl": 60,
                                 "data": "192.0.2.44"}]
    assert d["dns.resolved_ip"] == ["192.0.2.44"]
    assert set(d["dns.header_flags"]) == {"RD", "RA"}
    assert (d["source.ip"], d["destination.port"], d["network.protocol"]) == (C, 53, "dns")
    assert d["event.id"] == "id:0:network.dns"
    (f,) = of(m, "network.flow")
    assert f["network.protocol"] == "dns"


def test_dns_nxdomain_and_unanswered_query() -> None:
    m = run(dns_exchange("nope.example", 5, rcode=3) + dns_exchange("lost.example", 6, sport=40001)[:1])
    by_name = {d["dns.question.name"]: d for d in of(m, "network.dns")}
    assert by_name["nope.example"]["dns.response_code"] == "NXDOMAIN"
    assert by_name["lost.example"]["dns.type"] == "query" and "dns.response_code" not in by_name["lost.example"]


def test_malformed_dns_is_a_problem_with_its_reason() -> None:
    loop = bytes.fromhex("0001 0100 0001 0000 0000 0000 c00c 0001 0001".replace(" ", ""))  # name points at itself
    m = run([eth() / IP(src=C, dst=S) / UDP(sport=1234, dport=53) / Raw(loop),
             eth() / IP(src=C, dst=S) / UDP(sport=1234, dport=53) / Raw(b"\x00\x01")])
    assert [p.reason for p in m.problems] == ["malformed DNS: compression loop", "malformed DNS: truncated DNS header"]
    assert len(of(m, "network.flow")) == 1


def test_dns_over_tcp() -> None:
    msg = bytes(DNS(id=9, rd=1, qd=DNSQR(qname="tcp.example")))
    m = run(tcp_session(sport=41000, dport=53, request=len(msg).to_bytes(2, "big") + msg))
    (d,) = of(m, "network.dns")
    assert d["dns.question.name"] == "tcp.example" and d["network.transport"] == "tcp"


# -- HTTP --------------------------------------------------------------------------------------
def test_http_request_and_status() -> None:
    m = run(tcp_session(request=HTTP_REQUEST, response=HTTP_RESPONSE))
    (h,) = of(m, "network.http")
    assert h["http.request.method"] == "GET" and h["http.response.status_code"] == 404
    assert (h["url.path"], h["url.query"], h["url.domain"]) == ("/search", "q=zero+trust", "intranet.example")
    assert h["url.original"] == "/search?q=zero+trust" and h["http.version"] == "1.1"
    assert h["user_agent.original"] == "Mozilla/5.0 (ztsoc-test)"
    assert h["http.request.referrer"] == "http://intranet.example/" and h["event.outcome"] == "failure"
    assert h["source.ip"] == C and h["destination.port"] == 80 and h["event.id"] == "id:3:network.http"
    assert of(m, "network.flow")[0]["network.protocol"] == "http"


def test_http_pipelined_requests_pair_in_order_and_unanswered_are_kept() -> None:
    req2 = HTTP_REQUEST.replace(b"/search", b"/other")
    pkts = tcp_session(request=HTTP_REQUEST, response=HTTP_RESPONSE, close="none")
    pkts.append(pkts[3].copy())
    pkts[-1][Raw].load = req2
    pkts[-1][TCP].seq = len(HTTP_REQUEST)  # the next bytes of the stream (same seq: a retransmission)
    m = run(pkts)
    paths = [(h["url.path"], h.get("http.response.status_code")) for h in of(m, "network.http")]
    assert paths == [("/search", 404), ("/other", None)]


# -- TLS ---------------------------------------------------------------------------------------
CIPHERS = [0x1301, 0x1302, 0xC02B, 0xC02F, 0x009C]
GROUPS = [0x001D, 0x0017]
SIGALGS = [0x0403, 0x0804, 0x0401]


def client_hello(sni: str = "portal.example.org", grease: bool = True) -> bytes:
    ciphers = ([0x0A0A] if grease else []) + CIPHERS
    ext = [TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())]),
           TLS_Ext_SupportedGroups(groups=GROUPS), TLS_Ext_SupportedPointFormat(ecpl=[0]),
           TLS_Ext_SignatureAlgorithms(sig_algs=SIGALGS), TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2"), ProtocolName(protocol=b"http/1.1")]),
           TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303])]
    return bytes(TLS(msg=[TLSClientHello(version=0x0303, ciphers=ciphers, ext=ext)]))


def server_hello() -> bytes:
    return bytes(TLS(msg=[TLSServerHello(version=0x0303, cipher=0x1301,
                                         ext=[TLS_Ext_SupportedVersion_SH(version=0x0304)])]))


def test_tls_client_hello_fields_and_fingerprints() -> None:
    m = run(tcp_session(dport=443, request=client_hello(), response=server_hello()))
    (t,) = of(m, "network.tls")
    assert t["tls.client.server_name"] == "portal.example.org"
    assert (t["tls.version"], t["tls.version_protocol"], t["tls.cipher"]) == ("1.3", "tls", "TLS_AES_128_GCM_SHA256")
    assert t["tls.established"] is True and t["network.protocol"] == "tls"
    # JA4 by hand from the spec: t, 13, d, 05 ciphers, 06 extensions, h2 -> "t13d0506h2"
    assert t["ztsoc.tls.client.ja4"].startswith("t13d0506h2_")
    import hashlib

    ciphers = ",".join(f"{c:04x}" for c in sorted(CIPHERS))
    assert t["ztsoc.tls.client.ja4"].split("_")[1] == hashlib.sha256(ciphers.encode()).hexdigest()[:12]
    exts = ",".join(f"{e:04x}" for e in sorted([0x000A, 0x000B, 0x000D, 0x002B])) + "_" + ",".join(
        f"{s:04x}" for s in SIGALGS)
    assert t["ztsoc.tls.client.ja4"].split("_")[2] == hashlib.sha256(exts.encode()).hexdigest()[:12]
    ja3_text = "771," + "-".join(map(str, CIPHERS)) + ",0-10-11-13-16-43," + "-".join(map(str, GROUPS)) + ",0"
    assert t["tls.client.ja3"] == hashlib.md5(ja3_text.encode()).hexdigest()


def test_tls_hello_split_over_two_segments_is_reassembled() -> None:
    hello = client_hello(sni="split." + "x" * 1500 + ".example")
    pkts = tcp_session(dport=443, request=hello[:700], close="none")
    more = pkts[3].copy()
    more[Raw].load = hello[700:]
    more[TCP].seq = 700
    m = run([*pkts, more])
    (t,) = of(m, "network.tls")
    assert t["tls.client.server_name"].startswith("split.x") and t["tls.established"] is False


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed: JA3 oracle unavailable")
def test_ja3_agrees_with_tshark(tmp_path: Path) -> None:
    pkts = timed(tcp_session(dport=443, request=client_hello(), response=server_hello()))
    path = write(tmp_path / "tls.pcap", pkts)
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "tls.handshake.ja3"], capture_output=True, text=True, check=True).stdout.split()
    (t,) = of(run(pkts), "network.tls")
    assert out == [t["tls.client.ja3"]]


def test_ja4_published_vector() -> None:
    """FoxIO's JA4 of a Chrome hello (ja4_ro raw list -> t13d1516h2_8daaf6152771_d8a2da3f94cd)."""
    from collectors.pcap.tls import ja4

    c = [int(x, 16) for x in ["1301", "1302", "1303", "c02b", "c02f", "c02c", "c030", "cca9", "cca8", "c013", "c014", "009c", "009d", "002f", "0035"]]
    e = [int(x, 16) for x in ["002d", "0033", "0010", "fe0d", "0017", "44cd", "0000", "000b", "000a", "002b", "ff01", "0023", "0012", "0005", "000d", "001b"]]
    s = [int(x, 16) for x in ["0403", "0804", "0401", "0503", "0805", "0501", "0806", "0601"]]
    assert ja4("t", 0x0304, True, c, e, "h2", s) == "t13d1516h2_8daaf6152771_d8a2da3f94cd"


def test_not_a_hello_on_443_is_just_a_flow() -> None:
    m = run(tcp_session(dport=443, request=b"\x17\x03\x03\x00\x10" + b"\x00" * 16))
    assert of(m, "network.tls") == [] and m.problems == []


# -- ICMP --------------------------------------------------------------------------------------
def test_icmp_error_event_names_what_it_quotes() -> None:
    quoted = IP(src=C, dst=S) / UDP(sport=5000, dport=161)
    m = run([eth() / IP(src=S, dst=C) / ICMP(type=3, code=3) / quoted])
    (i,) = of(m, "network.icmp")
    assert (i["ztsoc.icmp.type"], i["ztsoc.icmp.code"], i["event.action"]) == (3, 3, "destination-unreachable")
    assert i["ztsoc.icmp.quoted.destination.ip"] == S and i["ztsoc.icmp.quoted.destination.port"] == 161


def test_icmpv6_neighbor_solicitation_is_an_event() -> None:
    m = run([eth() / IPv6(src=C6, dst=S6) / ICMPv6ND_NS(tgt=S6)])
    (i,) = of(m, "network.icmp")
    assert i["ztsoc.icmp.type"] == 135 and i["event.action"] == "neighbor-solicitation"


def test_echo_is_summarised_by_its_flow_only() -> None:
    m = run([eth() / IP(src=C, dst=S) / ICMP(type=8), eth() / IP(src=S, dst=C) / ICMP(type=0)])
    assert of(m, "network.icmp") == [] and len(of(m, "network.flow")) == 1


def test_apps_off_gives_flows_only() -> None:
    from collectors.pcap.flows import MeterConfig

    m = FlowMeter(lambda pos: pos, MeterConfig(decode_apps=False))
    pkts = timed(tcp_session(request=HTTP_REQUEST, response=HTTP_RESPONSE) + dns_exchange())
    m.feed((i, round(p.time * 1e9), 1, bytes(p), len(p)) for i, p in enumerate(pkts))
    m.flush()
    assert {e["event.dataset"] for e in m.events} == {"network.flow"} and len(m.events) == 2


def test_every_field_written_is_in_the_schema() -> None:
    from eventstore.schema import field_type

    pkts = (tcp_session(request=HTTP_REQUEST, response=HTTP_RESPONSE) + dns_exchange()
            + tcp_session(sport=40001, dport=443, request=client_hello(), response=server_hello())
            + [eth() / IP(src=S, dst=C) / ICMP(type=3, code=1) / IP(src=C, dst=S) / TCP(dport=22)])
    m = run(pkts)
    names = {k for e in m.events for k in e}
    assert {n for n in names if field_type(n) is None} == set()
    from tests.ecs_allowed import check_names

    for e in m.events:  # and each is ECS or ours (ztsoc.tls.client.ja4, ztsoc.icmp.*)
        check_names(e)
    assert {"ztsoc.tls.client.ja4", "ztsoc.icmp.type", "ztsoc.icmp.code"} <= names
