"""The decision engine: default deny, deny wins, dry-run, fail closed, indexed rules, hot reload."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from policy_tokens import DOMAIN, claims, forge, keys, svid, user_token, verifier

from policy.compiler import compile_policy
from policy.engine import Engine
from policy.language import policy_set_from_text
from policy.request import Request, Risk
from policy.risk import StaticRisk

POLICY = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: no-admin-paths
    effect: deny
    destination: {paths: ["/admin/**"]}
  - name: risky-callers
    effect: deny
    when: {risk: {min_level: high}}
  - name: web-reads
    effect: allow
    source: {principals: ["spiffe://gov.example/ns/portal/sa/*"]}
    destination: {services: [records], methods: [GET, POST]}
  - name: clerks
    effect: allow
    destination: {services: [records], methods: [GET]}
    when: {claims: {roles: {any: [clerk]}}, risk: {max_open_alerts: 0}}
  - name: export-soon-denied
    effect: deny
    dry_run: true
    destination: {services: [records], paths: ["/export/**"]}
  - name: night-shift
    effect: allow
    destination: {services: [pager], methods: [POST]}
    when: {time: {days: [fri], from: "22:00", to: "06:00", timezone: UTC}}
"""

PORTAL = f"spiffe://{DOMAIN}/ns/portal/sa/web"


def engine(text: str = POLICY, **kw: object) -> Engine:
    kw.setdefault("risk", StaticRisk())
    return Engine.from_policy_set(policy_set_from_text(text, "t.yaml"), **kw)


def req(**kw: object) -> Request:
    base: dict[str, object] = {"service": "records", "method": "GET", "path": "/records/1"}
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def test_default_deny() -> None:
    d = engine().decide(req(service="unknown"))
    assert not d.allow and d.action == "deny"
    assert "default deny" in d.reason
    assert d.decision_id


def test_allow_names_rule_and_decision_ids_are_unique() -> None:
    e = engine()
    a, b = e.decide(req(principal=PORTAL)), e.decide(req(principal=PORTAL))
    assert a.allow and a.rules == ("t/web-reads",) and a.policies == ("t",)
    assert a.decision_id != b.decision_id


def test_deny_wins_and_names_the_policy_file_and_line() -> None:
    d = engine().decide(req(principal=PORTAL, path="/admin/users"))
    assert not d.allow and d.rules == ("t/no-admin-paths",)
    assert "t.yaml:5" in d.reason


def test_dry_run_deny_is_logged_as_would_deny_but_allowed() -> None:
    d = engine().decide(req(principal=PORTAL, path="/export/all"))
    assert d.allow and d.action == "would_deny"
    assert d.dry_run_rules == ("t/export-soon-denied",)


def test_claims_and_risk_conditions() -> None:
    e = engine(risk=StaticRisk({"clerk-1": Risk(1, "low", 2), "bad-1": Risk(3, "high", 4)}))
    assert e.decide(req(principal="clerk-9", roles=frozenset({"clerk"}))).allow
    assert not e.decide(req(principal="clerk-9", roles=frozenset({"auditor"}))).allow
    # One open alert is too many for the clerks rule.
    assert not e.decide(req(principal="clerk-1", roles=frozenset({"clerk"}))).allow
    # A high alert triggers the deny rule, whatever allows it.
    d = e.decide(req(principal="bad-1", roles=frozenset({"clerk"})))
    assert not d.allow and d.rules == ("t/risky-callers",)


def test_unknown_risk_fails_closed_with_reason() -> None:
    e = engine(risk=None)
    d = e.decide(req(principal=PORTAL))
    assert not d.allow
    assert "failing closed" in d.reason and "risk" in d.reason and "unknown" in d.reason


def test_missing_attributes_and_internal_errors_deny() -> None:
    e = engine()
    d = e.decide(req(service=""))
    assert not d.allow and "missing request attribute" in d.reason

    class Broken:
        def risk(self, principal: str | None, ip: str | None) -> Risk | None:
            raise RuntimeError("boom")

    d = engine(risk=Broken()).decide(req(principal=PORTAL))
    assert not d.allow and "internal error: RuntimeError: boom" in d.reason


def test_time_window_across_midnight() -> None:
    e = engine()
    friday_late = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)
    saturday_early = datetime(2026, 3, 7, 3, 0, tzinfo=UTC)
    saturday_late = datetime(2026, 3, 7, 23, 0, tzinfo=UTC)
    for when, ok in ((friday_late, True), (saturday_early, True), (saturday_late, False)):
        assert e.decide(req(service="pager", method="POST", path="/page", time=when)).allow is ok, when


def test_tokens_give_identity_and_hostile_tokens_deny() -> None:
    e = engine(verifier=verifier())
    good = e.decide(req(token=svid("/ns/portal/sa/web")))
    assert good.allow and good.rules == ("t/web-reads",)
    clerk = e.decide(req(token=user_token(aud="records")))
    assert clerk.allow and clerk.rules == ("t/clerks",)
    bad = e.decide(req(token=forge({"alg": "none"}, claims(), None)))
    assert not bad.allow and bad.reason.startswith("invalid token: alg 'none'")
    # A token overrides an asserted principal: the claim of being the portal is ignored.
    forged = forge({"alg": "ES256", "kid": "svid1"}, {"sub": PORTAL, "aud": "ztsoc-pdp", "exp": int(time.time()) + 60},
                   keys().other_domain)
    assert not e.decide(req(token=forged, principal=PORTAL)).allow


def test_asserted_principal_can_be_refused() -> None:
    d = engine(trust_asserted_principal=False).decide(req(principal=PORTAL))
    assert not d.allow and "asserted principal" in d.reason


def test_rules_are_indexed_by_service() -> None:
    rules = "".join(
        f"  - name: r{i}\n    effect: allow\n    destination: {{services: [svc-{i % 50}], paths: [\"/p{i}/*\"]}}\n"
        for i in range(1000)
    )
    text = "apiVersion: ztsoc/v1\nkind: Policy\nname: big\nrules:\n" + rules
    compiled = compile_policy(policy_set_from_text(text))
    bucket = compiled.bucket("svc-7")
    assert len(bucket.allows) == 20  # 1000 rules, 50 services: only this service's rules are walked
    assert {cr.rule.services for cr in bucket.allows} == {("svc-7",)}
    assert compiled.bucket("nope").allows == ()
    e = Engine(compiled, risk=StaticRisk())
    assert e.decide(req(service="svc-7", path="/p57/x")).allow
    assert not e.decide(req(service="svc-8", path="/p57/x")).allow


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, (st.st_atime + 2, st.st_mtime + 2))  # make the change visible to a coarse mtime


def test_hot_reload_is_atomic_and_keeps_old_policy_on_error(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    _write(f, POLICY)
    e = Engine.from_paths([tmp_path], risk=StaticRisk())
    v1 = e.policy.version
    assert e.decide(req(principal=PORTAL)).allow

    _write(f, POLICY.replace("effect: allow\n    source", "effect: allow\n    colour: red\n    source", 1))
    result = e.reload(force=False)
    assert not result.ok and result.version == v1
    assert any("p.yaml:" in str(i) and "colour" in str(i) for i in result.issues)
    assert e.decide(req(principal=PORTAL)).allow  # the old policy still decides
    assert e.status()["last_reload_ok"] is False

    _write(f, POLICY.replace("methods: [GET, POST]", "methods: [POST]"))
    result = e.reload(force=False)
    assert result.ok and result.version != v1
    assert not e.decide(req(principal=PORTAL)).allow
    assert e.reload(force=False).changed is False


def test_watcher_picks_up_changes(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    _write(f, POLICY)
    e = Engine.from_paths([tmp_path], risk=StaticRisk()).watch(interval_s=0.05)
    try:
        _write(f, POLICY.replace("methods: [GET, POST]", "methods: [POST]"))
        deadline = time.monotonic() + 5
        while e.decide(req(principal=PORTAL)).allow and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not e.decide(req(principal=PORTAL)).allow
    finally:
        e.stop()


@pytest.mark.parametrize("path", ["/admin/x", "/admin/x/y"])
def test_deny_rule_without_service_applies_everywhere(path: str) -> None:
    assert not engine().decide(req(service="anything", principal=PORTAL, path=path)).allow


@pytest.mark.parametrize(("path", "allowed", "reason"), [
    ("/records/../admin/users", False, "t/no-admin-paths"),
    ("/records/%2e%2e/admin/users", False, "t/no-admin-paths"),
    ("//admin//users", False, "t/no-admin-paths"),
    ("/records/..%2Fadmin/users", False, "encodes '/'"),
    ("/admin;x/users", False, "path parameters"),
    ("/records\\..\\admin", False, "backslash"),
    ("/records/%ff", False, "not UTF-8"),
    ("/records/./1", True, "t/web-reads"),
])
def test_paths_are_normalized_before_matching(path: str, allowed: bool, reason: str) -> None:
    d = engine().decide(req(principal=PORTAL, path=path))
    assert d.allow is allowed and reason in d.reason
