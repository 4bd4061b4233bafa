"""The compiler: per-service buckets, glob services, and the compiled checks."""

from __future__ import annotations

from datetime import UTC, datetime

from policy.compiler import compile_policy
from policy.language import policy_set_from_text
from policy.request import Request

TEXT = """\
apiVersion: ztsoc/v1
kind: Policy
name: c
rules:
  - name: everywhere-deny
    effect: deny
    destination: {paths: ["/x/**"]}
  - name: records-exact
    effect: allow
    destination: {services: [records]}
  - name: records-glob
    effect: allow
    destination: {services: ["records-*"]}
  - name: dry
    effect: deny
    dry_run: true
    destination: {services: [records]}
  - name: risky
    effect: allow
    destination: {services: [pay]}
    when: {risk: {max_open_alerts: 0}}
  - name: ips
    effect: allow
    source: {ip_ranges: [10.0.0.0/8, "2001:db8::/32"]}
    destination: {services: [net]}
"""


def test_buckets_hold_only_applicable_rules() -> None:
    c = compile_policy(policy_set_from_text(TEXT))
    assert c.services() == ["net", "pay", "records"]
    rec = c.bucket("records")
    assert [r.id for r in rec.denies] == ["c/everywhere-deny"]
    assert [r.id for r in rec.allows] == ["c/records-exact"]
    assert [r.id for r in rec.dry_denies] == ["c/dry"]
    assert not rec.needs_risk and c.bucket("pay").needs_risk
    glob = c.bucket("records-archive")
    assert [r.id for r in glob.allows] == ["c/records-glob"] and [r.id for r in glob.denies] == ["c/everywhere-deny"]
    assert c.bucket("records-archive") is glob  # cached
    assert c.bucket("unknown").allows == ()


def test_ip_checks_handle_both_families_and_garbage() -> None:
    c = compile_policy(policy_set_from_text(TEXT))
    rule = c.bucket("net").allows[0]
    for ip, ok in (("10.1.2.3", True), ("2001:db8::1", True), ("192.0.2.1", False)):
        assert rule.match(Request("net", "GET", "/", source_ip=ip)) is ok
    # An unknown address is a reason (a deny naming ranges fails closed), never "outside the ranges".
    unknown: tuple[str | None, ...] = ("not-an-ip", "%5B::1%5D:40686", None)
    for bad in unknown:
        assert rule.match(Request("net", "GET", "/", source_ip=bad)) == "the source address is unknown"


def test_unknown_risk_is_a_reason_not_a_match() -> None:
    c = compile_policy(policy_set_from_text(TEXT))
    result = c.bucket("pay").allows[0].match(Request("pay", "GET", "/", principal="p", time=datetime.now(UTC)))
    assert isinstance(result, str) and "unknown" in result


BOUNDARY = """\
apiVersion: ztsoc/v1
kind: Policy
name: b
rules:
  - name: no-admin
    effect: deny
    destination: {paths: ["/admin/..."]}
  - name: no-exports-below
    effect: deny
    destination: {paths: ["/export/**"]}
  - name: workloads-only
    effect: allow
    source: {principal_kinds: [spiffe]}
    destination: {services: [records]}
  - name: province-staff
    effect: allow
    source: {issuers: ["https://idp.province.example"], principal_kinds: [user]}
    destination: {services: [portal]}
  - name: docs
    effect: allow
    destination: {services: [docs], paths: ["/Docs/**"]}
"""


def _decide(service: str, path: str, **kw: object) -> tuple[bool, str]:
    from policy.engine import Engine

    d = Engine.from_policy_set(policy_set_from_text(BOUNDARY)).decide(Request(service, "GET", path, **kw))  # type: ignore[arg-type]
    return d.allow, d.reason


def test_subtree_glob_covers_the_bare_prefix_and_deny_ignores_case() -> None:
    wl = {"principal": "spiffe://province.example/ns/a/sa/b"}
    for path in ["/admin", "/admin/", "/admin/x/y", "/ADMIN", "/Admin/x", "/admin/../admin"]:
        assert _decide("records", path, **wl) == (False, "denied by b/no-admin (<memory>:5)"), path
    assert _decide("records", "/administrator", **wl)[0] is True  # a prefix of a segment is not covered
    assert _decide("records", "/export", **wl)[0] is True  # the ** form leaves the bare prefix (lint warns)
    assert _decide("records", "/EXPORT/2025", **wl)[0] is False
    # Allow rules keep case: a case variant is never let in by an allow it does not spell.
    assert _decide("docs", "/Docs/a")[0] is True and _decide("docs", "/docs/a")[0] is False


def test_policies_can_require_the_issuer_and_the_principal_kind() -> None:
    assert _decide("records", "/r", principal="spiffe://province.example/ns/a/sa/b")[0] is True
    assert _decide("records", "/r", principal="clerk-7", issuer="https://idp.province.example")[0] is False
    assert _decide("portal", "/", principal="clerk-7", issuer="https://idp.province.example")[0] is True
    assert _decide("portal", "/", principal="clerk-7", issuer="https://partner.example")[0] is False
    assert _decide("portal", "/", principal="spiffe://province.example/ns/a/sa/b",
                   issuer="https://idp.province.example")[0] is False
    assert _decide("records", "/r")[0] is False  # anonymous has no kind
