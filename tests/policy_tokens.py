"""Test helpers: keys generated on the fly and tokens forged byte by byte (headers and
payloads as raw JSON text, so duplicate names and odd types reach the verifier intact)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from policy.identity import KeySet, TokenVerifier, TrustConfig
from policy.identity.jwt import IssuerConfig
from policy.identity.spiffe import TrustDomainConfig

ISSUER = "https://idp.gov.example"
DOMAIN = "gov.example"
AUDIENCE = "records"
SVID_AUDIENCE = "ztsoc-pdp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(private: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    algs = get_default_algorithms()
    name = {ec.EllipticCurvePrivateKey: "ES256", rsa.RSAPrivateKey: "RS256",
            ed25519.Ed25519PrivateKey: "EdDSA"}
    family = next(v for k, v in name.items() if isinstance(private, k))
    jwk: dict[str, Any] = json.loads(algs[family].to_jwk(private.public_key()))
    jwk["kid"] = kid
    if alg:
        jwk["alg"] = alg
    return jwk


def forge(header: dict[str, Any] | str, payload: dict[str, Any] | str, key: Any, alg: str | None = None) -> str:
    """Sign raw header/payload text with ``key`` using ``alg`` (default: the header's)."""
    htxt = header if isinstance(header, str) else json.dumps(header)
    ptxt = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{b64(htxt.encode())}.{b64(ptxt.encode())}".encode()
    alg = alg or json.loads(htxt)["alg"]
    if key is None or alg == "none":
        return signing_input.decode() + "."
    algo = get_default_algorithms()[alg]
    sig = algo.sign(signing_input, algo.prepare_key(key) if isinstance(key, bytes) else key)
    return f"{signing_input.decode()}.{b64(sig)}"


ECKey = ec.EllipticCurvePrivateKey
RSAKey = rsa.RSAPrivateKey


@dataclass
class Keys:
    ec: ECKey
    rsa: RSAKey
    short_rsa: RSAKey
    ed: ed25519.Ed25519PrivateKey
    svid: ECKey
    other_domain: ECKey


_KEYS: Keys | None = None


def keys() -> Keys:
    global _KEYS
    if _KEYS is None:
        _KEYS = Keys(
            ec=ec.generate_private_key(ec.SECP256R1()),
            rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            short_rsa=rsa.generate_private_key(public_exponent=65537, key_size=1024),
            ed=ed25519.Ed25519PrivateKey.generate(),
            svid=ec.generate_private_key(ec.SECP256R1()),
            other_domain=ec.generate_private_key(ec.SECP256R1()),
        )
    return _KEYS


def idp_jwks() -> dict[str, Any]:
    k = keys()
    return {"keys": [jwk_of(k.ec, "ec1"), jwk_of(k.rsa, "rsa1", "RS256"), jwk_of(k.short_rsa, "short1"),
                     jwk_of(k.ed, "ed1")]}


def svid_jwks() -> dict[str, Any]:
    return {"keys": [jwk_of(keys().svid, "svid1")]}


def trust() -> TrustConfig:
    cfg = TrustConfig()
    cfg.issuers[ISSUER] = IssuerConfig(
        issuer=ISSUER, keys=KeySet(name=ISSUER, jwks=idp_jwks()), audience=AUDIENCE,
        algorithms=frozenset({"ES256", "RS256", "EdDSA"}),
    )
    cfg.domains[DOMAIN] = TrustDomainConfig(
        trust_domain=DOMAIN, keys=KeySet(name=f"spiffe://{DOMAIN}", jwks=svid_jwks()), audience=SVID_AUDIENCE,
    )
    return cfg


def verifier() -> TokenVerifier:
    return TokenVerifier(trust())


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "sub": "clerk-7", "aud": AUDIENCE, "exp": now + 600, "iat": now,
                            "roles": ["clerk"], "scope": "records:read"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def user_token(alg: str = "ES256", kid: str = "ec1", **over: Any) -> str:
    k = keys()
    key = {"ES256": k.ec, "RS256": k.rsa, "EdDSA": k.ed}[alg]
    return forge({"alg": alg, "kid": kid, "typ": "JWT"}, claims(**over), key)


def svid(path: str = "/ns/portal/sa/web", aud: str = SVID_AUDIENCE, key: Any = None, **over: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": f"spiffe://{DOMAIN}{path}", "aud": aud, "exp": now + 300, "iat": now}
    payload.update(over)
    return forge({"alg": "ES256", "kid": "svid1", "typ": "JWT"}, payload, key or keys().svid)
