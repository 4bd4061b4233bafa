"""``soc policy explain REQUEST.json``: every rule, whether it matched, and which condition failed.

The decision itself comes from the engine (the same code path as production); the per-rule
table re-runs each rule's compiled checks one by one, so what it shows is what the engine
evaluated, not a second interpretation of the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy.compiler import service_matcher
from policy.engine import Engine
from policy.request import Decision, Request


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule: str
    effect: str
    dry_run: bool
    where: str
    matched: bool
    #: the first condition that did not hold (or ``service``), empty when matched
    failed: str
    detail: str
    conditions: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "effect": self.effect, "dry_run": self.dry_run, "where": self.where,
                "matched": self.matched, "failed": self.failed, "detail": self.detail,
                "conditions": dict(self.conditions)}


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    request: Request
    traces: tuple[RuleTrace, ...]

    @property
    def near_misses(self) -> list[str]:
        """Allow rules for this service that failed on a condition: what the caller lacked."""
        return [f"{t.rule} ({t.where}) failed on {t.failed}" + (f": {t.detail}" if t.detail else "")
                for t in self.traces if t.effect == "allow" and not t.matched and t.failed != "service"]

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "decision": {**self.decision.to_dict(), "reason": self.decision.reason},
            "request": {"service": r.service, "method": r.method, "path": r.path, "principal": r.principal,
                        "namespace": r.namespace, "source_ip": r.source_ip, "roles": sorted(r.roles),
                        "scopes": sorted(r.scopes), "groups": sorted(r.groups), "authenticated": r.authenticated,
                        "risk": None if r.risk is None else {"open_alerts": r.risk.open_alerts,
                                                             "max_level": r.risk.max_level}},
            "rules": [t.to_dict() for t in self.traces],
            "near_misses": self.near_misses,
        }


def _show(result: object) -> str:
    if result is True:
        return "yes"
    if result is False:
        return "no"
    return f"unknown: {result}"


def explain(engine: Engine, req: Request) -> Explanation:
    decision = engine.decide(req)  # also authenticates and fills the risk, as in production
    if req.risk is None and engine.risk is not None:
        req.risk = engine.risk.risk(req.principal, req.source_ip)
    traces = []
    for cr in engine.policy.rules:
        rule = cr.rule
        service_ok = bool(req.service) and service_matcher(rule.services)(req.service)
        conds: list[tuple[str, str]] = [("service", "yes" if service_ok else "no")]
        failed, detail = ("" if service_ok else "service"), ""
        for name, result in cr.explain(req):
            conds.append((name, _show(result)))
            if result is not True and not failed:
                failed = name
                detail = "" if result is False else str(result)
        matched = not failed
        if failed and detail and rule.effect == "deny" and service_ok and all(
                v == "yes" or v.startswith("unknown") for _, v in conds):
            matched, detail = True, f"fails closed: {detail}"
        traces.append(RuleTrace(rule.id, rule.effect, rule.dry_run, rule.where, matched, failed, detail,
                                tuple(conds)))
    return Explanation(decision, req, tuple(traces))


def explain_request(engine: Engine, data: dict[str, Any]) -> Explanation:
    return explain(engine, Request.from_dict(data))
