"""A working day of service-to-service traffic through the PDP, for ``soc demo`` and tutorials.

``demo_traffic(store)`` builds an engine from the shipped provincial example policies, with
freshly generated keys for the province's identity provider and SPIFFE trust domain, the
risk of each caller read from the store's open alerts, and every decision logged to the
store. The traffic mixes residents, the portal's workload, registry clerks, finance jobs,
and an attacker presenting forged, expired and foreign tokens, so the decision log has
allows, denials, dry-run ``would_deny`` and token refusals to look at.

    from eventstore import open_store
    from policy.demo import demo_traffic
    summary = demo_traffic(open_store("sqlite:///soc.db"), decisions=500)
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from eventstore.store import Store
from policy.decision_log import DecisionLog
from policy.engine import Engine
from policy.identity import KeySet, TokenVerifier, TrustConfig
from policy.identity.jwt import IssuerConfig
from policy.identity.spiffe import TrustDomainConfig
from policy.request import Request
from policy.risk import StoreRisk

EXAMPLES = Path(__file__).with_name("examples")
DOMAIN = "province.example"
IDP = "https://idp.province.example"
PDP_AUDIENCE = "ztsoc-pdp"
PORTAL = f"spiffe://{DOMAIN}/ns/portal/sa/citizen-portal"
FINANCE = f"spiffe://{DOMAIN}/ns/finance/sa/reconciler"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Issuer:
    kid: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        jwk["kid"] = self.kid
        return {"keys": [jwk]}

    def sign(self, claims: dict[str, Any], exp_in: int = 600) -> str:
        now = int(time.time())
        body = {"iat": now, "exp": now + exp_in, **claims}
        head = _b64(json.dumps({"alg": "ES256", "kid": self.kid, "typ": "JWT"}).encode())
        payload = _b64(json.dumps(body).encode())
        sig = ECAlgorithm(ECAlgorithm.SHA256).sign(f"{head}.{payload}".encode(), self.key)
        return f"{head}.{payload}.{_b64(sig)}"


@dataclass
class DemoSummary:
    decisions: int
    by_action: dict[str, int]
    by_service: dict[str, int]
    spilled: int
    policy_version: str


def demo_trust(idp: _Issuer, bundle: _Issuer) -> TrustConfig:
    cfg = TrustConfig()
    cfg.issuers[IDP] = IssuerConfig(issuer=IDP, keys=KeySet(name=IDP, jwks=idp.jwks()), audience="{service}",
                                    algorithms=frozenset({"ES256"}))
    cfg.domains[DOMAIN] = TrustDomainConfig(trust_domain=DOMAIN, keys=KeySet(name=DOMAIN, jwks=bundle.jwks()),
                                            audience=PDP_AUDIENCE)
    return cfg


def _traffic(rnd: random.Random, idp: _Issuer, bundle: _Issuer, attacker: _Issuer) -> list[Callable[[], Request]]:
    def resident() -> Request:
        n = rnd.randrange(1, 400)
        tok = idp.sign({"iss": IDP, "sub": f"resident-{n}", "aud": "citizen-portal", "roles": ["citizen"],
                        "scope": "portal"})
        return Request("citizen-portal", rnd.choice(["GET", "POST"]), rnd.choice(["/applications", "/profile"]),
                       token=tok, source_ip=f"198.51.100.{n % 250}")

    def visitor() -> Request:
        return Request("citizen-portal", "GET", rnd.choice(["/", "/services/permits", "/help/faq", "/static/app.js"]),
                       source_ip=f"203.0.113.{rnd.randrange(250)}")

    def portal(svc: str, method: str, path: str, scope: str) -> Callable[[], Request]:
        def make() -> Request:
            tok = bundle.sign({"sub": PORTAL, "aud": PDP_AUDIENCE, "scope": scope})
            return Request(svc, method, path.format(n=rnd.randrange(1, 400)), token=tok, source_ip="10.10.0.5")
        return make

    def clerk() -> Request:
        n = rnd.randrange(1, 12)
        tok = idp.sign({"iss": IDP, "sub": f"clerk-{n}", "aud": "records", "roles": ["clerk"],
                        "groups": ["records-office"]})
        method, path = rnd.choice([("GET", "/records/land/parcel-{n}"), ("PUT", "/records/land/parcel-{n}"),
                                   ("GET", "/records/export/2025"), ("DELETE", "/records/land/parcel-{n}")])
        return Request("records", method, path.format(n=rnd.randrange(1, 999)), token=tok,
                       source_ip=f"10.20.{n}.{rnd.randrange(2, 250)}")

    def finance() -> Request:
        tok = bundle.sign({"sub": FINANCE, "aud": PDP_AUDIENCE})
        return Request("payments", "GET", f"/ledger/2026-{rnd.randrange(1, 13):02d}", token=tok, source_ip="10.30.0.9")

    def intruder() -> Request:
        kind = rnd.randrange(4)
        if kind == 0:  # a token minted with the attacker's own key, claiming to be the portal
            tok = attacker.sign({"sub": PORTAL, "aud": PDP_AUDIENCE, "scope": "payments:write"})
        elif kind == 1:  # a stolen but expired resident token
            tok = idp.sign({"iss": IDP, "sub": "resident-7", "aud": "citizen-portal", "roles": ["citizen"]},
                           exp_in=-3600)
        elif kind == 2:  # alg none
            tok = _b64(b'{"alg":"none"}') + "." + _b64(json.dumps({"iss": IDP, "sub": "admin"}).encode()) + "."
        else:  # a workload of another trust domain
            tok = attacker.sign({"sub": "spiffe://partner.example/ns/x/sa/y", "aud": PDP_AUDIENCE})
        service = "citizen-portal" if kind == 1 else rnd.choice(["payments", "records", "admin-console"])
        return Request(service, "POST", "/payments/charges" if kind != 1 else "/applications", token=tok,
                       source_ip="192.0.2.66")

    weighted: list[tuple[Callable[[], Request], int]] = [
        (visitor, 30), (resident, 20), (portal("records", "GET", "/records/citizens/{n}/certificates/birth",
                                               "records:read"), 15),
        (portal("payments", "POST", "/payments/charges", "payments:write"), 10), (clerk, 15), (finance, 5),
        (intruder, 5),
    ]
    return [f for f, w in weighted for _ in range(w)]


def demo_traffic(store: Store, *, decisions: int = 500, seed: int = 5, at: datetime | None = None,
                 span: timedelta = timedelta(hours=8), spill_path: Path | None = None) -> DemoSummary:
    """Decide ``decisions`` requests spread over ``span`` from ``at`` (default: today 08:00 Regina).

    The store's open alerts count: a caller with alerts against it is refused by the example
    policies' risk rules, so running this after detections shows access being withdrawn.
    """
    rnd = random.Random(seed)
    idp, bundle, attacker = _Issuer("idp-2026"), _Issuer("bundle-1"), _Issuer("bundle-1")
    risk = StoreRisk(lambda: store)
    risk.refresh()
    spill = spill_path or Path(tempfile.mkdtemp(prefix="ztsoc-demo-")) / "decisions.spill.jsonl"
    log = DecisionLog(lambda: store, spill, own_store=False)
    engine = Engine.from_paths([EXAMPLES], verifier=TokenVerifier(demo_trust(idp, bundle)), risk=risk, sink=log)
    start = at or datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0)  # 08:00 in Regina
    makers = _traffic(rnd, idp, bundle, attacker)
    actions: Counter[str] = Counter()
    services: Counter[str] = Counter()
    for i in range(decisions):
        req = rnd.choice(makers)()
        req.time = start + span * (i / max(1, decisions))
        d = engine.decide(req)
        actions[d.action] += 1
        services[req.service] += 1
    log.close()
    return DemoSummary(decisions, dict(actions), dict(services), log.spilled_lines(), engine.policy.version)
