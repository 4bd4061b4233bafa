"""SPIFFE ID parsing (the spec's rules) and trust-domain configuration."""

from __future__ import annotations

import pytest

from policy.identity import KeySet
from policy.identity.spiffe import SpiffeId, SpiffeIdError, TrustDomainConfig


@pytest.mark.parametrize(("text", "domain", "path", "ns"), [
    ("spiffe://province.example/ns/portal/sa/web", "province.example", "/ns/portal/sa/web", "portal"),
    ("spiffe://province.example", "province.example", "", None),
    ("spiffe://td-1.example/a/b.c/d_e", "td-1.example", "/a/b.c/d_e", None),
])
def test_valid_ids(text: str, domain: str, path: str, ns: str | None) -> None:
    sid = SpiffeId.parse(text)
    assert (sid.trust_domain, sid.path, sid.namespace) == (domain, path, ns)
    assert str(sid) == text


@pytest.mark.parametrize("text", [
    "https://province.example/ns/a", "spiffe://Province.example/x", "spiffe://td/a//b", "spiffe://td/a/../b",
    "spiffe://td/a/./b", "spiffe://td/a/", "spiffe://td:443/a", "spiffe://user@td/a", "spiffe://td/a?x=1",
    "spiffe://td/a#f", "spiffe:///a", "spiffe://td/" + "a" * 3000, "spiffe://td/a b",
])
def test_invalid_ids(text: str) -> None:
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(text)


def test_trust_domain_config_refuses_hmac_and_bad_domains() -> None:
    ks = KeySet(name="td", jwks={"keys": []})
    with pytest.raises(ValueError, match="may not use HS256"):
        TrustDomainConfig("td.example", ks, "aud", algorithms=frozenset({"HS256"}))
    with pytest.raises(ValueError, match="bad trust domain"):
        TrustDomainConfig("TD.example", ks, "aud")


@pytest.mark.parametrize("text", [
    "spiffe://province.example/ns/portal/sa/web\n", "spiffe://province.example/ns/portal\n/sa/web",
    "spiffe://province.example\n/ns/portal", "spiffe://province.example\n",
])
def test_a_newline_is_refused_anywhere(text: str) -> None:
    """``$`` matches before a final newline: the parser must match whole strings."""
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(text)


def test_a_trust_domain_id_is_not_a_workload() -> None:
    from policy_tokens import DOMAIN, svid, verifier

    from policy.identity.jwt import TokenError

    assert SpiffeId.parse(f"spiffe://{DOMAIN}").path == ""  # a valid SPIFFE ID: the trust domain's own
    with pytest.raises(SpiffeIdError, match="names a trust domain, not a workload"):
        SpiffeId.parse_workload(f"spiffe://{DOMAIN}")
    assert SpiffeId.parse_workload(f"spiffe://{DOMAIN}/ns/a/sa/b").namespace == "a"
    # As a JWT-SVID subject, signed by the trust domain's own key: refused.
    with pytest.raises(TokenError, match="not a workload"):
        verifier().verify(svid(""))
    with pytest.raises(TokenError):
        verifier().verify(svid("/ns/portal/sa/web\n"))
    assert verifier().verify(svid("/ns/portal/sa/web")).principal == f"spiffe://{DOMAIN}/ns/portal/sa/web"
