"""JWT verification for the PDP, on PyJWT, with the checks PyJWT leaves to the caller.

PyJWT verifies signatures and the registered claims. What it does not do, and is done
here before it runs: a size cap; rejecting duplicate names in the header or payload
(``json.loads`` keeps the last one, so two parsers could disagree on ``sub``); a header
allow-list (``jku``, ``x5u``, ``jwk``, ``x5c`` and unknown ``crit`` are refused, never
followed); choosing the issuer by exact ``iss`` (or the SPIFFE trust domain of ``sub``)
from configuration, so the allowed algorithms and keys come from configuration, never
from the token; NumericDate type checks (PyJWT accepts ``"exp": "9999999999"``); and a
cache of verified tokens, bounded in size and lifetime, so a busy caller pays for the
signature once.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt as pyjwt
from jwt import exceptions as jwt_exc

from policy.identity.keys import ASYMMETRIC_ALGS, HMAC_ALGS, KeyLookupError, KeySet
from policy.identity.spiffe import SpiffeId, SpiffeIdError, TrustDomainConfig

MAX_TOKEN_BYTES = 8192
MAX_LEEWAY_S = 300.0
DEFAULT_TYP = frozenset({"JWT", "at+jwt", "application/at+jwt"})
KEY_LOCATING_HEADERS = ("jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256")


class TokenError(Exception):
    """A token that must not be trusted; ``str(exc)`` is the denial reason."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller. ``principal`` is the token's ``sub`` (a SPIFFE ID for workloads)."""

    principal: str
    issuer: str
    kind: str
    trust_domain: str | None = None
    namespace: str | None = None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    expires_at: float = 0.0
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class IssuerConfig:
    """One trusted token issuer (an identity provider): its keys, audience and algorithms."""

    issuer: str
    keys: KeySet
    audience: str
    algorithms: frozenset[str] = frozenset({"ES256", "RS256", "PS256", "EdDSA"})
    leeway_s: float = 30.0
    hmac: bool = False
    typ: frozenset[str] = DEFAULT_TYP
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    groups_claim: str = "groups"
    namespace_claim: str | None = None
    allowed_headers: frozenset[str] = frozenset({"alg", "kid", "typ"})
    #: The subjects this issuer may assert (globs); empty: any user subject. Never a SPIFFE ID.
    subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.hmac:
            bad = set(self.algorithms) - HMAC_ALGS
            if bad:
                raise ValueError(f"issuer {self.issuer}: an HMAC issuer may only use HS256/384/512, not {sorted(bad)}")
        else:
            bad = set(self.algorithms) - ASYMMETRIC_ALGS
            if bad:
                raise ValueError(
                    f"issuer {self.issuer}: {', '.join(sorted(bad))} not allowed (HMAC needs 'hmac: true')"
                )
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"issuer {self.issuer}: leeway_s must be within 0..{MAX_LEEWAY_S:g}")

    @property
    def name(self) -> str:
        return self.issuer

    def check_subject(self, sub: str) -> None:
        """A people IdP vouches for user principals only: never a SPIFFE ID, only ``subjects`` when set."""
        if sub.strip().lower().startswith("spiffe:"):
            raise TokenError(f"subject {sub[:120]!r} is outside the namespace of issuer {self.issuer}: it vouches "
                             "for user principals, never a SPIFFE ID (workloads need a JWT-SVID of their trust domain)")
        if sub != sub.strip() or not sub.isprintable():
            raise TokenError(f"subject {sub[:120]!r} has surrounding spaces or unprintable characters")
        if self.subjects and not any(fnmatch.fnmatchcase(sub, g) for g in self.subjects):
            raise TokenError(f"subject {sub[:120]!r} is outside the namespace of issuer {self.issuer} "
                             f"(it may assert {', '.join(self.subjects)})")


@dataclass
class TrustConfig:
    issuers: dict[str, IssuerConfig] = field(default_factory=dict)
    domains: dict[str, TrustDomainConfig] = field(default_factory=dict)
    max_token_bytes: int = MAX_TOKEN_BYTES

    def key_sets(self) -> list[KeySet]:
        return [c.keys for c in self.issuers.values()] + [d.keys for d in self.domains.values()]


# -- strict JSON ----------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TokenError(f"duplicate claim or header {key[:64]!r}")
        out[key] = value
    return out


def strict_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except TokenError:
        raise
    except (ValueError, RecursionError) as exc:
        raise TokenError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TokenError(f"{what} is not a JSON object")
    return value


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _segment(text: str, what: str) -> bytes:
    """Strict base64url (RFC 7515 section 2): no ``=`` padding, no other alphabet, no stray bits.

    A lenient decoder lets one token have many spellings (padding, ``+/``, unused low bits),
    which defeats caching and log matching by token and hides a tampered segment.
    """
    if _B64URL.fullmatch(text) is None:
        bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c in "-_")))
        raise TokenError(f"{what} is not strict base64url (character {bad!r}; padding '=' is not allowed)")
    if len(text) % 4 == 1:
        raise TokenError(f"{what} is not base64url: impossible length {len(text)}")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError(f"{what} is not base64url: {exc}") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:
        raise TokenError(f"{what} is not canonical base64url (non-zero unused bits)")
    return raw


class _StrictPyJWT(pyjwt.PyJWT):
    """PyJWT with a payload parser that refuses duplicate claims."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        return strict_json(decoded["payload"], "payload")


def _numeric_date(payload: Mapping[str, Any], name: str, *, required: bool) -> None:
    if name not in payload:
        if required:
            raise TokenError(f"missing required claim {name!r}")
        return
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"claim {name!r} must be a number (NumericDate), got {type(value).__name__}")


def _string_set(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_exc.ExpiredSignatureError, "token expired"),
    (jwt_exc.ImmatureSignatureError, "token not yet valid"),
    (jwt_exc.InvalidAudienceError, "wrong audience"),
    (jwt_exc.InvalidIssuerError, "wrong issuer"),
    (jwt_exc.MissingRequiredClaimError, "missing claim"),
    (jwt_exc.InvalidSignatureError, "bad signature"),
    (jwt_exc.InvalidAlgorithmError, "algorithm refused"),
    (jwt_exc.InvalidKeyError, "key refused"),
)


class TokenVerifier:
    """Verifies bearer tokens against a ``TrustConfig``; thread-safe; caches successes only."""

    def __init__(self, trust: TrustConfig, *, cache_size: int = 10_000, cache_ttl_s: float = 60.0) -> None:
        self.trust = trust
        self.cache_size = cache_size
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, str | None], tuple[Identity, float]] = {}
        self._lock = threading.Lock()
        self._jwt = _StrictPyJWT()

    def verify(self, token: str, *, service: str | None = None) -> Identity:
        key = (token, service)
        hit = self._cache.get(key)
        now = time.time()
        if hit is not None and hit[1] > now:
            return hit[0]
        identity = self._verify(token, service, now)
        until = min(identity.expires_at, now + self.cache_ttl_s)
        with self._lock:
            if len(self._cache) >= self.cache_size:
                # Drop the oldest tenth (insertion order): bounded memory without an LRU's per-hit cost.
                for stale in list(self._cache)[: max(1, self.cache_size // 10)]:
                    self._cache.pop(stale, None)
            self._cache[key] = (identity, until)
        return identity

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def _verify(self, token: str, service: str | None, now: float) -> Identity:
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        if len(token) > self.trust.max_token_bytes:
            raise TokenError(f"token of {len(token)} bytes exceeds the {self.trust.max_token_bytes}-byte cap")
        parts = token.split(".")
        if len(parts) == 5:
            raise TokenError("encrypted tokens (JWE) are not accepted")
        if len(parts) != 3:
            raise TokenError(f"not a compact JWS: {len(parts)} parts instead of 3")
        header = strict_json(_segment(parts[0], "header"), "header")
        payload = strict_json(_segment(parts[1], "payload"), "payload")
        _segment(parts[2], "signature")  # PyJWT's own decoder would accept padding
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise TokenError("header has no alg")
        if alg.lower() == "none":
            raise TokenError("alg 'none' is never accepted")

        cfg = self._config_for(payload)
        self._check_header(header, cfg)
        if alg not in cfg.algorithms:
            raise TokenError(f"alg {alg} is not allowed for {cfg.name} (allowed: {', '.join(sorted(cfg.algorithms))})")
        for claim in ("exp",):
            _numeric_date(payload, claim, required=True)
        for claim in ("nbf", "iat"):
            _numeric_date(payload, claim, required=False)
        for claim in ("sub", "aud"):
            if claim not in payload:
                raise TokenError(f"missing required claim {claim!r}")
        if not isinstance(payload["sub"], str) or not payload["sub"]:
            raise TokenError("claim 'sub' must be a non-empty string")
        aud = payload["aud"]
        if isinstance(aud, list):
            raise TokenError(f"token names {len(aud)} audiences; exactly one is accepted")
        expected_aud = cfg.audience.replace("{service}", service or "")
        if aud != expected_aud:
            raise TokenError(f"wrong audience {str(aud)[:80]!r} (expected {expected_aud!r})")

        try:
            jwk = cfg.keys.get(header.get("kid"), alg)
        except KeyLookupError as exc:
            raise TokenError(str(exc)) from None
        issuer = cfg.issuer  # None for a trust domain that does not pin an issuer
        required = ["exp", "sub", "aud"] if isinstance(cfg, TrustDomainConfig) else ["exp", "iss", "sub", "aud"]
        try:
            decoded = self._jwt.decode_complete(
                token,
                key=jwk,
                algorithms=[alg],
                audience=expected_aud,
                issuer=issuer,
                leeway=cfg.leeway_s,
                options={"require": required, "strict_aud": True, "enforce_minimum_key_length": True,
                         "verify_iss": issuer is not None},
            )
        except TokenError:
            raise
        except jwt_exc.PyJWTError as exc:
            for kind, reason in _PYJWT_REASONS:
                if isinstance(exc, kind):
                    raise TokenError(f"{reason}: {exc}") from None
            raise TokenError(f"invalid token: {exc}") from None
        claims: dict[str, Any] = decoded["payload"]
        return self._identity(cfg, claims)

    def _config_for(self, payload: Mapping[str, Any]) -> IssuerConfig | TrustDomainConfig:
        iss = payload.get("iss")
        sub = payload.get("sub")
        if iss is not None and not isinstance(iss, str):
            raise TokenError("claim 'iss' must be a string")
        if isinstance(iss, str) and iss in self.trust.issuers:
            return self.trust.issuers[iss]
        if isinstance(sub, str) and sub.startswith("spiffe://"):
            try:
                sid = SpiffeId.parse_workload(sub)
            except SpiffeIdError as exc:
                raise TokenError(str(exc)) from None
            domain = self.trust.domains.get(sid.trust_domain)
            if domain is None:
                raise TokenError(f"token for trust domain {sid.trust_domain!r}, which is not trusted")
            if domain.issuer is not None and iss != domain.issuer:
                raise TokenError(f"wrong issuer {str(iss)[:80]!r} for trust domain {sid.trust_domain}")
            return domain
        if iss is None:
            raise TokenError("missing required claim 'iss'")
        for domain in self.trust.domains.values():
            if domain.issuer is not None and domain.issuer == iss:
                raise TokenError(f"subject {str(sub)[:120]!r} is outside the namespace of trust domain "
                                 f"{domain.trust_domain}: its keys vouch only for spiffe://{domain.trust_domain}/...")
        raise TokenError(f"untrusted issuer {iss[:120]!r}")

    @staticmethod
    def _check_header(header: Mapping[str, Any], cfg: IssuerConfig | TrustDomainConfig) -> None:
        for name in KEY_LOCATING_HEADERS:
            if name in header:
                raise TokenError(f"header {name!r} is refused: keys come from configuration only")
        if "crit" in header:
            raise TokenError(f"unknown critical header(s) {str(header['crit'])[:80]}")
        extra = set(header) - cfg.allowed_headers
        if extra:
            raise TokenError(f"header parameter(s) {', '.join(sorted(extra))[:120]} not allowed for {cfg.name}")
        typ = header.get("typ")
        if typ is not None and typ not in cfg.typ:
            raise TokenError(f"typ {str(typ)[:40]!r} not accepted (expected one of {', '.join(sorted(cfg.typ))})")

    @staticmethod
    def _identity(cfg: IssuerConfig | TrustDomainConfig, claims: dict[str, Any]) -> Identity:
        sub: str = claims["sub"]
        scopes = _string_set(claims.get(cfg.scopes_claim)) or _string_set(claims.get("scp"))
        if isinstance(cfg, TrustDomainConfig):
            sid = SpiffeId.parse_workload(sub)
            if sid.trust_domain != cfg.trust_domain:
                raise TokenError(f"token for trust domain {sid.trust_domain!r}, which is not trusted")
            return Identity(
                principal=sub, issuer=str(claims.get("iss") or cfg.name), kind="spiffe",
                trust_domain=sid.trust_domain, namespace=sid.namespace,
                roles=_string_set(claims.get(cfg.roles_claim)), scopes=scopes,
                groups=_string_set(claims.get(cfg.groups_claim)), expires_at=float(claims["exp"]), claims=claims,
            )
        cfg.check_subject(sub)
        namespace = claims.get(cfg.namespace_claim) if cfg.namespace_claim else None
        return Identity(
            principal=sub, issuer=cfg.issuer, kind="user", trust_domain=None,
            namespace=namespace if isinstance(namespace, str) else None,
            roles=_string_set(claims.get(cfg.roles_claim)), scopes=scopes,
            groups=_string_set(claims.get(cfg.groups_claim)), expires_at=float(claims["exp"]), claims=claims,
        )


# -- configuration file ---------------------------------------------------------------------
def _keyset(entry: Mapping[str, Any], base: Path, name: str, *, hmac: bool) -> KeySet:
    jwks: Mapping[str, Any] | None = entry.get("jwks")
    secret_env = entry.get("hmac_secret_env")
    if secret_env:
        secret = os.environ.get(str(secret_env))
        if not secret:
            raise ValueError(f"{name}: environment variable {secret_env} is not set")
        k = base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()
        jwks = {"keys": [{"kty": "oct", "k": k, "kid": entry.get("kid", "hmac")}]}
    file = entry.get("jwks_file")
    ks = KeySet(
        name=name, jwks=jwks, file=(base / file) if file else None, url=entry.get("jwks_url"), allow_hmac=hmac,
        min_refresh_s=float(entry.get("min_refresh_s", 30)), max_age_s=float(entry.get("max_age_s", 300)),
    )
    try:
        ks.load()
    except (OSError, ValueError) as exc:
        if ks.url is None:
            raise ValueError(f"{name}: cannot load keys: {exc}") from exc
        ks.errors.append(f"initial fetch failed: {exc}")  # a URL may come up later; refreshed on demand
    return ks


def trust_config_from_dict(data: Mapping[str, Any], base: Path = Path(".")) -> TrustConfig:
    cfg = TrustConfig(max_token_bytes=int(data.get("max_token_bytes", MAX_TOKEN_BYTES)))
    for i, entry in enumerate(data.get("issuers") or []):
        iss = entry.get("issuer")
        if not isinstance(iss, str) or not iss:
            raise ValueError(f"issuers[{i}]: 'issuer' is required")
        hmac = bool(entry.get("hmac", False))
        algs = frozenset(entry.get("algorithms") or (["HS256"] if hmac else ["ES256", "RS256", "PS256", "EdDSA"]))
        cfg.issuers[iss] = IssuerConfig(
            issuer=iss, keys=_keyset(entry, base, iss, hmac=hmac), audience=str(entry["audience"]),
            algorithms=algs, leeway_s=float(entry.get("leeway_s", 30)), hmac=hmac,
            typ=frozenset(entry.get("typ") or DEFAULT_TYP),
            roles_claim=entry.get("roles_claim", "roles"), scopes_claim=entry.get("scopes_claim", "scope"),
            groups_claim=entry.get("groups_claim", "groups"), namespace_claim=entry.get("namespace_claim"),
            subjects=_subjects(entry, f"issuers[{i}]"),
        )
    for i, entry in enumerate(data.get("spiffe") or []):
        td = entry.get("trust_domain")
        if not isinstance(td, str) or not td:
            raise ValueError(f"spiffe[{i}]: 'trust_domain' is required")
        kwargs: dict[str, Any] = {}
        if entry.get("algorithms"):
            kwargs["algorithms"] = frozenset(entry["algorithms"])
        cfg.domains[td] = TrustDomainConfig(
            trust_domain=td, keys=_keyset(entry, base, f"spiffe://{td}", hmac=False),
            audience=str(entry["audience"]), leeway_s=float(entry.get("leeway_s", 30)),
            issuer=entry.get("issuer"), **kwargs,
        )
    pinned = {d.issuer: td for td, d in cfg.domains.items() if d.issuer is not None}
    both = sorted(set(pinned) & set(cfg.issuers))
    if both:
        raise ValueError(f"issuer {both[0]!r} is both a people IdP (issuers) and the issuer of trust domain "
                         f"{pinned[both[0]]} (spiffe): one issuer, one namespace")
    return cfg


def _subjects(entry: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = entry.get("subjects")
    if value is None:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: 'subjects' must be a non-empty list of subject globs")
    if any(re.match(r"(?i)\s*spiffe:", v) for v in value):
        raise ValueError(f"{where}: a people IdP may not assert SPIFFE IDs; trust the domain under 'spiffe:'")
    return tuple(value)


def load_trust_config(path: str | Path) -> TrustConfig:
    """Read a trust file (YAML): ``issuers:`` and ``spiffe:`` lists; key files relative to it."""
    import yaml

    from eventstore import yamlfile

    path = Path(path)
    try:
        data = yamlfile.load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with 'issuers' and/or 'spiffe'")
    try:
        return trust_config_from_dict(data, path.parent)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: bad trust entry: {exc}") from exc
