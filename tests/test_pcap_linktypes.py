"""Link layers: where the IP packet starts, for every link type the registry lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Packet

from collectors.pcap.linktypes import (
    LINKTYPES,
    ethernet,
    linux_sll,
    linux_sll2,
    null_loopback,
    openbsd_loop,
    raw_ip,
)

V4 = IP(src="169.254.1.1", dst="169.254.1.2") / TCP(sport=1, dport=2)
V6 = IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2)


def where(decoder: Callable[[bytes], tuple[int, int, int] | None], frame: Packet) -> tuple[int, int, int] | None:
    return decoder(bytes(frame))


@pytest.mark.parametrize("frame,expected", [
    (Ether() / V4, (4, 14, -1)),
    (Ether() / V6, (6, 14, -1)),
    (Ether() / Dot1Q(vlan=42) / V4, (4, 18, 42)),
    (Ether(type=0x88A8) / Dot1Q(vlan=100) / Dot1Q(vlan=7) / V6, (6, 22, 100)),  # QinQ: outer tag reported
    (Ether() / PPPoE() / PPP(proto=0x0021) / V4, (4, 22, -1)),
    (Ether(type=0x0806) / (b"\x00" * 28), (0, 14, -1)),  # ARP: no IP, not an error
])
def test_ethernet(frame: Packet, expected: tuple[int, int, int]) -> None:
    assert where(ethernet, frame) == expected


def test_mpls_label_stack() -> None:
    labels = bytes.fromhex("0001e0ff" "0002e1ff")  # two labels, bottom-of-stack on the second
    frame = bytes(Ether(type=0x8847)) + labels + bytes(V4)
    assert ethernet(frame) == (4, 22, -1)


def test_linux_cooked_v1_and_v2() -> None:
    assert where(linux_sll, CookedLinux(proto=0x0800) / V4) == (4, 16, -1)
    assert where(linux_sll, CookedLinux(proto=0x86DD) / V6) == (6, 16, -1)
    assert where(linux_sll, CookedLinux(proto=0x8100) / Dot1Q(vlan=9) / V4) == (4, 20, 9)
    assert where(linux_sll2, CookedLinuxV2(proto=0x0800) / V4) == (4, 20, -1)
    assert where(linux_sll2, CookedLinuxV2(proto=0x86DD) / V6) == (6, 20, -1)


def test_raw_and_loopback() -> None:
    assert where(raw_ip, V4) == (4, 0, -1)
    assert where(raw_ip, V6) == (6, 0, -1)
    assert where(null_loopback, Loopback(type=2) / V4) == (4, 4, -1)  # written in this host's order
    assert null_loopback(b"\x00\x00\x00\x1e" + bytes(V6)) == (6, 4, -1)  # a big-endian host's AF_INET6 (30)
    assert openbsd_loop(b"\x00\x00\x00\x02" + bytes(V4)) == (4, 4, -1)


def test_short_frames_say_so() -> None:
    for decoder in (ethernet, linux_sll, linux_sll2, null_loopback):
        assert decoder(b"\x00\x01") is None


def test_registry_covers_the_required_link_types() -> None:
    # Ethernet, raw IP (three numbers), IPv4, IPv6, null, loop, SLL, SLL2
    assert {1, 12, 14, 101, 228, 229, 0, 108, 113, 276} <= set(LINKTYPES)
