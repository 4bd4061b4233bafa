"""Key sets (JWKS) for one issuer or trust domain: loaded from a file or URL, cached, refreshed rarely.

PyJWT's ``PyJWKClient`` fetches by URL only and refreshes on every unknown ``kid``; here a
key set may also come from a file (the usual way SPIFFE bundles are distributed), an
unknown ``kid`` triggers at most one refetch per ``min_refresh_s`` (so a flood of forged
``kid`` values cannot turn the PDP into a fetch amplifier), and keys that are too weak are
refused when loaded, with the reason kept for the denial message. ``kid`` is only ever a
dictionary key here: never a path, a URL or a query.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWKError

MIN_RSA_BITS = 2048
MIN_HMAC_BYTES = 32
MAX_JWKS_BYTES = 1 << 20
MAX_KID_LENGTH = 256

ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})

#: Which header ``alg`` a key of this type (and curve) may verify; the key decides, not the token.
_ALGS_FOR_KEY: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("EC", "P-521"): frozenset({"ES512"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("OKP", "Ed448"): frozenset({"EdDSA"}),
    ("oct", None): HMAC_ALGS,
}


class KeyLookupError(Exception):
    """A key could not be found or used; the message is the denial reason."""


def _b64len(value: str) -> int:
    return (len(value.rstrip("=")) * 6) // 8


def key_problem(jwk: Mapping[str, Any], *, allow_hmac: bool) -> str | None:
    """Why this JWK must not be used, or ``None``. Checked once, at load time."""
    kty = jwk.get("kty")
    if kty == "RSA":
        bits = _b64len(str(jwk.get("n", ""))) * 8
        if bits < MIN_RSA_BITS:
            return f"RSA key of {bits} bits is shorter than {MIN_RSA_BITS}"
    elif kty == "oct":
        if not allow_hmac:
            return "symmetric (oct) key in a key set not configured for HMAC"
        if _b64len(str(jwk.get("k", ""))) < MIN_HMAC_BYTES:
            return f"HMAC key shorter than {MIN_HMAC_BYTES} bytes"
    elif kty not in ("EC", "OKP"):
        return f"unsupported key type {kty!r}"
    if "d" in jwk or "p" in jwk:
        return "private key material in a verification key set"
    return None


def algs_for(jwk: Mapping[str, Any]) -> frozenset[str]:
    kty = str(jwk.get("kty"))
    crv = jwk.get("crv") if kty in ("EC", "OKP") else None
    algs = _ALGS_FOR_KEY.get((kty, crv), frozenset())
    declared = jwk.get("alg")
    if declared:
        algs = algs & {declared}
    return algs


@dataclass
class KeySet:
    """The verification keys of one issuer; ``get(kid, alg)`` is the only lookup."""

    name: str
    file: Path | None = None
    url: str | None = None
    jwks: Mapping[str, Any] | None = None
    allow_hmac: bool = False
    min_refresh_s: float = 30.0
    max_age_s: float = 300.0
    timeout_s: float = 2.0
    errors: list[str] = field(default_factory=list)
    _keys: dict[str, tuple[Mapping[str, Any], frozenset[str]]] = field(default_factory=dict, repr=False)
    _rejected: dict[str, str] = field(default_factory=dict, repr=False)
    _prepared: dict[tuple[str, str], PyJWK] = field(default_factory=dict, repr=False)
    _loaded_at: float = 0.0
    _last_fetch: float = -1e18
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.jwks is None and self.file is None and self.url is None:
            raise ValueError(f"key set {self.name!r}: needs jwks, a file or a url")

    # -- loading ------------------------------------------------------------------------
    def _read(self) -> Mapping[str, Any]:
        if self.jwks is not None:
            return self.jwks
        if self.file is not None:
            raw = Path(self.file).read_bytes()[: MAX_JWKS_BYTES + 1]
        else:
            assert self.url is not None
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                raw = resp.read(MAX_JWKS_BYTES + 1)
        if len(raw) > MAX_JWKS_BYTES:
            raise ValueError(f"key set {self.name!r}: JWKS larger than {MAX_JWKS_BYTES} bytes")
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ValueError(f"key set {self.name!r}: not a JWKS (no 'keys' list)")
        return data

    def _install(self, keys: Iterable[Any]) -> None:
        accepted: dict[str, tuple[Mapping[str, Any], frozenset[str]]] = {}
        rejected: dict[str, str] = {}
        errors: list[str] = []
        seen: dict[str, int] = {}
        for position, jwk in enumerate(keys):
            if not isinstance(jwk, dict):
                errors.append(f"key #{position}: not an object")
                continue
            kid = jwk.get("kid")
            label = str(kid) if isinstance(kid, str) else f"#{position}"
            if isinstance(kid, str) and kid in seen:
                # Which of two keys under one kid verifies would depend on file order: refuse the set.
                raise ValueError(f"key set {self.name!r}: kid {kid[:64]!r} appears twice (keys #{seen[kid]} and "
                                 f"#{position}); every kid must name one key")
            if isinstance(kid, str):
                seen[kid] = position
            if jwk.get("use") not in (None, "sig"):
                errors.append(f"key {label}: use {jwk.get('use')!r} is not 'sig'")
                continue
            problem = key_problem(jwk, allow_hmac=self.allow_hmac)
            if problem is None and not algs_for(jwk):
                problem = f"no usable algorithm for kty {jwk.get('kty')!r} crv {jwk.get('crv')!r}"
            if problem is not None:
                errors.append(f"key {label}: {problem}")
                rejected[label] = problem
                continue
            accepted[label] = (jwk, algs_for(jwk))
        self._keys, self._rejected, self.errors = accepted, rejected, errors
        self._prepared = {}
        self._loaded_at = time.monotonic()

    def load(self) -> None:
        """(Re)read the key set; raises ``ValueError``/``OSError`` naming the set on failure."""
        with self._lock:
            self._last_fetch = time.monotonic()
            data = self._read()
            self._install(data["keys"])

    def _maybe_refresh(self, *, force: bool) -> None:
        now = time.monotonic()
        stale = now - self._loaded_at > self.max_age_s and (self.url is not None or self.file is not None)
        if not (force or stale) or now - self._last_fetch < self.min_refresh_s:
            return
        if not force and self._loaded_at:
            # Merely stale: refresh in the background and keep verifying with the keys we have,
            # so a slow JWKS endpoint never sits on the request path.
            self._last_fetch = now
            threading.Thread(target=self._refresh, name=f"jwks-{self.name}", daemon=True).start()
            return
        self._refresh()

    def _refresh(self) -> None:
        try:
            self.load()
        except (OSError, ValueError) as exc:
            # Keep the keys we had: an unreachable JWKS endpoint must not revoke every identity.
            self.errors = [*self.errors[-9:], f"refresh failed: {exc}"]

    # -- lookup -------------------------------------------------------------------------
    def get(self, kid: Any, alg: str) -> PyJWK:
        if not self._loaded_at:
            self._maybe_refresh(force=True)
        else:
            self._maybe_refresh(force=False)
        if kid is None:
            candidates = [k for k, (_, algs) in self._keys.items() if alg in algs]
            if len(candidates) != 1:
                raise KeyLookupError(f"token has no kid and {len(candidates)} keys of {self.name} fit {alg}")
            label = candidates[0]
        else:
            if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH or not kid.isprintable():
                raise KeyLookupError("kid must be a short printable string")
            label = kid
            if label not in self._keys and label not in self._rejected:
                self._maybe_refresh(force=True)
        if label in self._rejected:
            raise KeyLookupError(f"key {label!r} of {self.name} is refused: {self._rejected[label]}")
        entry = self._keys.get(label)
        if entry is None:
            raise KeyLookupError(f"unknown kid {label[:64]!r} for {self.name}")
        jwk, algs = entry
        if alg not in algs:
            raise KeyLookupError(f"key {label!r} of {self.name} cannot verify {alg} (allowed: {', '.join(sorted(algs))})")
        prepared = self._prepared.get((label, alg))
        if prepared is None:
            try:
                prepared = PyJWK(dict(jwk), algorithm=alg)
            except PyJWKError as exc:
                raise KeyLookupError(f"key {label!r} of {self.name} is unusable: {exc}") from exc
            self._prepared[(label, alg)] = prepared
        return prepared

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)
