"""Token verification, and the hostile-token matrix of issue 5: every one denied with a reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from policy_tokens import (
    AUDIENCE,
    DOMAIN,
    ISSUER,
    SVID_AUDIENCE,
    b64,
    claims,
    forge,
    jwk_of,
    keys,
    svid,
    user_token,
    verifier,
)

from policy.identity import KeySet, TokenError, TokenVerifier, TrustConfig, load_trust_config
from policy.identity.jwt import IssuerConfig


def test_valid_user_tokens_verify_with_each_key_family() -> None:
    v = verifier()
    for alg, kid in (("ES256", "ec1"), ("RS256", "rsa1"), ("EdDSA", "ed1")):
        ident = v.verify(user_token(alg, kid))
        assert ident.principal == "clerk-7"
        assert ident.issuer == ISSUER
        assert ident.roles == {"clerk"}
        assert ident.scopes == {"records:read"}
        assert ident.kind == "user"


def test_valid_svid_gives_spiffe_identity_and_namespace() -> None:
    ident = verifier().verify(svid("/ns/portal/sa/web"))
    assert ident.principal == f"spiffe://{DOMAIN}/ns/portal/sa/web"
    assert ident.kind == "spiffe"
    assert ident.trust_domain == DOMAIN
    assert ident.namespace == "portal"


def test_verified_tokens_are_cached_until_expiry() -> None:
    v = verifier()
    token = user_token()
    first = v.verify(token)
    assert v.verify(token) is first
    v.clear_cache()
    assert v.verify(token) is not first


def _hs_with_public_key() -> str:
    """RS/HS confusion: HS256 'signed' with the RSA public key's PEM as the secret."""
    pem = keys().rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header, payload = b64(json.dumps({"alg": "HS256", "kid": "rsa1", "typ": "JWT"}).encode()), b64(json.dumps(claims()).encode())
    sig = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def _dup(name: str, first: str, second: str) -> str:
    body = json.dumps(claims())[:-1] + f', "{name}": {first}, "{name}": {second}}}'
    return forge({"alg": "ES256", "kid": "ec1"}, body, keys().ec)


def _with_header(**extra: object) -> str:
    return forge({"alg": "ES256", "kid": "ec1", "typ": "JWT", **extra}, claims(), keys().ec)


def _jwk_header() -> str:
    attacker = keys().other_domain
    return forge({"alg": "ES256", "kid": "ec1", "jwk": jwk_of(attacker, "evil")}, claims(), attacker)


def _padded(index: int) -> str:
    parts = user_token().split(".")
    parts[index] += "=" * (-len(parts[index]) % 4 or 4)
    return ".".join(parts)


def _std_alphabet() -> str:
    parts = user_token().split(".")
    parts[2] = parts[2].replace("-", "+").replace("_", "/") if ("-" in parts[2] or "_" in parts[2]) else "+" + parts[2][1:]
    return ".".join(parts)


def _stray_bits() -> str:
    """The same signature bytes spelt differently: the last character's unused low bits set."""
    parts = user_token().split(".")
    sig = parts[2]  # 64 bytes -> 86 characters: the last one carries 2 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts[2] = sig[:-1] + alphabet[alphabet.index(sig[-1]) | 1]
    return ".".join(parts)

now = int(time.time())

HOSTILE: dict[str, tuple[Callable[[], str], str]] = {
    "alg none": (lambda: forge({"alg": "none", "typ": "JWT"}, claims(), None), "none"),
    "alg None mixed case": (lambda: forge({"alg": "nOnE"}, claims(), None), "none"),
    "RS/HS key confusion": (_hs_with_public_key, "HS256 is not allowed"),
    "jku header": (lambda: _with_header(jku="https://evil.example/jwks.json"), "'jku' is refused"),
    "x5u header": (lambda: _with_header(x5u="https://evil.example/cert.pem"), "'x5u' is refused"),
    "embedded jwk header": (_jwk_header, "'jwk' is refused"),
    "x5c header": (lambda: _with_header(x5c=["MIIB"]), "'x5c' is refused"),
    "kid path traversal": (lambda: user_token(kid="../../../../etc/passwd"), "unknown kid"),
    "kid SQL injection": (lambda: user_token(kid="x' OR '1'='1"), "unknown kid"),
    "kid not a string": (lambda: forge({"alg": "ES256", "kid": {"$ne": 1}}, claims(), keys().ec), "kid must be"),
    "expired": (lambda: user_token(exp=now - 3600), "token expired"),
    "not yet valid": (lambda: user_token(nbf=now + 3600), "not yet valid"),
    "wrong audience": (lambda: user_token(aud="payments"), "wrong audience"),
    "multiple audiences": (lambda: user_token(aud=[AUDIENCE, "payments"]), "exactly one"),
    "wrong issuer": (lambda: user_token(iss="https://evil.example"), "untrusted issuer"),
    "issuer prefix trick": (lambda: user_token(iss=ISSUER + ".evil.example"), "untrusted issuer"),
    "issuer substring trick": (lambda: user_token(iss="https://idp.gov"), "untrusted issuer"),
    "issuer trailing slash": (lambda: user_token(iss=ISSUER + "/"), "untrusted issuer"),
    "missing exp": (lambda: user_token(exp=None), "missing required claim 'exp'"),
    "missing sub": (lambda: user_token(sub=None), "missing required claim 'sub'"),
    "missing aud": (lambda: user_token(aud=None), "missing required claim 'aud'"),
    "missing iss": (lambda: user_token(iss=None), "missing required claim 'iss'"),
    "exp as a string": (lambda: user_token(exp=str(now + 600)), "must be a number"),
    "exp as a bool": (lambda: user_token(exp=True), "must be a number"),
    "duplicate sub claim": (lambda: _dup("sub", '"clerk-7"', '"admin"'), "duplicate"),
    "duplicate header": (lambda: forge('{"alg":"ES256","kid":"ec1","alg":"ES256"}', claims(), keys().ec, "ES256"), "duplicate"),
    "multi-megabyte token": (lambda: user_token(pad="A" * 3_000_000), "exceeds"),
    "unknown crit header": (lambda: _with_header(crit=["exp-ext"], **{"exp-ext": 1}), "critical"),
    "key too short": (lambda: forge({"alg": "RS256", "kid": "short1"}, claims(), keys().short_rsa), "shorter than 2048"),
    "another trust domain": (lambda: forge({"alg": "ES256", "kid": "svid1"}, {
        "sub": "spiffe://evil.example/ns/portal/sa/web", "aud": SVID_AUDIENCE, "exp": now + 300}, keys().other_domain),
        "not trusted"),
    "svid signed by another domain's key": (lambda: svid(key=keys().other_domain), "bad signature"),
    "svid with extra header": (lambda: forge({"alg": "ES256", "kid": "svid1", "cty": "JWT"}, {
        "sub": f"spiffe://{DOMAIN}/ns/a/sa/b", "aud": SVID_AUDIENCE, "exp": now + 300}, keys().svid), "not allowed"),
    "svid with HMAC": (lambda: forge({"alg": "HS256", "kid": "svid1"}, {
        "sub": f"spiffe://{DOMAIN}/ns/a/sa/b", "aud": SVID_AUDIENCE, "exp": now + 300}, b"k" * 32), "not allowed"),
    "svid with bad SPIFFE ID": (lambda: svid(path="/ns/../sa/x"), "bad SPIFFE ID path"),
    "tampered payload": (lambda: user_token().rsplit(".", 2)[0] + "." + b64(json.dumps(claims(sub="admin")).encode())
                         + "." + user_token().rsplit(".", 1)[1], "bad signature"),
    "wrong typ": (lambda: forge({"alg": "ES256", "kid": "ec1", "typ": "secevent+jwt"}, claims(), keys().ec), "typ"),
    "JWE": (lambda: "a.b.c.d.e", "JWE"),
    "garbage": (lambda: "not-a-token", "not a compact JWS"),
    "payload not JSON": (lambda: b64(b'{"alg":"ES256"}') + "." + b64(b"[1,2") + ".", "not valid JSON"),
    # issue 13: a people IdP minting a workload identity, and loose base64url.
    "people IdP asserts a SPIFFE ID": (lambda: user_token(sub=f"spiffe://{DOMAIN}/ns/portal/sa/web"),
                                       "outside the namespace of issuer"),
    "people IdP asserts an upper-case SPIFFE ID": (lambda: user_token(sub=f"SPIFFE://{DOMAIN}/ns/a/sa/b"),
                                                   "outside the namespace"),
    "subject with a trailing space": (lambda: user_token(sub="clerk-7 "), "surrounding spaces"),
    "signature with = padding": (lambda: _padded(2), "padding '=' is not allowed"),
    "payload with = padding": (lambda: _padded(1), "padding '=' is not allowed"),
    "standard base64 alphabet": (_std_alphabet, "not strict base64url"),
    "non-zero unused bits": (_stray_bits, "not canonical base64url"),
}



@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_token_is_refused_with_reason(case: str) -> None:
    make, reason = HOSTILE[case]
    with pytest.raises(TokenError) as info:
        verifier().verify(make())
    assert reason.lower() in str(info.value).lower(), str(info.value)


def test_hmac_only_where_configured() -> None:
    secret = b"s" * 32
    jwks = {"keys": [{"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode(), "kid": "h1"}]}
    cfg = TrustConfig()
    cfg.issuers["https://legacy.gov.example"] = IssuerConfig(
        issuer="https://legacy.gov.example", keys=KeySet(name="legacy", jwks=jwks, allow_hmac=True),
        audience=AUDIENCE, algorithms=frozenset({"HS256"}), hmac=True)
    token = forge({"alg": "HS256", "kid": "h1"}, claims(iss="https://legacy.gov.example"), secret)
    assert TokenVerifier(cfg).verify(token).principal == "clerk-7"
    with pytest.raises(ValueError, match="HMAC needs"):
        IssuerConfig(issuer="x", keys=KeySet(name="x", jwks=jwks), audience="a", algorithms=frozenset({"HS256"}))
    # An oct key in an asymmetric issuer's set is refused at load time, with the reason kept.
    ks = KeySet(name="mixed", jwks=jwks)
    ks.load()
    assert ks.kids == [] and "not configured for HMAC" in ks.errors[0]


def test_service_audience_template() -> None:
    cfg = verifier().trust
    cfg.issuers[ISSUER].audience = "{service}"
    v = TokenVerifier(cfg)
    assert v.verify(user_token(aud="payments"), service="payments").principal == "clerk-7"
    with pytest.raises(TokenError, match="wrong audience"):
        v.verify(user_token(aud="payments"), service="records")


def test_trust_file_and_jwks_refresh_rate_limit(tmp_path: Path) -> None:
    (tmp_path / "idp.json").write_text(json.dumps({"keys": [jwk_of(keys().ec, "ec1")]}))
    (tmp_path / "trust.yaml").write_text(
        f"issuers:\n  - issuer: {ISSUER}\n    audience: {AUDIENCE}\n    algorithms: [ES256]\n"
        f"    jwks_file: idp.json\n    min_refresh_s: 3600\n"
    )
    v = TokenVerifier(load_trust_config(tmp_path / "trust.yaml"))
    assert v.verify(user_token()).principal == "clerk-7"
    # A rotated-in key appears in the file, but the set was fetched a moment ago: refresh is rate-limited.
    (tmp_path / "idp.json").write_text(json.dumps({"keys": [jwk_of(keys().ec, "ec1"), jwk_of(keys().ec, "ec2")]}))
    with pytest.raises(TokenError, match="unknown kid"):
        v.verify(user_token(kid="ec2"))
    ks = v.trust.issuers[ISSUER].keys
    ks.min_refresh_s = 0
    assert v.verify(user_token(kid="ec2", sub="rotated")).principal == "rotated"


def test_bad_trust_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "trust.yaml"
    bad.write_text(f"issuers:\n  - issuer: {ISSUER}\n    audience: x\n    jwks_file: missing.json\n")
    with pytest.raises(ValueError, match="cannot load keys"):
        load_trust_config(bad)


def test_jwks_url_is_cached_and_refetch_is_rate_limited() -> None:
    import http.server
    import threading

    served = {"keys": [jwk_of(keys().ec, "ec1")]}
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = json.dumps(served).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
        cfg = TrustConfig()
        cfg.issuers[ISSUER] = IssuerConfig(issuer=ISSUER, keys=KeySet(name=ISSUER, url=url, min_refresh_s=3600),
                                           audience=AUDIENCE, algorithms=frozenset({"ES256"}))
        v = TokenVerifier(cfg, cache_ttl_s=0)
        for i in range(5):
            assert v.verify(user_token(sub=f"u{i}")).principal == f"u{i}"
        assert len(hits) == 1  # fetched once, then served from the cached key set
        # A flood of unknown kids does not turn into a flood of fetches.
        for i in range(20):
            with pytest.raises(TokenError, match="unknown kid"):
                v.verify(user_token(kid=f"forged-{i}"))
        assert len(hits) == 1
        # Once the rate limit allows, a rotated key is picked up.
        served["keys"].append(jwk_of(keys().ec, "ec2"))
        cfg.issuers[ISSUER].keys.min_refresh_s = 0
        assert v.verify(user_token(kid="ec2")).principal == "clerk-7"
        assert len(hits) == 2
    finally:
        httpd.shutdown()


def test_unreachable_jwks_url_denies_with_reason() -> None:
    cfg = TrustConfig()
    cfg.issuers[ISSUER] = IssuerConfig(issuer=ISSUER, keys=KeySet(name=ISSUER, url="http://127.0.0.1:9/jwks.json",
                                                                  timeout_s=0.5), audience=AUDIENCE,
                                       algorithms=frozenset({"ES256"}))
    with pytest.raises(TokenError, match="unknown kid"):
        TokenVerifier(cfg).verify(user_token())
    assert any("refresh failed" in e for e in cfg.issuers[ISSUER].keys.errors)


def test_leeway_is_bounded() -> None:
    with pytest.raises(ValueError, match="leeway_s"):
        IssuerConfig(issuer="x", keys=KeySet(name="x", jwks={"keys": []}), audience="a", leeway_s=3600)


def test_people_idp_subjects_and_pinned_trust_domains() -> None:
    from policy.identity.spiffe import TrustDomainConfig

    now = int(time.time())
    trust = verifier().trust
    idp = trust.issuers[ISSUER]
    idp.subjects = ("clerk-*", "resident-*")
    v = TokenVerifier(trust)
    assert v.verify(user_token(sub="clerk-9")).principal == "clerk-9"
    with pytest.raises(TokenError, match="it may assert clerk-\\*, resident-\\*"):
        v.verify(user_token(sub="admin"))
    # A trust domain pinned to an issuer vouches only for SPIFFE IDs of that domain.
    pinned = "https://spire.gov.example"
    trust.domains[DOMAIN] = TrustDomainConfig(trust_domain=DOMAIN, keys=trust.domains[DOMAIN].keys,
                                              audience=SVID_AUDIENCE, issuer=pinned)
    v = TokenVerifier(trust)
    assert v.verify(svid(iss=pinned)).kind == "spiffe"
    with pytest.raises(TokenError, match=r"outside the namespace of trust domain gov\.example"):
        v.verify(forge({"alg": "ES256", "kid": "svid1"}, {"iss": pinned, "sub": "clerk-7", "aud": SVID_AUDIENCE,
                                                          "exp": now + 300}, keys().svid))


def test_trust_file_refuses_one_issuer_in_two_namespaces(tmp_path: Path) -> None:
    from policy.identity.jwt import trust_config_from_dict

    jwks = {"keys": [jwk_of(keys().ec, "k1")]}
    with pytest.raises(ValueError, match="both a people IdP"):
        trust_config_from_dict({"issuers": [{"issuer": "https://x", "audience": "a", "jwks": jwks}],
                                "spiffe": [{"trust_domain": "x.example", "audience": "a", "issuer": "https://x",
                                            "jwks": jwks}]})
    with pytest.raises(ValueError, match="may not assert SPIFFE IDs"):
        trust_config_from_dict({"issuers": [{"issuer": "https://x", "audience": "a", "jwks": jwks,
                                             "subjects": ["spiffe://x.example/*"]}]})


EXAMPLE_TRUST = Path(__file__).resolve().parents[1] / "policy" / "examples" / "trust.example.yaml"


def _example_trust() -> TrustConfig:
    """The shipped trust file, each entry's key source swapped for a generated key (the rest as shipped)."""
    import yaml

    from policy.identity.jwt import trust_config_from_dict

    data = yaml.safe_load(EXAMPLE_TRUST.read_text(encoding="utf-8"))
    for entry in [*(data.get("issuers") or []), *(data.get("spiffe") or [])]:
        for source in ("jwks_url", "jwks_file", "jwks", "hmac_secret_env"):
            entry.pop(source, None)
        entry["hmac"] = False
        entry["jwks"] = {"keys": [jwk_of(keys().ec, "example")]}
        entry.pop("algorithms", None)
    for entry in data.get("spiffe") or []:
        entry.pop("hmac")
    return trust_config_from_dict(data)


def test_every_shipped_example_issuer_vouches_only_for_its_namespace() -> None:
    now = int(time.time())  # not the module's: a long suite run would outlive its tokens
    trust = _example_trust()
    assert trust.issuers and trust.domains
    v = TokenVerifier(trust)
    head = {"alg": "ES256", "kid": "example", "typ": "JWT"}
    for iss, cfg in trust.issuers.items():
        aud = cfg.audience.replace("{service}", "records")
        base = {"iss": iss, "aud": aud, "exp": now + 300}
        user = forge(head, {**base, "sub": "resident-4411"}, keys().ec)
        assert v.verify(user, service="records").kind == "user"
        for td in [*trust.domains, "other.example"]:
            workload = forge(head, {**base, "sub": f"spiffe://{td}/ns/portal/sa/citizen-portal"}, keys().ec)
            with pytest.raises(TokenError, match="outside the namespace of issuer"):
                v.verify(workload, service="records")
    for td, dcfg in trust.domains.items():
        base = {"aud": dcfg.audience, "exp": now + 300, **({"iss": dcfg.issuer} if dcfg.issuer else {})}
        ok = forge(head, {**base, "sub": f"spiffe://{td}/ns/portal/sa/citizen-portal"}, keys().ec)
        ident = v.verify(ok, service="records")
        assert ident.kind == "spiffe" and ident.principal.startswith(f"spiffe://{td}/")
        # The same keys cannot vouch for a user or for another trust domain.
        for sub in ["resident-4411", "spiffe://other.example/ns/portal/sa/citizen-portal"]:
            with pytest.raises(TokenError):
                v.verify(forge(head, {**base, "sub": sub}, keys().ec), service="records")


def test_demo_trust_file_vouches_both_ways(tmp_path: Path) -> None:
    """The demo's trust file (one key for the IdP and the trust domain): still two namespaces."""
    import jwt as pyjwt

    from playbooks.generators.service_calls import IDP_ISSUER, TRUST_DOMAIN, ServiceCall, TokenMint

    mint = TokenMint(tmp_path)
    v = TokenVerifier(load_trust_config(mint.write_trust()))
    workload = f"spiffe://{TRUST_DOMAIN}/ns/portal/sa/citizen-portal"

    def call(principal: str) -> str:
        return mint.mint(ServiceCall(time.time(), principal, "10.0.0.1", "records", "GET", "/"))

    assert v.verify(call("clerk-17"), service="records").kind == "user"
    assert v.verify(call(workload), service="records").kind == "spiffe"
    # The same key, but the IdP's iss on a workload's subject: the IdP does not vouch for workloads.
    forged = pyjwt.encode({"iss": IDP_ISSUER, "sub": workload, "aud": "records", "exp": int(time.time()) + 60},
                          mint.key, algorithm="ES256", headers={"kid": mint.kid})
    with pytest.raises(TokenError, match="outside the namespace of issuer"):
        v.verify(forged, service="records")
    # And the trust domain does not vouch for people.
    forged = pyjwt.encode({"sub": "clerk-17", "aud": "records", "exp": int(time.time()) + 60}, mint.key,
                          algorithm="ES256", headers={"kid": mint.kid})
    with pytest.raises(TokenError, match="missing required claim 'iss'"):
        v.verify(forged, service="records")
