"""IP fragment reassembly (collectors.pcap.fragments): datagrams counted once, evasion reported.

Real packets built with scapy (its ``fragment``/``fragment6`` are the second implementation the
reassembler is held to), tshark's conversation table on a written capture, and generated
splits in every order.
"""

from __future__ import annotations

import itertools
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.packet import Packet, Raw

from collectors.base import read_all, read_resumed
from collectors.pcap.collector import PcapReader
from collectors.pcap.flows import FlowMeter, MeterConfig
from collectors.pcap.fragments import Limits, Reassembler, read_fragment
from tests.pcapkit import C6, S6, C, S, eth, tcp_session, timed, vlan, write

ROOT = Path(__file__).resolve().parents[1]


def meter(packets: list[Packet], **config: object) -> FlowMeter:
    m = FlowMeter(lambda pos: f"id:{pos}", MeterConfig(**config))  # type: ignore[arg-type]
    m.feed((i, round(p.time * 1e9), 1, bytes(p), len(p)) for i, p in enumerate(packets))
    m.flush()
    return m


def flows(m: FlowMeter) -> list[dict]:
    return [e for e in m.events if e["event.dataset"] == "network.flow"]


def reasons(m: FlowMeter) -> list[str]:
    return [p.reason for p in m.problems]


def big_udp(ident: int = 77, size: int = 3000, dport: int = 7001) -> Packet:
    return IP(src=C, dst=S, id=ident) / UDP(sport=7000, dport=dport) / Raw(bytes(i % 251 for i in range(size)))


def test_a_fragmented_datagram_is_one_packet_of_its_flow() -> None:
    frags = [eth() / f for f in fragment(big_udp(), fragsize=1000)]
    assert len(frags) == 4
    m = meter(timed(frags))
    [f] = flows(m)
    assert (f["network.packets"], f["destination.port"], f["source.port"]) == (1, 7001, 7000)
    assert f["network.bytes"] == len(frags[-1])  # the frame that completed it, as tshark -z conv counts
    assert m.stats["ip fragments"] == 4 and m.stats["reassembled datagrams"] == 1 and m.problems == []


def test_a_reassembled_datagram_keeps_its_vlan() -> None:
    frags = [vlan(42) / f for f in fragment(big_udp(), fragsize=1000)]
    [f] = flows(meter(timed(frags)))
    assert (f["network.vlan.id"], f["network.packets"], f["destination.port"]) == ("42", 1, 7001)


def test_wire_bytes_on_request() -> None:
    frags = [eth() / f for f in fragment(big_udp(), fragsize=1000)]
    [f] = flows(meter(timed(frags), fragment_bytes="wire"))
    assert f["network.packets"] == 1 and f["network.bytes"] == sum(len(p) for p in frags)


def test_out_of_order_fragments_and_the_rest_of_the_flow() -> None:
    frags = [eth() / f for f in fragment(big_udp(), fragsize=512)]
    plain = eth() / IP(src=S, dst=C) / UDP(sport=7001, dport=7000) / Raw(b"ok")
    m = meter(timed([*reversed(frags), plain]))
    [f] = flows(m)
    assert (f["source.packets"], f["destination.packets"]) == (1, 1) and m.problems == []


def test_ipv6_fragments_and_an_atomic_fragment() -> None:
    pkt = IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=9) / UDP(sport=1, dport=2) / Raw(b"a" * 3000)
    frags = [eth() / f for f in fragment6(pkt, 1280)]
    assert len(frags) == 3
    atomic = eth() / IPv6(src=S6, dst=C6) / IPv6ExtHdrFragment(id=10, m=0, offset=0) / UDP(sport=2, dport=1) / Raw(b"b")
    m = meter(timed([*frags, atomic]))
    [f] = flows(m)
    assert (f["network.packets"], f["destination.port"], f["network.type"]) == (2, 2, "ipv6")
    assert m.problems == []


def test_tiny_first_fragment_still_finds_its_ports_and_is_reported() -> None:
    """RFC 1858: the TCP header split so that the first fragment holds only 8 of its bytes."""
    seg = bytes(TCP(sport=40000, dport=22, flags="S"))
    first = eth() / IP(src=C, dst=S, id=5, proto=6, flags="MF", frag=0) / Raw(seg[:8])
    rest = eth() / IP(src=C, dst=S, id=5, proto=6, frag=1) / Raw(seg[8:])
    m = meter(timed([first, rest]))
    [f] = flows(m)
    assert (f["destination.port"], f["network.packets"]) == (22, 1)
    assert reasons(m) == ["tiny first IP fragment"]


def _dns_query(name: str) -> bytes:
    return bytes(UDP(sport=5353, dport=53) / DNS(id=1, qd=DNSQR(qname=name)))


def test_overlap_first_wins_and_is_reported() -> None:
    """A second copy of bytes 8..32 says another name: the bytes that came first are kept."""
    real, fake = _dns_query("intranet.example.org"), _dns_query("attacker.example.org")
    assert len(real) == len(fake) > 40
    ip = {"src": C, "dst": S, "id": 6, "proto": 17}
    first = eth() / IP(**ip, flags="MF", frag=0) / Raw(real[:16])
    middle = eth() / IP(**ip, flags="MF", frag=2) / Raw(real[16:32])
    overlap = eth() / IP(**ip, flags="MF", frag=1) / Raw(fake[8:32])
    tail = eth() / IP(**ip, frag=4) / Raw(real[32:])
    m = meter(timed([first, middle, overlap, tail]))
    [d] = [e for e in m.events if e["event.dataset"] == "network.dns"]
    assert d["dns.question.name"] == "intranet.example.org"
    assert "overlapping IP fragments" in reasons(m)


def test_duplicate_fragment_is_reported_as_such() -> None:
    frags = [eth() / f for f in fragment(big_udp(), fragsize=1000)]
    m = meter(timed([frags[0], frags[1], frags[1], frags[2], frags[3]]))
    assert [f["network.packets"] for f in flows(m)] == [1] and reasons(m) == ["duplicate IP fragment"]


def test_too_many_fragments_and_past_65535_bytes_are_dropped() -> None:
    data = bytes(UDP(sport=1, dport=2) / Raw(b"x" * 2400))
    many = [eth() / IP(src=C, dst=S, id=7, proto=17, flags="MF" if o + 8 < len(data) else 0, frag=o // 8)
            / Raw(data[o:o + 8]) for o in range(0, len(data), 8)]
    m = meter(timed(many, gap=0.0001))
    assert flows(m) == [] and "too many IP fragments" in reasons(m)
    death = [eth() / IP(src=C, dst=S, id=8, proto=1, flags="MF", frag=0) / Raw(b"\x08\x00" + b"p" * 1478),
             eth() / IP(src=C, dst=S, id=8, proto=1, frag=8189) / Raw(b"p" * 400)]
    m = meter(timed(death))
    assert flows(m) == [] and "IP fragment beyond 65,535 bytes" in reasons(m)


def test_incomplete_datagrams_time_out_and_are_reported() -> None:
    frags = [eth() / f for f in fragment(big_udp(), fragsize=1000)]
    m = meter(timed([frags[0], frags[2], frags[3]]))  # the second never comes
    assert flows(m) == [] and reasons(m) == ["incomplete fragmented datagram"]
    late = timed([frags[0], frags[1], frags[2]]) + timed([frags[3]], start=frags[0].time + 40)
    m = meter(late)
    assert flows(m) == [] and reasons(m).count("incomplete fragmented datagram") == 2


def test_the_table_is_bounded_under_a_flood() -> None:
    limits = Limits(max_datagrams=16, max_bytes=64 << 10)
    m = FlowMeter(lambda pos: f"id:{pos}", MeterConfig(fragments=limits))
    peak = 0
    for i in range(2000):  # 2,000 first fragments that never complete
        p = eth() / IP(src=C, dst=S, id=i, proto=17, flags="MF") / Raw(b"q" * 1000)
        m.packet(i, 1_700_000_000 * 10**9 + i * 1000, 1, bytes(p), len(p))
        peak = max(peak, len(m.defrag.pending), m.defrag.bytes_held // 1000)
    assert peak <= 64 and len(m.defrag.pending) <= 16 and m.defrag.bytes_held <= 64 << 10
    assert reasons(m).count("IP fragment table full") >= 1900


def test_a_resumed_read_gives_the_same_events(tmp_path: Path) -> None:
    pkts: list[Packet] = []
    for k in range(6):  # fragmented datagrams interleaved with whole flows: batch ends fall mid-datagram
        frags = [eth() / f for f in fragment(big_udp(ident=100 + k, dport=7100 + k), fragsize=600)]
        session = tcp_session(sport=41000 + k, request=b"GET / HTTP/1.1\r\n\r\n")
        for i, p in enumerate(session):
            pkts.append(p)
            if i < len(frags):
                pkts.append(frags[i])
        pkts += frags[len(session):]
    path = write(tmp_path / "frags.pcap", timed(pkts))
    reader = PcapReader()
    whole = read_all(reader, path)
    resumed = read_resumed(reader, path, batch_size=3)
    assert sorted(e["event.id"] for e in resumed.events) == sorted(e["event.id"] for e in whole.events)
    assert sum(1 for e in whole.events if e.get("destination.port", 0) >= 7100) == 6


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_conversations_agree_with_tshark(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from compat.pcaps import agree, our_conversations, tshark_conversations

    rng = random.Random(19)
    pkts: list[Packet] = []
    for k in range(20):
        dgram = big_udp(ident=200 + k, size=rng.randrange(1500, 9000), dport=7200 + k)
        frags = [eth() / f for f in fragment(dgram, fragsize=rng.choice((256, 512, 1000, 1480)))]
        rng.shuffle(frags)
        pkts += frags
    v6 = IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=1) / UDP(sport=9, dport=10) / Raw(b"6" * 4000)
    pkts += [eth() / f for f in fragment6(v6, 1280)]
    path = write(tmp_path / "mix.pcap", timed(pkts))
    ours = our_conversations(read_all(PcapReader(idle_timeout=1e9, active_timeout=1e9), path).events)
    theirs = tshark_conversations(path)
    assert len(theirs) == 21
    assert [k for k, row in theirs.items() if not agree(ours.get(k), row)] == []


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 4000), st.lists(st.integers(1, 185), min_size=1, max_size=12), st.randoms())
def test_any_split_in_any_order_rebuilds_the_datagram(size: int, cuts: list[int], rnd: random.Random) -> None:
    """Cut a datagram at generated 8-byte boundaries, deliver the pieces in a generated order
    (some twice): the reassembled bytes are the original's, whatever the order."""
    payload = bytes(UDP(sport=1, dport=2) / Raw(bytes(i % 256 for i in range(size))))
    original = IP(src=C, dst=S, id=3, proto=17) / Raw(payload)
    bounds = sorted({min(p, len(payload)) for p in itertools.accumulate(c * 8 for c in cuts)} | {0, len(payload)})
    pieces = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    order = pieces + rnd.sample(pieces, k=min(2, len(pieces)))
    rnd.shuffle(order)
    problems: list[str] = []
    r = Reassembler(lambda _i, reason, _d: problems.append(reason))
    done = None
    for n, (a, b) in enumerate(order):
        pkt = bytes(IP(src=C, dst=S, id=3, proto=17, flags="MF" if b < len(payload) else 0, frag=a // 8)
                    / Raw(payload[a:b]))
        frag = read_fragment(pkt, 4, 0) if (a, b) != (0, len(payload)) else None
        if frag is None:
            done = (pkt, 0)
            break
        assert not isinstance(frag, str)
        out = r.add(n, n, frag, len(pkt))
        if out is not None:
            done = out
            break
    assert done is not None
    rebuilt = IP(done[0])
    assert done[0][20:] == payload and rebuilt.len == len(original) and rebuilt.frag == 0 and rebuilt.flags == 0
    assert rebuilt[UDP].dport == 2
    assert set(problems) <= {"duplicate IP fragment"}
    assert r.pending == {} and r.bytes_held == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 8191), st.booleans(), st.binary(max_size=64)),
                max_size=40))
def test_hostile_fragment_streams_never_raise_and_stay_bounded(stream: list[tuple[int, int, bool, bytes]]) -> None:
    limits = Limits(max_datagrams=4, max_bytes=1 << 12, max_fragments=8)
    m = FlowMeter(lambda pos: f"id:{pos}", MeterConfig(fragments=limits))
    for i, (ident, off, more, data) in enumerate(stream):
        p = eth() / IP(src=C, dst=S, id=ident, proto=17, flags="MF" if more else 0, frag=off) / Raw(data)
        m.packet(i, 1_700_000_000 * 10**9 + i, 1, bytes(p), len(p))
        assert len(m.defrag.pending) <= 4 and m.defrag.bytes_held <= (1 << 12) + 64
    m.flush()
    assert m.defrag.pending == {}
