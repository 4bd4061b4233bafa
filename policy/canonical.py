"""The PDP's one request canonicaliser: what a front received becomes a ``Request`` here, or a refusal.

Every front goes through this module: the ext_authz HTTP front and ``/v1/decide``
(``policy.server``), the ASGI middleware (``policy.asgi``), the gRPC ext_authz front, and
the engine itself (``Engine.decide`` re-applies ``canonical_method`` and ``canonical_path``,
which are idempotent, so admin tools and replays see the same canonical form). A front
builds an ``HttpRequest`` (exactly what arrived, headers repeated as received) and calls
``canonical_request(http, front)``; a ``Refused`` exception is a deny with its reason
(``status`` 400 for malformed HTTP, 403 otherwise), never a guess.

The rules (README "The request the PDP decides"):

- **Method**: an RFC 9110 token, compared exactly; a standard method in another case
  (``delete``) is refused as ambiguous, since some servers upper-case it.
- **Path**: the query is dropped; percent-escapes decoded once, as strict UTF-8; an escape
  of ``/``, ``\\``, ``%``, ``?``, ``#``, ``;`` or a control character is refused, as are a raw
  backslash, ``;``, ``#`` and control or invisible (format) characters; a path that Unicode
  NFKC normalisation would change (fullwidth solidus U+FF0F, fullwidth letters, ligatures)
  is refused, and so is a character some case-insensitive comparison takes for ASCII letters
  (dotless i U+0131, U+0130, long s U+017F, the Kelvin sign, sharp s: ``CASE_LOOKALIKES``, computed
  from the Unicode tables); repeated slashes collapse; ``.`` and ``..`` segments are resolved (never above
  ``/``), but only on a front that hands the service the resolved path (``FrontConfig.resolve``,
  the ASGI middleware): a proxy front forwards the target as sent, so there a path that
  resolving would change is refused (see ``canonical_path``); a segment ending in a dot or a space, or starting with a space (``/admin./x``,
  ``/admin%20/x``, which Windows-style servers strip), is refused; a trailing ``/`` is kept.
  Case is kept: deny rules match paths case-insensitively and allow rules exactly
  (``policy.compiler``), so ``/ADMIN/x`` can be caught by a deny and never let in by an
  allow it does not spell.
- **Authorization**: at most one header, with one value (Envoy and gRPC join repeats with
  ``,``); ``Bearer`` with a token68 value, or another scheme (treated as anonymous).
- **Host**: required (exactly one) on HTTP/1.1.
- **Who is calling and what is called**: the source address is the socket peer unless the
  peer is a configured trusted proxy (``TrustedProxy``), which names the one header it sets
  (``x-envoy-external-address``, ``x-forwarded-for`` with a number of trusted hops,
  ``forwarded``) or that it reports the address out of band (gRPC ext_authz attributes).
  The destination service comes from the listener (``FrontConfig.service``) or from a
  header only a trusted proxy is believed to set; the original method and URI (nginx
  ``auth_request``, Traefik ``forwardAuth``, Caddy ``forward_auth``) likewise only from the
  trusted proxy configured to send them. Headers from anyone else are ignored.

Hand-written: no maintained library implements this combination (RFC 3986 dot segments,
the refusal rules and proxy trust); ``unicodedata`` and ``ipaddress`` do the rest.
"""

from __future__ import annotations

import array
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from policy.request import Request

MAX_PATH = 8192
MAX_PEERS = 65536
MAX_REMEMBERED = 8192
_PATHS: dict[str, tuple[str, bool]] = {}
_IPS: dict[str, str] = {}
MAX_METHOD = 32
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,252}")
#: Characters whose escape (or raw presence, for some) makes a path mean different things to different servers.
_BAD_ESCAPED = {0x2F: "/", 0x5C: "\\", 0x25: "%", 0x3F: "?", 0x23: "#", 0x3B: ";"}
_BAD_RAW = {"\\": "backslash", ";": "';' (path parameters)", "#": "'#' (fragment)"}
#: Path characters that never need the slow path (ASCII letters, digits and the safe punctuation).
_PLAIN = re.compile(r"(?:/[A-Za-z0-9_~\-]+(?:\.[A-Za-z0-9_~\-]+)*)*/?")
CLIENT_ADDRESS_SOURCES = ("peer", "x-envoy-external-address", "x-forwarded-for", "forwarded", "reported")


class Refused(Exception):
    """A request that cannot be decided as sent: a deny whose reason is ``str(exc)``.

    ``status`` is 400 when the HTTP itself is malformed (no Host on HTTP/1.1, a method that
    is not a token), 403 otherwise.
    """

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


def wire_text(raw: bytes) -> str:
    """Bytes off the wire (request target, header value) as text: UTF-8, undecodable bytes kept as
    lone surrogates, which every check here refuses, so no two fronts decode differently."""
    return raw.decode("utf-8", "surrogateescape")


# -- method and path ------------------------------------------------------------------------
def canonical_method(method: Any) -> str:
    """The method as the policy compares it (exactly), or ``Refused`` (400)."""
    if method in STANDARD_METHODS:
        return method  # type: ignore[no-any-return]
    if not isinstance(method, str) or not method:
        raise Refused("method must be a non-empty string", 400)
    if len(method) > MAX_METHOD or _TOKEN.fullmatch(method) is None:
        raise Refused(f"method {method[:40]!r} is not an RFC 9110 token", 400)
    upper = method.upper()
    if upper != method and upper in STANDARD_METHODS:
        raise Refused(f"method {method!r} differs from {upper} only in case (methods are case-sensitive)", 400)
    return method


_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2})?")


def _percent_decode(path: str) -> str:
    """Decode percent-escapes once, as strict UTF-8; refuse a malformed escape or one of a
    separator, ``%``, ``?``, ``#``, ``;`` or a control character."""
    for m in _ESCAPE.finditer(path):
        escape = m.group()
        if len(escape) != 3:
            raise Refused(f"path {path[:120]!r} has a malformed percent-escape")
        value = int(escape[1:], 16)
        if value in _BAD_ESCAPED:
            raise Refused(f"path {path[:120]!r} encodes {_BAD_ESCAPED[value]!r} ({escape})")
        if value < 0x20 or value == 0x7F:
            raise Refused(f"path {path[:120]!r} encodes a control character ({escape})")
    try:
        return unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"path {path[:120]!r} is not UTF-8 once percent-decoded") from None


_ODD_ASCII = re.compile(r"[\x00-\x1f\x7f\\;#]")
_ASCII = re.compile(r"[\x00-\x7f]")


def _case_lookalikes() -> frozenset[str]:
    """Every non-ASCII character that a case-insensitive comparison can take for ASCII letters.

    Computed from Python's Unicode tables over all code points, not listed by hand: those
    ``re.IGNORECASE`` equates with an ASCII letter (the simple case mappings Java's
    ``equalsIgnoreCase`` and .NET's ``OrdinalIgnoreCase`` use: dotless i U+0131, U+0130,
    long s U+017F, the Kelvin sign) and those whose full ``upper``/``lower``/``casefold`` is all
    ASCII (sharp s is ``SS``, the fi ligatures). A service comparing paths that way serves
    ``/admin`` for ``/adm%C4%B1n``; the policy's own matching cannot know which comparison the
    service uses, so such a path is refused. Bisection keeps it to a few passes of C string
    methods over the whole range (milliseconds at import).
    """
    everything = (array.array("I", range(0x80, 0xD800)).tobytes()
                  + array.array("I", range(0xE000, 0x110000)).tobytes()).decode("utf-32-le")
    found = set(re.findall("[a-z]", everything, re.IGNORECASE))
    folds = (str.upper, str.lower, str.casefold)
    chunks = [everything]
    while chunks:
        chunk = chunks.pop()
        if not any(_ASCII.search(f(chunk)) for f in folds):
            continue
        if len(chunk) == 1:
            if any(f(chunk).isascii() for f in folds):
                found.add(chunk)
            continue
        half = len(chunk) // 2
        chunks += (chunk[:half], chunk[half:])
    return frozenset(found)


#: Non-ASCII characters some case-insensitive comparison equates with ASCII letters (refused in paths).
CASE_LOOKALIKES = _case_lookalikes()
#: The lookalikes ``re.IGNORECASE`` equates with one ASCII letter, mapped to it (U+0130 to ``i``: its
#: ``casefold`` is ``i`` and a combining dot, which no simple comparison keeps).
_TO_ASCII = {ord(c): next(a for a in "abcdefghijklmnopqrstuvwxyz" if re.fullmatch(re.escape(c), a, re.IGNORECASE))
             for c in CASE_LOOKALIKES if re.fullmatch("[a-z]", c, re.IGNORECASE)}


def fold_case(text: str) -> str:
    """The one case fold for matching paths case-insensitively (deny rules, ``policy.compiler``).

    Simple mappings to ASCII first (U+0131, U+0130, U+017F, the Kelvin sign: what Java's
    ``equalsIgnoreCase`` and .NET's ``OrdinalIgnoreCase`` compare), then ``casefold`` (full
    folding: sharp s is ``ss``), so two spellings any of these comparisons equate fold alike.
    """
    return text.translate(_TO_ASCII).casefold()


def _check_characters(path: str, shown: str) -> None:
    odd = _ODD_ASCII.search(path)
    if odd is not None:
        what = _BAD_RAW.get(odd.group())
        raise Refused(f"path {shown!r} contains a {what}" if what else f"path {shown!r} contains a control character")
    if path.isascii():
        return
    for c in path:
        cat = unicodedata.category(c)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (cat == "Zs" and c != " "):
            raise Refused(f"path {shown!r} contains an invisible or control character U+{ord(c):04X}")
        if c in CASE_LOOKALIKES:
            raise Refused(f"path {shown!r} contains U+{ord(c):04X}, which case-insensitive comparisons can take "
                          "for ASCII letters")
    if unicodedata.normalize("NFKC", path) != path:
        raise Refused(f"path {shown!r} changes under Unicode NFKC normalisation (fullwidth or compatibility "
                      "characters some servers fold)")


def canonical_path(target: Any, *, resolve: bool = True) -> str:
    """The path a policy matches (query dropped, decoded, dot segments resolved), or ``Refused``.

    ``resolve=False`` is for a front that cannot change what the service receives (a proxy's
    ext_authz / auth_request / forward-auth call: the upstream gets the target the proxy has,
    as sent): a path with ``.`` or ``..`` segments or repeated slashes is refused there,
    since the service may resolve them differently (Starlette and many routers keep
    ``/admin/../public/x`` as it is and route it under ``/admin``), and a decision on the
    resolved path would then be about another resource than the one served. Percent-decoding
    is not such a change: it is done once, strictly, the way every server decodes.

    Idempotent: ``canonical_path(canonical_path(p)) == canonical_path(p)``, so the engine may
    apply it to a request a front already canonicalised. Recent answers are remembered
    (bounded: targets are attacker-chosen, the table is emptied when full).
    """
    hit = _PATHS.get(target) if isinstance(target, str) else None
    if hit is None:
        hit = _canonical_path(target)
        if len(_PATHS) >= MAX_REMEMBERED:
            _PATHS.clear()
        _PATHS[target] = hit
    canon, resolved = hit
    if resolved and not resolve:
        raise Refused(f"path {target.split('?', 1)[0][:120]!r} has '.' or '..' segments or repeated slashes, which "
                      f"the service receiving it may resolve differently: refused, not decided as {canon[:120]!r}")
    return canon


_SERVED_SAFE = "/:@!$&'()*+,=-._~"


def served_path(path: str) -> bytes:
    """A canonical path as request-target bytes (``raw_path``): percent-encoded UTF-8 that decodes
    back to exactly ``path``, for a front that hands the service the path it decided."""
    return quote(path, safe=_SERVED_SAFE).encode("ascii")


def _canonical_path(target: Any) -> tuple[str, bool]:
    """The canonical path, and whether resolving dot segments or repeated slashes changed it."""
    if not isinstance(target, str) or not target:
        raise Refused("path must be a non-empty string", 400)
    if len(target) > MAX_PATH:
        raise Refused(f"path longer than {MAX_PATH} characters", 414)
    path = target.split("?", 1)[0]
    shown = path[:120]
    if not path.startswith("/"):
        raise Refused(f"path {shown!r} does not start with '/'")
    if _PLAIN.fullmatch(path) is not None:
        return path, False  # the common case: nothing to decode, no dot segment, no odd character
    _check_characters(path, shown)
    decoded = _percent_decode(path) if "%" in path else path
    if decoded != path:
        _check_characters(decoded, shown)
    out: list[str] = []
    segments = decoded.split("/")[1:]
    resolved = False
    for i, seg in enumerate(segments):
        if seg in ("", "."):
            resolved = resolved or seg == "." or i != len(segments) - 1  # a trailing '/' is kept as sent
            continue
        if seg == "..":
            resolved = True
            if out:
                out.pop()
            continue
        if seg.endswith((".", " ")) or seg.startswith(" "):
            raise Refused(f"path {shown!r} has a segment {seg[:40]!r} that starts with a space or ends in a "
                          "dot or space (some servers strip them)")
        out.append(seg)
    last = segments[-1] if segments else ""
    trailing = "/" if out and last in ("", ".", "..") else ""
    return "/" + "/".join(out) + trailing, resolved


# -- proxies and fronts ---------------------------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxy:
    """A proxy whose headers are believed, and which ones.

    ``client_address`` names where the real client address is: ``peer`` (the proxy talks
    for itself), ``x-envoy-external-address``, ``x-forwarded-for`` or ``forwarded`` (the
    ``hops``-th entry from the right: ``hops`` trusted proxies, this one included, appended
    to it), or ``reported`` (out of band, gRPC ext_authz ``attributes.source.address``).
    ``service_header``, ``original_method`` and ``original_uri`` name the headers this proxy
    sets (it must override what the client sent); a header not named here is never read.
    """

    name: str
    networks: tuple[Network, ...]
    client_address: str = "peer"
    hops: int = 1
    service_header: str | None = None
    original_method: str | None = None
    original_uri: str | None = None
    #: The proxy reports the destination service out of band (gRPC ext_authz context_extensions).
    reported_service: bool = False

    def __post_init__(self) -> None:
        if self.client_address not in CLIENT_ADDRESS_SOURCES:
            raise ValueError(f"proxy {self.name}: client_address must be one of {', '.join(CLIENT_ADDRESS_SOURCES)}")
        if not 1 <= self.hops <= 16:
            raise ValueError(f"proxy {self.name}: hops must be within 1..16")
        if not self.networks:
            raise ValueError(f"proxy {self.name}: needs at least one address (CIDR)")

    def covers(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


@dataclass(frozen=True)
class FrontConfig:
    """How one listener learns who calls what: its fixed service, and the proxies it trusts."""

    proxies: tuple[TrustedProxy, ...] = ()
    #: The destination service, when this listener decides for one service only.
    service: str | None = None
    #: Resolve ``.``/``..`` segments and repeated slashes instead of refusing them. Only for a
    #: front that hands the service the path it decided (``policy.asgi`` rewrites the scope);
    #: a proxy forwards the target as sent, so resolving there would decide another path.
    resolve: bool = False
    _peers: dict[str, TrustedProxy | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def proxy_for(self, peer: str | None) -> TrustedProxy | None:
        """The trusted proxy ``peer`` is, if any; remembered per peer (bounded: peers are attacker-chosen)."""
        if not peer or not self.proxies:
            return None
        try:
            return self._peers[peer]
        except KeyError:
            pass
        text = _parse_ip(peer)
        found = None
        if text is not None:
            ip = ipaddress.ip_address(text)
            found = next((p for p in self.proxies if p.covers(ip)), None)
        if len(self._peers) >= MAX_PEERS:
            self._peers.clear()
        self._peers[peer] = found
        return found


_NONE: list[str] = []


@dataclass(slots=True)
class HttpRequest:
    """What a front received, untrusted: method, request target, headers, the socket peer.

    ``headers``: lower-case names with values, in order, a repeated header repeated.
    ``http_version``: ``"1.1"`` / ``"1.0"`` for HTTP/1.x (Host is required on 1.1), ``None``
    when the framing is not HTTP/1.x (gRPC ext_authz: the proxy checked the framing).
    ``reported_source`` / ``reported_service``: what a proxy reported out of band (gRPC
    ext_authz ``attributes.source.address``, ``context_extensions``), believed only from a
    trusted proxy configured for it.
    """

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    peer: str | None
    http_version: str | None = "1.1"
    reported_source: str | None = None
    reported_service: str | None = None

    _index: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[str]] = {}
        for k, v in self.headers:
            if k in index:
                index[k].append(v)
            else:
                index[k] = [v]
        self._index = index

    def values(self, name: str) -> list[str]:
        return self._index.get(name, _NONE)


def _parse_ip(text: str) -> str | None:
    """The address in canonical text form, or ``None``: ``inet_pton`` (strict: no leading zeros,
    no zone id, no port) and ``inet_ntop``, about ten times cheaper than ``ipaddress``."""
    hit = _IPS.get(text)
    if hit is not None:
        return hit
    canon = _parse_ip_uncached(text)
    if canon is not None:
        if len(_IPS) >= MAX_REMEMBERED:
            _IPS.clear()
        _IPS[text] = canon
    return canon


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def _parse_ip_uncached(text: str) -> str | None:
    """An IPv4-mapped IPv6 address (``::ffff:203.0.113.5``: a dual-stack listener's view of an
    IPv4 client, or what such a proxy forwards) is that IPv4 address, so IPv4 rules, risk
    lookups and trusted proxies see one form whatever the socket family."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except (OSError, ValueError):
        return None
    if family == socket.AF_INET6 and packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(family, packed)


def parse_ip(text: str) -> str | None:
    """The one address parser (peers, proxy headers, ``/v1/decide``): canonical text, or ``None``."""
    return _parse_ip(text)


def _one(http: HttpRequest, name: str, proxy: TrustedProxy) -> str:
    values = http.values(name)
    if len(values) != 1:
        raise Refused(f"trusted proxy {proxy.name} sent {len(values)} {name} headers; exactly one is required")
    return values[0].strip()


def _forwarded_for(element: str) -> str:
    for pair in element.split(";"):
        key, _, value = pair.strip().partition("=")
        if key.strip().lower() == "for":
            value = value.strip().strip('"')
            if value.startswith("["):
                return value[1:value.find("]")] if "]" in value else value
            return value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return ""


def client_address(http: HttpRequest, proxy: TrustedProxy | None) -> str | None:
    """The source address: the peer, or what the trusted proxy ``proxy`` says (``Refused`` if unusable).

    Always an address ``_parse_ip`` accepted, in its one text form, or ``None`` (unknown: a
    peer that is not an IP address, a Unix socket): rules that need the address then fail
    closed (``policy.compiler``), and the decision log never records a non-address.
    """
    if proxy is None or proxy.client_address == "peer":
        return _parse_ip(http.peer) if http.peer else None
    how = proxy.client_address
    if how == "reported":
        value = http.reported_source or ""
    elif how == "x-envoy-external-address":
        value = _one(http, how, proxy)
    else:
        values = http.values(how)
        entries = values[0].split(",") if len(values) == 1 else [e for v in values for e in v.split(",")]
        if len(entries) < proxy.hops:
            raise Refused(f"trusted proxy {proxy.name}: {how} has {len(entries)} entries, fewer than its "
                          f"{proxy.hops} trusted hop(s)")
        value = entries[-proxy.hops]
        if how == "forwarded":
            value = _forwarded_for(value)
    ip = _parse_ip(value)
    if ip is None:
        raise Refused(f"trusted proxy {proxy.name}: no valid client address in {how} ({value.strip()[:60]!r})")
    return ip


def bearer_token(http: HttpRequest) -> str | None:
    """The bearer token of the one ``Authorization`` header; ``None`` when absent or another scheme."""
    values = http.values("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise Refused(f"{len(values)} Authorization headers; exactly one is accepted")
    value = values[0].strip()
    if "," in value:
        raise Refused("the Authorization header holds more than one value")
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = rest.strip()
    if _TOKEN68.fullmatch(token) is None:
        raise Refused("the Authorization header's bearer token is empty or not token68 characters")
    return token


def destination_service(http: HttpRequest, front: FrontConfig, proxy: TrustedProxy | None) -> str:
    if front.service:
        return front.service
    value: str | None = None
    if proxy is not None and proxy.reported_service and http.reported_service:
        value = http.reported_service
    elif proxy is not None and proxy.service_header:
        value = _one(http, proxy.service_header, proxy)
    if value is None:
        raise Refused("no destination service: this listener has no fixed service and the caller is not a trusted "
                      "proxy that names one")
    if _SERVICE.fullmatch(value) is None:
        raise Refused(f"destination service {value[:60]!r} is not a service name")
    return value


def canonical_request(http: HttpRequest, front: FrontConfig) -> Request:
    """The ``Request`` to decide for what a front received; ``Refused`` when it cannot be decided.

    The one entry point for fronts (ext_authz HTTP, ASGI, gRPC ext_authz). ``http.target``
    is the request target with any listener prefix already removed.
    """
    if http.http_version == "1.1":
        hosts = http.values("host")
        if len(hosts) != 1 or not hosts[0].strip():
            raise Refused("an HTTP/1.1 request needs exactly one non-empty Host header", 400)
    proxy = front.proxy_for(http.peer)
    method, target = http.method, http.target
    if proxy is not None and proxy.original_method:
        method = _one(http, proxy.original_method, proxy)
    if proxy is not None and proxy.original_uri:
        target = _one(http, proxy.original_uri, proxy)
    return Request(
        service=destination_service(http, front, proxy),
        method=canonical_method(method),
        path=canonical_path(target, resolve=front.resolve),
        token=bearer_token(http),
        source_ip=client_address(http, proxy),
    )


def refused_request(http: HttpRequest, front: FrontConfig) -> Request:
    """A best-effort record of a refused request for the decision log.

    What the trusted proxy says about the client and the service is kept when it is usable
    (so a refusal is logged against the client, not the proxy); otherwise the peer and
    the listener's service. Method and path are logged as received, truncated.
    """
    proxy = front.proxy_for(http.peer)
    source, service = _parse_ip(http.peer) if http.peer else None, front.service or ""
    try:
        source = client_address(http, proxy)
        service = destination_service(http, front, proxy)
    except Refused:
        pass
    method, target = http.method, http.target
    if proxy is not None and proxy.original_method and len(http.values(proxy.original_method)) == 1:
        method = http.values(proxy.original_method)[0]
    if proxy is not None and proxy.original_uri and len(http.values(proxy.original_uri)) == 1:
        target = http.values(proxy.original_uri)[0]
    return Request(service=service, method=method[:MAX_METHOD], path=target[:512], source_ip=source)


# -- configuration --------------------------------------------------------------------------
_PROXY_KEYS = frozenset({"name", "addresses", "client_address", "hops", "service_header", "original_method",
                         "original_uri", "reported_service"})


def _header(entry: Mapping[str, Any], key: str, label: str) -> str | None:
    v = entry.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or _TOKEN.fullmatch(v) is None:
        raise ValueError(f"{label}: {key} must be a header name")
    return v.lower()


def proxies_from_config(entries: Iterable[Mapping[str, Any]], where: str = "proxies") -> tuple[TrustedProxy, ...]:
    """``proxies:`` of the trust file: each entry's addresses (CIDRs) and the headers it sets."""
    out = []
    for i, entry in enumerate(entries):
        label = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{label}: expected a mapping")
        unknown = set(entry) - _PROXY_KEYS
        if unknown:
            raise ValueError(f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        addresses = entry.get("addresses")
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(f"{label}: 'addresses' (a list of CIDRs) is required")
        try:
            nets = tuple(ipaddress.ip_network(str(a), strict=False) for a in addresses)
        except ValueError as exc:
            raise ValueError(f"{label}: bad address: {exc}") from None

        try:
            out.append(TrustedProxy(
                name=str(entry.get("name") or f"proxy-{i}"), networks=nets,
                client_address=str(entry.get("client_address", "peer")).lower(), hops=int(entry.get("hops", 1)),
                service_header=_header(entry, "service_header", label),
                original_method=_header(entry, "original_method", label),
                original_uri=_header(entry, "original_uri", label), reported_service=bool(entry.get("reported_service", False)),
            ))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{label}: {exc}") from None
    return tuple(out)


def load_front_config(trust_file: str | Path | None, *, service: str | None = None) -> FrontConfig:
    """The trust file's ``proxies:`` (if any) and the listener's fixed service."""
    proxies: tuple[TrustedProxy, ...] = ()
    if trust_file is not None:
        from eventstore import yamlfile

        data = yamlfile.load(Path(trust_file).read_text(encoding="utf-8")) or {}
        if isinstance(data, Mapping) and data.get("proxies") is not None:
            if not isinstance(data["proxies"], list):
                raise ValueError(f"{trust_file}: 'proxies' must be a list")
            proxies = proxies_from_config(data["proxies"], f"{trust_file}: proxies")
    if service is not None and _SERVICE.fullmatch(service) is None:
        raise ValueError(f"--service {service!r} is not a service name")
    return FrontConfig(proxies=proxies, service=service)


__all__ = [
    "FrontConfig", "HttpRequest", "Refused", "TrustedProxy", "bearer_token", "canonical_method", "canonical_path",
    "canonical_request", "client_address", "destination_service", "fold_case", "load_front_config", "parse_ip",
    "proxies_from_config", "refused_request", "served_path", "wire_text",
]
