"""Which addresses are loopback and which ``Host`` names the dashboard answers to.

The one loopback definition of the dashboard: 127.0.0.0/8 and ::1 (and the name
``localhost``). The server uses it to decide whether a bind needs analysts' tokens and to
build the Host allow-list; the CLI uses it for the startup message. A request whose
``Host`` is not on the list is refused before any handler runs: that is what stops DNS
rebinding (a page at ``evil.example`` whose name now resolves to 127.0.0.1 still sends
``Host: evil.example``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
LOOPBACK_NAMES = frozenset({"localhost"})


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also written ``[::1]`` or as ``::ffff:127.x.y.z``) and ``localhost``."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    address = _address(host)
    return address is not None and any(address in net for net in LOOPBACK_NETWORKS)


def split_host(header: str) -> str | None:
    """The name or address of a ``Host`` header without its port; None when it is not one."""
    header = header.strip()
    if not header or any(ch.isspace() or ch in "/@?#\\" for ch in header):
        return None
    if header.startswith("["):  # [v6]:port
        end = header.find("]")
        if end < 0 or (header[end + 1:] and not (header[end + 1] == ":" and header[end + 2:].isdigit())):
            return None
        return header[:end + 1]
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name.lower()
    if ":" in header:
        return None  # a bare IPv6 address or a malformed port
    return header.lower()


@dataclass(frozen=True)
class HostAllowList:
    """Loopback names and addresses, the bind address itself, and the names given with ``--allow-host``."""

    extra: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, bind: str, allow: Iterable[str] = ()) -> HostAllowList:
        names = {h.strip().lower().rstrip(".") for h in allow if h.strip()}
        if bind not in ("0.0.0.0", "::", "") and not is_loopback(bind):
            names.add(bind.lower())
        return cls(frozenset(n if _address(n) is None or ":" not in n else f"[{n.strip('[]')}]" for n in names))

    def allows(self, header: str | None) -> bool:
        host = split_host(header or "")
        if host is None:
            return False
        return is_loopback(host) or host.rstrip(".") in self.extra or host in self.extra
