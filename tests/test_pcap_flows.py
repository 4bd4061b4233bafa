"""The flow meter: bidirectional flows, Zeek conn_state, timeouts, fragments, Community ID."""

from __future__ import annotations

import random
import socket
import struct
import tracemalloc
from collections.abc import Iterable, Iterator

import communityid
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import GRE, CookedLinux, CookedLinuxV2, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

from collectors.pcap.community_id import community_id
from collectors.pcap.flows import FlowMeter, MeterConfig, flow_key, reverse_key
from collectors.pcap.linktypes import LINKTYPES  # noqa: F401 - the registry the meter uses
from tests.pcapkit import C6, S6, T0, C, S, dns_exchange, eth, icmp_echo, tcp_session, timed, vlan

DLT = {"ether": 1, "raw": 101, "sll": 113, "sll2": 276}


def meter(packets: list[Packet], linktype: int = 1, **config: float) -> FlowMeter:
    m = FlowMeter(lambda pos: f"id:{pos}", MeterConfig(**config))  # type: ignore[arg-type]
    m.feed((i, round(p.time * 1e9), linktype, bytes(p), len(p)) for i, p in enumerate(packets))
    m.flush()
    return m


def flows(m: FlowMeter) -> list[dict]:
    return [e for e in m.events if e["event.dataset"] == "network.flow"]


def only_flow(packets: list[Packet], **kw: float) -> dict:
    out = flows(meter(timed(packets), **kw))
    assert len(out) == 1, out
    return out[0]


def test_full_session_is_one_sf_flow_with_counts_each_way() -> None:
    pkts = timed(tcp_session(request=b"hello", response=b"world!"))
    f = flows(meter(pkts))[0]
    assert f["ztsoc.flow.state"] == "SF"
    assert (f["source.ip"], f["source.port"], f["destination.ip"], f["destination.port"]) == (C, 40000, S, 80)
    assert (f["source.packets"], f["destination.packets"]) == (5, 3)
    assert f["source.bytes"] == sum(len(p) for p in pkts if p[IP].src == C)
    assert f["destination.bytes"] == sum(len(p) for p in pkts if p[IP].src == S)
    assert f["network.packets"] == 8 and f["network.transport"] == "tcp" and f["network.type"] == "ipv4"
    assert f["event.duration"] == pytest.approx(70_000_000, abs=1000)  # 8 packets 10 ms apart (float times)
    assert f["event.type"] == ["connection", "start", "end"]
    assert f["event.id"] == "id:0:flow" and f["event.kind"] == "event" and f["event.category"] == ["network"]


@pytest.mark.parametrize("packets,state", [
    (tcp_session(close="none")[:1], "S0"),  # SYN, no answer
    ([*tcp_session(close="none")[:1], eth() / IP(src=S, dst=C) / TCP(sport=80, dport=40000, flags="RA")], "REJ"),
    (tcp_session(close="none"), "S1"),
    (tcp_session(close="rst-orig"), "RSTO"),
    (tcp_session(close="rst-resp"), "RSTR"),
    ([*tcp_session(close="none")[:1], eth() / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="F")], "SH"),
    ([*tcp_session(close="none")[:1], eth() / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="R")], "RSTOS0"),
    (tcp_session()[3:], "OTH"),  # midstream: no SYN seen
    ([*tcp_session(close="none"), eth() / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="FA")], "S2"),
])
def test_conn_state(packets: list[Packet], state: str) -> None:
    assert only_flow(packets)["ztsoc.flow.state"] == state


def test_flow_first_seen_at_syn_ack_is_turned_round() -> None:
    f = only_flow(tcp_session()[1:])
    assert (f["source.ip"], f["destination.port"]) == (C, 80)


def test_idle_timeout_splits_and_ids_follow_the_first_packet() -> None:
    a = dns_exchange()
    b = dns_exchange()
    pkts = timed(a, T0) + timed(b, T0 + 200)  # 200 s later: past the 120 s idle timeout
    fs = flows(meter(pkts))
    assert [f["event.id"] for f in fs] == ["id:0:flow", "id:2:flow"]
    assert [f["event.reason"] for f in fs] == ["idle-timeout", "end-of-capture"]
    assert only_flow(a + b, idle_timeout=1000)["network.packets"] == 4


def test_active_timeout_cuts_a_long_flow() -> None:
    pkts = [eth() / IP(src=C, dst=S) / UDP(sport=5000, dport=6000) for _ in range(10)]
    fs = flows(meter(timed(pkts, gap=30.0), active_timeout=100, idle_timeout=60))  # 270 s long
    assert [f["network.packets"] for f in fs] == [4, 4, 2]
    assert [f["event.reason"] for f in fs] == ["active-timeout", "active-timeout", "end-of-capture"]
    assert fs[0]["event.type"] == ["connection", "start"] and fs[1]["event.type"] == ["connection"]


def test_active_timeout_when_the_capture_clock_goes_back() -> None:
    """The meter skips the active-timeout arithmetic until some flow could have passed it (its
    earliest start plus the timeout): a flow started after the clock went back is still cut."""
    first = eth() / IP(src=C, dst=S) / UDP(sport=5000, dport=6000)
    first.time = T0 + 10_000
    later = [eth() / IP(src=C, dst=S) / UDP(sport=5001, dport=6001) for _ in range(10)]
    fs = flows(meter([first, *timed(later, gap=30.0)], active_timeout=100, idle_timeout=60))
    cut = [f for f in fs if f["source.port"] == 5001]
    assert [f["network.packets"] for f in cut] == [4, 4, 2]


def test_port_reuse_after_close_starts_a_new_flow() -> None:
    fs = flows(meter(timed(tcp_session() + tcp_session())))
    assert [f["ztsoc.flow.state"] for f in fs] == ["SF", "SF"]
    assert [f["event.id"] for f in fs] == ["id:0:flow", "id:6:flow"]


@pytest.mark.parametrize("l2,linktype", [
    (lambda: Ether(), 1),
    (lambda: vlan(10), 1),
    (lambda: vlan(100, 20), 1),
    (lambda: CookedLinux(proto=0x0800), 113),
    (lambda: CookedLinuxV2(proto=0x0800), 276),
])
def test_link_types_give_the_same_flow(l2, linktype: int) -> None:  # type: ignore[no-untyped-def]
    pkts = timed(tcp_session(l2=l2()))
    fs = flows(meter(pkts, linktype))
    assert len(fs) == 1 and fs[0]["ztsoc.flow.state"] == "SF" and fs[0]["network.packets"] == 6
    if linktype == 1 and l2().haslayer("Dot1Q"):
        assert fs[0]["network.vlan.id"] in ("10", "100")


def test_raw_ipv6_session() -> None:
    pkts = [p[IPv6] for p in timed(tcp_session(src=C6, dst=S6, dport=443))]
    f = flows(meter(pkts, 101))[0]
    assert (f["source.ip"], f["destination.ip"], f["network.type"], f["ztsoc.flow.state"]) == (C6, S6, "ipv6", "SF")


def test_fragments_are_reassembled_into_one_packet() -> None:
    """The reassembly itself is tested in test_pcap_fragments; here: the meter meters datagrams."""
    big = IP(src=C, dst=S, id=77) / UDP(sport=7000, dport=7001) / Raw(b"z" * 3000)
    frags = [eth() / f for f in fragment(big, fragsize=1000)]
    m = meter(timed(frags))
    f = flows(m)[0]
    assert f["network.packets"] == 1 and f["destination.port"] == 7001
    assert m.stats["ip fragments"] == 4 and m.stats["reassembled datagrams"] == 1


def test_fragments_without_their_first_are_an_incomplete_datagram() -> None:
    big = IP(src=C, dst=S, id=78) / UDP(sport=7000, dport=7001) / Raw(b"z" * 3000)
    frags = [eth() / f for f in fragment(big, fragsize=1000)][1:]
    m = meter(timed(frags))
    assert flows(m) == [] and [p.reason for p in m.problems] == ["incomplete fragmented datagram"]


def test_ipv6_fragment_header() -> None:
    first = eth() / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=5, m=1, offset=0) / UDP(sport=1, dport=2) / Raw(b"a" * 64)
    later = eth() / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=5, m=0, offset=9, nh=17) / Raw(b"b" * 64)
    f = flows(meter(timed([first, later])))[0]
    assert f["network.packets"] == 1 and f["destination.port"] == 2


def test_unreadable_packets_are_problems_and_the_rest_goes_on() -> None:
    good = tcp_session()
    truncated_ip = bytes(eth() / IP(src=C, dst=S) / TCP())[:20]
    bad_tcp = bytes(eth() / IP(src=C, dst=S, proto=6) / Raw(b"\x00" * 8))
    garbage_ip = bytes(Ether(type=0x0800)) + b"\x99" * 30
    pkts = timed(good)
    records = [(i, round(p.time * 1e9), 1, bytes(p), len(p)) for i, p in enumerate(pkts)]
    records += [(6, records[-1][1], 1, truncated_ip, 20), (7, records[-1][1], 1, bad_tcp, len(bad_tcp)),
                (8, records[-1][1], 1, garbage_ip, len(garbage_ip)), (9, records[-1][1], 147, b"\x01" * 40, 40)]
    m = FlowMeter(lambda pos: pos)
    m.feed(records)
    m.flush()
    assert len(flows(m)) == 1
    assert [(p.index, p.reason) for p in m.problems] == [
        (6, "truncated IPv4 header"), (7, "truncated TCP header"), (8, "bad IPv4 header"),
        (9, "unsupported link type")]


def test_icmp_echo_pairs_into_one_flow() -> None:
    f = only_flow(icmp_echo())
    assert f["network.transport"] == "icmp" and f["network.packets"] == 2 and f["ztsoc.flow.state"] == "SF"
    assert "source.port" not in f


# -- Community ID against the reference implementation (PyPI communityid) ---------------------
CID = communityid.CommunityID()


@pytest.mark.parametrize("tpl,ours", [
    (communityid.FlowTuple.make_tcp("128.232.110.120", "66.35.250.204", 34855, 80),
     ("128.232.110.120", "66.35.250.204", 6, 34855, 80)),
    (communityid.FlowTuple.make_tcp("66.35.250.204", "128.232.110.120", 80, 34855),
     ("66.35.250.204", "128.232.110.120", 6, 80, 34855)),
    (communityid.FlowTuple.make_udp("192.168.1.52", "8.8.8.8", 54585, 53), ("192.168.1.52", "8.8.8.8", 17, 54585, 53)),
    (communityid.FlowTuple.make_udp("1.1.1.1", "1.1.1.1", 53, 40000), ("1.1.1.1", "1.1.1.1", 17, 53, 40000)),
    (communityid.FlowTuple.make_sctp("192.168.170.8", "192.168.170.56", 7, 80), ("192.168.170.8", "192.168.170.56", 132, 7, 80)),
    (communityid.FlowTuple.make_icmp("192.168.0.89", "192.168.0.1", 8, 0), ("192.168.0.89", "192.168.0.1", 1, 8, 0)),
    (communityid.FlowTuple.make_icmp("192.168.0.1", "192.168.0.89", 0, 0), ("192.168.0.1", "192.168.0.89", 1, 0, 0)),
    (communityid.FlowTuple.make_icmp("192.168.0.1", "192.168.0.89", 3, 1), ("192.168.0.1", "192.168.0.89", 1, 3, 1)),
    (communityid.FlowTuple.make_icmp6("fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0),
     ("fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 58, 135, 0)),
    (communityid.FlowTuple.make_icmp6("3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4),
     ("3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 58, 1, 4)),
    (communityid.FlowTuple.make_ip("10.0.0.1", "10.0.0.2", 46), ("10.0.0.1", "10.0.0.2", 46, 0, 0)),
])
def test_community_id_matches_the_reference(tpl: communityid.FlowTuple, ours: tuple) -> None:
    import ipaddress

    src, dst, proto, sport, dport = ours
    packed = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    assert community_id(packed[0], packed[1], proto, sport, dport) == CID.calc(tpl)


def test_flow_community_id_is_the_same_both_ways_and_matches_the_reference() -> None:
    f = only_flow(tcp_session())
    assert f["network.community_id"] == CID.calc(communityid.FlowTuple.make_tcp(S, C, 80, 40000))
    icmp_flow = only_flow([eth() / IP(src=S, dst=C) / ICMP(type=0), eth() / IP(src=C, dst=S) / ICMP(type=8)])
    assert icmp_flow["network.community_id"] == CID.calc(communityid.FlowTuple.make_icmp(C, S, 8, 0))


# -- tunnels: the inner conversation is a flow of its own ---------------------------------------
def _tunnel_flows(outer: Packet) -> list[dict]:
    """The same inner session wrapped in ``outer``: IP directly, or a whole Ethernet frame (VXLAN, GRE 0x6558)."""
    carries_ethernet = outer.haslayer(VXLAN) or (outer.haslayer(GRE) and outer[GRE].proto == 0x6558)
    inner = tcp_session(src="169.254.20.1", dst="169.254.20.2")
    return flows(meter(timed([outer.copy() / (p if carries_ethernet else p[IP]) for p in inner])))


@pytest.mark.parametrize("outer,transport", [
    (eth() / IP(src=C, dst=S, proto=4), "ipv4"),
    (eth() / IP(src=C, dst=S) / GRE(proto=0x0800), "gre"),
    (eth() / IP(src=C, dst=S) / GRE(proto=0x6558), "gre"),
    (eth() / IP(src=C, dst=S) / UDP(sport=50000, dport=4789) / VXLAN(vni=42, flags=0x08), "udp"),
])
def test_tunnelled_session_is_metered_inside_and_outside(outer: Packet, transport: str) -> None:
    fs = _tunnel_flows(outer)
    inner = [f for f in fs if f.get("tags") == ["tunnelled"]]
    assert len(inner) == 1 and inner[0]["source.ip"] == "169.254.20.1" and inner[0]["ztsoc.flow.state"] == "SF"
    assert inner[0]["network.packets"] == 6
    outer_flows = [f for f in fs if "tags" not in f]
    assert len(outer_flows) == 1 and outer_flows[0]["network.transport"] == transport
    assert inner[0]["event.id"] != outer_flows[0]["event.id"] and inner[0]["event.id"].endswith(".1:flow")


def test_pppoe_with_compressed_ppp_protocol() -> None:
    from scapy.layers.ppp import PPPoE

    frame = bytes(eth() / PPPoE(sessionid=1)) + b"\x21" + bytes(IP(src=C, dst=S) / UDP(sport=1, dport=2))
    frame = frame[:12] + b"\x88\x64" + frame[14:]
    m = FlowMeter(lambda pos: pos)
    m.feed([(0, 0, 1, frame, len(frame))])
    m.flush()
    assert [e["destination.port"] for e in m.events] == [2]


# -- memory: a compact record per open flow, a table capped by default ---------------------------
_ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"


def _udp_flows(count: int, rounds: int = 1) -> Iterator[tuple[int, int, int, bytes, int]]:
    """``count`` UDP flows all open at once (each flow's first packet, then each one's second...)."""
    index = 0
    for rnd in range(rounds):
        for i in range(count):
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 17, 0, struct.pack("!I", 0x0A000000 + (i >> 8)),
                             b"\xc0\x00\x02\x01")
            frame = _ETH + ip + struct.pack("!HHHH", 1024 + (i & 0xFF), 9999, 20, 0) + b"x" * 12
            yield index, (1_700_000_000 + rnd * 10) * 1_000_000_000 + i, 1, frame, len(frame)
            index += 1


def _metered(config: MeterConfig, records: Iterable[tuple[int, int, int, bytes, int]], batch: int) -> tuple[int, int]:
    """(peak traced bytes, events) metering ``records`` as the collector does: events taken a batch at a time."""
    m = FlowMeter(lambda pos: f"id:{pos}", config)
    out = 0
    tracemalloc.start()
    try:
        it = iter(records)
        while not m.feed(it, batch):
            out += len(m.events)
            m.events = []
        while not m.flush(limit=batch):
            out += len(m.events)
            m.events = []
        out += len(m.events)
        m.events = []
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


def test_the_default_flow_table_fits_a_small_sensor() -> None:
    """Issue 14: 100,000 open flows took ~100 MB. An open flow is now one slotted record under two
    12-byte keys (about 530 bytes with its table entries); the default cap (10,000) keeps the
    table under 7 MB, and the flow past it evicts the least recently seen eighth, reported."""
    cap = MeterConfig().max_flows
    records = list(_udp_flows(cap + 1))  # made before tracing: the packets are the reader's, not the table's
    m = FlowMeter(lambda pos: f"id:{pos}")
    tracemalloc.start()
    try:
        m.feed(records[:cap])
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert m.open == cap and not m.events
    assert held / cap < 700 and held < 7_000_000, f"{held / cap:.0f} bytes per open flow"
    m.feed(records[cap:])
    assert m.open == cap - cap // 8 + 1
    assert len(m.events) == cap // 8 and {e["event.reason"] for e in m.events} == {"evicted"}


def test_peak_memory_is_flat_past_the_cap() -> None:
    """Twice the flows past the cap, the same peak: what is held is the capped table and a batch of
    events, never something that grows with the flows a capture opens (generous bounds)."""
    config = MeterConfig(max_flows=256)
    small, n_small = _metered(config, _udp_flows(250, 2), 100)  # under the cap: nothing evicted
    big, n_big = _metered(config, _udp_flows(1500, 2), 100)
    bigger, n_bigger = _metered(config, _udp_flows(3000, 2), 100)
    assert (n_small, n_big, n_bigger) == (250, 3000, 6000)  # every flow reported, evicted ones twice
    assert bigger < big * 1.15 + 50_000, (big, bigger)
    assert big < small + 256 * 700 + 500_000, (small, big)  # at most the rest of the table and the evicted batch


@pytest.mark.parametrize("proto", [6, 17, 1, 132])
@pytest.mark.parametrize("family", [4, 16])
def test_flow_keys_of_both_directions_agree(family: int, proto: int) -> None:
    """The fast path slices its key out of the frame; the general path packs it (flow_key): the same
    flow must get the same key either way, and reverse_key must turn it round exactly."""
    rng = random.Random(family * 1000 + proto)
    for _ in range(200):
        src, dst = rng.randbytes(family), rng.randbytes(family)
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        key = flow_key(src, dst, sport, dport, proto)
        assert reverse_key(key) == flow_key(dst, src, dport, sport, proto) and reverse_key(reverse_key(key)) == key
    frame = bytes(eth() / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="S"))
    assert frame[26:38] == flow_key(socket.inet_aton(C), socket.inet_aton(S), 40000, 80, 6)
