"""The compiler: per-service buckets, glob services, and the compiled checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- deny paths: one case-insensitive matcher for exact and glob paths (audit defect 7) ---------
_FOLD_PARTS = ["a", "d", "m", "i", "n", "s", "k", "x", "/", "ss", "\u00e9", "\u00df", "\u0131", "\u0130", "\u017f",
               "\u212a"]
#: A letter and the spellings a case-insensitive service takes for it (simple and full case mappings).
_VARIANTS = {"i": ["i", "I", "\u0131", "\u0130"], "s": ["s", "S", "\u017f"], "k": ["k", "K", "\u212a"],
             "ss": ["ss", "SS", "\u00df", "sS"], "a": ["a", "A"], "d": ["d", "D"], "m": ["m", "M"], "n": ["n", "N"],
             "x": ["x", "X"], "/": ["/"], "\u00e9": ["\u00e9", "\u00c9"], "\u00df": ["\u00df", "ss", "SS"],
             "\u0131": ["\u0131", "I", "i"], "\u0130": ["\u0130", "i"], "\u017f": ["\u017f", "s", "S"],
             "\u212a": ["\u212a", "k", "K"]}


def _deny_matches(paths: list[str], path: str) -> bool:
    """Whether a deny rule naming ``paths`` matches a request for ``path`` (its compiled path check)."""
    from policy.compiler import compile_checks
    from policy.language import Rule

    ((name, check),) = compile_checks(Rule(policy="t", name="d", effect="deny", paths=tuple(paths)))
    assert name == "path"
    return check(Request("s", "GET", path)) is True


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(_FOLD_PARTS), min_size=1, max_size=8), data=st.data())
def test_exact_and_glob_deny_paths_fold_case_the_same_way(parts: list[str], data: st.DataObject) -> None:
    """The same deny written as an exact path and as a glob catches the same requests, and both catch
    every spelling a case-insensitive service takes for the denied path (``/adm\\u0131n`` is ``/admin``)."""
    denied = "/" + "".join(parts)
    variant = "/" + "".join(data.draw(st.sampled_from(_VARIANTS[p])) for p in parts)
    other = data.draw(st.sampled_from(["/admin", "/x", "/ss", "/\u00e9", "/\u0131", denied, variant]))
    for path in (denied, variant, other):
        exact = _deny_matches([denied], path)
        assert exact == _deny_matches([denied + "/..."], path) == _deny_matches([denied + "/**"], path + "/y"), path
        assert exact == _deny_matches(["/nothing/**", denied], path), path  # exact beside a glob: one matcher
    assert _deny_matches([denied], variant) and _deny_matches([denied + "/..."], variant + "/z")


@pytest.mark.parametrize("path", ["/adm\u0131n", "/ADM\u0130N", "/\u017fecret", "/\u212aeys", "/admin", "/ADMIN"])
def test_the_audits_case_variants_are_denied_by_exact_and_glob_paths(path: str) -> None:
    target = {"/adm\u0131n": "/admin", "/ADM\u0130N": "/admin", "/\u017fecret": "/secret", "/\u212aeys": "/keys"}
    denied = target.get(path, "/admin")
    assert _deny_matches([denied], path) and _deny_matches([denied + "/**"], path + "/x")
    assert _deny_matches(["/stra\u00dfe"], "/STRASSE") and _deny_matches(["/strasse"], "/Stra\u00dfe")


def test_the_audits_exact_deny_is_not_bypassed_by_a_dotless_i() -> None:
    """p09: an exact deny on /admin let /adm%C4%B1n through to an allow-all rule; a glob deny caught it."""
    from policy.engine import Engine

    engine = Engine.from_policy_set(policy_set_from_text(P09))
    for path in ("/admin", "/ADMIN", "/adm%C4%B1n", "/internal/x", "/%C4%B1nternal/x", "/adm%C4%B0n"):
        assert engine.decide(Request("s", "GET", path)).allow is False, path
    assert engine.decide(Request("s", "GET", "/caf%C3%A9")).allow is True


P09 = """\
apiVersion: ztsoc/v1
kind: Policy
name: t
rules:
  - name: no-admin-exact
    effect: deny
    destination: {services: [s], paths: ["/admin"]}
  - name: no-admin-glob
    effect: deny
    destination: {services: [s], paths: ["/internal/**"]}
  - name: open
    effect: allow
    destination: {services: [s], paths: ["/**"]}
"""
