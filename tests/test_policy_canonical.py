"""The one request canonicaliser: methods, paths, Authorization, Host, trusted proxies, the service."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.canonical import (
    FrontConfig,
    HttpRequest,
    Refused,
    TrustedProxy,
    canonical_method,
    canonical_path,
    canonical_request,
    load_front_config,
    proxies_from_config,
)


@pytest.mark.parametrize(("raw", "canon"), [
    ("/a/b", "/a/b"), ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/..", "/"), ("/", "/"),
    ("/%61dmin", "/admin"), ("/%2e%2e/admin", "/admin"), ("/a/b/", "/a/b/"), ("/a/.", "/a/"),
    ("/a?x=1", "/a"), ("/caf%C3%A9/x", "/café/x"), ("/café", "/café"), ("/a%20b/c", "/a b/c"),
    ("/.well-known/jwks.json", "/.well-known/jwks.json"), ("/ADMIN/x", "/ADMIN/x"),
])
def test_canonical_paths(raw: str, canon: str) -> None:
    assert canonical_path(raw) == canon


@pytest.mark.parametrize(("raw", "why"), [
    ("/a/%2Fb", "encodes '/'"), ("/a/%5cb", "encodes .+%5c"), ("/a%252f", "encodes '%'"),
    ("/a%3F/b", "encodes '?'"), ("/a%23", "encodes '#'"), ("/a%3bb", "encodes ';'"), ("/a%00", "control"),
    ("/a;b", "path parameters"), ("/a\\b", "backslash"), ("/a#frag", "fragment"), ("/%ff", "not UTF-8"),
    ("/%zz", "malformed percent-escape"), ("/%4", "malformed percent-escape"), ("a/b", "start with '/'"),
    ("*", "start with '/'"), ("/admin./x", "ends in a dot"), ("/admin%20/x", "ends in a dot or space"),
    ("/admin%2E/x", "ends in a dot"), ("/ admin", "starts with a space"), ("/.../x", "ends in a dot"),
    ("/admin\uff0fx", "NFKC"), ("/\uff41dmin", "NFKC"), ("/admin%EF%BC%8Fx", "NFKC"), ("/a\u200bdmin", "invisible"),
    ("/a\u00a0b", "invisible"), ("/a\x7f", "control"), ("/a\udcff", "invisible"), ("", "non-empty"),
    ("/adm%C4%B1n", "U\\+0131, which case-insensitive"), ("/adm\u0131n", "U\\+0131"), ("/%C4%B0nternal", "U\\+0130"),
    ("/\u017fecret", "U\\+017F"), ("/\u212aeys", "U\\+212A"), ("/stra%C3%9Fe", "U\\+00DF"),
])
def test_refused_paths(raw: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        canonical_path(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"/.%2eEfFaA ;?#\\\uff46\uff0f\u00e9", "%2e", "%2F", "%20", "..", "//", "%C3%A9"]),
                max_size=16).map("".join))
def test_canonical_path_is_idempotent_and_clean(tail: str) -> None:
    try:
        once = canonical_path("/" + tail)
    except Refused:
        return
    assert canonical_path(once) == once
    segments = once.split("/")[1:]
    assert "%" not in once and "\\" not in once and "//" not in once
    assert not any(s in (".", "..") or s.endswith((".", " ")) for s in [*segments[:-1], segments[-1] or "x"])


@pytest.mark.parametrize(("method", "ok"), [
    ("GET", True), ("DELETE", True), ("PROPFIND", True), ("X-CUSTOM", True), ("DELETE ", False),
    ("DELETE\t", False), (" GET", False), ("delete", False), ("Get", False), ("", False), ("GE T", False),
    ("G\u00c9T", False), ("A" * 40, False),
])
def test_methods_are_exact_tokens(method: str, ok: bool) -> None:
    if ok:
        assert canonical_method(method) == method
    else:
        with pytest.raises(Refused) as info:
            canonical_method(method)
        assert info.value.status == 400


PROXY = TrustedProxy("edge", (ipaddress.ip_network("10.0.0.0/24"),), client_address="x-forwarded-for", hops=2,
                     service_header="x-ztsoc-service")
NGINX = TrustedProxy("nginx", (ipaddress.ip_network("10.0.4.0/24"),), client_address="x-forwarded-for", hops=2,
                     service_header="x-ztsoc-service", original_method="x-original-method",
                     original_uri="x-original-uri")
ENVOY = TrustedProxy("envoy", (ipaddress.ip_network("10.0.1.0/24"),), client_address="x-envoy-external-address",
                     service_header="x-ztsoc-service")
FWD = TrustedProxy("fwd", (ipaddress.ip_network("10.0.2.0/24"),), client_address="forwarded")
FRONT = FrontConfig(proxies=(PROXY, ENVOY, FWD, NGINX))


def http(headers: list[tuple[str, str]], peer: str = "10.0.0.5", method: str = "GET", target: str = "/x",
         version: str | None = "1.1") -> HttpRequest:
    return HttpRequest(method, target, [("host", "h"), *headers], peer, version)


def test_trusted_proxy_headers_are_believed_from_the_proxy_only() -> None:
    sent = [("x-ztsoc-service", "records"), ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.9"),
            ("x-original-method", "PUT"), ("x-original-uri", "/records/%61dmin?q=1"), ("authorization", "Bearer a.b.c")]
    req = canonical_request(http(sent, peer="10.0.4.4"), FRONT)
    assert (req.service, req.method, req.path, req.source_ip, req.token) == \
        ("records", "PUT", "/records/admin", "203.0.113.7", "a.b.c")
    # The same headers from a client: none believed, and no service can be named by it.
    with pytest.raises(Refused, match="no destination service"):
        canonical_request(http(sent, peer="198.51.100.4"), FRONT)
    req = canonical_request(http(sent, peer="198.51.100.4"), FrontConfig(FRONT.proxies, service="portal"))
    assert (req.service, req.method, req.path, req.source_ip) == ("portal", "GET", "/x", "198.51.100.4")


@pytest.mark.parametrize(("headers", "peer", "source"), [
    ([("x-envoy-external-address", "192.0.2.1")], "10.0.1.1", "192.0.2.1"),
    ([("forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::7]:4711"')], "10.0.2.9", "2001:db8::7"),
    ([("forwarded", "for=198.51.100.17:80")], "10.0.2.9", "198.51.100.17"),
    ([("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.0.0.1")], "10.0.0.5", "203.0.113.9"),
    ([("x-forwarded-for", "[2001:db8::1], 10.0.0.1")], "10.0.0.5", "2001:db8::1"),
])
def test_client_address_headers(headers: list[tuple[str, str]], peer: str, source: str) -> None:
    front = FrontConfig(FRONT.proxies, service="s")
    assert canonical_request(http(headers, peer=peer, target="/"), front).source_ip == source


@pytest.mark.parametrize(("headers", "peer", "why"), [
    ([("x-forwarded-for", "10.0.0.1")], "10.0.0.5", "fewer than its 2 trusted hop"),
    ([("x-forwarded-for", "evil, 10.0.0.1")], "10.0.0.5", "no valid client address"),
    ([], "10.0.1.1", "sent 0 x-envoy-external-address"),
    ([("x-envoy-external-address", "1.1.1.1"), ("x-envoy-external-address", "2.2.2.2")], "10.0.1.1", "sent 2"),
    ([("forwarded", "for=unknown")], "10.0.2.9", "no valid client address"),
])
def test_unusable_client_address_is_refused(headers: list[tuple[str, str]], peer: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        canonical_request(http(headers, peer=peer), FrontConfig(FRONT.proxies, service="s"))


def test_authorization_and_host() -> None:
    front = FrontConfig(service="s")
    with pytest.raises(Refused, match="2 Authorization headers"):
        canonical_request(http([("authorization", "Bearer x"), ("authorization", "Bearer a.b.c")]), front)
    with pytest.raises(Refused, match="more than one value"):  # Envoy/gRPC join repeats with ','
        canonical_request(http([("authorization", "Bearer x, Bearer a.b.c")]), front)
    with pytest.raises(Refused, match="token68"):
        canonical_request(http([("authorization", "Bearer ")]), front)
    assert canonical_request(http([("authorization", "Basic dXNlcjpwdw==")]), front).token is None
    assert canonical_request(http([("authorization", "bearer   a.b.c")]), front).token == "a.b.c"
    no_host = HttpRequest("GET", "/", [], "127.0.0.1", "1.1")
    with pytest.raises(Refused, match="Host") as info:
        canonical_request(no_host, front)
    assert info.value.status == 400
    assert canonical_request(HttpRequest("GET", "/", [], "127.0.0.1", "1.0"), front).path == "/"
    assert canonical_request(HttpRequest("GET", "/", [], "127.0.0.1", None), front).path == "/"
    with pytest.raises(Refused, match="not a service name"):
        canonical_request(http([("x-ztsoc-service", "a b")], peer="10.0.0.5", target="/"), FrontConfig(FRONT.proxies))


def test_reported_source_and_service_for_grpc_fronts() -> None:
    grpc = TrustedProxy("istio", (ipaddress.ip_network("10.0.3.0/24"),), client_address="reported",
                        reported_service=True)
    front = FrontConfig((grpc,))
    r = HttpRequest("GET", "/", [], "10.0.3.3", None, reported_source="192.0.2.44", reported_service="payments")
    req = canonical_request(r, front)
    assert (req.source_ip, req.service) == ("192.0.2.44", "payments")
    with pytest.raises(Refused, match="no destination service"):
        canonical_request(HttpRequest("GET", "/", [], "192.0.2.1", None, reported_source="10.9.9.9",
                                      reported_service="payments"), front)


def test_proxy_configuration_is_checked(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    good = tmp_path / "trust.yaml"
    good.write_text("proxies:\n  - name: nginx\n    addresses: [127.0.0.1/32]\n    client_address: X-Forwarded-For\n"
                    "    service_header: X-Ztsoc-Service\n    original_uri: X-Original-URI\n")
    front = load_front_config(good, service=None)
    assert front.proxies[0].client_address == "x-forwarded-for" and front.proxies[0].original_uri == "x-original-uri"
    bad_entries: list[tuple[dict[str, Any], str]] = [
        ({"addresses": ["10.0.0.300/8"]}, "bad address"), ({}, "addresses"),
        ({"addresses": ["::1/128"], "client_address": "x-real-ip"}, "client_address must be"),
        ({"addresses": ["::1/128"], "hops": 0}, "hops"),
        ({"addresses": ["::1/128"], "service_headr": "x"}, "unknown key"),
        ({"addresses": ["::1/128"], "service_header": "a b"}, "header name")]
    for bad, why in bad_entries:
        with pytest.raises(ValueError, match=why):
            proxies_from_config([bad])


def test_shipped_trust_example_proxies_parse() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "policy" / "examples" / "trust.example.yaml"
    (proxy,) = load_front_config(example).proxies
    assert proxy.name == "nginx" and proxy.original_uri == "x-original-uri" and proxy.hops == 1


def test_refusals_are_logged_against_the_client_the_proxy_names() -> None:
    from policy.canonical import refused_request

    sent = [("x-ztsoc-service", "records"), ("x-forwarded-for", "192.0.2.1, 203.0.113.7"),
            ("x-original-method", "get"), ("x-original-uri", "/a%2Fb")]
    r = refused_request(http(sent, peer="10.0.4.4"), FRONT)
    assert (r.service, r.method, r.path, r.source_ip) == ("records", "get", "/a%2Fb", "192.0.2.1")
    r = refused_request(http(sent, peer="198.51.100.4", method="GET ", target="/x"), FRONT)
    assert (r.service, r.method, r.path, r.source_ip) == ("", "GET ", "/x", "198.51.100.4")


_WIRE = st.text(alphabet=st.sampled_from([*"/.%2eEfF;?#\\ ,=\t\x00aZ-_:[]\"", "\uff0f", "\u00e9", "\udcff"]),
                max_size=20)
_NAMES = st.sampled_from(["host", "authorization", "x-forwarded-for", "forwarded", "x-envoy-external-address",
                          "x-ztsoc-service", "x-original-method", "x-original-uri", "other"])


@settings(max_examples=400, deadline=None)
@given(method=st.one_of(st.sampled_from(["GET", "DELETE", "delete", "GET "]), _WIRE), target=_WIRE,
       headers=st.lists(st.tuples(_NAMES, _WIRE), max_size=8),
       peer=st.sampled_from(["10.0.0.5", "10.0.1.1", "10.0.2.9", "10.0.4.4", "192.0.2.1", "::1", "junk"]),
       version=st.sampled_from(["1.1", "1.0", None]))
def test_fuzz_canonical_request_refuses_or_returns_canonical(method: str, target: str,
                                                             headers: list[tuple[str, str]], peer: str,
                                                             version: str | None) -> None:
    """Whatever arrives: a ``Refused`` (never another exception), or a request already canonical."""
    try:
        req = canonical_request(HttpRequest(method, "/" + target, headers, peer, version), FRONT)
    except Refused as exc:
        assert exc.status in (400, 403, 414) and str(exc)
        return
    assert canonical_method(req.method) == req.method and canonical_path(req.path) == req.path
    assert req.service and (req.source_ip is None or ipaddress.ip_address(req.source_ip))
    assert req.token is None or "," not in req.token


@pytest.mark.parametrize(("target", "canon"), [
    ("/admin/../public/x", "/public/x"), ("/admin/%2e%2e/public/x", "/public/x"), ("/public/./x", "/public/x"),
    ("//admin", "/admin"), ("/public//x", "/public/x"), ("/a/.", "/a/"), ("/..", "/"),
])
def test_a_proxy_front_refuses_what_it_would_resolve(target: str, canon: str) -> None:
    """A proxy forwards the target as sent: deciding on the resolved path would decide another resource."""
    proxy_front = FrontConfig(service="s")
    with pytest.raises(Refused, match=r"'\.' or '\.\.' segments or repeated slashes") as info:
        canonical_request(http([], target=target), proxy_front)
    assert info.value.status == 403
    # A front that hands the service the decided path (policy.asgi) resolves instead.
    assert canonical_request(http([], target=target), FrontConfig(service="s", resolve=True)).path == canon


@pytest.mark.parametrize("target", ["/", "/a/b/", "/%61dmin", "/caf%C3%A9/x", "/a%20b", "/.well-known/x?q=/../"])
def test_a_proxy_front_decides_what_needs_no_resolving(target: str) -> None:
    assert canonical_request(http([], target=target), FrontConfig(service="s")).path == canonical_path(target)


@pytest.mark.parametrize(("peer", "headers", "source"), [
    ("::ffff:192.0.2.7", [], "192.0.2.7"), ("::FFFF:c000:207", [], "192.0.2.7"), ("::ffff:10.0.1.1",
     [("x-envoy-external-address", "::ffff:203.0.113.5")], "203.0.113.5"),  # a mapped proxy is still the proxy
    ("10.0.2.9", [("forwarded", 'for="[::ffff:198.51.100.7]:80"')], "198.51.100.7"), ("::1", [], "::1"),
    ("2001:db8::ffff:1.2.3.4", [], "2001:db8::ffff:102:304"),
])
def test_ipv4_mapped_addresses_are_their_ipv4_form(peer: str, headers: list[tuple[str, str]], source: str) -> None:
    assert canonical_request(http(headers, peer=peer, target="/"), FrontConfig(FRONT.proxies, service="s")).source_ip \
        == source
    from policy.request import Request

    assert Request.from_dict({"service": "s", "method": "GET", "path": "/", "source_ip": peer}).source_ip \
        == canonical_request(http([], peer=peer, target="/"), FrontConfig(service="s")).source_ip


def test_case_lookalikes_are_every_code_point_that_folds_to_ascii() -> None:
    """The refused set is what the Unicode tables say, code point by code point (the module bisects)."""
    import re

    from policy.canonical import CASE_LOOKALIKES, fold_case

    folds = (str.upper, str.lower, str.casefold)
    want = {c for c in map(chr, [*range(0x80, 0xD800), *range(0xE000, 0x110000)])
            if any(f(c).isascii() for f in folds) or re.fullmatch("[a-z]", c, re.IGNORECASE)}
    assert want == CASE_LOOKALIKES and {"\u0131", "\u0130", "\u017f", "\u212a", "\u00df"} <= want
    assert {fold_case(c) for c in "\u0131\u0130Ii"} == {"i"} and fold_case("STRA\u00dfE") == "strasse"
