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

_SUSPECT = ("%", "//", "/.", "\\", "\x00", ";")


def normalize_path(path: str) -> str | None:
    """The path a policy is matched against, or ``None`` when it is ambiguous.

    Proxies and services disagree on ``%2F``, ``\\``, ``;`` and dot segments, so a rule on
    ``/admin/**`` could be walked around with ``/records/..%2Fadmin``: dot segments and
    repeated slashes are resolved, percent-escapes of ordinary characters decoded, and a
    path that still encodes a separator, a control character or a backslash is refused.
    """
    if not path.startswith("/"):
        return None
    if not any(s in path for s in _SUSPECT) and not path.endswith("/."):
        return path
    from urllib.parse import unquote

    if ";" in path or "\\" in path:
        return None
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered or "%25" in lowered:
        return None
    try:
        decoded = unquote(path, errors="strict") if "%" in path else path
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 or c == "\x7f" for c in decoded):
        return None
    out: list[str] = []
    parts = decoded.split("/")
    for seg in parts[1:]:
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    trailing = "/" if decoded.endswith(("/", "/.", "/..")) and out else ""
    return "/" + "/".join(out) + trailing


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
        if self._ip is None and self.source_ip:
            try:
                self._ip = ipaddress.ip_address(self.source_ip)
            except ValueError:
                self._ip = False
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

        ``trusted=False`` (what a network caller sends) ignores ``time`` and ``risk``: the
        engine takes them from its own clock and the alert store, never from the caller.
        """
        if not isinstance(data, Mapping):
            raise ValueError("request must be a JSON object")
        missing = [k for k in ("service", "method", "path") if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            raise ValueError(f"request is missing {', '.join(missing)}")
        when = data.get("time") if trusted else None
        ts = None
        if when is not None:
            from eventstore.timeutil import from_iso

            ts = from_iso(str(when))
        risk = data.get("risk") if trusted else None
        r = None
        if isinstance(risk, Mapping):
            from policy.language import LEVEL_RANK

            lvl = risk.get("max_level")
            r = Risk(int(risk.get("open_alerts", 0)), lvl, LEVEL_RANK.get(str(lvl), 0) if lvl else 0)

        def strings(key: str) -> frozenset[str]:
            v = data.get(key) or ()
            if isinstance(v, str):
                v = v.split()
            return frozenset(str(x) for x in v)

        return cls(
            service=data["service"], method=str(data["method"]).upper(), path=data["path"],
            token=data.get("token"), principal=data.get("principal"), namespace=data.get("namespace"),
            source_ip=data.get("source_ip"), roles=strings("roles"), scopes=strings("scopes"),
            groups=strings("groups"), issuer=data.get("issuer"), time=ts, risk=r,
        )


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
