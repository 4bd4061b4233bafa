"""Service-to-service calls with real signed tokens, decided by the real policy engine.

A generated incident that involves services (a stolen token replayed, lateral movement,
a policy change) must reach the SOC the way production traffic does: each call carries a
JWT-SVID signed with an ES256 key of the ``province.example`` trust domain, the policy
engine verifies it and decides, and the decision log writes the decision event. The key
is made per run and its JWKS and trust file are written beside the other artefacts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from eventstore.store import Store

TRUST_DOMAIN = "province.example"
#: The province's identity provider: people (clerks, officers) carry its tokens, workloads carry JWT-SVIDs.
IDP_ISSUER = "https://idp.province.example"
POLICY_EXAMPLES = Path(__file__).resolve().parent.parent.parent / "policy" / "examples"


def spiffe(namespace: str, account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"


@dataclass(frozen=True, slots=True)
class ServiceCall:
    ts: float
    principal: str
    source_ip: str
    service: str
    method: str
    path: str
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass
class TokenMint:
    """An ES256 signing key of the trust domain, its JWKS and the PDP's trust file."""

    directory: Path
    kid: str = "province-2026"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def write_trust(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        (self.directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=2))
        trust = self.directory / "trust.yaml"
        trust.write_text(f"spiffe:\n  - trust_domain: {TRUST_DOMAIN}\n    audience: \"{{service}}\"\n"
                         "    jwks_file: jwks.json\n"
                         f"issuers:\n  - issuer: {IDP_ISSUER}\n    audience: \"{{service}}\"\n"
                         "    jwks_file: jwks.json\n    algorithms: [ES256]\n")
        return trust

    def mint(self, call: ServiceCall, now: float | None = None) -> str:
        now = now or time.time()
        claims: dict[str, Any] = {"sub": call.principal, "aud": call.service, "iat": int(now), "exp": int(now) + 300}
        if not call.principal.startswith("spiffe://"):
            claims["iss"] = IDP_ISSUER
        if call.scopes:
            claims["scope"] = " ".join(call.scopes)
        if call.roles:
            claims["roles"] = list(call.roles)
        if call.groups:
            claims["groups"] = list(call.groups)
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"})


class PolicyChangeLike(Protocol):
    @property
    def ts(self) -> float: ...
    @property
    def file(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass
class CallReport:
    calls: int = 0
    allowed: int = 0
    denied: int = 0
    would_deny: int = 0
    logged: int = 0
    spilled: int = 0


def send_calls(store: Store, calls: Sequence[ServiceCall], directory: Path,
               policy_paths: Iterable[Path] = (POLICY_EXAMPLES,), *,
               changes: Sequence[PolicyChangeLike] = ()) -> CallReport:
    """Decide every call through the engine, logging each decision to ``store``.

    A policy change (a file someone added) takes effect for the calls after it, as a hot
    reload would: calls are decided in time order by the engine in force at their time.
    """
    from policy.decision_log import DecisionLog
    from policy.engine import build_engine
    from policy.request import Request
    from policy.risk import StoreRisk

    mint = TokenMint(directory)
    trust = mint.write_trust()
    log = DecisionLog(store_factory=lambda: store, spill_path=directory / "decisions.spill.jsonl", own_store=False)
    log.start()
    risk = StoreRisk(store_factory=lambda: store)
    risk.refresh()
    paths = list(policy_paths)
    # One engine per policy version: the base set, then the base set plus each change so far.
    versions: list[tuple[float, list[Path]]] = [(float("-inf"), list(paths))]
    for change in sorted(changes, key=lambda c: c.ts):
        extra = directory / "policy-changes" / change.file
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_text(change.text)
        versions.append((change.ts, [*versions[-1][1], extra]))
    engines = [(since, build_engine(ps, trust_file=trust, risk=risk, sink=log)) for since, ps in versions]
    report = CallReport()
    try:
        for call in sorted(calls, key=lambda c: c.ts):
            engine = next(e for since, e in reversed(engines) if call.ts >= since)
            request = Request(service=call.service, method=call.method, path=call.path, token=mint.mint(call),
                              source_ip=call.source_ip, time=datetime.fromtimestamp(call.ts, UTC))
            decision = engine.decide(request)
            report.calls += 1
            if decision.action == "would_deny":
                report.would_deny += 1
            if decision.allow:
                report.allowed += 1
            else:
                report.denied += 1
    finally:
        log.close()
        for _, engine in engines:
            engine.stop()
    report.logged = log.stats.written
    report.spilled = log.spilled_lines()
    return report
