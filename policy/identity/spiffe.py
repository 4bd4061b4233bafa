"""SPIFFE IDs and the JWT-SVID rules (SPIFFE JWT-SVID spec, sections 2-3).

A SPIFFE ID is parsed by hand (no maintained Python library parses them without pulling
in the whole Workload API client): ``spiffe://<trust-domain>/<path>``, trust domain of
lower-case letters, digits, ``.``, ``-``, ``_``; path segments of letters, digits, ``.``,
``-``, ``_``, none empty, ``.`` or ``..``; no query, fragment, port or user info.
Each trust domain has its own key set; a JWT-SVID may carry no header beyond ``alg``,
``kid`` and ``typ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from policy.identity.keys import KeySet

#: Matched with ``fullmatch`` (``$`` would also match before a final newline).
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_SPIFFE_ID = 2048

#: The JWT-SVID algorithms (spec 3.1): RS, ES, PS families; never HMAC, never none.
SVID_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
SVID_HEADERS = frozenset({"alg", "kid", "typ"})
SVID_TYP = frozenset({"JWT", "JOSE"})


class SpiffeIdError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    path: str

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        if not isinstance(text, str) or len(text) > MAX_SPIFFE_ID:
            raise SpiffeIdError("SPIFFE ID must be a string of at most 2048 characters")
        if not text.startswith("spiffe://"):
            raise SpiffeIdError(f"not a SPIFFE ID (scheme must be spiffe://): {text[:80]!r}")
        rest = text[len("spiffe://"):]
        domain, slash, path = rest.partition("/")
        if not _TRUST_DOMAIN.fullmatch(domain):
            raise SpiffeIdError(f"bad SPIFFE trust domain {domain[:80]!r}")
        if slash:
            segments = path.split("/")
            for seg in segments:
                if not seg or seg in (".", "..") or not _SEGMENT.fullmatch(seg):
                    raise SpiffeIdError(f"bad SPIFFE ID path segment {seg[:80]!r} in {text[:120]!r}")
            path = "/" + path
        return cls(domain, path)

    @classmethod
    def parse_workload(cls, text: str) -> SpiffeId:
        """A workload's SPIFFE ID (a JWT-SVID's ``sub``): one with a path. ``spiffe://td`` alone is the
        trust domain's own ID (SPIFFE-ID spec 2.1, 2.3), which identifies the domain, never a workload."""
        sid = cls.parse(text)
        if not sid.path:
            raise SpiffeIdError(f"SPIFFE ID {text[:80]!r} names a trust domain, not a workload (a workload ID has a path)")
        return sid

    @property
    def namespace(self) -> str | None:
        """The ``ns`` segment of the Kubernetes-style ``/ns/<ns>/sa/<sa>`` convention."""
        parts = self.path.split("/")
        if len(parts) >= 3 and parts[1] == "ns":
            return parts[2]
        return None

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


@dataclass
class TrustDomainConfig:
    """One trusted SPIFFE trust domain: its JWT bundle and the audience our PDP expects."""

    trust_domain: str
    keys: KeySet
    audience: str
    algorithms: frozenset[str] = SVID_ALGORITHMS
    leeway_s: float = 30.0
    issuer: str | None = None
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    groups_claim: str = "groups"
    allowed_headers: frozenset[str] = SVID_HEADERS
    typ: frozenset[str] = SVID_TYP
    hmac: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.fullmatch(self.trust_domain):
            raise ValueError(f"bad trust domain {self.trust_domain!r}")
        bad = set(self.algorithms) - SVID_ALGORITHMS
        if bad:
            raise ValueError(f"trust domain {self.trust_domain}: JWT-SVIDs may not use {', '.join(sorted(bad))}")

    @property
    def name(self) -> str:
        return f"spiffe://{self.trust_domain}"
