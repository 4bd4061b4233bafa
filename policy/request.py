"""What a decision is about (``Request``) and what it says (``Decision``).

A ``Request`` holds attributes, never trust: the engine fills ``principal``, ``namespace``
and the claim sets from a verified token when there is one, and a caller that asserts a
principal itself (a sidecar that terminated mTLS) is trusted only as far as the server
is configured to trust it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def principal_kind(principal: str | None) -> str | None:
    """``spiffe`` for a SPIFFE ID, ``user`` for any other principal, ``None`` when anonymous.

    Derived from the principal alone because the trust configuration makes it sound: only
    a trust domain's JWT-SVID keys yield ``spiffe://`` principals (``IssuerConfig`` refuses
    them), so the two kinds can never be confused by what a token says.
    """
    if not principal:
        return None
    return "spiffe" if principal.startswith("spiffe://") else "user"


@dataclass(frozen=True, slots=True)
class Risk:
    """The open alerts of a source (principal or IP) at decision time."""

    open_alerts: int = 0
    max_level: str | None = None
    max_rank: int = 0


@dataclass(slots=True)
class Request:
    service: str
    method: str
    path: str
    token: str | None = None
    principal: str | None = None
    namespace: str | None = None
    source_ip: str | None = None
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    issuer: str | None = None
    time: datetime | None = None
    #: Filled by the engine (or given, when replaying a logged decision).
    risk: Risk | None = None
    authenticated: bool = False
    _ip: Any = field(default=None, repr=False)

    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The source address; an IPv4-mapped IPv6 one as its IPv4 address (the fronts already
        give that form, ``policy.canonical``; this covers requests built directly, as replays do)."""
        if self._ip is None and self.source_ip:
            try:
                ip = ipaddress.ip_address(self.source_ip)
            except ValueError:
                self._ip = False
            else:
                self._ip = ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
        return self._ip or None

    def claim_set(self, name: str) -> frozenset[str]:
        return {"roles": self.roles, "scopes": self.scopes, "groups": self.groups}.get(name, frozenset())

    def now(self) -> datetime:
        if self.time is None:
            self.time = datetime.now(UTC)
        return self.time

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, trusted: bool = True) -> Request:
        """The ``POST /v1/decide`` / ``REQUEST.json`` shape; raises ``ValueError`` naming the field.

        Every field is type-checked and an unknown field is refused (a misspelt ``principle``
        must not silently drop a condition). ``trusted=False`` (what a network caller sends)
        ignores ``time`` and ``risk``: the engine takes them from its own clock and the alert
        store, never from the caller. The method and path are canonicalised by the engine.
        """
        if not isinstance(data, Mapping):
            raise ValueError("request must be a JSON object")
        unknown = sorted(str(k)[:40] for k in data if k not in REQUEST_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(REQUEST_FIELDS))})")
        missing = [k for k in ("service", "method", "path") if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise ValueError(f"request is missing {', '.join(missing)} (non-empty strings)")
        for key in ("token", "principal", "namespace", "issuer", "source_ip"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"field {key!r} must be a string, not {type(value).__name__}")
        source_ip = None
        if data.get("source_ip") is not None:
            from policy.canonical import parse_ip  # the one address parser (IPv4-mapped IPv6 unmapped)

            source_ip = parse_ip(data["source_ip"])
            if source_ip is None:
                raise ValueError(f"field 'source_ip' is not an IP address: {str(data['source_ip'])[:60]!r}")
        when = data.get("time") if trusted else None
        ts = None
        if when is not None:
            from eventstore.timeutil import from_iso

            try:
                ts = from_iso(str(when))
            except ValueError as exc:
                raise ValueError(f"field 'time': {exc}") from None
        risk = data.get("risk") if trusted else None
        r = None
        if risk is not None:
            r = _risk(risk)

        def strings(key: str) -> frozenset[str]:
            v = data.get(key)
            if v is None:
                return frozenset()
            if isinstance(v, str):
                return frozenset(v.split())
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"field {key!r} must be a list of strings or a space-separated string")
            return frozenset(v)

        return cls(
            service=data["service"], method=data["method"], path=data["path"],
            token=data.get("token"), principal=data.get("principal"), namespace=data.get("namespace"),
            source_ip=source_ip, roles=strings("roles"), scopes=strings("scopes"),
            groups=strings("groups"), issuer=data.get("issuer"), time=ts, risk=r,
        )


REQUEST_FIELDS = frozenset({"service", "method", "path", "token", "principal", "namespace", "source_ip", "roles",
                            "scopes", "groups", "issuer", "time", "risk"})


def _risk(risk: Any) -> Risk:
    from policy.language import LEVEL_RANK

    if not isinstance(risk, Mapping):
        raise ValueError("field 'risk' must be an object (open_alerts, max_level)")
    extra = set(risk) - {"open_alerts", "max_level"}
    if extra:
        raise ValueError(f"field 'risk' has unknown key(s) {', '.join(sorted(map(str, extra)))}")
    count = risk.get("open_alerts", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("field 'risk.open_alerts' must be a non-negative integer")
    lvl = risk.get("max_level")
    if lvl is not None and lvl not in LEVEL_RANK:
        raise ValueError(f"field 'risk.max_level' must be one of {', '.join(LEVEL_RANK)}")
    return Risk(count, lvl, LEVEL_RANK[lvl] if lvl else 0)


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    #: ``allow``, ``deny`` or ``would_deny`` (allowed, but a dry-run deny rule matched).
    action: str
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    decision_id: str
    policy_version: str = ""
    dry_run_rules: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    duration_us: float = 0.0

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow, "action": self.action, "rules": list(self.rules), "reasons": list(self.reasons),
            "decision_id": self.decision_id, "policy_version": self.policy_version,
            "dry_run_rules": list(self.dry_run_rules), "policies": list(self.policies),
        }
