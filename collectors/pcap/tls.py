"""TLS handshakes into ECS ``tls.*``: version, SNI, JA3 and JA4 of the ClientHello.

Hand-written: dpkt's TLS parser raises on the GREASE values and post-quantum key
shares of current browsers and computes no fingerprint, and no maintained PyPI package
computes JA4 from raw bytes. The ClientHello layout is RFC 8446 section 4.1.2; JA3 is
Salesforce's definition (GREASE removed, decimal, dash-joined, MD5) and JA4 is FoxIO's
(``t13d1516h2_<sha256 of sorted ciphers>_<sha256 of sorted extensions_sigalgs>``).
A ClientHello larger than one segment (post-quantum key shares) is reassembled by the
flow meter before it gets here (see :func:`hello_length`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HANDSHAKE = 0x16
CLIENT_HELLO, SERVER_HELLO = 1, 2
EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIGALGS, EXT_ALPN, EXT_VERSIONS = 0, 10, 11, 13, 16, 43
MAX_HELLO = 1 << 16

VERSIONS: dict[int, tuple[str, str]] = {  # wire version -> (tls.version, tls.version_protocol)
    0x0002: ("2.0", "ssl"), 0x0300: ("3.0", "ssl"), 0x0301: ("1.0", "tls"), 0x0302: ("1.1", "tls"),
    0x0303: ("1.2", "tls"), 0x0304: ("1.3", "tls"), 0xFEFF: ("1.0", "dtls"), 0xFEFD: ("1.2", "dtls"),
    0xFEFC: ("1.3", "dtls"),
}
JA4_VERSIONS: dict[int, str] = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                                0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}
#: the suites a server picks most; others are written as their hex code
CIPHERS: dict[int, str] = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0005: "TLS_RSA_WITH_RC4_128_SHA", 0x0004: "TLS_RSA_WITH_RC4_128_MD5",
}


class TlsError(ValueError):
    """A handshake that cannot be read; the text is the problem's reason."""


def is_grease(value: int) -> bool:
    """RFC 8701 values (0x0a0a, 0x1a1a ... 0xfafa): ignored by JA3 and JA4."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(slots=True)
class ClientHello:
    legacy_version: int
    ciphers: list[int]
    extensions: list[int]  # in wire order
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    sig_algs: list[int] = field(default_factory=list)
    alpn: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    server_name: str | None = None
    #: sent in SSL 2.0's record format (cipher specs are 3-byte values)
    sslv2: bool = False

    @property
    def max_version(self) -> int:
        offered = [v for v in self.versions if not is_grease(v)]
        return max(offered) if offered else self.legacy_version

    def ja3_string(self) -> str:
        def dash(values: list[int]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))
        return ",".join((str(self.legacy_version), dash(self.ciphers), dash(self.extensions), dash(self.groups),
                         dash(self.point_formats)))

    def ja3(self) -> str:
        return hashlib.md5(self.ja3_string().encode(), usedforsecurity=False).hexdigest()

    def ja4(self, transport: str = "t") -> str:
        return ja4(transport, self.max_version, self.server_name is not None, self.ciphers, self.extensions,
                   self.alpn[0] if self.alpn else "", self.sig_algs)


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4(transport: str, version: int, has_sni: bool, ciphers: list[int], extensions: list[int], alpn: str,
        sig_algs: list[int]) -> str:
    ciphers = [c for c in ciphers if not is_grease(c)]
    extensions = [e for e in extensions if not is_grease(e)]
    if not alpn:
        alpn_code = "00"
    elif alpn[0].isascii() and alpn[0].isalnum() and alpn[-1].isascii() and alpn[-1].isalnum():
        alpn_code = alpn[0] + alpn[-1]
    else:
        raw = alpn.encode("latin-1", "replace").hex()
        alpn_code = raw[0] + raw[-1]
    head = (f"{transport}{JA4_VERSIONS.get(version, '00')}{'d' if has_sni else 'i'}"
            f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn_code}")
    cipher_hash = _hash12(",".join(f"{c:04x}" for c in sorted(ciphers)))
    ext_text = ",".join(f"{e:04x}" for e in sorted(e for e in extensions if e not in (EXT_SNI, EXT_ALPN)))
    if ext_text and sig_algs:
        ext_text += "_" + ",".join(f"{s:04x}" for s in sig_algs)
    return f"{head}_{cipher_hash}_{_hash12(ext_text)}"


def hello_length(payload: bytes) -> int | None:
    """How many bytes the ClientHello record starting ``payload`` needs, or None if it is not one.

    Both record formats: TLS (``16 03 ..``) and SSL 2.0's (a 2-byte length with the top bit
    set, message type 1, version 0x0002 or 0x03xx: old scanners and SSLv2-compatible hellos).
    """
    if len(payload) >= 6 and payload[0] == HANDSHAKE and payload[1] == 3 and payload[5] == CLIENT_HELLO:
        return 5 + ((payload[3] << 8) | payload[4])
    if (len(payload) >= 11 and payload[0] & 0x80 and payload[2] == CLIENT_HELLO
            and ((payload[3] == 0 and payload[4] == 2) or (payload[3] == 3 and payload[4] <= 4))):
        return 2 + (((payload[0] & 0x7F) << 8) | payload[1])
    return None


def _sslv2_hello(payload: bytes) -> ClientHello:
    """An SSL 2.0-format ClientHello: version, then cipher specs of 3 bytes (RFC 6101 appendix E)."""
    version = (payload[3] << 8) | payload[4]
    spec_len = (payload[5] << 8) | payload[6]
    session_len = (payload[7] << 8) | payload[8]
    challenge_len = (payload[9] << 8) | payload[10]
    if spec_len % 3 or 11 + spec_len + session_len + challenge_len > len(payload):
        raise TlsError("truncated SSLv2 ClientHello")
    specs = payload[11:11 + spec_len]
    ciphers = [(specs[i] << 16) | (specs[i + 1] << 8) | specs[i + 2] for i in range(0, spec_len, 3)]
    return ClientHello(version, ciphers, [], sslv2=True)


_U16S: dict[int, Any] = {}


def _u16s(data: bytes) -> list[int]:
    n = len(data) >> 1
    unpack = _U16S.get(n)
    if unpack is None:
        unpack = _U16S[n] = struct.Struct(f">{n}H").unpack_from
    return list(unpack(data))


def parse_client_hello(payload: bytes) -> ClientHello:
    """The ClientHello in a TLS record (the record may be followed by more data)."""
    if hello_length(payload) is None:
        raise TlsError("not a TLS ClientHello")
    if payload[0] & 0x80:
        return _sslv2_hello(payload)
    if len(payload) < 9:  # a record header and the handshake type, cut before the handshake length
        raise TlsError("truncated ClientHello")
    hs_len = (payload[6] << 16) | (payload[7] << 8) | payload[8]
    body = payload[9:9 + hs_len]
    try:
        version = (body[0] << 8) | body[1]
        pos = 34
        pos += 1 + body[pos]  # session id
        clen = (body[pos] << 8) | body[pos + 1]
        ciphers = _u16s(body[pos + 2:pos + 2 + clen])
        pos += 2 + clen
        pos += 1 + body[pos]  # compression methods
    except IndexError as exc:
        raise TlsError("truncated ClientHello") from exc
    extensions: list[int] = []
    hello = ClientHello(version, ciphers, extensions)
    blen = len(body)
    if pos + 2 > blen:
        return hello  # no extensions (SSL 3 / old TLS 1.0 clients)
    ext_end = min(blen, pos + 2 + ((body[pos] << 8) | body[pos + 1]))
    pos += 2
    parsers = _EXTENSIONS
    while pos + 4 <= ext_end:
        etype = (body[pos] << 8) | body[pos + 1]
        elen = (body[pos + 2] << 8) | body[pos + 3]
        pos += 4
        if pos + elen > blen:
            raise TlsError("truncated ClientHello extension")
        extensions.append(etype)
        parse = parsers.get(etype)
        if parse is not None:
            parse(hello, body[pos:pos + elen])
        pos += elen
    return hello


def _sni(hello: ClientHello, data: bytes) -> None:
    if len(data) >= 5 and data[2] == 0:
        nlen = (data[3] << 8) | data[4]
        hello.server_name = data[5:5 + nlen].decode("ascii", "backslashreplace")


def _groups(hello: ClientHello, data: bytes) -> None:
    hello.groups = _u16s(data[2:])


def _point_formats(hello: ClientHello, data: bytes) -> None:
    if data:
        hello.point_formats = list(data[1:1 + data[0]])


def _sig_algs(hello: ClientHello, data: bytes) -> None:
    hello.sig_algs = _u16s(data[2:])


def _versions(hello: ClientHello, data: bytes) -> None:
    if data:
        hello.versions = _u16s(data[1:1 + data[0]])


def _alpn(hello: ClientHello, data: bytes) -> None:
    if len(data) >= 3:
        pos, end = 2, min(len(data), 2 + ((data[0] << 8) | data[1]))
        while pos < end:
            ln = data[pos]
            hello.alpn.append(data[pos + 1:pos + 1 + ln].decode("latin-1"))
            pos += 1 + ln


#: the extensions whose content the fingerprints and fields need; the others are only listed
_EXTENSIONS: dict[int, Callable[[ClientHello, bytes], None]] = {
    EXT_SNI: _sni, EXT_GROUPS: _groups, EXT_POINT_FORMATS: _point_formats, EXT_SIGALGS: _sig_algs,
    EXT_VERSIONS: _versions, EXT_ALPN: _alpn,
}


#: the ServerHello random that makes it a HelloRetryRequest (RFC 8446 4.1.3): a second ClientHello follows
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


@dataclass(slots=True)
class ServerHello:
    version: int
    cipher: int
    retry: bool = False  # a HelloRetryRequest


def parse_server_hello(payload: bytes) -> ServerHello | None:
    """The negotiated version and cipher, or None if the segment does not start a ServerHello."""
    if len(payload) < 11 or payload[0] != HANDSHAKE or payload[1] != 3 or payload[5] != SERVER_HELLO:
        return None
    body = payload[9:]
    try:
        version = (body[0] << 8) | body[1]
        pos = 34
        pos += 1 + body[pos]
        cipher = (body[pos] << 8) | body[pos + 1]
        pos += 3
    except IndexError:
        return None
    if pos + 2 <= len(body):
        ext_end = min(len(body), pos + 2 + ((body[pos] << 8) | body[pos + 1]))
        pos += 2
        while pos + 4 <= ext_end:
            etype = (body[pos] << 8) | body[pos + 1]
            elen = (body[pos + 2] << 8) | body[pos + 3]
            if etype == EXT_VERSIONS and elen == 2 and pos + 6 <= len(body):
                version = (body[pos + 4] << 8) | body[pos + 5]
            pos += 4 + elen
    return ServerHello(version, cipher, body[2:34] == HRR_RANDOM)


#: fingerprints by the hello's fingerprinted content: clients repeat themselves, hashing need not
_FINGERPRINTS: dict[tuple[Any, ...], tuple[str, str, list[str]]] = {}


def fingerprints(hello: ClientHello) -> tuple[str, str, list[str]]:
    """(JA3, JA4, cipher names) of a hello, cached on exactly what they are computed from."""
    key = (hello.legacy_version, tuple(hello.ciphers), tuple(hello.extensions), tuple(hello.groups),
           tuple(hello.point_formats), tuple(hello.sig_algs), hello.alpn[0] if hello.alpn else "",
           tuple(hello.versions), hello.server_name is not None)
    found = _FINGERPRINTS.get(key)
    if found is None:
        if len(_FINGERPRINTS) > 4096:
            _FINGERPRINTS.clear()
        found = _FINGERPRINTS[key] = (
            hello.ja3(), hello.ja4(), [CIPHERS.get(c, f"0x{c:04x}" if c <= 0xFFFF else f"0x{c:06x}") for c in hello.ciphers if not is_grease(c)])
    return found


def tls_fields(hello: ClientHello, server: ServerHello | None) -> dict[str, Any]:
    wire = server.version if server is not None else hello.max_version
    version, protocol = VERSIONS.get(wire, (f"{wire:#06x}", "tls"))
    ja3, ja4_, ciphers = fingerprints(hello)
    doc: dict[str, Any] = {
        "tls.version": version,
        "tls.version_protocol": protocol,
        "tls.client.ja3": ja3,
        "ztsoc.tls.client.ja4": ja4_,
        "tls.client.supported_ciphers": list(ciphers),
        "tls.established": server is not None,
    }
    if hello.server_name:
        doc["tls.client.server_name"] = hello.server_name
    if hello.sslv2:
        doc["tls.version_protocol"] = "ssl" if hello.legacy_version == 0x0002 else protocol
        doc["ztsoc.tls.sslv2_record"] = True
    if server is not None and server.retry:
        doc["tls.established"] = False
        doc["ztsoc.tls.hello_retry"] = True
    if server is not None:
        doc["tls.cipher"] = CIPHERS.get(server.cipher, f"0x{server.cipher:04x}")
    return doc
