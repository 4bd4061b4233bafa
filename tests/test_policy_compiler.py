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
    for ip, ok in (("10.1.2.3", True), ("2001:db8::1", True), ("192.0.2.1", False), ("not-an-ip", False), (None, False)):
        assert rule.match(Request("net", "GET", "/", source_ip=ip)) is ok


def test_unknown_risk_is_a_reason_not_a_match() -> None:
    c = compile_policy(policy_set_from_text(TEXT))
    result = c.bucket("pay").allows[0].match(Request("pay", "GET", "/", principal="p", time=datetime.now(UTC)))
    assert isinstance(result, str) and "unknown" in result
